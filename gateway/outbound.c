/*
 * Outbound mail through the inbound hooks: a client that may relay (an
 * [outbound] relay_clients address, such as Exchange's send connector,
 * or a session authenticated with SMTP AUTH) sends to any domain. Its
 * message is outbound when the client is authenticated, or when a relay
 * client sends to at least one domain we do not accept (its mail for
 * accepted domains alone is inbound mail: hybrid set-ups forward inbound
 * mail from the same host). Outbound mail is not checked for DKIM or
 * DMARC; it is DKIM-signed for its From domain ([dkim sign DOMAIN])
 * while it streams, the signatures prepended before the commit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway/gateway.h"
#include "lib/log.h"
#include "smtp/address.h"

int
outbound_may_relay(const struct gw_conn *c)
{
	return smtp_session_auth_user(c->s) != NULL ||
	    cidr_list_match(&c->gw->cfg->relay_clients, c->ip);
}

/* At the start of the content: the recipients are known. */
int
outbound_data_start(struct gw_conn *c)
{
	const struct config *cfg = c->gw->cfg;
	size_t i, n = smtp_session_rcpt_count(c->s);

	c->outbound = smtp_session_auth_user(c->s) != NULL;
	if (!c->outbound && cidr_list_match(&cfg->relay_clients, c->ip))
		for (i = 0; i < n && !c->outbound; i++) {
			const char *r = smtp_session_rcpt(c->s, i);
			const char *at = strrchr(r, '@');

			/* <postmaster> alone is ours (RFC 5321 4.5.1) */
			if (at != NULL && !config_accepts_domain(cfg, at + 1))
				c->outbound = 1;
		}
	/* RFC 5321 2.3.8: bare CR and LF are refused from the Internet (the
	 * smuggling family); from our own submitters they become CRLF, so the
	 * spool, the DKIM signature and the next hop all see CRLF only. */
	smtp_session_set_normalise_newlines(c->s, smtp_session_auth_user(c->s)
	    != NULL || cidr_list_match(&cfg->relay_clients, c->ip));
	if (!c->outbound || cfg->nsigners == 0)
		return 0;
	if ((c->signer = dkim_signer_new()) == NULL)
		return -1;
	return 0;
}

void
outbound_feed(struct gw_conn *c, const char *p, size_t n)
{
	if (c->signer)
		dkim_signer_feed(c->signer, p, n);	/* errors show at the end */
}

/*
 * End of content: the From domain decides the keys (RFC 6376 5: the
 * signing domain is the author's). 0 with the signature fields appended
 * to out and c->sign_note set for the log; -1 with a reply in v_r when
 * the message must be refused (an authenticated user sending as a domain
 * it may not use).
 */
size_t
outbound_sign_params(const struct config_signer *sg, struct dkim_sign_params *p,
    size_t max, int oversign)
{
	size_t i, n = sg->nkeys < max ? sg->nkeys : max;

	memset(p, 0, n * sizeof(*p));
	for (i = 0; i < n; i++) {
		p[i].domain = sg->domain;
		p[i].selector = sg->keys[i].selector;
		p[i].key = sg->keys[i].key;
		p[i].headers = sg->headers;
		p[i].oversign = oversign;
	}
	return n;
}

int
outbound_finish(struct gw_conn *c, struct buf *out, struct verdict *v_r)
{
	const struct config *cfg = c->gw->cfg;
	const char *user = smtp_session_auth_user(c->s);
	const struct config_signer *sg;
	struct dkim_sign_params p[8];
	char local[256], domain[256], err[256];
	struct buf note = { 0 };
	enum addr_from_status st = ADDR_FROM_EMPTY;
	size_t i;

	free(c->sign_note);
	c->sign_note = NULL;
	if (c->nfrom == 1)
		st = addr_from_parse(c->from_value, c->from_len,
		    smtp_session_smtputf8(c->s), local, sizeof(local), domain,
		    sizeof(domain), NULL);
	if (user != NULL && (st != ADDR_FROM_OK ||
	    !gw_auth_may_send_as(c->gw, user, domain))) {
		memset(v_r, 0, sizeof(*v_r));
		v_r->action = VERDICT_REJECT;
		v_r->code = 550;
		v_r->enhanced = "5.7.1";
		if (st != ADDR_FROM_OK)
			snprintf(v_r->text, sizeof(v_r->text), "The From header "
			    "must hold exactly one address (%s)",
			    c->nfrom == 1 ? addr_from_status_name(st) :
			    c->nfrom ? "multiple From fields" : "no From field");
		else
			snprintf(v_r->text, sizeof(v_r->text), "User %s may "
			    "not send as %s", user, domain);
		snprintf(v_r->why, sizeof(v_r->why), "from domain not allowed "
		    "for user %s", user);
		v_r->disposition = "reject";
		v_r->ar_action = "reject";
		return -1;
	}
	if (st != ADDR_FROM_OK)
		buf_appendf(&note, "none:no-single-from-address");
	else if ((sg = config_signer_for(cfg, domain)) == NULL)
		buf_appendf(&note, "none:no-key-for-%s", domain);
	else if (c->signer == NULL)
		buf_appendf(&note, "none:signer-unavailable");
	else {
		size_t n = outbound_sign_params(sg, p, 8, 1);

		if (dkim_signer_end(c->signer, p, n, out, err, sizeof(err)) == -1)
			buf_appendf(&note, "none:error:%s", err);
		else
			for (i = 0; i < n; i++)
				buf_appendf(&note, "%s%s:%s:%s", i ? "," : "",
				    sg->domain, p[i].selector,
				    dkim_key_algorithm(p[i].key));
	}
	c->sign_note = buf_steal(&note);
	if (c->sign_note && strncmp(c->sign_note, "none:error:", 11) == 0)
		log_error("session=%s id=%s dkim signing failed: %s; relayed "
		    "unsigned", smtp_session_id(c->s), c->id, c->sign_note + 11);
	return 0;
}

void
outbound_clear(struct gw_conn *c)
{
	dkim_signer_free(c->signer);
	c->signer = NULL;
	free(c->sign_note);
	c->sign_note = NULL;
	c->outbound = 0;
}
