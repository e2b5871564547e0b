#include "queue/delivery.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/log.h"

struct delivery_conn {
	struct delivery_ctx *ctx;
	const struct delivery_route *route;
	struct smtp_client *client;
	struct event *idle_ev;
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
	size_t npending;
	int *done;			/* per pending recipient: handled */
	/* current group */
	const struct delivery_route *cur;
	size_t *group;			/* indices into idx[] */
	const char **rcpts;
	size_t ngroup;
	size_t host;
	struct smtp_client_msg msg;
	struct delivery_conn *conn;
	int reused;			/* conn came from the idle pool */
	struct event *next_ev;
	time_t started;
	struct delivery_job *prev_job, *next_job;
};

struct delivery_ctx {
	struct event_base *base;
	struct delivery_params p;
	struct delivery_conn *idle;
	struct delivery_job *jobs;
};

static void job_next_group(struct delivery_job *j);
static void job_try_host(struct delivery_job *j);

struct delivery_ctx *
delivery_ctx_new(struct event_base *base, const struct delivery_params *params)
{
	struct delivery_ctx *ctx = calloc(1, sizeof(*ctx));

	if (ctx == NULL)
		return NULL;
	ctx->base = base;
	ctx->p = *params;
	return ctx;
}

static void
conn_free(struct delivery_conn *c)
{
	if (c->idle_ev)
		event_free(c->idle_ev);
	if (c->client)
		smtp_client_free(c->client);
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
}

static struct delivery_conn *
conn_take_idle(struct delivery_ctx *ctx, const struct delivery_route *r)
{
	struct delivery_conn *c;

	for (c = ctx->idle; c; c = c->next)
		if (c->route == r) {
			conn_unlink_idle(ctx, c);
			evtimer_del(c->idle_ev);
			return c;
		}
	return NULL;
}

/* The job's own memory and its content fd; not its connection. */
static void
job_free(struct delivery_job *j)
{
	if (j->next_ev)
		event_free(j->next_ev);
	if (j->fd != -1)
		close(j->fd);
	free(j->idx);
	free(j->route);
	free(j->done);
	free(j->group);
	free(j->rcpts);
	free(j);
}

void
delivery_ctx_set_params(struct delivery_ctx *ctx,
    const struct delivery_params *params)
{
	ctx->p = *params;
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

	if (ctx == NULL)
		return;
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
	job_next_group(arg);
}

static void
job_schedule_next(struct delivery_job *j)
{
	struct timeval tv = { 0, 0 };

	evtimer_add(j->next_ev, &tv);
}

static void
job_record(struct delivery_job *j, size_t gi, int code, const char *text,
    const char *relay)
{
	struct env_rcpt *r = &j->env->rcpts[j->idx[j->group[gi]]];
	const char *status;
	char last[700];

	if (code >= 200 && code < 300) {
		r->state = ENV_DELIVERED;
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
	log_info("id=%s to=<%s> relay=%s status=%s delay=%llds attempt=%d reply=%s",
	    j->env->id, log_safe(r->addr) , relay ? relay : "none", status,
	    (long long)(time(NULL) - j->env->arrival), j->env->attempts + 1,
	    log_safe(text));
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
		log_debug("id=%s pooled connection to %s was closed; reconnecting",
		    j->env->id, smtp_client_peer(c));
		j->conn = NULL;
		conn_free(conn);
		job_try_host(j);
		return;
	}
	for (i = 0; i < j->ngroup; i++)
		job_record(j, i, replies[i].code, replies[i].text,
		    smtp_client_peer(c));
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
	const struct delivery_host *h = &j->cur->hosts[j->host];

	if (!ok) {
		log_info("id=%s route=%s host=%s connection failed: %s",
		    j->env->id, j->cur->name, h->spec, log_safe(err));
		conn_free(j->conn);
		j->conn = NULL;
		j->host++;
		if (j->host >= j->cur->nhosts) {
			char text[600];
			size_t i;

			snprintf(text, sizeof(text), "%s (%s)", err, h->spec);
			for (i = 0; i < j->ngroup; i++)
				job_record(j, i, 0, text, NULL);
			job_schedule_next(j);
			return;
		}
		job_try_host(j);
		return;
	}
	job_send(j);
}

static void
job_try_host(struct delivery_job *j)
{
	struct delivery_ctx *ctx = j->ctx;
	const struct delivery_host *h;
	struct smtp_client_config cc;
	struct delivery_conn *c;

	j->reused = 0;
	if ((c = conn_take_idle(ctx, j->cur)) != NULL) {
		j->conn = c;
		j->reused = 1;
		job_send(j);
		return;
	}
	if (j->host >= j->cur->nhosts) {
		size_t i;

		for (i = 0; i < j->ngroup; i++)
			job_record(j, i, 0, "no usable host", NULL);
		job_schedule_next(j);
		return;
	}
	h = &j->cur->hosts[j->host];
	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto fail;
	c->ctx = ctx;
	c->route = j->cur;
	memset(&cc, 0, sizeof(cc));
	cc.helo = ctx->p.helo;
	cc.tls = j->cur->tls;
	cc.ssl_ctx = ctx->p.ssl_ctx;
	cc.connect_timeout = ctx->p.connect_timeout;
	cc.command_timeout = ctx->p.command_timeout;
	cc.data_timeout = ctx->p.data_timeout;
	j->conn = c;
	c->client = smtp_client_connect(ctx->base, h->addr, h->addrlen, &cc,
	    job_ready_cb, j);
	if (c->client == NULL) {
		free(c);
		j->conn = NULL;
		goto fail;
	}
	return;
fail:
	{
		size_t i;

		for (i = 0; i < j->ngroup; i++)
			job_record(j, i, 0, "out of resources", NULL);
		job_schedule_next(j);
	}
}

/* Gather the next group of undone recipients sharing a route. */
static void
job_next_group(struct delivery_job *j)
{
	size_t i;

	j->ngroup = 0;
	j->cur = NULL;
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
		if (j->cur == NULL)
			j->cur = j->route[i];
		if (j->route[i] == j->cur) {
			j->group[j->ngroup] = i;
			j->rcpts[j->ngroup] = j->env->rcpts[j->idx[i]].addr;
			j->ngroup++;
		}
	}
	if (j->ngroup == 0) {
		job_finish(j);
		return;
	}
	j->host = 0;
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
	j->done = calloc(n + 1, sizeof(*j->done));
	j->group = calloc(n + 1, sizeof(*j->group));
	j->rcpts = calloc(n + 1, sizeof(*j->rcpts));
	j->next_ev = evtimer_new(ctx->base, job_next_cb, j);
	j->fd = -1;
	if (!j->idx || !j->route || !j->done || !j->group || !j->rcpts ||
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
	j->started = time(NULL);
	for (i = 0; i < env->nrcpt; i++) {
		const char *at;

		if (env->rcpts[i].state != ENV_PENDING)
			continue;
		at = strrchr(env->rcpts[i].addr, '@');
		j->idx[j->npending] = i;
		j->route[j->npending] = ctx->p.route_for(at ? at + 1 : "",
		    ctx->p.route_arg);
		j->npending++;
	}
	j->next_job = ctx->jobs;
	if (ctx->jobs)
		ctx->jobs->prev_job = j;
	ctx->jobs = j;
	job_schedule_next(j);
	return 0;
}
