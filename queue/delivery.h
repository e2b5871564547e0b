/*
 * queue/delivery: one delivery attempt of one queued message: its pending
 * recipients grouped by route, each group handed to the route's hosts in
 * preference order through smtp/client, with connections kept for a while
 * and reused for the next message to the same destination (address, port,
 * TLS policy and host name).
 *
 * A recipient domain without a route (route_for gives NULL), or whose
 * route has `mx` set, is delivered by MX lookup (queue/mxlookup, through
 * params.resolver, to port params.mx_port): one group per domain, hosts in
 * MX order, TLS per the route (opportunistic without one). A null MX,
 * NXDOMAIN or a domain with no address fails its recipients at once (5xx);
 * a DNS failure leaves them pending. The next host is tried when a
 * connection cannot be made or set up (refused, timeout, 4xx/5xx greeting,
 * STARTTLS required but missing, certificate not verified: RFC 5321 5.1);
 * a reply inside the transaction is the outcome.
 *
 * At most params.dest_concurrency connections to one address and port are
 * in use at once; an attempt that would open another waits for one.
 *
 * Outcome per recipient, written into the envelope given to delivery_run:
 * 2xx → ENV_DELIVERED, 5xx → ENV_FAILED, anything else (4xx, no reply,
 * connection failures on every host, DNS failures) stays ENV_PENDING. Each
 * touched recipient's `last` holds the reply or the reason. One log line
 * per recipient and attempt, with relay=, status=, tls= (version or none)
 * and verified= (yes: certificate chain and host name checked out).
 *
 * Asynchronous: delivery_run returns at once; done_cb fires once when the
 * attempt is over (never from inside delivery_run).
 */
#ifndef QUEUE_DELIVERY_H
#define QUEUE_DELIVERY_H

#include <sys/socket.h>
#include <sys/types.h>
#include <openssl/ssl.h>

#include "queue/envelope.h"
#include "smtp/client.h"

struct event_base;
struct delivery_ctx;
struct dns_resolver;

struct delivery_host {
	const char *spec;		/* "127.0.0.1:2526" for logs */
	const struct sockaddr *addr;
	socklen_t addrlen;
	const char *name;		/* host name (or IP literal) the
					 * certificate is checked for; NULL */
};

struct delivery_route {
	const char *name;		/* the route's domain, or "*" */
	const struct delivery_host *hosts;	/* in preference order */
	size_t nhosts;
	enum smtp_client_tls tls;
	int mx;				/* hosts by MX lookup (hosts unused) */
};

/* Route for a recipient domain, or NULL (delivery by MX lookup).
 * Borrowed, stable while used. */
typedef const struct delivery_route *(*delivery_route_fn)(const char *domain,
    void *arg);

struct delivery_params {
	const char *helo;
	SSL_CTX *ssl_ctx;		/* client context or NULL */
	int connect_timeout;
	int command_timeout;
	int data_timeout;
	int idle_timeout;		/* keep an idle connection this long */
	delivery_route_fn route_for;
	void *route_arg;
	struct dns_resolver *resolver;	/* for MX lookups; NULL: they fail
					 * temporarily */
	int mx_port;			/* port of MX hosts; 0 = 25 */
	int dest_concurrency;		/* connections in use per destination
					 * address and port; 0 = 10 */
	/* A recipient domain as DNS knows it: U-labels to A-labels
	 * (RFC 5890; SMTPUTF8 mail). 0, or -1 when it cannot be one (the
	 * recipients then fail). NULL: domains are looked up as they are. */
	int (*domain_ascii)(const char *domain, char *out, size_t n);
};

typedef void (*delivery_done_cb)(struct envelope *env, void *arg);

/* params is copied (strings and ctx borrowed). */
struct delivery_ctx *delivery_ctx_new(struct event_base *base,
    const struct delivery_params *params);
/* Stops every attempt in progress (no callbacks) and closes connections. */
void delivery_ctx_free(struct delivery_ctx *ctx);

/* New parameters (configuration reload) for attempts started from now on. */
void delivery_ctx_set_params(struct delivery_ctx *ctx,
    const struct delivery_params *params);
/* Close every idle pooled connection (their routes may be going away). */
void delivery_ctx_drop_idle(struct delivery_ctx *ctx);
/* Attempts in progress. */
size_t delivery_ctx_active(const struct delivery_ctx *ctx);

/*
 * Start an attempt for env (borrowed until done_cb) whose content is fd
 * (size octets; closed by delivery when done). Returns -1 on allocation
 * failure (fd then untouched).
 */
int delivery_run(struct delivery_ctx *ctx, struct envelope *env, int fd,
    off_t size, delivery_done_cb cb, void *arg);

#endif
