/*
 * smtp/client: one outbound SMTP connection (RFC 5321) on a libevent base.
 *
 * Reply lines are cut from the input here and parsed by smtp/reply, which
 * bounds them. Every reply goes through client_dispatch(), which hands it
 * to the handler of the current state; client_enter() is the only writer
 * of the state. Every function that may run a caller's callback returns -1 when
 * the client is gone afterwards (the caller freed it); its callers then
 * return at once without touching it.
 */
#include "smtp/client.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
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
#include <openssl/x509v3.h>

#include "lib/log.h"
#include "lib/metrics.h"
#include "smtp/path.h"
#include "smtp/reply.h"
#include "smtp/tls.h"

/* RFC 5321 4.5.3.1.3: 256 octets per path; twice that is lenient. */
#define CLIENT_PATH_MAX	512
#define CLIENT_CMD_MAX	(CLIENT_PATH_MAX + 512)
#define CLIENT_CHUNK	(64 * 1024)	/* one pread() */
#define CLIENT_LOWAT	(64 * 1024)	/* refill when output drains below */
#define CLIENT_HIWAT	(256 * 1024)	/* stop refilling above */

/* TLS versions as metric labels; anything else is "other" */
static const char *const tls_versions[] = { "TLSv1.2", "TLSv1.3", NULL };

enum client_state {
	CLIENT_CONNECT, CLIENT_GREETING, CLIENT_EHLO, CLIENT_HELO,
	CLIENT_STARTTLS, CLIENT_HANDSHAKE, CLIENT_READY, CLIENT_MAIL,
	CLIENT_RCPT, CLIENT_DATA, CLIENT_BODY, CLIENT_DOT, CLIENT_RSET,
	CLIENT_QUIT, CLIENT_DEAD,
};

/* Name for logs, where a failure happened, and what a timeout cut short. */
static const struct {
	const char *name;
	const char *where;
	const char *waiting;
} client_states[] = {
	{ "connect", "while connecting", "while connecting" },
	{ "greeting", "waiting for greeting", "waiting for greeting" },
	{ "ehlo", "after EHLO", "waiting for reply to EHLO" },
	{ "helo", "after HELO", "waiting for reply to HELO" },
	{ "starttls", "after STARTTLS", "waiting for reply to STARTTLS" },
	{ "handshake", "during TLS handshake", "during TLS handshake" },
	{ "ready", "while idle", "while idle" },
	{ "mail", "after MAIL", "waiting for reply to MAIL" },
	{ "rcpt", "after RCPT", "waiting for reply to RCPT" },
	{ "data", "after DATA", "waiting for reply to DATA" },
	{ "body", "while sending message", "while sending message" },
	{ "dot", "after end of data", "waiting for reply to end of data" },
	{ "rset", "after RSET", "waiting for reply to RSET" },
	{ "quit", "after QUIT", "waiting for reply to QUIT" },
	{ "dead", "after close", "after close" },
};

#define CAP_PIPELINING	0x01
#define CAP_CHUNKING	0x02
#define CAP_8BITMIME	0x04
#define CAP_SMTPUTF8	0x08
#define CAP_STARTTLS	0x10
#define CAP_SIZE	0x20
#define CAP_DSN		0x40

static const struct {
	const char *keyword;
	unsigned flag;
} client_keywords[] = {
	{ "PIPELINING", CAP_PIPELINING },	/* RFC 2920 */
	{ "CHUNKING", CAP_CHUNKING },		/* RFC 3030 */
	{ "8BITMIME", CAP_8BITMIME },		/* RFC 6152 */
	{ "SMTPUTF8", CAP_SMTPUTF8 },		/* RFC 6531 */
	{ "STARTTLS", CAP_STARTTLS },		/* RFC 3207 */
	{ "SIZE", CAP_SIZE },			/* RFC 1870 */
	{ "DSN", CAP_DSN },			/* RFC 3461 */
};

struct client_txn {
	const struct smtp_client_msg *m;
	smtp_client_sent_cb cb;
	void	*arg;
	struct smtp_client_reply *replies;
	unsigned char *done;		/* replies[i] is final */
	size_t	 next_send;		/* next RCPT to send */
	size_t	 next_reply;		/* RCPT the next reply belongs to */
	size_t	 naccepted;
	int	 mail_failed;
	int	 bdat;
	int	 need_crlf;		/* content lacks its final CRLF */
	int	 bol;			/* dot-stuffing: at beginning of line */
	off_t	 off;			/* next byte of content to send */
	struct smtp_client_reply final;	/* for RSET and deferred endings */
	int	 final_conn_ok;
};

struct smtp_client {
	struct event_base *base;
	struct bufferevent *bev;
	struct event	*timer;
	struct event	*defer;
	SSL		*ssl;		/* owned by bev once TLS is on */
	SSL_CTX		*ssl_ctx;
	enum smtp_client_tls tls;
	enum client_state state;
	char		*helo;
	char		*servername;
	int		 connect_timeout;
	int		 command_timeout;
	int		 data_timeout;
	smtp_client_ready_cb ready_cb;
	void		*ready_arg;

	unsigned	 caps, newcaps;	/* in force; being read from EHLO */
	unsigned long long size_max;	/* RFC 1870 limit, 0: none */
	unsigned long long new_size_max;
	int		 tls_active;
	int		 tls_verified;	/* chain and name checked out */
	int		 in_cb;		/* depth of caller callbacks */
	int		 freed;		/* freed from inside a callback */
	int		 defer_ready;	/* deferred ready_cb(0, err) */
	int		 in_txn;
	struct client_txn txn;

	struct smtp_client_reply reply;	/* the last one read */
	struct smtp_reply parser;	/* the one being read */

	char		*chunk;		/* 3 * CLIENT_CHUNK: read, stuffed */
	char		 err[512];
	char		 peer[80];
	char		 tls_info[128];
	char		 tls_version[16];
};

static void client_read_cb(struct bufferevent *, void *);
static void client_write_cb(struct bufferevent *, void *);
static void client_event_cb(struct bufferevent *, short, void *);
static int client_fail(struct smtp_client *, const char *, ...)
	__attribute__((format(printf, 2, 3)));
static void client_cmd(struct smtp_client *, const char *, ...)
	__attribute__((format(printf, 2, 3)));
static void client_reply_local(struct smtp_client_reply *, int,
    const char *, ...) __attribute__((format(printf, 3, 4)));

static int
client_tls_required(const struct smtp_client *c)
{
	return c->tls == SMTP_TLS_REQUIRED || c->tls == SMTP_TLS_VERIFY;
}

static void
client_enter(struct smtp_client *c, enum client_state state)
{
	log_debug("smtp client peer=%s state=%s->%s", c->peer,
	    client_states[c->state].name, client_states[state].name);
	c->state = state;
}

/*
 * The deadline of a reply runs from when its command was queued (RFC 5321
 * 4.5.3.2: a timeout per command, 4.5.3.2.6 for the end of data). Input
 * that does not complete a reply never moves it: a server that trickles a
 * line, or continuation lines without end, is cut off at the deadline.
 * Only sending the content re-arms it, as each block leaves (4.5.3.2.5).
 */
static void
client_arm(struct smtp_client *c, int secs)
{
	struct timeval tv = { secs, 0 };

	evtimer_add(c->timer, &tv);
}

/* Enter a state that waits for a reply. */
static int
client_wait(struct smtp_client *c, enum client_state state)
{
	client_enter(c, state);
	client_arm(c, c->command_timeout);
	return 0;
}

/* Close the connection; the struct lives on in state dead. */
static void
client_drop(struct smtp_client *c)
{
	if (c->bev != NULL) {
		/* Also frees the SSL and the underlying bufferevent. */
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	c->ssl = NULL;
	if (c->timer != NULL)
		evtimer_del(c->timer);
	if (c->state != CLIENT_DEAD)
		client_enter(c, CLIENT_DEAD);
}

static void
client_destroy(struct smtp_client *c)
{
	client_drop(c);
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->defer != NULL)
		event_free(c->defer);
	free(c->txn.replies);
	free(c->txn.done);
	free(c->helo);
	free(c->servername);
	free(c->chunk);
	free(c);
}

/* Free now, or when the caller's callback on the stack returns. */
static int
client_release(struct smtp_client *c)
{
	if (c->in_cb > 0) {
		c->freed = 1;
		client_drop(c);
		event_del(c->defer);
	} else
		client_destroy(c);
	return -1;
}

/* After a caller's callback: -1 if it freed us. */
static int
client_cb_done(struct smtp_client *c)
{
	c->in_cb--;
	if (!c->freed)
		return 0;
	if (c->in_cb == 0)
		client_destroy(c);
	return -1;
}

static int
client_call_ready(struct smtp_client *c, int ok, const char *err)
{
	c->in_cb++;
	c->ready_cb(c, ok, err, c->ready_arg);
	return client_cb_done(c);
}

static void
client_reply_local(struct smtp_client_reply *r, int code, const char *fmt,
    ...)
{
	va_list ap;

	r->code = code;
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}

/*
 * End the transaction: recipients without a final reply get r. The
 * connection stays for another message only if conn_ok and still open.
 */
static int
client_finish(struct smtp_client *c, const struct smtp_client_reply *r,
    int conn_ok)
{
	struct client_txn t = c->txn;
	size_t i;
	int rv;

	for (i = 0; i < t.m->nrcpt; i++)
		if (!t.done[i])
			t.replies[i] = *r;
	memset(&c->txn, 0, sizeof(c->txn));
	c->in_txn = 0;
	if (conn_ok && c->bev != NULL) {
		evtimer_del(c->timer);
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
		client_enter(c, CLIENT_READY);
	} else {
		conn_ok = 0;
		client_drop(c);
	}
	c->in_cb++;
	t.cb(c, t.replies, conn_ok, t.arg);
	rv = client_cb_done(c);
	free(t.replies);
	free(t.done);
	return rv;
}

/* Connection-level failure: close and tell whoever waits. */
static int
client_fail(struct smtp_client *c, const char *fmt, ...)
{
	struct smtp_client_reply r;
	enum client_state state = c->state;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r.text, sizeof(r.text), fmt, ap);
	va_end(ap);
	r.code = 0;
	log_debug("smtp client peer=%s state=%s failed: %s", c->peer,
	    client_states[state].name, log_safe(r.text));
	client_drop(c);
	if (state == CLIENT_QUIT)
		return client_release(c);
	/*
	 * The reply that made us RSET says more than the loss, and so does
	 * a local verdict still waiting for the loop (state ready).
	 */
	if (c->in_txn)
		return client_finish(c, state == CLIENT_RSET ||
		    state == CLIENT_READY ? &c->txn.final : &r, 0);
	if (state < CLIENT_READY)
		return client_call_ready(c, 0, r.text);
	return 0;
}

/* Run an ending from the loop, never from inside the caller's call. */
static void
client_defer_txn(struct smtp_client *c, const struct smtp_client_reply *r,
    int conn_ok)
{
	c->txn.final = *r;
	c->txn.final_conn_ok = conn_ok;
	event_active(c->defer, EV_TIMEOUT, 1);
}

static void
client_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;

	if (c->defer_ready) {
		c->defer_ready = 0;
		client_call_ready(c, 0, c->err);
	} else if (c->in_txn)
		client_finish(c, &c->txn.final, c->txn.final_conn_ok);
}

static void
client_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;

	if (c->state == CLIENT_QUIT)
		client_release(c);
	else
		client_fail(c, "timeout %s", client_states[c->state].waiting);
}

/* Commands are queued on the output buffer; libevent writes them. */
static void
client_cmd(struct smtp_client *c, const char *fmt, ...)
{
	char line[CLIENT_CMD_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	/* Paths and names are length-checked: commands always fit. */
	log_assert(n >= 0 && (size_t)n < sizeof(line) - 2);
	log_debug("smtp client peer=%s sent=%s", c->peer, log_safe(line));
	memcpy(line + n, "\r\n", 2);
	bufferevent_write(c->bev, line, (size_t)n + 2);
}

/* Paths go inside <>; refuse anything that could end the command. */
static int
client_path_ok(const char *s)
{
	int quoted = 0;

	if (strlen(s) > CLIENT_PATH_MAX)
		return 0;
	/* RFC 5321 4.1.2: "<" and ">" only inside a quoted local part
	 * (qtextSMTP), where they cannot end the path */
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
		if (quoted && *s == '\\' && s[1] != '\0')
			s++;	/* quoted-pairSMTP */
		else if (*s == '"')
			quoted = !quoted;
		else if (!quoted && (*s == '<' || *s == '>'))
			return 0;
	}
	return !quoted;
}

static size_t
client_next_rcpt(struct smtp_client *c, size_t i)
{
	while (i < c->txn.m->nrcpt && c->txn.done[i])
		i++;
	return i;
}

static void
client_send_rcpt(struct smtp_client *c)
{
	const struct smtp_client_msg *m = c->txn.m;
	size_t i = c->txn.next_send;
	const char *notify = NULL, *orcpt = NULL;

	/* RFC 3461 4.1, 4.2: passed on only to a server that offers DSN;
	 * checked again, as nothing else may reach the command line */
	if (c->caps & CAP_DSN) {
		int mask;

		notify = m->dsn_notify ? m->dsn_notify[i] : NULL;
		orcpt = m->dsn_orcpt ? m->dsn_orcpt[i] : NULL;
		if (notify && smtp_dsn_notify_parse(notify, &mask) == -1)
			notify = NULL;
		if (orcpt && (smtp_dsn_orcpt_check(orcpt) == -1 ||
		    strlen(m->rcpts[i]) + strlen(orcpt) + 64 > CLIENT_CMD_MAX))
			orcpt = NULL;	/* optional: better without */
	}
	client_cmd(c, "RCPT TO:<%s>%s%s%s%s", m->rcpts[i],
	    notify ? " NOTIFY=" : "", notify ? notify : "",
	    orcpt ? " ORCPT=" : "", orcpt ? orcpt : "");
	c->txn.next_send = client_next_rcpt(c, i + 1);
}

static int
client_send_ehlo(struct smtp_client *c)
{
	c->newcaps = 0;
	c->new_size_max = 0;
	client_cmd(c, "EHLO %s", c->helo);
	return client_wait(c, CLIENT_EHLO);
}

static int
client_ready(struct smtp_client *c)
{
	evtimer_del(c->timer);
	client_enter(c, CLIENT_READY);
	return client_call_ready(c, 1, NULL);
}

/* RFC 3207 4: after 220 to STARTTLS, the handshake starts at once. */
static int
client_starttls(struct smtp_client *c)
{
	unsigned char a[sizeof(struct in6_addr)];
	struct bufferevent *fbev;
	const char *sni = c->servername;
	SSL *ssl;

	/*
	 * RFC 3207 5 / CVE-2011-0411: bytes the server sent after its 220
	 * came in plaintext and must not be read as if from inside TLS.
	 */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		return client_fail(c, "STARTTLS: data after the 220 reply");
	if ((ssl = SSL_new(c->ssl_ctx)) == NULL)
		return client_fail(c, "STARTTLS: SSL_new failed");
	if (sni != NULL && *sni != '\0' && (inet_pton(AF_INET, sni, a) == 1 ||
	    inet_pton(AF_INET6, sni, a) == 1)) {
		/* RFC 6066 3: SNI carries host names only, never literals;
		 * a literal is checked against iPAddress SANs. */
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), sni) != 1) {
			SSL_free(ssl);
			return client_fail(c, "STARTTLS: cannot set the address "
			    "to verify");
		}
	} else if (sni != NULL && *sni != '\0') {
		SSL_set_tlsext_host_name(ssl, sni);
		/* RFC 6125 6.4: the reference identity is the name we looked
		 * up (the MX host, or the route's host); no partial
		 * wildcards. */
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(ssl, sni) != 1) {
			SSL_free(ssl);
			return client_fail(c, "STARTTLS: cannot set the host "
			    "name to verify");
		}
	}
	/* The handshake fails on a bad certificate only in VERIFY mode;
	 * otherwise the result is only recorded (verified=no). */
	if (c->tls == SMTP_TLS_VERIFY)
		SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	fbev = bufferevent_openssl_filter_new(c->base, c->bev, ssl,
	    BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (fbev == NULL) {
		SSL_free(ssl);
		return client_fail(c, "STARTTLS: cannot start TLS");
	}
	/*
	 * The filter encrypts into the socket's output only up to that
	 * buffer's write high watermark: without one, a slow peer would let
	 * the whole message pile up in memory.
	 */
	bufferevent_setwatermark(c->bev, EV_WRITE, CLIENT_LOWAT, CLIENT_HIWAT);
	c->bev = fbev;
	c->ssl = ssl;
	/* Servers often close after QUIT without close_notify. */
	bufferevent_openssl_set_allow_dirty_shutdown(fbev, 1);
	bufferevent_setcb(fbev, client_read_cb, client_write_cb,
	    client_event_cb, c);
	bufferevent_enable(fbev, EV_READ | EV_WRITE);
	return client_wait(c, CLIENT_HANDSHAKE);
}

/* After EHLO or HELO: STARTTLS if wanted and possible, else ready. */
static int
client_after_hello(struct smtp_client *c)
{
	const char *why = NULL;

	if (c->tls_active || c->tls == SMTP_TLS_NONE)
		return client_ready(c);
	if (c->ssl_ctx == NULL)
		why = "STARTTLS required but no TLS client context";
	else if (!(c->caps & CAP_STARTTLS))
		why = "STARTTLS required but not offered";
	else if (c->tls == SMTP_TLS_VERIFY &&
	    (c->servername == NULL || *c->servername == '\0'))
		why = "TLS verification required but no host name to verify";
	/* Never in clear when TLS is required (RFC 3207 4.1 leaves it to
	 * the client's policy; ours is the route's tls setting). */
	if (why != NULL && client_tls_required(c))
		return client_fail(c, "%s", why);
	if (why != NULL)
		return client_ready(c);
	client_cmd(c, "STARTTLS");
	return client_wait(c, CLIENT_STARTTLS);
}

/* One EHLO keyword line (RFC 5321 4.1.1.1): keyword, then parameters. */
static void
client_ehlo_line(struct smtp_client *c, const char *s)
{
	size_t i, n = strcspn(s, " ");
	unsigned long long v;
	char *end;

	for (i = 0; i < sizeof(client_keywords) / sizeof(client_keywords[0]);
	    i++)
		if (strlen(client_keywords[i].keyword) == n &&
		    strncasecmp(s, client_keywords[i].keyword, n) == 0)
			c->newcaps |= client_keywords[i].flag;
	/* RFC 1870 4: "SIZE" alone or "SIZE 0" means no fixed limit. */
	if (n == 4 && strncasecmp(s, "SIZE", 4) == 0) {
		s += n + strspn(s + n, " ");
		errno = 0;
		v = strtoull(s, &end, 10);
		if (*s >= '0' && *s <= '9' && errno == 0 &&
		    (*end == '\0' || *end == ' '))
			c->new_size_max = v;
	}
}

/*
 * 1: a whole reply is in c->reply; 0: need more input; -1: garbage, c->err
 * says why. Lines end in CRLF or in a bare LF (EVBUFFER_EOL_CRLF; lenient,
 * like Postfix). A line is refused as soon as more of it is in than
 * smtp/reply accepts, never after buffering whatever the server sends.
 */
static int
client_parse(struct smtp_client *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct smtp_reply *p = &c->parser;
	struct evbuffer_ptr eol;
	const char *line;
	size_t eol_len, len;
	int r;

	for (;;) {
		eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		len = eol.pos == -1 ? evbuffer_get_length(in) : (size_t)eol.pos;
		/* Until its end is in, the last octet may be the CR of CRLF. */
		if (len > SMTP_REPLY_LINE_MAX + (eol.pos == -1 ? 1 : 0)) {
			snprintf(c->err, sizeof(c->err),
			    "reply line longer than %d octets",
			    SMTP_REPLY_LINE_MAX);
			return -1;
		}
		if (eol.pos == -1)
			return 0;
		line = "";
		if (len > 0 &&
		    (line = (const char *)evbuffer_pullup(in, (ev_ssize_t)len)) ==
		    NULL) {
			snprintf(c->err, sizeof(c->err), "out of memory");
			return -1;
		}
		r = smtp_reply_feed(p, line, len);
		evbuffer_drain(in, len + eol_len);
		if (r == SMTP_REPLY_ERROR) {
			snprintf(c->err, sizeof(c->err), "%s", p->err);
			return -1;
		}
		/* RFC 5321 4.1.1.1: after the first line, one keyword a line. */
		if (c->state == CLIENT_EHLO && p->nlines > 1)
			client_ehlo_line(c, p->line);
		if (r == SMTP_REPLY_DONE) {
			c->reply.code = p->code;
			snprintf(c->reply.text, sizeof(c->reply.text), "%s",
			    p->text);
			return 1;
		}
	}
}

static int
client_rset(struct smtp_client *c, const struct smtp_client_reply *r)
{
	c->txn.final = *r;
	client_cmd(c, "RSET");
	return client_wait(c, CLIENT_RSET);
}

/*
 * Queue content until the output buffer is above the high watermark;
 * the write callback calls again once it drains below the low one.
 */
static int
client_fill(struct smtp_client *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct client_txn *t = &c->txn;
	const char *p, *end, *nl;
	size_t want;
	ssize_t n;
	char *q;

	while (t->off < t->m->size && evbuffer_get_length(out) < CLIENT_HIWAT) {
		want = CLIENT_CHUNK;
		if ((off_t)want > t->m->size - t->off)
			want = (size_t)(t->m->size - t->off);
		if ((n = pread(t->m->fd, c->chunk, want, t->off)) == -1 &&
		    errno == EINTR)
			continue;
		if (n <= 0)
			return client_fail(c, "local error: read: %s", n == 0 ?
			    "file shorter than size" : strerror(errno));
		t->off += n;
		if (t->bdat) {
			evbuffer_add(out, c->chunk, (size_t)n);
			continue;
		}
		/*
		 * RFC 5321 4.5.2: a line that starts with "." gets another.
		 * t->bol carries the line start across chunks; each line
		 * grows by at most one byte, so 2 * CLIENT_CHUNK suffices.
		 */
		p = c->chunk;
		end = p + n;
		q = c->chunk + CLIENT_CHUNK;
		while (p < end) {
			if (t->bol && *p == '.')
				*q++ = '.';
			nl = memchr(p, '\n', (size_t)(end - p));
			t->bol = nl != NULL;
			nl = nl != NULL ? nl + 1 : end;
			memcpy(q, p, (size_t)(nl - p));
			q += nl - p;
			p = nl;
		}
		p = c->chunk + CLIENT_CHUNK;
		evbuffer_add(out, p, (size_t)(q - p));
	}
	client_arm(c, c->data_timeout);
	if (t->off < t->m->size)
		return 0;
	if (t->need_crlf)
		evbuffer_add(out, "\r\n", 2);
	if (!t->bdat)
		evbuffer_add(out, ".\r\n", 3);
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	client_enter(c, CLIENT_DOT);
	return 0;
}

static int
client_start_body(struct smtp_client *c)
{
	if (c->chunk == NULL && (c->chunk = malloc(3 * CLIENT_CHUNK)) == NULL)
		return client_fail(c, "local error: out of memory");
	c->txn.bol = 1;
	client_enter(c, CLIENT_BODY);
	bufferevent_setwatermark(c->bev, EV_WRITE, CLIENT_LOWAT, 0);
	if (c->txn.m->prefix_len > 0) {
		/* Header fields we add (Authentication-Results ...). They
		 * are CRLF lines; a leading dot is stuffed like content. */
		struct evbuffer *out = bufferevent_get_output(c->bev);
		const char *p = c->txn.m->prefix, *end = p + c->txn.m->prefix_len;

		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));

			nl = nl ? nl + 1 : end;
			if (!c->txn.bdat && *p == '.')
				evbuffer_add(out, ".", 1);
			evbuffer_add(out, p, (size_t)(nl - p));
			p = nl;
		}
	}
	return client_fill(c);
}

/* All RCPT replies are in: on to the content, or end the transaction. */
static int
client_after_rcpts(struct smtp_client *c)
{
	struct client_txn *t = &c->txn;

	if (t->mail_failed)
		return client_finish(c, &t->final, 1);
	if (t->naccepted == 0)
		return client_rset(c, &c->reply);
	if (!t->bdat) {
		client_cmd(c, "DATA");
		return client_wait(c, CLIENT_DATA);
	}
	/*
	 * RFC 3030 2: the whole content as one BDAT LAST chunk. It needs no
	 * reply before the data, so the content streams at once.
	 */
	client_cmd(c, "BDAT %lld LAST", (long long)t->m->size +
	    (long long)t->m->prefix_len + (t->need_crlf ? 2 : 0));
	return client_start_body(c);
}

static int
client_on_txn_reply(struct smtp_client *c)
{
	struct smtp_client_reply *r = &c->reply;
	struct client_txn *t = &c->txn;
	int ok = r->code >= 200 && r->code < 300;
	int pipelining = (c->caps & CAP_PIPELINING) != 0;
	size_t i;

	/* RFC 5321 4.2.1: 354 to DATA is the only intermediate reply. */
	if (r->code >= 300 && r->code < 400 && c->state != CLIENT_DATA)
		return client_fail(c, "protocol error %s: unexpected %s",
		    client_states[c->state].where, r->text);
	/* RFC 5321 3.8: 421 means the server is closing the channel. */
	if (r->code == 421)
		return client_finish(c, c->state == CLIENT_RSET ?
		    &t->final : r, 0);
	switch (c->state) {
	case CLIENT_MAIL:
		if (!ok) {
			t->mail_failed = 1;
			t->final = *r;
			if (!pipelining)
				return client_finish(c, r, 1);
		} else if (!pipelining)
			client_send_rcpt(c);
		return client_wait(c, CLIENT_RCPT);
	case CLIENT_RCPT:
		i = t->next_reply;
		if (!t->mail_failed) {
			t->replies[i] = *r;
			t->done[i] = !ok;
			t->naccepted += ok;
		}
		t->next_reply = client_next_rcpt(c, i + 1);
		if (t->next_reply == t->m->nrcpt)
			return client_after_rcpts(c);
		if (!pipelining)
			client_send_rcpt(c);
		return client_wait(c, CLIENT_RCPT);
	case CLIENT_DATA:
		if (r->code != 354)
			return client_rset(c, r);
		return client_start_body(c);
	case CLIENT_BODY:
		/* A reply before we finished: the stream is out of step. */
		return client_finish(c, r, 0);
	case CLIENT_DOT:
		/* RFC 3030 2: after a failed BDAT the sender resets. */
		if (t->bdat && !ok)
			return client_rset(c, r);
		return client_finish(c, r, 1);
	default:	/* CLIENT_RSET */
		return client_finish(c, &t->final, ok);
	}
}

static int
client_dispatch(struct smtp_client *c)
{
	struct smtp_client_reply *r = &c->reply;
	int ok = r->code >= 200 && r->code < 300;

	log_debug("smtp client peer=%s state=%s reply=%s", c->peer,
	    client_states[c->state].name, log_safe(r->text));
	switch (c->state) {
	case CLIENT_GREETING:
		if (r->code != 220)
			return client_fail(c, "greeting: %s", r->text);
		return client_send_ehlo(c);
	case CLIENT_EHLO:
		if (ok) {
			c->caps = c->newcaps;
			c->size_max = c->new_size_max;
			return client_after_hello(c);
		}
		/* RFC 5321 3.2: a server that does not know EHLO says 5yz. */
		if (r->code < 500 || c->tls_active)
			return client_fail(c, "EHLO: %s", r->text);
		client_cmd(c, "HELO %s", c->helo);
		return client_wait(c, CLIENT_HELO);
	case CLIENT_HELO:
		if (!ok)
			return client_fail(c, "HELO: %s", r->text);
		c->caps = 0;
		return client_after_hello(c);
	case CLIENT_STARTTLS:
		if (r->code == 220)
			return client_starttls(c);
		if (client_tls_required(c) || r->code == 421)
			return client_fail(c, "STARTTLS: %s", r->text);
		return client_ready(c);
	case CLIENT_MAIL:
	case CLIENT_RCPT:
	case CLIENT_DATA:
	case CLIENT_BODY:
	case CLIENT_DOT:
	case CLIENT_RSET:
		return client_on_txn_reply(c);
	case CLIENT_QUIT:
		return client_release(c);
	case CLIENT_READY:
		/* Unasked-for reply, e.g. 421 on an idle timeout. */
		client_drop(c);
		return 0;
	default:
		return client_fail(c, "unexpected reply %s: %s",
		    client_states[c->state].where, r->text);
	}
}

static void
client_read_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;
	int r;

	/* c->bev changes under us at STARTTLS; bev may be stale. */
	while (c->bev != NULL &&
	    evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
		if ((r = client_parse(c)) == 0)
			return;
		if (r == -1) {
			client_fail(c, "protocol error %s: %s",
			    client_states[c->state].where, c->err);
			return;
		}
		if (client_dispatch(c) == -1)
			return;
	}
}

static void
client_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;

	if (c->state == CLIENT_BODY)
		client_fill(c);
}

static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_client *c = arg;
	int saved = EVUTIL_SOCKET_ERROR();
	const char *where = client_states[c->state].where;
	char reason[256];
	unsigned long e;

	if (what & BEV_EVENT_CONNECTED) {
		/* connect_timeout covers the greeting too. */
		if (c->state == CLIENT_CONNECT)
			client_enter(c, CLIENT_GREETING);
		if (c->state != CLIENT_HANDSHAKE)
			return;
		c->tls_active = 1;
		tls_describe(c->ssl, c->tls_info, sizeof(c->tls_info));
		snprintf(c->tls_version, sizeof(c->tls_version), "%s",
		    tls_version(c->ssl));
		metrics_inc("mxgate_tls_handshakes_total", "direction", "out",
		    "version", metrics_vocab(c->tls_version, tls_versions));
		/* Names were set only when there was one to check. */
		c->tls_verified = c->servername != NULL &&
		    *c->servername != '\0' &&
		    SSL_get0_peer_certificate(c->ssl) != NULL &&
		    SSL_get_verify_result(c->ssl) == X509_V_OK;
		log_debug("smtp client peer=%s tls=%s verified=%s", c->peer,
		    log_safe(c->tls_info), c->tls_verified ? "yes" : "no");
		/* RFC 3207 4.2: forget all we learned before TLS. */
		c->caps = 0;
		client_send_ehlo(c);
		return;
	}
	if (c->state == CLIENT_QUIT)
		client_release(c);
	else if (c->state == CLIENT_CONNECT)
		client_fail(c, "connect: %s", saved != 0 ?
		    evutil_socket_error_to_string(saved) : "failed");
	else if ((what & BEV_EVENT_ERROR) && c->ssl != NULL &&
	    (e = bufferevent_get_openssl_error(c->bev)) != 0) {
		long vr = SSL_get_verify_result(c->ssl);

		ERR_error_string_n(e, reason, sizeof(reason));
		while (bufferevent_get_openssl_error(c->bev) != 0)
			;
		if (c->tls == SMTP_TLS_VERIFY && vr != X509_V_OK)
			client_fail(c, "TLS error %s: %s (certificate for %s: %s)",
			    where, reason, c->servername ? c->servername : "?",
			    X509_verify_cert_error_string(vr));
		else
			client_fail(c, "TLS error %s: %s", where, reason);
	} else if ((what & BEV_EVENT_ERROR) && saved != 0)
		client_fail(c, "lost connection %s (%s)", where,
		    evutil_socket_error_to_string(saved));
	else
		client_fail(c, "lost connection %s", where);
}

struct smtp_client *
smtp_client_connect(struct event_base *base, const struct sockaddr *addr,
    socklen_t addrlen, const struct smtp_client_config *cfg,
    smtp_client_ready_cb cb, void *arg)
{
	char host[64], serv[8];
	struct smtp_client *c;
	const char *helo = cfg->helo;
	int saved;
	int one = 1;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->base = base;
	c->tls = cfg->tls;
	c->ssl_ctx = cfg->ssl_ctx;
	/* RFC 5321 4.5.3.2 minimums: 5 min per command, 10 for the dot. */
	c->connect_timeout = cfg->connect_timeout > 0 ?
	    cfg->connect_timeout : 300;
	c->command_timeout = cfg->command_timeout > 0 ?
	    cfg->command_timeout : 300;
	c->data_timeout = cfg->data_timeout > 0 ? cfg->data_timeout : 600;
	c->ready_cb = cb;
	c->ready_arg = arg;
	c->state = CLIENT_CONNECT;
	smtp_reply_init(&c->parser);
	/* Numeric only: no DNS here. */
	if (getnameinfo(addr, addrlen, host, sizeof(host), serv, sizeof(serv),
	    NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		snprintf(c->peer, sizeof(c->peer), "[%s]:%s", host, serv);
	else
		snprintf(c->peer, sizeof(c->peer), "[unknown]");
	/* RFC 1035 2.3.4: a name has at most 255 octets. */
	if (helo == NULL || *helo == '\0' || strlen(helo) > 255 ||
	    !client_path_ok(helo)) {
		log_warning("smtp client: bad EHLO name, using localhost");
		helo = "localhost";
	}
	if ((c->helo = strdup(helo)) == NULL ||
	    (cfg->servername != NULL &&
	    (c->servername = strdup(cfg->servername)) == NULL) ||
	    (c->timer = evtimer_new(base, client_timer_cb, c)) == NULL ||
	    (c->defer = event_new(base, -1, 0, client_defer_cb, c)) == NULL ||
	    (c->bev = bufferevent_socket_new(base, -1,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS)) == NULL) {
		client_destroy(c);
		return NULL;
	}
	bufferevent_setcb(c->bev, client_read_cb, client_write_cb,
	    client_event_cb, c);
	client_arm(c, c->connect_timeout);
	if (bufferevent_socket_connect(c->bev, addr, (int)addrlen) == -1) {
		/* Report through ready_cb like any other connect failure. */
		saved = errno;
		client_drop(c);
		snprintf(c->err, sizeof(c->err), "connect: %s",
		    saved != 0 ? strerror(saved) : "failed");
		c->defer_ready = 1;
		event_active(c->defer, EV_TIMEOUT, 1);
		return c;
	}
	/* Commands, the content's last bytes and the final dot are small
	 * writes: with Nagle's algorithm each waited for the server's
	 * delayed ACK (~40 ms per message). libevent coalesces what one loop
	 * iteration writes. */
	(void)setsockopt(bufferevent_getfd(c->bev), IPPROTO_TCP, TCP_NODELAY,
	    &one, sizeof(one));
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	return c;
}

/*
 * Checks that need no server. Recipients with unusable addresses get
 * their reply now; -1 with *rep_r set fails the whole message.
 */
static int
client_local_checks(struct smtp_client *c, struct smtp_client_reply *rep_r)
{
	const struct smtp_client_msg *m = c->txn.m;
	unsigned char tail[2];
	size_t i, nvalid = 0;
	ssize_t n = 0;

	for (i = 0; i < m->nrcpt; i++) {
		if (m->rcpts[i] != NULL && *m->rcpts[i] != '\0' &&
		    client_path_ok(m->rcpts[i]))
			nvalid++;
		else {
			client_reply_local(&c->txn.replies[i], 553,
			    "553 5.1.3 invalid recipient address");
			c->txn.done[i] = 1;
		}
	}
	if (!client_path_ok(m->sender))
		client_reply_local(rep_r, 553, "553 5.1.7 invalid sender");
	else if (nvalid == 0)
		client_reply_local(rep_r, 553, "553 5.1.3 no valid recipient");
	/* RFC 1870 6.1: do not send what the server said it would refuse. */
	else if ((c->caps & CAP_SIZE) && c->size_max > 0 &&
	    (unsigned long long)m->size + m->prefix_len > c->size_max)
		client_reply_local(rep_r, 552, "552 5.3.4 message size %lld "
		    "exceeds the limit %llu of %s",
		    (long long)m->size + (long long)m->prefix_len,
		    c->size_max, c->peer);
	/* RFC 6531 3.2: no downgrade; the message cannot go this way. */
	else if (m->smtputf8 && !(c->caps & CAP_SMTPUTF8))
		client_reply_local(rep_r, 553, "553 5.6.7 SMTPUTF8 needed but "
		    "not offered by %s", c->peer);
	else if (m->size < 0 || m->fd < 0)
		client_reply_local(rep_r, 0, "local error: no message content");
	else if (m->size == 0)
		return 0;
	else {
		/* Does the content end in CRLF? */
		i = m->size >= 2 ? 2 : 1;
		while ((n = pread(m->fd, tail, i, m->size - (off_t)i)) == -1 &&
		    errno == EINTR)
			;
		if (n == (ssize_t)i) {
			c->txn.need_crlf = i < 2 || tail[0] != '\r' ||
			    tail[1] != '\n';
			return 0;
		}
		client_reply_local(rep_r, 0, "local error: read: %s",
		    n == -1 ? strerror(errno) : "file shorter than size");
	}
	return -1;
}

int
smtp_client_send(struct smtp_client *c, const struct smtp_client_msg *m,
    smtp_client_sent_cb cb, void *arg)
{
	struct client_txn *t = &c->txn;
	struct smtp_client_reply r;
	const char *envid;
	char params[64];

	if (c->freed || c->in_txn || m == NULL || cb == NULL ||
	    m->nrcpt == 0 || m->rcpts == NULL || m->sender == NULL ||
	    (c->state != CLIENT_READY && c->state != CLIENT_DEAD))
		return -1;
	memset(t, 0, sizeof(*t));
	t->replies = calloc(m->nrcpt, sizeof(*t->replies));
	t->done = calloc(m->nrcpt, 1);
	if (t->replies == NULL || t->done == NULL) {
		free(t->replies);
		free(t->done);
		memset(t, 0, sizeof(*t));
		return -1;
	}
	t->m = m;
	t->cb = cb;
	t->arg = arg;
	c->in_txn = 1;
	if (c->state == CLIENT_DEAD) {
		client_reply_local(&r, 0, "lost connection while idle");
		client_defer_txn(c, &r, 0);
		return 0;
	}
	if (client_local_checks(c, &r) == -1) {
		client_defer_txn(c, &r, 1);
		return 0;
	}
	t->bdat = (c->caps & CAP_CHUNKING) != 0;
	/* RFC 1870 SIZE=, RFC 6152 BODY=, RFC 6531 SMTPUTF8. */
	params[0] = '\0';
	if (c->caps & CAP_SIZE)
		snprintf(params, sizeof(params), " SIZE=%lld",
		    (long long)m->size + (long long)m->prefix_len);
	/* RFC 3461 4.3, 4.4 */
	envid = (c->caps & CAP_DSN) && m->dsn_envid &&
	    strlen(m->dsn_envid) <= SMTP_DSN_ENVID_MAX &&
	    smtp_xtext_check(m->dsn_envid) == 0 ? m->dsn_envid : NULL;
	if ((c->caps & CAP_DSN) && m->dsn_ret && (strcmp(m->dsn_ret, "FULL") == 0 ||
	    strcmp(m->dsn_ret, "HDRS") == 0))
		snprintf(params + strlen(params), sizeof(params) - strlen(params),
		    " RET=%s", m->dsn_ret);
	client_cmd(c, "MAIL FROM:<%s>%s%s%s%s%s", m->sender, params,
	    m->body_8bit && (c->caps & CAP_8BITMIME) ? " BODY=8BITMIME" : "",
	    m->smtputf8 ? " SMTPUTF8" : "", envid ? " ENVID=" : "",
	    envid ? envid : "");
	t->next_send = t->next_reply = client_next_rcpt(c, 0);
	/* RFC 2920 3.1: MAIL and the RCPTs go out as one group. */
	while ((c->caps & CAP_PIPELINING) && t->next_send < m->nrcpt)
		client_send_rcpt(c);
	return client_wait(c, CLIENT_MAIL);
}

void
smtp_client_quit(struct smtp_client *c)
{
	if (c == NULL || c->freed)
		return;
	if (c->state != CLIENT_READY) {
		client_release(c);
		return;
	}
	client_cmd(c, "QUIT");
	client_wait(c, CLIENT_QUIT);
}

void
smtp_client_free(struct smtp_client *c)
{
	if (c != NULL && !c->freed)
		client_release(c);
}

const char *
smtp_client_peer(const struct smtp_client *c)
{
	return c->peer;
}

const char *
smtp_client_tls_info(const struct smtp_client *c)
{
	return c->tls_info;
}

const char *
smtp_client_tls_version(const struct smtp_client *c)
{
	return c->tls_active && c->tls_version[0] != '\0' ? c->tls_version :
	    "none";
}

int
smtp_client_dsn(const struct smtp_client *c)
{
	return (c->caps & CAP_DSN) != 0;
}

int
smtp_client_tls_verified(const struct smtp_client *c)
{
	return c->tls_active && c->tls_verified;
}

int
smtp_client_ctx_trust(SSL_CTX *ctx, const char *ca_file, char *err,
    size_t errlen)
{
	unsigned long e;
	const char *why;

	/* A missing system store is not an error: ca_file may be all. */
	if (SSL_CTX_set_default_verify_paths(ctx) != 1)
		ERR_clear_error();
	if (ca_file == NULL || *ca_file == '\0')
		return 0;
	if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		e = ERR_get_error();
		why = e ? ERR_reason_error_string(e) : NULL;
		snprintf(err, errlen, "%s: cannot load CA certificates: %s",
		    ca_file, why ? why : "unknown error");
		ERR_clear_error();
		return -1;
	}
	return 0;
}
