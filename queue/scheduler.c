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

struct sched_entry {
	char id[ID_LEN + 1];
	long long when;
	int busy;
	char *was_failed;		/* per recipient: failed before this attempt */
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
	struct event *tick;
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
	if ((s->tick = event_new(base, -1, EV_PERSIST, sched_tick_cb, s)) == NULL) {
		free(s);
		return NULL;
	}
	if ((s->pickup = event_new(base, -1, EV_PERSIST, sched_pickup_cb, s)) == NULL) {
		event_free(s->tick);
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
		free(e->was_failed);
		free(e);
	}
	event_free(s->tick);
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
		event_active(s->tick, EV_TIMEOUT, 0);
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
	free(e->was_failed);
	free(e);
	s->n--;
}

static void
rfc5322_date(char *out, size_t n)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, n, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/*
 * A basic non-delivery report to the sender (RFC 5321 6.2 sends it from
 * the null reverse path so it can never loop). The RFC 3464 multipart
 * form comes with the queue issue.
 */
/* Is recipient i newly failed in this attempt? */
static int
sched_new_failure(const struct sched_entry *e, size_t i)
{
	return e->env.rcpts[i].state == ENV_FAILED &&
	    !(e->was_failed && e->was_failed[i]);
}

static int
sched_bounce(struct scheduler *s, const struct sched_entry *e)
{
	const struct envelope *env = &e->env;
	struct buf b = { 0 };
	struct envelope be;
	struct spool_msg *m;
	char id[ID_LEN + 1], date[64], chunk[4096];
	size_t i, hdr = 0;
	off_t size;
	int fd;

	if (env->sender == NULL || env->sender[0] == '\0') {
		log_info("id=%s failed recipients not bounced: null sender", env->id);
		return 0;
	}
	rfc5322_date(date, sizeof(date));
	buf_appendf(&b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
	    "To: <%s>\r\n"
	    "Subject: Undelivered Mail Returned to Sender\r\n"
	    "Date: %s\r\n"
	    "Message-ID: <%s.bounce@%s>\r\n"
	    "Auto-Submitted: auto-replied\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "\r\n"
	    "This is the mail system at %s.\r\n\r\n"
	    "Your message could not be delivered to one or more recipients.\r\n\r\n",
	    s->p.hostname, env->sender, date, env->id, s->p.hostname,
	    s->p.hostname);
	for (i = 0; i < env->nrcpt; i++)
		if (sched_new_failure(e, i))
			buf_appendf(&b, "<%s>: %s\r\n", env->rcpts[i].addr,
			    env->rcpts[i].last ? env->rcpts[i].last : "failed");
	buf_appendf(&b, "\r\n--- Headers of the original message (queue id %s) ---\r\n\r\n",
	    env->id);
	/* Copy the original header section, at most 64 KiB. */
	if ((fd = spool_open_content(s->sp, env->id, &size)) != -1) {
		ssize_t r;

		while (hdr < 65536 && (r = read(fd, chunk, sizeof(chunk))) > 0) {
			char *end = memmem(chunk, (size_t)r, "\r\n\r\n", 4);
			size_t take = end ? (size_t)(end - chunk) + 2 : (size_t)r;

			/* a header/body boundary split across reads is missed;
			 * the 64 KiB cap bounds that case */
			buf_append(&b, chunk, take);
			hdr += take;
			if (end)
				break;
		}
		close(fd);
	}
	if (b.len < 2 || memcmp(b.data + b.len - 2, "\r\n", 2) != 0)
		buf_appends(&b, "\r\n");

	memset(&be, 0, sizeof(be));
	if ((m = spool_msg_new(s->sp, id)) == NULL ||
	    spool_msg_write(m, b.data, b.len) == -1) {
		spool_msg_abort(m);
		log_error("id=%s bounce could not be queued", env->id);
		buf_free(&b);
		return -1;
	}
	buf_free(&b);
	be.arrival = time(NULL);
	if (envelope_set(&be.session, "bounce") == -1 ||
	    envelope_set(&be.client_ip, "127.0.0.1") == -1 ||
	    envelope_set(&be.helo, s->p.hostname) == -1 ||
	    envelope_set(&be.sender, "") == -1 ||
	    envelope_add_rcpt(&be, env->sender) == -1) {
		spool_msg_abort(m);
		log_error("id=%s bounce could not be queued: out of memory", env->id);
		envelope_free(&be);
		return -1;
	}
	if (spool_msg_commit(m, &be) == -1) {
		log_error("id=%s bounce could not be queued", env->id);
		envelope_free(&be);
		return -1;
	}
	log_info("id=%s bounce queued as id=%s to=<%s>", env->id, be.id,
	    log_safe(env->sender));
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
	/* a freed slot goes to the next due message now, not at the tick */
	event_active(s->tick, EV_TIMEOUT, 0);
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
				log_info("id=%s to=<%s> status=expired", env->id,
				    log_safe(env->rcpts[i].addr));
			}
		pending = 0;
	}
	for (i = 0; i < env->nrcpt; i++)
		if (sched_new_failure(e, i))
			failed++;
	if (failed > 0 && sched_bounce(s, e) == -1) {
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
	free(e->was_failed);
	e->was_failed = NULL;
	if (pending == 0) {
		if (spool_remove(s->sp, env->id) == -1)
			log_error("id=%s cannot remove from spool: %s", env->id,
			    strerror(errno));
		else
			log_info("id=%s removed from queue", env->id);
		sched_drop(s, e);
		return;
	}
	env->next_attempt = now + scheduler_backoff(&s->p, env->attempts);
	if (spool_update(s->sp, env) == -1) {
		/* The old envelope is still in place: delivered recipients
		 * may be attempted again (a duplicate, never a loss). */
		log_error("id=%s envelope update failed; retrying later", env->id);
	}
	e->when = env->next_attempt;
	log_info("id=%s deferred pending=%zu attempts=%d next_attempt_in=%llds",
	    env->id, pending, env->attempts, env->next_attempt - now);
	envelope_free(&e->env);
}

static void
sched_start(struct scheduler *s, struct sched_entry *e)
{
	const char *err;
	size_t i;
	off_t size;
	int fd;

	if (spool_load(s->sp, e->id, &e->env, &err) == -1) {
		spool_quarantine_corrupt(s->sp, e->id, err);
		sched_drop(s, e);
		return;
	}
	if ((fd = spool_open_content(s->sp, e->id, &size)) == -1) {
		envelope_free(&e->env);
		spool_quarantine_corrupt(s->sp, e->id, "content unreadable");
		sched_drop(s, e);
		return;
	}
	free(e->was_failed);
	if ((e->was_failed = calloc(e->env.nrcpt + 1, 1)) != NULL)
		for (i = 0; i < e->env.nrcpt; i++)
			e->was_failed[i] = e->env.rcpts[i].state == ENV_FAILED;
	e->busy = 1;
	s->active++;
	if (delivery_run(s->dctx, &e->env, fd, size, sched_done_cb, e) == -1) {
		close(fd);
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

static void
sched_picked_up(const char *id, void *arg)
{
	struct scheduler *s = arg;

	if (sched_find(s, id) != NULL)
		return;		/* known already: its schedule stands */
	if (scheduler_add(s, id, 0) == -1)
		log_error("id=%s released but not scheduled: out of memory "
		    "(delivered after the next start)", id);
	else
		log_info("id=%s picked up from pickup/ (released)", id);
}

/* Once a second: messages put in queue/ behind our back (mxgate quarantine
 * release). pickup/ is nearly always empty: one opendir and readdir. */
static void
sched_pickup_cb(evutil_socket_t fd, short what, void *arg)
{
	struct scheduler *s = arg;

	if (spool_pickup(s->sp, sched_picked_up, s) == -1)
		log_debug("spool=%s pickup/ unreadable: %s", spool_dir(s->sp),
		    strerror(errno));
}
