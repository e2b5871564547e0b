#include "smtp/session.h"
#include "smtp/session_int.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "smtp/command.h"
#include "smtp/datastream.h"
#include "smtp/sasl.h"
#include "smtp/tls.h"

/* TLS versions as metric labels; anything else is "other" */
static const char *const tls_versions[] = { "TLSv1.2", "TLSv1.3", NULL };

static const char *const smtp_state_names[] = {
	"connected", "greeted", "ready", "mail", "rcpt", "data", "bdat",
	"bdat-wait", "tls", "closing",
};

static unsigned long long smtp_session_serial;

static void session_process(struct smtp_session *s);

static void session_set_timeouts(struct smtp_session *s);
static void session_set_deadline(struct smtp_session *s);
static int session_content_on_time(struct smtp_session *s);
static void session_kill(struct smtp_session *s);
static size_t session_unsent(struct smtp_session *s);
static void session_watch_drain(struct smtp_session *s);
static void session_write_cb(struct bufferevent *bev, void *arg);

void
smtp_session_enter(struct smtp_session *s, enum smtp_state st)
{
	if (s->state == st)
		return;
	log_debug("session=%s state %s -> %s", s->id,
	    smtp_state_names[s->state], smtp_state_names[st]);
	s->state = st;
	/* RFC 5321 4.5.3.2: DATA/BDAT content has its own timeout. */
	session_set_timeouts(s);
	session_set_deadline(s);
}

void
smtp_session_write_reply(struct smtp_session *s, int code, const char *text)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);

	evbuffer_add_printf(out, "%03d %s\r\n", code, text);
	log_debug("session=%s reply=%s", s->id, log_safe(text));
	/* Errors slow the client down, then end the session (soft and
	 * hard error limits). 421 ends it anyway; a 452 for recipients
	 * past the limit (RFC 5321 4.5.3.1.10) is flow control; repeated
	 * answers to the chunks of a refused BDAT message count once. */
	if (code < 400 || code == 421 || s->state == STATE_CLOSING ||
	    (code == 452 && strncmp(text, "4.5.3", 5) == 0) ||
	    s->chunk_refusal)
		return;
	s->errors++;
	if (s->cfg->soft_error_limit > 0 && s->cfg->error_delay > 0 &&
	    s->errors > s->cfg->soft_error_limit)
		s->tarpit_due = 1;
}

void
smtp_session_violation(struct smtp_session *s, const char *kind, int code,
    const char *text, const char *detail)
{
	log_warning("session=%s client=%s protocol violation (%s): %s; "
	    "closing", s->id, s->client_ip, kind, detail);
	metrics_inc("mxgate_protocol_violations_total", "kind", kind);
	s->pending = P_NONE;
	smtp_session_write_reply(s, code, text);
	smtp_session_close(s);
}

/* Stop reading for secs seconds (error delay, pregreet watch). */
static void
session_pause(struct smtp_session *s, int secs)
{
	struct timeval tv = { secs, 0 };

	s->paused = 1;
	if (s->state != STATE_CONNECTED)
		bufferevent_disable(s->bev, EV_READ);
	evtimer_add(s->ev_pause, &tv);
}

/*
 * RFC 5321 3.1 and 4.3.1: a client waits for the greeting (and, RFC 2920
 * 3.1, for the replies to EHLO, HELO and DATA). Octets that arrived
 * before it (buffered, or waiting in the socket) mark a client that talks
 * blindly: spamware, or a protocol confusion attack.
 */
static size_t
session_input_waiting(struct smtp_session *s)
{
	size_t n = evbuffer_get_length(bufferevent_get_input(s->bev));
	evutil_socket_t fd;
	char c;

	if (n == 0 && bufferevent_get_underlying(s->bev) == NULL &&
	    (fd = bufferevent_getfd(s->bev)) >= 0 &&
	    recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 1)
		n = 1;
	return n;
}

static void
session_resume_soon(struct smtp_session *s)
{
	event_active(s->ev_resume, EV_WRITE, 0);
}

/* ---- transaction state ---- */

void
smtp_session_txn_end(struct smtp_session *s)
{
	size_t i;
	int had = s->sender != NULL;

	if (had && s->hooks->on_txn_end)
		s->hooks->on_txn_end(s, s->arg);
	free(s->sender);
	s->sender = NULL;
	for (i = 0; i < s->nrcpt; i++) {
		free(s->rcpts[i]);
		if (s->rcpt_dsn)
			free(s->rcpt_dsn[i].orcpt);
	}
	free(s->rcpts);
	s->rcpts = NULL;
	free(s->rcpt_dsn);
	s->rcpt_dsn = NULL;
	s->nrcpt = 0;
	s->body_8bit = s->smtputf8 = 0;
	free(s->dsn_envid);
	s->dsn_envid = NULL;
	s->dsn_ret = SMTP_RET_UNSET;
	buf_free(&s->chunk);
	s->bdat = s->bdat_last = 0;
	s->bdat_left = 0;
	s->content_refused = s->oversize = s->local_error = 0;
	s->bdat_clock = s->bdat_late = 0;
	memset(&s->data, 0, sizeof(s->data));
	if (s->state >= STATE_MAIL && s->state <= STATE_BDAT_WAIT)
		smtp_session_enter(s, STATE_READY);
}

/* RFC 3461: the DSN parameters of an accepted MAIL or RCPT (checked by
 * the command handler) outlive the command line. */
static int
session_keep_dsn_mail(struct smtp_session *s)
{
	struct smtp_dsn_mail dm;
	const char *err;

	if (smtp_path_dsn_mail(&s->pending_args, &dm, &err) == -1)
		return -1;
	s->dsn_ret = dm.ret;
	if (dm.envid && (s->dsn_envid = strdup(dm.envid)) == NULL)
		return -1;
	return 0;
}

static int
session_keep_dsn_rcpt(struct smtp_session *s)
{
	struct session_rcpt_dsn *d;
	struct smtp_dsn_rcpt dr;
	const char *err;

	if (smtp_path_dsn_rcpt(&s->pending_args, &dr, &err) == -1 ||
	    (d = realloc(s->rcpt_dsn, (s->nrcpt + 1) * sizeof(*d))) == NULL)
		return -1;
	s->rcpt_dsn = d;
	d[s->nrcpt].notify = dr.notify;
	d[s->nrcpt].orcpt = NULL;
	if (dr.orcpt && (d[s->nrcpt].orcpt = strdup(dr.orcpt)) == NULL)
		return -1;
	return 0;
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
			/* A refused HELO/EHLO undoes any earlier one. */
			free(s->helo);
			s->helo = NULL;
			s->esmtp = 0;
			smtp_session_enter(s, STATE_GREETED);
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
			if (session_keep_dsn_mail(s) == -1) {
				free(s->sender);
				s->sender = NULL;
			}
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
			if (r == NULL || copy == NULL ||
			    session_keep_dsn_rcpt(s) == -1) {
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
			s->data.normalise = s->normalise_newlines;
			smtp_session_enter(s, STATE_DATA);
		}
		break;
	case P_AUTH:
		/* RFC 4954 4: authenticated until the session ends */
		if (ok && (s->auth_user = strdup(s->auth_name)) == NULL)
			s->closing_after_reply = 1;
		explicit_bzero(s->auth_name, sizeof(s->auth_name));
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

	char refusal[300];
	size_t early;

	if (p == P_NONE || s->state == STATE_CLOSING || s->dead)
		return;
	s->pending = P_NONE;
	if (ok && (p == P_GREETING || p == P_HELO || p == P_EHLO ||
	    p == P_DATA) && (early = session_input_waiting(s)) > 0) {
		/* RFC 5321 3.1, RFC 2920 3.1: input that came before this
		 * reply could have been read (while it was being decided) */
		const char *after = p == P_HELO ? "HELO" : p == P_EHLO ?
		    "EHLO" : "DATA";
		char detail[80];

		if (p == P_GREETING)
			snprintf(detail, sizeof(detail), "%zu octet%s before "
			    "the greeting", early, early == 1 ? "" : "s");
		else
			snprintf(detail, sizeof(detail), "input sent after %s "
			    "before its reply", after);
		log_warning("session=%s client=%s protocol violation "
		    "(%s): %s; closing", s->id, s->client_ip,
		    p == P_GREETING ? "pregreet" : "pipelining", detail);
		metrics_inc("mxgate_protocol_violations_total", "kind",
		    p == P_GREETING ? "pregreet" : "pipelining");
		if (p == P_GREETING)
			snprintf(refusal, sizeof(refusal), "%s Error: client "
			    "talked before the greeting (RFC 5321 3.1); "
			    "closing", s->cfg->hostname);
		else
			snprintf(refusal, sizeof(refusal), "5.5.0 Error: SMTP "
			    "protocol synchronization");
		code = 554;
		text = refusal;
		ok = 0;
		s->closing_after_reply = 1;
	}
	if (p == P_DATA_END && ok)
		s->errors = s->junk = 0;	/* a sender, not a prober */
	if (p == P_BDAT) {
		/* RFC 3030 2: the chunk is read either way; a refusal
		 * discards the content and answers each chunk. */
		if (code == 421)
			smtp_session_write_reply(s, code, text);
		else if (!ok) {
			s->content_refused = 1;
			snprintf(s->content_reply, sizeof(s->content_reply),
			    "%03d %.250s", code, text);
		}
		smtp_session_enter(s, STATE_BDAT);
	} else {
		if (p == P_EHLO && ok)
			session_ehlo_reply(s);
		else
			smtp_session_write_reply(s, code, text);
		session_apply(s, p, ok);
		if (p == P_DATA_END)
			smtp_session_txn_end(s);
	}
	if (code == 421)
		s->closing_after_reply = 1;
	if (s->closing_after_reply) {
		smtp_session_close(s);
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
	case P_AUTH:
		session_decided(s, 235, "2.7.0 Authentication successful");
		break;
	case P_NONE:
		break;
	}
}

/* Begin waiting for a decision; returns after the hook returned (the
 * decision may or may not have been made). */
void
smtp_session_wait(struct smtp_session *s, enum smtp_pending p)
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
	case P_AUTH:
		if (s->hooks->on_auth)
			s->hooks->on_auth(s, s->auth_mech, s->auth_name,
			    s->auth_pass, s->arg);
		else
			smtp_session_reply(s, 454, "4.7.0 Authentication not available");
		break;
	case P_NONE:
		break;
	}
	s->in_hook--;
}

/* A reply that is not a decision (syntax errors, state errors). */
void
smtp_session_reply_now(struct smtp_session *s, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

void
smtp_session_reply_now(struct smtp_session *s, int code, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	smtp_session_write_reply(s, code, text);
	if (code == 421)
		smtp_session_close(s);
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
	/* RFC 4954 4: mechanisms that send passwords, only under TLS */
	if (s->cfg->auth && s->tls && s->hooks->on_auth)
		evbuffer_add_printf(out, "250-AUTH PLAIN LOGIN\r\n");
	evbuffer_add_printf(out, "250-ENHANCEDSTATUSCODES\r\n");
	evbuffer_add_printf(out, "250-8BITMIME\r\n");
	evbuffer_add_printf(out, "250-CHUNKING\r\n");
	evbuffer_add_printf(out, "250-DSN\r\n");	/* RFC 3461 */
	evbuffer_add_printf(out, "250 SMTPUTF8\r\n");
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

	/* All content is in: what follows (the hooks' DNS and the spool
	 * commit for on_data_end) is our time, not the client's. */
	evtimer_del(s->ev_deadline);
	session_flush_chunk(s);
	if (s->data.flags & SMTP_DATA_NORMALISED)
		log_info("session=%s client=%s bare CR or LF in the content "
		    "written as CRLF", s->id, s->client_ip);
	/* mxgate_messages_total (a refusal by the hooks is theirs to count).
	 * A BDAT message refused at its start (counted then) keeps that
	 * answer, as each of its chunks had, also when it grew too large:
	 * one final reply, counted once. */
	if (s->content_refused) {
		char code[4];

		memcpy(code, s->content_reply, 3);
		code[3] = '\0';
		smtp_session_reply_now(s, atoi(code), "%s", s->content_reply + 4);
	} else if (s->oversize) {
		metrics_inc("mxgate_messages_total", "outcome", "rejected",
		    "reason", "size");
		smtp_session_reply_now(s, 552, "5.3.4 Message size exceeds fixed "
		    "maximum message size (%zu)", s->cfg->max_size);
	} else if ((why = smtp_data_refusal(s->data.flags)) != NULL) {
		log_info("session=%s client=%s message refused: %s", s->id,
		    s->client_ip, why);
		metrics_inc("mxgate_messages_total", "outcome", "rejected",
		    "reason", "content");
		smtp_session_reply_now(s, 554, "5.6.0 Message refused: %s", why);
	} else if (s->local_error) {
		metrics_inc("mxgate_messages_total", "outcome", "deferred",
		    "reason", "storage");
		smtp_session_reply_now(s, 451, "4.3.0 Local error while storing the message");
	} else {
		smtp_session_wait(s, P_DATA_END);
		return;
	}
	smtp_session_txn_end(s);
}

/* ---- deadlines ---- */

static int
session_command_state(const struct smtp_session *s)
{
	return s->state == STATE_GREETED || s->state == STATE_READY ||
	    s->state == STATE_MAIL || s->state == STATE_RCPT ||
	    s->state == STATE_BDAT_WAIT;
}

/* RFC 5321 4.5.3.2: a whole command line within command_timeout from
 * when we began to wait for it; a client trickling octets does not
 * restart the clock (the read timeout alone would). */
static void
session_command_deadline(struct smtp_session *s)
{
	struct timeval tv = { s->cfg->command_timeout, 0 };

	if (session_command_state(s) && !s->discarding &&
	    !evtimer_pending(s->ev_deadline, NULL))
		evtimer_add(s->ev_deadline, &tv);
}

/* DATA content, a BDAT chunk, or a chunk discarded: data_timeout's grace
 * begins now, then min_data_rate is owed (session_content_on_time). */
void
smtp_session_content_clock(struct smtp_session *s)
{
	struct timeval tv = { s->cfg->data_timeout, 0 };

	evtimer_del(s->ev_deadline);
	if (s->cfg->min_data_rate <= 0)
		return;
	if (s->state == STATE_BDAT && s->bdat_clock) {
		/* a later chunk of the same message: one clock for the whole
		 * message, the time between chunks included, so a client
		 * cannot trickle it out in tiny chunks */
		if (!session_content_on_time(s)) {
			s->bdat_late = 1;	/* ended by the deadline callback */
			tv.tv_sec = 0;
			evtimer_add(s->ev_deadline, &tv);
		}
		return;
	}
	s->bdat_clock = s->state == STATE_BDAT;
	clock_gettime(CLOCK_MONOTONIC, &s->content_start);
	s->content_read = 0;
	evtimer_add(s->ev_deadline, &tv);
}

/* Content owes min_data_rate octets/s after data_timeout's grace: 1 if it
 * is within that (the deadline is moved on), 0 if late. */
static int
session_content_on_time(struct smtp_session *s)
{
	struct timespec mono;
	struct timeval tv;
	double elapsed, allowed, left;

	/* a monotonic clock: a step of the wall clock cuts nobody off */
	clock_gettime(CLOCK_MONOTONIC, &mono);
	elapsed = (double)(mono.tv_sec - s->content_start.tv_sec) +
	    (double)(mono.tv_nsec - s->content_start.tv_nsec) / 1e9;
	allowed = (double)s->cfg->data_timeout +
	    (double)s->content_read / (double)s->cfg->min_data_rate;
	if (elapsed >= allowed)
		return 0;
	left = allowed - elapsed;
	if (left < 0.05)
		left = 0.05;
	tv.tv_sec = (long)left;
	tv.tv_usec = (long)((left - (double)tv.tv_sec) * 1e6);
	evtimer_add(s->ev_deadline, &tv);
	return 1;
}

/* On each state change: the TLS handshake and DATA/BDAT content have
 * deadlines of their own; command states arm theirs when they wait. */
static void
session_set_deadline(struct smtp_session *s)
{
	struct timeval tv = { 0, 0 };

	if (s->ev_deadline == NULL)
		return;
	evtimer_del(s->ev_deadline);
	if (s->bdat_late) {	/* the message is late: end it from the loop */
		evtimer_add(s->ev_deadline, &tv);
		return;
	}
	if (s->state == STATE_TLS && s->cfg->tls_timeout > 0) {
		tv.tv_sec = s->cfg->tls_timeout;
		evtimer_add(s->ev_deadline, &tv);
	} else if (s->state == STATE_DATA || s->state == STATE_BDAT)
		smtp_session_content_clock(s);
}

static void
session_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;
	char detail[128];

	if (s->dead || s->state == STATE_CLOSING)
		return;
	if (s->state == STATE_TLS) {
		snprintf(detail, sizeof(detail), "TLS handshake not done "
		    "within %ds", s->cfg->tls_timeout);
		log_info("session=%s client=%s %s", s->id, s->client_ip, detail);
		metrics_inc("mxgate_protocol_violations_total", "kind",
		    "tls_timeout");
		session_kill(s);
		return;
	}
	if (s->pending != P_NONE)
		return;		/* our decision is awaited, not the client */
	if (s->state == STATE_DATA || s->state == STATE_BDAT ||
	    s->discarding || s->bdat_late) {
		if (!s->bdat_late && (s->cfg->min_data_rate <= 0 ||
		    session_content_on_time(s)))
			return;
		snprintf(detail, sizeof(detail), "content slower than %d "
		    "octets/s (%zu octets in %lds)", s->cfg->min_data_rate,
		    s->content_read, (long)s->cfg->data_timeout +
		    (long)(s->content_read / (size_t)s->cfg->min_data_rate));
		smtp_session_violation(s, "slow_data", 421,
		    "4.4.2 Error: timeout exceeded (data arrives too slowly)",
		    detail);
		return;
	}
	if (!session_command_state(s))
		return;
	snprintf(detail, sizeof(detail), "no whole command within %ds in "
	    "state %s", s->cfg->command_timeout, smtp_state_names[s->state]);
	smtp_session_violation(s, "slow_command", 421,
	    "4.4.2 Error: timeout exceeded", detail);
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
		smtp_session_reply_now(s, 421, "4.3.0 Out of memory");
		return 0;
	}
	evbuffer_drain(in, used);
	s->content_read += used;
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
	if (s->content_refused) {
		/* counted once, with the answer to the last chunk */
		s->chunk_refusal = 1;
		smtp_session_reply_now(s, atoi(s->content_reply), "%s",
		    s->content_reply + 4);
		s->chunk_refusal = 0;
	} else
		smtp_session_reply_now(s, 250, "2.0.0 %zu octets received",
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
	    s->state != STATE_TLS && s->state != STATE_CONNECTED &&
	    !s->paused) {
		if (s->cfg->hard_error_limit > 0 &&
		    s->errors >= s->cfg->hard_error_limit) {
			char detail[64];

			snprintf(detail, sizeof(detail), "%d errors", s->errors);
			smtp_session_violation(s, "errors", 421,
			    "4.7.0 Error: too many errors; closing", detail);
			break;
		}
		if (s->tarpit_due) {
			/* past the soft limit: each error costs the client
			 * error_delay seconds */
			s->tarpit_due = 0;
			session_pause(s, s->cfg->error_delay);
			break;
		}
		if (s->state == STATE_BDAT && s->bdat_left == 0) {
			session_bdat_chunk_done(s);
			continue;
		}
		if (s->discarding && s->discard_left == 0) {
			s->discarding = 0;
			evtimer_del(s->ev_deadline);	/* the content clock */
			smtp_session_reply_now(s, atoi(s->discard_reply), "%s",
			    s->discard_reply + 4);
			continue;
		}
		if (session_unsent(s) > SMTP_OUTPUT_MAX) {
			/* A client that pipelines without reading its replies
			 * waits until they drain (session_write_cb; over TLS
			 * session_drain_cb, which sees below the filter). */
			s->output_blocked = 1;
			if (bufferevent_get_underlying(s->bev) != NULL)
				session_watch_drain(s);
			break;
		}
		in = bufferevent_get_input(s->bev);
		avail = evbuffer_get_length(in);
		if (avail == 0) {
			session_command_deadline(s);
			break;
		}
		if (s->discarding) {
			size_t n = avail < s->discard_left ? avail : s->discard_left;

			evbuffer_drain(in, n);
			s->discard_left -= n;
			s->content_read += n;
			continue;
		}
		if (s->state == STATE_DATA || s->state == STATE_BDAT) {
			if (!session_read_content(s, in))
				break;
			continue;
		}
		eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
		if (eol.pos < 0) {
			char head[5] = { 0 };

			evbuffer_copyout(in, head, sizeof(head));
			/* RFC 4954 4: AUTH lines may reach 12288 octets */
			if (avail > (s->auth_step != AUTH_IDLE ||
			    (avail >= 5 && strncasecmp(head, "AUTH ", 5) == 0) ?
			    (size_t)SASL_LINE_MAX : (size_t)SMTP_LINE_MAX_PARAMS)) {
				/* Never read the excess as a new command. An
				 * unreadable BDAT leaves the stream out of sync:
				 * close (RFC 3030 2). */
				if (strncasecmp(head, "BDAT ", 5) == 0) {
					smtp_session_reply_now(s, 501,
					    "5.5.4 Syntax: BDAT size [LAST]");
					smtp_session_close(s);
					break;
				}
				s->skipping_line = 1;
				evbuffer_drain(in, avail);
			}
			session_command_deadline(s);
			break;
		}
		if ((line = malloc((size_t)eol.pos + 1)) == NULL) {
			smtp_session_reply_now(s, 421, "4.3.0 Out of memory");
			break;
		}
		evbuffer_remove(in, line, (size_t)eol.pos);
		evbuffer_drain(in, eol_len);
		evtimer_del(s->ev_deadline);	/* a whole command line */
		if (eol.pos > 0 && line[eol.pos - 1] == '\r')
			eol.pos--;
		if (s->skipping_line) {
			s->skipping_line = 0;
			if (s->auth_step != AUTH_IDLE)
				smtp_session_auth_overlong(s);
			else
				smtp_session_reply_now(s, 500, "5.5.2 Error: command "
				    "line too long (RFC 5321 4.5.3.1.4)");
		} else if (s->auth_step != AUTH_IDLE) {
			if ((size_t)eol.pos + 2 > SASL_LINE_MAX)
				smtp_session_auth_overlong(s);
			else
				smtp_session_auth_line(s, line, (size_t)eol.pos);
			explicit_bzero(line, (size_t)eol.pos);
		} else {
			smtp_session_command(s, line, (size_t)eol.pos,
			    evbuffer_get_length(in) > 0);
			if (eol.pos >= 4 && strncasecmp(line, "AUTH", 4) == 0)
				explicit_bzero(line, (size_t)eol.pos);
		}
		free(line);
	}
}

/* ---- connection ---- */

static void
session_free(struct smtp_session *s)
{
	smtp_session_txn_end(s);
	if (s->hooks->on_close)
		s->hooks->on_close(s, s->arg);
	if (s->bev)
		bufferevent_free(s->bev);
	if (s->ev_drain)
		event_free(s->ev_drain);
	event_free(s->ev_resume);
	event_free(s->ev_pause);
	event_free(s->ev_deadline);
	explicit_bzero(s->auth_pass, sizeof(s->auth_pass));
	free(s->auth_user);
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

void
smtp_session_close(struct smtp_session *s)
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
		smtp_session_write_reply(s, 421, text);
	smtp_session_close(s);
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
	if (s->greeting_due && s->state == STATE_CONNECTED) {
		if (s->cfg->pregreet_wait > 0 && !s->pregreet_watched) {
			/* watch for a client talking first (postscreen's
			 * pregreet test) */
			s->pregreet_watched = 1;
			session_pause(s, s->cfg->pregreet_wait);
			return;
		}
		if (s->paused)
			return;
		s->greeting_due = 0;
		smtp_session_wait(s, P_GREETING);
		if (s->pending != P_NONE)
			return;
	}
	session_process(s);
}

static void
session_pause_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	s->paused = 0;
	if (s->dead || s->state == STATE_CLOSING)
		return;
	if (s->greeting_due && s->state == STATE_CONNECTED) {
		session_resume_soon(s);
		return;
	}
	if (s->pending == P_NONE && s->state != STATE_TLS)
		bufferevent_enable(s->bev, EV_READ);
	session_resume_soon(s);
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

/*
 * Waits for the replies to drain, to close after the last one or to resume
 * a client held back because it does not read. Polled every 20 ms: over
 * TLS the filter's write callback cannot see the socket layer below it.
 * Bounded by the command timeout.
 */
static void
session_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;
	struct timeval tv = { 0, 20000 };
	size_t left = session_unsent(s);

	if (s->state == STATE_CLOSING) {
		if (left == 0) {
			session_kill(s);
			return;
		}
	} else if (s->output_blocked) {
		if (left <= SMTP_OUTPUT_MAX / 2) {
			s->output_blocked = 0;
			session_resume_soon(s);
			return;
		}
	} else
		return;
	if (++s->drain_ticks > 50 * s->cfg->command_timeout) {
		log_info("session=%s client=%s timeout writing replies", s->id,
		    s->client_ip);
		session_kill(s);
		return;
	}
	evtimer_add(s->ev_drain, &tv);
}

static void
session_watch_drain(struct smtp_session *s)
{
	if (s->ev_drain == NULL &&
	    (s->ev_drain = evtimer_new(s->base, session_drain_cb, s)) == NULL) {
		session_kill(s);
		return;
	}
	if (evtimer_pending(s->ev_drain, NULL))
		return;
	s->drain_ticks = 0;
	session_drain_cb(-1, 0, s);
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
		session_watch_drain(s);
		return;
	}
	if (s->output_blocked && bufferevent_get_underlying(s->bev) == NULL) {
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

	if (s->state == STATE_TLS && s->cfg->tls_timeout > 0)
		secs = s->cfg->tls_timeout;
	rd.tv_sec = secs;
	rd.tv_usec = 0;
	wr.tv_sec = s->state == STATE_TLS ? secs : s->cfg->command_timeout;
	wr.tv_usec = 0;
	bufferevent_set_timeouts(s->bev, &rd, &wr);
}

static void
session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;
	char tls[160];

	if (what & BEV_EVENT_CONNECTED) {
		s->tls = 1;
		tls_describe(bufferevent_openssl_get_ssl(s->bev), tls, sizeof(tls));
		metrics_inc("mxgate_tls_handshakes_total", "direction", "in",
		    "version", metrics_vocab(tls_version(
		    bufferevent_openssl_get_ssl(s->bev)), tls_versions));
		if (s->greeting_due) {
			/* RFC 8314 3.3: implicit TLS is up; now the greeting. */
			log_info("session=%s client=%s tls %s", s->id,
			    s->client_ip, tls);
			smtp_session_enter(s, STATE_CONNECTED);
			session_resume_soon(s);
			return;
		}
		/* STARTTLS handshake complete: RFC 3207 4.2, forget all
		 * knowledge obtained before TLS, including the HELO. */
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
		if (s->state == STATE_CLOSING && !(what & BEV_EVENT_WRITING))
			return;	/* a read timeout racing a deadline's 421 */
		if (s->state == STATE_CLOSING || s->state == STATE_TLS) {
			session_kill(s);
			return;
		}
		s->pending = P_NONE;
		smtp_session_write_reply(s, 421, "4.4.2 Error: timeout exceeded");
		smtp_session_close(s);
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

void
smtp_session_setup_bev(struct smtp_session *s)
{
	bufferevent_setcb(s->bev, session_read_cb, session_write_cb,
	    session_event_cb, s);
	/* Bound what one client can make us buffer. */
	bufferevent_setwatermark(s->bev, EV_READ, 0, 256 * 1024);
	session_set_timeouts(s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/*
 * RFC 8314 3.3: TLS from the first octet. The handshake is read under the
 * command timeout (session_set_timeouts); a timeout or failure in
 * STATE_TLS drops the connection without a reply.
 */
static int
session_implicit_tls(struct smtp_session *s)
{
	struct bufferevent *tb;
	SSL *ssl;

	if (s->cfg->ssl_ctx == NULL || (ssl = SSL_new(s->cfg->ssl_ctx)) == NULL) {
		log_error("session=%s client=%s implicit TLS without a TLS "
		    "context", s->id, s->client_ip);
		return -1;
	}
	tb = bufferevent_openssl_filter_new(s->base, s->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (tb == NULL) {
		SSL_free(ssl);
		return -1;
	}
	s->bev = tb;
	smtp_session_setup_bev(s);
	smtp_session_enter(s, STATE_TLS);
	return 0;
}

struct smtp_session *
smtp_session_new(struct event_base *base, int fd, const struct sockaddr *peer,
    socklen_t peerlen, const struct smtp_server_config *cfg,
    const struct smtp_hooks *hooks, void *arg)
{
	struct smtp_session *s;
	int one = 1;

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
	/* Replies are small writes made as decisions arrive: with Nagle's
	 * algorithm the second of two pipelined replies waits for the
	 * client's delayed ACK (~40 ms). Output is coalesced per loop
	 * iteration anyway. (Not a TCP socket: ignored.) */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->bev = bufferevent_socket_new(base, fd,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	s->ev_resume = event_new(base, -1, 0, session_resume_cb, s);
	s->ev_pause = evtimer_new(base, session_pause_cb, s);
	s->ev_deadline = evtimer_new(base, session_deadline_cb, s);
	if (s->bev == NULL || s->ev_resume == NULL || s->ev_pause == NULL ||
	    s->ev_deadline == NULL) {
		if (s->bev)
			bufferevent_free(s->bev);
		else
			close(fd);
		if (s->ev_resume)
			event_free(s->ev_resume);
		if (s->ev_pause)
			event_free(s->ev_pause);
		if (s->ev_deadline)
			event_free(s->ev_deadline);
		free(s);
		return NULL;
	}
	if (!cfg->implicit_tls)
		smtp_session_setup_bev(s);
	else if (session_implicit_tls(s) == -1) {
		/* Not yet the caller's: no hooks (closes fd) */
		bufferevent_free(s->bev);
		event_free(s->ev_resume);
		event_free(s->ev_pause);
		event_free(s->ev_deadline);
		free(s);
		return NULL;
	}
	/* The greeting is decided from the loop, not inside this call (with
	 * implicit TLS: once the handshake is done, session_event_cb). */
	s->greeting_due = 1;
	if (!cfg->implicit_tls)
		session_resume_soon(s);
	return s;
}

void
smtp_session_set_normalise_newlines(struct smtp_session *s, int on)
{
	s->normalise_newlines = on;
	s->data.normalise = on;	/* BDAT: its content state already began */
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
enum smtp_dsn_ret smtp_session_dsn_ret(const struct smtp_session *s) { return s->dsn_ret; }
const char *smtp_session_dsn_envid(const struct smtp_session *s) { return s->dsn_envid; }

int
smtp_session_rcpt_notify(const struct smtp_session *s, size_t i)
{
	return i < s->nrcpt && s->rcpt_dsn ? s->rcpt_dsn[i].notify : 0;
}

const char *
smtp_session_rcpt_orcpt(const struct smtp_session *s, size_t i)
{
	return i < s->nrcpt && s->rcpt_dsn ? s->rcpt_dsn[i].orcpt : NULL;
}
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
