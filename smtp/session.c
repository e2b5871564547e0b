#include "smtp/session.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "smtp/command.h"
#include "smtp/datastream.h"
#include "smtp/tls.h"

/* RFC 5321 4.5.3.1.4: 512 octets with CRLF. MAIL and RCPT may carry
 * extension parameters that the RFC lets extensions add to (RFC 1870 3,
 * RFC 3461 5): they get more room. */
#define SMTP_LINE_MAX 512
#define SMTP_LINE_MAX_PARAMS 1024
#define SMTP_CHUNK_FLUSH (64 * 1024)
#define SMTP_OUTPUT_MAX (64 * 1024)	/* replies queued before we stop reading */

enum smtp_state {
	STATE_CONNECTED,	/* greeting not yet decided */
	STATE_GREETED,		/* waiting for HELO/EHLO */
	STATE_READY,		/* HELO done, no transaction */
	STATE_MAIL,		/* MAIL accepted */
	STATE_RCPT,		/* at least one RCPT accepted */
	STATE_DATA,		/* reading DATA content */
	STATE_BDAT,		/* reading a BDAT chunk */
	STATE_BDAT_WAIT,	/* between BDAT chunks */
	STATE_TLS,		/* STARTTLS handshake */
	STATE_CLOSING,		/* output draining, then free */
};

enum smtp_pending {
	P_NONE,
	P_GREETING,
	P_HELO,
	P_EHLO,
	P_MAIL,
	P_RCPT,
	P_DATA,		/* DATA command: 354 or refusal */
	P_BDAT,		/* first BDAT chunk of a transaction */
	P_DATA_END,	/* end of content: 250 queued or refusal */
};

static const char *const smtp_state_names[] = {
	"connected", "greeted", "ready", "mail", "rcpt", "data", "bdat",
	"bdat-wait", "tls", "closing",
};

struct smtp_session {
	struct event_base *base;
	struct bufferevent *bev;
	struct event *ev_resume;
	const struct smtp_server_config *cfg;
	const struct smtp_hooks *hooks;
	void *arg;
	void *udata;

	char id[20];
	struct sockaddr_storage peer;
	char client_ip[64];
	enum smtp_state state;
	enum smtp_pending pending;	/* decision awaited, or P_NONE */
	int in_hook;
	int greeting_due;
	int dead;		/* free at the next resume */
	int closing_after_reply;
	int esmtp;
	int tls;
	char *helo;

	/* transaction */
	char *sender;
	char **rcpts;
	size_t nrcpt;
	int body_8bit;
	int smtputf8;
	struct smtp_path_args pending_args;
	char *pending_line;	/* owns the strings in pending_args */

	/* content */
	struct smtp_data data;
	struct buf chunk;	/* decoded content not yet handed to the hook */
	int bdat;		/* this transaction used BDAT */
	int bdat_last;
	size_t bdat_left;	/* octets of the current chunk still to read */
	int content_refused;	/* on_data_start refused: discard content */
	char content_reply[256];
	int oversize;
	int local_error;	/* on_data_chunk failed */
	int skipping_line;	/* discarding an overlong command line */
	int discarding;		/* discarding a BDAT chunk sent out of turn */
	int output_blocked;	/* replies piled up: wait for them to drain */
	int drain_ticks;
	struct event *ev_drain;	/* TLS close: wait for the socket to drain */
	size_t discard_left;
	char discard_reply[128];
};

static unsigned long long smtp_session_serial;

static void session_process(struct smtp_session *s);
static void session_close(struct smtp_session *s);
static void session_txn_end(struct smtp_session *s);
static void session_setup_bev(struct smtp_session *s);

static void session_set_timeouts(struct smtp_session *s);
static size_t session_unsent(struct smtp_session *s);
static void session_write_cb(struct bufferevent *bev, void *arg);

static void
smtp_session_enter(struct smtp_session *s, enum smtp_state st)
{
	if (s->state == st)
		return;
	log_debug("session=%s state %s -> %s", s->id,
	    smtp_state_names[s->state], smtp_state_names[st]);
	s->state = st;
	/* RFC 5321 4.5.3.2: DATA/BDAT content has its own timeout. */
	session_set_timeouts(s);
}

static void
session_write_reply(struct smtp_session *s, int code, const char *text)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);

	evbuffer_add_printf(out, "%03d %s\r\n", code, text);
	log_debug("session=%s reply=%s", s->id, log_safe(text));
}

static void
session_resume_soon(struct smtp_session *s)
{
	event_active(s->ev_resume, EV_WRITE, 0);
}

/* ---- transaction state ---- */

static void
session_txn_end(struct smtp_session *s)
{
	size_t i;
	int had = s->sender != NULL;

	if (had && s->hooks->on_txn_end)
		s->hooks->on_txn_end(s, s->arg);
	free(s->sender);
	s->sender = NULL;
	for (i = 0; i < s->nrcpt; i++)
		free(s->rcpts[i]);
	free(s->rcpts);
	s->rcpts = NULL;
	s->nrcpt = 0;
	s->body_8bit = s->smtputf8 = 0;
	buf_free(&s->chunk);
	s->bdat = s->bdat_last = 0;
	s->bdat_left = 0;
	s->content_refused = s->oversize = s->local_error = 0;
	memset(&s->data, 0, sizeof(s->data));
	if (s->state >= STATE_MAIL && s->state <= STATE_BDAT_WAIT)
		smtp_session_enter(s, STATE_READY);
}

/* ---- decisions ---- */

static void session_ehlo_reply(struct smtp_session *s);

/* Effects of a decision on the session state. */
static void
session_apply(struct smtp_session *s, enum smtp_pending p, int ok)
{
	switch (p) {
	case P_GREETING:
		if (ok)
			smtp_session_enter(s, STATE_GREETED);
		else
			s->closing_after_reply = 1;
		break;
	case P_HELO:
	case P_EHLO:
		if (ok) {
			s->esmtp = p == P_EHLO;
			smtp_session_enter(s, STATE_READY);
		} else {
			free(s->helo);
			s->helo = NULL;
		}
		break;
	case P_MAIL:
		if (ok) {
			const struct smtp_param *b;

			s->sender = strdup(s->pending_args.path);
			b = smtp_path_param(&s->pending_args, "BODY");
			s->body_8bit = b && b->value &&
			    strcasecmp(b->value, "8BITMIME") == 0;
			s->smtputf8 = smtp_path_param(&s->pending_args,
			    "SMTPUTF8") != NULL;
			if (s->sender == NULL)
				s->closing_after_reply = 1;
			else
				smtp_session_enter(s, STATE_MAIL);
		}
		break;
	case P_RCPT:
		if (ok) {
			char **r = realloc(s->rcpts, (s->nrcpt + 1) * sizeof(*r));
			char *copy = strdup(s->pending_args.path);

			if (r)
				s->rcpts = r;
			if (r == NULL || copy == NULL) {
				free(copy);
				s->closing_after_reply = 1;
				break;
			}
			s->rcpts[s->nrcpt++] = copy;
			smtp_session_enter(s, STATE_RCPT);
		}
		break;
	case P_DATA:
		if (ok) {
			smtp_data_init(&s->data, 0);
			smtp_session_enter(s, STATE_DATA);
		}
		break;
	case P_BDAT:
	case P_DATA_END:
	case P_NONE:
		break;
	}
	free(s->pending_line);
	s->pending_line = NULL;
}

static void
session_decided(struct smtp_session *s, int code, const char *text)
{
	enum smtp_pending p = s->pending;
	int ok = code >= 200 && code < 400;

	if (p == P_NONE || s->state == STATE_CLOSING || s->dead)
		return;
	s->pending = P_NONE;
	if (p == P_BDAT) {
		/* RFC 3030 2: the chunk is read either way; a refusal
		 * discards the content and answers each chunk. */
		if (!ok) {
			s->content_refused = 1;
			snprintf(s->content_reply, sizeof(s->content_reply),
			    "%03d %s", code, text);
		}
		smtp_session_enter(s, STATE_BDAT);
	} else {
		if (p == P_EHLO && ok)
			session_ehlo_reply(s);
		else
			session_write_reply(s, code, text);
		session_apply(s, p, ok);
		if (p == P_DATA_END)
			session_txn_end(s);
	}
	if (code == 421)
		s->closing_after_reply = 1;
	if (s->closing_after_reply) {
		session_close(s);
		return;
	}
	bufferevent_enable(s->bev, EV_READ);
	if (!s->in_hook)
		session_resume_soon(s);
}

void
smtp_session_reply(struct smtp_session *s, int code, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (code < 200 || code > 599)
		code = 451;
	session_decided(s, code, text);
}

void
smtp_session_accept(struct smtp_session *s)
{
	char text[300];

	switch (s->pending) {
	case P_GREETING:
		snprintf(text, sizeof(text), "%s ESMTP mxgate", s->cfg->hostname);
		session_decided(s, 220, text);
		break;
	case P_HELO:
	case P_EHLO:
		snprintf(text, sizeof(text), "%s", s->cfg->hostname);
		session_decided(s, 250, text);
		break;
	case P_MAIL:
		session_decided(s, 250, "2.1.0 Ok");
		break;
	case P_RCPT:
		session_decided(s, 250, "2.1.5 Ok");
		break;
	case P_DATA:
		session_decided(s, 354, "End data with <CR><LF>.<CR><LF>");
		break;
	case P_BDAT:
		session_decided(s, 250, "2.0.0 Ok");
		break;
	case P_DATA_END:
		/* on_data_end must name the queue id; accepting without it
		 * is a bug in the hook owner. */
		log_error("session=%s on_data_end accepted without a reply", s->id);
		session_decided(s, 451, "4.3.0 Internal error");
		break;
	case P_NONE:
		break;
	}
}

/* Begin waiting for a decision; returns after the hook returned (the
 * decision may or may not have been made). */
static void
session_wait(struct smtp_session *s, enum smtp_pending p)
{
	s->pending = p;
	bufferevent_disable(s->bev, EV_READ);
	s->in_hook++;
	switch (p) {
	case P_GREETING:
		if (s->hooks->on_connect)
			s->hooks->on_connect(s, s->arg);
		else
			smtp_session_accept(s);
		break;
	case P_HELO:
	case P_EHLO:
		if (s->hooks->on_helo)
			s->hooks->on_helo(s, s->helo, s->arg);
		else
			smtp_session_accept(s);
		break;
	case P_MAIL:
		if (s->hooks->on_mail)
			s->hooks->on_mail(s, &s->pending_args, s->arg);
		else
			smtp_session_accept(s);
		break;
	case P_RCPT:
		if (s->hooks->on_rcpt)
			s->hooks->on_rcpt(s, &s->pending_args, s->arg);
		else
			smtp_session_accept(s);
		break;
	case P_DATA:
	case P_BDAT:
		if (s->hooks->on_data_start)
			s->hooks->on_data_start(s, s->arg);
		else
			smtp_session_accept(s);
		break;
	case P_DATA_END:
		if (s->hooks->on_data_end)
			s->hooks->on_data_end(s, s->arg);
		else
			smtp_session_reply(s, 451, "4.3.0 No queue");
		break;
	case P_NONE:
		break;
	}
	s->in_hook--;
}

/* A reply that is not a decision (syntax errors, state errors). */
static void
session_reply_now(struct smtp_session *s, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
session_reply_now(struct smtp_session *s, int code, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	session_write_reply(s, code, text);
	if (code == 421)
		session_close(s);
}

static void
session_ehlo_reply(struct smtp_session *s)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);

	/* RFC 5321 4.1.1.1; extensions in the order Postfix uses. */
	evbuffer_add_printf(out, "250-%s\r\n", s->cfg->hostname);
	evbuffer_add_printf(out, "250-PIPELINING\r\n");
	evbuffer_add_printf(out, "250-SIZE %zu\r\n", s->cfg->max_size);
	if (s->cfg->ssl_ctx && !s->tls)
		evbuffer_add_printf(out, "250-STARTTLS\r\n");
	evbuffer_add_printf(out, "250-ENHANCEDSTATUSCODES\r\n");
	evbuffer_add_printf(out, "250-8BITMIME\r\n");
	evbuffer_add_printf(out, "250-CHUNKING\r\n");
	evbuffer_add_printf(out, "250 SMTPUTF8\r\n");
}

/* ---- commands: check (syntax and state), then decide ---- */

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

static void
cmd_helo(struct smtp_session *s, struct smtp_command *c)
{
	char *sp;

	if (*c->arg == '\0') {
		session_reply_now(s, 501, "5.5.4 Syntax: %s hostname", c->name);
		return;
	}
	if ((sp = strpbrk(c->arg, " \t")) != NULL)
		*sp = '\0';
	session_txn_end(s);
	free(s->helo);
	if ((s->helo = strdup(c->arg)) == NULL) {
		session_reply_now(s, 421, "4.3.0 Out of memory");
		return;
	}
	session_wait(s, c->verb == SMTP_CMD_EHLO ? P_EHLO : P_HELO);
}

static int
session_check_mail_params(struct smtp_session *s)
{
	const struct smtp_path_args *a = &s->pending_args;
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
				session_reply_now(s, 501, "5.5.4 Bad SIZE value");
				return -1;
			}
			if (v > s->cfg->max_size) {
				session_reply_now(s, 552, "5.3.4 Message size exceeds "
				    "fixed maximum message size (%zu)", s->cfg->max_size);
				return -1;
			}
		} else if (strcasecmp(p->keyword, "BODY") == 0 && p->value &&
		    (strcasecmp(p->value, "7BIT") == 0 ||
		    strcasecmp(p->value, "8BITMIME") == 0)) {
			/* RFC 6152 */
		} else if (strcasecmp(p->keyword, "SMTPUTF8") == 0 && !p->value) {
			/* RFC 6531 3.4 */
		} else {
			session_reply_now(s, 555, "5.5.4 Unsupported parameter %s",
			    log_safe(p->keyword));
			return -1;
		}
	}
	return 0;
}

static void
cmd_mail(struct smtp_session *s, struct smtp_command *c)
{
	enum smtp_path_result r;
	const char *err;

	if (s->state == STATE_GREETED) {
		session_reply_now(s, 503, "5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->state != STATE_READY) {
		session_reply_now(s, 503, "5.5.1 Error: nested MAIL command");
		return;
	}
	if (session_copy_args(s, c->arg, "FROM", &err, &r) == -1) {
		if (r == SMTP_PATH_SYNTAX)
			session_reply_now(s, 501, "5.5.4 Syntax: MAIL FROM:<address>");
		else if (r == SMTP_PATH_BADPARAM)
			session_reply_now(s, 555, "5.5.4 %s", err);
		else
			session_reply_now(s, 553, "5.1.7 Bad sender address: %s", err);
		return;
	}
	if (session_check_mail_params(s) == -1)
		return;
	if (s->pending_args.utf8 && !smtp_path_param(&s->pending_args, "SMTPUTF8")) {
		/* RFC 6531 3.5 */
		session_reply_now(s, 553, "5.6.7 Non-ASCII address needs SMTPUTF8");
		return;
	}
	session_wait(s, P_MAIL);
}

static void
cmd_rcpt(struct smtp_session *s, struct smtp_command *c)
{
	enum smtp_path_result r;
	const char *err;

	if (s->state != STATE_MAIL && s->state != STATE_RCPT) {
		session_reply_now(s, 503, "5.5.1 Error: need MAIL command");
		return;
	}
	if (s->nrcpt >= s->cfg->max_rcpts) {
		/* RFC 5321 4.5.3.1.10: 452 for the extra recipients only */
		session_reply_now(s, 452, "4.5.3 Too many recipients");
		return;
	}
	if (session_copy_args(s, c->arg, "TO", &err, &r) == -1) {
		if (r == SMTP_PATH_SYNTAX)
			session_reply_now(s, 501, "5.5.4 Syntax: RCPT TO:<address>");
		else if (r == SMTP_PATH_BADPARAM)
			session_reply_now(s, 555, "5.5.4 %s", err);
		else
			session_reply_now(s, 553, "5.1.3 Bad recipient address: %s", err);
		return;
	}
	if (s->pending_args.nparams > 0) {
		session_reply_now(s, 555, "5.5.4 Unsupported parameter %s",
		    log_safe(s->pending_args.params[0].keyword));
		return;
	}
	if (s->pending_args.utf8 && !s->smtputf8) {
		session_reply_now(s, 553, "5.6.7 Non-ASCII address needs SMTPUTF8");
		return;
	}
	session_wait(s, P_RCPT);
}

static void
cmd_data(struct smtp_session *s, struct smtp_command *c)
{
	if (*c->arg) {
		session_reply_now(s, 501, "5.5.4 Syntax: DATA");
		return;
	}
	if (s->state == STATE_BDAT_WAIT) {
		session_reply_now(s, 503, "5.5.1 Error: DATA after BDAT");
		return;
	}
	if (s->state == STATE_MAIL) {
		session_reply_now(s, 554, "5.5.1 Error: no valid recipients");
		return;
	}
	if (s->state != STATE_RCPT) {
		session_reply_now(s, 503, "5.5.1 Error: need RCPT command");
		return;
	}
	session_wait(s, P_DATA);
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
		session_reply_now(s, 501, "5.5.4 Syntax: BDAT size [LAST]");
		session_close(s);
		return;
	}
	while (*end == ' ')
		end++;
	if (strcasecmp(end, "LAST") == 0)
		last = 1;
	else if (*end != '\0') {
		session_reply_now(s, 501, "5.5.4 Syntax: BDAT size [LAST]");
		session_close(s);
		return;
	}
	if (s->state != STATE_RCPT && s->state != STATE_BDAT_WAIT) {
		/* Read and discard the chunk, then refuse (RFC 3030 2). */
		s->discard_left = (size_t)size;
		s->discarding = 1;
		snprintf(s->discard_reply, sizeof(s->discard_reply), "%s",
		    s->state == STATE_MAIL ? "554 5.5.1 Error: no valid recipients" :
		    "503 5.5.1 Error: need RCPT command");
		return;
	}
	s->bdat_left = (size_t)size;
	s->bdat_last = last;
	if (s->state == STATE_RCPT) {
		s->bdat = 1;
		smtp_data_init(&s->data, 1);
		session_wait(s, P_BDAT);
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
		session_reply_now(s, 502, "5.5.1 STARTTLS not available");
		return;
	}
	if (s->tls) {
		session_reply_now(s, 503, "5.5.1 Error: TLS already active");
		return;
	}
	if (*c->arg) {
		session_reply_now(s, 501, "5.5.4 Syntax: STARTTLS");
		return;
	}
	if (s->state >= STATE_MAIL) {
		session_reply_now(s, 503, "5.5.1 Error: STARTTLS inside a transaction");
		return;
	}
	if ((ssl = SSL_new(s->cfg->ssl_ctx)) == NULL) {
		session_reply_now(s, 454, "4.7.0 TLS not available: out of memory");
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
	session_write_reply(s, 220, "2.0.0 Ready to start TLS");
	session_txn_end(s);
	tb = bufferevent_openssl_filter_new(s->base, s->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (tb == NULL) {
		SSL_free(ssl);
		session_close(s);
		return;
	}
	s->bev = tb;
	session_setup_bev(s);
	smtp_session_enter(s, STATE_TLS);
}

static void
cmd_simple(struct smtp_session *s, struct smtp_command *c)
{
	switch (c->verb) {
	case SMTP_CMD_RSET:
		if (*c->arg) {
			session_reply_now(s, 501, "5.5.4 Syntax: RSET");
			return;
		}
		session_txn_end(s);
		session_reply_now(s, 250, "2.0.0 Ok");
		break;
	case SMTP_CMD_NOOP:
		session_reply_now(s, 250, "2.0.0 Ok");
		break;
	case SMTP_CMD_QUIT:
		session_reply_now(s, 221, "2.0.0 Bye");
		session_close(s);
		break;
	case SMTP_CMD_VRFY:
		/* RFC 5321 3.5.3 */
		session_reply_now(s, 252, "2.0.0 Cannot VRFY user, but will "
		    "accept message and attempt delivery");
		break;
	case SMTP_CMD_EXPN:
		session_reply_now(s, 502, "5.5.1 EXPN not supported");
		break;
	case SMTP_CMD_HELP:
		session_reply_now(s, 214, "2.0.0 Commands: EHLO HELO MAIL RCPT "
		    "DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS");
		break;
	case SMTP_CMD_AUTH:
		session_reply_now(s, 503, "5.5.1 Error: authentication not enabled");
		break;
	case SMTP_CMD_HTTP:
		log_warning("session=%s client=%s HTTP command in SMTP session",
		    s->id, s->client_ip);
		session_reply_now(s, 421, "4.7.0 %s This is an SMTP server; closing",
		    s->cfg->hostname);
		break;
	default:
		session_reply_now(s, 500, "5.5.2 Error: command not recognized");
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

static void
session_command(struct smtp_session *s, char *line, size_t len)
{
	struct smtp_command c;
	size_t i, limit;

	switch (smtp_command_parse(line, len, &c)) {
	case SMTP_PARSE_EMPTY:
		session_reply_now(s, 500, "5.5.2 Error: empty command");
		return;
	case SMTP_PARSE_NUL:
		session_reply_now(s, 500, "5.5.2 Error: NUL character in command");
		return;
	case SMTP_PARSE_BADCHAR:
		session_reply_now(s, 500, "5.5.2 Error: control character in command");
		return;
	case SMTP_PARSE_OK:
		break;
	}
	limit = (c.verb == SMTP_CMD_MAIL || c.verb == SMTP_CMD_RCPT) ?
	    SMTP_LINE_MAX_PARAMS : SMTP_LINE_MAX;
	if (len + 2 > limit) {
		session_reply_now(s, 500, "5.5.2 Error: command line longer than "
		    "%zu octets (RFC 5321 4.5.3.1.4)", limit);
		return;
	}
	log_debug("session=%s command=%s", s->id, log_safe(line));
	if (s->state == STATE_BDAT_WAIT && c.verb != SMTP_CMD_BDAT &&
	    c.verb != SMTP_CMD_RSET && c.verb != SMTP_CMD_QUIT &&
	    c.verb != SMTP_CMD_NOOP) {
		session_reply_now(s, 503, "5.5.1 Error: BDAT expected");
		return;
	}
	for (i = 0; i < sizeof(smtp_commands) / sizeof(smtp_commands[0]); i++)
		if (smtp_commands[i].verb == c.verb) {
			smtp_commands[i].run(s, &c);
			return;
		}
	cmd_simple(s, &c);
}

/* ---- message content ---- */

static void
session_flush_chunk(struct smtp_session *s)
{
	if (s->chunk.len == 0)
		return;
	if (s->data.total > s->cfg->max_size)
		s->oversize = 1;
	if (!s->oversize && !s->content_refused && !s->local_error &&
	    s->hooks->on_data_chunk &&
	    s->hooks->on_data_chunk(s, s->chunk.data, s->chunk.len, s->arg) == -1)
		s->local_error = 1;
	buf_reset(&s->chunk);
}

static void
session_content_end(struct smtp_session *s)
{
	const char *why;

	session_flush_chunk(s);
	if (s->oversize) {
		session_reply_now(s, 552, "5.3.4 Message size exceeds fixed "
		    "maximum message size (%zu)", s->cfg->max_size);
	} else if (s->content_refused) {
		char code[4];

		memcpy(code, s->content_reply, 3);
		code[3] = '\0';
		session_reply_now(s, atoi(code), "%s", s->content_reply + 4);
	} else if ((why = smtp_data_refusal(s->data.flags)) != NULL) {
		log_info("session=%s client=%s message refused: %s", s->id,
		    s->client_ip, why);
		session_reply_now(s, 554, "5.6.0 Message refused: %s", why);
	} else if (s->local_error) {
		session_reply_now(s, 451, "4.3.0 Local error while storing the message");
	} else {
		session_wait(s, P_DATA_END);
		return;
	}
	session_txn_end(s);
}

/* Returns 1 to continue processing, 0 to stop. */
static int
session_read_content(struct smtp_session *s, struct evbuffer *in)
{
	struct evbuffer_iovec v;
	size_t want, used;
	int done = 0;

	if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
		return 0;
	want = v.iov_len;
	if (s->state == STATE_BDAT && want > s->bdat_left)
		want = s->bdat_left;
	used = smtp_data_feed(&s->data, v.iov_base, want, &s->chunk, &done);
	if (used == (size_t)-1) {
		session_reply_now(s, 421, "4.3.0 Out of memory");
		return 0;
	}
	evbuffer_drain(in, used);
	if (s->state == STATE_BDAT)
		s->bdat_left -= used;
	if (s->chunk.len >= SMTP_CHUNK_FLUSH || s->data.total > s->cfg->max_size)
		session_flush_chunk(s);
	if (s->state == STATE_DATA && done)
		session_content_end(s);
	return 1;
}

static void
session_bdat_chunk_done(struct smtp_session *s)
{
	if (s->bdat_last) {
		if (smtp_data_finish(&s->data, &s->chunk) == -1)
			s->local_error = 1;
		session_content_end(s);
		return;
	}
	smtp_session_enter(s, STATE_BDAT_WAIT);
	if (s->content_refused)
		session_reply_now(s, atoi(s->content_reply), "%s",
		    s->content_reply + 4);
	else
		session_reply_now(s, 250, "2.0.0 %zu octets received",
		    s->data.total);
}

static void
session_process(struct smtp_session *s)
{
	struct evbuffer *in;
	struct evbuffer_ptr eol;
	size_t eol_len, avail;
	char *line;

	while (!s->dead && s->pending == P_NONE && s->state != STATE_CLOSING &&
	    s->state != STATE_TLS && s->state != STATE_CONNECTED) {
		if (s->state == STATE_BDAT && s->bdat_left == 0) {
			session_bdat_chunk_done(s);
			continue;
		}
		if (s->discarding && s->discard_left == 0) {
			s->discarding = 0;
			session_reply_now(s, atoi(s->discard_reply), "%s",
			    s->discard_reply + 4);
			continue;
		}
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) >
		    SMTP_OUTPUT_MAX) {
			/* A client that pipelines without reading its replies
			 * waits until they drain (session_write_cb). */
			s->output_blocked = 1;
			break;
		}
		in = bufferevent_get_input(s->bev);
		avail = evbuffer_get_length(in);
		if (avail == 0)
			break;
		if (s->discarding) {
			size_t n = avail < s->discard_left ? avail : s->discard_left;

			evbuffer_drain(in, n);
			s->discard_left -= n;
			continue;
		}
		if (s->state == STATE_DATA || s->state == STATE_BDAT) {
			if (!session_read_content(s, in))
				break;
			continue;
		}
		eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
		if (eol.pos < 0) {
			if (avail > SMTP_LINE_MAX_PARAMS) {
				/* Never read the excess as a new command. */
				s->skipping_line = 1;
				evbuffer_drain(in, avail);
			}
			break;
		}
		if ((line = malloc((size_t)eol.pos + 1)) == NULL) {
			session_reply_now(s, 421, "4.3.0 Out of memory");
			break;
		}
		evbuffer_remove(in, line, (size_t)eol.pos);
		evbuffer_drain(in, eol_len);
		if (eol.pos > 0 && line[eol.pos - 1] == '\r')
			eol.pos--;
		if (s->skipping_line) {
			s->skipping_line = 0;
			session_reply_now(s, 500, "5.5.2 Error: command line too long "
			    "(RFC 5321 4.5.3.1.4)");
		} else
			session_command(s, line, (size_t)eol.pos);
		free(line);
	}
}

/* ---- connection ---- */

static void
session_free(struct smtp_session *s)
{
	session_txn_end(s);
	if (s->hooks->on_close)
		s->hooks->on_close(s, s->arg);
	if (s->bev)
		bufferevent_free(s->bev);
	if (s->ev_drain)
		event_free(s->ev_drain);
	event_free(s->ev_resume);
	free(s->helo);
	free(s->pending_line);
	free(s);
}

static void
session_kill(struct smtp_session *s)
{
	if (s->dead)
		return;
	s->dead = 1;
	bufferevent_disable(s->bev, EV_READ | EV_WRITE);
	session_resume_soon(s);
}

static void
session_close(struct smtp_session *s)
{
	if (s->state == STATE_CLOSING || s->dead)
		return;
	smtp_session_enter(s, STATE_CLOSING);
	s->pending = P_NONE;
	bufferevent_disable(s->bev, EV_READ);
	if (session_unsent(s) == 0)
		session_kill(s);
	else if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		session_write_cb(s->bev, s);
	/* else session_write_cb finishes once the replies are out */
}

void
smtp_session_shutdown(struct smtp_session *s, const char *text)
{
	if (s->dead || s->state == STATE_CLOSING)
		return;
	if (s->state != STATE_TLS)
		session_write_reply(s, 421, text);
	session_close(s);
}

void
smtp_session_abort(struct smtp_session *s)
{
	session_kill(s);
}

static void
session_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	if (s->dead) {
		session_free(s);
		return;
	}
	if (s->greeting_due) {
		s->greeting_due = 0;
		session_wait(s, P_GREETING);
		if (s->pending != P_NONE)
			return;
	}
	session_process(s);
}

static void
session_read_cb(struct bufferevent *bev, void *arg)
{
	session_process(arg);
}

/* Octets still to be written, including those the TLS filter has passed
 * to the socket layer below it. */
static size_t
session_unsent(struct smtp_session *s)
{
	struct bufferevent *under = bufferevent_get_underlying(s->bev);
	size_t n = evbuffer_get_length(bufferevent_get_output(s->bev));

	if (under)
		n += evbuffer_get_length(bufferevent_get_output(under));
	return n;
}

static void
session_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;
	struct timeval tv = { 0, 20000 };

	if (session_unsent(s) == 0 || ++s->drain_ticks > 50 * s->cfg->command_timeout)
		session_kill(s);
	else
		evtimer_add(s->ev_drain, &tv);
}

static void
session_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	if (s->state == STATE_CLOSING) {
		/* Deferred callbacks may report a drain that more replies
		 * have since refilled: only an empty buffer ends it. */
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) > 0)
			return;
		if (bufferevent_get_underlying(s->bev) == NULL) {
			session_kill(s);
			return;
		}
		/* TLS: the last reply may still sit below the filter. */
		if (s->ev_drain == NULL)
			s->ev_drain = evtimer_new(s->base, session_drain_cb, s);
		if (s->ev_drain == NULL)
			session_kill(s);
		else
			session_drain_cb(-1, 0, s);
		return;
	}
	if (s->output_blocked) {
		s->output_blocked = 0;
		session_resume_soon(s);
	}
}

static void
session_set_timeouts(struct smtp_session *s)
{
	struct timeval rd, wr;
	int secs = (s->state == STATE_DATA || s->state == STATE_BDAT) ?
	    s->cfg->data_timeout : s->cfg->command_timeout;

	rd.tv_sec = secs;
	rd.tv_usec = 0;
	wr.tv_sec = s->cfg->command_timeout;
	wr.tv_usec = 0;
	bufferevent_set_timeouts(s->bev, &rd, &wr);
}

static void
session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;
	char tls[160];

	if (what & BEV_EVENT_CONNECTED) {
		/* STARTTLS handshake complete: RFC 3207 4.2, forget all
		 * knowledge obtained before TLS, including the HELO. */
		s->tls = 1;
		tls_describe(bufferevent_openssl_get_ssl(s->bev), tls, sizeof(tls));
		log_info("session=%s client=%s starttls %s", s->id, s->client_ip, tls);
		free(s->helo);
		s->helo = NULL;
		s->esmtp = 0;
		smtp_session_enter(s, STATE_GREETED);
		bufferevent_enable(s->bev, EV_READ);
		session_resume_soon(s);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		log_info("session=%s client=%s timeout in state %s", s->id,
		    s->client_ip, smtp_state_names[s->state]);
		if (s->state == STATE_CLOSING || s->state == STATE_TLS) {
			session_kill(s);
			return;
		}
		s->pending = P_NONE;
		session_write_reply(s, 421, "4.4.2 Error: timeout exceeded");
		session_close(s);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e;

		while ((e = bufferevent_get_openssl_error(s->bev)) != 0) {
			char ebuf[256];

			ERR_error_string_n(e, ebuf, sizeof(ebuf));
			log_info("session=%s client=%s TLS error: %s", s->id,
			    s->client_ip, ebuf);
		}
	}
	if (s->state != STATE_CLOSING)
		log_info("session=%s client=%s lost connection in state %s",
		    s->id, s->client_ip, smtp_state_names[s->state]);
	session_kill(s);
}

static void
session_setup_bev(struct smtp_session *s)
{
	bufferevent_setcb(s->bev, session_read_cb, session_write_cb,
	    session_event_cb, s);
	/* Bound what one client can make us buffer. */
	bufferevent_setwatermark(s->bev, EV_READ, 0, 256 * 1024);
	session_set_timeouts(s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

struct smtp_session *
smtp_session_new(struct event_base *base, int fd, const struct sockaddr *peer,
    socklen_t peerlen, const struct smtp_server_config *cfg,
    const struct smtp_hooks *hooks, void *arg)
{
	struct smtp_session *s;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		close(fd);
		return NULL;
	}
	s->base = base;
	s->cfg = cfg;
	s->hooks = hooks;
	s->arg = arg;
	s->state = STATE_CONNECTED;
	snprintf(s->id, sizeof(s->id), "%llx", ++smtp_session_serial);
	if (peerlen > sizeof(s->peer))
		peerlen = sizeof(s->peer);
	memcpy(&s->peer, peer, peerlen);
	if (getnameinfo(peer, peerlen, s->client_ip, sizeof(s->client_ip),
	    NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(s->client_ip, sizeof(s->client_ip), "unknown");
	evutil_make_socket_nonblocking(fd);
	s->bev = bufferevent_socket_new(base, fd,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	s->ev_resume = event_new(base, -1, 0, session_resume_cb, s);
	if (s->bev == NULL || s->ev_resume == NULL) {
		if (s->bev)
			bufferevent_free(s->bev);
		else
			close(fd);
		if (s->ev_resume)
			event_free(s->ev_resume);
		free(s);
		return NULL;
	}
	session_setup_bev(s);
	/* The greeting is decided from the loop, not inside this call. */
	s->greeting_due = 1;
	session_resume_soon(s);
	return s;
}

void smtp_session_set_udata(struct smtp_session *s, void *u) { s->udata = u; }
void *smtp_session_udata(const struct smtp_session *s) { return s->udata; }
const char *smtp_session_id(const struct smtp_session *s) { return s->id; }
const char *smtp_session_client_ip(const struct smtp_session *s) { return s->client_ip; }
const char *smtp_session_helo(const struct smtp_session *s) { return s->helo; }
int smtp_session_esmtp(const struct smtp_session *s) { return s->esmtp; }
size_t smtp_session_rcpt_count(const struct smtp_session *s) { return s->nrcpt; }
int smtp_session_body_8bit(const struct smtp_session *s) { return s->body_8bit; }
int smtp_session_smtputf8(const struct smtp_session *s) { return s->smtputf8; }
size_t smtp_session_data_size(const struct smtp_session *s) { return s->data.total; }
int smtp_session_bdat(const struct smtp_session *s) { return s->bdat; }

const struct sockaddr *
smtp_session_client_addr(const struct smtp_session *s)
{
	return (const struct sockaddr *)&s->peer;
}

SSL *
smtp_session_ssl(const struct smtp_session *s)
{
	return s->tls ? bufferevent_openssl_get_ssl(s->bev) : NULL;
}

const char *
smtp_session_sender(const struct smtp_session *s)
{
	return s->sender ? s->sender : "";
}

const char *
smtp_session_rcpt(const struct smtp_session *s, size_t i)
{
	return i < s->nrcpt ? s->rcpts[i] : NULL;
}
