/*
 * queue/commit: group commit of spooled messages, off the event loop.
 *
 * The durable part of a commit (queue/spool.h: content fsynced, envelope
 * written and fsynced in tmp/, both renamed into queue/ or hold/, that
 * directory fsynced) blocks on the disk, so it never runs on the event
 * loop: spool_msg_commit_async hands it to a commit worker, one thread
 * that takes every commit waiting as one batch. Commits that arrive while
 * a batch is being synced wait for the next one, so the number of
 * messages per batch grows with the load (classic group commit).
 *
 * What a batch shares, and what it cannot:
 *   - every file is fsynced, its own content and its own envelope: nothing
 *     else makes its data durable. The fsyncs are issued after every
 *     file of the batch was handed to writeback (sync_file_range), so the
 *     file system commits their metadata in one journal transaction and
 *     the later fsyncs find little left to do;
 *   - the renames (content, then envelope: the commit point) of every
 *     message come after all those fsyncs;
 *   - the destination directory (queue/, and hold/ when a message of the
 *     batch is held) is fsynced once, after the batch's last rename, and
 *     before any callback of the batch runs: "250" still means on disk.
 *   - tmp/ is never fsynced (neither by the synchronous commit): what it
 *     loses in a crash is a name that recovery removes anyway. The
 *     renamed entry is made durable by the destination's fsync.
 * A failing directory fsync fails every message of the batch in that
 * directory (their files are taken back out of it); other failures fail
 * only their own message.
 *
 * Completion: the worker puts a finished batch on a done list and writes
 * a byte to a pipe the loop watches; the loop calls each callback, in
 * submission order, exactly once: cb(0, 0, id, arg) when committed,
 * cb(-1, errno, id, arg) when not (nothing of it is left in the spool).
 * Failures are logged (spool=... id=... commit failed at STEP: ...) before
 * the callback. A caller that goes away meanwhile must not free the
 * message's fate with it: the commit runs to its end (the message is
 * durable once committed); the caller detaches by making arg point to
 * something that knows it is gone (see gateway/inbound.c).
 */
#ifndef QUEUE_COMMIT_H
#define QUEUE_COMMIT_H

#include <stddef.h>

#include "lib/buf.h"
#include "lib/id.h"

struct event_base;
struct spool;
struct commit_worker;

typedef void (*spool_commit_cb)(int rc, int err, const char *id, void *arg);

/* A worker whose completions arrive on base's loop; NULL (errno) when the
 * thread or the pipe cannot be made. */
struct commit_worker *commit_worker_new(struct event_base *base);
/*
 * Completes every commit submitted so far (the worker finishes them all,
 * then its callbacks run here, on the calling thread, which must be the
 * loop's), then stops the thread. NULL is allowed.
 */
void commit_worker_free(struct commit_worker *w);

/*
 * Removals (a delivered message's files unlinked on the loop) need a
 * directory fsync only so that a crash cannot bring them back (a
 * duplicate, never a loss): the worker does it, once for all removals
 * asked for since its last one, between batches and before it stops.
 * Never blocks on the disk (a second directory while one is pending is
 * synced at once: not the case in the daemon, which removes from queue/).
 */
void commit_worker_sync_dir(struct commit_worker *w, const char *dir);

/* Submitted and not yet called back. */
size_t commit_worker_pending(const struct commit_worker *w);

struct commit_stats {
	unsigned long batches;		/* batches synced */
	unsigned long commits;		/* messages in them */
	unsigned long failed;		/* of which not committed */
	unsigned long file_fsyncs;	/* content and envelope fsyncs */
	unsigned long dir_fsyncs;	/* directory fsyncs */
	unsigned long max_batch;	/* largest batch */
};
void commit_worker_stats(struct commit_worker *w, struct commit_stats *st_r);

/*
 * For tests. A fault hook runs on the worker thread before each step of
 * each message ("envelope write", "content fsync", "envelope fsync",
 * "rename", "directory fsync"); a non-zero return is an errno that step
 * then fails with. Pausing makes the worker leave new commits waiting
 * (those of a batch already taken still finish), so that a test can line
 * several up as one batch.
 */
void commit_worker_set_fault(struct commit_worker *w,
    int (*fault)(const char *step, const char *id, void *arg), void *arg);
void commit_worker_pause(struct commit_worker *w, int paused);

/*
 * Between queue/spool.c and this file only: one message to commit. The
 * spool prepares it on the loop (paths, serialized envelope, the open
 * content file) and takes the message's memory; commit_batch_run does the
 * disk work for a list of them (also for the synchronous commit, as a
 * batch of one) and fills rc/err/step; commit_job_free closes what is
 * still open.
 */
struct commit_job {
	struct spool *sp;
	char id[ID_LEN + 1];
	int held;
	int fd;				/* content, open; -1 once closed */
	int env_fd;			/* tmp/ID.env, -1 when not open */
	struct buf env;			/* the serialized envelope */
	char tmsg[4400], tenv[4400];	/* in tmp/ */
	char amsg[4400], aenv[4400];	/* in queue/ or hold/ */
	const char *area;		/* that directory */
	int renamed;			/* both files are in area */
	int rc, err;
	const char *step;		/* where it failed */
	spool_commit_cb cb;
	void *arg;
	struct commit_job *next;
};
void commit_batch_run(struct commit_job *list, struct commit_stats *st,
    int (*fault)(const char *step, const char *id, void *arg), void *farg);
void commit_job_free(struct commit_job *j);
/* Queue one prepared job (spool.c); the callback runs later, on the loop. */
void commit_worker_submit(struct commit_worker *w, struct commit_job *j);

#endif
