/*
 * Tests for queue/spool.c, queue/spool_hold.c and queue/envelope.c:
 * durable commit, atomic update, removal, crash recovery, the hold area
 * (commit, release, hold, repair of every interrupted move), id checks,
 * pickup (also through the scheduler), the command line's changes to queued
 * messages (content lock, flush, hold with a reason, removal), and the
 * envelope parser's refusals.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/event.h>

#include "lib/buf.h"
#include "lib/id.h"
#include "queue/envelope.h"
#include "queue/scheduler.h"
#include "queue/spool.h"

struct fixture {
	char base[64];		/* mkdtemp */
	char dir[128];		/* base/spool: does not exist before the test */
	struct spool *sp;
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
	snprintf(f->base, sizeof(f->base), "/tmp/mxgate-test-spool-XXXXXX");
	if (mkdtemp(f->base) == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/spool", f->base);
	if ((f->sp = spool_open(f->dir, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	spool_close(f->sp);
	nftw(f->base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* Names in dir/sub, sorted, joined with spaces: "" when empty. */
static void
list_dir(const struct fixture *f, const char *sub, char *out, size_t len)
{
	char path[256], *names[64];
	struct dirent *de;
	size_t n = 0, i, j;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", f->dir, sub);
	assert_non_null(d = opendir(path));
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		assert_true(n < 64);
		names[n++] = strdup(de->d_name);
	}
	closedir(d);
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
			char *t = names[j];

			names[j] = names[j - 1];
			names[j - 1] = t;
		}
	out[0] = '\0';
	for (i = 0; i < n; i++) {
		if (i)
			strncat(out, " ", len - strlen(out) - 1);
		strncat(out, names[i], len - strlen(out) - 1);
		free(names[i]);
	}
}

static void
assert_dir(const struct fixture *f, const char *sub, const char *want)
{
	char got[2048];

	list_dir(f, sub, got, sizeof(got));
	if (strcmp(got, want) != 0)
		fail_msg("%s/: \"%s\", expected \"%s\"", sub, got, want);
}

static void
write_file(const struct fixture *f, const char *sub, const char *name,
    const char *data, size_t n)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s/%s", f->dir, sub, name);
	assert_true((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	close(fd);
}

static void
read_file(const struct fixture *f, const char *sub, const char *name,
    struct buf *out)
{
	char path[256], chunk[4096];
	ssize_t r;
	int fd;

	snprintf(path, sizeof(path), "%s/%s/%s", f->dir, sub, name);
	if ((fd = open(path, O_RDONLY)) == -1)
		fail_msg("cannot open %s", path);
	while ((r = read(fd, chunk, sizeof(chunk))) > 0)
		assert_int_equal(buf_append(out, chunk, (size_t)r), 0);
	close(fd);
}

static void
envelope_fill(struct envelope *e, const char *helo, const char *sender)
{
	memset(e, 0, sizeof(*e));
	e->arrival = 1700000000;
	assert_int_equal(envelope_set(&e->session, "S1a2b3"), 0);
	assert_int_equal(envelope_set(&e->client_ip, "2001:db8::25"), 0);
	assert_int_equal(envelope_set(&e->helo, helo), 0);
	assert_int_equal(envelope_set(&e->sender, sender), 0);
	e->body_8bit = 1;
	e->smtputf8 = 0;
	e->attempts = 0;
	e->next_attempt = 1700000000;
	assert_int_equal(envelope_add_rcpt(e, "one@example.test"), 0);
	assert_int_equal(envelope_add_rcpt(e, "two@example.test"), 0);
}

static void
assert_envelope_equal(const struct envelope *a, const struct envelope *b)
{
	size_t i;

	assert_string_equal(a->id, b->id);
	assert_int_equal(a->arrival, b->arrival);
	assert_string_equal(a->session, b->session);
	assert_string_equal(a->client_ip, b->client_ip);
	assert_string_equal(a->helo, b->helo);
	assert_string_equal(a->sender, b->sender);
	assert_int_equal(a->size, b->size);
	assert_int_equal(a->body_8bit, b->body_8bit);
	assert_int_equal(a->smtputf8, b->smtputf8);
	assert_int_equal(a->attempts, b->attempts);
	assert_int_equal(a->next_attempt, b->next_attempt);
	assert_int_equal(a->nrcpt, b->nrcpt);
	for (i = 0; i < a->nrcpt; i++) {
		assert_string_equal(a->rcpts[i].addr, b->rcpts[i].addr);
		assert_int_equal(a->rcpts[i].state, b->rcpts[i].state);
		if (a->rcpts[i].last == NULL)
			assert_null(b->rcpts[i].last);
		else
			assert_string_equal(a->rcpts[i].last, b->rcpts[i].last);
	}
}

/* Commits content under a new id; returns the envelope (caller frees). */
static void
commit_message(struct fixture *f, const char *content, struct envelope *e,
    char id[ID_LEN + 1])
{
	struct spool_msg *m;

	envelope_fill(e, "client.example", "sender@example.org");
	assert_non_null(m = spool_msg_new(f->sp, id));
	assert_true(id_valid(id));
	assert_int_equal(spool_msg_write(m, content, strlen(content)), 0);
	assert_int_equal(spool_msg_size(m), strlen(content));
	assert_int_equal(spool_msg_commit(m, e), 0);
}

static void
test_open_creates_dirs(void **state)
{
	struct fixture *f = *state;
	static const char *subs[] = { "", "/tmp", "/queue", "/hold", "/pickup",
	    "/corrupt" };
	char path[512], err[600], nested[256];
	struct spool *sp;
	struct stat st;
	size_t i;

	assert_string_equal(spool_dir(f->sp), f->dir);
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", f->dir, subs[i]);
		assert_int_equal(stat(path, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		assert_int_equal(st.st_mode & 0777, 0700);
	}
	/* opening again is fine */
	assert_non_null(sp = spool_open(f->dir, err, sizeof(err)));
	spool_close(sp);

	/* missing parents are created */
	snprintf(nested, sizeof(nested), "%s/a/b/spool", f->base);
	sp = spool_open(nested, err, sizeof(err));
	if (sp == NULL)
		fail_msg("%s", err);
	snprintf(path, sizeof(path), "%s/queue", nested);
	assert_int_equal(stat(path, &st), 0);
	spool_close(sp);

	/* a file in the way is an error with a message */
	snprintf(path, sizeof(path), "%s/file", f->base);
	close(open(path, O_WRONLY | O_CREAT, 0600));
	err[0] = '\0';
	assert_null(spool_open(path, err, sizeof(err)));
	assert_non_null(strstr(err, path));
}

static void
test_commit_and_load(void **state)
{
	struct fixture *f = *state;
	static const char content[] = "Received: from client.example\r\n"
	    "Subject: test\r\n\r\nbody\r\n";
	struct envelope e, l;
	char id[ID_LEN + 1], name[64], want[128];
	const char *err;
	struct buf b = { 0 };
	off_t size;
	int fd;

	commit_message(f, content, &e, id);
	/* commit fills id and size */
	assert_string_equal(e.id, id);
	assert_int_equal(e.size, sizeof(content) - 1);

	snprintf(want, sizeof(want), "%s.env %s.msg", id, id);
	assert_dir(f, "queue", want);
	assert_dir(f, "tmp", "");
	assert_dir(f, "corrupt", "");

	if (spool_load(f->sp, id, &l, &err) == -1)
		fail_msg("load: %s", err);
	assert_envelope_equal(&e, &l);
	assert_int_equal(l.rcpts[0].state, ENV_PENDING);
	assert_int_equal(envelope_pending(&l), 2);
	envelope_free(&l);

	snprintf(name, sizeof(name), "%s.msg", id);
	read_file(f, "queue", name, &b);
	assert_int_equal(b.len, sizeof(content) - 1);
	assert_memory_equal(b.data, content, b.len);
	buf_free(&b);

	assert_true((fd = spool_open_content(f->sp, id, &size)) >= 0);
	assert_int_equal(size, sizeof(content) - 1);
	close(fd);

	/* the envelope file ends with its end record */
	snprintf(name, sizeof(name), "%s.env", id);
	read_file(f, "queue", name, &b);
	assert_true(b.len >= 2);
	assert_string_equal(b.data + b.len - 2, "E\n");
	buf_free(&b);
	envelope_free(&e);
}

static void
test_commit_empty_and_large(void **state)
{
	struct fixture *f = *state;
	struct spool_msg *m;
	struct envelope e, l;
	char id[ID_LEN + 1], chunk[8192];
	const char *err;
	size_t i;

	envelope_fill(&e, "h.example", "");
	assert_non_null(m = spool_msg_new(f->sp, id));
	memset(chunk, 'x', sizeof(chunk));
	for (i = 0; i < 300; i++)
		assert_int_equal(spool_msg_write(m, chunk, sizeof(chunk)), 0);
	assert_int_equal(spool_msg_commit(m, &e), 0);
	assert_int_equal(e.size, 300 * sizeof(chunk));
	assert_int_equal(spool_load(f->sp, id, &l, &err), 0);
	assert_int_equal(l.size, 300 * sizeof(chunk));
	/* the null sender survives as "" */
	assert_string_equal(l.sender, "");
	envelope_free(&l);
	envelope_free(&e);

	envelope_fill(&e, "h.example", "a@b.example");
	assert_non_null(m = spool_msg_new(f->sp, id));
	assert_int_equal(spool_msg_commit(m, &e), 0);
	assert_int_equal(e.size, 0);
	envelope_free(&e);
}

static void
test_escaping(void **state)
{
	struct fixture *f = *state;
	static const char *odd[] = {
		"100% sure",
		"%41 not an escape",
		"%",
		"with spaces  and\ttab",
		"line\nbreak",
		"cr\rhere",
		"ctl\x01\x02\x1f\x7f end",
		"E",
		"\nE\n",
		"utf-8 \xc3\xa9\xe2\x82\xac",
		"trailing space ",
		" leading",
	};
	size_t i;

	for (i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		struct spool_msg *m;
		struct envelope e, l;
		char id[ID_LEN + 1], name[64];
		const char *err;
		struct buf b = { 0 };
		size_t k;

		envelope_fill(&e, odd[i], odd[i]);
		assert_int_equal(envelope_add_rcpt(&e, odd[i]), 0);
		assert_int_equal(envelope_set_last(&e.rcpts[2], odd[i]), 0);
		assert_int_equal(envelope_set(&e.session, odd[i]), 0);
		assert_non_null(m = spool_msg_new(f->sp, id));
		assert_int_equal(spool_msg_commit(m, &e), 0);
		if (spool_load(f->sp, id, &l, &err) == -1)
			fail_msg("odd value %zu: %s", i, err);
		assert_envelope_equal(&e, &l);
		envelope_free(&l);
		envelope_free(&e);

		/* no raw control octet in the file except the line ends */
		snprintf(name, sizeof(name), "%s.env", id);
		read_file(f, "queue", name, &b);
		for (k = 0; k < b.len; k++) {
			unsigned char c = (unsigned char)b.data[k];

			if ((c < 0x20 && c != '\n') || c == 0x7f)
				fail_msg("odd value %zu: raw octet %#x in envelope",
				    i, c);
		}
		buf_free(&b);
	}
}

static void
test_abort(void **state)
{
	struct fixture *f = *state;
	struct spool_msg *m;
	char id[ID_LEN + 1], want[64];

	assert_non_null(m = spool_msg_new(f->sp, id));
	snprintf(want, sizeof(want), "%s.msg", id);
	assert_dir(f, "tmp", want);
	assert_int_equal(spool_msg_write(m, "data", 4), 0);
	spool_msg_abort(m);
	assert_dir(f, "tmp", "");
	assert_dir(f, "queue", "");
	spool_msg_abort(NULL);
}

static void
test_ids_unique(void **state)
{
	struct fixture *f = *state;
	struct spool_msg *m[50];
	char ids[50][ID_LEN + 1];
	size_t i, j;

	for (i = 0; i < 50; i++)
		assert_non_null(m[i] = spool_msg_new(f->sp, ids[i]));
	for (i = 0; i < 50; i++)
		for (j = i + 1; j < 50; j++)
			assert_string_not_equal(ids[i], ids[j]);
	for (i = 0; i < 50; i++)
		spool_msg_abort(m[i]);
	assert_dir(f, "tmp", "");
}

static void
test_update(void **state)
{
	struct fixture *f = *state;
	struct envelope e, l;
	char id[ID_LEN + 1], want[128];
	const char *err;

	commit_message(f, "x\r\n", &e, id);
	e.rcpts[0].state = ENV_DELIVERED;
	assert_int_equal(envelope_set_last(&e.rcpts[0], "250 2.0.0 ok"), 0);
	e.rcpts[1].state = ENV_FAILED;
	assert_int_equal(envelope_set_last(&e.rcpts[1], "550 5.1.1 no such user"), 0);
	e.attempts = 3;
	e.next_attempt = 1700003600;
	assert_int_equal(spool_update(f->sp, &e), 0);

	/* replaced in place: no temporary file left, content untouched */
	snprintf(want, sizeof(want), "%s.env %s.msg", id, id);
	assert_dir(f, "queue", want);
	assert_int_equal(spool_load(f->sp, id, &l, &err), 0);
	assert_envelope_equal(&e, &l);
	assert_int_equal(envelope_pending(&l), 0);
	envelope_free(&l);
	envelope_free(&e);
}

static void
test_remove(void **state)
{
	struct fixture *f = *state;
	struct envelope e, l;
	char id[ID_LEN + 1], id2[ID_LEN + 1], want[128];
	const char *err;
	off_t size;

	commit_message(f, "one\r\n", &e, id);
	envelope_free(&e);
	commit_message(f, "two\r\n", &e, id2);
	envelope_free(&e);
	assert_int_equal(spool_remove(f->sp, id), 0);
	snprintf(want, sizeof(want), "%s.env %s.msg", id2, id2);
	assert_dir(f, "queue", want);
	assert_int_equal(spool_load(f->sp, id, &l, &err), -1);
	assert_non_null(err);
	assert_int_equal(spool_open_content(f->sp, id, &size), -1);
	/* removing twice fails */
	assert_int_equal(spool_remove(f->sp, id), -1);
}

static void
test_load_refuses(void **state)
{
	struct fixture *f = *state;
	struct envelope e, l;
	char id[ID_LEN + 1], other[ID_LEN + 1], name[64];
	const char *err;
	struct buf b = { 0 };

	assert_int_equal(spool_load(f->sp, "../../etc/passwd", &l, &err), -1);
	assert_int_equal(spool_load(f->sp, "0000000000000000", &l, &err), -1);

	/* an envelope stored under another id's name */
	commit_message(f, "x\r\n", &e, id);
	snprintf(name, sizeof(name), "%s.env", id);
	read_file(f, "queue", name, &b);
	memcpy(other, id, sizeof(other));
	other[ID_LEN - 1] = other[ID_LEN - 1] == 'A' ? 'B' : 'A';
	snprintf(name, sizeof(name), "%s.env", other);
	write_file(f, "queue", name, b.data, b.len);
	assert_int_equal(spool_load(f->sp, other, &l, &err), -1);
	assert_non_null(err);
	assert_null(l.sender);
	buf_free(&b);
	envelope_free(&e);
}

struct recover_seen {
	char ids[16][ID_LEN + 1];
	int n;
};

static void
recover_cb(const char *id, void *arg)
{
	struct recover_seen *s = arg;

	assert_true(s->n < 16);
	memcpy(s->ids[s->n++], id, ID_LEN + 1);
}

static int
seen_has(const struct recover_seen *s, const char *id)
{
	int i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->ids[i], id) == 0)
			return 1;
	return 0;
}

/* A fresh, unused id for hand-made files. */
static void
fake_id(char id[ID_LEN + 1], unsigned n)
{
	snprintf(id, ID_LEN + 1, "0000000AB%07X", n);
}

static void
test_recover(void **state)
{
	struct fixture *f = *state;
	struct envelope e;
	struct recover_seen seen = { 0 };
	struct spool_msg *m;
	static struct buf good_env;	/* static: no leak report on failure */
	char good1[ID_LEN + 1], good2[ID_LEN + 1], pending[ID_LEN + 1];
	char noend[ID_LEN + 1], nomsg[ID_LEN + 1], noenv[ID_LEN + 1];
	char name[64], want[1024], body[64];
	const char *err;
	struct envelope l;

	buf_reset(&good_env);
	commit_message(f, "good one\r\n", &e, good1);
	envelope_free(&e);
	commit_message(f, "good two\r\n", &e, good2);
	envelope_free(&e);
	snprintf(name, sizeof(name), "%s.env", good1);
	read_file(f, "queue", name, &good_env);

	/* a message being received at the crash: tmp/ only */
	assert_non_null(m = spool_msg_new(f->sp, pending));
	assert_int_equal(spool_msg_write(m, "partial", 7), 0);
	write_file(f, "tmp", "stray", "x", 1);

	/* an envelope cut before its end record */
	fake_id(noend, 1);
	snprintf(body, sizeof(body), "V 1\nI %s\nS a@b.example\nR P c@d.example\n",
	    noend);
	snprintf(name, sizeof(name), "%s.env", noend);
	write_file(f, "queue", name, body, strlen(body));
	snprintf(name, sizeof(name), "%s.msg", noend);
	write_file(f, "queue", name, "content of noend\r\n", 18);

	/* content whose envelope never arrived */
	fake_id(noenv, 2);
	snprintf(name, sizeof(name), "%s.msg", noenv);
	write_file(f, "queue", name, "orphan\r\n", 8);

	/* a good envelope whose content is gone */
	fake_id(nomsg, 3);
	snprintf(body, sizeof(body), "V 1\nI %s\nS a@b.example\nR P c@d.example\nE\n",
	    nomsg);
	snprintf(name, sizeof(name), "%s.env", nomsg);
	write_file(f, "queue", name, body, strlen(body));

	/* an interrupted rewrite of good1's envelope */
	snprintf(name, sizeof(name), ".%s.env.tmp", good1);
	write_file(f, "queue", name, "V 1\nhalf", 8);

	assert_int_equal(spool_recover(f->sp, recover_cb, &seen), 2);
	assert_int_equal(seen.n, 2);
	assert_true(seen_has(&seen, good1));
	assert_true(seen_has(&seen, good2));
	/* spool_msg_abort after recovery must not harm anything */
	spool_msg_abort(m);

	assert_dir(f, "tmp", "");
	/* the good messages are still queued, untouched */
	if (strcmp(good1, good2) < 0)
		snprintf(want, sizeof(want), "%s.env %s.msg %s.env %s.msg",
		    good1, good1, good2, good2);
	else
		snprintf(want, sizeof(want), "%s.env %s.msg %s.env %s.msg",
		    good2, good2, good1, good1);
	assert_dir(f, "queue", want);
	assert_int_equal(spool_load(f->sp, good1, &l, &err), 0);
	envelope_free(&l);
	/* never deleted: everything unreadable is in corrupt/ */
	snprintf(want, sizeof(want), "%s.env %s.msg %s.msg %s.env", noend,
	    noend, noenv, nomsg);
	assert_dir(f, "corrupt", want);

	/* the stray tmp file did not replace the good envelope */
	{
		struct buf now = { 0 };

		snprintf(name, sizeof(name), "%s.env", good1);
		read_file(f, "queue", name, &now);
		assert_int_equal(now.len, good_env.len);
		assert_memory_equal(now.data, good_env.data, now.len);
		buf_free(&now);
	}
	buf_free(&good_env);

	/* a second recovery finds the same, moves nothing */
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(spool_recover(f->sp, recover_cb, &seen), 2);
	assert_dir(f, "corrupt", want);
}

/* The simplest case: one committed message survives a restart. */
static void
test_recover_keeps_good_message(void **state)
{
	struct fixture *f = *state;
	struct envelope e;
	struct recover_seen seen = { 0 };
	char id[ID_LEN + 1], want[128];

	commit_message(f, "hello\r\n", &e, id);
	envelope_free(&e);
	assert_int_equal(spool_recover(f->sp, recover_cb, &seen), 1);
	assert_int_equal(seen.n, 1);
	assert_string_equal(seen.ids[0], id);
	snprintf(want, sizeof(want), "%s.env %s.msg", id, id);
	assert_dir(f, "queue", want);
	assert_dir(f, "corrupt", "");
}

static void
test_recover_unexpected_file(void **state)
{
	struct fixture *f = *state;
	struct recover_seen seen = { 0 };

	write_file(f, "queue", "junk", "x", 1);
	write_file(f, "queue", "notanid.env", "x", 1);
	assert_int_equal(spool_recover(f->sp, recover_cb, &seen), 0);
	assert_dir(f, "queue", "");
	assert_dir(f, "corrupt", "junk notanid.env");
}

static void
test_quarantine(void **state)
{
	struct fixture *f = *state;
	struct envelope e;
	char id[ID_LEN + 1], want[128];

	commit_message(f, "x\r\n", &e, id);
	envelope_free(&e);
	assert_int_equal(spool_quarantine_corrupt(f->sp, id, "test"), 0);
	assert_dir(f, "queue", "");
	snprintf(want, sizeof(want), "%s.env %s.msg", id, id);
	assert_dir(f, "corrupt", want);
}

#define GOOD_ID "0123456789ABCDEF"
#define GOOD_HEAD "V 1\nI " GOOD_ID "\nT 1700000000\nS a@b.example\n"
#define GOOD_RCPT "R P c@d.example\n"

static void
test_envelope_parse_good(void **state)
{
	static const char text[] = "V 1\nI " GOOD_ID "\nT 1700000000\n"
	    "s S1\nC 192.0.2.1\nH h%25%0A.example\nS \nZ 42\nB 1\nU 0\nA 2\n"
	    "N 1700000600\nR D c@d.example\nL 250 ok\nR F e@f.example\n"
	    "L 550 no\nR P g@h.example\nE\n";
	struct envelope e;
	struct buf out = { 0 };
	const char *err = NULL;

	if (envelope_parse(text, sizeof(text) - 1, &e, &err) == -1)
		fail_msg("%s", err);
	assert_string_equal(e.id, GOOD_ID);
	assert_int_equal(e.arrival, 1700000000);
	assert_string_equal(e.session, "S1");
	assert_string_equal(e.client_ip, "192.0.2.1");
	assert_string_equal(e.helo, "h%\n.example");
	assert_string_equal(e.sender, "");
	assert_int_equal(e.size, 42);
	assert_int_equal(e.body_8bit, 1);
	assert_int_equal(e.smtputf8, 0);
	assert_int_equal(e.attempts, 2);
	assert_int_equal(e.next_attempt, 1700000600);
	assert_int_equal(e.nrcpt, 3);
	assert_int_equal(e.rcpts[0].state, ENV_DELIVERED);
	assert_string_equal(e.rcpts[0].last, "250 ok");
	assert_int_equal(e.rcpts[1].state, ENV_FAILED);
	assert_string_equal(e.rcpts[1].last, "550 no");
	assert_int_equal(e.rcpts[2].state, ENV_PENDING);
	assert_null(e.rcpts[2].last);
	assert_int_equal(envelope_pending(&e), 1);

	/* and back: serializing gives the same records */
	assert_int_equal(envelope_serialize(&e, &out), 0);
	assert_string_equal(out.data, text);
	buf_free(&out);
	envelope_free(&e);
	assert_null(e.rcpts);
	assert_int_equal(e.nrcpt, 0);
}

static const struct {
	const char *what;
	const char *text;
	size_t len;		/* 0: strlen */
} bad_envelopes[] = {
	{ "empty", "", 0 },
	{ "missing E", GOOD_HEAD GOOD_RCPT, 0 },
	{ "truncated E", GOOD_HEAD GOOD_RCPT "E", 0 },
	{ "truncated record", GOOD_HEAD GOOD_RCPT "R P x@y", 0 },
	{ "data after E", GOOD_HEAD GOOD_RCPT "E\nR P x@y.example\n", 0 },
	{ "E twice", GOOD_HEAD GOOD_RCPT "E\nE\n", 0 },
	{ "blank line after E", GOOD_HEAD GOOD_RCPT "E\n\n", 0 },
	{ "E with a value", GOOD_HEAD GOOD_RCPT "E 1\n", 0 },
	{ "unknown record type", GOOD_HEAD GOOD_RCPT "Y 1\nE\n", 0 },
	{ "Q twice", GOOD_HEAD "Q one\nQ two\n" GOOD_RCPT "E\n", 0 },
	{ "bad hold time", GOOD_HEAD GOOD_RCPT "X soon\nE\n", 0 },
	{ "negative hold time", GOOD_HEAD GOOD_RCPT "X -5\nE\n", 0 },
	{ "lower-case type", GOOD_HEAD GOOD_RCPT "z 1\nE\n", 0 },
	{ "blank line", GOOD_HEAD "\n" GOOD_RCPT "E\n", 0 },
	{ "no space after type", GOOD_HEAD GOOD_RCPT "Z5\nE\n", 0 },
	{ "type alone", GOOD_HEAD GOOD_RCPT "Z\nE\n", 0 },
	{ "bad number", GOOD_HEAD GOOD_RCPT "Z abc\nE\n", 0 },
	{ "number with junk", GOOD_HEAD GOOD_RCPT "Z 5x\nE\n", 0 },
	{ "negative number", GOOD_HEAD GOOD_RCPT "Z -1\nE\n", 0 },
	{ "empty number", GOOD_HEAD GOOD_RCPT "Z \nE\n", 0 },
	{ "huge number", GOOD_HEAD GOOD_RCPT "T 99999999999999999999\nE\n", 0 },
	{ "fraction", GOOD_HEAD GOOD_RCPT "A 1.5\nE\n", 0 },
	{ "hex number", GOOD_HEAD GOOD_RCPT "N 0x10\nE\n", 0 },
	{ "NUL octet", GOOD_HEAD "H a\0b\n" GOOD_RCPT "E\n",
	    sizeof(GOOD_HEAD "H a\0b\n" GOOD_RCPT "E\n") - 1 },
	{ "NUL after E", GOOD_HEAD GOOD_RCPT "E\n\0",
	    sizeof(GOOD_HEAD GOOD_RCPT "E\n\0") - 1 },
	{ "escape at end", GOOD_HEAD GOOD_RCPT "H a%\nE\n", 0 },
	{ "short escape", GOOD_HEAD GOOD_RCPT "H a%4\nE\n", 0 },
	{ "non-hex escape", GOOD_HEAD GOOD_RCPT "H a%zz\nE\n", 0 },
	{ "half-hex escape", GOOD_HEAD GOOD_RCPT "H a%4g\nE\n", 0 },
	{ "L before any R", GOOD_HEAD "L 250 ok\n" GOOD_RCPT "E\n", 0 },
	{ "bad recipient state", GOOD_HEAD "R X c@d.example\nE\n", 0 },
	{ "recipient without address", GOOD_HEAD "R P\nE\n", 0 },
	{ "recipient empty address", GOOD_HEAD "R P \nE\n", 0 },
	{ "recipient no space", GOOD_HEAD "R Pc@d.example\nE\n", 0 },
	{ "bad version", "V 2\nI " GOOD_ID "\nS a@b.example\n" GOOD_RCPT "E\n", 0 },
	{ "missing V", "I " GOOD_ID "\nS a@b.example\n" GOOD_RCPT "E\n", 0 },
	{ "missing I", "V 1\nS a@b.example\n" GOOD_RCPT "E\n", 0 },
	{ "bad I", "V 1\nI 0123\nS a@b.example\n" GOOD_RCPT "E\n", 0 },
	{ "I with path", "V 1\nI ../../../etc/pw\nS a@b.example\n" GOOD_RCPT "E\n", 0 },
	{ "missing S", "V 1\nI " GOOD_ID "\n" GOOD_RCPT "E\n", 0 },
	{ "missing R", GOOD_HEAD "E\n", 0 },
	{ "only E", "E\n", 0 },
};

static int
envelope_refused(const char *what, const char *text, size_t len)
{
	struct envelope e;
	const char *err = NULL;

	memset(&e, 0xa5, sizeof(e));
	if (envelope_parse(text, len, &e, &err) == 0) {
		print_error("%s: accepted\n", what);
		envelope_free(&e);
		return 1;
	}
	if (err == NULL || *err == '\0') {
		print_error("%s: no reason\n", what);
		return 1;
	}
	/* left empty: nothing to free, nothing half-filled */
	if (e.rcpts != NULL || e.nrcpt != 0 || e.sender != NULL ||
	    e.helo != NULL || e.session != NULL || e.client_ip != NULL ||
	    e.id[0] != '\0') {
		print_error("%s: envelope not left empty\n", what);
		return 1;
	}
	return 0;
}

static void
test_envelope_parse_refuses(void **state)
{
	size_t i;
	int bad = 0;

	for (i = 0; i < sizeof(bad_envelopes) / sizeof(bad_envelopes[0]); i++) {
		size_t len = bad_envelopes[i].len ? bad_envelopes[i].len :
		    strlen(bad_envelopes[i].text);

		bad += envelope_refused(bad_envelopes[i].what,
		    bad_envelopes[i].text, len);
	}
	assert_int_equal(bad, 0);
}

/*
 * Escapes are exactly "%" and two hex digits, numbers exactly decimal
 * digits: the writer never produces anything else, so anything else is
 * damage, and a %00 would cut the value short.
 */
static void
test_envelope_parse_strict_syntax(void **state)
{
	static const struct {
		const char *what, *text;
	} cases[] = {
		{ "escape with sign", GOOD_HEAD GOOD_RCPT "H a%-1\nE\n" },
		{ "escape with plus", GOOD_HEAD GOOD_RCPT "H a%+F\nE\n" },
		{ "escape with space", GOOD_HEAD GOOD_RCPT "H a% 1\nE\n" },
		{ "escape of NUL", GOOD_HEAD GOOD_RCPT "H a%00b\nE\n" },
		{ "number with plus", GOOD_HEAD GOOD_RCPT "Z +5\nE\n" },
		{ "number with space", GOOD_HEAD GOOD_RCPT "Z  5\nE\n" },
	};
	size_t i;
	int bad = 0;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		bad += envelope_refused(cases[i].what, cases[i].text,
		    strlen(cases[i].text));
	assert_int_equal(bad, 0);
}

/* ------------------------------------------------------------ hold area */

/* Hold records survive a round trip; envelopes without them still parse
 * and serialize without them. */
static void
test_envelope_hold_records(void **state)
{
	static const char old[] = GOOD_HEAD GOOD_RCPT "E\n";
	struct envelope e, l;
	struct buf out = { 0 };
	const char *err;

	assert_int_equal(envelope_parse(old, sizeof(old) - 1, &e, &err), 0);
	assert_null(e.hold_reason);
	assert_int_equal(e.hold_time, 0);
	assert_int_equal(envelope_serialize(&e, &out), 0);
	assert_null(strstr(out.data, "\nQ "));
	assert_null(strstr(out.data, "\nX "));
	buf_free(&out);

	assert_int_equal(envelope_set(&e.hold_reason,
	    "dmarc=fail p=quarantine\r\nheader.from=x.example 100%"), 0);
	e.hold_time = 1700000123;
	assert_int_equal(envelope_serialize(&e, &out), 0);
	assert_non_null(strstr(out.data, "\nX 1700000123\n"));
	assert_non_null(strstr(out.data,
	    "\nQ dmarc=fail p=quarantine%0D%0Aheader.from=x.example 100%25\n"));
	assert_int_equal(envelope_parse(out.data, out.len, &l, &err), 0);
	assert_string_equal(l.hold_reason, e.hold_reason);
	assert_int_equal(l.hold_time, 1700000123);
	envelope_free(&l);
	envelope_free(&e);
	buf_free(&out);
}

static int
spool_file_exists(const struct fixture *f, const char *sub, const char *id,
    const char *ext)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s/%s%s%s", f->dir, sub, id,
	    ext ? "." : "", ext ? ext : "");
	return access(path, F_OK) == 0;
}

/* Moves f->dir/from/name to f->dir/to/name: a step of a move, by hand. */
static void
move_file(const struct fixture *f, const char *from, const char *to,
    const char *id, const char *ext)
{
	char a[256], b[256];

	snprintf(a, sizeof(a), "%s/%s/%s.%s", f->dir, from, id, ext);
	snprintf(b, sizeof(b), "%s/%s/%s.%s", f->dir, to, id, ext);
	if (rename(a, b) == -1)
		fail_msg("rename %s %s: %s", a, b, strerror(errno));
}

static void
commit_held(struct fixture *f, const char *content, char id[ID_LEN + 1])
{
	struct spool_msg *m;
	struct envelope e;

	envelope_fill(&e, "client.example", "phish@example.org");
	assert_int_equal(envelope_set(&e.hold_reason, "dmarc=fail policy=quarantine"), 0);
	assert_non_null(m = spool_msg_new(f->sp, id));
	assert_int_equal(spool_msg_write(m, content, strlen(content)), 0);
	assert_int_equal(spool_msg_commit_held(m, &e), 0);
	envelope_free(&e);
}

static void
commit_queued(struct fixture *f, const char *content, char id[ID_LEN + 1])
{
	struct envelope e;

	commit_message(f, content, &e, id);
	envelope_free(&e);
}

/* The content of f->dir/sub/id.msg equals want. */
static void
assert_content(const struct fixture *f, const char *sub, const char *id,
    const char *want)
{
	struct buf b = { 0 };
	char name[64];

	snprintf(name, sizeof(name), "%s.msg", id);
	read_file(f, sub, name, &b);
	assert_int_equal(b.len, strlen(want));
	assert_memory_equal(b.data, want, b.len);
	buf_free(&b);
}

static void
test_commit_held(void **state)
{
	struct fixture *f = *state;
	struct envelope l;
	char id[ID_LEN + 1], want[128], buf[64];
	const char *err;
	long long before = time(NULL);
	off_t size;
	int fd;

	commit_held(f, "Subject: held\r\n\r\nbody\r\n", id);
	snprintf(want, sizeof(want), "%s.env %s.msg", id, id);
	assert_dir(f, "hold", want);
	assert_dir(f, "queue", "");
	assert_dir(f, "tmp", "");

	/* not a queued message */
	assert_int_equal(spool_load(f->sp, id, &l, &err), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_open_content(f->sp, id, &size), -1);

	assert_int_equal(spool_load_held(f->sp, id, &l, &err), 0);
	assert_string_equal(l.id, id);
	assert_string_equal(l.sender, "phish@example.org");
	assert_string_equal(l.hold_reason, "dmarc=fail policy=quarantine");
	assert_true(l.hold_time >= before && l.hold_time <= time(NULL));
	assert_int_equal(l.size, 23);
	envelope_free(&l);

	assert_true((fd = spool_open_held_content(f->sp, id, &size)) >= 0);
	assert_int_equal(size, 23);
	assert_int_equal(read(fd, buf, sizeof(buf)), 23);
	assert_memory_equal(buf, "Subject: held\r\n\r\nbody\r\n", 23);
	close(fd);
}

static void
test_release_and_hold(void **state)
{
	struct fixture *f = *state;
	static struct buf before, after;
	char id[ID_LEN + 1], want[128], name[64];
	struct envelope l;
	const char *err;

	buf_reset(&before);
	buf_reset(&after);
	commit_held(f, "held one\r\n", id);
	snprintf(name, sizeof(name), "%s.env", id);
	read_file(f, "hold", name, &before);
	snprintf(want, sizeof(want), "%s.env %s.msg", id, id);

	assert_int_equal(spool_release(f->sp, id), 0);
	assert_dir(f, "hold", "");
	assert_dir(f, "queue", want);
	assert_content(f, "queue", id, "held one\r\n");
	/* moved, not rewritten: the hold records stay as history */
	read_file(f, "queue", name, &after);
	assert_int_equal(after.len, before.len);
	assert_memory_equal(after.data, before.data, after.len);
	assert_int_equal(spool_load(f->sp, id, &l, &err), 0);
	envelope_free(&l);
	/* not held any more */
	assert_int_equal(spool_release(f->sp, id), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_remove_held(f->sp, id), -1);
	assert_int_equal(errno, ENOENT);
	assert_dir(f, "queue", want);

	assert_int_equal(spool_hold(f->sp, id), 0);
	assert_dir(f, "queue", "");
	assert_dir(f, "hold", want);
	assert_content(f, "hold", id, "held one\r\n");
	assert_int_equal(spool_hold(f->sp, id), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_load_held(f->sp, id, &l, &err), 0);
	envelope_free(&l);

	/* an unknown id */
	assert_int_equal(spool_release(f->sp, "0000000AB00000FF"), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_hold(f->sp, "0000000AB00000FF"), -1);
	assert_int_equal(errno, ENOENT);
	assert_dir(f, "corrupt", "");
	buf_free(&before);
	buf_free(&after);
}

static void
test_remove_held(void **state)
{
	struct fixture *f = *state;
	char held[ID_LEN + 1], queued[ID_LEN + 1], want[128];
	struct envelope l;
	const char *err;

	commit_held(f, "h\r\n", held);
	commit_queued(f, "q\r\n", queued);
	/* a queued message is not removed as a held one */
	assert_int_equal(spool_remove_held(f->sp, queued), -1);
	assert_int_equal(errno, ENOENT);
	snprintf(want, sizeof(want), "%s.env %s.msg", queued, queued);
	assert_dir(f, "queue", want);

	assert_int_equal(spool_remove_held(f->sp, held), 0);
	assert_dir(f, "hold", "");
	assert_int_equal(spool_load_held(f->sp, held, &l, &err), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_remove_held(f->sp, held), -1);
	assert_int_equal(errno, ENOENT);
	assert_dir(f, "queue", want);
	assert_dir(f, "corrupt", "");
}

struct list_seen {
	char ids[8][ID_LEN + 1];
	int n, stop_at;
};

static int
list_cb(const char *id, void *arg)
{
	struct list_seen *s = arg;

	assert_true(s->n < 8);
	memcpy(s->ids[s->n++], id, ID_LEN + 1);
	return s->n == s->stop_at;
}

static void
test_list(void **state)
{
	struct fixture *f = *state;
	struct list_seen seen = { 0 };
	char h1[ID_LEN + 1], h2[ID_LEN + 1], q1[ID_LEN + 1];
	const char *lo, *hi;

	assert_int_equal(spool_list(f->sp, 1, list_cb, &seen), 0);
	assert_int_equal(spool_list(f->sp, 0, list_cb, &seen), 0);
	commit_held(f, "1\r\n", h1);
	commit_queued(f, "2\r\n", q1);
	commit_held(f, "3\r\n", h2);
	/* things that are not messages are not listed */
	write_file(f, "hold", "junk", "x", 1);
	write_file(f, "hold", "0000000AB0000001.msg", "x", 1);
	write_file(f, "hold", ".0000000AB0000002.env.tmp", "x", 1);

	assert_int_equal(spool_list(f->sp, 1, list_cb, &seen), 2);
	lo = strcmp(h1, h2) < 0 ? h1 : h2;
	hi = lo == h1 ? h2 : h1;
	assert_string_equal(seen.ids[0], lo);	/* id order */
	assert_string_equal(seen.ids[1], hi);

	memset(&seen, 0, sizeof(seen));
	assert_int_equal(spool_list(f->sp, 0, list_cb, &seen), 1);
	assert_string_equal(seen.ids[0], q1);

	/* a non-zero return stops the walk */
	memset(&seen, 0, sizeof(seen));
	seen.stop_at = 1;
	assert_int_equal(spool_list(f->sp, 1, list_cb, &seen), 1);
	assert_int_equal(seen.n, 1);
}

static void
test_recover_skips_held(void **state)
{
	struct fixture *f = *state;
	struct recover_seen seen = { 0 };
	char held[ID_LEN + 1], queued[ID_LEN + 1], want[128];

	commit_held(f, "held\r\n", held);
	commit_queued(f, "queued\r\n", queued);
	assert_int_equal(spool_recover(f->sp, recover_cb, &seen), 1);
	assert_int_equal(seen.n, 1);
	assert_string_equal(seen.ids[0], queued);
	assert_false(seen_has(&seen, held));
	snprintf(want, sizeof(want), "%s.env %s.msg", held, held);
	assert_dir(f, "hold", want);
	assert_dir(f, "corrupt", "");
}

/*
 * Every state an interrupted move, a rename fallback or a collision can
 * leave, made by hand, and what recovery makes of it.
 */
static void
test_recover_repairs_moves(void **state)
{
	struct fixture *f = *state;
	struct recover_seen seen = { 0 };
	char rel[ID_LEN + 1], hld[ID_LEN + 1], lnk[ID_LEN + 1], dup[ID_LEN + 1];
	char both[ID_LEN + 1], orphan[ID_LEN + 1], nomsg[ID_LEN + 1];
	char bad[ID_LEN + 1], path[256], path2[256], name[64], want[1024];
	struct buf env = { 0 };
	struct envelope l;
	const char *err;

	/* a release cut after its first step: content in queue/, envelope
	 * still in hold/ -> stays held, content back next to its envelope */
	commit_held(f, "release cut\r\n", rel);
	move_file(f, "hold", "queue", rel, "msg");

	/* a hold cut after its first step: content in hold/, envelope in
	 * queue/ -> stays queued */
	commit_queued(f, "hold cut\r\n", hld);
	move_file(f, "queue", "hold", hld, "msg");

	/* content in both areas, the same file (link fallback), envelope in
	 * hold/ -> the hold/ copy stays, the other link goes */
	commit_held(f, "linked\r\n", lnk);
	snprintf(path, sizeof(path), "%s/hold/%s.msg", f->dir, lnk);
	snprintf(path2, sizeof(path2), "%s/queue/%s.msg", f->dir, lnk);
	assert_int_equal(link(path, path2), 0);

	/* content in both areas, different files, envelope in queue/ -> the
	 * queue/ copy stays, the other is kept in corrupt/ */
	commit_queued(f, "the real one\r\n", dup);
	snprintf(name, sizeof(name), "%s.msg", dup);
	write_file(f, "hold", name, "a stray copy\r\n", 14);

	/* an envelope in both areas: two messages claim one id -> the held
	 * pair is set aside, never delivered; the queued one goes on */
	commit_queued(f, "queued twin\r\n", both);
	snprintf(name, sizeof(name), "%s.env", both);
	read_file(f, "queue", name, &env);
	write_file(f, "hold", name, env.data, env.len);
	buf_free(&env);
	snprintf(name, sizeof(name), "%s.msg", both);
	write_file(f, "hold", name, "held twin\r\n", 11);

	/* content without envelope anywhere */
	fake_id(orphan, 0x21);
	snprintf(name, sizeof(name), "%s.msg", orphan);
	write_file(f, "hold", name, "orphan\r\n", 8);

	/* a held envelope without content anywhere */
	commit_held(f, "gone\r\n", nomsg);
	snprintf(path, sizeof(path), "%s/hold/%s.msg", f->dir, nomsg);
	assert_int_equal(unlink(path), 0);

	/* a held envelope that does not parse, with its content */
	fake_id(bad, 0x22);
	snprintf(name, sizeof(name), "%s.env", bad);
	write_file(f, "hold", name, "V 1\nI ", 6);
	snprintf(name, sizeof(name), "%s.msg", bad);
	write_file(f, "hold", name, "bad\r\n", 5);

	/* stray files of the hold area */
	write_file(f, "hold", ".0000000AB0000099.env.tmp", "V", 1);
	write_file(f, "hold", "junk", "x", 1);
	/* a stale pickup hint */
	write_file(f, "pickup", rel, "", 0);

	assert_int_equal(spool_recover(f->sp, recover_cb, &seen), 3);
	assert_true(seen_has(&seen, hld));
	assert_true(seen_has(&seen, dup));
	assert_true(seen_has(&seen, both));
	assert_false(seen_has(&seen, rel));
	assert_false(seen_has(&seen, lnk));

	assert_true(spool_file_exists(f, "hold", rel, "env"));
	assert_content(f, "hold", rel, "release cut\r\n");
	assert_false(spool_file_exists(f, "queue", rel, "msg"));

	assert_true(spool_file_exists(f, "queue", hld, "env"));
	assert_content(f, "queue", hld, "hold cut\r\n");
	assert_false(spool_file_exists(f, "hold", hld, "msg"));

	assert_content(f, "hold", lnk, "linked\r\n");
	assert_false(spool_file_exists(f, "queue", lnk, "msg"));

	assert_content(f, "queue", dup, "the real one\r\n");
	assert_false(spool_file_exists(f, "hold", dup, "msg"));

	assert_content(f, "queue", both, "queued twin\r\n");
	assert_false(spool_file_exists(f, "hold", both, "env"));
	assert_false(spool_file_exists(f, "hold", both, "msg"));

	assert_dir(f, "pickup", "");
	assert_dir(f, "tmp", "");
	/* what could not be a message is kept in corrupt/ */
	{
		static const char *const ext[] = { "msg", "env", "msg", "msg",
		    "env", "msg", "env" };
		const char *ids[] = { orphan, bad, bad, dup, both, both, nomsg };
		size_t i;

		list_dir(f, "corrupt", want, sizeof(want));
		for (i = 0; i < 7; i++)
			if (!spool_file_exists(f, "corrupt", ids[i], ext[i]))
				fail_msg("%s.%s not in corrupt/ (%s)", ids[i],
				    ext[i], want);
		assert_true(spool_file_exists(f, "corrupt", "junk", NULL));
		assert_int_equal(strlen(want), 7 * (ID_LEN + 5) + 4);
	}
	/* the held twin's content is in corrupt/, the stray copy too */
	snprintf(name, sizeof(name), "%s.msg", both);
	read_file(f, "corrupt", name, &env);
	assert_int_equal(env.len, 11);
	buf_free(&env);
	snprintf(name, sizeof(name), "%s.msg", dup);
	read_file(f, "corrupt", name, &env);
	assert_memory_equal(env.data, "a stray copy\r\n", 14);
	buf_free(&env);

	/* the repaired messages work: the held ones release, load */
	assert_int_equal(spool_load_held(f->sp, rel, &l, &err), 0);
	envelope_free(&l);
	assert_int_equal(spool_load(f->sp, hld, &l, &err), 0);
	envelope_free(&l);

	/* a second recovery finds the same and moves nothing */
	memset(&seen, 0, sizeof(seen));
	list_dir(f, "corrupt", want, sizeof(want));
	assert_int_equal(spool_recover(f->sp, recover_cb, &seen), 3);
	assert_dir(f, "corrupt", want);
}

/* A move repairs its message first: a cut release can be run again. */
static void
test_move_after_cut(void **state)
{
	struct fixture *f = *state;
	char id[ID_LEN + 1], id2[ID_LEN + 1], want[128], path[256];

	/* release cut after the content step: run it again */
	commit_held(f, "again\r\n", id);
	move_file(f, "hold", "queue", id, "msg");
	assert_int_equal(spool_release(f->sp, id), 0);
	snprintf(want, sizeof(want), "%s.env %s.msg", id, id);
	assert_dir(f, "queue", want);
	assert_dir(f, "hold", "");
	assert_content(f, "queue", id, "again\r\n");

	/* hold cut the other way round (envelope moved, content not: what a
	 * reordered crash could leave): the message is held; release works */
	commit_queued(f, "reordered\r\n", id2);
	move_file(f, "queue", "hold", id2, "env");
	assert_int_equal(spool_hold(f->sp, id2), -1);
	assert_int_equal(errno, ENOENT);	/* it is held already */
	snprintf(want, sizeof(want), "%s.env %s.msg", id2, id2);
	assert_dir(f, "hold", want);
	assert_int_equal(spool_release(f->sp, id2), 0);
	assert_content(f, "queue", id2, "reordered\r\n");

	/* envelope without content: not moved, said so */
	commit_held(f, "lost\r\n", id2);
	snprintf(path, sizeof(path), "%s/hold/%s.msg", f->dir, id2);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(spool_release(f->sp, id2), -1);
	assert_int_equal(errno, ENODATA);
	assert_true(spool_file_exists(f, "hold", id2, "env"));
	assert_false(spool_file_exists(f, "queue", id2, "env"));
	assert_dir(f, "corrupt", "");
}

/* Ids from the command line never reach a path. */
static void
test_id_validation(void **state)
{
	struct fixture *f = *state;
	static const char *bad[] = {
		"", "../x", "../../etc/passwd", "..", "0000000AB000000",
		"0000000AB00000001", "0000000ab0000001", "0000000AB000000G",
		"0000000AB000000/", "/000000AB0000001", "0000000AB0000001 ",
		"0000000AB0000001\n", "../queue/0000000",
	};
	struct envelope l;
	const char *err;
	char held[ID_LEN + 1], outside[256];
	off_t size;
	size_t i;

	commit_held(f, "x\r\n", held);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		if (spool_release(f->sp, bad[i]) != -1 || errno != EINVAL)
			fail_msg("release accepted '%s'", bad[i]);
		errno = 0;
		if (spool_hold(f->sp, bad[i]) != -1 || errno != EINVAL)
			fail_msg("hold accepted '%s'", bad[i]);
		errno = 0;
		if (spool_remove_held(f->sp, bad[i]) != -1 || errno != EINVAL)
			fail_msg("remove_held accepted '%s'", bad[i]);
		errno = 0;
		if (spool_notify(f->sp, bad[i]) != -1 || errno != EINVAL)
			fail_msg("notify accepted '%s'", bad[i]);
		errno = 0;
		if (spool_load_held(f->sp, bad[i], &l, &err) != -1 ||
		    errno != EINVAL)
			fail_msg("load_held accepted '%s'", bad[i]);
		errno = 0;
		if (spool_open_held_content(f->sp, bad[i], &size) != -1 ||
		    errno != EINVAL)
			fail_msg("open_held_content accepted '%s'", bad[i]);
		if (spool_remove(f->sp, bad[i]) != -1 ||
		    spool_open_content(f->sp, bad[i], &size) != -1)
			fail_msg("queue call accepted '%s'", bad[i]);
	}
	/* nothing was made or moved anywhere */
	assert_dir(f, "pickup", "");
	assert_dir(f, "queue", "");
	assert_dir(f, "corrupt", "");
	snprintf(outside, sizeof(outside), "%s/x", f->dir);
	assert_int_equal(access(outside, F_OK), -1);
	snprintf(outside, sizeof(outside), "%s/x", f->base);
	assert_int_equal(access(outside, F_OK), -1);
	assert_true(spool_file_exists(f, "hold", held, "env"));
}

static void
pickup_cb(const char *id, void *arg)
{
	struct recover_seen *s = arg;

	recover_cb(id, s);
}

static void
test_pickup(void **state)
{
	struct fixture *f = *state;
	struct recover_seen seen = { 0 };
	char held[ID_LEN + 1], queued[ID_LEN + 1];

	/* empty: nothing, and cheap */
	assert_int_equal(spool_pickup(f->sp, pickup_cb, &seen), 0);

	commit_held(f, "held\r\n", held);
	commit_queued(f, "q\r\n", queued);
	assert_int_equal(spool_release(f->sp, held), 0);
	assert_int_equal(spool_notify(f->sp, held), 0);
	assert_int_equal(spool_notify(f->sp, held), 0);	/* twice: one entry */
	assert_dir(f, "pickup", held);
	/* hints for things not in queue/ are dropped unreported */
	write_file(f, "pickup", "0000000AB0000077", "", 0);
	write_file(f, "pickup", "junk", "", 0);

	assert_int_equal(spool_pickup(f->sp, pickup_cb, &seen), 1);
	assert_int_equal(seen.n, 1);
	assert_string_equal(seen.ids[0], held);
	assert_dir(f, "pickup", "");
	assert_int_equal(spool_pickup(f->sp, pickup_cb, &seen), 0);
	assert_int_equal(seen.n, 1);

	/* recovery clears pickup/ (it reports all of queue/ anyway) */
	assert_int_equal(spool_notify(f->sp, queued), 0);
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(spool_recover(f->sp, recover_cb, &seen), 2);
	assert_dir(f, "pickup", "");
	assert_true(seen_has(&seen, held));
	assert_true(seen_has(&seen, queued));
}

static void
stop_loop(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

/* The running scheduler notices a released message within its 1 s pickup
 * timer, and ignores hints for messages it knows. */
static void
test_scheduler_pickup(void **state)
{
	struct fixture *f = *state;
	struct scheduler_params p = { .hostname = "mx.example.test",
	    .concurrency = 0, .retry_initial = 1, .retry_max = 2,
	    .max_lifetime = 3600 };
	struct event_base *base;
	struct scheduler *s;
	struct event *stop;
	struct timeval tv = { 1, 600000 };
	char known[ID_LEN + 1], held[ID_LEN + 1];

	/* concurrency 0: nothing is attempted, only scheduled */
	assert_non_null(base = event_base_new());
	assert_non_null(s = scheduler_new(base, f->sp, NULL, &p));
	commit_queued(f, "known\r\n", known);
	assert_int_equal(scheduler_add(s, known, time(NULL) + 3600), 0);
	commit_held(f, "held\r\n", held);
	assert_int_equal(scheduler_queued(s), 1);

	assert_int_equal(spool_release(f->sp, held), 0);
	assert_int_equal(spool_notify(f->sp, held), 0);
	assert_int_equal(spool_notify(f->sp, known), 0);
	write_file(f, "pickup", "0000000AB0000078", "", 0);
	assert_non_null(stop = evtimer_new(base, stop_loop, base));
	evtimer_add(stop, &tv);
	event_base_dispatch(base);

	assert_int_equal(scheduler_queued(s), 2);
	assert_int_equal(scheduler_active(s), 0);
	assert_dir(f, "pickup", "");
	event_free(stop);
	scheduler_free(s);
	event_base_free(base);
}

/* The command line's changes to queued messages: refused with EBUSY while
 * an attempt holds the content lock, done once it is released. */
static void
test_admin_queued(void **state)
{
	struct fixture *f = *state;
	struct envelope l;
	const char *err;
	char id[ID_LEN + 1], held[ID_LEN + 1], want[256];
	off_t size;
	int fd, fd2;

	commit_queued(f, "admin\r\n", id);
	commit_held(f, "h\r\n", held);
	assert_true((fd = spool_open_content(f->sp, id, &size)) >= 0);
	assert_int_equal(spool_attempt_lock(fd), 0);
	/* a second attempt lock (shared) is fine; an administrator's is not */
	assert_true((fd2 = spool_open_content(f->sp, id, &size)) >= 0);
	assert_int_equal(spool_attempt_lock(fd2), 0);
	close(fd2);
	errno = 0;
	assert_int_equal(spool_hold_as(f->sp, id, "why"), -1);
	assert_int_equal(errno, EBUSY);
	assert_int_equal(spool_hold(f->sp, id), -1);
	assert_int_equal(errno, EBUSY);
	assert_int_equal(spool_remove_queued(f->sp, id), -1);
	assert_int_equal(errno, EBUSY);
	assert_int_equal(spool_reschedule(f->sp, id, 42), -1);
	assert_int_equal(errno, EBUSY);
	snprintf(want, sizeof(want), "%s.env %s.msg", id, id);
	assert_dir(f, "queue", want);
	assert_int_equal(spool_load(f->sp, id, &l, &err), 0);
	assert_int_not_equal(l.next_attempt, 42);
	assert_null(l.hold_reason);
	envelope_free(&l);
	close(fd);

	/* idle: reschedule rewrites N only */
	assert_int_equal(spool_reschedule(f->sp, id, 42), 0);
	assert_int_equal(spool_load(f->sp, id, &l, &err), 0);
	assert_int_equal(l.next_attempt, 42);
	assert_int_equal(l.nrcpt, 2);
	assert_string_equal(l.rcpts[1].addr, "two@example.test");
	envelope_free(&l);

	/* hold with a reason: moved, with Q and X written */
	assert_int_equal(spool_hold_as(f->sp, id, "held by the administrator"), 0);
	assert_dir(f, "queue", "");
	assert_int_equal(spool_load_held(f->sp, id, &l, &err), 0);
	assert_string_equal(l.hold_reason, "held by the administrator");
	assert_true(l.hold_time > 0);
	assert_int_equal(l.next_attempt, 42);
	envelope_free(&l);
	/* not queued any more: ENOENT from every queued-only call */
	assert_int_equal(spool_hold_as(f->sp, id, "again"), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_remove_queued(f->sp, id), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_reschedule(f->sp, id, 1), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_remove_queued(f->sp, held), -1);
	assert_int_equal(errno, ENOENT);

	assert_int_equal(spool_release(f->sp, id), 0);
	assert_int_equal(spool_remove_queued(f->sp, id), 0);
	assert_dir(f, "queue", "");
	assert_int_equal(spool_load(f->sp, id, &l, &err), -1);
	assert_int_equal(errno, ENOENT);
	assert_true(spool_file_exists(f, "hold", held, "env"));

	/* content missing: ENODATA, nothing changed */
	commit_queued(f, "nodata\r\n", id);
	snprintf(want, sizeof(want), "%s/queue/%s.msg", f->dir, id);
	assert_int_equal(unlink(want), 0);
	assert_int_equal(spool_remove_queued(f->sp, id), -1);
	assert_int_equal(errno, ENODATA);
	assert_int_equal(spool_reschedule(f->sp, id, 1), -1);
	assert_int_equal(errno, ENODATA);
	assert_true(spool_file_exists(f, "queue", id, "env"));

	assert_int_equal(spool_remove_queued(f->sp, "../hold/00000000"), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(spool_reschedule(f->sp, "0000000AB000007", 1), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(spool_hold_as(f->sp, "x", "r"), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(spool_notify_pending(f->sp, "../x"), -1);
	assert_int_equal(errno, EINVAL);
}

static int pickup_all_seen;

static void
pickup_all_cb(const char *id, void *arg)
{
	struct recover_seen *s = arg;

	if (id == NULL)
		pickup_all_seen++;
	else
		recover_cb(id, s);
}

/* pickup/FLUSH-ALL: reported once, last, as NULL; pending until taken. */
static void
test_pickup_all(void **state)
{
	struct fixture *f = *state;
	struct recover_seen seen = { 0 };
	char id[ID_LEN + 1], want[64];

	pickup_all_seen = 0;
	commit_queued(f, "q\r\n", id);
	assert_int_equal(spool_notify_pending(f->sp, NULL), 0);
	assert_int_equal(spool_notify_pending(f->sp, id), 0);
	assert_int_equal(spool_notify_all(f->sp), 0);
	assert_int_equal(spool_notify_all(f->sp), 0);
	assert_int_equal(spool_notify(f->sp, id), 0);
	assert_int_equal(spool_notify_pending(f->sp, NULL), 1);
	assert_int_equal(spool_notify_pending(f->sp, id), 1);
	snprintf(want, sizeof(want), "%s %s", id, SPOOL_PICKUP_ALL);
	assert_dir(f, "pickup", want);
	/* FLUSH-ALL can never be taken for a queue id */
	assert_false(id_valid(SPOOL_PICKUP_ALL));
	assert_int_equal(spool_pickup(f->sp, pickup_all_cb, &seen), 2);
	assert_int_equal(pickup_all_seen, 1);
	assert_int_equal(seen.n, 1);
	assert_string_equal(seen.ids[0], id);
	assert_dir(f, "pickup", "");
	assert_int_equal(spool_notify_pending(f->sp, NULL), 0);
	assert_int_equal(spool_notify_pending(f->sp, id), 0);
	assert_int_equal(spool_pickup(f->sp, pickup_all_cb, &seen), 0);
	assert_int_equal(pickup_all_seen, 1);
}

/* A running scheduler forgets messages removed behind its back when their
 * turn comes (nothing goes to corrupt/), and pickup/FLUSH-ALL makes that
 * turn now. */
static void
test_scheduler_flush_vanished(void **state)
{
	struct fixture *f = *state;
	struct scheduler_params p = { .hostname = "mx.example.test",
	    .concurrency = 2, .retry_initial = 3600, .retry_max = 3600,
	    .max_lifetime = 86400 };
	struct event_base *base;
	struct scheduler *s;
	struct event *stop;
	struct timeval tv = { 1, 300000 };
	char a[ID_LEN + 1], b[ID_LEN + 1];

	assert_non_null(base = event_base_new());
	assert_non_null(s = scheduler_new(base, f->sp, NULL, &p));
	commit_queued(f, "a\r\n", a);
	commit_queued(f, "b\r\n", b);
	assert_int_equal(scheduler_add(s, a, time(NULL) + 3600), 0);
	assert_int_equal(scheduler_add(s, b, time(NULL) + 3600), 0);
	assert_int_equal(spool_remove_queued(f->sp, a), 0);
	assert_int_equal(spool_hold_as(f->sp, b, "r"), 0);
	assert_non_null(stop = evtimer_new(base, stop_loop, base));

	/* not due: still known */
	evtimer_add(stop, &tv);
	event_base_dispatch(base);
	assert_int_equal(scheduler_queued(s), 2);

	/* flushed: attempted now, found gone, forgotten quietly */
	assert_int_equal(spool_notify_all(f->sp), 0);
	evtimer_add(stop, &tv);
	event_base_dispatch(base);
	assert_int_equal(scheduler_queued(s), 0);
	assert_int_equal(scheduler_active(s), 0);
	assert_dir(f, "pickup", "");
	assert_dir(f, "corrupt", "");
	assert_true(spool_file_exists(f, "hold", b, "env"));
	assert_true(spool_file_exists(f, "hold", b, "msg"));
	event_free(stop);
	scheduler_free(s);
	event_base_free(base);
}

/* corrupt/ never loses a file to a second one of the same name. */
static void
test_corrupt_never_replaces(void **state)
{
	struct fixture *f = *state;
	struct recover_seen seen = { 0 };
	char id[ID_LEN + 1], name[64], want[128];
	struct buf b = { 0 };

	fake_id(id, 0x31);
	snprintf(name, sizeof(name), "%s.msg", id);
	write_file(f, "queue", name, "first\r\n", 7);
	write_file(f, "hold", name, "second\r\n", 8);
	assert_int_equal(spool_recover(f->sp, recover_cb, &seen), 0);
	snprintf(want, sizeof(want), "%s.msg %s.msg.1", id, id);
	assert_dir(f, "corrupt", want);
	read_file(f, "corrupt", name, &b);
	snprintf(name, sizeof(name), "%s.msg.1", id);
	read_file(f, "corrupt", name, &b);
	assert_int_equal(b.len, 15);	/* both kept */
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_creates_dirs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_and_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_empty_and_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ids_unique, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_keeps_good_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_unexpected_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quarantine, setup, teardown),
		cmocka_unit_test(test_envelope_parse_good),
		cmocka_unit_test(test_envelope_parse_refuses),
		cmocka_unit_test(test_envelope_parse_strict_syntax),
		cmocka_unit_test(test_envelope_hold_records),
		cmocka_unit_test_setup_teardown(test_commit_held, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_and_hold, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_held, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_skips_held, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_repairs_moves, setup, teardown),
		cmocka_unit_test_setup_teardown(test_move_after_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(test_id_validation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pickup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scheduler_pickup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_never_replaces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_admin_queued, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pickup_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scheduler_flush_vanished, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
