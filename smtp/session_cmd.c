/*
 * smtp/session_cmd: the command handlers of the server session. Each checks
 * syntax and state, answers errors at once, and hands what needs a
 * decision to the hooks through smtp_session_wait().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#include "lib/log.h"
#include "lib/metrics.h"
#include "smtp/command.h"
#include "smtp/sasl.h"
#include "smtp/session_int.h"

/* ---- commands: check (syntax and state), then decide ---- */

/* mxgate_messages_total for a MAIL or RCPT refused here, before the hooks
 * see it: syntax (a malformed or out-of-sequence command), limit, auth. */
static void
session_count_refusal(int code, const char *reason)
{
	metrics_inc("mxgate_messages_total", "outcome",
	    code >= 500 ? "rejected" : "deferred", "reason", reason);
}

static int
session_copy_args(struct smtp_session *s, const char *arg, const char *kw,
    const char **err_r, enum smtp_path_result *res_r)
{
	free(s->pending_line);
	if ((s->pending_line = strdup(arg)) == NULL) {
		*err_r = "out of memory";
		*res_r = SMTP_PATH_SYNTAX;
		return -1;
	}
	*res_r = smtp_path_parse(s->pending_line, kw, &s->pending_args, err_r);
	return *res_r == SMTP_PATH_OK ? 0 : -1;
}

static int session_junk(struct smtp_session *s);

static void
cmd_helo(struct smtp_session *s, struct smtp_command *c)
{
	char *sp;

	if (session_junk(s))	/* greeting again and again moves no mail */
		return;
	if (*c->arg == '\0') {
		smtp_session_reply_now(s, 501, "5.5.4 Syntax: %s hostname", c->name);
		return;
	}
	if ((sp = strpbrk(c->arg, " \t")) != NULL)
		*sp = '\0';
	if (strlen(c->arg) > 255) {
		/* RFC 5321 4.5.3.1.2: a domain has at most 255 octets */
		smtp_session_reply_now(s, 501, "5.5.4 %s name longer than 255 "
		    "octets", c->name);
		return;
	}
	smtp_session_txn_end(s);
	free(s->helo);
	if ((s->helo = strdup(c->arg)) == NULL) {
		smtp_session_reply_now(s, 421, "4.3.0 Out of memory");
		return;
	}
	smtp_session_wait(s, c->verb == SMTP_CMD_EHLO ? P_EHLO : P_HELO);
}

static int
session_check_mail_params(struct smtp_session *s)
{
	const struct smtp_path_args *a = &s->pending_args;
	struct smtp_dsn_mail dm;
	const char *err;
	size_t i;

	for (i = 0; i < a->nparams; i++) {
		const struct smtp_param *p = &a->params[i];

		if (strcasecmp(p->keyword, "SIZE") == 0 && p->value) {
			/* RFC 1870 6 */
			char *end;
			unsigned long long v;

			errno = 0;
			v = strtoull(p->value, &end, 10);
			if (*end != '\0' || errno || p->value[0] == '-') {
				session_count_refusal(501, "syntax");
				smtp_session_reply_now(s, 501, "5.5.4 Bad SIZE value");
				return -1;
			}
			if (v > s->cfg->max_size) {
				metrics_inc("mxgate_messages_total", "outcome",
				    "rejected", "reason", "size");
				smtp_session_reply_now(s, 552, "5.3.4 Message size exceeds "
				    "fixed maximum message size (%zu)", s->cfg->max_size);
				return -1;
			}
		} else if (strcasecmp(p->keyword, "BODY") == 0 && p->value &&
		    (strcasecmp(p->value, "7BIT") == 0 ||
		    strcasecmp(p->value, "8BITMIME") == 0)) {
			/* RFC 6152 */
		} else if (strcasecmp(p->keyword, "SMTPUTF8") == 0 && !p->value) {
			/* RFC 6531 3.4 */
		} else if (strcasecmp(p->keyword, "RET") == 0 ||
		    strcasecmp(p->keyword, "ENVID") == 0) {
			/* RFC 3461 4.3, 4.4: checked below */
		} else {
			session_count_refusal(555, "syntax");
			smtp_session_reply_now(s, 555, "5.5.4 Unsupported parameter %s",
			    log_safe(p->keyword));
			return -1;
		}
	}
	if (smtp_path_dsn_mail(a, &dm, &err) == -1) {
		session_count_refusal(501, "syntax");
		smtp_session_reply_now(s, 501, "5.5.4 %s", err);
		return -1;
	}
	return 0;
}

/* RCPT parameters: RFC 3461 NOTIFY and ORCPT only. */
static int
session_check_rcpt_params(struct smtp_session *s)
{
	const struct smtp_path_args *a = &s->pending_args;
	struct smtp_dsn_rcpt dr;
	const char *err;
	size_t i;

	if (a->nparams > 0 && !s->esmtp) {
		session_count_refusal(555, "syntax");
		smtp_session_reply_now(s, 555, "5.5.4 RCPT parameters need EHLO");
		return -1;
	}
	for (i = 0; i < a->nparams; i++)
		if (strcasecmp(a->params[i].keyword, "NOTIFY") != 0 &&
		    strcasecmp(a->params[i].keyword, "ORCPT") != 0) {
			session_count_refusal(555, "syntax");
			smtp_session_reply_now(s, 555, "5.5.4 Unsupported parameter %s",
			    log_safe(a->params[i].keyword));
			return -1;
		}
	if (smtp_path_dsn_rcpt(a, &dr, &err) == -1) {
		session_count_refusal(501, "syntax");
		smtp_session_reply_now(s, 501, "5.5.4 %s", err);
		return -1;
	}
	return 0;
}

static void
cmd_mail(struct smtp_session *s, struct smtp_command *c)
{
	enum smtp_path_result r;
	const char *err;

	if (s->state == STATE_GREETED) {
		session_count_refusal(503, "syntax");
		smtp_session_reply_now(s, 503, "5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->state != STATE_READY) {
		session_count_refusal(503, "syntax");
		smtp_session_reply_now(s, 503, "5.5.1 Error: nested MAIL command");
		return;
	}
	if (s->cfg->auth_required && s->auth_user == NULL) {
		/* RFC 4954 6 */
		session_count_refusal(530, "auth");
		smtp_session_reply_now(s, 530, "5.7.0 Authentication required");
		return;
	}
	if (session_copy_args(s, c->arg, "FROM", &err, &r) == -1) {
		session_count_refusal(500, "syntax");
		if (r == SMTP_PATH_SYNTAX)
			smtp_session_reply_now(s, 501, "5.5.4 Syntax: MAIL FROM:<address>");
		else if (r == SMTP_PATH_BADPARAM)
			smtp_session_reply_now(s, 555, "5.5.4 %s", err);
		else
			smtp_session_reply_now(s, 553, "5.1.7 Bad sender address: %s", err);
		return;
	}
	if (!s->esmtp && s->pending_args.nparams > 0) {
		/* RFC 5321 4.1.1.11 / RFC 1869: parameters need EHLO */
		session_count_refusal(555, "syntax");
		smtp_session_reply_now(s, 555, "5.5.4 MAIL parameters need EHLO");
		return;
	}
	if (session_check_mail_params(s) == -1)
		return;
	if (s->pending_args.utf8 && !smtp_path_param(&s->pending_args, "SMTPUTF8")) {
		/* RFC 6531 3.5 */
		session_count_refusal(553, "syntax");
		smtp_session_reply_now(s, 553, "5.6.7 Non-ASCII address needs SMTPUTF8");
		return;
	}
	smtp_session_wait(s, P_MAIL);
}

static void
cmd_rcpt(struct smtp_session *s, struct smtp_command *c)
{
	enum smtp_path_result r;
	const char *err;

	if (s->state != STATE_MAIL && s->state != STATE_RCPT) {
		session_count_refusal(503, "syntax");
		smtp_session_reply_now(s, 503, "5.5.1 Error: need MAIL command");
		return;
	}
	if (s->nrcpt >= s->cfg->max_rcpts) {
		/* RFC 5321 4.5.3.1.10: 452 for the extra recipients only */
		session_count_refusal(452, "limit");
		smtp_session_reply_now(s, 452, "4.5.3 Too many recipients");
		return;
	}
	if (session_copy_args(s, c->arg, "TO", &err, &r) == -1) {
		session_count_refusal(500, "syntax");
		if (r == SMTP_PATH_SYNTAX)
			smtp_session_reply_now(s, 501, "5.5.4 Syntax: RCPT TO:<address>");
		else if (r == SMTP_PATH_BADPARAM)
			smtp_session_reply_now(s, 555, "5.5.4 %s", err);
		else
			smtp_session_reply_now(s, 553, "5.1.3 Bad recipient address: %s", err);
		return;
	}
	if (session_check_rcpt_params(s) == -1)
		return;
	if (s->pending_args.utf8 && !s->smtputf8) {
		session_count_refusal(553, "syntax");
		smtp_session_reply_now(s, 553, "5.6.7 Non-ASCII address needs SMTPUTF8");
		return;
	}
	smtp_session_wait(s, P_RCPT);
}

static void
cmd_data(struct smtp_session *s, struct smtp_command *c)
{
	if (*c->arg) {
		smtp_session_reply_now(s, 501, "5.5.4 Syntax: DATA");
		return;
	}
	if (s->state == STATE_BDAT_WAIT) {
		smtp_session_reply_now(s, 503, "5.5.1 Error: DATA after BDAT");
		return;
	}
	if (s->state == STATE_MAIL) {
		smtp_session_reply_now(s, 554, "5.5.1 Error: no valid recipients");
		return;
	}
	if (s->state != STATE_RCPT) {
		smtp_session_reply_now(s, 503, "5.5.1 Error: need RCPT command");
		return;
	}
	smtp_session_wait(s, P_DATA);
}

static void
cmd_bdat(struct smtp_session *s, struct smtp_command *c)
{
	unsigned long long size;
	char *end;
	int last = 0;

	/* RFC 3030 2: BDAT chunk-size [LAST] */
	errno = 0;
	size = strtoull(c->arg, &end, 10);
	if (end == c->arg || errno || c->arg[0] == '-' || c->arg[0] == '+' ||
	    (*end != '\0' && *end != ' ')) {
		/* The chunk length is unknown: the stream cannot be resynced. */
		smtp_session_reply_now(s, 501, "5.5.4 Syntax: BDAT size [LAST]");
		smtp_session_close(s);
		return;
	}
	while (*end == ' ')
		end++;
	if (strcasecmp(end, "LAST") == 0)
		last = 1;
	else if (*end != '\0') {
		smtp_session_reply_now(s, 501, "5.5.4 Syntax: BDAT size [LAST]");
		smtp_session_close(s);
		return;
	}
	if (!s->esmtp || (s->state != STATE_RCPT && s->state != STATE_BDAT_WAIT)) {
		/* Read and discard the chunk, then refuse (RFC 3030 2). */
		s->discard_left = (size_t)size;
		s->discarding = 1;
		smtp_session_content_clock(s);
		snprintf(s->discard_reply, sizeof(s->discard_reply), "%s",
		    !s->esmtp ? "503 5.5.1 Error: BDAT needs EHLO (RFC 3030)" :
		    s->state == STATE_MAIL ? "554 5.5.1 Error: no valid recipients" :
		    "503 5.5.1 Error: need RCPT command");
		return;
	}
	s->bdat_left = (size_t)size;
	s->bdat_last = last;
	if (s->state == STATE_RCPT) {
		s->bdat = 1;
		smtp_data_init(&s->data, 1);
		s->data.normalise = s->normalise_newlines;
		smtp_session_wait(s, P_BDAT);
		return;
	}
	smtp_session_enter(s, STATE_BDAT);
}

static void
cmd_starttls(struct smtp_session *s, struct smtp_command *c)
{
	struct evbuffer *in;
	struct bufferevent *tb;
	SSL *ssl;
	size_t extra;

	if (s->cfg->ssl_ctx == NULL) {
		smtp_session_reply_now(s, 502, "5.5.1 STARTTLS not available");
		return;
	}
	if (s->tls) {
		smtp_session_reply_now(s, 503, "5.5.1 Error: TLS already active");
		return;
	}
	if (*c->arg) {
		smtp_session_reply_now(s, 501, "5.5.4 Syntax: STARTTLS");
		return;
	}
	if (s->state >= STATE_MAIL) {
		smtp_session_reply_now(s, 503, "5.5.1 Error: STARTTLS inside a transaction");
		return;
	}
	if ((ssl = SSL_new(s->cfg->ssl_ctx)) == NULL) {
		smtp_session_reply_now(s, 454, "4.7.0 TLS not available: out of memory");
		return;
	}
	/* RFC 3207 4.2 and CVE-2011-0411: anything the client pipelined
	 * after STARTTLS was sent in clear and must not be obeyed. */
	in = bufferevent_get_input(s->bev);
	if ((extra = evbuffer_get_length(in)) > 0) {
		log_warning("session=%s client=%s discarded %zu octets pipelined "
		    "after STARTTLS", s->id, s->client_ip, extra);
		evbuffer_drain(in, extra);
	}
	smtp_session_write_reply(s, 220, "2.0.0 Ready to start TLS");
	smtp_session_txn_end(s);
	tb = bufferevent_openssl_filter_new(s->base, s->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (tb == NULL) {
		SSL_free(ssl);
		smtp_session_close(s);
		return;
	}
	s->bev = tb;
	smtp_session_setup_bev(s);
	smtp_session_enter(s, STATE_TLS);
}

/* HELO EHLO NOOP RSET VRFY EXPN HELP cost nothing to send and move no
 * mail: past junk_limit of them the session ends. 1 if it did. */
static int
session_junk(struct smtp_session *s)
{
	char detail[96];

	if (s->cfg->junk_limit <= 0 || ++s->junk <= s->cfg->junk_limit)
		return 0;
	snprintf(detail, sizeof(detail), "more than %d HELO/EHLO/NOOP/RSET/"
	    "VRFY/EXPN/HELP commands", s->cfg->junk_limit);
	smtp_session_violation(s, "junk", 421,
	    "4.7.0 Error: too many commands that move no mail; closing",
	    detail);
	return 1;
}

static void
cmd_simple(struct smtp_session *s, struct smtp_command *c)
{
	switch (c->verb) {
	case SMTP_CMD_RSET:
	case SMTP_CMD_NOOP:
	case SMTP_CMD_VRFY:
	case SMTP_CMD_EXPN:
	case SMTP_CMD_HELP:
		if (session_junk(s))
			return;
		break;
	default:
		break;
	}
	switch (c->verb) {
	case SMTP_CMD_RSET:
		if (*c->arg) {
			smtp_session_reply_now(s, 501, "5.5.4 Syntax: RSET");
			return;
		}
		smtp_session_txn_end(s);
		smtp_session_reply_now(s, 250, "2.0.0 Ok");
		break;
	case SMTP_CMD_NOOP:
		smtp_session_reply_now(s, 250, "2.0.0 Ok");
		break;
	case SMTP_CMD_QUIT:
		smtp_session_reply_now(s, 221, "2.0.0 Bye");
		smtp_session_close(s);
		break;
	case SMTP_CMD_VRFY:
		/* RFC 5321 3.5.3 */
		smtp_session_reply_now(s, 252, "2.0.0 Cannot VRFY user, but will "
		    "accept message and attempt delivery");
		break;
	case SMTP_CMD_EXPN:
		smtp_session_reply_now(s, 502, "5.5.1 EXPN not supported");
		break;
	case SMTP_CMD_HELP:
		smtp_session_reply_now(s, 214, "2.0.0 Commands: EHLO HELO MAIL RCPT "
		    "DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS");
		break;
	case SMTP_CMD_AUTH:
		smtp_session_cmd_auth(s, c->arg);
		break;
	case SMTP_CMD_HTTP: {
		char text[300];

		snprintf(text, sizeof(text), "4.7.0 %s This is an SMTP server; "
		    "closing", s->cfg->hostname);
		smtp_session_violation(s, "http", 421, text,
		    "HTTP command in SMTP session");
		break;
	}
	default:
		smtp_session_reply_now(s, 500, "5.5.2 Error: command not recognized");
		break;
	}
}

static const struct {
	enum smtp_verb verb;
	void (*run)(struct smtp_session *, struct smtp_command *);
} smtp_commands[] = {
	{ SMTP_CMD_HELO, cmd_helo },
	{ SMTP_CMD_EHLO, cmd_helo },
	{ SMTP_CMD_MAIL, cmd_mail },
	{ SMTP_CMD_RCPT, cmd_rcpt },
	{ SMTP_CMD_DATA, cmd_data },
	{ SMTP_CMD_BDAT, cmd_bdat },
	{ SMTP_CMD_STARTTLS, cmd_starttls },
};

static int
session_line_has_ctl(const char *line, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (((unsigned char)line[i] < 0x20 && line[i] != '\t') ||
		    line[i] == 0x7f)
			return 1;
	return 0;
}

/* Starts with a word of letters only, as a command verb does (base64
 * credentials almost always hold a digit, "+", "/" or "="). */
static int
session_line_is_verb(const char *line, size_t len)
{
	size_t i;

	for (i = 0; i < len && line[i] != ' ' && line[i] != '\0'; i++)
		if (!((line[i] >= 'A' && line[i] <= 'Z') ||
		    (line[i] >= 'a' && line[i] <= 'z')) || i >= 16)
			return 0;
	return i > 0;
}

/* "Name:" as the first word: an RFC 5322 header field (2.2: printable
 * ASCII but ":", then ":") arriving as a command, which means message
 * content is being read as commands (a smuggling attempt, or a client
 * that lost track of DATA). */
static int
session_line_is_header(const char *line, size_t len)
{
	size_t i;

	for (i = 0; i < len && line[i] != ':'; i++)
		if ((unsigned char)line[i] <= ' ' || (unsigned char)line[i] > '~')
			return 0;
	return i > 0 && i < len;
}

/*
 * RFC 2920 3.1: without PIPELINING offered (before the EHLO reply, or
 * after HELO) a client sends one command and waits; with it, EHLO, HELO,
 * DATA, STARTTLS, VRFY and EXPN still end a group, as their reply changes
 * what may follow. Input already buffered behind such a command was sent
 * before its reply could have been read. (QUIT, NOOP used as a
 * keep-alive, and BDAT, whose chunk follows it, are let go.)
 */
static int
session_pipelining_violation(const struct smtp_session *s, enum smtp_verb v)
{
	if (v == SMTP_CMD_QUIT || v == SMTP_CMD_BDAT)	/* its chunk follows */
		return 0;
	if (!s->esmtp)
		return v != SMTP_CMD_NOOP;
	return v == SMTP_CMD_EHLO || v == SMTP_CMD_HELO || v == SMTP_CMD_DATA ||
	    v == SMTP_CMD_STARTTLS || v == SMTP_CMD_VRFY || v == SMTP_CMD_EXPN;
}

void
smtp_session_command(struct smtp_session *s, char *line, size_t len, int more)
{
	struct smtp_command c;
	size_t i, limit;

	if (len >= 4 && strncasecmp(line, "BDAT", 4) == 0 &&
	    (len == 4 || line[4] == ' ') &&
	    (len + 2 > SMTP_LINE_MAX || session_line_has_ctl(line, len))) {
		/* An unreadable BDAT: its chunk would be read as commands
		 * (RFC 3030 2). Refuse and close. */
		smtp_session_reply_now(s, 501, "5.5.4 Syntax: BDAT size [LAST]");
		smtp_session_close(s);
		return;
	}
	switch (smtp_command_parse(line, len, &c)) {
	case SMTP_PARSE_EMPTY:
		smtp_session_reply_now(s, 500, "5.5.2 Error: empty command");
		return;
	case SMTP_PARSE_NUL:
		smtp_session_reply_now(s, 500, "5.5.2 Error: NUL character in command");
		return;
	case SMTP_PARSE_BADCHAR:
		smtp_session_reply_now(s, 500, "5.5.2 Error: control character in command");
		return;
	case SMTP_PARSE_OK:
		break;
	}
	limit = (c.verb == SMTP_CMD_MAIL || c.verb == SMTP_CMD_RCPT) ?
	    SMTP_LINE_MAX_PARAMS : SMTP_LINE_MAX;
	if (c.verb == SMTP_CMD_AUTH)
		limit = SASL_LINE_MAX;	/* RFC 4954 4: initial responses */
	if (len + 2 > limit) {
		if (c.verb == SMTP_CMD_MAIL || c.verb == SMTP_CMD_RCPT)
			session_count_refusal(500, "syntax");
		smtp_session_reply_now(s, 500, "5.5.2 Error: command line longer than "
		    "%zu octets (RFC 5321 4.5.3.1.4)", limit);
		return;
	}
	if (c.verb == SMTP_CMD_AUTH)	/* never the initial response */
		log_debug("session=%s command=AUTH %s", s->id,
		    log_safen(c.arg, strcspn(c.arg, " \t")));
	else if (c.verb == SMTP_CMD_UNKNOWN && !session_line_is_verb(line, len))
		/* A client whose AUTH was refused (538, 503) may go on with
		 * its base64 credentials, which then arrive as commands:
		 * never in the log. */
		log_debug("session=%s command=(unrecognized, %zu octets)",
		    s->id, len);
	else
		log_debug("session=%s command=%s", s->id, log_safe(line));
	if (c.verb == SMTP_CMD_UNKNOWN && session_line_is_header(line, len)) {
		char detail[96];

		snprintf(detail, sizeof(detail), "header field %s received as "
		    "a command", log_safen(line, strcspn(line, ":") > 40 ? 40 :
		    strcspn(line, ":") + 1));
		smtp_session_violation(s, "header_command", 421,
		    "4.7.0 Error: message header received as a command; "
		    "closing", detail);
		return;
	}
	if (more && c.verb != SMTP_CMD_HTTP &&
	    session_pipelining_violation(s, c.verb)) {
		char detail[96];

		snprintf(detail, sizeof(detail), "input pipelined after %s%s",
		    c.name, s->esmtp ? "" : " before PIPELINING was offered");
		smtp_session_violation(s, "pipelining", 554,
		    "5.5.0 Error: SMTP protocol synchronization", detail);
		return;
	}
	if (s->state == STATE_BDAT_WAIT && c.verb != SMTP_CMD_BDAT &&
	    c.verb != SMTP_CMD_RSET && c.verb != SMTP_CMD_QUIT &&
	    c.verb != SMTP_CMD_NOOP) {
		if (c.verb == SMTP_CMD_MAIL || c.verb == SMTP_CMD_RCPT)
			session_count_refusal(503, "syntax");
		smtp_session_reply_now(s, 503, "5.5.1 Error: BDAT expected");
		return;
	}
	for (i = 0; i < sizeof(smtp_commands) / sizeof(smtp_commands[0]); i++)
		if (smtp_commands[i].verb == c.verb) {
			smtp_commands[i].run(s, &c);
			return;
		}
	cmd_simple(s, &c);
}

