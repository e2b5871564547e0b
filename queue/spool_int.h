/*
 * queue/spool_int: what spool.c and spool_hold.c share (commit.c too, for
 * the renames). Private to those files; everyone else uses queue/spool.h.
 */
#ifndef QUEUE_SPOOL_INT_H
#define QUEUE_SPOOL_INT_H

#include <stddef.h>
#include <sys/types.h>

#include "lib/id.h"
#include "queue/envelope.h"

#define SPOOL_PATH_MAX 4400

struct spool {
	char *dir;
	char tmp[4096];
	char queue[4096];
	char hold[4096];
	char pickup[4096];
	char corrupt[4096];
	struct commit_worker *committer;	/* spool_msg_commit_async */
	long space_checked;		/* spool_space_low's cache: when, */
	unsigned long long space_free;	/* bytes free for us, */
	int space_no_inodes;		/* no inode left */
};

/* dir/id.ext into out; -1 (ENAMETOOLONG) if it does not fit. */
int spool_path(char *out, size_t n, const char *dir, const char *id,
    const char *ext);
/* rename() that fails with EEXIST instead of replacing (also commit.c). */
int spool_rename_new(const char *from, const char *to);
/* 1 if dir/id.ext exists. */
int spool_exists(const char *dir, const char *id, const char *ext);

/* The area-generic forms of the public calls (area: sp->queue, sp->hold). */
int spool_load_in(struct spool *sp, const char *area, const char *id,
    struct envelope *env_r, const char **err_r);
int spool_open_in(struct spool *sp, const char *area, const char *id,
    off_t *size_r);
int spool_remove_in(struct spool *sp, const char *area, const char *id);
/* area/ID.env and area/ID.msg to corrupt/, with why in the log. */
void spool_corrupt_in(struct spool *sp, const char *area, const char *id,
    const char *why);
/* area/name to corrupt/. */
void spool_corrupt_file(struct spool *sp, const char *area, const char *name);

/* A growable list of ids (spool_ids_add copies; free(ids->v) at the end). */
struct spool_ids {
	char (*v)[ID_LEN + 1];
	size_t n, cap;
};
int spool_ids_add(struct spool_ids *ids, const char *id);
void spool_ids_sort(struct spool_ids *ids);

/* The spool lock (flock on the spool directory): an fd, or -1. */
int spool_lock(struct spool *sp);
void spool_unlock(int fd);

/*
 * Applies the cross-area rules of spool.h to one id; under the lock.
 * Returns where the envelope is (sp->queue or sp->hold), NULL when the id
 * has no envelope (its content, if any, went to corrupt/).
 */
const char *spool_repair(struct spool *sp, const char *id);

#endif
