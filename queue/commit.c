/*
 * queue/commit: the batch of disk work behind "250", and the worker
 * thread that runs batches (see commit.h for what a batch shares).
 *
 * The worker never touches libevent, the log or a caller's data: a job
 * carries its paths, its envelope text and its file descriptor. Results
 * travel back like gateway/authdb_check.c's: a done list under the mutex
 * and a byte in a non-blocking pipe the loop watches.
 */
#include "queue/commit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/fsutil.h"
#include "lib/log.h"
#include "queue/spool.h"
#include "queue/spool_int.h"

struct commit_worker {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct commit_job *q_head, *q_tail;	/* waiting for a batch */
	struct commit_job *done_head, *done_tail;
	int stop, paused;
	pthread_t th;
	int started;
	int pipefd[2];
	struct event *ev;
	size_t pending;				/* loop thread only */
	struct commit_stats st;			/* under mu */
	int (*fault)(const char *, const char *, void *);
	void *fault_arg;
	char *sync_dir;				/* under mu: a directory whose
						 * removals await an fsync */
};

static int
job_fault(struct commit_job *j, const char *step,
    int (*fault)(const char *, const char *, void *), void *farg)
{
	int e;

	j->step = step;
	if (fault != NULL && (e = fault(step, j->id, farg)) != 0) {
		errno = e;
		return -1;
	}
	return 0;
}

static void
job_fail(struct commit_job *j)
{
	j->rc = -1;
	j->err = errno ? errno : EIO;
}

/* Back out a failed job: its files leave tmp/ (and area, if renamed). */
static void
job_undo(struct commit_job *j)
{
	if (j->env_fd != -1) {
		close(j->env_fd);
		j->env_fd = -1;
	}
	if (j->fd != -1) {
		close(j->fd);
		j->fd = -1;
	}
	if (j->renamed) {
		unlink(j->aenv);
		unlink(j->amsg);
		j->renamed = 0;
	}
	unlink(j->tenv);
	unlink(j->tmsg);
}

static void
job_sync_file(struct commit_job *j, int *fdp, const char *step,
    struct commit_stats *st,
    int (*fault)(const char *, const char *, void *), void *farg)
{
	int fd = *fdp;

	if (j->rc != 0)
		return;
	*fdp = -1;
	st->file_fsyncs++;
	if (job_fault(j, step, fault, farg) == -1 || fsync(fd) == -1) {
		job_fail(j);
		close(fd);
		return;
	}
	if (close(fd) == -1)
		job_fail(j);
}

/*
 * Step 3 in parallel. A device flush per fsync is what bounds a disk's
 * commit rate; fsyncs issued at the same time from several threads are
 * folded by the file system (one journal commit) and the block layer
 * (one cache flush), so a batch costs about one flush, not two per
 * message. Each job is synced by exactly one thread.
 */
#define SYNC_THREADS 8

struct sync_slice {
	struct commit_job **jobs;
	size_t n, first, step;
	struct commit_stats st;
	int (*fault)(const char *, const char *, void *);
	void *farg;
};

static void *
sync_slice_run(void *arg)
{
	struct sync_slice *sl = arg;
	size_t i;

	for (i = sl->first; i < sl->n; i += sl->step) {
		job_sync_file(sl->jobs[i], &sl->jobs[i]->fd, "content fsync",
		    &sl->st, sl->fault, sl->farg);
		job_sync_file(sl->jobs[i], &sl->jobs[i]->env_fd,
		    "envelope fsync", &sl->st, sl->fault, sl->farg);
	}
	return NULL;
}

static void
commit_sync_all(struct commit_job *list, unsigned long n,
    struct commit_stats *st,
    int (*fault)(const char *, const char *, void *), void *farg)
{
	struct commit_job **jobs = NULL, *j;
	struct sync_slice sl[SYNC_THREADS];
	pthread_t th[SYNC_THREADS];
	int started[SYNC_THREADS];
	size_t i, k, nth;

	nth = n < SYNC_THREADS ? n : SYNC_THREADS;
	if (nth > 1)
		jobs = calloc(n, sizeof(*jobs));
	if (jobs == NULL) {
		/* one message, or no memory: one thread does it all */
		for (j = list; j; j = j->next) {
			job_sync_file(j, &j->fd, "content fsync", st, fault, farg);
			job_sync_file(j, &j->env_fd, "envelope fsync", st,
			    fault, farg);
		}
		return;
	}
	for (i = 0, j = list; j && i < n; j = j->next)
		jobs[i++] = j;
	for (k = 0; k < nth; k++) {
		memset(&sl[k], 0, sizeof(sl[k]));
		sl[k].jobs = jobs;
		sl[k].n = i;
		sl[k].first = k;
		sl[k].step = nth;
		sl[k].fault = fault;
		sl[k].farg = farg;
		/* slice 0 runs here; others on threads when they start */
		started[k] = k > 0 &&
		    pthread_create(&th[k], NULL, sync_slice_run, &sl[k]) == 0;
	}
	sync_slice_run(&sl[0]);
	for (k = 1; k < nth; k++) {
		if (started[k])
			pthread_join(th[k], NULL);
		else
			sync_slice_run(&sl[k]);	/* no thread: do it here */
	}
	for (k = 0; k < nth; k++)
		st->file_fsyncs += sl[k].st.file_fsyncs;
	free(jobs);
}

void
commit_batch_run(struct commit_job *list, struct commit_stats *st,
    int (*fault)(const char *, const char *, void *), void *farg)
{
	struct commit_job *j, *k;
	unsigned long n = 0;
	int e;

	/* 1. every envelope written into tmp/ */
	for (j = list; j; j = j->next) {
		n++;
		j->rc = j->err = 0;
		if (job_fault(j, "envelope write", fault, farg) == -1 ||
		    (j->env_fd = open(j->tenv, O_WRONLY | O_CREAT | O_EXCL |
		    O_CLOEXEC, 0600)) == -1 ||
		    fs_write_all(j->env_fd, j->env.data, j->env.len) == -1)
			job_fail(j);
	}
	/* 2. all of it handed to writeback at once, so that the fsyncs
	 * below find one journal transaction to commit, not one each */
	for (j = list; j; j = j->next) {
		if (j->rc != 0)
			continue;
		sync_file_range(j->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
		sync_file_range(j->env_fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	}
	/* 3. each file fsynced: its own data is durable only so */
	commit_sync_all(list, n, st, fault, farg);
	/* 4. the renames; never replacing a queued message */
	for (j = list; j; j = j->next) {
		if (j->rc != 0)
			continue;
		if (job_fault(j, "rename", fault, farg) == -1 ||
		    spool_rename_new(j->tmsg, j->amsg) == -1) {
			job_fail(j);
			continue;
		}
		if (spool_rename_new(j->tenv, j->aenv) == -1) {
			job_fail(j);
			rename(j->amsg, j->tmsg);
			continue;
		}
		j->renamed = 1;
	}
	/* 5. each destination directory fsynced once, after its last
	 * rename: the commit point of the whole batch is durable */
	for (j = list; j; j = j->next) {
		if (j->rc != 0 || j->step == NULL ||
		    strcmp(j->step, "directory fsync") == 0)
			continue;	/* failed, or its directory is done */
		st->dir_fsyncs++;
		e = 0;
		if (job_fault(j, "directory fsync", fault, farg) == -1 ||
		    fs_sync_dir(j->area) == -1)
			e = errno ? errno : EIO;
		for (k = j; k; k = k->next) {
			if (k->rc != 0 || strcmp(k->area, j->area) != 0)
				continue;
			k->step = "directory fsync";
			if (e != 0) {
				errno = e;
				job_fail(k);
			}
		}
	}
	/* 6. failures leave nothing behind; successes are done */
	for (j = list; j; j = j->next) {
		if (j->rc != 0) {
			job_undo(j);
			st->failed++;
		} else
			j->step = NULL;
	}
	st->batches++;
	st->commits += n;
	if (n > st->max_batch)
		st->max_batch = n;
}

void
commit_job_free(struct commit_job *j)
{
	if (j == NULL)
		return;
	if (j->env_fd != -1)
		close(j->env_fd);
	if (j->fd != -1)
		close(j->fd);
	buf_free(&j->env);
	free(j);
}

/* Under mu, on the worker: the directory fsync that makes the removals
 * asked for so far durable (one for all of them); mu is released
 * meanwhile. */
static void
commit_sync_removals(struct commit_worker *w)
{
	char *dir = w->sync_dir;

	w->sync_dir = NULL;
	pthread_mutex_unlock(&w->mu);
	if (fs_sync_dir(dir) == -1)
		log_error("spool directory %s: fsync after removals failed: %s "
		    "(removed messages may come back after a crash)", dir,
		    strerror(errno));
	free(dir);
	pthread_mutex_lock(&w->mu);
	w->st.dir_fsyncs++;
}

void
commit_worker_sync_dir(struct commit_worker *w, const char *dir)
{
	char *copy;

	pthread_mutex_lock(&w->mu);
	if (w->sync_dir == NULL || strcmp(w->sync_dir, dir) != 0) {
		if (w->sync_dir != NULL) {
			/* another directory: sync the first one here */
			copy = w->sync_dir;
			w->sync_dir = NULL;
			pthread_mutex_unlock(&w->mu);
			fs_sync_dir(copy);
			free(copy);
			pthread_mutex_lock(&w->mu);
		}
		if ((copy = strdup(dir)) == NULL) {
			pthread_mutex_unlock(&w->mu);
			fs_sync_dir(dir);	/* no memory: now */
			return;
		}
		w->sync_dir = copy;
	}
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void *
commit_thread(void *arg)
{
	struct commit_worker *w = arg;
	struct commit_job *batch, *last;
	struct commit_stats st;
	int (*fault)(const char *, const char *, void *);
	void *farg;
	ssize_t r;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (w->q_head == NULL || (w->paused && !w->stop)) {
			if (w->sync_dir != NULL && !w->paused) {
				commit_sync_removals(w);
				continue;
			}
			if (w->stop && w->q_head == NULL)
				goto out;
			pthread_cond_wait(&w->cv, &w->mu);
		}
		batch = w->q_head;
		last = w->q_tail;
		w->q_head = w->q_tail = NULL;
		memset(&st, 0, sizeof(st));
		fault = w->fault;
		farg = w->fault_arg;
		pthread_mutex_unlock(&w->mu);

		commit_batch_run(batch, &st, fault, farg);

		pthread_mutex_lock(&w->mu);
		w->st.batches += st.batches;
		w->st.commits += st.commits;
		w->st.failed += st.failed;
		w->st.file_fsyncs += st.file_fsyncs;
		w->st.dir_fsyncs += st.dir_fsyncs;
		if (st.max_batch > w->st.max_batch)
			w->st.max_batch = st.max_batch;
		if (w->done_tail)
			w->done_tail->next = batch;
		else
			w->done_head = batch;
		w->done_tail = last;
		/* non-blocking: a full pipe wakes the loop already */
		r = write(w->pipefd[1], "", 1);
		(void)r;
	}
out:
	if (w->sync_dir != NULL)
		commit_sync_removals(w);
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* On the loop: every finished job's callback, in order, once. */
static void
commit_deliver(struct commit_worker *w)
{
	struct commit_job *j, *next;

	pthread_mutex_lock(&w->mu);
	j = w->done_head;
	w->done_head = w->done_tail = NULL;
	pthread_mutex_unlock(&w->mu);
	for (; j; j = next) {
		next = j->next;
		w->pending--;
		if (j->rc != 0)
			log_error("spool=%s id=%s commit failed at %s: %s",
			    spool_dir(j->sp), j->id, j->step ? j->step : "?",
			    strerror(j->err));
		j->cb(j->rc, j->err, j->id, j->arg);
		commit_job_free(j);
	}
}

static void
commit_done_cb(evutil_socket_t fd, short what, void *arg)
{
	char drain[64];

	while (read(fd, drain, sizeof(drain)) > 0)
		;
	commit_deliver(arg);
}

struct commit_worker *
commit_worker_new(struct event_base *base)
{
	struct commit_worker *w;
	sigset_t all, old;
	int e;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->pipefd[0] = w->pipefd[1] = -1;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	if (pipe2(w->pipefd, O_NONBLOCK | O_CLOEXEC) == -1 ||
	    (w->ev = event_new(base, w->pipefd[0], EV_READ | EV_PERSIST,
	    commit_done_cb, w)) == NULL || event_add(w->ev, NULL) == -1)
		goto fail;
	/* signals stay with the loop's thread */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e = pthread_create(&w->th, NULL, commit_thread, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		errno = e;
		goto fail;
	}
	w->started = 1;
	return w;
fail:
	e = errno;
	commit_worker_free(w);
	errno = e;
	return NULL;
}

void
commit_worker_free(struct commit_worker *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	if (w->started)
		pthread_join(w->th, NULL);
	/* the thread finished every job: call them back */
	commit_deliver(w);
	if (w->ev)
		event_free(w->ev);
	if (w->pipefd[0] != -1)
		close(w->pipefd[0]);
	if (w->pipefd[1] != -1)
		close(w->pipefd[1]);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

void
commit_worker_submit(struct commit_worker *w, struct commit_job *j)
{
	j->next = NULL;
	w->pending++;
	pthread_mutex_lock(&w->mu);
	if (w->q_tail)
		w->q_tail->next = j;
	else
		w->q_head = j;
	w->q_tail = j;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

size_t
commit_worker_pending(const struct commit_worker *w)
{
	return w->pending;
}

void
commit_worker_stats(struct commit_worker *w, struct commit_stats *st_r)
{
	pthread_mutex_lock(&w->mu);
	*st_r = w->st;
	pthread_mutex_unlock(&w->mu);
}

void
commit_worker_set_fault(struct commit_worker *w,
    int (*fault)(const char *, const char *, void *), void *arg)
{
	pthread_mutex_lock(&w->mu);
	w->fault = fault;
	w->fault_arg = arg;
	pthread_mutex_unlock(&w->mu);
}

void
commit_worker_pause(struct commit_worker *w, int paused)
{
	pthread_mutex_lock(&w->mu);
	w->paused = paused;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}
