#include "queue/delivery.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/log.h"
#include "queue/mxlookup.h"
#include "smtp/path.h"

/* the receiving session, for the log line of a message */
#define SESSION_OF(e)	((e)->session ? log_safe((e)->session) : "-")

#define DEST_CONCURRENCY	10
#define MX_PORT			25

/* Connections in use to one address and port. */
struct delivery_dest {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int busy;
	struct delivery_dest *next;
};

struct delivery_conn {
	struct delivery_ctx *ctx;
	struct smtp_client *client;
	struct event *idle_ev;
	/* what a message needs to reuse the connection */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	enum smtp_client_tls tls;
	char *name;			/* servername, or NULL */
	char relay[MX_NAME_MAX + 80];	/* "mx.example[192.0.2.1]:25" */
	int busy;			/* counted in its destination */
	struct delivery_conn *next;	/* idle list */
};

struct delivery_job {
	struct delivery_ctx *ctx;
	struct envelope *env;
	int fd;
	off_t size;
	delivery_done_cb cb;
	void *arg;
	size_t *idx;			/* pending recipient indices */
	const struct delivery_route **route;	/* per pending recipient */
	const char **domain;		/* per pending recipient */
	size_t npending;
	int *done;			/* per pending recipient: handled */
	/* current group */
	const struct delivery_route *cur;
	const char *cur_domain;		/* MX routes: the group's domain */
	size_t *group;			/* indices into idx[] */
	const char **rcpts;
	const char **notify;		/* per group member: RFC 3461 NOTIFY= */
	const char **orcpt;		/* ... ORCPT=, or NULL */
	char (*notify_text)[32];	/* per pending recipient */
	size_t ngroup;
	const struct delivery_host *hosts;	/* the group's, in order */
	size_t nhosts;
	size_t host;
	struct mxlookup *mxl;		/* MX lookup in flight */
	struct mx_target *mxt;		/* its answer, owned */
	struct delivery_host *mxh;	/* hosts pointing into mxt */
	struct smtp_client_msg msg;
	struct delivery_conn *conn;
	int reused;			/* conn came from the idle pool */
	int resume;			/* next_ev: retry the host, not next group */
	unsigned long wait_seq;		/* waiting for a destination: order */
	struct event *next_ev;
	struct delivery_job *prev_job, *next_job;
};

struct delivery_ctx {
	struct event_base *base;
	struct delivery_params p;
	struct delivery_route mx_route;	/* recipients without a route */
	struct delivery_conn *idle;
	struct delivery_job *jobs;
	struct delivery_dest *dests;
	unsigned long wait_seq;
	int closing;
};

static void job_next_group(struct delivery_job *j);
static void job_try_host(struct delivery_job *j);

static int
sa_equal(const struct sockaddr *a, socklen_t alen, const struct sockaddr_storage *b,
    socklen_t blen)
{
	return alen == blen && memcmp(a, b, alen) == 0;
}

static void
delivery_params_apply(struct delivery_ctx *ctx, const struct delivery_params *p)
{
	ctx->p = *p;
	if (ctx->p.mx_port <= 0)
		ctx->p.mx_port = MX_PORT;
	if (ctx->p.dest_concurrency <= 0)
		ctx->p.dest_concurrency = DEST_CONCURRENCY;
}

struct delivery_ctx *
delivery_ctx_new(struct event_base *base, const struct delivery_params *params)
{
	struct delivery_ctx *ctx = calloc(1, sizeof(*ctx));

	if (ctx == NULL)
		return NULL;
	ctx->base = base;
	delivery_params_apply(ctx, params);
	ctx->mx_route.name = "mx";
	ctx->mx_route.tls = SMTP_TLS_OPPORTUNISTIC;
	ctx->mx_route.mx = 1;
	return ctx;
}

/* ---- destinations: connections in use per address and port ---- */

static struct delivery_dest *
dest_find(struct delivery_ctx *ctx, const struct sockaddr *a, socklen_t len)
{
	struct delivery_dest *d;

	for (d = ctx->dests; d; d = d->next)
		if (sa_equal(a, len, &d->addr, d->addrlen))
			return d;
	return NULL;
}

static int
dest_busy(struct delivery_ctx *ctx, const struct sockaddr *a, socklen_t len)
{
	struct delivery_dest *d = dest_find(ctx, a, len);

	return d ? d->busy : 0;
}

static int
conn_acquire(struct delivery_conn *c)
{
	struct delivery_ctx *ctx = c->ctx;
	struct delivery_dest *d;

	if (c->busy)
		return 0;
	if ((d = dest_find(ctx, (struct sockaddr *)&c->addr, c->addrlen)) == NULL) {
		if ((d = calloc(1, sizeof(*d))) == NULL)
			return -1;
		memcpy(&d->addr, &c->addr, c->addrlen);
		d->addrlen = c->addrlen;
		d->next = ctx->dests;
		ctx->dests = d;
	}
	d->busy++;
	c->busy = 1;
	return 0;
}

/* The job that has waited longest for this destination tries again. */
static void
dest_wake(struct delivery_ctx *ctx, const struct sockaddr_storage *a,
    socklen_t len)
{
	struct delivery_job *j, *best = NULL;
	struct timeval tv = { 0, 0 };

	if (ctx->closing)
		return;
	for (j = ctx->jobs; j; j = j->next_job) {
		const struct delivery_host *h;

		if (j->wait_seq == 0 || j->resume || j->host >= j->nhosts)
			continue;
		h = &j->hosts[j->host];
		if (sa_equal(h->addr, h->addrlen, a, len) &&
		    (best == NULL || j->wait_seq < best->wait_seq))
			best = j;
	}
	if (best != NULL) {
		best->resume = 1;
		evtimer_add(best->next_ev, &tv);
	}
}

static void
conn_release(struct delivery_conn *c)
{
	struct delivery_ctx *ctx = c->ctx;
	struct delivery_dest *d, **pp;

	if (!c->busy)
		return;
	c->busy = 0;
	for (pp = &ctx->dests; (d = *pp) != NULL; pp = &d->next)
		if (sa_equal((struct sockaddr *)&c->addr, c->addrlen, &d->addr,
		    d->addrlen)) {
			if (--d->busy == 0) {
				*pp = d->next;
				free(d);
			}
			break;
		}
	dest_wake(ctx, &c->addr, c->addrlen);
}

/* ---- the connection pool ---- */

static void
conn_free(struct delivery_conn *c)
{
	conn_release(c);
	if (c->idle_ev)
		event_free(c->idle_ev);
	if (c->client)
		smtp_client_free(c->client);
	free(c->name);
	free(c);
}

static void
conn_unlink_idle(struct delivery_ctx *ctx, struct delivery_conn *c)
{
	struct delivery_conn **pp;

	for (pp = &ctx->idle; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			c->next = NULL;
			return;
		}
}

static void
conn_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct delivery_conn *c = arg;

	conn_unlink_idle(c->ctx, c);
	smtp_client_quit(c->client);
	c->client = NULL;
	conn_free(c);
}

static void
conn_park(struct delivery_conn *c)
{
	struct delivery_ctx *ctx = c->ctx;
	struct timeval tv = { ctx->p.idle_timeout, 0 };

	if (c->idle_ev == NULL &&
	    (c->idle_ev = evtimer_new(ctx->base, conn_idle_cb, c)) == NULL) {
		smtp_client_quit(c->client);
		c->client = NULL;
		conn_free(c);
		return;
	}
	evtimer_add(c->idle_ev, &tv);
	c->next = ctx->idle;
	ctx->idle = c;
	conn_release(c);
}

static int
conn_matches(const struct delivery_conn *c, const struct delivery_host *h,
    enum smtp_client_tls tls)
{
	if (c->tls != tls || !sa_equal(h->addr, h->addrlen, &c->addr, c->addrlen))
		return 0;
	if (c->name == NULL || h->name == NULL)
		return c->name == h->name;
	return strcasecmp(c->name, h->name) == 0;
}

/*
 * An idle connection to the host about to be tried, with the same policy.
 * Only that host: an open connection to a backup MX must not win over the
 * preferred one (RFC 5321 5.1 order).
 */
static struct delivery_conn *
conn_take_idle(struct delivery_ctx *ctx, const struct delivery_job *j)
{
	const struct delivery_host *h;
	struct delivery_conn *c;

	if (j->host >= j->nhosts)
		return NULL;
	h = &j->hosts[j->host];
	if (dest_busy(ctx, h->addr, h->addrlen) >= ctx->p.dest_concurrency)
		return NULL;
	for (c = ctx->idle; c; c = c->next)
		if (conn_matches(c, h, j->cur->tls)) {
			if (conn_acquire(c) == -1)
				return NULL;
			conn_unlink_idle(ctx, c);
			evtimer_del(c->idle_ev);
			return c;
		}
	return NULL;
}

/* ---- jobs ---- */

static void
job_clear_mx(struct delivery_job *j)
{
	mxlookup_cancel(j->mxl);
	j->mxl = NULL;
	free(j->mxt);
	free(j->mxh);
	j->mxt = NULL;
	j->mxh = NULL;
}

/* The job's own memory and its content fd; not its connection. */
static void
job_free(struct delivery_job *j)
{
	job_clear_mx(j);
	if (j->next_ev)
		event_free(j->next_ev);
	if (j->fd != -1)
		close(j->fd);
	free(j->idx);
	free(j->route);
	free(j->domain);
	free(j->done);
	free(j->group);
	free(j->rcpts);
	free(j->notify);
	free(j->orcpt);
	free(j->notify_text);
	free(j);
}

void
delivery_ctx_set_params(struct delivery_ctx *ctx,
    const struct delivery_params *params)
{
	delivery_params_apply(ctx, params);
}

void
delivery_ctx_drop_idle(struct delivery_ctx *ctx)
{
	struct delivery_conn *c;

	while ((c = ctx->idle) != NULL) {
		ctx->idle = c->next;
		smtp_client_quit(c->client);
		c->client = NULL;
		conn_free(c);
	}
}

size_t
delivery_ctx_active(const struct delivery_ctx *ctx)
{
	const struct delivery_job *j;
	size_t n = 0;

	for (j = ctx->jobs; j; j = j->next_job)
		n++;
	return n;
}

void
delivery_ctx_free(struct delivery_ctx *ctx)
{
	struct delivery_conn *c;
	struct delivery_job *j;
	struct delivery_dest *d;

	if (ctx == NULL)
		return;
	ctx->closing = 1;
	while ((c = ctx->idle) != NULL) {
		ctx->idle = c->next;
		conn_free(c);
	}
	while ((j = ctx->jobs) != NULL) {
		ctx->jobs = j->next_job;
		if (j->conn)
			conn_free(j->conn);
		job_free(j);
	}
	while ((d = ctx->dests) != NULL) {
		ctx->dests = d->next;
		free(d);
	}
	free(ctx);
}

static void
job_finish(struct delivery_job *j)
{
	struct delivery_ctx *ctx = j->ctx;
	delivery_done_cb cb = j->cb;
	struct envelope *env = j->env;
	void *arg = j->arg;

	if (j->prev_job)
		j->prev_job->next_job = j->next_job;
	else
		ctx->jobs = j->next_job;
	if (j->next_job)
		j->next_job->prev_job = j->prev_job;
	job_free(j);
	cb(env, arg);
}

/* Continue from the event loop, never from inside a client callback chain. */
static void
job_next_cb(evutil_socket_t fd, short what, void *arg)
{
	struct delivery_job *j = arg;

	if (j->resume) {
		j->resume = 0;
		job_try_host(j);
	} else
		job_next_group(j);
}

static void
job_schedule_next(struct delivery_job *j)
{
	struct timeval tv = { 0, 0 };

	j->resume = 0;
	evtimer_add(j->next_ev, &tv);
}

static const char *
job_route_name(const struct delivery_job *j)
{
	if (j->cur != NULL && j->cur->mx && j->cur_domain != NULL)
		return j->cur_domain;
	return j->cur != NULL ? j->cur->name : "none";
}

/* Outcome of group member gi; conn is the connection that said it, or NULL. */
static void
job_record(struct delivery_job *j, size_t gi, int code, const char *text,
    const struct delivery_conn *conn)
{
	struct env_rcpt *r = &j->env->rcpts[j->idx[j->group[gi]]];
	const char *status, *relay = conn ? conn->relay : NULL;
	const struct smtp_client *c = conn ? conn->client : NULL;
	char last[700];

	if (code >= 200 && code < 300) {
		r->state = ENV_DELIVERED;
		/* RFC 3461 5.2.2: a next hop that offers DSN got NOTIFY and
		 * reports success itself */
		r->dsn_passed = c != NULL && smtp_client_dsn(c);
		status = "sent";
	} else if (code >= 500) {
		r->state = ENV_FAILED;
		status = "bounced";
	} else
		status = "deferred";
	snprintf(last, sizeof(last), "%s%s%s", relay ? relay : "",
	    relay ? " said: " : "", text);
	envelope_set_last(r, last);
	j->done[j->group[gi]] = 1;
	log_info("session=%s id=%s to=<%s> relay=%s status=%s delay=%llds "
	    "attempt=%d tls=%s verified=%s reply=%s",
	    j->env->session ? log_safe(j->env->session) : "-", j->env->id,
	    log_safe(r->addr),
	    relay ? log_safe(relay) : "none", status,
	    (long long)(time(NULL) - j->env->arrival), j->env->attempts + 1,
	    c ? smtp_client_tls_version(c) : "none",
	    c && smtp_client_tls_verified(c) ? "yes" : "no", log_safe(text));
}

static void
job_record_all(struct delivery_job *j, int code, const char *text)
{
	size_t i;

	for (i = 0; i < j->ngroup; i++)
		job_record(j, i, code, text, NULL);
	job_schedule_next(j);
}

static void
job_sent_cb(struct smtp_client *c, const struct smtp_client_reply *replies,
    int conn_ok, void *arg)
{
	struct delivery_job *j = arg;
	struct delivery_conn *conn = j->conn;
	size_t i;

	if (j->reused && !conn_ok && j->ngroup > 0 && replies[0].code == 0) {
		/* The peer closed the pooled connection while it was idle:
		 * not a delivery failure; try afresh. */
		log_debug("session=%s id=%s pooled connection to %s was "
		    "closed; reconnecting",
		    SESSION_OF(j->env), j->env->id, smtp_client_peer(c));
		j->conn = NULL;
		conn_free(conn);
		job_try_host(j);
		return;
	}
	for (i = 0; i < j->ngroup; i++)
		job_record(j, i, replies[i].code, replies[i].text, conn);
	j->conn = NULL;
	if (conn_ok)
		conn_park(conn);
	else
		conn_free(conn);
	job_schedule_next(j);
}

static void
job_send(struct delivery_job *j)
{
	j->msg.sender = j->env->sender;
	j->msg.rcpts = j->rcpts;
	j->msg.nrcpt = j->ngroup;
	j->msg.fd = j->fd;
	j->msg.size = j->size;
	j->msg.prefix = j->env->prepend;
	j->msg.prefix_len = j->env->prepend ? strlen(j->env->prepend) : 0;
	j->msg.body_8bit = j->env->body_8bit;
	j->msg.smtputf8 = j->env->smtputf8;
	j->msg.dsn_ret = j->env->dsn_ret == 'F' ? "FULL" :
	    j->env->dsn_ret == 'H' ? "HDRS" : NULL;
	j->msg.dsn_envid = j->env->dsn_envid;
	j->msg.dsn_notify = j->notify;
	j->msg.dsn_orcpt = j->orcpt;
	if (smtp_client_send(j->conn->client, &j->msg, job_sent_cb, j) == -1) {
		conn_free(j->conn);
		j->conn = NULL;
		job_try_host(j);
	}
}

static void
job_ready_cb(struct smtp_client *c, int ok, const char *err, void *arg)
{
	struct delivery_job *j = arg;
	const struct delivery_host *h = &j->hosts[j->host];

	if (!ok) {
		/* RFC 5321 5.1: on to the next host. */
		log_info("session=%s id=%s route=%s host=%s connection failed: "
		    "%s",
		    SESSION_OF(j->env), j->env->id, job_route_name(j), h->spec,
		    log_safe(err));
		conn_free(j->conn);
		j->conn = NULL;
		j->host++;
		if (j->host >= j->nhosts) {
			char text[600];

			snprintf(text, sizeof(text), "%s (%s)", err, h->spec);
			job_record_all(j, 0, text);
			return;
		}
		job_try_host(j);
		return;
	}
	job_send(j);
}

/* "name[ip]:port" when the host has a name, else the client's peer. */
static void
conn_set_relay(struct delivery_conn *c)
{
	unsigned char a[16];
	const char *peer = smtp_client_peer(c->client);

	if (c->name != NULL && inet_pton(AF_INET, c->name, a) != 1 &&
	    inet_pton(AF_INET6, c->name, a) != 1)
		snprintf(c->relay, sizeof(c->relay), "%s%s", c->name, peer);
	else
		snprintf(c->relay, sizeof(c->relay), "%s", peer);
}

static void
job_try_host(struct delivery_job *j)
{
	struct delivery_ctx *ctx = j->ctx;
	const struct delivery_host *h;
	struct smtp_client_config cc;
	struct delivery_conn *c;

	j->reused = 0;
	if ((c = conn_take_idle(ctx, j)) != NULL) {
		j->conn = c;
		j->reused = 1;
		j->wait_seq = 0;
		job_send(j);
		return;
	}
	if (j->host >= j->nhosts) {
		job_record_all(j, 0, "no usable host");
		return;
	}
	h = &j->hosts[j->host];
	if (dest_busy(ctx, h->addr, h->addrlen) >= ctx->p.dest_concurrency) {
		/* Woken by dest_wake when a connection there is released. */
		if (j->wait_seq == 0)
			j->wait_seq = ++ctx->wait_seq;
		log_debug("session=%s id=%s host=%s: %d connections in use, "
		    "waiting",
		    SESSION_OF(j->env), j->env->id, h->spec,
		    ctx->p.dest_concurrency);
		return;
	}
	j->wait_seq = 0;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto fail;
	c->ctx = ctx;
	memcpy(&c->addr, h->addr, h->addrlen);
	c->addrlen = h->addrlen;
	c->tls = j->cur->tls;
	if ((h->name != NULL && (c->name = strdup(h->name)) == NULL) ||
	    conn_acquire(c) == -1) {
		free(c->name);
		free(c);
		goto fail;
	}
	memset(&cc, 0, sizeof(cc));
	cc.helo = ctx->p.helo;
	cc.tls = j->cur->tls;
	cc.ssl_ctx = ctx->p.ssl_ctx;
	cc.servername = h->name;
	cc.connect_timeout = ctx->p.connect_timeout;
	cc.command_timeout = ctx->p.command_timeout;
	cc.data_timeout = ctx->p.data_timeout;
	j->conn = c;
	c->client = smtp_client_connect(ctx->base, h->addr, h->addrlen, &cc,
	    job_ready_cb, j);
	if (c->client == NULL) {
		conn_free(c);
		j->conn = NULL;
		goto fail;
	}
	conn_set_relay(c);
	return;
fail:
	job_record_all(j, 0, "out of resources");
}

/* Host names equal, case-insensitive, a final dot ignored. */
static int
job_same_host(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && la > 0 && strncasecmp(a, b, la) == 0;
}

/*
 * RFC 5321 5.1: when we are one of the domain's MX hosts (an exchange
 * named as our host name), only hosts more preferred than we are may take
 * the mail. Returns how many of t[0..n) (in preference order) remain;
 * *self_r is set when we were among them.
 */
static size_t
job_drop_self(const char *self, const struct mx_target *t, size_t n,
    int *self_r)
{
	size_t i;

	*self_r = 0;
	if (self == NULL)
		return n;
	for (i = 0; i < n; i++)
		if (job_same_host(t[i].name, self)) {
			unsigned pref = t[i].pref;

			*self_r = 1;
			/* targets are sorted: cut at the first of our rank */
			for (i = 0; i < n && t[i].pref < pref; i++)
				;
			return i;
		}
	return n;
}

static void
job_on_mx(const struct mx_result *res, void *arg)
{
	struct delivery_job *j = arg;
	size_t i, n;
	int self;

	j->mxl = NULL;
	if (res->status != MX_OK) {
		log_info("session=%s id=%s domain=%s MX lookup: %s",
		    SESSION_OF(j->env), j->env->id,
		    res->domain, log_safe(res->text));
		job_record_all(j, res->status == MX_PERM ? res->code : 0,
		    res->text);
		return;
	}
	n = job_drop_self(j->ctx->p.helo, res->targets, res->ntargets, &self);
	if (n == 0) {
		char text[600];

		/* Deferred, not bounced: a DNS or [server] hostname mistake
		 * that the administrator can still fix. */
		snprintf(text, sizeof(text), "mail for %s loops back to myself "
		    "(%s is an MX host of %s; RFC 5321 5.1)", res->domain,
		    j->ctx->p.helo, res->domain);
		log_warning("session=%s id=%s domain=%s %s",
		    SESSION_OF(j->env), j->env->id, res->domain, text);
		job_record_all(j, 0, text);
		return;
	}
	if (self)
		log_debug("session=%s id=%s domain=%s we are an MX host: %zu "
		    "more preferred address(es) of %zu", SESSION_OF(j->env),
		    j->env->id, res->domain, n, res->ntargets);
	j->mxt = calloc(n, sizeof(*j->mxt));
	j->mxh = calloc(n, sizeof(*j->mxh));
	if (j->mxt == NULL || j->mxh == NULL) {
		job_record_all(j, 0, "out of resources");
		return;
	}
	memcpy(j->mxt, res->targets, n * sizeof(*j->mxt));
	for (i = 0; i < n; i++) {
		j->mxh[i].spec = j->mxt[i].spec;
		j->mxh[i].addr = (const struct sockaddr *)&j->mxt[i].addr;
		j->mxh[i].addrlen = j->mxt[i].addrlen;
		j->mxh[i].name = j->mxt[i].name;
		log_debug("session=%s id=%s domain=%s target %zu: %s pref=%u",
		    SESSION_OF(j->env), j->env->id,
		    res->domain, i, j->mxt[i].spec, j->mxt[i].pref);
	}
	j->hosts = j->mxh;
	j->nhosts = n;
	j->host = 0;
	job_try_host(j);
}

static void
job_resolve(struct delivery_job *j)
{
	struct delivery_ctx *ctx = j->ctx;

	if (ctx->p.resolver == NULL) {
		job_record_all(j, 0, "no resolver for MX lookups");
		return;
	}
	{
		char a[256];
		const char *dom = j->cur_domain;

		if (ctx->p.domain_ascii != NULL) {
			if (ctx->p.domain_ascii(dom, a, sizeof(a)) == -1) {
				job_record_all(j, 550, "550 5.1.2 Recipient domain "
				    "is not a valid domain name");
				return;
			}
			dom = a;
		}
		j->mxl = mxlookup_start(ctx->p.resolver, dom, ctx->p.mx_port,
		    job_on_mx, j);
	}
	if (j->mxl == NULL)
		job_record_all(j, 0, "out of resources");
}

/* Gather the next group of undone recipients sharing a route (and, for
 * delivery by MX, a domain). */
static void
job_next_group(struct delivery_job *j)
{
	size_t i;

	job_clear_mx(j);
	j->ngroup = 0;
	j->cur = NULL;
	j->cur_domain = NULL;
	for (i = 0; i < j->npending; i++) {
		if (j->done[i])
			continue;
		if (j->route[i] == NULL) {
			j->group[0] = i;
			j->ngroup = 1;
			job_record(j, 0, 0, "no route to the recipient's domain", NULL);
			j->ngroup = 0;
			continue;
		}
		if (j->cur == NULL) {
			j->cur = j->route[i];
			j->cur_domain = j->domain[i];
		}
		if (j->route[i] != j->cur || (j->cur->mx &&
		    strcasecmp(j->domain[i], j->cur_domain) != 0))
			continue;
		j->group[j->ngroup] = i;
		j->rcpts[j->ngroup] = j->env->rcpts[j->idx[i]].addr;
		j->notify[j->ngroup] = j->env->rcpts[j->idx[i]].notify ?
		    smtp_dsn_notify_str(j->env->rcpts[j->idx[i]].notify,
		    j->notify_text[i], sizeof(j->notify_text[i])) : NULL;
		j->orcpt[j->ngroup] = j->env->rcpts[j->idx[i]].orcpt;
		j->ngroup++;
	}
	if (j->ngroup == 0) {
		job_finish(j);
		return;
	}
	j->host = 0;
	j->wait_seq = 0;
	if (j->cur->mx) {
		j->hosts = NULL;
		j->nhosts = 0;
		job_resolve(j);
		return;
	}
	j->hosts = j->cur->hosts;
	j->nhosts = j->cur->nhosts;
	job_try_host(j);
}

int
delivery_run(struct delivery_ctx *ctx, struct envelope *env, int fd,
    off_t size, delivery_done_cb cb, void *arg)
{
	struct delivery_job *j;
	size_t i, n = envelope_pending(env);

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -1;
	j->idx = calloc(n + 1, sizeof(*j->idx));
	j->route = calloc(n + 1, sizeof(*j->route));
	j->domain = calloc(n + 1, sizeof(*j->domain));
	j->done = calloc(n + 1, sizeof(*j->done));
	j->group = calloc(n + 1, sizeof(*j->group));
	j->rcpts = calloc(n + 1, sizeof(*j->rcpts));
	j->notify = calloc(n + 1, sizeof(*j->notify));
	j->orcpt = calloc(n + 1, sizeof(*j->orcpt));
	j->notify_text = calloc(n + 1, sizeof(*j->notify_text));
	j->next_ev = evtimer_new(ctx->base, job_next_cb, j);
	j->fd = -1;
	if (!j->idx || !j->route || !j->domain || !j->done || !j->group ||
	    !j->rcpts || !j->notify || !j->orcpt || !j->notify_text ||
	    !j->next_ev) {
		job_free(j);
		return -1;
	}
	j->ctx = ctx;
	j->env = env;
	j->fd = fd;
	j->size = size;
	j->cb = cb;
	j->arg = arg;
	for (i = 0; i < env->nrcpt; i++) {
		const char *at, *dom;
		const struct delivery_route *r;

		if (env->rcpts[i].state != ENV_PENDING)
			continue;
		at = strrchr(env->rcpts[i].addr, '@');
		dom = at ? at + 1 : "";
		r = ctx->p.route_for(dom, ctx->p.route_arg);
		/* No route: by MX, unless there is no domain to look up
		 * (a bare <postmaster> with nowhere to go). */
		if (r == NULL && *dom != '\0')
			r = &ctx->mx_route;
		j->idx[j->npending] = i;
		j->route[j->npending] = r;
		j->domain[j->npending] = dom;
		j->npending++;
	}
	j->next_job = ctx->jobs;
	if (ctx->jobs)
		ctx->jobs->prev_job = j;
	ctx->jobs = j;
	job_schedule_next(j);
	return 0;
}
