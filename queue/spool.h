/*
 * queue/spool: durable storage of accepted messages.
 *
 * Layout under the spool directory. Queue states are directories, moves
 * between them are renames:
 *   tmp/ID.msg, tmp/ID.env   being written; never acknowledged
 *   queue/ID.msg             content: the message as received (CRLF lines,
 *                            unstuffed), our Received header first
 *   queue/ID.env             envelope (queue/envelope.h), rewritten
 *                            atomically (.ID.env.tmp + rename) on change
 *   hold/ID.msg, hold/ID.env a held (quarantined) message, like Postfix's
 *                            hold queue: same files, never delivered; it
 *                            leaves by spool_release (back to queue/) or
 *                            spool_remove_held
 *   pickup/ID                empty: "ID was just released into queue/,
 *                            or flushed: attempt it now", a hint for the
 *                            running daemon (spool_notify)
 *   pickup/FLUSH-ALL         empty: "attempt every queued message now"
 *   corrupt/                 anything found unreadable; kept, never deleted
 *                            nor replaced (a second NAME becomes NAME.1)
 *
 * Commit (RFC 5321 6.1 "250 means we are responsible"): content fsynced,
 * envelope written and fsynced in tmp/, content renamed into queue/ (or
 * hold/ for spool_msg_commit_held), then the envelope, then that directory
 * fsynced. A message exists once its envelope exists in queue/ or hold/:
 * the envelope's rename is the commit point, and the area holding the
 * envelope is where the message lives.
 *
 * Moves between queue/ and hold/ (spool_release, spool_hold), for a
 * message whose envelope is in FROM:
 *   1. FROM/ID.msg renamed to TO/ID.msg; TO/ and FROM/ fsynced
 *   2. FROM/ID.env renamed to TO/ID.env (never replacing one); TO/ and
 *      FROM/ fsynced.
 * A crash leaves one of: both in FROM (not moved), content in TO and
 * envelope in FROM (not moved: repaired below), both in TO (moved). Were a
 * file system to reorder the two renames, envelope in TO and content in
 * FROM: moved, repaired by the same rule.
 *
 * Recovery at start (spool_recover): tmp/ is emptied (nothing there was
 * acknowledged), pickup/ is emptied (recovery reports all of queue/
 * anyway), stray .tmp files of an interrupted envelope rewrite are removed
 * (the previous envelope is still in place), and a file of queue/ or hold/
 * whose name is not ID.env or ID.msg goes to corrupt/. Then, for each id
 * (these rules also run for one id before every move or removal of a held
 * message):
 *   - content in one area, envelope in the other: the content is moved to
 *     the envelope's area (the message lives where its envelope is);
 *   - content in both areas, envelope in one: the copy next to the
 *     envelope is kept; the other is removed if it is the same file (a
 *     hard link left by a rename fallback), else moved to corrupt/;
 *   - envelope in both areas: no move makes this state (an envelope moves
 *     in one rename, never replacing), so two messages claim one id: the
 *     hold/ pair goes to corrupt/ (kept, never delivered), queue/'s is
 *     handled as usual;
 *   - content without an envelope in either area (a crash between the two
 *     renames at commit, or between the two unlinks at removal) goes to
 *     corrupt/;
 *   - (recovery only) an envelope that does not parse, or without content,
 *     goes to corrupt/ with whatever it has; every good envelope in queue/
 *     is reported to the caller; held ones never are (they must not be
 *     delivered).
 * Nothing is ever lost: a message is in queue/, hold/ or corrupt/.
 *
 * Moves, removal of held messages and recovery take an exclusive flock(2)
 * on the spool directory, so the command-line tool and a starting daemon
 * never interleave them. The running daemon's own queue/ work (commit,
 * update, removal) does not take it: the command line's changes to queued
 * messages also lock the message's content (spool_attempt_lock below).
 *
 * Removal: envelope first, then content, then the directory is fsynced.
 *
 * Queue ids from outside (the command line) are checked with id_valid()
 * by every call that takes one: an invalid id fails with EINVAL and never
 * reaches a path.
 *
 * All calls block on the disk (open, write, fsync, rename): callers on the
 * event loop accept that cost per message, except for the commit, whose
 * fsyncs spool_msg_commit_async moves to a worker thread shared by
 * concurrent commits (group commit, queue/commit.h).
 */
#ifndef QUEUE_SPOOL_H
#define QUEUE_SPOOL_H

#include <stddef.h>
#include <sys/types.h>

#include "lib/id.h"
#include "queue/commit.h"
#include "queue/envelope.h"

struct spool;
struct spool_msg;

/* Creates the directories as needed. NULL with err filled on failure. */
struct spool *spool_open(const char *dir, char *err, size_t errlen);
void spool_close(struct spool *sp);
const char *spool_dir(const struct spool *sp);

/* A new message: picks an id (id_r) and creates tmp/ID.msg. */
struct spool_msg *spool_msg_new(struct spool *sp, char id_r[ID_LEN + 1]);
/* -1 on a write error; a full disk (ENOSPC, EDQUOT) is kept instead: the
 * writes that follow do nothing and the commit fails with that errno (the
 * client is answered at end of data, with 452 4.3.1 for a full disk). */
int spool_msg_write(struct spool_msg *m, const void *p, size_t n);
size_t spool_msg_size(const struct spool_msg *m);
/*
 * Make the message durable (see above). env->id and env->size are set
 * here. Returns 0 once committed; -1 (errno set) when nothing was
 * committed. Either way m is freed.
 */
int spool_msg_commit(struct spool_msg *m, struct envelope *env);
/* The same, with the commit point in hold/: the message is held from the
 * start and never seen by the scheduler. env->hold_time is set to now if 0
 * (env->hold_reason is the caller's). */
int spool_msg_commit_held(struct spool_msg *m, struct envelope *env);
/* Forget an uncommitted message: its temporary files are removed. */
void spool_msg_abort(struct spool_msg *m);
/*
 * The commit off the event loop (group commit, queue/commit.h): the
 * envelope is serialized now (env->id, env->size and, when held,
 * env->hold_time are set now; env stays the caller's), the disk work runs
 * on the spool's commit worker, and cb(rc, errno, id, arg) runs later
 * from the loop, exactly once: rc 0 once the message is durable in queue/
 * (hold/ when held), -1 when nothing was committed. Returns 0 when cb will
 * run; -1 (errno, nothing left of m, cb never called) when the commit
 * could not start. Without a worker (spool_set_committer) the commit is
 * synchronous and cb runs before the call returns. m is freed either way.
 */
int spool_msg_commit_async(struct spool_msg *m, struct envelope *env,
    int held, spool_commit_cb cb, void *arg);
/* The worker for spool_msg_commit_async (NULL: synchronous); the caller
 * keeps it and frees it (completing its commits) before spool_close. */
void spool_set_committer(struct spool *sp, struct commit_worker *w);
/*
 * 1 when the spool's file system has less than min_free bytes available
 * (or no inode left), else 0 (also when it cannot tell, or min_free is 0).
 * Asks statvfs at most once a second: cheap enough for every MAIL.
 */
int spool_space_low(struct spool *sp, unsigned long long min_free);

/* -1 with err_r naming the problem and errno: EINVAL (invalid id), ENOENT
 * (no such message), EBADMSG (the envelope does not parse or names another
 * id), else the system's error. */
int spool_load(struct spool *sp, const char *id, struct envelope *env_r,
    const char **err_r);
int spool_update(struct spool *sp, const struct envelope *env);
/* A delivered (or bounced) message leaves queue/. With a commit worker
 * the directory fsync that makes the removal durable runs there, shared
 * with other removals (a crash before it may bring the message back: a
 * duplicate, never a loss); without one, here. */
int spool_remove(struct spool *sp, const char *id);
/* read-only fd on the content, size in *size_r; -1 on error. */
int spool_open_content(struct spool *sp, const char *id, off_t *size_r);
/* Move queue/ID.* to corrupt/ (with a reason in the log). */
int spool_quarantine_corrupt(struct spool *sp, const char *id, const char *why);

/*
 * Clean up after a crash (see above), then call cb for every committed
 * message in queue/. Held messages are checked but never reported. cb runs
 * under the spool lock: it must not call spool_release, spool_hold,
 * spool_remove_held or spool_recover. Returns the number of messages
 * reported, or -1 if the spool cannot be read.
 */
int spool_recover(struct spool *sp, void (*cb)(const char *id, void *arg),
    void *arg);

/*
 * The hold area (queue/spool_hold.c). Each returns 0, or -1 with errno:
 * EINVAL for an invalid id, ENOENT when the message is not in the area the
 * call works on (release, remove_held: hold/; hold: queue/), ENODATA when
 * its content is missing (recovery sets it aside), else the system's
 * error. Each first applies the repair rules above to that id.
 */
/* hold/ -> queue/. The running daemon learns of it through spool_notify. */
int spool_release(struct spool *sp, const char *id);
/* queue/ -> hold/, unchanged; EBUSY while an attempt runs (below). */
int spool_hold(struct spool *sp, const char *id);
/* The same, the envelope first given reason and the time as its hold
 * reason and hold time (Q and X records). */
int spool_hold_as(struct spool *sp, const char *id, const char *reason);
int spool_remove_held(struct spool *sp, const char *id);
/* as spool_load, in hold/ */
int spool_load_held(struct spool *sp, const char *id, struct envelope *env_r,
    const char **err_r);
/* read-only fd on the held content, size in *size_r; -1 on error. */
int spool_open_held_content(struct spool *sp, const char *id, off_t *size_r);

/*
 * Committed messages of one area (hold/ when held, else queue/), in id
 * order (arrival order): cb(id) for each until it returns non-zero.
 * Returns the number of ids given to cb, or -1 if the area cannot be read.
 */
int spool_list(struct spool *sp, int held, int (*cb)(const char *id, void *arg),
    void *arg);

/*
 * Pickup: how a running daemon hears of a message that appeared in queue/
 * behind its back. spool_notify creates pickup/ID (no fsync: a lost hint
 * costs only the wait until the next start, whose recovery reports every
 * queued message). spool_pickup removes every entry of pickup/, calling
 * cb(id) first for each whose queue/ID.env exists; returns how many it
 * reported, or -1 if pickup/ cannot be read. Cheap when pickup/ is empty.
 */
int spool_notify(struct spool *sp, const char *id);
int spool_pickup(struct spool *sp, void (*cb)(const char *id, void *arg),
    void *arg);
/*
 * pickup/FLUSH-ALL (a name no queue id can have): "attempt everything
 * now". spool_pickup reports it last, as cb(NULL), and counts it.
 * spool_notify_pending: 1 while pickup/ID (or FLUSH-ALL for a NULL id) is
 * still there, i.e. no running daemon has taken it yet; 0 once taken;
 * -1 on error.
 */
#define SPOOL_PICKUP_ALL "FLUSH-ALL"
int spool_notify_all(struct spool *sp);
int spool_notify_pending(struct spool *sp, const char *id);

/*
 * Administration of queue/ while the daemon runs (queue/spool_hold.c).
 * A delivery attempt holds a shared flock(2) on the message's content
 * (spool_attempt_lock on the fd from spool_open_content, taken before the
 * envelope is read and kept until the outcome is written). spool_hold,
 * spool_hold_as, spool_remove_queued and spool_reschedule take the spool
 * lock, apply the repair rules, then lock the content exclusively without
 * waiting: they fail with EBUSY while an attempt runs, and no attempt
 * starts while they work. The scheduler, finding a message it knows gone
 * from queue/, forgets it. Errors as for the hold area above.
 */
/* 0, or -1 with EBUSY while the command line works on the message. */
int spool_attempt_lock(int content_fd);
/* queue/ID removed (envelope, content, directory fsync). */
int spool_remove_queued(struct spool *sp, const char *id);
/* The envelope's next attempt (N) set to when, atomically rewritten. */
int spool_reschedule(struct spool *sp, const char *id, long long when);

#endif
