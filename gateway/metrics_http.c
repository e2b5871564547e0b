/*
 * The Prometheus endpoint ([metrics] listen): libevent's HTTP server on
 * the daemon's loop. GET (or HEAD) /metrics answers the registry in the
 * text exposition format 0.0.4 (lib/metrics.h); any other path is 404,
 * any other method 405. The socket is bound at start, before privileges
 * are dropped; another address needs a restart (daemon.c).
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
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "gateway/gateway.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/metrics.h"

struct gw_metrics {
	struct evhttp *http;
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
	{ "mxgate_messages_total", METRICS_COUNTER,
	    "Messages by final reply: accepted (250), rejected (5xx) or deferred "
	    "(4xx), with the reason (ok, held, spf, dmarc, relay, size, content, "
	    "storage, auth, loop, other); a MAIL or RCPT refused for a reason "
	    "counts once per command." },
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
	    "DNS questions answered by the servers (or refused unasked), by "
	    "type and outcome." },
	{ "mxgate_dns_cache_hits_total", METRICS_COUNTER,
	    "DNS questions answered from the resolver's cache, by type." },
	{ "mxgate_queue_messages", METRICS_GAUGE,
	    "Messages in the spool: queued (waiting for an attempt), active "
	    "(being attempted), held (hold/)." },
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

/* At each scrape, on the loop: the state only the loop may read. */
static void
metrics_http_collect(void *arg)
{
	struct gateway *gw = arg;
	size_t known = 0, active = 0, held = 0;

	metrics_set("mxgate_connections", (double)gw->nconns);
	if (gw->sched != NULL) {
		known = scheduler_queued(gw->sched);
		active = scheduler_active(gw->sched);
	}
	metrics_set("mxgate_queue_messages", (double)(known - active),
	    "state", "queued");
	metrics_set("mxgate_queue_messages", (double)active, "state", "active");
	if (gw->spool != NULL &&
	    spool_list(gw->spool, 1, metrics_http_count, &held) != -1)
		metrics_set("mxgate_queue_messages", (double)held,
		    "state", "held");
}

static void
metrics_http_reply(struct evhttp_request *req, int code, const char *reason,
    const char *type, const char *body, size_t len)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *b = evbuffer_new();

	evhttp_add_header(h, "Content-Type", type);
	if (b == NULL || evbuffer_add(b, body, len) == -1) {
		if (b)
			evbuffer_free(b);
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evhttp_send_reply(req, code, reason, b);
	evbuffer_free(b);
}

static void
metrics_http_text(struct evhttp_request *req, int code, const char *reason,
    const char *text)
{
	metrics_http_reply(req, code, reason, "text/plain; charset=utf-8", text,
	    strlen(text));
}

static void
metrics_http_request(struct evhttp_request *req, void *arg)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *path = u ? evhttp_uri_get_path(u) : NULL;
	struct buf b = { 0 };

	if (path == NULL || strcmp(path, "/metrics") != 0) {
		metrics_http_text(req, 404, "Not Found", "not found: try /metrics\n");
		return;
	}
	/* RFC 9110 15.5.6: a 405 names the methods there are */
	if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", "GET, HEAD");
		metrics_http_text(req, 405, "Method Not Allowed",
		    "method not allowed\n");
		return;
	}
	if (metrics_render(&b) == -1) {
		buf_free(&b);
		log_error("metrics: out of memory rendering a scrape");
		evhttp_send_error(req, 500, NULL);
		return;
	}
	metrics_http_reply(req, 200, "OK",
	    "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
	buf_free(&b);
}

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
	struct evconnlistener *l;
	struct gw_metrics *m;
	size_t i;
	int fd;

	if (spec == NULL)
		return 0;
	if ((fd = metrics_http_bind(spec)) == -1)
		return -1;
	if ((m = calloc(1, sizeof(*m))) == NULL ||
	    (m->http = evhttp_new(gw->base)) == NULL ||
	    (l = evconnlistener_new(gw->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE,
	    -1, fd)) == NULL) {
		log_error("[metrics] listen = %s: out of memory", log_safe(spec));
		if (m && m->http)
			evhttp_free(m->http);
		free(m);
		close(fd);
		return -1;
	}
	if (evhttp_bind_listener(m->http, l) == NULL) {
		log_error("[metrics] listen = %s: out of memory", log_safe(spec));
		evconnlistener_free(l);
		evhttp_free(m->http);
		free(m);
		return -1;
	}
	/* every method reaches the callback, which answers 405 itself */
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
	    EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |
	    EVHTTP_REQ_PATCH);
	evhttp_set_timeout(m->http, 10);
	evhttp_set_max_headers_size(m->http, 8192);
	evhttp_set_max_body_size(m->http, 4096);
	evhttp_set_gencb(m->http, metrics_http_request, gw);
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
	evhttp_free(m->http);
	free(m);
	gw->metrics = NULL;
	metrics_reset();
}
