/*
 * The recorder: callers copy evaluations into a queue under a mutex; one
 * worker takes the whole queue, commits it in one transaction and loops.
 * Everything shared (queue, sequence numbers, counters, last error) is
 * read and written under mu only; the store handle belongs to the worker
 * (opened before it starts, closed after it is joined).
 */
#include "report/recorder.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "report/store.h"

#define RECORDER_LOG_EVERY	60	/* seconds between warnings */
#define RECORDER_EXPIRE_EVERY	3600	/* seconds between retention runs */

struct rec_item {
	struct rec_item *next;
	int dest;			/* a delivery result, else an evaluation */
	struct report_policy p;
	struct report_row r;
	const char *addr, *text;
	int ok, max_failures;
	long long suppress_for;
	char strings[];			/* every string above, copied */
};

struct report_recorder {
	struct report_store *st;	/* the worker's */
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t work_cv;		/* to the worker: queued, or stop */
	pthread_cond_t done_cv;		/* from the worker: committed moved */
	struct rec_item *head, **tailp;
	size_t queued;
	unsigned long long added;	/* items ever queued */
	unsigned long long committed;	/* of those, handled */
	int stop;
	struct report_recorder_stats stats;
	unsigned long long logged_dropped, logged_errors;
	struct timespec last_log;
	int logged;
	char last_err[512];
	long long retention;		/* seconds; 0: no expiry */
	struct timespec last_expire;	/* monotonic; 0: never */
	/* the worker's batch */
	const struct report_policy **bp;
	const struct report_row **br;
};

static const char *
nz(const char *s)
{
	return s != NULL ? s : "";
}

/* Copies s to *at (then advanced) unless at is NULL (measuring); the
 * room it takes. */
static size_t
cp(const char **dst, const char *s, char **at)
{
	size_t n = strlen(nz(s)) + 1;

	if (at != NULL) {
		memcpy(*at, nz(s), n);
		*dst = *at;
		*at += n;
	}
	return n;
}

static size_t
item_strings(struct rec_item *it, char **at)
{
	struct report_policy *p = &it->p;
	struct report_row *r = &it->r;
	size_t n = 0, i;

	if (it->dest)
		return cp(&it->addr, it->addr, at) + cp(&it->text, it->text, at);
	n += cp(&p->domain, p->domain, at);
	n += cp(&p->discovery_method, p->discovery_method, at);
	n += cp(&p->p, p->p, at);
	n += cp(&p->sp, p->sp, at);
	n += cp(&p->np, p->np, at);
	n += cp(&p->fo, p->fo, at);
	n += cp(&p->adkim, p->adkim, at);
	n += cp(&p->aspf, p->aspf, at);
	n += cp(&p->testing, p->testing, at);
	n += cp(&p->rua, p->rua, at);
	n += cp(&r->source_ip, r->source_ip, at);
	n += cp(&r->disposition, r->disposition, at);
	for (i = 0; i < r->nreasons; i++) {
		n += cp(&r->reasons[i].type, r->reasons[i].type, at);
		n += cp(&r->reasons[i].comment, r->reasons[i].comment, at);
	}
	n += cp(&r->header_from, r->header_from, at);
	n += cp(&r->envelope_from, r->envelope_from, at);
	n += cp(&r->envelope_to, r->envelope_to, at);
	for (i = 0; i < r->ndkim; i++) {
		n += cp(&r->dkim[i].domain, r->dkim[i].domain, at);
		n += cp(&r->dkim[i].selector, r->dkim[i].selector, at);
		n += cp(&r->dkim[i].result, r->dkim[i].result, at);
		n += cp(&r->dkim[i].human_result, r->dkim[i].human_result, at);
	}
	n += cp(&r->spf_domain, r->spf_domain, at);
	n += cp(&r->spf_scope, r->spf_scope, at);
	n += cp(&r->spf_result, r->spf_result, at);
	return n;
}

/* A deep copy of tmpl (whose strings are the caller's) in one block. */
static struct rec_item *
item_new(const struct rec_item *tmpl)
{
	struct rec_item *it, probe = *tmpl;
	char *at;

	if ((it = malloc(sizeof(*it) + item_strings(&probe, NULL))) == NULL)
		return NULL;
	*it = *tmpl;
	it->next = NULL;
	at = it->strings;
	item_strings(it, &at);
	return it;
}

static void
now_mono(struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
}

/* Under mu: whether drops or errors wait to be logged. */
static int
recorder_unlogged(const struct report_recorder *rec)
{
	return rec->stats.dropped != rec->logged_dropped ||
	    rec->stats.errors != rec->logged_errors;
}

/*
 * Under mu: if something waits to be logged and the last warning is a
 * minute old (or force), the line to log, and 1.
 */
static int
recorder_due(struct report_recorder *rec, int force, char *line,
    size_t linelen)
{
	struct timespec now;

	if (!recorder_unlogged(rec))
		return 0;
	now_mono(&now);
	if (!force && rec->logged &&
	    now.tv_sec - rec->last_log.tv_sec < RECORDER_LOG_EVERY)
		return 0;
	if (rec->stats.errors != rec->logged_errors)
		snprintf(line, linelen, "report recorder: not recorded: "
		    "dropped=%llu errors=%llu last_error=%s",
		    rec->stats.dropped - rec->logged_dropped,
		    rec->stats.errors - rec->logged_errors,
		    log_safe(rec->last_err));
	else
		snprintf(line, linelen, "report recorder: not recorded: "
		    "dropped=%llu (queue full)",
		    rec->stats.dropped - rec->logged_dropped);
	rec->logged_dropped = rec->stats.dropped;
	rec->logged_errors = rec->stats.errors;
	rec->last_log = now;
	rec->logged = 1;
	return 1;
}

/* Under mu, for the worker: logs what is due, without holding mu. */
static void
recorder_log(struct report_recorder *rec, int force)
{
	char line[1024];

	if (recorder_due(rec, force, line, sizeof(line))) {
		pthread_mutex_unlock(&rec->mu);
		log_warning("%s", line);
		pthread_mutex_lock(&rec->mu);
	}
}

/* The worker, without mu: commits list and frees it. */
static void
recorder_commit(struct report_recorder *rec, struct rec_item *list,
    unsigned long long *ok_r, unsigned long long *failed_r, char *err,
    size_t errlen)
{
	struct rec_item *it, *next;
	char e[512];
	size_t n = 0;

	*ok_r = *failed_r = 0;
	for (it = list; it != NULL; it = it->next) {
		if (it->dest) {
			if (report_store_dest_result(rec->st, it->addr, it->ok,
			    it->text, it->max_failures, it->suppress_for, e,
			    sizeof(e)) == -1) {
				(*failed_r)++;
				snprintf(err, errlen, "%s", e);
			}
			continue;
		}
		/* Never more than the queue holds: the batch fits. */
		rec->bp[n] = &it->p;
		rec->br[n] = &it->r;
		n++;
	}
	if (n > 0) {
		if (report_store_add_many(rec->st, rec->bp, rec->br, n, e,
		    sizeof(e)) == -1) {
			*failed_r += n;
			snprintf(err, errlen, "%s", e);
		} else
			*ok_r += n;
	}
	for (it = list; it != NULL; it = next) {
		next = it->next;
		free(it);
	}
}

/* Under rec->mu. */
static int
recorder_expire_due(struct report_recorder *rec)
{
	struct timespec now;

	if (rec->retention <= 0)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return rec->last_expire.tv_sec == 0 ||
	    now.tv_sec - rec->last_expire.tv_sec >= RECORDER_EXPIRE_EVERY;
}

/* Retention, without rec->mu: the store is the worker's alone. */
static void
recorder_expire(struct report_recorder *rec)
{
	long long n, retention;
	char err[512];

	pthread_mutex_lock(&rec->mu);
	retention = rec->retention;
	clock_gettime(CLOCK_MONOTONIC, &rec->last_expire);
	pthread_mutex_unlock(&rec->mu);
	n = report_store_expire(rec->st, (long long)time(NULL) - retention, err,
	    sizeof(err));
	if (n > 0)
		log_info("report store: %lld evaluation(s) older than %llds "
		    "deleted", n, retention);
	else if (n < 0)
		log_warning("report store: retention: %s", err);
}

void
report_recorder_set_retention(struct report_recorder *rec, long long seconds)
{
	pthread_mutex_lock(&rec->mu);
	rec->retention = seconds > 0 ? seconds : 0;
	pthread_cond_signal(&rec->work_cv);
	pthread_mutex_unlock(&rec->mu);
}

static void *
recorder_worker(void *arg)
{
	struct report_recorder *rec = arg;
	unsigned long long seq, ok, failed;
	struct rec_item *list;
	struct timespec until;
	char err[512];

	pthread_mutex_lock(&rec->mu);
	for (;;) {
		while (rec->head == NULL && !rec->stop) {
			recorder_log(rec, 0);
			if (rec->head != NULL || rec->stop)
				break;
			if (recorder_expire_due(rec)) {
				pthread_mutex_unlock(&rec->mu);
				recorder_expire(rec);
				pthread_mutex_lock(&rec->mu);
				continue;
			}
			if (recorder_unlogged(rec)) {
				/* so a burst's tail is told within a minute */
				until = rec->last_log;
				until.tv_sec += RECORDER_LOG_EVERY;
				pthread_cond_timedwait(&rec->work_cv, &rec->mu,
				    &until);
			} else if (rec->retention > 0) {
				until = rec->last_expire;
				until.tv_sec += RECORDER_EXPIRE_EVERY;
				pthread_cond_timedwait(&rec->work_cv, &rec->mu,
				    &until);
			} else
				pthread_cond_wait(&rec->work_cv, &rec->mu);
		}
		if (rec->head == NULL)
			break;
		list = rec->head;
		rec->head = NULL;
		rec->tailp = &rec->head;
		rec->queued = 0;
		seq = rec->added;
		pthread_mutex_unlock(&rec->mu);

		err[0] = '\0';
		recorder_commit(rec, list, &ok, &failed, err, sizeof(err));

		pthread_mutex_lock(&rec->mu);
		rec->stats.recorded += ok;
		rec->stats.errors += failed;
		if (failed > 0)
			snprintf(rec->last_err, sizeof(rec->last_err), "%s",
			    err);
		rec->committed = seq;
		pthread_cond_broadcast(&rec->done_cv);
		recorder_log(rec, 0);
	}
	recorder_log(rec, 1);
	pthread_mutex_unlock(&rec->mu);
	return NULL;
}

struct report_recorder *
report_recorder_new(const char *path, char *err, size_t errlen)
{
	struct report_recorder *rec;
	pthread_condattr_t ca;
	sigset_t all, old;
	int e;

	if ((rec = calloc(1, sizeof(*rec))) == NULL ||
	    (rec->bp = calloc(REPORT_RECORDER_QUEUE, sizeof(*rec->bp))) ==
	    NULL ||
	    (rec->br = calloc(REPORT_RECORDER_QUEUE, sizeof(*rec->br))) ==
	    NULL) {
		snprintf(err, errlen, "report recorder: out of memory");
		goto fail;
	}
	if ((rec->st = report_store_open(path, 0, err, errlen)) == NULL)
		goto fail;
	rec->tailp = &rec->head;
	pthread_mutex_init(&rec->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&rec->work_cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&rec->done_cv, NULL);
	/* Signals stay with the loop's thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e = pthread_create(&rec->th, NULL, recorder_worker, rec);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		snprintf(err, errlen, "report recorder: cannot start a thread: "
		    "%s", strerror(e));
		pthread_cond_destroy(&rec->done_cv);
		pthread_cond_destroy(&rec->work_cv);
		pthread_mutex_destroy(&rec->mu);
		goto fail;
	}
	return rec;
fail:
	if (rec != NULL) {
		report_store_close(rec->st);
		free(rec->bp);
		free(rec->br);
		free(rec);
	}
	return NULL;
}

void
report_recorder_free(struct report_recorder *rec)
{
	if (rec == NULL)
		return;
	pthread_mutex_lock(&rec->mu);
	rec->stop = 1;
	pthread_cond_signal(&rec->work_cv);
	pthread_mutex_unlock(&rec->mu);
	/* It drains the queue before it returns. */
	pthread_join(rec->th, NULL);
	report_store_close(rec->st);
	pthread_cond_destroy(&rec->done_cv);
	pthread_cond_destroy(&rec->work_cv);
	pthread_mutex_destroy(&rec->mu);
	free(rec->bp);
	free(rec->br);
	free(rec);
}

/* Queues it (a copy of tmpl) or counts it dropped. */
static int
recorder_queue(struct report_recorder *rec, const struct rec_item *tmpl)
{
	struct rec_item *it;

	it = item_new(tmpl);
	pthread_mutex_lock(&rec->mu);
	if (it == NULL || rec->stop || rec->queued >= REPORT_RECORDER_QUEUE) {
		rec->stats.dropped++;
		pthread_mutex_unlock(&rec->mu);
		free(it);
		return -1;
	}
	*rec->tailp = it;
	rec->tailp = &it->next;
	rec->queued++;
	rec->added++;
	pthread_cond_signal(&rec->work_cv);
	pthread_mutex_unlock(&rec->mu);
	return 0;
}

static int
recorder_invalid(struct report_recorder *rec, const char *why)
{
	pthread_mutex_lock(&rec->mu);
	rec->stats.errors++;
	snprintf(rec->last_err, sizeof(rec->last_err), "%s", why);
	pthread_mutex_unlock(&rec->mu);
	return -1;
}

int
report_recorder_add(struct report_recorder *rec,
    const struct report_policy *p, const struct report_row *r)
{
	struct rec_item tmpl;

	/* Refused here, or the store would refuse the whole batch. */
	if (p == NULL || r == NULL || p->domain == NULL || *p->domain == '\0')
		return recorder_invalid(rec, "evaluation without a policy "
		    "domain");
	if (r->ndkim > REPORT_MAX_DKIM || r->nreasons > REPORT_MAX_REASONS)
		return recorder_invalid(rec, "evaluation with too many DKIM "
		    "results or reasons");
	memset(&tmpl, 0, sizeof(tmpl));
	tmpl.p = *p;
	tmpl.r = *r;
	tmpl.r.count = 1;
	/* evaluated now, not when the batch commits */
	if (tmpl.r.time == 0)
		tmpl.r.time = (long long)time(NULL);
	return recorder_queue(rec, &tmpl);
}

int
report_recorder_dest_result(struct report_recorder *rec, const char *addr,
    int ok, const char *text, int max_failures, long long suppress_for)
{
	struct rec_item tmpl;

	if (addr == NULL || *addr == '\0')
		return recorder_invalid(rec, "delivery result without an "
		    "address");
	memset(&tmpl, 0, sizeof(tmpl));
	tmpl.dest = 1;
	tmpl.addr = addr;
	tmpl.text = text;
	tmpl.ok = ok;
	tmpl.max_failures = max_failures;
	tmpl.suppress_for = suppress_for;
	return recorder_queue(rec, &tmpl);
}

void
report_recorder_sync(struct report_recorder *rec)
{
	unsigned long long seq;

	pthread_mutex_lock(&rec->mu);
	seq = rec->added;
	while (rec->committed < seq)
		pthread_cond_wait(&rec->done_cv, &rec->mu);
	pthread_mutex_unlock(&rec->mu);
}

void
report_recorder_stats(struct report_recorder *rec,
    struct report_recorder_stats *s)
{
	pthread_mutex_lock(&rec->mu);
	*s = rec->stats;
	pthread_mutex_unlock(&rec->mu);
}
