/*
 * The inbound profile's session hooks: an MX for the accepted domains.
 * Relay control at RCPT, the Received header at the start of the
 * content, the durable commit before "250", one summary line per message.
 * SPF at HELO and MAIL, DKIM while the content streams, then DMARC and
 * the verdict at end of data (inbound_dmarc.c), without the SMTP engine
 * knowing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/authres.h"
#include "gateway/gateway.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "smtp/address.h"
#include "smtp/mime.h"
#include "smtp/tls.h"

#define SPF_UNCHECKED ((enum spf_result)-1)

static struct gw_conn *
conn_of(struct smtp_session *s)
{
	return smtp_session_udata(s);
}

static void
inbound_connect(struct smtp_session *s, void *arg)
{
	struct gw_conn *c = conn_of(s);

	c->helo_spf = c->mail_spf = SPF_UNCHECKED;
	log_info("session=%s connect client=%s", smtp_session_id(s), c->ip);
	smtp_session_accept(s);
}

static const char *
spf_name(enum spf_result r)
{
	return r == SPF_UNCHECKED ? "-" : spf_result_name(r);
}

/* mxgate_messages_total: a final reply to a message, or a MAIL or RCPT
 * refused for a reason (outcome accepted, rejected, deferred). */
static void
inbound_count(const char *outcome, const char *reason)
{
	metrics_inc("mxgate_messages_total", "outcome", outcome,
	    "reason", reason);
}

static void
inbound_spf_count(struct gw_conn *c, const char *identity, enum spf_result r)
{
	metrics_inc("mxgate_spf_results_total", "identity", identity,
	    "result", spf_result_name(r));
	metrics_observe("mxgate_check_duration_seconds",
	    metrics_now() - c->spf_t0, "check", "spf");
}

static void
inbound_spf_params(struct gw_conn *c, enum spf_identity id,
    struct spf_params *p)
{
	memset(p, 0, sizeof(*p));
	p->identity = id;
	p->ip = c->ip;
	p->sender = id == SPF_ID_MAILFROM ? smtp_session_sender(c->s) : "";
	p->helo = smtp_session_helo(c->s) ? smtp_session_helo(c->s) : "";
	p->receiver = c->gw->cfg->hostname;
}

/* RFC 7208 2.3: the HELO identity, checked for DMARC and the log; it
 * decides nothing by itself. */
static void
inbound_helo_spf_done(const struct spf *spf, void *arg)
{
	struct gw_conn *c = arg;

	c->spfq = NULL;
	c->helo_spf = spf_result(spf);
	inbound_spf_count(c, "helo", c->helo_spf);
	log_info("session=%s client=%s helo=%s spf_helo=%s reason=%s",
	    smtp_session_id(c->s), c->ip, log_safe(smtp_session_helo(c->s)),
	    spf_result_name(c->helo_spf), log_safe(spf_reason(spf)));
	smtp_session_accept(c->s);
}

static void
inbound_helo(struct smtp_session *s, const char *helo, void *arg)
{
	struct gw_conn *c = conn_of(s);
	const struct config *cfg = c->gw->cfg;
	struct spf_params p;

	c->helo_spf = SPF_UNCHECKED;
	if (!cfg->spf_helo || c->gw->resolver == NULL) {
		smtp_session_accept(s);
		return;
	}
	inbound_spf_params(c, SPF_ID_HELO, &p);
	p.helo = helo;
	c->spf_t0 = metrics_now();
	c->spfq = spf_query_start(c->gw->base, c->gw->resolver, &p,
	    cfg->spf_budget * 1000, inbound_helo_spf_done, c);
	if (c->spfq == NULL)
		smtp_session_accept(s);
}

/* RFC 7208 2.4: the MAIL FROM identity. By default SPF alone refuses
 * nothing (DMARC decides); the [spf] settings may make fail a 550 and
 * temperror a 451 (RFC 7372 codes). */
static void
inbound_mail_spf_done(const struct spf *spf, void *arg)
{
	struct gw_conn *c = arg;
	const struct config *cfg = c->gw->cfg;
	enum spf_result r = spf_result(spf);
	char hdr[2048];

	c->spfq = NULL;
	c->mail_spf = r;
	inbound_spf_count(c, "mailfrom", r);
	free(c->spf_header);
	c->spf_header = NULL;
	if (spf_received_header(spf, cfg->hostname, hdr, sizeof(hdr)) == 0)
		c->spf_header = strdup(hdr);
	log_info("session=%s client=%s from=<%s> spf=%s domain=%s reason=%s",
	    smtp_session_id(c->s), c->ip, log_safe(c->spf_sender),
	    spf_result_name(r), log_safe(spf_domain(spf)),
	    log_safe(spf_reason(spf)));
	if (r == SPF_FAIL && cfg->spf_reject_fail) {
		inbound_count("rejected", "spf");
		smtp_session_reply(c->s, 550, "5.7.23 SPF validation failed: %s",
		    spf_explanation(spf));
		return;
	}
	if (r == SPF_TEMPERROR && cfg->spf_defer_temperror) {
		inbound_count("deferred", "spf");
		smtp_session_reply(c->s, 451, "4.4.3 SPF check failed temporarily, "
		    "try again later");
		return;
	}
	smtp_session_accept(c->s);
}

static void
inbound_mail(struct smtp_session *s, const struct smtp_path_args *a, void *arg)
{
	struct gw_conn *c = conn_of(s);
	const struct config *cfg = c->gw->cfg;
	struct spf_params p;

	c->mail_spf = SPF_UNCHECKED;
	/* a refused MAIL leaves no header for the next one */
	free(c->spf_header);
	c->spf_header = NULL;
	free(c->spf_sender);
	c->spf_sender = strdup(a->path);	/* MAIL is pending: not the session's yet */
	/* an authenticated user sends only as the domains it owns, in the
	 * envelope as in the From header (outbound.c) */
	if (smtp_session_auth_user(s) != NULL && a->domain != NULL &&
	    !gw_auth_may_send_as(c->gw, smtp_session_auth_user(s), a->domain)) {
		log_info("session=%s client=%s user=%s from=<%s> refused: not "
		    "one of the user's domains", smtp_session_id(s), c->ip,
		    log_safe(smtp_session_auth_user(s)), log_safe(a->path));
		inbound_count("rejected", "auth");
		smtp_session_reply(s, 553, "5.7.1 <%s>: Sender address not "
		    "owned by user %s", a->path, smtp_session_auth_user(s));
		return;
	}
	/* RFC 5321 4.2.2 / RFC 3463 4.3.1: no new mail while the spool's
	 * file system is (nearly) full; it resumes when space returns */
	if (spool_space_low(c->gw->spool, cfg->min_free_space)) {
		log_warning("session=%s client=%s from=<%s> refused: spool file "
		    "system below [limits] min_free_space", smtp_session_id(s),
		    c->ip, log_safe(a->path));
		inbound_count("deferred", "storage");
		smtp_session_reply(s, 452, "4.3.1 Insufficient system storage");
		return;
	}
	/* an authenticated user's mail is outbound: nothing to check */
	if (!cfg->spf_mailfrom || c->gw->resolver == NULL ||
	    smtp_session_auth_user(s) != NULL) {
		smtp_session_accept(s);
		return;
	}
	inbound_spf_params(c, SPF_ID_MAILFROM, &p);
	p.sender = a->path;	/* not yet the session's: MAIL is pending */
	c->spf_t0 = metrics_now();
	c->spfq = spf_query_start(c->gw->base, c->gw->resolver, &p,
	    cfg->spf_budget * 1000, inbound_mail_spf_done, c);
	if (c->spfq == NULL)
		smtp_session_accept(s);
}

static void
inbound_rcpt(struct smtp_session *s, const struct smtp_path_args *a, void *arg)
{
	struct gw_conn *c = conn_of(s);
	const struct config *cfg = c->gw->cfg;

	/* RFC 5321 4.5.1: <postmaster> alone is always accepted; it goes
	 * to the first accepted domain's route. */
	if (a->domain == NULL || config_accepts_domain(cfg, a->domain)) {
		smtp_session_accept(s);
		return;
	}
	/* Relay clients and authenticated users send anywhere (outbound.c);
	 * nobody else: never an open relay. */
	if (outbound_may_relay(c)) {
		smtp_session_accept(s);
		return;
	}
	log_info("session=%s client=%s from=<%s> to=<%s> relay refused",
	    smtp_session_id(s), c->ip, log_safe(smtp_session_sender(s)),
	    log_safe(a->path));
	inbound_count("rejected", "relay");
	smtp_session_reply(s, 550, "5.7.1 <%s>: Relay access denied", a->path);
}

/* A HELO name as it may appear in a header: printable, no comment chars. */
static void
inbound_header_safe(const char *in, char *out, size_t n, int utf8)
{
	size_t i;

	for (i = 0; in[i] && i + 1 < n; i++) {
		unsigned char ch = (unsigned char)in[i];

		if (ch >= 0x80 && utf8)
			out[i] = (char)ch;
		else if (ch <= 0x20 || ch >= 0x7f || ch == '(' || ch == ')' ||
		    ch == '\\' || ch == ';' || ch == '"')
			out[i] = '_';
		else
			out[i] = (char)ch;
	}
	out[i] = '\0';
}

/* RFC 5321 4.4 trace field; "with" keywords from RFC 3848 and 6531. */
static int
inbound_received(struct gw_conn *c, struct buf *b)
{
	struct smtp_session *s = c->s;
	SSL *ssl = smtp_session_ssl(s);
	int utf8 = smtp_session_smtputf8(s);
	const char *with;
	char helo[256], date[64], rcpt[300];
	time_t t = time(NULL);
	struct tm tm;
	int v6 = strchr(c->ip, ':') != NULL;

	if (utf8)
		with = ssl ? "UTF8SMTPS" : "UTF8SMTP";
	else if (smtp_session_esmtp(s))
		with = ssl ? "ESMTPS" : "ESMTP";
	else
		with = ssl ? "SMTPS" : "SMTP";
	inbound_header_safe(smtp_session_helo(s) ? smtp_session_helo(s) : "unknown",
	    helo, sizeof(helo), utf8);
	localtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	buf_appendf(b, "Received: from %s ([%s%s])\r\n\tby %s (mxgate) with %s id %s",
	    helo, v6 ? "IPv6:" : "", c->ip, c->gw->cfg->hostname, with, c->id);
	if (ssl)
		buf_appendf(b, "\r\n\t(version=%s cipher=%s)", tls_version(ssl),
		    tls_cipher(ssl));
	if (smtp_session_rcpt_count(s) == 1) {
		inbound_header_safe(smtp_session_rcpt(s, 0), rcpt, sizeof(rcpt), utf8);
		buf_appendf(b, "\r\n\tfor <%s>", rcpt);
	}
	return buf_appendf(b, "; %s\r\n", date);
}

/*
 * The content limits of the message being received: [limits]
 * header_size, header_fields, mime_depth and mime_parts as configured
 * when its content began (a reload meanwhile does not change them), the
 * MIME scanner, and the first limit the content broke. A broken limit
 * is answered at end of data (inbound_limit_refuse); until then the rest
 * of the content is read and dropped.
 */
enum inbound_limit {
	LIMIT_NONE,
	LIMIT_HEADER_SIZE,
	LIMIT_HEADER_FIELDS,
	LIMIT_MIME_DEPTH,
	LIMIT_MIME_PARTS,
};

struct inbound_limits {
	struct mime_scan *mime;
	size_t header_size, header_fields, mime_depth, mime_parts;
	enum inbound_limit broken;
};

static void
inbound_limits_free(struct gw_conn *c)
{
	if (c->limits == NULL)
		return;
	mime_scan_free(c->limits->mime);
	free(c->limits);
	c->limits = NULL;
}

/* The limits of a new message, from the configuration of the moment. */
static struct inbound_limits *
inbound_limits_new(struct gw_conn *c, const struct config *cfg)
{
	struct inbound_limits *l;

	inbound_limits_free(c);
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->header_size = cfg->header_size;
	l->header_fields = cfg->header_fields;
	l->mime_depth = cfg->mime_depth;
	l->mime_parts = cfg->mime_parts;
	if ((l->mime = mime_scan_new(l->mime_depth, l->mime_parts)) == NULL) {
		free(l);
		return NULL;
	}
	c->limits = l;
	return l;
}

static int inbound_hdr_field(const struct msg_field *f, void *arg);
static int inbound_hdr_body(const char *p, size_t n, void *arg);

static void
inbound_data_start(struct smtp_session *s, void *arg)
{
	struct gw_conn *c = conn_of(s);
	struct inbound_limits *lim;
	struct buf b = { 0 };

	if ((c->msg = spool_msg_new(c->gw->spool, c->id)) == NULL) {
		inbound_count("deferred", "storage");
		if (errno == ENOSPC || errno == EDQUOT)
			smtp_session_reply(s, 452, "4.3.1 Insufficient system storage");
		else
			smtp_session_reply(s, 451, "4.3.0 Local error: cannot store "
			    "the message");
		return;
	}
	if (outbound_data_start(c) == -1) {
		spool_msg_abort(c->msg);
		c->msg = NULL;
		inbound_count("deferred", "other");
		smtp_session_reply(s, 451, "4.3.0 Local error: out of memory");
		return;
	}
	/* [hybrid]: decided once per message, read everywhere after */
	c->via_relay = cidr_list_match(&c->gw->cfg->trusted_relays, c->ip);
	/* RFC 7208 9.1: Received-SPF above the Received field it goes with;
	 * not on our own outbound mail, nor for a trusted relay, whose
	 * address says nothing about the sender */
	if (c->spf_header && !c->outbound && !c->via_relay)
		buf_appendf(&b, "%s\r\n", c->spf_header);
	if (inbound_received(c, &b) == -1 ||
	    spool_msg_write(c->msg, b.data, b.len) == -1) {
		buf_free(&b);
		spool_msg_abort(c->msg);
		c->msg = NULL;
		inbound_count("deferred", "storage");
		smtp_session_reply(s, 451, "4.3.0 Local error: cannot store the message");
		return;
	}
	buf_free(&b);
	c->hdr_sep = c->hdr_err = 0;
	/* RFC 5322 2.1: the empty line after the header section is not
	 * part of it (the parser counts it: 2 octets more) */
	if ((lim = inbound_limits_new(c, c->gw->cfg)) != NULL)
		c->hdr = msg_parser_new(lim->header_size + 2, lim->header_fields,
		    inbound_hdr_field, inbound_hdr_body, c);
	if (lim == NULL || c->hdr == NULL) {
		inbound_limits_free(c);
		spool_msg_abort(c->msg);
		c->msg = NULL;
		inbound_count("deferred", "other");
		smtp_session_reply(s, 451, "4.3.0 Local error: out of memory");
		return;
	}
	if (c->gw->cfg->dkim_verify && c->gw->resolver != NULL) {
		struct dkim_verify_params vp;

		memset(&vp, 0, sizeof(vp));
		if (!c->outbound)	/* our own mail: signed, not verified */
			c->dkim = dkim_verify_new(&vp);	/* NULL: no verification */
	}
	smtp_session_accept(s);
}


/* An Authentication-Results field with our authserv-id, also when its
 * name is spelt "Authentication-Results :" or folded away from the colon
 * (a reader may take either for the real thing). */
static int
inbound_authres_forged(const struct gw_conn *c, const struct msg_field *f)
{
	static const char name[] = "Authentication-Results";
	const char *fn, *v;
	size_t fl, vl;
	struct buf b = { 0 };
	int r;

	if (!addr_field_name(f->raw, f->raw_len, &fn, &fl, &v, &vl) ||
	    fl != sizeof(name) - 1 || strncasecmp(fn, name, fl) != 0)
		return 0;
	if (buf_appendf(&b, "%s:", name) == -1 || buf_append(&b, v, vl) == -1) {
		buf_free(&b);
		return 1;	/* cannot tell: not ours to pass on */
	}
	r = authres_is_ours(b.data, b.len, c->gw->cfg->hostname);
	buf_free(&b);
	return r;
}

/*
 * The header section passes a filter on its way to the spool: an
 * Authentication-Results field carrying our own authserv-id was not
 * written by us and is removed (RFC 8601 5). Everything else is written
 * as received; the body streams through untouched.
 */
static int
inbound_hdr_field(const struct msg_field *f, void *arg)
{
	struct gw_conn *c = arg;
	int r;

	if ((r = inbound_dmarc_field(c, f)) != 0) {
		if (r == -1)
			c->hdr_err = 1;
		return r == -1 ? -1 : 0;
	}
	/* outbound mail leaves as signed: nothing is taken out of it */
	if (!c->outbound && inbound_authres_forged(c, f)) {
		log_info("session=%s id=%s removed a forged Authentication-Results "
		    "field claiming authserv-id %s", smtp_session_id(c->s), c->id,
		    c->gw->cfg->hostname);
		return 0;
	}
	if (spool_msg_write(c->msg, f->raw, f->raw_len) == -1) {
		c->hdr_err = 1;
		return -1;
	}
	return 0;
}

static int
inbound_hdr_sep(struct gw_conn *c)
{
	if (c->hdr_sep)
		return 0;
	c->hdr_sep = 1;
	if (spool_msg_write(c->msg, "\r\n", 2) == -1) {
		c->hdr_err = 1;
		return -1;
	}
	return 0;
}

static int
inbound_hdr_body(const char *p, size_t n, void *arg)
{
	struct gw_conn *c = arg;

	if (inbound_hdr_sep(c) == -1 || spool_msg_write(c->msg, p, n) == -1) {
		c->hdr_err = 1;
		return -1;
	}
	return 0;
}

/* The rest of the header section at end of content; 0 or -1. */
static int
inbound_hdr_finish(struct gw_conn *c)
{
	if (c->hdr == NULL)
		return 0;
	if (msg_parser_in_body(c->hdr))
		return inbound_hdr_sep(c);
	return msg_parser_end(c->hdr) == -1 || c->hdr_err ? -1 : 0;
}

static int
inbound_dkim_busy(const struct gw_conn *c)
{
	size_t i;

	for (i = 0; i < sizeof(c->dkq) / sizeof(c->dkq[0]); i++)
		if (c->dkq[i].q != NULL)
			return 1;
	return 0;
}

static void inbound_dkim_ask(struct gw_conn *c);

/* DKIM settled at end of data: one result per signature ("none" for a
 * message without any), and how long the end of data waited for them. */
static void
inbound_dkim_count(struct gw_conn *c)
{
	size_t i, n = dkim_verify_count(c->dkim);

	metrics_observe("mxgate_check_duration_seconds",
	    metrics_now() - c->dkim_t0, "check", "dkim");
	if (n == 0)
		metrics_inc("mxgate_dkim_results_total", "result", "none");
	for (i = 0; i < n; i++)
		metrics_inc("mxgate_dkim_results_total", "result",
		    dkim_result_name(dkim_verify_result(c->dkim, i)->result));
}

static void
inbound_dkim_answer(const struct dns_answer *a, void *arg)
{
	struct gw_dkim_query *dq = arg;
	struct gw_conn *c = dq->c;

	dq->q = NULL;
	dkim_verify_answer(c->dkim, a->name, a);
	inbound_dkim_ask(c);
	if (c->data_ended && !inbound_dkim_busy(c)) {
		c->data_ended = 0;
		inbound_dkim_count(c);
		inbound_dmarc_start(c);
	}
}

/* RFC 6376 6.1.2: key lookups start as soon as each signature header is
 * parsed, while the body still arrives. */
static void
inbound_dkim_ask(struct gw_conn *c)
{
	const char *name;
	size_t i;

	while (c->dkim && (name = dkim_verify_next_query(c->dkim)) != NULL) {
		for (i = 0; i < sizeof(c->dkq) / sizeof(c->dkq[0]); i++)
			if (c->dkq[i].q == NULL)
				break;
		if (i < sizeof(c->dkq) / sizeof(c->dkq[0])) {
			c->dkq[i].c = c;
			c->dkq[i].q = dns_query(c->gw->resolver, name, DNS_T_TXT,
			    inbound_dkim_answer, &c->dkq[i]);
			if (c->dkq[i].q != NULL)
				continue;
		}
		{
			struct dns_answer a;

			memset(&a, 0, sizeof(a));
			a.status = DNS_ERROR;
			a.type = DNS_T_TXT;
			a.name = name;
			dkim_verify_answer(c->dkim, name, &a);
		}
	}
}

/* Per-message content state: the header filter, the content limits, the
 * DKIM verifier and its key lookups in flight. */
static void
inbound_content_clear(struct gw_conn *c)
{
	size_t i;

	if (c->hdr) {
		msg_parser_free(c->hdr);
		c->hdr = NULL;
	}
	inbound_limits_free(c);
	for (i = 0; i < sizeof(c->dkq) / sizeof(c->dkq[0]); i++)
		if (c->dkq[i].q != NULL) {
			dns_cancel(c->dkq[i].q);
			c->dkq[i].q = NULL;
		}
	if (c->dkim)
		dkim_verify_free(c->dkim);
	c->dkim = NULL;
	c->data_ended = 0;
	inbound_dmarc_clear(c);
	outbound_clear(c);
}

/* A limit broken by the content: 0, or -1 for a local error (no memory)
 * in the MIME scanner. */
static int
inbound_mime_error(struct inbound_limits *lim)
{
	switch (mime_scan_error(lim->mime)) {
	case MIME_ERR_DEPTH:
		lim->broken = LIMIT_MIME_DEPTH;
		return 0;
	case MIME_ERR_PARTS:
		lim->broken = LIMIT_MIME_PARTS;
		return 0;
	default:
		return -1;
	}
}

static int
inbound_data_chunk(struct smtp_session *s, const char *p, size_t n, void *arg)
{
	struct gw_conn *c = conn_of(s);
	struct inbound_limits *lim = c->limits;

	if (c->msg == NULL || lim == NULL)
		return -1;
	if (lim->broken)
		return 0;	/* refused at end of data: nothing kept */
	if (c->dkim) {
		dkim_verify_feed(c->dkim, p, n);	/* errors end up in results */
		inbound_dkim_ask(c);
	}
	outbound_feed(c, p, n);
	if (msg_parser_feed(c->hdr, p, n) == -1) {
		/* RFC 5322 2.2 bounds, or a write error */
		if (!c->hdr_err && msg_parser_error(c->hdr) == MSG_ERR_LIMIT) {
			/* the parser stops at the first field past the
			 * count, or at the octet past the size */
			lim->broken = msg_parser_count(c->hdr) >=
			    lim->header_fields ? LIMIT_HEADER_FIELDS :
			    LIMIT_HEADER_SIZE;
			return 0;
		}
		if (!c->hdr_err)
			log_info("session=%s id=%s header section refused: "
			    "parse error", smtp_session_id(s), c->id);
		return -1;
	}
	/* RFC 2046 5.1: nesting and parts, bounded */
	if (mime_scan_feed(lim->mime, p, n) == -1)
		return inbound_mime_error(lim);
	if (msg_parser_in_body(c->hdr) && inbound_hdr_sep(c) == -1)
		return -1;
	return 0;
}

/* The content broke a limit: refused with the limit named (RFC 3463:
 * 5.3.4 too big for the system, 5.6.0 content not accepted), nothing
 * kept. */
static void
inbound_limit_refuse(struct gw_conn *c, const struct inbound_limits *lim)
{
	char text[128];
	int code = 552;

	switch (lim->broken) {
	case LIMIT_HEADER_SIZE:
		snprintf(text, sizeof(text), "5.3.4 Message header section "
		    "exceeds the limit of %zu octets", lim->header_size);
		break;
	case LIMIT_HEADER_FIELDS:
		snprintf(text, sizeof(text), "5.3.4 Too many header fields "
		    "(limit %zu)", lim->header_fields);
		break;
	case LIMIT_MIME_DEPTH:
		code = 554;
		snprintf(text, sizeof(text), "5.6.0 MIME nesting deeper than "
		    "%zu levels", lim->mime_depth);
		break;
	default:
		code = 554;
		snprintf(text, sizeof(text), "5.6.0 More than %zu MIME parts",
		    lim->mime_parts);
		break;
	}
	log_info("session=%s id=%s client=%s from=<%s> message refused: "
	    "limit=%s: %s", smtp_session_id(c->s), c->id, c->ip,
	    log_safe(smtp_session_sender(c->s)),
	    lim->broken == LIMIT_HEADER_SIZE ? "header_size" :
	    lim->broken == LIMIT_HEADER_FIELDS ? "header_fields" :
	    lim->broken == LIMIT_MIME_DEPTH ? "mime_depth" : "mime_parts",
	    text + 6);
	spool_msg_abort(c->msg);
	c->msg = NULL;
	inbound_count("rejected", "content");
	smtp_session_reply(c->s, code, "%s", text);
}

/* RFC 8601: what we found, stamped above everything else we added. */
static int
inbound_authres(struct gw_conn *c, const struct gw_outcome *o,
    struct buf *out, struct buf *dk)
{
	struct authres ar;
	const char *sender = c->s ? smtp_session_sender(c->s) : "";
	size_t i;

	if ((c->dkim == NULL && c->mail_spf == SPF_UNCHECKED && o->dmarc == NULL) ||
	    c->outbound)
		return 0;
	authres_begin(&ar, c->gw->cfg->hostname);
	if (o->recovered) {
		char why[128];

		/* hybrid recover: SPF of the original client (RFC 7208 2.4) */
		snprintf(why, sizeof(why), "original client %s, from Received",
		    o->recovered_ip);
		if (*sender == '\0')
			authres_spf(&ar, o->recovered_spf, why, 1, c->rec->helo);
		else
			authres_spf(&ar, o->recovered_spf, why, 0, sender);
	} else if (c->mail_spf != SPF_UNCHECKED) {
		/* a trusted relay's address is not the sender's: say so, so
		 * that nobody downstream takes this result for the sender's */
		const char *why = c->via_relay ?
		    "client is a trusted relay, not the sender" : NULL;

		/* RFC 7208 2.4: the null sender was checked as the HELO */
		if (*sender == '\0')
			authres_spf(&ar, c->mail_spf, why, 1,
			    smtp_session_helo(c->s) ? smtp_session_helo(c->s) : "");
		else
			authres_spf(&ar, c->mail_spf, why, 0, sender);
	}
	if (c->dkim) {
		if (dkim_verify_count(c->dkim) == 0)
			authres_dkim_none(&ar);
		for (i = 0; i < dkim_verify_count(c->dkim); i++) {
			const struct dkim_sig_result *r = dkim_verify_result(c->dkim, i);

			authres_dkim(&ar, r);
			buf_appendf(dk, "%s%s:%s", i ? "," : "",
			    dkim_result_name(r->result), r->domain ? r->domain : "");
		}
	}
	if (o->dmarc)
		authres_dmarc(&ar, o->dmarc->result, o->dmarc_comment,
		    o->verdict ? o->verdict->ar_action : NULL, o->from_domain);
	authres_end(&ar, out);
	authres_free(&ar);
	return 0;
}

/* The summary line of a message, less its status (which may come later,
 * with the commit's completion). 0 or -1. */
static int
inbound_summary(struct gw_conn *c, const struct envelope *env,
    const char *dkim, const struct gw_outcome *o, struct buf *out)
{
	struct smtp_session *s = c->s;
	struct buf to = { 0 }, dm = { 0 };
	char tls[160] = "";
	size_t i;
	int r;

	for (i = 0; i < env->nrcpt; i++)
		buf_appendf(&to, "%s<%s>", i ? "," : "", env->rcpts[i].addr);
	if (smtp_session_ssl(s))
		snprintf(tls, sizeof(tls), "%s", tls_version(smtp_session_ssl(s)));
	if (o && o->dmarc) {
		const struct dmarc_outcome *d = o->dmarc;

		buf_appendf(&dm, " dmarc=%s header_from=%s policy=%s",
		    dmarc_result_name(d->result),
		    log_safe(o->from_domain ? o->from_domain : "-"),
		    d->record ? dmarc_policy_name(d->requested) : "-");
		if (o->verdict)
			buf_appendf(&dm, " disposition=%s action=%s override=%s "
			    "verdict=%s", o->verdict->disposition,
			    o->verdict->ar_action,
			    o->verdict->override ? o->verdict->override : "-",
			    log_safe(o->verdict->why));
		if (o->recovered)
			buf_appendf(&dm, " hybrid=recovered:%s spf_original=%s",
			    o->recovered_ip, spf_name(o->recovered_spf));
		else if (c->via_relay)
			buf_appends(&dm, " hybrid=skip");
		buf_appendf(&dm, " dmarc_reason=%s", log_safe(d->reason));
	} else {
		buf_appends(&dm, " dmarc=-");
		if (o && o->verdict && o->verdict->why[0])
			buf_appendf(&dm, " verdict=%s", log_safe(o->verdict->why));
	}
	if (c->outbound)
		buf_appendf(&dm, " direction=outbound auth=%s dkim_sign=%s",
		    log_safe(smtp_session_auth_user(s) ? smtp_session_auth_user(s) : "-"),
		    log_safe(c->sign_note ? c->sign_note : "-"));
	r = buf_appendf(out, "session=%s id=%s client=%s helo=%s from=<%s> to=%s "
	    "nrcpt=%zu size=%zu proto=%s tls=%s spf=%s spf_helo=%s dkim=%s%s",
	    smtp_session_id(s), env->id[0] ? env->id : c->id, c->ip,
	    log_safe(smtp_session_helo(s)), log_safe(env->sender ? env->sender : ""),
	    log_safe(to.data ? to.data : ""), env->nrcpt, env->size,
	    smtp_session_bdat(s) ? "BDAT" : "DATA", tls[0] ? tls : "none",
	    spf_name(c->mail_spf), spf_name(c->helo_spf), log_safe(dkim),
	    dm.data ? dm.data : "");
	buf_free(&to);
	buf_free(&dm);
	return r;
}

static void
inbound_log_summary(struct gw_conn *c, const struct envelope *env,
    const char *dkim, const struct gw_outcome *o, const char *status)
{
	struct buf b = { 0 };

	inbound_summary(c, env, dkim, o, &b);
	log_info("%s status=%s", b.data ? b.data : "", status);
	buf_free(&b);
}

/*
 * A commit in flight (spool_msg_commit_async: the disk work runs on the
 * commit worker, shared with concurrent sessions). The session may end
 * before it completes: inbound_close then clears c, and the message,
 * committed all the same, is queued without a reply; the client, which
 * saw no 250, may send it again: a duplicate, never a loss.
 */
struct inbound_pending {
	struct gateway *gw;
	struct gw_conn *c;	/* NULL once the session closed */
	int held;
	char *summary;		/* the summary line, less its status */
};

static void
inbound_committed(int rc, int err, const char *id, void *arg)
{
	struct inbound_pending *p = arg;
	struct gw_conn *c = p->c;

	if (c != NULL)
		c->pending = NULL;
	/* shutting down: no new attempt; the next start's recovery has it */
	if (rc == 0 && !p->held && !p->gw->stopping)
		scheduler_add(p->gw->sched, id, 0);
	log_info("%s status=%s", p->summary, rc == -1 ? "tempfail" :
	    p->held ? "held" : "queued");
	inbound_count(rc == -1 ? "deferred" : "accepted", rc == -1 ? "storage" :
	    p->held ? "held" : "ok");
	if (c == NULL) {
		if (rc == 0)
			log_info("id=%s committed after its session ended: "
			    "queued, not acknowledged", id);
	} else if (rc == 0)
		smtp_session_reply(c->s, 250, "2.0.0 Ok: queued as %s", id);
	else if (err == ENOSPC || err == EDQUOT)
		smtp_session_reply(c->s, 452, "4.3.1 Insufficient system storage");
	else
		smtp_session_reply(c->s, 451, "4.3.0 Local error: message not "
		    "stored, try again later");
	free(p->summary);
	free(p);
}

static void
inbound_data_end(struct smtp_session *s, void *arg)
{
	struct gw_conn *c = conn_of(s);
	struct inbound_limits *lim = c->limits;

	/* a last delimiter line without line end (BDAT) still counts */
	if (lim != NULL && !lim->broken && mime_scan_end(lim->mime) == -1)
		(void)inbound_mime_error(lim);
	if (lim != NULL && lim->broken) {
		inbound_limit_refuse(c, lim);
		return;
	}
	/* The last header field of a message without a body is complete
	 * only now: DMARC must see it (a second From there would be a
	 * hidden second author). */
	if (inbound_hdr_finish(c) == -1)
		c->hdr_err = 1;
	if (c->dkim) {
		c->dkim_t0 = metrics_now();
		dkim_verify_end(c->dkim);
		inbound_dkim_ask(c);
		if (inbound_dkim_busy(c)) {
			c->data_ended = 1;	/* inbound_dkim_answer goes on */
			return;
		}
		inbound_dkim_count(c);
	}
	inbound_dmarc_start(c);
}

/* A reject or defer verdict: the content is dropped, nothing was ours.
 * reason: what decided, for mxgate_messages_total. */
static void
inbound_refuse(struct gw_conn *c, struct envelope *env, const char *dkim,
    const struct gw_outcome *o, const char *reason)
{
	const struct verdict *v = o->verdict;
	size_t i;

	env->size = spool_msg_size(c->msg);
	spool_msg_abort(c->msg);
	c->msg = NULL;
	for (i = 0; i < smtp_session_rcpt_count(c->s); i++)
		envelope_add_rcpt(env, smtp_session_rcpt(c->s, i));
	envelope_set(&env->sender, smtp_session_sender(c->s));
	inbound_log_summary(c, env, dkim, o, v->action == VERDICT_REJECT ?
	    "rejected" : "deferred");
	inbound_count(v->action == VERDICT_REJECT ? "rejected" : "deferred",
	    reason);
	smtp_session_reply(c->s, v->code, "%s %s", v->enhanced, v->text);
}

void
inbound_commit(struct gw_conn *c, const struct gw_outcome *o)
{
	struct smtp_session *s = c->s;
	struct envelope env;
	struct spool_msg *m = c->msg;
	struct buf dk = { 0 }, pre = { 0 }, sum = { 0 };
	struct inbound_pending *pend;
	const struct verdict *v = o->verdict;
	struct gw_outcome oo;
	struct verdict ov;
	int held = v && v->action == VERDICT_HOLD, err = 0;
	size_t i;

	memset(&env, 0, sizeof(env));
	if (m == NULL || inbound_hdr_finish(c) == -1) {
		c->msg = NULL;
		goto fail;
	}
	/* outbound: signed after our own changes, before the commit */
	if (c->outbound && outbound_finish(c, &pre, &ov) == -1) {
		oo = *o;
		oo.verdict = v = &ov;
		o = &oo;
	}
	if (inbound_authres(c, o, &pre, &dk) == -1 ||
	    inbound_dmarc_stamps(c, o, &pre) == -1)
		goto fail_m;
	if (v && (v->action == VERDICT_REJECT || v->action == VERDICT_DEFER)) {
		/* from DMARC, the sending user's From (outbound.c), or a
		 * mail loop (inbound_dmarc.c) */
		inbound_refuse(c, &env, dk.data ? dk.data : "-", o,
		    v == &ov ? "auth" : o->dmarc ? "dmarc" : "loop");
		goto done;
	}
	c->msg = NULL;
	env.arrival = time(NULL);
	if (envelope_set(&env.session, smtp_session_id(s)) == -1 ||
	    envelope_set(&env.client_ip, c->ip) == -1 ||
	    envelope_set(&env.helo, smtp_session_helo(s)) == -1 ||
	    envelope_set(&env.sender, smtp_session_sender(s)) == -1 ||
	    (held && envelope_set(&env.hold_reason, v->why) == -1))
		goto fail;
	env.prepend = pre.len ? buf_steal(&pre) : NULL;
	env.body_8bit = smtp_session_body_8bit(s);
	env.smtputf8 = smtp_session_smtputf8(s);
	/* RFC 3461: kept for the reports and passed on downstream */
	env.dsn_ret = smtp_session_dsn_ret(s) == SMTP_RET_FULL ? 'F' :
	    smtp_session_dsn_ret(s) == SMTP_RET_HDRS ? 'H' : 0;
	if (smtp_session_dsn_envid(s) &&
	    envelope_set(&env.dsn_envid, smtp_session_dsn_envid(s)) == -1)
		goto fail;
	for (i = 0; i < smtp_session_rcpt_count(s); i++) {
		if (envelope_add_rcpt(&env, smtp_session_rcpt(s, i)) == -1)
			goto fail;
		env.rcpts[i].notify = smtp_session_rcpt_notify(s, i);
		if (smtp_session_rcpt_orcpt(s, i) && envelope_set(
		    &env.rcpts[i].orcpt, smtp_session_rcpt_orcpt(s, i)) == -1)
			goto fail;
	}
	/* RFC 5321 6.1: from "250" on the message is ours; it is on disk.
	 * A held message is as durable, in hold/ (mxgate quarantine). The
	 * reply (and scheduler_add) come with the commit's completion. */
	env.size = spool_msg_size(m);
	if ((pend = calloc(1, sizeof(*pend))) == NULL ||
	    inbound_summary(c, &env, dk.data ? dk.data : "-", o, &sum) == -1) {
		free(pend);
		goto fail;
	}
	pend->gw = c->gw;
	pend->c = c;
	pend->held = held;
	pend->summary = buf_steal(&sum);
	c->pending = pend;
	if (spool_msg_commit_async(m, &env, held, inbound_committed, pend) == -1) {
		err = errno;
		c->pending = NULL;
		free(pend->summary);
		free(pend);
		m = NULL;
		goto fail;
	}
	goto done;
fail_m:
	c->msg = NULL;
fail:
	if (m)
		spool_msg_abort(m);
	inbound_log_summary(c, &env, "-", o, "tempfail");
	inbound_count("deferred", "storage");
	if (err == ENOSPC || err == EDQUOT)
		smtp_session_reply(s, 452, "4.3.1 Insufficient system storage");
	else
		smtp_session_reply(s, 451, "4.3.0 Local error: message not stored, "
		    "try again later");
done:
	buf_free(&sum);
	envelope_free(&env);
	buf_free(&dk);
	buf_free(&pre);
}

static void
inbound_txn_end(struct smtp_session *s, void *arg)
{
	struct gw_conn *c = conn_of(s);

	if (c->msg) {
		spool_msg_abort(c->msg);
		c->msg = NULL;
	}
	free(c->spf_header);
	c->spf_header = NULL;
	c->mail_spf = SPF_UNCHECKED;
	inbound_content_clear(c);
}

static void
inbound_close(struct smtp_session *s, void *arg)
{
	struct gw_conn *c = conn_of(s);
	struct gateway *gw = c->gw;

	log_info("session=%s disconnect client=%s", smtp_session_id(s), c->ip);
	if (c->pending)		/* the commit completes without us */
		c->pending->c = NULL;
	spf_query_cancel(c->spfq);	/* a decision may still be pending */
	inbound_content_clear(c);
	free(c->spf_header);
	free(c->spf_sender);
	if (c->prev)
		c->prev->next = c->next;
	else
		gw->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	gw->nconns--;
	listener_conn_closed(gw, c);
	free(c);
}

const struct smtp_hooks inbound_hooks = {
	.on_connect = inbound_connect,
	.on_helo = inbound_helo,
	.on_mail = inbound_mail,
	.on_rcpt = inbound_rcpt,
	.on_data_start = inbound_data_start,
	.on_data_chunk = inbound_data_chunk,
	.on_data_end = inbound_data_end,
	.on_auth = gw_auth_hook,
	.on_txn_end = inbound_txn_end,
	.on_close = inbound_close,
};
