/*
 * End of data on inbound mail, after DKIM: who the author is (the From
 * field), how the message reached us (hybrid: trusted relays and the
 * Received fields they wrote), DMARC, and the verdict. The header filter
 * feeds this file the fields it needs as they stream to the spool; the
 * chain runs once the content is complete:
 *
 *   [trusted relay, mode recover] received_recover -> SPF for the
 *   original client -> DMARC (auth/dmarc_query) -> verdict_decide ->
 *   inbound_commit (reject, defer, hold, tag or deliver)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/dmarc_query.h"
#include "gateway/gateway.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "smtp/address.h"

#define SPF_UNCHECKED ((enum spf_result)-1)
#define FROM_MAX (64 * 1024)		/* a From value past this is unparseable */
#define RECEIVED_MAX (8 * 1024)
#define MAX_HOPS 50

/* The field's name as a reader may take it: "Name :" and a name folded
 * away from its colon count (a forged stamp must not slip through as a
 * line the strict parser found no name in). */
static int
field_name(const struct msg_field *f, const char **name_r, size_t *n_r)
{
	const char *v;
	size_t vn;

	return addr_field_name(f->raw, f->raw_len, name_r, n_r, &v, &vn);
}

static int
field_is(const struct msg_field *f, const char *name)
{
	const char *fn;
	size_t fl, n = strlen(name);

	return field_name(f, &fn, &fl) && fl == n && strncasecmp(fn, name, n) == 0;
}

static int
field_has_prefix(const struct msg_field *f, const char *prefix)
{
	const char *fn;
	size_t fl, n = strlen(prefix);

	return field_name(f, &fn, &fl) && fl >= n &&
	    strncasecmp(fn, prefix, n) == 0;
}

static char *
field_value_dup(const struct msg_field *f, size_t max, size_t *len_r)
{
	const char *fn, *fv;
	size_t fl, fvl, n;
	char *v;

	if (!addr_field_name(f->raw, f->raw_len, &fn, &fl, &fv, &fvl)) {
		fv = f->value;
		fvl = f->value_len;
	}
	n = fvl > max ? max : fvl;
	if ((v = malloc(n + 1)) == NULL)
		return NULL;
	memcpy(v, fv, n);
	v[n] = '\0';
	*len_r = n;
	return v;
}

/* "Report" 1*FWS "Domain:" at the start of the Subject value. */
static int
field_value_is_report(const struct msg_field *f)
{
	size_t len, i = 0;
	char *v = field_value_dup(f, 64, &len);
	int r = 0;

	if (v == NULL)
		return 0;
	while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == '\r' ||
	    v[i] == '\n'))
		i++;
	if (len - i > 6 && strncmp(v + i, "Report", 6) == 0) {
		size_t j = i + 6;

		while (j < len && (v[j] == ' ' || v[j] == '\t' || v[j] == '\r' ||
		    v[j] == '\n'))
			j++;
		r = j > i + 6 && len - j >= 7 && strncmp(v + j, "Domain:", 7) == 0;
	}
	free(v);
	return r;
}

int
inbound_dmarc_field(struct gw_conn *c, const struct msg_field *f)
{
	const struct config *cfg = c->gw->cfg;
	const char *v;
	size_t vlen;

	/* RFC 5321 6.3: a message that went round too often is a loop */
	if (field_is(f, "Received") || field_is(f, "Delivered-To"))
		c->hops++;
	/* outbound mail needs its From too: it picks the signing keys */
	if (!cfg->dmarc_verify && !c->outbound)
		return 0;
	if (addr_field_is_from(f->raw, f->raw_len, &v, &vlen)) {
		/* RFC 9989 4.4: one From field, read as a client shows it */
		if (c->nfrom++ == 0) {
			/* past FROM_MAX: refused as unparseable, never cut */
			if (vlen > FROM_MAX) {
				v = "\"oversize From field";
				vlen = strlen(v);
			}
			if ((c->from_value = malloc(vlen + 1)) == NULL)
				return -1;
			memcpy(c->from_value, v, vlen);
			c->from_value[vlen] = '\0';
			c->from_len = vlen;
		}
		return 0;
	}
	if (c->outbound)
		return 0;
	if (field_is(f, "Received")) {
		if (cfg->hybrid_recover && c->via_relay) {
			size_t i = c->nreceived;

			if (i == sizeof(c->received) / sizeof(c->received[0])) {
				c->received_more = 1;
				return 0;
			}
			c->received[i] = field_value_dup(f, RECEIVED_MAX,
			    &c->received_len[i]);
			if (c->received[i] == NULL)
				return -1;
			c->nreceived++;
		}
		return 0;
	}
	/* Our own stamps, forged by the sender, would be believed
	 * downstream: they go. Exchange trusts X-MS-Exchange-Organization-*
	 * from a connector it trusts, which we are once it honours our SCL
	 * (or accepts organization headers from us at all): from the
	 * Internet they go too, whether we stamp an SCL or not; from a
	 * trusted relay (hybrid: Exchange itself) they stay. */
	if ((cfg->verdict_header[0] && field_is(f, cfg->verdict_header)) ||
	    (!c->via_relay &&
	    field_has_prefix(f, "X-MS-Exchange-Organization-"))) {
		const char *fn;
		size_t fl;

		field_name(f, &fn, &fl);	/* ftext: safe in a log line */
		log_info("session=%s id=%s removed an incoming %.*s field",
		    smtp_session_id(c->s), c->id, (int)fl, fn);
		return 1;
	}
	/* Subject waits for the verdict: it may get the prefix. It then
	 * goes out with the fields we prepend (field order carries no
	 * meaning here, RFC 5322 3.6). */
	/* RFC 9990 3.1.1: an aggregate report's Subject. Reports are not
	 * reported on (no report about a report). */
	if (field_is(f, "Subject") && field_value_is_report(f))
		c->is_report = 1;
	if (cfg->subject_prefix[0] && field_is(f, "Subject"))
		return buf_append(&c->held_fields, f->raw, f->raw_len) == -1 ? -1 : 1;
	return 0;
}

void
inbound_dmarc_clear(struct gw_conn *c)
{
	size_t i;

	spf_query_cancel(c->rspfq);
	c->rspfq = NULL;
	if (c->dmq != NULL) {
		dmarc_query_cancel(c->dmq);
		c->dmq = NULL;
		c->gw->dmarc_inflight--;
	}
	free(c->from_value);
	free(c->from_local);
	free(c->from_domain);
	c->from_value = c->from_local = c->from_domain = NULL;
	c->from_len = c->nfrom = 0;
	buf_free(&c->held_fields);
	for (i = 0; i < c->nreceived; i++)
		free(c->received[i]);
	c->nreceived = 0;
	c->received_more = 0;
	c->via_relay = c->recovered = 0;
	c->is_report = 0;
	c->hops = 0;
	free(c->rec);
	c->rec = NULL;
	free(c->relay_note);
	c->relay_note = NULL;
}

static void
inbound_dmarc_done(const struct dmarc_outcome *o, void *arg)
{
	struct gw_conn *c = arg;
	const struct config *cfg = c->gw->cfg;
	struct verdict_config vc;
	struct verdict_input in;
	struct verdict v;
	struct gw_outcome go;
	struct buf cm = { 0 }, note = { 0 };

	c->dmq = NULL;
	c->gw->dmarc_inflight--;
	memset(&vc, 0, sizeof(vc));
	vc.enforce = cfg->dmarc_enforce;
	vc.reject_override = cfg->dmarc_reject_override;
	vc.bad_from_reject = cfg->dmarc_bad_from_reject;
	vc.temperror_defer = cfg->dmarc_temperror_defer;
	vc.quarantine_hold = cfg->quarantine_hold;
	vc.primary_mx = cfg->primary_mx;
	vc.allow_ips = &cfg->allow_ips;
	vc.trusted_forwarders = &cfg->trusted_forwarders;
	vc.mailing_lists = &cfg->mailing_lists;
	vc.allow_senders = (const char *const *)cfg->allow_senders;
	vc.nallow_senders = cfg->nallow_senders;
	memset(&in, 0, sizeof(in));
	in.dmarc = o;
	in.path = !c->via_relay ? VERDICT_PATH_DIRECT :
	    c->recovered ? VERDICT_PATH_RELAY_RECOVERED : VERDICT_PATH_RELAY_SKIP;
	in.client_ip = c->recovered ? c->rec->ip : c->ip;
	in.sender = smtp_session_sender(c->s);
	in.from_local = c->from_local;
	in.from_domain = c->from_domain;
	verdict_decide(&vc, &in, &v);
	metrics_observe("mxgate_check_duration_seconds",
	    metrics_now() - c->dmarc_t0, "check", "dmarc");
	metrics_inc("mxgate_dmarc_results_total", "result",
	    dmarc_result_name(o->result));
	metrics_inc("mxgate_dmarc_dispositions_total", "disposition",
	    v.disposition, "action", v.ar_action);
	if (v.override != NULL)
		metrics_inc("mxgate_dmarc_overrides_total", "reason", v.override);

	if (c->recovered)
		buf_appendf(&note, "hybrid=recovered client=%s", c->rec->ip);
	else if (c->via_relay || !cfg->primary_mx)
		buf_appendf(&note, "hybrid=skip%s%s", c->relay_note ? ": " : "",
		    c->relay_note ? c->relay_note : "");
	verdict_comment(o, &v, note.data, &cm);

	memset(&go, 0, sizeof(go));
	go.dmarc = o;
	go.verdict = &v;
	go.from_domain = *o->author_domain ? o->author_domain : NULL;
	go.dmarc_comment = cm.data ? cm.data : "";
	go.recovered = c->recovered;
	go.recovered_ip = c->recovered ? c->rec->ip : NULL;
	go.recovered_spf = c->rec_spf;
	go.relay_note = c->relay_note;
	reporting_record(c, o, &v);
	inbound_commit(c, &go);
	buf_free(&cm);
	buf_free(&note);
}

/* The SPF identity DMARC aligns with (RFC 9989 4.4.2): the MAIL FROM
 * domain, or the HELO name for the null sender. */
void
inbound_dmarc_spf(struct gw_conn *c, struct dmarc_params *p)
{
	const char *sender = smtp_session_sender(c->s);
	const char *at = strrchr(sender, '@');
	const char *helo = c->recovered ? c->rec->helo :
	    (smtp_session_helo(c->s) ? smtp_session_helo(c->s) : "");
	enum spf_result r = c->recovered ? c->rec_spf :
	    *sender ? c->mail_spf : c->helo_spf;

	/* Hybrid skip: SPF was checked against the relay, which says
	 * nothing about the sender (its address may well be in the
	 * sender domain's SPF record): only DKIM can align. */
	if (c->via_relay && !c->recovered)
		return;
	/* RFC 7208 2.4: for the null sender the MAIL FROM check was the
	 * HELO identity too */
	if (r == SPF_UNCHECKED && !c->recovered && *sender == '\0')
		r = c->mail_spf;
	if (r == SPF_UNCHECKED)
		return;
	p->spf_result = r;
	p->spf_domain = *sender ? (at ? at + 1 : "") : helo;
}

static void
inbound_dmarc_run(struct gw_conn *c)
{
	const struct config *cfg = c->gw->cfg;
	struct dmarc_params p;
	struct dmarc_dkim_input *dk = NULL;
	struct gw_outcome go;
	char local[256], domain[256];
	size_t i, n = c->dkim ? dkim_verify_count(c->dkim) : 0;

	memset(&p, 0, sizeof(p));
	p.discovery = cfg->dmarc_psl_mode ? DMARC_DISCOVERY_PSL :
	    DMARC_DISCOVERY_TREEWALK;
	p.psl = cfg->psl;
	p.dkim_partial_counts = cfg->dmarc_partial_body;
	if (c->nfrom == 0)
		p.from_problem = "no From field";
	else if (c->nfrom > 1)
		p.from_problem = "multiple From fields";
	else {
		enum addr_from_status st = addr_from_parse(c->from_value,
		    c->from_len, smtp_session_smtputf8(c->s), local,
		    sizeof(local), domain, sizeof(domain), NULL);

		if (st != ADDR_FROM_OK)
			p.from_problem = addr_from_status_name(st);
		else {
			c->from_local = strdup(local);
			c->from_domain = strdup(domain);
			if (c->from_local == NULL || c->from_domain == NULL)
				goto fail;
			p.author_domain = c->from_domain;
		}
	}
	inbound_dmarc_spf(c, &p);
	if (n > 0 && (dk = calloc(n, sizeof(*dk))) == NULL)
		goto fail;
	for (i = 0; i < n; i++) {
		const struct dkim_sig_result *r = dkim_verify_result(c->dkim, i);

		dk[i].domain = r->domain;
		dk[i].selector = r->selector;
		dk[i].result = r->result;
		dk[i].body_partial = r->body_partial;
	}
	p.dkim = dk;
	p.ndkim = n;
	c->dmarc_t0 = metrics_now();
	c->dmq = dmarc_query_start(c->gw->base, c->gw->resolver, &p,
	    cfg->dmarc_budget * 1000, inbound_dmarc_done, c);
	free(dk);
	if (c->dmq != NULL) {
		c->gw->dmarc_inflight++;	/* it borrows cfg->psl */
		return;
	}
fail:
	log_error("session=%s id=%s dmarc: out of memory, not evaluated",
	    smtp_session_id(c->s), c->id);
	memset(&go, 0, sizeof(go));
	inbound_commit(c, &go);
}

static void
inbound_recovered_spf_done(const struct spf *spf, void *arg)
{
	struct gw_conn *c = arg;

	c->rspfq = NULL;
	c->rec_spf = spf_result(spf);
	metrics_inc("mxgate_spf_results_total", "identity",
	    *smtp_session_sender(c->s) ? "mailfrom" : "helo",
	    "result", spf_result_name(c->rec_spf));
	metrics_observe("mxgate_check_duration_seconds",
	    metrics_now() - c->spf_t0, "check", "spf");
	log_info("session=%s id=%s hybrid recover: client=%s helo=%s spf=%s "
	    "reason=%s", smtp_session_id(c->s), c->id, c->rec->ip,
	    log_safe(c->rec->helo), spf_result_name(c->rec_spf),
	    log_safe(spf_reason(spf)));
	inbound_dmarc_run(c);
}

/* Hybrid mode recover: the client is a trusted relay; the original
 * client is in the Received field the outermost trusted relay wrote. */
static int
inbound_recover(struct gw_conn *c)
{
	const struct config *cfg = c->gw->cfg;
	const char *why = NULL;
	const char *sender = smtp_session_sender(c->s);
	struct spf_params p;

	if ((c->rec = calloc(1, sizeof(*c->rec))) == NULL)
		return -1;
	if (received_recover((const char *const *)c->received, c->received_len,
	    c->nreceived, &cfg->trusted_relays, c->rec, &why) == -1) {
		c->relay_note = strdup(why ? why : "no original client found");
		log_info("session=%s id=%s hybrid recover failed (%s): not "
		    "enforced", smtp_session_id(c->s), c->id,
		    why ? why : "no original client found");
		return -1;
	}
	c->recovered = 1;
	memset(&p, 0, sizeof(p));
	p.identity = *sender ? SPF_ID_MAILFROM : SPF_ID_HELO;
	p.ip = c->rec->ip;
	p.sender = sender;
	p.helo = c->rec->helo;
	p.receiver = cfg->hostname;
	c->rec_spf = SPF_UNCHECKED;
	c->spf_t0 = metrics_now();
	c->rspfq = spf_query_start(c->gw->base, c->gw->resolver, &p,
	    cfg->spf_budget * 1000, inbound_recovered_spf_done, c);
	if (c->rspfq == NULL)
		c->rec_spf = SPF_TEMPERROR;
	return c->rspfq == NULL ? -1 : 0;
}

/* RFC 5321 6.3: loops are detected by counting Received fields; like
 * Postfix's hopcount_limit, more than MAX_HOPS is refused for good. */
static int
inbound_loop(struct gw_conn *c)
{
	struct gw_outcome go;
	struct verdict v;

	if (c->hops <= MAX_HOPS)
		return 0;
	memset(&v, 0, sizeof(v));
	v.action = VERDICT_REJECT;
	v.code = 554;
	v.enhanced = "5.4.6";
	snprintf(v.text, sizeof(v.text), "Too many hops (%zu Received fields): "
	    "mail loop", c->hops);
	snprintf(v.why, sizeof(v.why), "mail loop: %zu hops", c->hops);
	v.disposition = "reject";
	v.ar_action = "reject";
	memset(&go, 0, sizeof(go));
	go.verdict = &v;
	inbound_commit(c, &go);
	return 1;
}

void
inbound_dmarc_start(struct gw_conn *c)
{
	const struct config *cfg = c->gw->cfg;
	struct gw_outcome go;

	if (c->msg != NULL && inbound_loop(c))
		return;

	/* nothing to judge when the content could not be stored */
	if (!cfg->dmarc_verify || c->gw->resolver == NULL || c->msg == NULL ||
	    c->hdr_err || c->outbound) {
		memset(&go, 0, sizeof(go));
		inbound_commit(c, &go);
		return;
	}
	if (c->via_relay && cfg->hybrid_recover && inbound_recover(c) == 0)
		return;		/* inbound_recovered_spf_done goes on */
	inbound_dmarc_run(c);
}

/* Prefix the first Subject field's value: "Subject: [SPAM] text". */
static int
inbound_prefix_subject(const char *raw, size_t len, const char *prefix,
    struct buf *out)
{
	const char *colon = memchr(raw, ':', len);
	size_t i;

	/* after the colon, also of "Subject :" and a folded name */
	if (colon == NULL)
		return buf_append(out, raw, len);
	i = (size_t)(colon - raw) + 1;
	buf_append(out, raw, i);
	buf_appendf(out, " %s", prefix);
	if (i < len && raw[i] != ' ' && raw[i] != '\t')
		buf_appendc(out, ' ');
	return buf_append(out, raw + i, len - i);
}

int
inbound_dmarc_stamps(struct gw_conn *c, const struct gw_outcome *o,
    struct buf *out)
{
	const struct config *cfg = c->gw->cfg;
	int tag = o->verdict && o->verdict->action == VERDICT_TAG;
	const char *h = c->held_fields.data;
	size_t n = c->held_fields.len, i, first = 0;

	if (tag && cfg->verdict_header[0])
		buf_appendf(out, "%s: quarantine (dmarc=%s header.from=%s "
		    "action=%s)\r\n", cfg->verdict_header,
		    dmarc_result_name(o->dmarc->result),
		    o->from_domain ? o->from_domain : "-", o->verdict->ar_action);
	if (tag && cfg->exchange_scl >= 0)
		buf_appendf(out, "X-MS-Exchange-Organization-SCL: %d\r\n",
		    cfg->exchange_scl);
	if (n == 0)
		return 0;
	if (!tag || !cfg->subject_prefix[0])
		return buf_append(out, h, n);
	/* the first held field ends at the first CRLF not followed by WSP */
	for (i = 0; i + 1 < n; i++)
		if (h[i] == '\r' && h[i + 1] == '\n' &&
		    (i + 2 >= n || (h[i + 2] != ' ' && h[i + 2] != '\t'))) {
			first = i + 2;
			break;
		}
	if (first == 0)
		first = n;
	inbound_prefix_subject(h, first, cfg->subject_prefix, out);
	return buf_append(out, h + first, n - first);
}
