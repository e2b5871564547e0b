/*
 * queue/spool_hold: the hold area, moves between queue/ and hold/, the
 * per-message crash repair they share with recovery, listing, and the
 * pickup hints for the running daemon. The rules are in queue/spool.h.
 */
#include "queue/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "lib/fsutil.h"
#include "lib/log.h"
#include "queue/spool_int.h"

int
spool_lock(struct spool *sp)
{
	int fd, e;

	if ((fd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	while (flock(fd, LOCK_EX) == -1) {
		if (errno == EINTR)
			continue;
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

void
spool_unlock(int fd)
{
	if (fd >= 0)
		close(fd);	/* releases the flock */
}

static int spool_set_hold(struct spool *sp, const char *id,
    const char *reason);

static const char *
spool_area_name(const struct spool *sp, const char *area)
{
	return area == sp->hold ? "hold" : "queue";
}

const char *
spool_repair(struct spool *sp, const char *id)
{
	char am[SPOOL_PATH_MAX], om[SPOOL_PATH_MAX], name[ID_LEN + 8];
	const char *area, *other;
	struct stat a, o;
	int qe = spool_exists(sp->queue, id, "env");
	int he = spool_exists(sp->hold, id, "env");

	if (qe && he) {
		/* No move makes this (an envelope moves in one rename that
		 * never replaces): two messages claim one id. The held one is
		 * kept aside, never delivered. */
		spool_corrupt_in(sp, sp->hold, id,
		    "envelope in both queue/ and hold/; the held one set aside");
		fs_sync_dir(sp->hold);
		he = 0;
	}
	if (!qe && !he) {
		if (spool_exists(sp->queue, id, "msg"))
			spool_corrupt_in(sp, sp->queue, id, "content without envelope");
		if (spool_exists(sp->hold, id, "msg"))
			spool_corrupt_in(sp, sp->hold, id, "content without envelope");
		return NULL;
	}
	area = qe ? sp->queue : sp->hold;
	other = qe ? sp->hold : sp->queue;
	if (spool_path(am, sizeof(am), area, id, "msg") == -1 ||
	    spool_path(om, sizeof(om), other, id, "msg") == -1 ||
	    lstat(om, &o) == -1)
		return area;	/* the usual case: nothing in the other area */
	if (lstat(am, &a) == -1) {
		/* an interrupted move: the message lives where its envelope is */
		if (rename(om, am) == -1)
			log_error("spool=%s id=%s cannot move content to %s/: %s",
			    sp->dir, id, spool_area_name(sp, area), strerror(errno));
		else
			log_warning("spool=%s id=%s content moved back to %s/, next "
			    "to its envelope", sp->dir, id, spool_area_name(sp, area));
	} else if (a.st_dev == o.st_dev && a.st_ino == o.st_ino) {
		unlink(om);	/* the same file twice: a rename fallback's link */
	} else {
		log_warning("spool=%s id=%s second content in %s/ moved to corrupt/",
		    sp->dir, id, spool_area_name(sp, other));
		snprintf(name, sizeof(name), "%s.msg", id);
		spool_corrupt_file(sp, other, name);
		fs_sync_dir(sp->corrupt);
	}
	fs_sync_dir(area);
	fs_sync_dir(other);
	return area;
}

/* Atomic rename that never replaces to (an envelope must never exist twice,
 * not even for an instant, as link+unlink would make it). */
static int
spool_rename_excl(const char *from, const char *to)
{
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* no RENAME_NOREPLACE: checked under the spool lock, then renamed */
	if (access(to, F_OK) == 0) {
		errno = EEXIST;
		return -1;
	}
	return rename(from, to);
}

static int
spool_sync2(const char *a, const char *b)
{
	return fs_sync_dir(a) == -1 || fs_sync_dir(b) == -1 ? -1 : 0;
}

int
spool_attempt_lock(int content_fd)
{
	while (flock(content_fd, LOCK_SH | LOCK_NB) == -1) {
		if (errno == EINTR)
			continue;
		if (errno == EWOULDBLOCK)
			errno = EBUSY;
		return -1;
	}
	return 0;
}

/*
 * The administrator's side of spool_attempt_lock: queue/ID.msg locked
 * exclusively without waiting. Under the spool lock, after spool_repair
 * said the message is in queue/. An fd to close when done, or -1 with
 * errno: EBUSY while an attempt runs, ENODATA without content.
 */
static int
spool_idle_lock(struct spool *sp, const char *id)
{
	char path[SPOOL_PATH_MAX];
	int fd, e;

	if (spool_path(path, sizeof(path), sp->queue, id, "msg") == -1)
		return -1;
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			errno = ENODATA;	/* recovery sends it to corrupt/ */
		return -1;
	}
	while (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EINTR)
			continue;
		e = errno == EWOULDBLOCK ? EBUSY : errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Moves a message between the areas: content, then the envelope (the
 * commit point), each rename made durable before the next step. Out of
 * queue/ only while no attempt runs, with the envelope first given
 * reason (when not NULL) as its hold reason. */
static int
spool_move(struct spool *sp, const char *id, int to_hold, const char *reason)
{
	const char *from = to_hold ? sp->queue : sp->hold;
	const char *to = to_hold ? sp->hold : sp->queue;
	char fm[SPOOL_PATH_MAX], fe[SPOOL_PATH_MAX], tm[SPOOL_PATH_MAX],
	    te[SPOOL_PATH_MAX];
	int lk, idle = -1, e;

	if (!id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	if (spool_path(fm, sizeof(fm), from, id, "msg") == -1 ||
	    spool_path(fe, sizeof(fe), from, id, "env") == -1 ||
	    spool_path(tm, sizeof(tm), to, id, "msg") == -1 ||
	    spool_path(te, sizeof(te), to, id, "env") == -1 ||
	    (lk = spool_lock(sp)) == -1)
		return -1;
	if (spool_repair(sp, id) != from) {
		errno = ENOENT;
		goto fail;
	}
	if (access(fm, F_OK) == -1) {
		errno = ENODATA;	/* recovery sends it to corrupt/ */
		goto fail;
	}
	if (to_hold && ((idle = spool_idle_lock(sp, id)) == -1 ||
	    (reason != NULL && spool_set_hold(sp, id, reason) == -1)))
		goto fail;
	if (rename(fm, tm) == -1 || spool_sync2(to, from) == -1)
		goto fail;
	if (spool_rename_excl(fe, te) == -1) {
		e = errno;
		if (rename(tm, fm) == 0)
			spool_sync2(to, from);
		errno = e;
		goto fail;
	}
	/* moved; if this fails we cannot say it is durable */
	if (spool_sync2(to, from) == -1)
		goto fail;
	spool_unlock(idle);
	spool_unlock(lk);
	log_info("spool=%s id=%s %s", sp->dir, id, to_hold ? "held" : "released");
	return 0;
fail:
	e = errno;
	spool_unlock(idle);
	spool_unlock(lk);
	errno = e;
	return -1;
}

/* The queued envelope rewritten with a hold reason and time (history
 * until the move, the reason once held). */
static int
spool_set_hold(struct spool *sp, const char *id, const char *reason)
{
	struct envelope env;
	const char *err;
	int r;

	if (spool_load(sp, id, &env, &err) == -1)
		return -1;
	env.hold_time = time(NULL);
	if ((r = envelope_set(&env.hold_reason, reason)) == -1)
		errno = ENOMEM;
	else
		r = spool_update(sp, &env);
	envelope_free(&env);
	return r;
}

int
spool_release(struct spool *sp, const char *id)
{
	return spool_move(sp, id, 0, NULL);
}

int
spool_hold(struct spool *sp, const char *id)
{
	return spool_move(sp, id, 1, NULL);
}

int
spool_hold_as(struct spool *sp, const char *id, const char *reason)
{
	return spool_move(sp, id, 1, reason);
}

int
spool_remove_queued(struct spool *sp, const char *id)
{
	int lk, idle = -1, r = -1, e;

	if (!id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	if ((lk = spool_lock(sp)) == -1)
		return -1;
	if (spool_repair(sp, id) != sp->queue)
		errno = ENOENT;
	else if ((idle = spool_idle_lock(sp, id)) != -1)
		r = spool_remove_in(sp, sp->queue, id);
	e = errno;
	spool_unlock(idle);
	spool_unlock(lk);
	if (r == 0)
		log_info("spool=%s id=%s removed from queue/ by the administrator",
		    sp->dir, id);
	errno = e;
	return r;
}

int
spool_reschedule(struct spool *sp, const char *id, long long when)
{
	struct envelope env;
	const char *err;
	int lk, idle = -1, r = -1, e;

	if (!id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	if ((lk = spool_lock(sp)) == -1)
		return -1;
	if (spool_repair(sp, id) != sp->queue)
		errno = ENOENT;
	else if ((idle = spool_idle_lock(sp, id)) != -1 &&
	    spool_load(sp, id, &env, &err) == 0) {
		env.next_attempt = when;
		r = spool_update(sp, &env);
		envelope_free(&env);
	}
	e = errno;
	spool_unlock(idle);
	spool_unlock(lk);
	errno = e;
	return r;
}

int
spool_remove_held(struct spool *sp, const char *id)
{
	int lk, r = -1, e;

	if (!id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	if ((lk = spool_lock(sp)) == -1)
		return -1;
	if (spool_repair(sp, id) != sp->hold)
		errno = ENOENT;
	else
		r = spool_remove_in(sp, sp->hold, id);
	e = errno;
	spool_unlock(lk);
	if (r == 0)
		log_info("spool=%s id=%s removed from hold/", sp->dir, id);
	errno = e;
	return r;
}

int
spool_load_held(struct spool *sp, const char *id, struct envelope *env_r,
    const char **err_r)
{
	return spool_load_in(sp, sp->hold, id, env_r, err_r);
}

int
spool_open_held_content(struct spool *sp, const char *id, off_t *size_r)
{
	return spool_open_in(sp, sp->hold, id, size_r);
}

/* Names in dir (not . or ..), NUL-separated in *names_r; -1 on error. */
static int
spool_names(const char *dir, char **names_r, size_t *len_r)
{
	DIR *d;
	struct dirent *de;
	char *names = NULL, *nn;
	size_t len = 0, n;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		n = strlen(de->d_name) + 1;
		if ((nn = realloc(names, len + n)) == NULL) {
			free(names);
			closedir(d);
			errno = ENOMEM;
			return -1;
		}
		memcpy(nn + len, de->d_name, n);
		names = nn;
		len += n;
	}
	closedir(d);
	*names_r = names;
	*len_r = len;
	return 0;
}

int
spool_list(struct spool *sp, int held, int (*cb)(const char *id, void *arg),
    void *arg)
{
	struct spool_ids ids = { 0 };
	char *names, id[ID_LEN + 1];
	size_t len, i;
	int n = 0;

	if (spool_names(held ? sp->hold : sp->queue, &names, &len) == -1)
		return -1;
	for (i = 0; i < len; i += strlen(names + i) + 1) {
		const char *name = names + i;

		if (strlen(name) != ID_LEN + 4 || strcmp(name + ID_LEN, ".env") != 0)
			continue;
		memcpy(id, name, ID_LEN);
		id[ID_LEN] = '\0';
		if (id_valid(id) && spool_ids_add(&ids, id) == -1) {
			free(names);
			free(ids.v);
			errno = ENOMEM;
			return -1;
		}
	}
	free(names);
	spool_ids_sort(&ids);
	for (i = 0; i < ids.n; i++) {
		n++;
		if (cb(ids.v[i], arg) != 0)
			break;
	}
	free(ids.v);
	return n;
}

int
spool_notify(struct spool *sp, const char *id)
{
	char path[SPOOL_PATH_MAX];
	int fd;

	if (!id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s", sp->pickup, id);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    0600)) == -1)
		return -1;
	close(fd);
	return 0;
}

int
spool_notify_all(struct spool *sp)
{
	char path[SPOOL_PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", sp->pickup, SPOOL_PICKUP_ALL);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    0600)) == -1)
		return -1;
	close(fd);
	return 0;
}

int
spool_notify_pending(struct spool *sp, const char *id)
{
	char path[SPOOL_PATH_MAX];

	if (id != NULL && !id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s", sp->pickup,
	    id ? id : SPOOL_PICKUP_ALL);
	if (access(path, F_OK) == 0)
		return 1;
	return errno == ENOENT ? 0 : -1;
}

int
spool_pickup(struct spool *sp, void (*cb)(const char *id, void *arg),
    void *arg)
{
	char *names, path[SPOOL_PATH_MAX];
	size_t len, i;
	int n = 0, all = 0;

	if (spool_names(sp->pickup, &names, &len) == -1)
		return -1;
	for (i = 0; i < len; i += strlen(names + i) + 1) {
		const char *name = names + i;

		if (strcmp(name, SPOOL_PICKUP_ALL) == 0)
			all = 1;
		else if (id_valid(name) && spool_exists(sp->queue, name, "env")) {
			cb(name, arg);
			n++;
		}
		snprintf(path, sizeof(path), "%s/%s", sp->pickup, name);
		unlink(path);
	}
	free(names);
	if (all) {
		cb(NULL, arg);
		n++;
	}
	return n;
}
