/*
 * The asynchronous password checker: crypt(3) in worker threads, results
 * back on the event loop.
 *
 * Workers take checks from a bounded queue (mutex + condition variable),
 * hash, put the check on a done list and write one byte to a pipe. The
 * loop watches the pipe's read end; its callback drains the pipe, takes
 * the whole done list and calls each callback (cancelled checks are only
 * freed). Workers never touch libevent, the users file or a session: a
 * check carries copies of the hash and the password.
 */
#include "gateway/authdb.h"
#include "gateway/authdb_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/log.h"

#define AUTHDB_PASS_MAX 255

struct authdb_check {
	struct authdb_checker *ck;
	char hash[CRYPT_OUTPUT_SIZE];
	char pass[AUTHDB_PASS_MAX + 1];
	int unknown;		/* user not in the file: the result is 0 */
	int result;
	int cancelled;
	authdb_check_cb cb;
	void *arg;
	struct authdb_check *next;
};

struct authdb_checker {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct authdb_check *q_head, *q_tail;	/* waiting */
	size_t qlen, max_queue;
	struct authdb_check *done_head, *done_tail;
	int stop;
	pthread_t th[4];
	int nth;
	int pipefd[2];
	struct event *ev;
};

static void
check_free(struct authdb_check *c)
{
	explicit_bzero(c, sizeof(*c));
	free(c);
}

static void *
checker_worker(void *arg)
{
	struct authdb_checker *ck = arg;
	struct crypt_data *cd;
	struct authdb_check *c;
	ssize_t w;

	if ((cd = malloc(sizeof(*cd))) == NULL)
		return NULL;
	pthread_mutex_lock(&ck->mu);
	for (;;) {
		while (!ck->stop && ck->q_head == NULL)
			pthread_cond_wait(&ck->cv, &ck->mu);
		if (ck->stop)
			break;
		c = ck->q_head;
		ck->q_head = c->next;
		if (ck->q_head == NULL)
			ck->q_tail = NULL;
		ck->qlen--;
		pthread_mutex_unlock(&ck->mu);

		/* The same work for unknown users: timing tells nothing. */
		c->result = authdb_crypt_match(c->pass, c->hash, cd) && !c->unknown;
		explicit_bzero(c->pass, sizeof(c->pass));

		pthread_mutex_lock(&ck->mu);
		c->next = NULL;
		if (ck->done_tail)
			ck->done_tail->next = c;
		else
			ck->done_head = c;
		ck->done_tail = c;
		/* Non-blocking: a full pipe already wakes the loop. */
		w = write(ck->pipefd[1], "", 1);
		(void)w;
	}
	pthread_mutex_unlock(&ck->mu);
	free(cd);
	return NULL;
}

static void
checker_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct authdb_checker *ck = arg;
	struct authdb_check *c, *next;
	char drain[64];

	while (read(fd, drain, sizeof(drain)) > 0)
		;
	pthread_mutex_lock(&ck->mu);
	c = ck->done_head;
	ck->done_head = ck->done_tail = NULL;
	pthread_mutex_unlock(&ck->mu);
	for (; c; c = next) {
		next = c->next;
		/* cancelled is written only on this thread: no lock needed */
		if (!c->cancelled)
			c->cb(c->result, c->arg);
		check_free(c);
	}
}

struct authdb_checker *
authdb_checker_new(struct event_base *base, int nthreads, size_t max_queue)
{
	struct authdb_checker *ck;
	sigset_t all, old;
	int i;

	if (nthreads < 1)
		nthreads = 1;
	if (nthreads > 4)
		nthreads = 4;
	if ((ck = calloc(1, sizeof(*ck))) == NULL)
		return NULL;
	ck->max_queue = max_queue ? max_queue : 1;
	ck->pipefd[0] = ck->pipefd[1] = -1;
	pthread_mutex_init(&ck->mu, NULL);
	pthread_cond_init(&ck->cv, NULL);
	if (pipe2(ck->pipefd, O_NONBLOCK | O_CLOEXEC) == -1 ||
	    (ck->ev = event_new(base, ck->pipefd[0], EV_READ | EV_PERSIST,
	    checker_done_cb, ck)) == NULL || event_add(ck->ev, NULL) == -1)
		goto fail;
	/* Signals stay with the loop's thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < nthreads; i++) {
		if (pthread_create(&ck->th[i], NULL, checker_worker, ck) != 0)
			break;
		ck->nth++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ck->nth == 0)
		goto fail;
	return ck;
fail:
	log_error("password checker: cannot start: %s", strerror(errno));
	authdb_checker_free(ck);
	return NULL;
}

void
authdb_checker_free(struct authdb_checker *ck)
{
	struct authdb_check *c, *next;
	int i;

	if (ck == NULL)
		return;
	pthread_mutex_lock(&ck->mu);
	ck->stop = 1;
	pthread_cond_broadcast(&ck->cv);
	pthread_mutex_unlock(&ck->mu);
	for (i = 0; i < ck->nth; i++)
		pthread_join(ck->th[i], NULL);
	for (c = ck->q_head; c; c = next) {
		next = c->next;
		check_free(c);
	}
	for (c = ck->done_head; c; c = next) {
		next = c->next;
		check_free(c);
	}
	if (ck->ev)
		event_free(ck->ev);
	if (ck->pipefd[0] != -1)
		close(ck->pipefd[0]);
	if (ck->pipefd[1] != -1)
		close(ck->pipefd[1]);
	pthread_cond_destroy(&ck->cv);
	pthread_mutex_destroy(&ck->mu);
	free(ck);
}

struct authdb_check *
authdb_check_start(struct authdb_checker *ck, const struct authdb *db,
    const char *user, const char *password, authdb_check_cb cb, void *arg)
{
	const struct authdb_user *u;
	struct authdb_check *c;
	size_t plen = strlen(password);

	if (plen > AUTHDB_PASS_MAX || (c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	u = authdb_find(db, user);
	c->ck = ck;
	c->unknown = u == NULL;
	snprintf(c->hash, sizeof(c->hash), "%s", u ? u->hash : db->dummy);
	memcpy(c->pass, password, plen + 1);
	c->cb = cb;
	c->arg = arg;
	pthread_mutex_lock(&ck->mu);
	if (ck->qlen >= ck->max_queue) {
		pthread_mutex_unlock(&ck->mu);
		check_free(c);
		return NULL;
	}
	if (ck->q_tail)
		ck->q_tail->next = c;
	else
		ck->q_head = c;
	ck->q_tail = c;
	ck->qlen++;
	pthread_cond_signal(&ck->cv);
	pthread_mutex_unlock(&ck->mu);
	return c;
}

void
authdb_check_cancel(struct authdb_check *c)
{
	struct authdb_checker *ck = c->ck;
	struct authdb_check **pp, *prev = NULL;

	pthread_mutex_lock(&ck->mu);
	for (pp = &ck->q_head; *pp; prev = *pp, pp = &(*pp)->next)
		if (*pp == c) {
			/* still waiting: take it out now */
			*pp = c->next;
			if (ck->q_tail == c)
				ck->q_tail = prev;
			ck->qlen--;
			pthread_mutex_unlock(&ck->mu);
			check_free(c);
			return;
		}
	/* hashing or done: freed by checker_done_cb */
	c->cancelled = 1;
	pthread_mutex_unlock(&ck->mu);
}
