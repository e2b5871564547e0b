/*
 * Tests for queue/commit.c (group commit) through spool_msg_commit_async:
 * commits lined up while the worker is paused share one batch and one
 * directory fsync per destination, every callback runs exactly once and
 * from the loop, a failing step fails its own message (or, for the
 * directory fsync, the batch in that directory) and leaves nothing behind,
 * freeing the worker completes the commits in flight, and without a
 * worker the commit is synchronous.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <event2/event.h>

#include "lib/id.h"
#include "queue/commit.h"
#include "queue/envelope.h"
#include "queue/spool.h"

#define MAXMSG 300

struct fixture;

struct rec {
	struct fixture *f;
	int calls;
	int rc, err;
	char id[ID_LEN + 1];	/* from spool_msg_new */
	char cb_id[ID_LEN + 1];	/* from the callback */
	int order;
};

struct fixture {
	char base[64];
	char dir[128];
	struct spool *sp;
	struct event_base *evb;
	struct commit_worker *w;
	struct rec rec[MAXMSG];
	int ncalls;
	const char *fail_step;	/* the fault hook's target */
	const char *fail_id;	/* NULL: every message */
	int fail_errno;
};

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	if (f == NULL)
		return -1;
	snprintf(f->base, sizeof(f->base), "/tmp/mxgate-test-commit-XXXXXX");
	if (mkdtemp(f->base) == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/spool", f->base);
	if ((f->sp = spool_open(f->dir, err, sizeof(err))) == NULL ||
	    (f->evb = event_base_new()) == NULL ||
	    (f->w = commit_worker_new(f->evb)) == NULL)
		return -1;
	spool_set_committer(f->sp, f->w);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	commit_worker_free(f->w);
	spool_close(f->sp);
	event_base_free(f->evb);
	nftw(f->base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void
done_cb(int rc, int err, const char *id, void *arg)
{
	struct rec *r = arg;
	struct fixture *f = r->f;

	r->calls++;
	r->rc = rc;
	r->err = err;
	snprintf(r->cb_id, sizeof(r->cb_id), "%s", id);
	f->ncalls++;
}

static int
fault(const char *step, const char *id, void *arg)
{
	struct fixture *f = arg;

	if (f->fail_step && strcmp(step, f->fail_step) == 0 &&
	    (f->fail_id == NULL || strcmp(id, f->fail_id) == 0))
		return f->fail_errno;
	return 0;
}

/* Message i: spool_msg_new, some content, spool_msg_commit_async. */
static void
submit(struct fixture *f, int i, int held)
{
	struct spool_msg *m;
	struct envelope e;
	char content[128];
	struct rec *r = &f->rec[i];

	assert_true(i < MAXMSG);
	r->f = f;
	r->order = i;
	assert_non_null(m = spool_msg_new(f->sp, r->id));
	snprintf(content, sizeof(content), "Subject: %d\r\n\r\nbody %d\r\n", i, i);
	assert_int_equal(spool_msg_write(m, content, strlen(content)), 0);
	memset(&e, 0, sizeof(e));
	e.arrival = time(NULL);
	assert_int_equal(envelope_set(&e.sender, "a@b.test"), 0);
	assert_int_equal(envelope_add_rcpt(&e, "u@example.test"), 0);
	assert_int_equal(spool_msg_commit_async(m, &e, held, done_cb, r), 0);
	assert_string_equal(e.id, r->id);	/* set at once */
	envelope_free(&e);
}

/* Run the loop until n callbacks in all (bounded). */
static void
wait_calls(struct fixture *f, int n)
{
	time_t t0 = time(NULL);

	while (f->ncalls < n) {
		struct timeval tv = { 0, 50000 };

		assert_true(time(NULL) - t0 < 20);
		event_base_loopexit(f->evb, &tv);
		event_base_dispatch(f->evb);
	}
}

static int
exists(const struct fixture *f, const char *area, const char *id,
    const char *ext)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s/%s.%s", f->dir, area, id, ext);
	return access(path, F_OK) == 0;
}

static int
count_dir(const struct fixture *f, const char *area)
{
	char path[512];
	int n = 0;
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", f->dir, area);
	assert_non_null(d = opendir(path));
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void
assert_committed(struct fixture *f, int i, const char *area)
{
	struct envelope e;
	const char *err;

	assert_int_equal(f->rec[i].calls, 1);
	assert_int_equal(f->rec[i].rc, 0);
	assert_string_equal(f->rec[i].cb_id, f->rec[i].id);
	assert_true(exists(f, area, f->rec[i].id, "msg"));
	assert_true(exists(f, area, f->rec[i].id, "env"));
	if (strcmp(area, "queue") == 0) {
		assert_int_equal(spool_load(f->sp, f->rec[i].id, &e, &err), 0);
		assert_string_equal(e.sender, "a@b.test");
		assert_true(e.size > 0);
		envelope_free(&e);
	} else {
		assert_int_equal(spool_load_held(f->sp, f->rec[i].id, &e, &err), 0);
		assert_true(e.hold_time > 0);
		envelope_free(&e);
	}
}

/* Ten commits lined up: one batch, 20 file fsyncs, 1 directory fsync. */
static void
test_batch_shares_dir_fsync(void **state)
{
	struct fixture *f = *state;
	struct commit_stats st;
	int i;

	commit_worker_pause(f->w, 1);
	for (i = 0; i < 10; i++)
		submit(f, i, 0);
	assert_int_equal(commit_worker_pending(f->w), 10);
	/* nothing happens while paused: no callback, nothing in queue/ */
	{
		struct timeval tv = { 0, 100000 };

		event_base_loopexit(f->evb, &tv);
		event_base_dispatch(f->evb);
	}
	assert_int_equal(f->ncalls, 0);
	assert_int_equal(count_dir(f, "queue"), 0);
	commit_worker_pause(f->w, 0);
	wait_calls(f, 10);
	commit_worker_stats(f->w, &st);
	assert_int_equal(st.batches, 1);
	assert_int_equal(st.commits, 10);
	assert_int_equal(st.max_batch, 10);
	assert_int_equal(st.file_fsyncs, 20);
	assert_int_equal(st.dir_fsyncs, 1);
	assert_int_equal(st.failed, 0);
	for (i = 0; i < 10; i++)
		assert_committed(f, i, "queue");
	assert_int_equal(count_dir(f, "tmp"), 0);
	assert_int_equal(count_dir(f, "queue"), 20);
	assert_int_equal(commit_worker_pending(f->w), 0);
}

/* Removals after delivery: unlinked at once by the caller, and made
 * durable by one directory fsync on the worker for all of them (the loop
 * never waits for it). */
static void
test_removals_share_dir_fsync(void **state)
{
	struct fixture *f = *state;
	struct commit_stats st;
	char id[ID_LEN + 1];
	unsigned long base;
	int i, tries;

	for (i = 0; i < 10; i++)
		submit(f, i, 0);
	wait_calls(f, 10);
	commit_worker_stats(f->w, &st);
	base = st.dir_fsyncs;		/* one per batch of commits */
	commit_worker_pause(f->w, 1);
	for (i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "%s", f->rec[i].cb_id);
		assert_int_equal(spool_remove(f->sp, id), 0);
	}
	assert_int_equal(count_dir(f, "queue"), 0);	/* gone at once */
	usleep(100000);
	commit_worker_stats(f->w, &st);
	assert_int_equal(st.dir_fsyncs, base);		/* paused: not yet */
	commit_worker_pause(f->w, 0);
	for (tries = 0; tries < 200; tries++) {
		commit_worker_stats(f->w, &st);
		if (st.dir_fsyncs > base)
			break;
		usleep(10000);
	}
	assert_int_equal(st.dir_fsyncs, base + 1);	/* one for all ten */
	assert_int_equal(spool_remove(f->sp, "nonsense"), -1);
}

/* Queued and held messages in one batch: one fsync of each directory. */
static void
test_batch_queue_and_hold(void **state)
{
	struct fixture *f = *state;
	struct commit_stats st;
	int i;

	commit_worker_pause(f->w, 1);
	for (i = 0; i < 5; i++)
		submit(f, i, i % 2);
	commit_worker_pause(f->w, 0);
	wait_calls(f, 5);
	commit_worker_stats(f->w, &st);
	assert_int_equal(st.batches, 1);
	assert_int_equal(st.dir_fsyncs, 2);
	for (i = 0; i < 5; i++)
		assert_committed(f, i, i % 2 ? "hold" : "queue");
	assert_int_equal(count_dir(f, "queue"), 6);
	assert_int_equal(count_dir(f, "hold"), 4);
}

/* A steady stream: every callback exactly once, in submission order
 * within a batch; batches form by themselves. */
static void
test_stream_every_callback_once(void **state)
{
	struct fixture *f = *state;
	struct commit_stats st;
	int i;

	for (i = 0; i < 200; i++) {
		submit(f, i, 0);
		if (i % 7 == 0)
			event_base_loop(f->evb, EVLOOP_NONBLOCK);
	}
	wait_calls(f, 200);
	/* nothing more comes */
	{
		struct timeval tv = { 0, 100000 };

		event_base_loopexit(f->evb, &tv);
		event_base_dispatch(f->evb);
	}
	assert_int_equal(f->ncalls, 200);
	for (i = 0; i < 200; i++)
		assert_committed(f, i, "queue");
	commit_worker_stats(f->w, &st);
	assert_int_equal(st.commits, 200);
	assert_true(st.batches >= 1 && st.batches <= 200);
	assert_int_equal(st.file_fsyncs, 400);
	assert_int_equal(st.dir_fsyncs, st.batches);
	printf("# 200 commits in %lu batches (largest %lu)\n", st.batches,
	    st.max_batch);
}

/* A failing file step fails that message only; nothing of it is left. */
static void
test_fault_one_message(void **state)
{
	struct fixture *f = *state;
	static const char *steps[] = { "envelope write", "content fsync",
	    "envelope fsync", "rename" };
	size_t k;
	int i, base = 0;

	commit_worker_set_fault(f->w, fault, f);
	for (k = 0; k < sizeof(steps) / sizeof(steps[0]); k++, base += 3) {
		commit_worker_pause(f->w, 1);
		for (i = base; i < base + 3; i++)
			submit(f, i, 0);
		f->fail_step = steps[k];
		f->fail_id = f->rec[base + 1].id;
		f->fail_errno = k == 0 ? ENOSPC : EIO;
		commit_worker_pause(f->w, 0);
		wait_calls(f, base + 3);
		assert_committed(f, base, "queue");
		assert_committed(f, base + 2, "queue");
		assert_int_equal(f->rec[base + 1].calls, 1);
		assert_int_equal(f->rec[base + 1].rc, -1);
		assert_int_equal(f->rec[base + 1].err, f->fail_errno);
		assert_false(exists(f, "queue", f->rec[base + 1].id, "msg"));
		assert_false(exists(f, "queue", f->rec[base + 1].id, "env"));
		assert_int_equal(count_dir(f, "tmp"), 0);
	}
}

/* The directory fsync fails: the whole batch in that directory is not
 * committed (taken back out of queue/); the next batch is fine again. */
static void
test_fault_dir_fsync(void **state)
{
	struct fixture *f = *state;
	int i;

	commit_worker_set_fault(f->w, fault, f);
	f->fail_step = "directory fsync";
	f->fail_errno = EIO;
	commit_worker_pause(f->w, 1);
	for (i = 0; i < 4; i++)
		submit(f, i, 0);
	commit_worker_pause(f->w, 0);
	wait_calls(f, 4);
	for (i = 0; i < 4; i++) {
		assert_int_equal(f->rec[i].calls, 1);
		assert_int_equal(f->rec[i].rc, -1);
		assert_int_equal(f->rec[i].err, EIO);
	}
	assert_int_equal(count_dir(f, "queue"), 0);
	assert_int_equal(count_dir(f, "tmp"), 0);
	f->fail_step = NULL;
	submit(f, 4, 0);
	wait_calls(f, 5);
	assert_committed(f, 4, "queue");
}

/* A real error from the file system: the envelope cannot be created
 * (a directory in its way), with errno in the callback. */
static void
test_real_error(void **state)
{
	struct fixture *f = *state;
	struct spool_msg *m;
	struct envelope e;
	char path[512];

	f->rec[0].f = f;
	assert_non_null(m = spool_msg_new(f->sp, f->rec[0].id));
	snprintf(path, sizeof(path), "%s/tmp/%s.env", f->dir, f->rec[0].id);
	assert_int_equal(mkdir(path, 0700), 0);
	memset(&e, 0, sizeof(e));
	assert_int_equal(envelope_set(&e.sender, ""), 0);
	assert_int_equal(envelope_add_rcpt(&e, "u@example.test"), 0);
	assert_int_equal(spool_msg_commit_async(m, &e, 0, done_cb, &f->rec[0]), 0);
	envelope_free(&e);
	wait_calls(f, 1);
	assert_int_equal(f->rec[0].rc, -1);
	assert_int_equal(f->rec[0].err, EEXIST);
	assert_int_equal(count_dir(f, "queue"), 0);
	rmdir(path);
	assert_int_equal(count_dir(f, "tmp"), 0);
}

/* Freeing the worker completes what is in flight, callbacks included. */
static void
test_shutdown_completes(void **state)
{
	struct fixture *f = *state;
	int i;

	commit_worker_pause(f->w, 1);
	for (i = 0; i < 5; i++)
		submit(f, i, 0);
	commit_worker_free(f->w);
	f->w = NULL;
	spool_set_committer(f->sp, NULL);
	assert_int_equal(f->ncalls, 5);
	for (i = 0; i < 5; i++)
		assert_committed(f, i, "queue");
}

/* Without a worker: synchronous, the callback before the return. */
static void
test_no_worker_synchronous(void **state)
{
	struct fixture *f = *state;

	spool_set_committer(f->sp, NULL);
	submit(f, 0, 0);
	assert_int_equal(f->ncalls, 1);
	assert_committed(f, 0, "queue");
	submit(f, 1, 1);
	assert_int_equal(f->ncalls, 2);
	assert_committed(f, 1, "hold");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_batch_shares_dir_fsync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_queue_and_hold, setup, teardown),
		cmocka_unit_test_setup_teardown(test_removals_share_dir_fsync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_every_callback_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_one_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_dir_fsync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_real_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_completes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_worker_synchronous, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
