#include "queue/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/log.h"

#define SPOOL_PATH_MAX 4400

struct spool {
	char *dir;
	char tmp[4096];
	char queue[4096];
	char corrupt[4096];
};

struct spool_msg {
	struct spool *sp;
	char id[ID_LEN + 1];
	int fd;
	size_t size;
};

static int
spool_path(char *out, size_t n, const char *dir, const char *id,
    const char *ext)
{
	if ((size_t)snprintf(out, n, "%s/%s.%s", dir, id, ext) >= n) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
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
	snprintf(sp->corrupt, sizeof(sp->corrupt), "%s/corrupt", dir);
	if (fs_mkdir_p(dir, 0700) == -1 || fs_mkdir(sp->tmp, 0700) == -1 ||
	    fs_mkdir(sp->queue, 0700) == -1 || fs_mkdir(sp->corrupt, 0700) == -1) {
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
		if (spool_path(path, sizeof(path), sp->queue, m->id, "env") == -1)
			break;
		if (access(path, F_OK) == 0)
			continue;	/* that id is queued already */
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
	if (fs_write_all(m->fd, p, n) == -1) {
		log_error("spool=%s id=%s write failed: %s", m->sp->dir, m->id,
		    strerror(errno));
		return -1;
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
static int
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

int
spool_msg_commit(struct spool_msg *m, struct envelope *env)
{
	char tmsg[SPOOL_PATH_MAX], tenv[SPOOL_PATH_MAX], qmsg[SPOOL_PATH_MAX], qenv[SPOOL_PATH_MAX];
	struct buf b = { 0 };
	int fd = -1, e;
	const char *step = "content fsync";

	memcpy(env->id, m->id, ID_LEN + 1);
	env->size = m->size;
	if (spool_path(tmsg, sizeof(tmsg), m->sp->tmp, m->id, "msg") == -1 ||
	    spool_path(tenv, sizeof(tenv), m->sp->tmp, m->id, "env") == -1 ||
	    spool_path(qmsg, sizeof(qmsg), m->sp->queue, m->id, "msg") == -1 ||
	    spool_path(qenv, sizeof(qenv), m->sp->queue, m->id, "env") == -1)
		goto fail;
	if (fsync(m->fd) == -1)
		goto fail;
	step = "content close";
	if (close(m->fd) == -1) {
		m->fd = -1;
		goto fail;
	}
	m->fd = -1;
	step = "envelope write";
	if (envelope_serialize(env, &b) == -1) {
		errno = ENOMEM;
		goto fail;
	}
	if ((fd = open(tenv, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) == -1 ||
	    fs_write_all(fd, b.data, b.len) == -1)
		goto fail;
	step = "envelope fsync";
	if (fsync(fd) == -1 || close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	/* Never replace a queued message, whatever the ids say. */
	step = "rename";
	if (spool_rename_new(tmsg, qmsg) == -1)
		goto fail;
	if (spool_rename_new(tenv, qenv) == -1) {
		e = errno;
		rename(qmsg, tmsg);
		errno = e;
		goto fail;
	}
	/* The commit point is durable only once the directory is. */
	step = "directory fsync";
	if (fs_sync_dir(m->sp->queue) == -1) {
		e = errno;
		/* Not acknowledged: take it back out of the queue. */
		unlink(qenv);
		unlink(qmsg);
		errno = e;
		goto fail;
	}
	buf_free(&b);
	free(m);
	return 0;
fail:
	e = errno;
	log_error("spool=%s id=%s commit failed at %s: %s", m->sp->dir, m->id,
	    step, strerror(e));
	if (fd != -1)
		close(fd);
	if (m->fd != -1)
		close(m->fd);
	spool_unlink_tmp(m);
	buf_free(&b);
	free(m);
	errno = e;
	return -1;
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
spool_load(struct spool *sp, const char *id, struct envelope *env_r,
    const char **err_r)
{
	char path[SPOOL_PATH_MAX];
	struct buf b = { 0 };
	int r;

	memset(env_r, 0, sizeof(*env_r));
	if (!id_valid(id) || spool_path(path, sizeof(path), sp->queue, id, "env") == -1) {
		*err_r = "bad queue id";
		return -1;
	}
	if (spool_read_file(path, &b) == -1) {
		*err_r = strerror(errno);
		buf_free(&b);
		return -1;
	}
	r = envelope_parse(b.data ? b.data : "", b.len, env_r, err_r);
	buf_free(&b);
	if (r == 0 && strcmp(env_r->id, id) != 0) {
		*err_r = "envelope names another queue id";
		envelope_free(env_r);
		return -1;
	}
	return r;
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

int
spool_remove(struct spool *sp, const char *id)
{
	char path[SPOOL_PATH_MAX];

	if (spool_path(path, sizeof(path), sp->queue, id, "env") == -1 ||
	    unlink(path) == -1)
		return -1;
	if (spool_path(path, sizeof(path), sp->queue, id, "msg") == 0)
		unlink(path);
	return fs_sync_dir(sp->queue);
}

int
spool_open_content(struct spool *sp, const char *id, off_t *size_r)
{
	char path[SPOOL_PATH_MAX];
	struct stat st;
	int fd;

	if (spool_path(path, sizeof(path), sp->queue, id, "msg") == -1)
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

static void
spool_move_corrupt(struct spool *sp, const char *name)
{
	char from[SPOOL_PATH_MAX], to[SPOOL_PATH_MAX];

	snprintf(from, sizeof(from), "%s/%s", sp->queue, name);
	snprintf(to, sizeof(to), "%s/%s", sp->corrupt, name);
	if (rename(from, to) == -1 && errno != ENOENT)
		log_error("spool=%s cannot move %s to corrupt/: %s", sp->dir,
		    name, strerror(errno));
}

int
spool_quarantine_corrupt(struct spool *sp, const char *id, const char *why)
{
	char name[ID_LEN + 8];

	log_error("spool=%s id=%s moved to corrupt/: %s", sp->dir, id, why);
	snprintf(name, sizeof(name), "%s.env", id);
	spool_move_corrupt(sp, name);
	snprintf(name, sizeof(name), "%s.msg", id);
	spool_move_corrupt(sp, name);
	fs_sync_dir(sp->corrupt);
	return fs_sync_dir(sp->queue);
}

static int
spool_clean_tmp(struct spool *sp)
{
	DIR *d;
	struct dirent *de;
	char path[SPOOL_PATH_MAX];
	int n = 0;

	if ((d = opendir(sp->tmp)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' && (de->d_name[1] == '\0' ||
		    (de->d_name[1] == '.' && de->d_name[2] == '\0')))
			continue;
		snprintf(path, sizeof(path), "%s/%s", sp->tmp, de->d_name);
		if (unlink(path) == 0)
			n++;
	}
	closedir(d);
	if (n)
		log_info("spool=%s removed %d unacknowledged file(s) from tmp/",
		    sp->dir, n);
	return 0;
}

static int
spool_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
spool_recover(struct spool *sp, void (*cb)(const char *id, void *arg),
    void *arg)
{
	DIR *d;
	struct dirent *de;
	char **names = NULL, path[SPOOL_PATH_MAX];
	size_t n = 0, i;
	int good = 0;

	if (spool_clean_tmp(sp) == -1 || (d = opendir(sp->queue)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		char **nn;

		if (de->d_name[0] == '.') {
			/* interrupted envelope rewrite: the old one stands */
			if (strstr(de->d_name, ".tmp") != NULL) {
				snprintf(path, sizeof(path), "%s/%s", sp->queue,
				    de->d_name);
				unlink(path);
			}
			continue;
		}
		if ((nn = realloc(names, (n + 1) * sizeof(*nn))) == NULL ||
		    (nn[n] = strdup(de->d_name)) == NULL) {
			if (nn)
				names = nn;
			closedir(d);
			goto fail;
		}
		names = nn;
		n++;
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), spool_cmp);
	for (i = 0; i < n; i++) {
		char id[ID_LEN + 1], *dot = strrchr(names[i], '.');
		struct envelope env;
		const char *err;

		if (dot == NULL || (size_t)(dot - names[i]) != ID_LEN) {
			log_warning("spool=%s unexpected file queue/%s moved to corrupt/",
			    sp->dir, names[i]);
			spool_move_corrupt(sp, names[i]);
			continue;
		}
		memcpy(id, names[i], ID_LEN);
		id[ID_LEN] = '\0';
		if (strcmp(dot, ".msg") == 0) {
			/* Content belongs with its envelope, handled (or moved
			 * away with it) under the .env name. */
			snprintf(path, sizeof(path), "%s/%s", sp->queue, names[i]);
			if (access(path, F_OK) == -1)
				continue;	/* already moved with its envelope */
			snprintf(path, sizeof(path), "%s/%s.env", sp->queue, id);
			if (access(path, F_OK) == 0)
				continue;
			spool_quarantine_corrupt(sp, id, "content without envelope");
			continue;
		}
		if (strcmp(dot, ".env") != 0 || !id_valid(id)) {
			log_warning("spool=%s unexpected file queue/%s moved to corrupt/",
			    sp->dir, names[i]);
			spool_move_corrupt(sp, names[i]);
			continue;
		}
		if (spool_load(sp, id, &env, &err) == -1) {
			spool_quarantine_corrupt(sp, id, err);
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s.msg", sp->queue, id);
		if (access(path, F_OK) == -1) {
			envelope_free(&env);
			spool_quarantine_corrupt(sp, id, "envelope without content");
			continue;
		}
		envelope_free(&env);
		cb(id, arg);
		good++;
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return good;
fail:
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return -1;
}
