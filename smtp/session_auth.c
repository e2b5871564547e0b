/*
 * smtp/session_auth: the AUTH command (RFC 4954) with the PLAIN (RFC 4616)
 * and LOGIN mechanisms, offered only under TLS (RFC 4954 4, RFC 8314).
 * The credentials go to the on_auth hook, which decides like any other
 * hook; the password is wiped as soon as the hook has returned.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"
#include "smtp/sasl.h"
#include "smtp/session_int.h"

static void
auth_wipe(struct smtp_session *s)
{
	explicit_bzero(s->auth_pass, sizeof(s->auth_pass));
	explicit_bzero(s->auth_name, sizeof(s->auth_name));
	s->auth_step = AUTH_IDLE;
}

/* A refusal of the exchange itself (not of the credentials). */
static void
auth_refuse(struct smtp_session *s, enum sasl_result r)
{
	auth_wipe(s);
	log_info("session=%s client=%s auth mech=%s result=malformed (%s)",
	    s->id, s->client_ip, s->auth_mech, sasl_result_str(r));
	switch (r) {
	case SASL_BAD_BASE64:
		smtp_session_reply_now(s, 501, "5.5.2 Cannot decode response "
		    "(RFC 4954 4)");
		break;
	case SASL_AUTHZID:
		smtp_session_reply_now(s, 535, "5.7.8 Authorization identity "
		    "must be empty or the user name");
		break;
	case SASL_TOO_LONG:
		smtp_session_reply_now(s, 501, "5.5.4 User name or password "
		    "longer than %d octets", SASL_FIELD_MAX);
		break;
	default:
		smtp_session_reply_now(s, 501, "5.5.4 Malformed authentication "
		    "response (%s)", sasl_result_str(r));
		break;
	}
}

/* Credentials complete: let the hook decide. */
static void
auth_decide(struct smtp_session *s)
{
	s->auth_step = AUTH_IDLE;
	smtp_session_wait(s, P_AUTH);
	/* RFC 4954 14: keep the password no longer than needed. The user
	 * name stays until the decision (smtp_session_auth_ok copies it). */
	explicit_bzero(s->auth_pass, sizeof(s->auth_pass));
}

void
smtp_session_cmd_auth(struct smtp_session *s, char *arg)
{
	char *ir, *sp;
	enum sasl_result r;

	if (!s->cfg->auth || s->hooks->on_auth == NULL) {
		smtp_session_reply_now(s, 503, "5.5.1 Error: authentication not enabled");
		return;
	}
	if (!s->tls) {
		/* RFC 4954 4 and 6: no credentials in clear text. */
		smtp_session_reply_now(s, 538, "5.7.11 Encryption required for "
		    "requested authentication mechanism");
		return;
	}
	if (!s->esmtp || s->state == STATE_GREETED) {
		smtp_session_reply_now(s, 503, "5.5.1 Error: send EHLO first");
		return;
	}
	if (s->auth_user != NULL) {
		/* RFC 4954 4: one successful AUTH per session */
		smtp_session_reply_now(s, 503, "5.5.1 Error: already authenticated");
		return;
	}
	if (s->state != STATE_READY) {
		/* RFC 4954 4: not during a mail transaction */
		smtp_session_reply_now(s, 503, "5.5.1 Error: AUTH not permitted "
		    "during a mail transaction");
		return;
	}
	if (*arg == '\0') {
		smtp_session_reply_now(s, 501, "5.5.4 Syntax: AUTH mechanism "
		    "[initial-response]");
		return;
	}
	ir = NULL;
	if ((sp = strpbrk(arg, " \t")) != NULL) {
		*sp = '\0';
		ir = sp + 1;
		while (*ir == ' ' || *ir == '\t')
			ir++;
		if (*ir == '\0' || strpbrk(ir, " \t") != NULL) {
			smtp_session_reply_now(s, 501, "5.5.4 Syntax: AUTH mechanism "
			    "[initial-response]");
			return;
		}
	}
	if (strcasecmp(arg, "PLAIN") == 0) {
		s->auth_mech = "PLAIN";
		if (ir == NULL) {
			/* RFC 4954 4: an empty challenge */
			s->auth_step = AUTH_PLAIN;
			smtp_session_write_reply(s, 334, "");
			return;
		}
		if ((r = sasl_plain_decode(ir, strlen(ir), s->auth_name,
		    s->auth_pass)) != SASL_OK) {
			auth_refuse(s, r);
			return;
		}
		auth_decide(s);
	} else if (strcasecmp(arg, "LOGIN") == 0) {
		s->auth_mech = "LOGIN";
		if (ir == NULL) {
			s->auth_step = AUTH_LOGIN_USER;
			smtp_session_write_reply(s, 334, "VXNlcm5hbWU6");
			return;
		}
		/* Some clients send the user name with the command. */
		if ((r = sasl_login_decode(ir, strlen(ir), s->auth_name)) != SASL_OK) {
			auth_refuse(s, r);
			return;
		}
		s->auth_step = AUTH_LOGIN_PASS;
		smtp_session_write_reply(s, 334, "UGFzc3dvcmQ6");
	} else {
		smtp_session_reply_now(s, 504, "5.5.4 Unrecognized authentication "
		    "type (PLAIN LOGIN)");
	}
}

void
smtp_session_auth_line(struct smtp_session *s, const char *line, size_t len)
{
	enum sasl_result r;

	if (sasl_is_cancel(line, len)) {
		/* RFC 4954 4: "*" cancels; the answer is 501 */
		auth_wipe(s);
		smtp_session_reply_now(s, 501, "5.0.0 Authentication cancelled");
		return;
	}
	switch (s->auth_step) {
	case AUTH_PLAIN:
		if ((r = sasl_plain_decode(line, len, s->auth_name,
		    s->auth_pass)) != SASL_OK) {
			auth_refuse(s, r);
			return;
		}
		auth_decide(s);
		break;
	case AUTH_LOGIN_USER:
		if ((r = sasl_login_decode(line, len, s->auth_name)) != SASL_OK) {
			auth_refuse(s, r);
			return;
		}
		s->auth_step = AUTH_LOGIN_PASS;
		smtp_session_write_reply(s, 334, "UGFzc3dvcmQ6");
		break;
	case AUTH_LOGIN_PASS:
		if ((r = sasl_login_decode(line, len, s->auth_pass)) != SASL_OK) {
			auth_refuse(s, r);
			return;
		}
		auth_decide(s);
		break;
	case AUTH_IDLE:
		break;
	}
}

void
smtp_session_auth_overlong(struct smtp_session *s)
{
	auth_wipe(s);
	/* RFC 4954 4 */
	smtp_session_reply_now(s, 500, "5.5.6 Authentication exchange line "
	    "is too long");
}

void
smtp_session_auth_ok(struct smtp_session *s)
{
	if (s->pending != P_AUTH) {
		log_error("session=%s auth_ok without a pending AUTH", s->id);
		return;
	}
	smtp_session_reply(s, 235, "2.7.0 Authentication successful");
}

const char *
smtp_session_auth_user(const struct smtp_session *s)
{
	return s->auth_user;
}
