/* Tests for gateway/authdb.c and authdb_check.c: the users file, hashing,
 * synchronous and asynchronous (worker thread) password checks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "gateway/authdb.h"

/* A hash computed once for all tests (yescrypt costs ~10-50 ms). */
static char hash_pw[512];

static struct authdb *
load_bytes(const char *text, size_t n, char *err, size_t errlen)
{
	char path[64];
	struct authdb *db;
	FILE *fp;
	int fd;

	snprintf(path, sizeof(path), "/tmp/test_authdb.XXXXXX");
	assert_true((fd = mkstemp(path)) != -1);
	assert_non_null(fp = fdopen(fd, "w"));
	assert_int_equal(fwrite(text, 1, n, fp), n);
	fclose(fp);
	db = authdb_load(path, err, errlen);
	unlink(path);
	return db;
}

static struct authdb *
load_text(const char *text, char *err, size_t errlen)
{
	return load_bytes(text, strlen(text), err, errlen);
}

/* tmpl with every "HASH" replaced by the test hash */
static void
subst(const char *tmpl, char *out, size_t n)
{
	const char *p;
	size_t o = 0;

	while ((p = strstr(tmpl, "HASH")) != NULL) {
		o += (size_t)snprintf(out + o, n - o, "%.*s%s", (int)(p - tmpl),
		    tmpl, hash_pw);
		tmpl = p + 4;
	}
	snprintf(out + o, n - o, "%s", tmpl);
}

static int
setup(void **state)
{
	if (authdb_hash("correct horse", hash_pw, sizeof(hash_pw)) == -1)
		return -1;
	return 0;
}

static void
test_hash_format(void **state)
{
	char h2[512];

	/* yescrypt where libxcrypt has it (Debian 12 does) */
	assert_true(strncmp(hash_pw, "$y$", 3) == 0 || strncmp(hash_pw, "$6$", 3) == 0);
	/* salted: the same password hashes differently */
	assert_int_equal(authdb_hash("correct horse", h2, sizeof(h2)), 0);
	assert_string_not_equal(hash_pw, h2);
	/* too small an output buffer fails cleanly */
	assert_int_equal(authdb_hash("x", h2, 10), -1);
}

static void
test_load_good(void **state)
{
	char text[2048], err[512];
	struct authdb *db;

	snprintf(text, sizeof(text),
	    "# users\n"
	    "\n"
	    "alice:%s:Example.TEST,other.test\n"
	    "  bob@example.test:%s:example.test  \r\n"
	    "# end\n", hash_pw, hash_pw);
	db = load_text(text, err, sizeof(err));
	if (db == NULL)
		fail_msg("load failed: %s", err);
	assert_int_equal(authdb_count(db), 2);
	assert_string_equal(authdb_name(db, 0), "alice");
	assert_string_equal(authdb_name(db, 1), "bob@example.test");
	assert_null(authdb_name(db, 2));
	assert_string_equal(authdb_domains(db, "alice"), "example.test,other.test");
	assert_string_equal(authdb_domains(db, "ALICE"), "example.test,other.test");
	assert_null(authdb_domains(db, "carol"));
	assert_int_equal(authdb_may_send(db, "alice", "OTHER.test"), 1);
	assert_int_equal(authdb_may_send(db, "alice", "example.test"), 1);
	assert_int_equal(authdb_may_send(db, "alice", "test"), 0);
	assert_int_equal(authdb_may_send(db, "alice", "ample.test"), 0);
	assert_int_equal(authdb_may_send(db, "alice", "example.test.evil"), 0);
	assert_int_equal(authdb_may_send(db, "alice", ""), 0);
	assert_int_equal(authdb_may_send(db, "bob@example.test", "other.test"), 0);
	assert_int_equal(authdb_may_send(db, "carol", "example.test"), 0);
	authdb_free(db);

	/* an empty file is a valid file without users */
	db = load_text("# nobody yet\n", err, sizeof(err));
	assert_non_null(db);
	assert_int_equal(authdb_count(db), 0);
	assert_int_equal(authdb_verify(db, "alice", "correct horse"), 0);
	authdb_free(db);
}

static void
test_load_bad(void **state)
{
	static const struct { const char *fmt; const char *why; } v[] = {
		{ "alice:HASH\n", "expected name:hash" },
		{ "alice\n", "expected name:hash" },
		{ "al ice:HASH:example.test\n", "bad user name" },
		{ ":HASH:example.test\n", "bad user name" },
		{ "alice:HASH:\n", "no From domains" },
		{ "alice:HASH:exa mple.test\n", "not a domain" },
		{ "alice:HASH:example.test,,x.test\n", "bad domain list" },
		{ "alice:HASH:example.test,\n", "bad domain list" },
		{ "alice:HASH:[127.0.0.1]\n", "not a domain" },
		{ "alice:plaintext:example.test\n", "not a crypt(3) hash" },
		{ "alice:abJnggxhB/yWI:example.test\n", "not a crypt(3) hash" },
		{ "alice:$1$abcdefgh$0123456789012345678901:example.test\n",
		    "legacy hash method" },
		{ "alice:$zz$abcdefghijkl$xyz:example.test\n", "not supported" },
		{ "alice:HASH:example.test\nALICE:HASH:x.test\n", "listed twice" },
	};
	char text[2048], err[512];
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct authdb *db;

		subst(v[i].fmt, text, sizeof(text));
		db = load_text(text, err, sizeof(err));
		if (db != NULL)
			fail_msg("case %zu loaded: %s", i, text);
		if (strstr(err, v[i].why) == NULL)
			fail_msg("case %zu: error '%s' lacks '%s'", i, err, v[i].why);
		/* file:line */
		if (strstr(err, "/tmp/test_authdb.") == NULL ||
		    strstr(err, i == 13 ? ":2: " : ":1: ") == NULL)
			fail_msg("case %zu: error '%s' does not name file:line", i, err);
	}
	/* a later bad line names its own line */
	snprintf(text, sizeof(text), "# c\nalice:%s:example.test\n\nbob:x:y.test\n",
	    hash_pw);
	assert_null(load_text(text, err, sizeof(err)));
	assert_non_null(strstr(err, ":4: "));
	/* NUL in a line */
	assert_null(load_bytes("alice\0:x:y\n", 11, err, sizeof(err)));
	assert_non_null(strstr(err, ":1: "));
	/* unreadable */
	assert_null(authdb_load("/nonexistent/users", err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/users: cannot open"));
}

static void
test_verify(void **state)
{
	char text[1024], err[512];
	struct authdb *db;

	snprintf(text, sizeof(text), "alice:%s:example.test\n", hash_pw);
	assert_non_null(db = load_text(text, err, sizeof(err)));
	assert_int_equal(authdb_verify(db, "alice", "correct horse"), 1);
	assert_int_equal(authdb_verify(db, "Alice", "correct horse"), 1);
	assert_int_equal(authdb_verify(db, "alice", "correct horse "), 0);
	assert_int_equal(authdb_verify(db, "alice", "Correct horse"), 0);
	assert_int_equal(authdb_verify(db, "alice", ""), 0);
	/* an unknown user fails even with another user's password */
	assert_int_equal(authdb_verify(db, "mallory", "correct horse"), 0);
	authdb_free(db);
}

/* ---- the asynchronous checker ---- */

struct result {
	int calls;
	int result;
	int *pending;
	struct event_base *base;
};

static void
on_result(int result, void *arg)
{
	struct result *r = arg;

	r->calls++;
	r->result = result;
	if (--*r->pending == 0)
		event_base_loopbreak(r->base);
}

static void
test_async(void **state)
{
	static const struct { const char *user, *pass; int want; } v[] = {
		{ "alice", "correct horse", 1 },
		{ "alice", "wrong", 0 },
		{ "nobody", "correct horse", 0 },	/* unknown user */
		{ "alice", "correct horse", 1 },
		{ "ALICE", "correct horse", 1 },
		{ "bob", "", 0 },
	};
	struct result res[sizeof(v) / sizeof(v[0])];
	struct event_base *base = event_base_new();
	struct authdb_checker *ck;
	struct authdb *db;
	struct timeval limit = { 30, 0 };
	char text[1024], err[512], pw[32];
	int pending = 0;
	size_t i;

	snprintf(text, sizeof(text), "alice:%s:example.test\n", hash_pw);
	assert_non_null(db = load_text(text, err, sizeof(err)));
	assert_non_null(ck = authdb_checker_new(base, 2, 16));
	memset(res, 0, sizeof(res));
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		res[i].pending = &pending;
		res[i].base = base;
		/* the password buffer may be reused at once */
		snprintf(pw, sizeof(pw), "%s", v[i].pass);
		assert_non_null(authdb_check_start(ck, db, v[i].user, pw,
		    on_result, &res[i]));
		memset(pw, 'x', sizeof(pw));
		pending++;
	}
	/* nothing is answered from inside check_start */
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		assert_int_equal(res[i].calls, 0);
	/* the database may go away once the checks started */
	authdb_free(db);
	event_base_loopexit(base, &limit);
	event_base_dispatch(base);
	assert_int_equal(pending, 0);
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		assert_int_equal(res[i].calls, 1);
		if (res[i].result != v[i].want)
			fail_msg("check %zu (%s): got %d, want %d", i, v[i].user,
			    res[i].result, v[i].want);
	}
	authdb_checker_free(ck);
	event_base_free(base);
}

static void
test_async_cancel_and_bounds(void **state)
{
	struct event_base *base = event_base_new();
	struct authdb_checker *ck;
	struct authdb_check *c[4];
	struct authdb *db;
	struct result res[4], last;
	struct timeval limit = { 30, 0 };
	char text[1024], err[512], longpw[300];
	int pending = 0, i;

	snprintf(text, sizeof(text), "alice:%s:example.test\n", hash_pw);
	assert_non_null(db = load_text(text, err, sizeof(err)));
	/* one worker, at most two waiting */
	assert_non_null(ck = authdb_checker_new(base, 1, 2));
	memset(res, 0, sizeof(res));
	memset(&last, 0, sizeof(last));
	for (i = 0; i < 4; i++) {
		res[i].pending = &pending;
		res[i].base = base;
		c[i] = authdb_check_start(ck, db, "alice", "correct horse",
		    on_result, &res[i]);
		if (c[i])
			pending++;
	}
	/* One check at most is in the worker's hands (a hash takes
	 * milliseconds), two wait: the first two always fit, the fourth never
	 * does, the third fits if the worker took the first already. */
	assert_non_null(c[0]);
	assert_non_null(c[1]);
	assert_null(c[3]);
	/* cancelled checks, waiting or in progress, are never answered */
	authdb_check_cancel(c[0]);
	authdb_check_cancel(c[1]);
	pending -= 2;
	/* room again after a cancel */
	c[3] = authdb_check_start(ck, db, "alice", "bad", on_result, &res[3]);
	assert_non_null(c[3]);
	pending++;
	/* passwords longer than AUTH can carry are refused */
	memset(longpw, 'p', sizeof(longpw) - 1);
	longpw[sizeof(longpw) - 1] = '\0';
	assert_null(authdb_check_start(ck, db, "alice", longpw, on_result, &last));
	event_base_loopexit(base, &limit);
	event_base_dispatch(base);
	assert_int_equal(pending, 0);
	assert_int_equal(res[0].calls, 0);
	assert_int_equal(res[1].calls, 0);
	if (c[2]) {
		assert_int_equal(res[2].calls, 1);
		assert_int_equal(res[2].result, 1);
	}
	assert_int_equal(res[3].calls, 1);
	assert_int_equal(res[3].result, 0);
	assert_int_equal(last.calls, 0);
	/* checks still queued at free are dropped without callbacks */
	res[0].calls = 0;
	assert_non_null(authdb_check_start(ck, db, "alice", "x", on_result, &res[0]));
	assert_non_null(authdb_check_start(ck, db, "alice", "y", on_result, &res[0]));
	authdb_checker_free(ck);
	assert_int_equal(res[0].calls, 0);
	authdb_free(db);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_format),
		cmocka_unit_test(test_load_good),
		cmocka_unit_test(test_load_bad),
		cmocka_unit_test(test_verify),
		cmocka_unit_test(test_async),
		cmocka_unit_test(test_async_cancel_and_bounds),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
