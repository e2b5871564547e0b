#include "queue/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "queue/commit.h"
#include "queue/spool_int.h"

struct spool_msg {
	struct spool *sp;
	char id[ID_LEN + 1];
	int fd;
	size_t size;
	int err;	/* a disk-full write error, kept for the commit */
};

int
spool_path(char *out, size_t n, const char *dir, const char *id,
    const char *ext)
{
	if ((size_t)snprintf(out, n, "%s/%s.%s", dir, id, ext) >= n) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int
spool_exists(const char *dir, const char *id, const char *ext)
{
	char path[SPOOL_PATH_MAX];

	return spool_path(path, sizeof(path), dir, id, ext) == 0 &&
	    access(path, F_OK) == 0;
}

struct spool *
spool_open(const char *dir, char *err, size_t errlen)
{
	struct spool *sp;

	if ((sp = calloc(1, sizeof(*sp))) == NULL ||
	    (sp->dir = strdup(dir)) == NULL) {
		snprintf(err, errlen, "spool %s: out of memory", dir);
		free(sp);
		return NULL;
	}
	snprintf(sp->tmp, sizeof(sp->tmp), "%s/tmp", dir);
	snprintf(sp->queue, sizeof(sp->queue), "%s/queue", dir);
	snprintf(sp->hold, sizeof(sp->hold), "%s/hold", dir);
	snprintf(sp->pickup, sizeof(sp->pickup), "%s/pickup", dir);
	snprintf(sp->corrupt, sizeof(sp->corrupt), "%s/corrupt", dir);
	if (strlen(dir) > sizeof(sp->corrupt) - 16) {
		snprintf(err, errlen, "spool %s: path too long", dir);
		spool_close(sp);
		return NULL;
	}
	if (fs_mkdir_p(dir, 0700) == -1 || fs_mkdir(sp->tmp, 0700) == -1 ||
	    fs_mkdir(sp->queue, 0700) == -1 || fs_mkdir(sp->hold, 0700) == -1 ||
	    fs_mkdir(sp->pickup, 0700) == -1 || fs_mkdir(sp->corrupt, 0700) == -1) {
		snprintf(err, errlen, "spool %s: cannot create directories: %s",
		    dir, strerror(errno));
		spool_close(sp);
		return NULL;
	}
	return sp;
}

void
spool_close(struct spool *sp)
{
	if (sp == NULL)
		return;
	free(sp->dir);
	free(sp);
}

const char *
spool_dir(const struct spool *sp)
{
	return sp->dir;
}

struct spool_msg *
spool_msg_new(struct spool *sp, char id_r[ID_LEN + 1])
{
	struct spool_msg *m;
	char path[SPOOL_PATH_MAX];
	int tries;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	m->sp = sp;
	for (tries = 0; tries < 10; tries++) {
		id_new(m->id);
		if (spool_exists(sp->queue, m->id, "env") ||
		    spool_exists(sp->hold, m->id, "env"))
			continue;	/* that id is taken already */
		if (spool_path(path, sizeof(path), sp->tmp, m->id, "msg") == -1)
			break;
		m->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (m->fd >= 0) {
			memcpy(id_r, m->id, ID_LEN + 1);
			return m;
		}
		if (errno != EEXIST)
			break;
	}
	log_error("spool=%s cannot create message file: %s", sp->dir,
	    strerror(errno));
	free(m);
	return NULL;
}

int
spool_msg_write(struct spool_msg *m, const void *p, size_t n)
{
	if (m->err != 0)
		return 0;	/* failed already: the commit will say so */
	if (fs_write_all(m->fd, p, n) == -1) {
		log_error("spool=%s id=%s write failed: %s", m->sp->dir, m->id,
		    strerror(errno));
		if (errno != ENOSPC && errno != EDQUOT)
			return -1;
		m->err = errno;
		return 0;
	}
	m->size += n;
	return 0;
}

size_t
spool_msg_size(const struct spool_msg *m)
{
	return m->size;
}

static void
spool_unlink_tmp(struct spool_msg *m)
{
	char path[SPOOL_PATH_MAX];

	if (spool_path(path, sizeof(path), m->sp->tmp, m->id, "msg") == 0)
		unlink(path);
	if (spool_path(path, sizeof(path), m->sp->tmp, m->id, "env") == 0)
		unlink(path);
}

void
spool_msg_abort(struct spool_msg *m)
{
	if (m == NULL)
		return;
	close(m->fd);
	spool_unlink_tmp(m);
	free(m);
}

/* rename() that fails with EEXIST instead of replacing. */
int
spool_rename_new(const char *from, const char *to)
{
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* file system without RENAME_NOREPLACE: link() refuses too */
	if (link(from, to) == -1)
		return -1;
	return unlink(from);
}

/*
 * The event loop's part of a commit: m becomes a commit job (paths, the
 * serialized envelope, the content's fd) and is freed. NULL with errno
 * when that fails; nothing of the message is left then.
 */
static struct commit_job *
spool_commit_prepare(struct spool_msg *m, struct envelope *env, int held)
{
	struct spool *sp = m->sp;
	struct commit_job *j;
	const char *area = held ? sp->hold : sp->queue, *step = "write";
	int e = m->err;

	memcpy(env->id, m->id, ID_LEN + 1);
	env->size = m->size;
	if (held && env->hold_time == 0)
		env->hold_time = time(NULL);
	if (e != 0)
		goto fail;
	step = "envelope write";
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		e = ENOMEM;
		goto fail;
	}
	if (spool_path(j->tmsg, sizeof(j->tmsg), sp->tmp, m->id, "msg") == -1 ||
	    spool_path(j->tenv, sizeof(j->tenv), sp->tmp, m->id, "env") == -1 ||
	    spool_path(j->amsg, sizeof(j->amsg), area, m->id, "msg") == -1 ||
	    spool_path(j->aenv, sizeof(j->aenv), area, m->id, "env") == -1 ||
	    envelope_serialize(env, &j->env) == -1) {
		e = errno == ENAMETOOLONG ? errno : ENOMEM;
		buf_free(&j->env);
		free(j);
		goto fail;
	}
	j->sp = sp;
	memcpy(j->id, m->id, ID_LEN + 1);
	j->held = held;
	j->area = area;
	j->fd = m->fd;
	j->env_fd = -1;
	free(m);
	return j;
fail:
	log_error("spool=%s id=%s commit failed at %s: %s", sp->dir, m->id,
	    step, strerror(e));
	spool_msg_abort(m);
	errno = e;
	return NULL;
}

/* The whole commit, here and now: a batch of one. */
static int
spool_commit_now(struct commit_job *j)
{
	struct commit_stats st;
	int e;

	memset(&st, 0, sizeof(st));
	commit_batch_run(j, &st, NULL, NULL);
	if (j->rc != 0)
		log_error("spool=%s id=%s commit failed at %s: %s", j->sp->dir,
		    j->id, j->step ? j->step : "?", strerror(j->err));
	e = j->err;
	return e == 0 ? 0 : (errno = e, -1);
}

static int
spool_msg_commit_in(struct spool_msg *m, struct envelope *env, int held)
{
	struct commit_job *j;
	int r, e;

	if ((j = spool_commit_prepare(m, env, held)) == NULL)
		return -1;
	r = spool_commit_now(j);
	e = errno;
	commit_job_free(j);
	errno = e;
	return r;
}

int
spool_msg_commit(struct spool_msg *m, struct envelope *env)
{
	return spool_msg_commit_in(m, env, 0);
}

int
spool_msg_commit_held(struct spool_msg *m, struct envelope *env)
{
	return spool_msg_commit_in(m, env, 1);
}

int
spool_msg_commit_async(struct spool_msg *m, struct envelope *env, int held,
    spool_commit_cb cb, void *arg)
{
	struct spool *sp = m->sp;
	struct commit_job *j;
	int r;

	if ((j = spool_commit_prepare(m, env, held)) == NULL)
		return -1;
	j->cb = cb;
	j->arg = arg;
	if (sp->committer != NULL) {
		commit_worker_submit(sp->committer, j);
		return 0;
	}
	r = spool_commit_now(j);
	cb(r, r == 0 ? 0 : errno, j->id, arg);
	commit_job_free(j);
	return 0;
}

void
spool_set_committer(struct spool *sp, struct commit_worker *w)
{
	sp->committer = w;
}

/* statvfs at most once a second: MAIL asks it for every transaction. */
int
spool_space_low(struct spool *sp, unsigned long long min_free)
{
	struct statvfs vfs;
	struct timespec ts;

	if (min_free == 0)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (sp->space_checked == 0 || ts.tv_sec != sp->space_checked) {
		sp->space_checked = ts.tv_sec;
		if (statvfs(sp->dir, &vfs) == -1)
			return sp->space_no_inodes = 0;	/* cannot tell: the commit will */
		sp->space_free = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
		/* no inode left for the two files of a message is full too */
		sp->space_no_inodes = vfs.f_files > 0 && vfs.f_favail < 16;
	}
	return sp->space_no_inodes || sp->space_free < min_free;
}

static int
spool_read_file(const char *path, struct buf *out)
{
	char chunk[8192];
	int fd;
	ssize_t r;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	while ((r = read(fd, chunk, sizeof(chunk))) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			return -1;
		}
		if (out->len > 16 * 1024 * 1024 ||
		    buf_append(out, chunk, (size_t)r) == -1) {
			close(fd);
			errno = EFBIG;
			return -1;
		}
	}
	close(fd);
	return 0;
}

int
spool_load_in(struct spool *sp, const char *area, const char *id,
    struct envelope *env_r, const char **err_r)
{
	char path[SPOOL_PATH_MAX];
	struct buf b = { 0 };
	int r, e;

	memset(env_r, 0, sizeof(*env_r));
	if (!id_valid(id) || spool_path(path, sizeof(path), area, id, "env") == -1) {
		*err_r = "bad queue id";
		errno = EINVAL;
		return -1;
	}
	if (spool_read_file(path, &b) == -1) {
		e = errno;
		*err_r = strerror(e);
		buf_free(&b);
		errno = e;
		return -1;
	}
	r = envelope_parse(b.data ? b.data : "", b.len, env_r, err_r);
	buf_free(&b);
	if (r == 0 && strcmp(env_r->id, id) != 0) {
		*err_r = "envelope names another queue id";
		envelope_free(env_r);
		r = -1;
	}
	if (r == -1)
		errno = EBADMSG;
	return r;
}

int
spool_load(struct spool *sp, const char *id, struct envelope *env_r,
    const char **err_r)
{
	return spool_load_in(sp, sp->queue, id, env_r, err_r);
}

int
spool_update(struct spool *sp, const struct envelope *env)
{
	struct buf b = { 0 };
	char name[ID_LEN + 8];
	int r;

	snprintf(name, sizeof(name), "%s.env", env->id);
	if (envelope_serialize(env, &b) == -1) {
		errno = ENOMEM;
		return -1;
	}
	r = fs_write_atomic(sp->queue, name, b.data, b.len);
	if (r == -1)
		log_error("spool=%s id=%s envelope update failed: %s", sp->dir,
		    env->id, strerror(errno));
	buf_free(&b);
	return r;
}

/* A message's files leave area (the envelope first: the message is gone
 * from then on); not yet durable. */
static int
spool_unlink_in(const char *area, const char *id)
{
	char path[SPOOL_PATH_MAX];

	if (!id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	if (spool_path(path, sizeof(path), area, id, "env") == -1 ||
	    unlink(path) == -1)
		return -1;
	if (spool_path(path, sizeof(path), area, id, "msg") == 0)
		unlink(path);
	return 0;
}

int
spool_remove_in(struct spool *sp, const char *area, const char *id)
{
	if (spool_unlink_in(area, id) == -1)
		return -1;
	return fs_sync_dir(area);
}

int
spool_remove(struct spool *sp, const char *id)
{
	if (sp->committer == NULL)
		return spool_remove_in(sp, sp->queue, id);
	/* after delivery: the directory fsync goes to the commit worker,
	 * shared by every removal until it runs (DESIGN: the loop never
	 * blocks on the disk) */
	if (spool_unlink_in(sp->queue, id) == -1)
		return -1;
	commit_worker_sync_dir(sp->committer, sp->queue);
	return 0;
}

int
spool_open_in(struct spool *sp, const char *area, const char *id,
    off_t *size_r)
{
	char path[SPOOL_PATH_MAX];
	struct stat st;
	int fd;

	if (!id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	if (spool_path(path, sizeof(path), area, id, "msg") == -1)
		return -1;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(fd, &st) == -1) {
		close(fd);
		return -1;
	}
	*size_r = st.st_size;
	return fd;
}

int
spool_open_content(struct spool *sp, const char *id, off_t *size_r)
{
	return spool_open_in(sp, sp->queue, id, size_r);
}

/* Never replaces a file already in corrupt/: a second one of the same
 * name gets a suffix (.1 to .99). */
void
spool_corrupt_file(struct spool *sp, const char *area, const char *name)
{
	char from[SPOOL_PATH_MAX], to[SPOOL_PATH_MAX];
	int i;

	snprintf(from, sizeof(from), "%s/%s", area, name);
	snprintf(to, sizeof(to), "%s/%s", sp->corrupt, name);
	for (i = 1; spool_rename_new(from, to) == -1; i++) {
		if (errno == ENOENT)
			return;
		if (errno != EEXIST || i == 100) {
			log_error("spool=%s cannot move %s to corrupt/: %s",
			    sp->dir, log_safe(name), strerror(errno));
			return;
		}
		snprintf(to, sizeof(to), "%s/%s.%d", sp->corrupt, name, i);
	}
}

void
spool_corrupt_in(struct spool *sp, const char *area, const char *id,
    const char *why)
{
	char name[ID_LEN + 8];

	log_error("spool=%s id=%s moved to corrupt/: %s", sp->dir, id, why);
	snprintf(name, sizeof(name), "%.*s.env", ID_LEN, id);
	spool_corrupt_file(sp, area, name);
	snprintf(name, sizeof(name), "%.*s.msg", ID_LEN, id);
	spool_corrupt_file(sp, area, name);
	fs_sync_dir(sp->corrupt);
}

int
spool_quarantine_corrupt(struct spool *sp, const char *id, const char *why)
{
	if (!id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	spool_corrupt_in(sp, sp->queue, id, why);
	return fs_sync_dir(sp->queue);
}

/* Removes every entry of dir (tmp/, pickup/): the count, or -1. */
static int
spool_empty_dir(const char *dir)
{
	DIR *d;
	struct dirent *de;
	char path[SPOOL_PATH_MAX];
	int n = 0;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) == 0)
			n++;
	}
	closedir(d);
	return n;
}

/*
 * The ids named in one area (ID.env, ID.msg), added to ids. Stray .tmp
 * files of an interrupted envelope rewrite are removed (the old envelope
 * stands); any other name goes to corrupt/.
 */
static int
spool_scan_area(struct spool *sp, const char *area, const char *label,
    struct spool_ids *ids)
{
	DIR *d;
	struct dirent *de;
	char path[SPOOL_PATH_MAX], *names = NULL;
	size_t i, len = 0;
	int r = 0;

	if ((d = opendir(area)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL && r == 0) {
		const char *name = de->d_name, *dot = strrchr(name, '.');
		char id[ID_LEN + 1];

		if (name[0] == '.') {
			if (strstr(name, ".tmp") != NULL) {
				snprintf(path, sizeof(path), "%s/%s", area, name);
				unlink(path);
			}
			continue;
		}
		if (dot != NULL && dot - name == ID_LEN &&
		    (strcmp(dot, ".env") == 0 || strcmp(dot, ".msg") == 0)) {
			memcpy(id, name, ID_LEN);
			id[ID_LEN] = '\0';
			if (id_valid(id)) {
				r = spool_ids_add(ids, id);
				continue;
			}
		}
		/* moved away after the scan: never rename under readdir */
		{
			size_t n = strlen(name) + 1;
			char *nn = realloc(names, len + n);

			if (nn == NULL) {
				r = -1;
				break;
			}
			memcpy(nn + len, name, n);
			names = nn;
			len += n;
		}
	}
	closedir(d);
	for (i = 0; i < len; i += strlen(names + i) + 1) {
		log_warning("spool=%s unexpected file %s/%s moved to corrupt/",
		    sp->dir, label, log_safe(names + i));
		spool_corrupt_file(sp, area, names + i);
	}
	free(names);
	return r;
}

int
spool_ids_add(struct spool_ids *ids, const char *id)
{
	if (ids->n == ids->cap) {
		size_t cap = ids->cap ? ids->cap * 2 : 64;
		char (*v)[ID_LEN + 1] = realloc(ids->v, cap * sizeof(*v));

		if (v == NULL)
			return -1;
		ids->v = v;
		ids->cap = cap;
	}
	memcpy(ids->v[ids->n++], id, ID_LEN + 1);
	return 0;
}

static int
spool_id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

void
spool_ids_sort(struct spool_ids *ids)
{
	if (ids->n > 1)
		qsort(ids->v, ids->n, sizeof(*ids->v), spool_id_cmp);
}

int
spool_recover(struct spool *sp, void (*cb)(const char *id, void *arg),
    void *arg)
{
	struct spool_ids ids = { 0 };
	size_t i;
	int lk, n, good = 0, held = 0;

	if ((lk = spool_lock(sp)) == -1)
		return -1;
	if ((n = spool_empty_dir(sp->tmp)) == -1 ||
	    spool_empty_dir(sp->pickup) == -1)
		goto fail;
	if (n)
		log_info("spool=%s removed %d unacknowledged file(s) from tmp/",
		    sp->dir, n);
	if (spool_scan_area(sp, sp->queue, "queue", &ids) == -1 ||
	    spool_scan_area(sp, sp->hold, "hold", &ids) == -1)
		goto fail;
	spool_ids_sort(&ids);
	for (i = 0; i < ids.n; i++) {
		const char *id = ids.v[i], *area, *err;
		struct envelope env;

		if (i > 0 && strcmp(id, ids.v[i - 1]) == 0)
			continue;	/* .env and .msg name it twice */
		if ((area = spool_repair(sp, id)) == NULL)
			continue;
		if (spool_load_in(sp, area, id, &env, &err) == -1) {
			spool_corrupt_in(sp, area, id, err);
			continue;
		}
		envelope_free(&env);
		if (!spool_exists(area, id, "msg")) {
			spool_corrupt_in(sp, area, id, "envelope without content");
			continue;
		}
		if (area == sp->queue) {
			cb(id, arg);
			good++;
		} else
			held++;
	}
	fs_sync_dir(sp->queue);
	fs_sync_dir(sp->hold);
	if (held)
		log_info("spool=%s %d held message(s) in hold/ (mxgate quarantine "
		    "list)", sp->dir, held);
	free(ids.v);
	spool_unlock(lk);
	return good;
fail:
	free(ids.v);
	spool_unlock(lk);
	return -1;
}
