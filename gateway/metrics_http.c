/*
 * The Prometheus endpoint ([metrics] listen): a minimal HTTP/1.1 server on
 * the daemon's loop. GET (or HEAD) /metrics answers the registry in the
 * text exposition format 0.0.4 (lib/metrics.h); any other path is 404,
 * any other method 405. One request per connection, answered with
 * "Connection: close". The socket is bound at start, before privileges
 * are dropped; another address needs a restart (daemon.c).
 *
 * Whoever reaches the port must not be able to hurt SMTP, so a connection
 * costs little and never lasts: at most METRICS_HTTP_MAX_CONNS at once
 * (a new one closes the oldest at once, so that idle connections cannot
 * lock a scraper out), each closed METRICS_HTTP_DEADLINE seconds after
 * accept whatever arrives (a trickle cannot keep it open), a request head
 * of at most HTTP_REQUEST_HEAD_MAX octets (read by gateway/http_request),
 * and accept() paused for a second when descriptors run out instead of
 * spinning (listener.c does the same).
 * libevent 2.1's evhttp cannot take an accepted socket (evhttp_get_request
 * is internal), which is why this is not evhttp: its own listener would
 * decide alone when to accept and how long a connection lives.
 *
 * The catalogue below is every metric the daemon exports, with its help
 * text; the layers count into it (one line where a thing happens), and the
 * gauges that mirror the daemon's state are read when a scrape comes.
 * Without [metrics] listen the registry stays off and counts nothing.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "gateway/gateway.h"
#include "gateway/http_request.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/metrics.h"

#define MHTTP_LINGER_MAX	65536	/* octets discarded after the answer */
#define MHTTP_HELD_EVERY	30	/* seconds between counts of hold/ */

enum mhttp_state {
	MHTTP_READING,		/* the request head */
	MHTTP_ANSWERING,	/* the answer is being written */
	MHTTP_LINGERING,	/* written and half-closed: wait for the client */
};

struct mhttp_conn {
	struct gw_metrics *m;
	struct bufferevent *bev;
	struct event *deadline;
	struct mhttp_conn *prev, *next;	/* oldest first */
	enum mhttp_state state;
	struct http_request req;
	size_t seen;			/* octets of the head, or discarded */
	int head;			/* a HEAD request: no content */
	int eof;			/* the client has stopped sending */
};

struct gw_metrics {
	struct gateway *gw;
	struct evconnlistener *listener;
	struct event *resume;		/* out of descriptors: accept later */
	struct mhttp_conn *first, *last;
	size_t nconns;
	double held_at;			/* metrics_now() of the last count */
	int held_known;
};
static const struct {
	const char *name;
	enum metrics_type type;
	const char *help;
} metrics_catalogue[] = {
	{ "mxgate_connections", METRICS_GAUGE,
	    "SMTP client connections open now." },
	{ "mxgate_connections_total", METRICS_COUNTER,
	    "SMTP client connections accepted." },
	{ "mxgate_connections_refused_total", METRICS_COUNTER,
	    "SMTP client connections refused with 421 by [limits] "
	    "connections (limit_total) or connections_per_ip (limit_per_ip)." },
	{ "mxgate_protocol_violations_total", METRICS_COUNTER,
	    "SMTP sessions ended for a protocol violation, by kind: pregreet, "
	    "pipelining (RFC 2920), header_command, http, errors "
	    "(hard_error_limit), junk (junk_commands), slow_command, "
	    "slow_data (min_data_rate), tls_timeout." },
	{ "mxgate_messages_total", METRICS_COUNTER,
	    "Messages by final reply: accepted (250), rejected (5xx) or deferred "
	    "(4xx), with the reason (ok, held, spf, dmarc, relay, size, content, "
	    "storage, auth, loop, syntax, limit, other); each MAIL or RCPT "
	    "refused counts once (syntax: a malformed or out-of-sequence "
	    "command, limit: too many recipients)." },
	{ "mxgate_spf_results_total", METRICS_COUNTER,
	    "SPF results (RFC 7208) by identity checked (helo, mailfrom)." },
	{ "mxgate_dkim_results_total", METRICS_COUNTER,
	    "DKIM verification results (RFC 6376), one per signature; none "
	    "once for a message without any." },
	{ "mxgate_dmarc_results_total", METRICS_COUNTER,
	    "DMARC results (RFC 9989) of inbound messages." },
	{ "mxgate_dmarc_dispositions_total", METRICS_COUNTER,
	    "DMARC dispositions of inbound messages and the action taken." },
	{ "mxgate_dmarc_overrides_total", METRICS_COUNTER,
	    "Local overrides of a DMARC disposition by reason (RFC 7489 "
	    "PolicyOverrideType)." },
	{ "mxgate_check_duration_seconds", METRICS_HISTOGRAM,
	    "Time from the start of a check to its answer: spf (one SPF "
	    "evaluation), dkim (end of data until the last key lookup "
	    "answered), dmarc (the policy lookups)." },
	{ "mxgate_dns_queries_total", METRICS_COUNTER,
	    "DNS questions by type and outcome: ok, nodata, nxdomain, "
	    "servfail (the servers answered), timeout (no answer in time), "
	    "error (no usable answer, or a bad name or type refused "
	    "unasked)." },
	{ "mxgate_dns_cache_hits_total", METRICS_COUNTER,
	    "DNS questions answered from the resolver's cache, by type." },
	{ "mxgate_queue_messages", METRICS_GAUGE,
	    "Messages in the spool: queued (waiting for an attempt), active "
	    "(being attempted), held (hold/, counted at most once every 30 "
	    "seconds)." },
	{ "mxgate_delivery_attempts_total", METRICS_COUNTER,
	    "Delivery attempt results per recipient: delivered, deferred, "
	    "failed (a 5xx, or expired)." },
	{ "mxgate_tls_handshakes_total", METRICS_COUNTER,
	    "TLS handshakes completed, by direction (in: clients, out: "
	    "deliveries) and protocol version." },
};

static int
metrics_http_count(const char *id, void *arg)
{
	(*(size_t *)arg)++;
	return 0;
}

/* At each scrape, on the loop: the state only the loop may read. Reading
 * hold/ costs a directory scan, so a scraper (or anyone at the port) can
 * make it happen at most once every MHTTP_HELD_EVERY seconds. */
static void
metrics_http_collect(void *arg)
{
	struct gateway *gw = arg;
	struct gw_metrics *m = gw->metrics;
	size_t known = 0, active = 0, held = 0;
	double now = metrics_now();

	metrics_set("mxgate_connections", (double)gw->nconns);
	if (gw->sched != NULL) {
		known = scheduler_queued(gw->sched);
		active = scheduler_active(gw->sched);
	}
	metrics_set("mxgate_queue_messages", (double)(known - active),
	    "state", "queued");
	metrics_set("mxgate_queue_messages", (double)active, "state", "active");
	if (m == NULL || gw->spool == NULL ||
	    (m->held_known && now - m->held_at < MHTTP_HELD_EVERY))
		return;
	if (spool_list(gw->spool, 1, metrics_http_count, &held) != -1) {
		metrics_set("mxgate_queue_messages", (double)held,
		    "state", "held");
		m->held_at = now;
		m->held_known = 1;
	}
}

/* ---- connections ---- */

static void
mhttp_conn_free(struct mhttp_conn *c)
{
	struct gw_metrics *m = c->m;

	if (c->prev)
		c->prev->next = c->next;
	else
		m->first = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		m->last = c->prev;
	m->nconns--;
	if (c->deadline)
		event_free(c->deadline);
	http_request_clear(&c->req);
	bufferevent_free(c->bev);	/* closes the socket */
	free(c);
}

/* The answer, then "Connection: close" (RFC 9112 9.6): one request per
 * connection. A HEAD answer has the GET one's fields and no content
 * (RFC 9110 9.3.2). */
static void
mhttp_answer(struct mhttp_conn *c, int code, const char *reason,
    const char *type, const char *extra, const char *body, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char date[64];
	struct tm tm;
	time_t now = time(NULL);

	/* RFC 9110 6.6.1: an origin server with a clock sends Date */
	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
		date[0] = '\0';
	c->state = MHTTP_ANSWERING;
	if (evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n%s%s%s"
	    "Content-Type: %s\r\nContent-Length: %zu\r\n%sConnection: close\r\n"
	    "\r\n", code, reason, date[0] ? "Date: " : "", date,
	    date[0] ? "\r\n" : "", type, len, extra ? extra : "") == -1 ||
	    (!c->head && evbuffer_add(out, body, len) == -1)) {
		mhttp_conn_free(c);
		return;
	}
	/* the write callback half-closes once the output has drained */
	bufferevent_enable(c->bev, EV_WRITE);
}

static void
mhttp_text(struct mhttp_conn *c, int code, const char *reason,
    const char *extra, const char *text)
{
	mhttp_answer(c, code, reason, "text/plain; charset=utf-8", extra, text,
	    strlen(text));
}

static void
mhttp_scrape(struct mhttp_conn *c)
{
	struct buf b = { 0 };

	if (metrics_render(&b) == -1) {
		buf_free(&b);
		log_error("metrics: out of memory rendering a scrape");
		mhttp_text(c, 500, "Internal Server Error", NULL,
		    "out of memory\n");
		return;
	}
	mhttp_answer(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
	    NULL, b.data ? b.data : "", b.len);
	buf_free(&b);
}

/* The head has been read (or refused): answer it. */
static void
mhttp_respond(struct mhttp_conn *c, int status)
{
	const struct http_request *r = &c->req;

	c->head = r->method == HTTP_METHOD_HEAD;
	switch (status) {
	case HTTP_REQUEST_DONE:
		if (r->path == NULL || strcmp(r->path, "/metrics") != 0)
			mhttp_text(c, 404, "Not Found", NULL,
			    "not found: try /metrics\n");
		else if (r->method != HTTP_METHOD_GET &&
		    r->method != HTTP_METHOD_HEAD)
			/* RFC 9110 15.5.6: a 405 names the methods there are */
			mhttp_text(c, 405, "Method Not Allowed",
			    "Allow: GET, HEAD\r\n", "method not allowed\n");
		else
			mhttp_scrape(c);
		break;
	case HTTP_REQUEST_VERSION:
		/* RFC 9110 15.6.6 */
		mhttp_text(c, 505, "HTTP Version Not Supported", NULL,
		    "HTTP/1.1 only\n");
		break;
	case HTTP_REQUEST_TOO_LARGE:
		/* RFC 6585 5 */
		mhttp_text(c, 431, "Request Header Fields Too Large", NULL,
		    "request head too large\n");
		break;
	default:
		mhttp_text(c, 400, "Bad Request", NULL, "bad request\n");
		break;
	}
}

/*
 * The head as it arrives (gateway/http_request). A request body is never
 * read: the answer closes the connection, and what arrives after it is
 * discarded (a lingering close, RFC 9112 9.6). A malformed head is
 * answered at once: its framing is lost.
 */
static void
mhttp_read_cb(struct bufferevent *bev, void *arg)
{
	struct mhttp_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = evbuffer_get_length(in), used;
	unsigned char *p;
	int status;

	if (c->state == MHTTP_READING) {
		if (n == 0)
			return;
		/* the parser never needs more than this at once */
		if (n > HTTP_REQUEST_HEAD_MAX + 1)
			n = HTTP_REQUEST_HEAD_MAX + 1;
		if ((p = evbuffer_pullup(in, (ev_ssize_t)n)) == NULL) {
			mhttp_conn_free(c);
			return;
		}
		status = http_request_feed(&c->req, (const char *)p, n, &used);
		if (status == HTTP_REQUEST_TOO_LARGE)
			used = evbuffer_get_length(in);
		evbuffer_drain(in, used);
		c->seen = c->req.seen;
		if (status == HTTP_REQUEST_MORE)
			return;
		if (status == HTTP_REQUEST_NOMEM) {
			mhttp_conn_free(c);
			return;
		}
		mhttp_respond(c, status);
		return;
	}
	/* answering or lingering: discard, within reason */
	evbuffer_drain(in, n);
	if ((c->seen += n) > HTTP_REQUEST_HEAD_MAX + MHTTP_LINGER_MAX)
		mhttp_conn_free(c);
}

static void
mhttp_write_cb(struct bufferevent *bev, void *arg)
{
	struct mhttp_conn *c = arg;

	if (c->state != MHTTP_ANSWERING)
		return;
	if (c->eof) {
		mhttp_conn_free(c);
		return;
	}
	/* all written: say so, and wait for the client's close (or the
	 * deadline) so that unread input cannot reset the answer away */
	c->state = MHTTP_LINGERING;
	shutdown(bufferevent_getfd(bev), SHUT_WR);
	bufferevent_disable(bev, EV_WRITE);
}

static void
mhttp_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct mhttp_conn *c = arg;

	/* a client that half-closes after its request still gets the
	 * answer; otherwise its close, or an error, ends the connection */
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
	    c->state == MHTTP_ANSWERING) {
		c->eof = 1;
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		mhttp_conn_free(c);
}

static void
mhttp_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	mhttp_conn_free(arg);
}

/* The oldest connection, preferring one that is not being answered. */
static struct mhttp_conn *
mhttp_victim(struct gw_metrics *m)
{
	struct mhttp_conn *c;

	for (c = m->first; c != NULL; c = c->next)
		if (c->state != MHTTP_ANSWERING)
			return c;
	return m->first;
}

static void
mhttp_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct gw_metrics *m = arg;
	struct event_base *base = m->gw->base;
	struct timeval tv = { METRICS_HTTP_DEADLINE, 0 };
	struct mhttp_conn *c;

	/* Over the cap: the oldest goes at once, so that idle or trickling
	 * connections cannot keep a scraper out for their deadline. */
	while (m->nconns >= METRICS_HTTP_MAX_CONNS && m->first != NULL)
		mhttp_conn_free(mhttp_victim(m));
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return;
	}
	c->m = m;
	http_request_init(&c->req);
	if ((c->bev = bufferevent_socket_new(base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		close(fd);
		free(c);
		return;
	}
	c->prev = m->last;
	if (m->last)
		m->last->next = c;
	else
		m->first = c;
	m->last = c;
	m->nconns++;
	/* a fixed deadline from accept: incoming data does not extend it */
	if ((c->deadline = evtimer_new(base, mhttp_deadline_cb, c)) == NULL ||
	    evtimer_add(c->deadline, &tv) == -1) {
		mhttp_conn_free(c);
		return;
	}
	bufferevent_setcb(c->bev, mhttp_read_cb, mhttp_write_cb, mhttp_event_cb,
	    c);
	bufferevent_enable(c->bev, EV_READ);
}

static void
mhttp_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_metrics *m = arg;

	evconnlistener_enable(m->listener);
}

static void
mhttp_error_cb(struct evconnlistener *l, void *arg)
{
	struct gw_metrics *m = arg;
	struct timeval tv = { 1, 0 };
	int e = EVUTIL_SOCKET_ERROR();

	/* EMFILE, ENFILE, ENOBUFS: the connection stays in the backlog and
	 * the socket readable. Pause for a second rather than spin (and log
	 * a line per attempt) while SMTP needs the loop. */
	log_warning("metrics: accept failed: %s; pausing the endpoint for 1s "
	    "(%zu metrics connection(s) open)", evutil_socket_error_to_string(e),
	    m->nconns);
	evconnlistener_disable(l);
	if (evtimer_add(m->resume, &tv) == -1)
		evconnlistener_enable(l);
}

/* ---- start and stop ---- */

/* "IP:port" or "[IPv6]:port" into host and port; 0 or -1. */
static int
metrics_http_split(const char *spec, char *host, size_t hn, char *port,
    size_t pn)
{
	const char *colon, *h = spec;
	size_t hl;

	if (*spec == '[') {
		const char *end = strchr(spec, ']');

		if (end == NULL || end[1] != ':')
			return -1;
		h = spec + 1;
		hl = (size_t)(end - h);
		colon = end + 1;
	} else {
		if ((colon = strchr(spec, ':')) == NULL ||
		    strchr(colon + 1, ':') != NULL)
			return -1;
		hl = (size_t)(colon - spec);
	}
	if (hl == 0 || hl >= hn || strlen(colon + 1) >= pn ||
	    colon[1] == '\0' || strspn(colon + 1, "0123456789") !=
	    strlen(colon + 1) || atoi(colon + 1) < 1 || atoi(colon + 1) > 65535)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	snprintf(port, pn, "%s", colon + 1);
	return 0;
}

/* 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104 */
static int
metrics_http_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >>
		    24) == 127;
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) ||
		    (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return 0;
}

/* The listening socket, or -1 with the reason logged. */
static int
metrics_http_bind(const char *spec)
{
	struct addrinfo hints, *ai = NULL;
	char host[INET6_ADDRSTRLEN + 1], port[8];
	int fd = -1, on = 1, e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	/* an IP literal: no name lookup at start-up */
	if (metrics_http_split(spec, host, sizeof(host), port, sizeof(port)) == -1 ||
	    getaddrinfo(host, port, &hints, &ai) != 0) {
		log_error("[metrics] listen = %s: expected IP:port (IPv6 in "
		    "brackets, port 1-65535)", log_safe(spec));
		return -1;
	}
	if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) == -1 || listen(fd, 64) == -1)
		goto fail;
	/* Not refused: a management network may be meant. */
	if (!metrics_http_loopback(ai->ai_addr))
		log_warning("[metrics] listen = %s is not a loopback address: "
		    "the endpoint has no password, so whoever can reach it can "
		    "read the metrics; limit it to the monitoring hosts "
		    "(firewall) or use 127.0.0.1", log_safe(spec));
	freeaddrinfo(ai);
	return fd;
fail:
	e = errno;
	log_error("[metrics] listen = %s: cannot listen: %s", log_safe(spec),
	    strerror(e));
	if (fd != -1)
		close(fd);
	freeaddrinfo(ai);
	return -1;
}

int
metrics_http_start(struct gateway *gw)
{
	const char *spec = gw->cfg->metrics_listen;
	struct gw_metrics *m;
	size_t i;
	int fd;

	if (spec == NULL)
		return 0;
	if ((fd = metrics_http_bind(spec)) == -1)
		return -1;
	if ((m = calloc(1, sizeof(*m))) == NULL ||
	    (m->resume = evtimer_new(gw->base, mhttp_resume_cb, m)) == NULL ||
	    (m->listener = evconnlistener_new(gw->base, mhttp_accept_cb, m,
	    LEV_OPT_CLOSE_ON_FREE, -1, fd)) == NULL) {
		log_error("[metrics] listen = %s: out of memory", log_safe(spec));
		if (m && m->resume)
			event_free(m->resume);
		free(m);
		close(fd);
		return -1;
	}
	m->gw = gw;
	evconnlistener_set_error_cb(m->listener, mhttp_error_cb);
	gw->metrics = m;

	for (i = 0; i < sizeof(metrics_catalogue) / sizeof(metrics_catalogue[0]); i++)
		metrics_define(metrics_catalogue[i].name,
		    metrics_catalogue[i].type, metrics_catalogue[i].help);
	metrics_collector_add(metrics_http_collect, gw);
	metrics_enable(1);
	/* zero from the start, so that rate() and alerts see them */
	metrics_add("mxgate_connections_total", 0);
	metrics_add("mxgate_connections_refused_total", 0, "reason", "limit_total");
	metrics_add("mxgate_connections_refused_total", 0, "reason", "limit_per_ip");
	metrics_add("mxgate_messages_total", 0, "outcome", "accepted", "reason", "ok");
	metrics_add("mxgate_protocol_violations_total", 0, "kind", "pipelining");
	metrics_add("mxgate_delivery_attempts_total", 0, "outcome", "delivered");
	metrics_add("mxgate_delivery_attempts_total", 0, "outcome", "deferred");
	metrics_add("mxgate_delivery_attempts_total", 0, "outcome", "failed");
	log_info("metrics: listening on %s (GET /metrics)", log_safe(spec));
	return 0;
}

void
metrics_http_stop(struct gateway *gw)
{
	struct gw_metrics *m = gw->metrics;

	if (m == NULL)
		return;
	metrics_enable(0);
	metrics_collector_remove(metrics_http_collect, gw);
	while (m->first != NULL)
		mhttp_conn_free(m->first);
	evconnlistener_free(m->listener);
	event_free(m->resume);
	free(m);
	gw->metrics = NULL;
	metrics_reset();
}
