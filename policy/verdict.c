/*
 * The end-of-data decision. Order matters and follows what an
 * administrator expects: a message we cannot judge yet is deferred, a
 * failure is weighed against hybrid handling and local overrides before
 * the sender domain's policy is applied.
 */
#include "policy/verdict.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

const char *
verdict_action_name(enum verdict_action a)
{
	switch (a) {
	case VERDICT_DELIVER:	return "deliver";
	case VERDICT_TAG:	return "tag";
	case VERDICT_HOLD:	return "hold";
	case VERDICT_REJECT:	return "reject";
	case VERDICT_DEFER:	return "defer";
	}
	return "?";
}

static void
verdict_set(struct verdict *v, enum verdict_action a, const char *dis,
    const char *ar_action)
{
	v->action = a;
	v->disposition = dis;
	v->ar_action = ar_action;
}

/* Allow list by header From or MAIL FROM: a whole address, or a domain
 * that matches the address's domain exactly. */
static int
verdict_sender_allowed(const struct verdict_config *cfg,
    const struct verdict_input *in)
{
	char from[512];
	const char *sd = in->sender ? strrchr(in->sender, '@') : NULL;
	size_t i;

	from[0] = '\0';
	if (in->from_local && in->from_domain)
		snprintf(from, sizeof(from), "%s@%s", in->from_local,
		    in->from_domain);
	for (i = 0; i < cfg->nallow_senders; i++) {
		const char *a = cfg->allow_senders[i];

		if (strchr(a, '@')) {
			if ((from[0] && strcasecmp(a, from) == 0) ||
			    (in->sender && strcasecmp(a, in->sender) == 0))
				return 1;
		} else if ((in->from_domain && strcasecmp(a, in->from_domain) == 0) ||
		    (sd && strcasecmp(a, sd + 1) == 0))
			return 1;
	}
	return 0;
}

static int
verdict_ip_in(const struct cidr_list *l, const char *ip)
{
	return l != NULL && ip != NULL && cidr_list_match(l, ip);
}

/* RFC 7489 7.2 PolicyOverrideType for a local rule, or NULL. */
static const char *
verdict_override(const struct verdict_config *cfg,
    const struct verdict_input *in)
{
	if (verdict_sender_allowed(cfg, in))
		return "local_policy";
	if (verdict_ip_in(cfg->allow_ips, in->client_ip))
		return "local_policy";
	if (verdict_ip_in(cfg->trusted_forwarders, in->client_ip))
		return "trusted_forwarder";
	if (verdict_ip_in(cfg->mailing_lists, in->client_ip))
		return "mailing_list";
	return NULL;
}

static void
verdict_defer(struct verdict *v, const char *domain, const char *why)
{
	verdict_set(v, VERDICT_DEFER, "none", "defer");
	v->code = 451;
	v->enhanced = "4.7.0";
	snprintf(v->text, sizeof(v->text), "DMARC check for %s failed "
	    "temporarily (%s), try again later", domain, why);
	snprintf(v->why, sizeof(v->why), "dns failure could change the "
	    "outcome: %s", why);
}

/* Apply a quarantine, or a reject (possibly overridden to quarantine). */
static void
verdict_enforce(const struct verdict_config *cfg, const struct dmarc_outcome *o,
    struct verdict *v)
{
	const char *p = dmarc_policy_name(o->requested);

	if (o->effective == DMARC_P_REJECT && !cfg->reject_override) {
		verdict_set(v, VERDICT_REJECT, "reject", "reject");
		v->code = 550;
		v->enhanced = "5.7.1";
		snprintf(v->text, sizeof(v->text), "Message rejected: it fails "
		    "the DMARC policy of %s (p=%s): %s", o->author_domain, p,
		    o->reason);
		snprintf(v->why, sizeof(v->why), "dmarc policy reject");
		return;
	}
	verdict_set(v, cfg->quarantine_hold ? VERDICT_HOLD : VERDICT_TAG,
	    "quarantine", o->effective == DMARC_P_REJECT ? "oreject" : "quarantine");
	snprintf(v->why, sizeof(v->why), "dmarc policy %s%s",
	    dmarc_policy_name(o->effective),
	    o->effective == DMARC_P_REJECT ? " overridden to quarantine" : "");
}

static const char *
verdict_policy_or(enum dmarc_policy p, enum dmarc_policy dflt)
{
	return dmarc_policy_name(p == DMARC_P_UNSET ? dflt : p);
}

int
verdict_comment(const struct dmarc_outcome *o, const struct verdict *v,
    const char *note, struct buf *out)
{
	const struct dmarc_record *r = o->record;

	if (r == NULL)
		buf_appends(out, o->reason);
	else {
		/* RFC 9989 4.7: sp= defaults to p=, p= to none */
		enum dmarc_policy p = r->p == DMARC_P_UNSET ? DMARC_P_NONE : r->p;

		buf_appendf(out, "p=%s sp=%s dis=%s", dmarc_policy_name(p),
		    verdict_policy_or(r->sp, p), v->disposition);
		if (r->testing)
			buf_appends(out, " testing");
	}
	if (v->override)
		buf_appendf(out, " override=%s", v->override);
	if (note && *note)
		buf_appendf(out, " %s", note);
	if (r && o->result != DMARC_PASS && *o->reason)
		buf_appendf(out, "; %s", o->reason);
	return out->data == NULL ? -1 : 0;
}

void
verdict_decide(const struct verdict_config *cfg, const struct verdict_input *in,
    struct verdict *v)
{
	const struct dmarc_outcome *o = in->dmarc;
	int skip = in->path == VERDICT_PATH_RELAY_SKIP ||
	    (!cfg->primary_mx && in->path != VERDICT_PATH_RELAY_RECOVERED);

	memset(v, 0, sizeof(*v));
	verdict_set(v, VERDICT_DELIVER, "none", "none");
	if (o == NULL) {
		snprintf(v->why, sizeof(v->why), "dmarc not evaluated");
		return;
	}
	snprintf(v->why, sizeof(v->why), "dmarc %s", dmarc_result_name(o->result));
	switch (o->result) {
	case DMARC_NONE:
	case DMARC_PASS:
		return;
	case DMARC_TEMPERROR:
		/* The policy could not be learnt: it may be reject. */
		if (!cfg->enforce || skip || !cfg->temperror_defer)
			return;
		verdict_defer(v, o->author_domain, o->reason);
		return;
	case DMARC_PERMERROR:
		/* RFC 9989 4.4 / RFC 7489 6.6.1: no single author domain;
		 * the tricks that hide the address a reader sees. */
		if (!cfg->bad_from_reject || !cfg->enforce)
			return;
		if (skip) {
			v->ar_action = "skip";
			return;
		}
		if ((v->override = verdict_override(cfg, in)) != NULL)
			return;
		verdict_set(v, VERDICT_REJECT, "reject", "reject");
		v->code = 550;
		v->enhanced = "5.7.1";
		snprintf(v->text, sizeof(v->text), "Message rejected: DMARC "
		    "needs exactly one author address in From: %s", o->reason);
		snprintf(v->why, sizeof(v->why), "bad From: %s", o->reason);
		return;
	case DMARC_FAIL:
		break;
	}
	if (o->effective == DMARC_P_NONE || o->effective == DMARC_P_UNSET) {
		/* p=none, or t=y lowered a quarantine to none */
		return;
	}
	if (!cfg->enforce) {
		v->override = "local_policy";
		snprintf(v->why, sizeof(v->why), "dmarc fail, enforcement off");
		return;
	}
	if (skip) {
		v->ar_action = "skip";
		snprintf(v->why, sizeof(v->why), "dmarc fail via a trusted relay, "
		    "not enforced (hybrid skip)");
		return;
	}
	if ((v->override = verdict_override(cfg, in)) != NULL) {
		snprintf(v->why, sizeof(v->why), "dmarc fail, allowed: %s",
		    v->override);
		return;
	}
	/* A DNS failure on an identifier that might have aligned: the
	 * failure is not certain, so neither is the disposition. Deferred,
	 * or with temperror = accept delivered: a DNS failure never turns
	 * into a rejection. */
	if (o->uncertain) {
		if (cfg->temperror_defer)
			verdict_defer(v, o->author_domain, "SPF or DKIM temperror");
		else
			snprintf(v->why, sizeof(v->why), "dmarc fail uncertain "
			    "(SPF or DKIM temperror), accepted");
		return;
	}
	verdict_enforce(cfg, o, v);
}
