#include "queue/scheduler.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "queue/dsn.h"
#include "smtp/path.h"

/* the receiving session, for the log line of a message */
#define SESSION_OF(e)	((e)->session ? log_safe((e)->session) : "-")

struct sched_entry {
	char id[ID_LEN + 1];
	long long when;
	int busy;
	int lockfd;			/* content, locked while busy (spool_attempt_lock) */
	int missing;			/* times its content was found missing */
	char *prev_state;		/* per recipient: state before this attempt */
	struct envelope env;		/* loaded while busy */
	struct scheduler *s;
	struct sched_entry *next;
};

struct scheduler {
	struct event_base *base;
	struct spool *sp;
	struct delivery_ctx *dctx;
	struct scheduler_params p;
	struct sched_entry *entries;	/* in arrival order */
	struct sched_entry *tail;
	size_t n;
	size_t active;
	struct event *tick;		/* every second */
	struct event *kick;		/* a tick now */
	struct event *pickup;		/* released messages, see spool_pickup */
};

static void sched_tick_cb(evutil_socket_t fd, short what, void *arg);
static void sched_pickup_cb(evutil_socket_t fd, short what, void *arg);

int
scheduler_backoff(const struct scheduler_params *p, int attempts)
{
	long long d = p->retry_initial;
	int i;

	for (i = 1; i < attempts && d < p->retry_max; i++)
		d *= 2;
	return d > p->retry_max ? p->retry_max : (int)d;
}

struct scheduler *
scheduler_new(struct event_base *base, struct spool *sp,
    struct delivery_ctx *dctx, const struct scheduler_params *p)
{
	struct scheduler *s = calloc(1, sizeof(*s));
	struct timeval tv = { 1, 0 };

	if (s == NULL)
		return NULL;
	s->base = base;
	s->sp = sp;
	s->dctx = dctx;
	s->p = *p;
	/* The 1 s tick and a separate one-shot kick for "now": activating
	 * the persistent timer itself by hand can leave it unscheduled
	 * (libevent reschedules a persistent timeout relative to the run it
	 * was activated for), and the queue then stalls. */
	if ((s->tick = event_new(base, -1, EV_PERSIST, sched_tick_cb, s)) == NULL) {
		free(s);
		return NULL;
	}
	if ((s->kick = event_new(base, -1, 0, sched_tick_cb, s)) == NULL) {
		event_free(s->tick);
		free(s);
		return NULL;
	}
	if ((s->pickup = event_new(base, -1, EV_PERSIST, sched_pickup_cb, s)) == NULL) {
		event_free(s->tick);
		event_free(s->kick);
		free(s);
		return NULL;
	}
	event_add(s->tick, &tv);
	event_add(s->pickup, &tv);
	return s;
}

void
scheduler_free(struct scheduler *s)
{
	struct sched_entry *e;

	if (s == NULL)
		return;
	while ((e = s->entries) != NULL) {
		s->entries = e->next;
		envelope_free(&e->env);
		free(e->prev_state);
		free(e);
	}
	event_free(s->tick);
	event_free(s->kick);
	event_free(s->pickup);
	free(s);
}

void
scheduler_set_params(struct scheduler *s, const struct scheduler_params *p)
{
	s->p = *p;
}

size_t
scheduler_queued(const struct scheduler *s)
{
	return s->n;
}

size_t
scheduler_active(const struct scheduler *s)
{
	return s->active;
}

static struct sched_entry *
sched_find(struct scheduler *s, const char *id)
{
	struct sched_entry *e;

	for (e = s->entries; e; e = e->next)
		if (strcmp(e->id, id) == 0)
			return e;
	return NULL;
}

int
scheduler_add(struct scheduler *s, const char *id, long long when)
{
	struct sched_entry *e;

	for (e = s->entries; e; e = e->next)
		if (strcmp(e->id, id) == 0) {
			if (!e->busy)
				e->when = when;
			return 0;
		}
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return -1;
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->when = when;
	e->lockfd = -1;
	e->s = s;
	/* appended: the tick scans oldest first, so old deferred messages
	 * are not starved by new arrivals */
	if (s->tail)
		s->tail->next = e;
	else
		s->entries = e;
	s->tail = e;
	s->n++;
	if (when <= time(NULL))
		event_active(s->kick, EV_TIMEOUT, 0);
	return 0;
}

static void
sched_drop(struct scheduler *s, struct sched_entry *e)
{
	struct sched_entry **pp, *prev = NULL;

	for (pp = &s->entries; *pp; prev = *pp, pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			if (s->tail == e)
				s->tail = prev;
			break;
		}
	envelope_free(&e->env);
	free(e->prev_state);
	if (e->lockfd != -1)
		close(e->lockfd);
	free(e);
	s->n--;
}

/*
 * Delivery status notifications (RFC 3464, built by queue/dsn) to the
 * sender, from the null reverse path so that they can never loop (RFC
 * 5321 6.2, 4.5.5): never about a message from the null sender, which a
 * report itself is. What each recipient asked for (RFC 3461 NOTIFY, 0 =
 * FAILURE,DELAY) decides whether it is reported.
 */

/* Is recipient i newly failed in this attempt? */
static int
sched_new_failure(const struct sched_entry *e, size_t i)
{
	return e->env.rcpts[i].state == ENV_FAILED &&
	    !(e->prev_state && e->prev_state[i] == ENV_FAILED);
}

/* Is recipient i to be in a report of this kind, after this attempt? */
static int
sched_reports(const struct sched_entry *e, size_t i, enum dsn_action kind)
{
	const struct env_rcpt *r = &e->env.rcpts[i];
	int notify = r->notify ? r->notify : SMTP_NOTIFY_DEFAULT;

	switch (kind) {
	case DSN_FAILED:
		return sched_new_failure(e, i) && (notify & SMTP_NOTIFY_FAILURE);
	case DSN_DELAYED:
		return r->state == ENV_PENDING && (notify & SMTP_NOTIFY_DELAY);
	default:
		/* RFC 3461 5.2.2: "relayed" unless the next hop took NOTIFY
		 * and reports the success itself */
		return r->state == ENV_DELIVERED && (notify & SMTP_NOTIFY_SUCCESS) &&
		    !r->dsn_passed && !(e->prev_state &&
		    e->prev_state[i] == ENV_DELIVERED);
	}
}

static int
sched_has_8bit(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/*
 * Queue one report of this kind about e's message for the recipients it
 * concerns (none: nothing to do). 0 when queued or not needed, -1 when it
 * could not be queued.
 */
static int
sched_report(struct scheduler *s, const struct sched_entry *e,
    enum dsn_action kind, long long now)
{
	static const char *what[] = { "bounce", "delay warning", "", "success notification" };
	const struct envelope *env = &e->env;
	struct dsn_rcpt *rc;
	struct dsn_report rep;
	struct buf b = { 0 };
	struct envelope be;
	struct spool_msg *m;
	char id[ID_LEN + 1];
	size_t i, n = 0;
	off_t size = 0;
	int fd, eight, r;

	for (i = 0; i < env->nrcpt; i++) {
		n += sched_reports(e, i, kind);
		if (kind == DSN_FAILED && sched_new_failure(e, i) &&
		    !sched_reports(e, i, kind))
			log_info("session=%s id=%s to=<%s> failure not "
			    "reported: NOTIFY",
			    SESSION_OF(env), env->id,
			    log_safe(env->rcpts[i].addr));
	}
	if (n == 0)
		return 0;
	if (env->sender == NULL || env->sender[0] == '\0') {
		log_info("session=%s id=%s %s: null sender",
		    SESSION_OF(env), env->id, kind == DSN_FAILED ?
		    "failed recipients not bounced" : kind == DSN_DELAYED ?
		    "no delay warning" : "no success notification");
		return 0;
	}
	if ((rc = calloc(n, sizeof(*rc))) == NULL)
		return -1;
	for (i = 0, n = 0; i < env->nrcpt; i++) {
		if (!sched_reports(e, i, kind))
			continue;
		rc[n].addr = env->rcpts[i].addr;
		rc[n].orcpt = env->rcpts[i].orcpt;
		rc[n].last = env->rcpts[i].last;
		rc[n].action = kind;
		/* the time ran out (5.4.7), unless the last reply was final */
		rc[n].expired = kind == DSN_FAILED &&
		    now - env->arrival >= s->p.max_lifetime;
		n++;
	}
	if ((m = spool_msg_new(s->sp, id)) == NULL) {
		free(rc);
		log_error("session=%s id=%s %s could not be queued",
		    SESSION_OF(env), env->id, what[kind]);
		return -1;
	}
	memset(&rep, 0, sizeof(rep));
	rep.hostname = s->p.hostname;
	rep.queue_id = env->id;
	rep.dsn_id = id;
	rep.sender = env->sender;
	rep.envid = env->dsn_envid;
	rep.ret_full = env->dsn_ret == 'F';
	rep.smtputf8 = env->smtputf8;
	rep.arrival = env->arrival;
	rep.attempt = now;
	rep.retry_until = env->arrival + s->p.max_lifetime;
	rep.now = now;
	rep.rcpts = rc;
	rep.nrcpt = n;
	fd = spool_open_content(s->sp, env->id, &size);
	r = dsn_build(&rep, fd, size, &b, &eight);
	if (fd != -1)
		close(fd);
	free(rc);
	memset(&be, 0, sizeof(be));
	if (r == -1 || spool_msg_write(m, b.data, b.len) == -1) {
		spool_msg_abort(m);
		log_error("session=%s id=%s %s could not be queued",
		    SESSION_OF(env), env->id, what[kind]);
		buf_free(&b);
		return -1;
	}
	buf_free(&b);
	be.arrival = now;
	be.body_8bit = eight;
	be.smtputf8 = env->smtputf8 && (eight || sched_has_8bit(env->sender));
	if (envelope_set(&be.session, "bounce") == -1 ||
	    envelope_set(&be.client_ip, "127.0.0.1") == -1 ||
	    envelope_set(&be.helo, s->p.hostname) == -1 ||
	    envelope_set(&be.sender, "") == -1 ||
	    envelope_add_rcpt(&be, env->sender) == -1) {
		spool_msg_abort(m);
		log_error("session=%s id=%s %s could not be queued: out of "
		    "memory",
		    SESSION_OF(env), env->id,
		    what[kind]);
		envelope_free(&be);
		return -1;
	}
	if (spool_msg_commit(m, &be) == -1) {
		log_error("session=%s id=%s %s could not be queued",
		    SESSION_OF(env), env->id, what[kind]);
		envelope_free(&be);
		return -1;
	}
	log_info("session=%s id=%s %s queued as id=%s to=<%s> recipients=%zu",
	    SESSION_OF(env), env->id,
	    what[kind], be.id, log_safe(env->sender), n);
	scheduler_add(s, be.id, 0);
	envelope_free(&be);
	return 0;
}

static void
sched_done_cb(struct envelope *env, void *arg)
{
	struct sched_entry *e = arg;
	struct scheduler *s = e->s;
	long long now = time(NULL);
	size_t i, pending, failed = 0;

	s->active--;
	e->busy = 0;
	/* the content lock is released at the end of this function (or by
	 * sched_drop): the command line waits until the outcome is written */
	/* a freed slot goes to the next due message now, not at the tick */
	event_active(s->kick, EV_TIMEOUT, 0);
	env->attempts++;
	pending = envelope_pending(env);
	if (pending > 0 && now - env->arrival >= s->p.max_lifetime) {
		for (i = 0; i < env->nrcpt; i++)
			if (env->rcpts[i].state == ENV_PENDING) {
				char text[800];

				env->rcpts[i].state = ENV_FAILED;
				snprintf(text, sizeof(text), "expired after %llds in queue; last: %s",
				    now - env->arrival, env->rcpts[i].last ?
				    env->rcpts[i].last : "no attempt result");
				envelope_set_last(&env->rcpts[i], text);
				log_info("session=%s id=%s to=<%s> status=expired",
				    env->session ? log_safe(env->session) : "-",
				    env->id,
				    log_safe(env->rcpts[i].addr));
			}
		pending = 0;
	}
	for (i = 0; i < env->nrcpt; i++)
		if (sched_new_failure(e, i))
			failed++;
	if (failed > 0 && sched_report(s, e, DSN_FAILED, now) == -1) {
		/* Bounce before the state is saved: a crash in between
		 * repeats the attempt, never loses the report. If the bounce
		 * cannot be queued, the recipients failed in this attempt stay
		 * pending: the next attempt fails them again and retries the
		 * report. */
		for (i = 0; i < env->nrcpt; i++)
			if (sched_new_failure(e, i))
				env->rcpts[i].state = ENV_PENDING;
		pending = envelope_pending(env);
	}
	/* final results, once each: after the bounce fallback above, so a
	 * failure put back to pending is told by the attempt that keeps it */
	if (s->p.on_settled)
		for (i = 0; i < env->nrcpt; i++)
			if (env->rcpts[i].state != ENV_PENDING &&
			    !(e->prev_state && e->prev_state[i] ==
			    env->rcpts[i].state))
				s->p.on_settled(env, i, s->p.settled_arg);
	/* each recipient this attempt was for (pending before it), as it
	 * stays: one failed back to pending above is deferred, and counted
	 * failed once, by the attempt whose bounce is queued */
	for (i = 0; i < env->nrcpt; i++)
		if (e->prev_state != NULL && e->prev_state[i] == ENV_PENDING)
			metrics_inc("mxgate_delivery_attempts_total", "outcome",
			    env->rcpts[i].state == ENV_DELIVERED ? "delivered" :
			    env->rcpts[i].state == ENV_FAILED ? "failed" :
			    "deferred");
	/* RFC 3461 NOTIFY=SUCCESS: delivered is delivered; a report that
	 * cannot be queued is only logged */
	sched_report(s, e, DSN_RELAYED, now);
	/* One delay warning per message, recorded in the envelope below */
	if (pending > 0 && s->p.delay_warning > 0 && env->delay_warned == 0 &&
	    now - env->arrival >= s->p.delay_warning &&
	    sched_report(s, e, DSN_DELAYED, now) == 0)
		env->delay_warned = now;
	free(e->prev_state);
	e->prev_state = NULL;
	if (pending == 0) {
		if (spool_remove(s->sp, env->id) == -1)
			log_error("session=%s id=%s cannot remove from spool: "
			    "%s",
			    SESSION_OF(env), env->id,
			    strerror(errno));
		else
			log_info("session=%s id=%s removed from queue",
			    SESSION_OF(env), env->id);
		sched_drop(s, e);
		return;
	}
	env->next_attempt = now + scheduler_backoff(&s->p, env->attempts);
	if (spool_update(s->sp, env) == -1) {
		/* The old envelope is still in place: delivered recipients
		 * may be attempted again (a duplicate, never a loss). */
		log_error("session=%s id=%s envelope update failed; retrying "
		    "later",
		    SESSION_OF(env), env->id);
	}
	e->when = env->next_attempt;
	log_info("session=%s id=%s deferred pending=%zu attempts=%d "
	    "next_attempt_in=%llds", env->session ? log_safe(env->session) : "-",
	    env->id, pending, env->attempts, env->next_attempt - now);
	envelope_free(&e->env);
	close(e->lockfd);
	e->lockfd = -1;
}

static void
sched_start(struct scheduler *s, struct sched_entry *e)
{
	const char *err;
	size_t i;
	off_t size;
	int fd, gone;

	/* Content first, locked (queue/spool.h: the command line's hold,
	 * delete and flush wait for no attempt), then the envelope: a message
	 * the administrator moved or removed meanwhile has no envelope. */
	if (e->lockfd != -1) {
		close(e->lockfd);	/* left by an earlier attempt */
		e->lockfd = -1;
	}
	if ((fd = spool_open_content(s->sp, e->id, &size)) != -1 &&
	    (spool_attempt_lock(fd) == -1 || (e->lockfd = dup(fd)) == -1)) {
		log_debug("id=%s busy in the spool (%s); trying again shortly",
		    e->id, strerror(errno));
		close(fd);
		e->when = time(NULL) + 1;
		return;
	}
	gone = fd == -1 && errno == ENOENT;
	if (spool_load(s->sp, e->id, &e->env, &err) == -1) {
		if (errno == ENOENT)
			log_info("id=%s removed from the queue by the administrator",
			    e->id);
		else
			spool_quarantine_corrupt(s->sp, e->id, err);
		if (fd != -1)
			close(fd);
		sched_drop(s, e);
		return;
	}
	if (fd == -1 && gone && e->missing++ < 3) {
		/* the content leaves first when the command line holds a
		 * message (queue/spool.h): look again before judging */
		envelope_free(&e->env);
		e->when = time(NULL) + 1;
		return;
	}
	if (fd == -1) {
		envelope_free(&e->env);
		spool_quarantine_corrupt(s->sp, e->id, gone ? "content missing" :
		    "content unreadable");
		sched_drop(s, e);
		return;
	}
	e->missing = 0;
	free(e->prev_state);
	if ((e->prev_state = calloc(e->env.nrcpt + 1, 1)) != NULL)
		for (i = 0; i < e->env.nrcpt; i++)
			e->prev_state[i] = e->env.rcpts[i].state;
	e->busy = 1;
	s->active++;
	if (delivery_run(s->dctx, &e->env, fd, size, sched_done_cb, e) == -1) {
		close(fd);
		close(e->lockfd);
		e->lockfd = -1;
		e->busy = 0;
		s->active--;
		e->when = time(NULL) + 60;
		envelope_free(&e->env);
	}
}

static void
sched_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct scheduler *s = arg;
	struct sched_entry *e, *next;
	long long now = time(NULL);

	for (e = s->entries; e && s->active < (size_t)s->p.concurrency; e = next) {
		next = e->next;
		if (!e->busy && e->when <= now)
			sched_start(s, e);
	}
}

/* pickup/ID: released into queue/ (unknown here) or flushed (known):
 * either way, attempt it now. pickup/FLUSH-ALL (id NULL): everything. */
static void
sched_picked_up(const char *id, void *arg)
{
	struct scheduler *s = arg;
	struct sched_entry *e;
	size_t n = 0;

	if (id == NULL) {
		for (e = s->entries; e; e = e->next)
			if (!e->busy) {
				e->when = 0;
				n++;
			}
		log_info("flush: %zu message(s) due now, %zu being attempted",
		    n, s->active);
		event_active(s->kick, EV_TIMEOUT, 0);
		return;
	}
	if ((e = sched_find(s, id)) != NULL) {
		if (!e->busy) {
			e->when = 0;
			event_active(s->kick, EV_TIMEOUT, 0);
		}
		log_info("id=%s flushed: %s", id, e->busy ?
		    "being attempted already" : "due now");
		return;
	}
	if (scheduler_add(s, id, 0) == -1)
		log_error("id=%s released but not scheduled: out of memory "
		    "(delivered after the next start)", id);
	else
		log_info("id=%s picked up from pickup/ (released)", id);
}

/* Once a second: messages put in queue/ behind our back (mxgate quarantine
 * release, mxgate queue release) and flush requests (mxgate queue flush).
 * pickup/ is nearly always empty: one opendir and readdir. */
static void
sched_pickup_cb(evutil_socket_t fd, short what, void *arg)
{
	struct scheduler *s = arg;

	if (spool_pickup(s->sp, sched_picked_up, s) == -1)
		log_debug("spool=%s pickup/ unreadable: %s", spool_dir(s->sp),
		    strerror(errno));
}
