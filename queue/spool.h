/*
 * queue/spool: durable storage of accepted messages.
 *
 * Layout under the spool directory:
 *   tmp/ID.msg, tmp/ID.env   being written; never acknowledged
 *   queue/ID.msg             content: the message as received (CRLF lines,
 *                            unstuffed), our Received header first
 *   queue/ID.env             envelope (queue/envelope.h), rewritten
 *                            atomically (.ID.env.tmp + rename) on change
 *   corrupt/                 anything found unreadable; kept, never deleted
 *
 * Commit (RFC 5321 6.1 "250 means we are responsible"): content fsynced,
 * envelope written and fsynced in tmp/, content renamed into queue/, then
 * the envelope, then queue/ fsynced. A message exists once queue/ID.env
 * exists: the envelope's rename is the commit point.
 *
 * Recovery at start (spool_recover): every file in tmp/ is removed (it
 * was never acknowledged); in queue/, an envelope that does not parse goes
 * to corrupt/ with its content; a content file without an envelope (a
 * crash between the two renames at commit, or between the two unlinks at
 * removal) goes to corrupt/; stray .tmp files of an interrupted envelope
 * rewrite are removed (the previous envelope is still in place); every
 * good envelope is reported to the caller.
 *
 * Removal: envelope first, then content, then the directory is fsynced.
 *
 * All calls block on the disk (open, write, fsync, rename): callers on the
 * event loop accept that cost per message.
 */
#ifndef QUEUE_SPOOL_H
#define QUEUE_SPOOL_H

#include <stddef.h>
#include <sys/types.h>

#include "lib/id.h"
#include "queue/envelope.h"

struct spool;
struct spool_msg;

/* Creates the directories as needed. NULL with err filled on failure. */
struct spool *spool_open(const char *dir, char *err, size_t errlen);
void spool_close(struct spool *sp);
const char *spool_dir(const struct spool *sp);

/* A new message: picks an id (id_r) and creates tmp/ID.msg. */
struct spool_msg *spool_msg_new(struct spool *sp, char id_r[ID_LEN + 1]);
int spool_msg_write(struct spool_msg *m, const void *p, size_t n);
size_t spool_msg_size(const struct spool_msg *m);
/*
 * Make the message durable (see above). env->id and env->size are set
 * here. Returns 0 once committed; -1 (errno set) when nothing was
 * committed. Either way m is freed.
 */
int spool_msg_commit(struct spool_msg *m, struct envelope *env);
/* Forget an uncommitted message: its temporary files are removed. */
void spool_msg_abort(struct spool_msg *m);

int spool_load(struct spool *sp, const char *id, struct envelope *env_r,
    const char **err_r);
int spool_update(struct spool *sp, const struct envelope *env);
int spool_remove(struct spool *sp, const char *id);
/* read-only fd on the content, size in *size_r; -1 on error. */
int spool_open_content(struct spool *sp, const char *id, off_t *size_r);
/* Move queue/ID.* to corrupt/ (with a reason in the log). */
int spool_quarantine_corrupt(struct spool *sp, const char *id, const char *why);

/*
 * Clean up after a crash, then call cb for every committed message.
 * Returns the number of messages reported, or -1 if the spool cannot be
 * read.
 */
int spool_recover(struct spool *sp, void (*cb)(const char *id, void *arg),
    void *arg);

#endif
