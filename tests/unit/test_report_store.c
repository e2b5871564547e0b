/*
 * Tests for report/store.c and report/recorder.c: creation, reopening and
 * refusals (newer schema, missing file read-only, garbage, a foreign
 * database), aggregation of evaluations into rows (what merges and what
 * does not, the period's bounds, the latest policy), exact round trip of
 * odd bytes, the report bookkeeping, retention, rua destination
 * suppression, imported reports and their summary, and the recorder
 * thread fed from two threads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "report/recorder.h"
#include "report/store.h"

struct fixture {
	char dir[64];
	char path[128];		/* dir/reports.db, absent before the test */
	char err[512];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_report_store.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/reports.db", f->dir);
	*state = f;
	return 0;
}

static int
rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	nftw(f->dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* ---- building evaluations ---- */

static void
policy_init(struct report_policy *p, const char *domain, const char *pval)
{
	memset(p, 0, sizeof(*p));
	p->domain = domain;
	p->discovery_method = "treewalk";
	p->p = pval;
	p->sp = "";
	p->np = "";
	p->fo = "1";
	p->adkim = "r";
	p->aspf = "r";
	p->testing = "n";
	p->rua = "mailto:dmarc@example.com";
	p->ri = 86400;
}

static void
row_init(struct report_row *r, long long t, const char *ip)
{
	memset(r, 0, sizeof(*r));
	r->time = t;
	r->source_ip = ip;
	r->count = 1;
	r->disposition = "none";
	r->dkim_aligned = 1;
	r->spf_aligned = 0;
	r->header_from = "example.com";
	r->envelope_from = "example.com";
	r->envelope_to = "example.net";
	r->dkim[0].domain = "example.com";
	r->dkim[0].selector = "sel1";
	r->dkim[0].result = "pass";
	r->dkim[0].human_result = "";
	r->ndkim = 1;
	r->spf_domain = "example.com";
	r->spf_scope = "mfrom";
	r->spf_result = "pass";
}

/* ---- collecting what the store hands out ---- */

struct got_row {
	char *ip, *disposition, *envelope_to, *header_from;
	long long count, time;
	int dkim_aligned, spf_aligned;
	size_t ndkim, nreasons;
	char *dk[REPORT_MAX_DKIM][4];
	char *rs[REPORT_MAX_REASONS][2];
};

struct got {
	struct got_row v[64];
	size_t n;
	int npolicy;
	char *pdomain, *p, *rua;
	int ri;
	int stop_after;		/* cb returns 7 after that many rows, 0 never */
};

static char *
xdup(const char *s)
{
	char *d;

	assert_non_null(s);
	assert_non_null(d = strdup(s));
	return d;
}

static void
got_policy(const struct report_policy *p, void *arg)
{
	struct got *g = arg;

	assert_int_equal(g->n, 0);	/* before the rows */
	g->npolicy++;
	g->pdomain = xdup(p->domain);
	g->p = xdup(p->p);
	g->rua = xdup(p->rua);
	g->ri = p->ri;
}

static int
got_row(const struct report_row *r, void *arg)
{
	struct got *g = arg;
	struct got_row *x;
	size_t i;

	assert_true(g->n < 64);
	x = &g->v[g->n++];
	x->ip = xdup(r->source_ip);
	x->disposition = xdup(r->disposition);
	x->envelope_to = xdup(r->envelope_to);
	x->header_from = xdup(r->header_from);
	x->count = r->count;
	x->time = r->time;
	x->dkim_aligned = r->dkim_aligned;
	x->spf_aligned = r->spf_aligned;
	assert_true(r->ndkim <= REPORT_MAX_DKIM);
	assert_true(r->nreasons <= REPORT_MAX_REASONS);
	x->ndkim = r->ndkim;
	x->nreasons = r->nreasons;
	for (i = 0; i < r->ndkim; i++) {
		x->dk[i][0] = xdup(r->dkim[i].domain);
		x->dk[i][1] = xdup(r->dkim[i].selector);
		x->dk[i][2] = xdup(r->dkim[i].result);
		x->dk[i][3] = xdup(r->dkim[i].human_result);
	}
	for (i = 0; i < r->nreasons; i++) {
		x->rs[i][0] = xdup(r->reasons[i].type);
		x->rs[i][1] = xdup(r->reasons[i].comment);
	}
	if (g->stop_after && g->n == (size_t)g->stop_after)
		return 7;
	return 0;
}

static void
got_free(struct got *g)
{
	size_t i, j;

	for (i = 0; i < g->n; i++) {
		struct got_row *x = &g->v[i];

		free(x->ip);
		free(x->disposition);
		free(x->envelope_to);
		free(x->header_from);
		for (j = 0; j < x->ndkim; j++) {
			free(x->dk[j][0]);
			free(x->dk[j][1]);
			free(x->dk[j][2]);
			free(x->dk[j][3]);
		}
		for (j = 0; j < x->nreasons; j++) {
			free(x->rs[j][0]);
			free(x->rs[j][1]);
		}
	}
	free(g->pdomain);
	free(g->p);
	free(g->rua);
	memset(g, 0, sizeof(*g));
}

static int
rows(struct report_store *st, const char *domain, long long begin,
    long long end, struct got *g, char *err, size_t errlen)
{
	got_free(g);
	return report_store_rows(st, domain, begin, end, got_policy, got_row,
	    g, err, errlen);
}

static struct report_store *
open_rw(struct fixture *f)
{
	struct report_store *st;

	st = report_store_open(f->path, 0, f->err, sizeof(f->err));
	if (st == NULL)
		fail_msg("open: %s", f->err);
	return st;
}

static void
add(struct fixture *f, struct report_store *st, const struct report_policy *p,
    const struct report_row *r)
{
	if (report_store_add(st, p, r, f->err, sizeof(f->err)) != 0)
		fail_msg("add: %s", f->err);
}

/* Runs one SQL statement on the file directly (not through the store). */
static void
raw_sql(const char *path, const char *sql)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	sqlite3_close(db);
}

static int
raw_version(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	int v;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s,
	    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static void
write_file(const char *path, const void *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd != -1);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	close(fd);
}

/* ---- open, create, refuse ---- */

static void
test_open_create_reopen(void **state)
{
	struct fixture *f = *state;
	struct report_store *st;
	struct stat sb;
	sqlite3 *db;
	sqlite3_stmt *s;

	assert_int_equal(stat(f->path, &sb), -1);
	st = open_rw(f);
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 077, 0);	/* 0600 */
	report_store_close(st);

	/* WAL journal and a schema version, as seen from outside */
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s,
	    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
	sqlite3_finalize(s);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s,
	    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_true(sqlite3_column_int(s, 0) >= 1);
	sqlite3_finalize(s);
	sqlite3_close(db);

	/* again, and read-only */
	st = open_rw(f);
	report_store_close(st);
	st = report_store_open(f->path, 1, f->err, sizeof(f->err));
	if (st == NULL)
		fail_msg("read-only open: %s", f->err);
	report_store_close(st);
	report_store_close(NULL);
}

static void
test_schema_newer_refused(void **state)
{
	struct fixture *f = *state;
	struct report_store *st;

	report_store_close(open_rw(f));
	raw_sql(f->path, "PRAGMA user_version = 99");
	f->err[0] = '\0';
	assert_null(report_store_open(f->path, 0, f->err, sizeof(f->err)));
	assert_non_null(strstr(f->err, "newer"));
	assert_non_null(strstr(f->err, f->path));
	assert_null(report_store_open(f->path, 1, f->err, sizeof(f->err)));
	assert_non_null(strstr(f->err, "newer"));
	/* never overwritten: still 99 after the refusals */
	assert_int_equal(raw_version(f->path), 99);
	raw_sql(f->path, "PRAGMA user_version = 1");
	st = open_rw(f);
	report_store_close(st);
}

static void
test_readonly_missing(void **state)
{
	struct fixture *f = *state;
	struct stat sb;
	char bad[192];

	f->err[0] = '\0';
	assert_null(report_store_open(f->path, 1, f->err, sizeof(f->err)));
	assert_non_null(strstr(f->err, f->path));
	assert_int_equal(stat(f->path, &sb), -1);	/* not created */
	assert_int_equal(errno, ENOENT);

	/* a directory that does not exist: refused, read-write too */
	snprintf(bad, sizeof(bad), "%s/no/such/dir.db", f->dir);
	assert_null(report_store_open(bad, 0, f->err, sizeof(f->err)));
	assert_non_null(strstr(f->err, "cannot create"));

	/* an empty file is no store when read-only */
	write_file(f->path, "", 0);
	assert_null(report_store_open(f->path, 1, f->err, sizeof(f->err)));
	assert_non_null(strstr(f->err, "no schema"));
}

static void
test_corrupt_file(void **state)
{
	struct fixture *f = *state;
	struct report_store *st;
	struct report_policy p;
	struct report_row r;
	struct got g = { 0 };
	unsigned char junk[8192];
	struct stat sb;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)(i * 131 + 7);
	memcpy(junk, "this is not a database at all\n", 30);
	write_file(f->path, junk, sizeof(junk));
	f->err[0] = '\0';
	assert_null(report_store_open(f->path, 0, f->err, sizeof(f->err)));
	assert_non_null(strstr(f->err, "not a database"));
	assert_null(report_store_open(f->path, 1, f->err, sizeof(f->err)));
	assert_non_null(strstr(f->err, "not a database"));
	/* left as it was */
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_size, sizeof(junk));

	/* some other program's database: not taken over */
	unlink(f->path);
	raw_sql(f->path, "CREATE TABLE t(x)");
	assert_null(report_store_open(f->path, 0, f->err, sizeof(f->err)));
	assert_non_null(strstr(f->err, "not a report store"));

	/* a store whose pages were overwritten: an error, not a crash */
	unlink(f->path);
	st = open_rw(f);
	policy_init(&p, "example.com", "none");
	for (i = 0; i < 200; i++) {
		row_init(&r, 1000 + (long long)i, i % 2 ? "192.0.2.1" :
		    "2001:db8::1");
		add(f, st, &p, &r);
	}
	report_store_close(st);
	{
		int fd = open(f->path, O_WRONLY);

		assert_true(fd != -1);
		assert_true(fstat(fd, &sb) == 0 && sb.st_size > 8192);
		/* every page after the first (the schema) */
		for (i = 4096; i + sizeof(junk) <= (size_t)sb.st_size;
		    i += sizeof(junk))
			assert_int_equal(pwrite(fd, junk, sizeof(junk),
			    (off_t)i), (ssize_t)sizeof(junk));
		close(fd);
	}
	f->err[0] = '\0';
	st = report_store_open(f->path, 0, f->err, sizeof(f->err));
	if (st == NULL) {
		assert_non_null(strstr(f->err, f->path));
		return;
	}
	rc = rows(st, "example.com", 0, 5000, &g, f->err, sizeof(f->err));
	assert_int_equal(rc, -1);
	assert_non_null(strstr(f->err, "malformed"));
	got_free(&g);
	report_store_close(st);
}

/* ---- receiver side ---- */

static void
test_rows_aggregation(void **state)
{
	struct fixture *f = *state;
	struct report_store *st = open_rw(f);
	struct report_policy p, pq, pr, pn, other;
	struct report_row r;
	struct got g = { 0 };
	const char *ip1 = "192.0.2.1", *ip2 = "2001:db8::2";
	long long t;

	policy_init(&p, "example.com", "none");
	policy_init(&pr, "example.com", "reject");
	policy_init(&pq, "example.com", "quarantine");
	pq.rua = "mailto:q@example.com";
	pq.ri = 3600;
	policy_init(&pn, "example.com", "none");
	policy_init(&other, "example.org", "reject");

	/* the two latest first: the latest is by time, then by insertion */
	row_init(&r, 1999, ip1);
	add(f, st, &pr, &r);
	add(f, st, &pq, &r);
	/* identical evaluations: one row */
	for (t = 1000; t < 1003; t++) {
		row_init(&r, t, ip1);
		add(f, st, &pn, &r);
	}
	/* outside [1000, 2000): not counted */
	row_init(&r, 999, ip1);
	add(f, st, &pr, &r);
	row_init(&r, 2000, ip1);
	add(f, st, &pr, &r);
	/* another policy domain */
	row_init(&r, 1500, ip1);
	add(f, st, &other, &r);
	/* differing in one thing each: rows of their own */
	row_init(&r, 1100, ip1);
	r.dkim[0].selector = "sel2";
	add(f, st, &p, &r);
	row_init(&r, 1100, ip1);
	r.envelope_to = "example.org";
	add(f, st, &p, &r);
	row_init(&r, 1100, ip1);
	r.reasons[0].type = "local_policy";
	r.reasons[0].comment = "";
	r.nreasons = 1;
	add(f, st, &p, &r);
	add(f, st, &p, &r);
	row_init(&r, 1100, ip1);
	r.reasons[0].type = "local_policy";
	r.reasons[0].comment = "forwarded";
	r.nreasons = 1;
	add(f, st, &p, &r);
	row_init(&r, 1200, ip2);
	add(f, st, &p, &r);
	add(f, st, &p, &r);
	row_init(&r, 1300, ip1);
	r.ndkim = 0;
	add(f, st, &p, &r);

	assert_int_equal(rows(st, "example.com", 1000, 2000, &g, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(g.npolicy, 1);
	assert_string_equal(g.pdomain, "example.com");
	assert_string_equal(g.p, "quarantine");
	assert_string_equal(g.rua, "mailto:q@example.com");
	assert_int_equal(g.ri, 3600);
	assert_int_equal(g.n, 7);
	/* count descending, then source_ip */
	assert_string_equal(g.v[0].ip, ip1);
	assert_int_equal(g.v[0].count, 5);	/* 1000-1002 and 1999 twice */
	assert_int_equal(g.v[0].ndkim, 1);
	assert_string_equal(g.v[0].dk[0][1], "sel1");
	assert_int_equal(g.v[0].nreasons, 0);
	assert_int_equal(g.v[0].time, 0);
	assert_int_equal(g.v[0].dkim_aligned, 1);
	assert_int_equal(g.v[0].spf_aligned, 0);
	assert_string_equal(g.v[0].disposition, "none");
	/* two rows of 2: ip1 (reason) sorts before ip2 */
	assert_int_equal(g.v[1].count, 2);
	assert_string_equal(g.v[1].ip, ip1);
	assert_int_equal(g.v[1].nreasons, 1);
	assert_string_equal(g.v[1].rs[0][0], "local_policy");
	assert_string_equal(g.v[1].rs[0][1], "");
	assert_int_equal(g.v[2].count, 2);
	assert_string_equal(g.v[2].ip, ip2);
	for (t = 3; t < 7; t++)
		assert_int_equal(g.v[t].count, 1);

	/* the bounds move: 999 and 2000 come in, the latest is 2000 */
	assert_int_equal(rows(st, "example.com", 999, 2001, &g, f->err,
	    sizeof(f->err)), 0);
	assert_string_equal(g.p, "reject");
	assert_int_equal(g.v[0].count, 7);

	/* nothing in range: 0, no callback */
	assert_int_equal(rows(st, "example.com", 5000, 6000, &g, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(g.npolicy, 0);
	assert_int_equal(g.n, 0);
	assert_int_equal(rows(st, "nowhere.example", 0, 6000, &g, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(g.npolicy, 0);

	/* the other domain alone */
	assert_int_equal(rows(st, "example.org", 0, 6000, &g, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.p, "reject");

	/* a callback stops the walk: its value comes back */
	got_free(&g);
	g.stop_after = 2;
	assert_int_equal(report_store_rows(st, "example.com", 1000, 2000,
	    NULL, got_row, &g, f->err, sizeof(f->err)), 7);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.npolicy, 0);	/* policy_cb may be NULL */
	got_free(&g);

	/* bad evaluations are refused, not stored */
	row_init(&r, 1000, ip1);
	r.ndkim = REPORT_MAX_DKIM + 1;
	assert_int_equal(report_store_add(st, &p, &r, f->err,
	    sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, "DKIM"));
	row_init(&r, 1000, ip1);
	r.nreasons = REPORT_MAX_REASONS + 1;
	assert_int_equal(report_store_add(st, &p, &r, f->err,
	    sizeof(f->err)), -1);
	policy_init(&p, "", "none");
	row_init(&r, 1000, ip1);
	assert_int_equal(report_store_add(st, &p, &r, f->err,
	    sizeof(f->err)), -1);
	/* a batch with one bad evaluation stores none of it */
	{
		const struct report_policy *pp[2] = { &pn, &p };
		const struct report_row *rr[2] = { &r, &r };

		assert_int_equal(report_store_add_many(st, pp, rr, 2, f->err,
		    sizeof(f->err)), -1);
	}
	assert_int_equal(rows(st, "example.com", 1000, 2000, &g, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(g.v[0].count, 5);
	got_free(&g);

	/* time 0 is now */
	policy_init(&p, "now.example", "none");
	row_init(&r, 0, ip1);
	t = (long long)time(NULL);
	add(f, st, &p, &r);
	assert_int_equal(rows(st, "now.example", t - 5, t + 5, &g, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(g.n, 1);
	got_free(&g);
	report_store_close(st);
}

static void
test_odd_bytes_round_trip(void **state)
{
	struct fixture *f = *state;
	struct report_store *st = open_rw(f);
	static const char odd1[] = "a:b;c|d,e\\f 0:1:\x01\x7f\xff\n%3A\"'";
	static const char odd2[] = "12:x4:pass0:";
	struct report_policy p;
	struct report_row r;
	struct got g = { 0 };
	size_t i;

	policy_init(&p, "example.com", "none");
	/* three results whose naive joining would look alike */
	row_init(&r, 1000, "192.0.2.1");
	r.dkim[0].domain = odd1;
	r.dkim[0].selector = odd2;
	r.dkim[0].result = "fail";
	r.dkim[0].human_result = "bad: sig; 3:x";
	r.dkim[1].domain = "";
	r.dkim[1].selector = "";
	r.dkim[1].result = "none";
	r.dkim[1].human_result = "";
	r.dkim[2].domain = "a";
	r.dkim[2].selector = "b:c";
	r.dkim[2].result = "pass";
	r.dkim[2].human_result = "";
	r.ndkim = 3;
	r.reasons[0].type = "other";
	r.reasons[0].comment = "1:x2:yy";
	r.nreasons = 1;
	r.header_from = "\xc3\xa9xample.com";
	add(f, st, &p, &r);
	/* "a:b" + "c" against "a" + "b:c": not the same */
	r.dkim[2].domain = "a:b";
	r.dkim[2].selector = "c";
	add(f, st, &p, &r);
	add(f, st, &p, &r);
	/* "other" with comment "x" against two reasons folded together */
	row_init(&r, 1001, "192.0.2.1");
	r.reasons[0].type = "other";
	r.reasons[0].comment = "1:x";
	r.nreasons = 1;
	add(f, st, &p, &r);
	row_init(&r, 1001, "192.0.2.1");
	r.reasons[0].type = "other";
	r.reasons[0].comment = "";
	r.reasons[1].type = "x";
	r.reasons[1].comment = "";
	r.nreasons = 2;
	add(f, st, &p, &r);
	/* all REPORT_MAX_DKIM results kept */
	row_init(&r, 1002, "192.0.2.9");
	for (i = 0; i < REPORT_MAX_DKIM; i++) {
		r.dkim[i].domain = "example.com";
		r.dkim[i].selector = i % 2 ? "odd" : "even";
		r.dkim[i].result = "pass";
		r.dkim[i].human_result = "";
	}
	r.ndkim = REPORT_MAX_DKIM;
	add(f, st, &p, &r);

	assert_int_equal(rows(st, "example.com", 0, 5000, &g, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(g.n, 5);
	assert_int_equal(g.v[0].count, 2);
	assert_int_equal(g.v[0].ndkim, 3);
	assert_string_equal(g.v[0].dk[0][0], odd1);
	assert_string_equal(g.v[0].dk[0][1], odd2);
	assert_string_equal(g.v[0].dk[0][2], "fail");
	assert_string_equal(g.v[0].dk[0][3], "bad: sig; 3:x");
	assert_string_equal(g.v[0].dk[1][0], "");
	assert_string_equal(g.v[0].dk[1][1], "");
	assert_string_equal(g.v[0].dk[1][2], "none");
	assert_string_equal(g.v[0].dk[2][0], "a:b");
	assert_string_equal(g.v[0].dk[2][1], "c");
	assert_int_equal(g.v[0].nreasons, 1);
	assert_string_equal(g.v[0].rs[0][1], "1:x2:yy");
	assert_string_equal(g.v[0].header_from, "\xc3\xa9xample.com");
	for (i = 1; i < g.n; i++) {
		assert_int_equal(g.v[i].count, 1);
		if (g.v[i].ndkim == 3) {
			assert_string_equal(g.v[i].dk[2][0], "a");
			assert_string_equal(g.v[i].dk[2][1], "b:c");
			assert_string_equal(g.v[i].dk[0][0], odd1);
		} else if (g.v[i].nreasons == 2) {
			assert_string_equal(g.v[i].rs[0][0], "other");
			assert_string_equal(g.v[i].rs[0][1], "");
			assert_string_equal(g.v[i].rs[1][0], "x");
		} else if (g.v[i].ndkim == REPORT_MAX_DKIM) {
			assert_string_equal(g.v[i].dk[7][1], "odd");
			assert_string_equal(g.v[i].dk[6][1], "even");
		} else {
			assert_int_equal(g.v[i].nreasons, 1);
			assert_string_equal(g.v[i].rs[0][1], "1:x");
		}
	}
	got_free(&g);

	/* a list column damaged behind the store's back: an error */
	report_store_close(st);
	raw_sql(f->path, "UPDATE evaluations SET dkim = '9:short'"
	    " WHERE time = 1002");
	st = open_rw(f);
	assert_int_equal(rows(st, "example.com", 0, 5000, &g, f->err,
	    sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, "corrupt"));
	got_free(&g);
	/* REPORT_MAX_DKIM + 1 results of 4 empty fields */
	{
		char sql[256];
		size_t o;

		o = (size_t)snprintf(sql, sizeof(sql),
		    "UPDATE evaluations SET dkim = '");
		for (i = 0; i < 4 * (REPORT_MAX_DKIM + 1); i++)
			o += (size_t)snprintf(sql + o, sizeof(sql) - o, "0:");
		snprintf(sql + o, sizeof(sql) - o, "' WHERE time = 1002");
		raw_sql(f->path, sql);
	}
	assert_int_equal(rows(st, "example.com", 0, 5000, &g, f->err,
	    sizeof(f->err)), -1);
	got_free(&g);
	raw_sql(f->path, "UPDATE evaluations SET dkim = '99999999999:'"
	    " WHERE time = 1002");
	assert_int_equal(rows(st, "example.com", 0, 5000, &g, f->err,
	    sizeof(f->err)), -1);
	got_free(&g);
	report_store_close(st);
}

struct pend {
	char domain[8][64];
	long long first[8], until[8];
	size_t n;
};

static int
pend_cb(const char *domain, long long first, long long until, void *arg)
{
	struct pend *pd = arg;

	assert_true(pd->n < 8);
	snprintf(pd->domain[pd->n], sizeof(pd->domain[0]), "%s", domain);
	pd->first[pd->n] = first;
	pd->until[pd->n] = until;
	pd->n++;
	return 0;
}

static int
pend_stop_cb(const char *domain, long long first, long long until, void *arg)
{
	(*(int *)arg)++;
	return 3;
}

struct rep {
	char domain[8][64], id[8][64], state[8][16], why[8][64];
	long long begin[8], end[8];
	size_t n;
	struct report_store *st;	/* set: the callback writes to it */
};

static int
unfinished_cb(const char *domain, long long begin, long long end,
    const char *id, void *arg)
{
	struct rep *x = arg;
	char err[256];

	assert_true(x->n < 8);
	snprintf(x->domain[x->n], sizeof(x->domain[0]), "%s", domain);
	snprintf(x->id[x->n], sizeof(x->id[0]), "%s", id);
	x->begin[x->n] = begin;
	x->end[x->n] = end;
	x->n++;
	/* the walk was read first: the store may be written from here */
	if (x->st != NULL && report_store_finish_report(x->st, id, "queued",
	    "", err, sizeof(err)) != 0)
		fail_msg("finish from the callback: %s", err);
	return 0;
}

static int
reports_cb(const char *domain, long long begin, long long end, const char *id,
    const char *state, const char *why, void *arg)
{
	struct rep *x = arg;

	assert_true(x->n < 8);
	snprintf(x->domain[x->n], sizeof(x->domain[0]), "%s", domain);
	snprintf(x->id[x->n], sizeof(x->id[0]), "%s", id);
	snprintf(x->state[x->n], sizeof(x->state[0]), "%s", state);
	snprintf(x->why[x->n], sizeof(x->why[0]), "%s", why);
	x->begin[x->n] = begin;
	x->end[x->n] = end;
	x->n++;
	return 0;
}

static void
test_report_flow(void **state)
{
	struct fixture *f = *state;
	struct report_store *st = open_rw(f);
	struct report_policy p1, p2;
	struct report_row r;
	struct pend pd;
	struct rep x;
	char id[64], tiny[3];
	int calls = 0;

	policy_init(&p1, "d1.example", "none");
	policy_init(&p2, "d2.example", "reject");
	row_init(&r, 100, "192.0.2.1");
	add(f, st, &p1, &r);
	row_init(&r, 200, "192.0.2.1");
	add(f, st, &p1, &r);
	row_init(&r, 300, "192.0.2.2");
	add(f, st, &p2, &r);

	memset(&pd, 0, sizeof(pd));
	assert_int_equal(report_store_pending(st, pend_cb, &pd, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(pd.n, 2);
	assert_string_equal(pd.domain[0], "d1.example");
	assert_int_equal(pd.first[0], 100);
	assert_int_equal(pd.until[0], 0);
	assert_string_equal(pd.domain[1], "d2.example");
	assert_int_equal(pd.first[1], 300);
	assert_int_equal(report_store_pending(st, pend_stop_cb, &calls,
	    f->err, sizeof(f->err)), 3);
	assert_int_equal(calls, 1);

	/* a period reported: recorded once, reported_until moves */
	id[0] = '\0';
	assert_int_equal(report_store_begin_report(st, "d1.example", 0, 150,
	    "id1", id, sizeof(id), f->err, sizeof(f->err)), 1);
	assert_string_equal(id, "id1");
	memset(&pd, 0, sizeof(pd));
	assert_int_equal(report_store_pending(st, pend_cb, &pd, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(pd.n, 2);
	assert_int_equal(pd.first[0], 200);
	assert_int_equal(pd.until[0], 150);
	/* again (a crash before it was queued): the first id */
	id[0] = '\0';
	assert_int_equal(report_store_begin_report(st, "d1.example", 0, 150,
	    "id-other", id, sizeof(id), f->err, sizeof(f->err)), 0);
	assert_string_equal(id, "id1");
	assert_int_equal(report_store_begin_report(st, "d1.example", 0, 150,
	    "id-other", tiny, sizeof(tiny), f->err, sizeof(f->err)), -1);
	/* the same id for another period, a bad period */
	assert_int_equal(report_store_begin_report(st, "d2.example", 0, 150,
	    "id1", id, sizeof(id), f->err, sizeof(f->err)), -1);
	assert_int_equal(report_store_begin_report(st, "d2.example", 150, 150,
	    "id9", id, sizeof(id), f->err, sizeof(f->err)), -1);
	/* the failed ones changed nothing */
	memset(&pd, 0, sizeof(pd));
	assert_int_equal(report_store_pending(st, pend_cb, &pd, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(pd.n, 2);
	assert_int_equal(pd.until[1], 0);

	memset(&x, 0, sizeof(x));
	assert_int_equal(report_store_unfinished(st, unfinished_cb, &x,
	    f->err, sizeof(f->err)), 0);
	assert_int_equal(x.n, 1);
	assert_string_equal(x.domain[0], "d1.example");
	assert_string_equal(x.id[0], "id1");
	assert_int_equal(x.begin[0], 0);
	assert_int_equal(x.end[0], 150);

	assert_int_equal(report_store_finish_report(st, "id1", "queued", "",
	    f->err, sizeof(f->err)), 0);
	assert_int_equal(report_store_finish_report(st, "nope", "queued", "",
	    f->err, sizeof(f->err)), -1);
	assert_int_equal(report_store_finish_report(st, "id1", "", "",
	    f->err, sizeof(f->err)), -1);
	memset(&x, 0, sizeof(x));
	assert_int_equal(report_store_unfinished(st, unfinished_cb, &x,
	    f->err, sizeof(f->err)), 0);
	assert_int_equal(x.n, 0);

	/* the next period covers the rest of d1: nothing pending there */
	assert_int_equal(report_store_begin_report(st, "d1.example", 150, 250,
	    "id2", NULL, 0, f->err, sizeof(f->err)), 1);
	/* an older period late does not move reported_until back */
	assert_int_equal(report_store_begin_report(st, "d2.example", 200, 300,
	    "id3", id, sizeof(id), f->err, sizeof(f->err)), 1);
	assert_int_equal(report_store_begin_report(st, "d2.example", 100, 200,
	    "id4", id, sizeof(id), f->err, sizeof(f->err)), 1);
	memset(&pd, 0, sizeof(pd));
	assert_int_equal(report_store_pending(st, pend_cb, &pd, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(pd.n, 1);
	assert_string_equal(pd.domain[0], "d2.example");
	assert_int_equal(pd.until[0], 300);
	assert_int_equal(pd.first[0], 300);

	/* unfinished callbacks may write to the store */
	memset(&x, 0, sizeof(x));
	x.st = st;
	assert_int_equal(report_store_unfinished(st, unfinished_cb, &x,
	    f->err, sizeof(f->err)), 0);
	assert_int_equal(x.n, 3);
	memset(&x, 0, sizeof(x));
	assert_int_equal(report_store_unfinished(st, unfinished_cb, &x,
	    f->err, sizeof(f->err)), 0);
	assert_int_equal(x.n, 0);
	assert_int_equal(report_store_finish_report(st, "id4", "skipped",
	    "no rua", f->err, sizeof(f->err)), 0);

	/* newest first */
	memset(&x, 0, sizeof(x));
	assert_int_equal(report_store_reports(st, 0, reports_cb, &x, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(x.n, 4);
	assert_string_equal(x.id[0], "id4");
	assert_string_equal(x.state[0], "skipped");
	assert_string_equal(x.why[0], "no rua");
	assert_string_equal(x.id[3], "id1");
	assert_string_equal(x.state[3], "queued");
	memset(&x, 0, sizeof(x));
	assert_int_equal(report_store_reports(st, 2, reports_cb, &x, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(x.n, 2);
	report_store_close(st);
}

static void
test_expire(void **state)
{
	struct fixture *f = *state;
	struct report_store *st = open_rw(f);
	const struct report_policy **pp;
	const struct report_row **rr;
	struct report_policy p1, p2, p3;
	struct report_row r, bulk;
	struct got g = { 0 };
	size_t i, nbulk = 21000;

	policy_init(&p1, "d1.example", "none");
	policy_init(&p2, "d2.example", "none");
	policy_init(&p3, "d3.example", "none");
	for (i = 1; i <= 3; i++) {
		row_init(&r, 100 * (long long)i, "192.0.2.1");
		add(f, st, &p1, &r);
	}
	row_init(&r, 100, "192.0.2.1");
	add(f, st, &p2, &r);
	assert_int_equal(report_store_begin_report(st, "d1.example", 0, 250,
	    "x1", NULL, 0, f->err, sizeof(f->err)), 1);

	/* retention: reported or not, older than before goes (d1 and d2
	 * at 100), the rest stays */
	assert_int_equal(report_store_expire(st, 150, f->err, sizeof(f->err)),
	    2);
	assert_int_equal(rows(st, "d1.example", 0, 1000, &g, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.v[0].count, 2);
	assert_int_equal(rows(st, "d2.example", 0, 1000, &g, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(g.n, 0);
	/* 200 (reported) and 300 (not yet) */
	assert_int_equal(report_store_expire(st, 1000, f->err, sizeof(f->err)),
	    2);
	assert_int_equal(report_store_expire(st, 1000, f->err, sizeof(f->err)),
	    0);
	assert_int_equal(rows(st, "d1.example", 0, 1000, &g, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(g.n, 0);
	got_free(&g);

	/* many: deleted in several chunks, all of them */
	assert_non_null(pp = calloc(nbulk, sizeof(*pp)));
	assert_non_null(rr = calloc(nbulk, sizeof(*rr)));
	row_init(&bulk, 5000, "192.0.2.7");
	for (i = 0; i < nbulk; i++) {
		pp[i] = &p3;
		rr[i] = &bulk;
	}
	assert_int_equal(report_store_add_many(st, pp, rr, nbulk, f->err,
	    sizeof(f->err)), 0);
	free(pp);
	free(rr);
	assert_int_equal(report_store_begin_report(st, "d3.example", 0, 6000,
	    "x3", NULL, 0, f->err, sizeof(f->err)), 1);
	assert_int_equal(report_store_expire(st, 5000, f->err, sizeof(f->err)),
	    0);
	assert_int_equal(report_store_expire(st, 5001, f->err, sizeof(f->err)),
	    (long long)nbulk);
	assert_int_equal(rows(st, "d3.example", 0, 10000, &g, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(g.n, 0);
	report_store_close(st);
}

static void
test_dest_suppression(void **state)
{
	struct fixture *f = *state;
	struct report_store *st = open_rw(f);
	const char *a = "dmarc@example.com", *b = "Reports@Example.ORG";
	long long until = 0, before, after;

	assert_int_equal(report_store_dest_suppressed(st, a, 0, &until, f->err,
	    sizeof(f->err)), 0);
	before = (long long)time(NULL);
	assert_int_equal(report_store_dest_result(st, a, 0, "550 no", 3, 3600,
	    f->err, sizeof(f->err)), 0);
	/* a second failure the same day does not count */
	assert_int_equal(report_store_dest_result(st, a, 0, "550 no", 3, 3600,
	    f->err, sizeof(f->err)), 0);
	assert_int_equal(report_store_dest_result(st, a, 0, "550 no", 3, 3600,
	    f->err, sizeof(f->err)), 0);
	assert_int_equal(report_store_dest_suppressed(st, a, before, &until,
	    f->err, sizeof(f->err)), 0);
	/* one a day for three days: suppressed */
	report_store_close(st);
	raw_sql(f->path, "UPDATE destinations SET last_failure = "
	    "last_failure - 86400");
	st = open_rw(f);
	assert_int_equal(report_store_dest_result(st, a, 0, "550 no", 3, 3600,
	    f->err, sizeof(f->err)), 0);
	assert_int_equal(report_store_dest_suppressed(st, a, before, &until,
	    f->err, sizeof(f->err)), 0);
	report_store_close(st);
	raw_sql(f->path, "UPDATE destinations SET last_failure = "
	    "last_failure - 86400");
	st = open_rw(f);
	assert_int_equal(report_store_dest_result(st, a, 0, "550 no", 3, 3600,
	    f->err, sizeof(f->err)), 0);
	after = (long long)time(NULL);
	assert_int_equal(report_store_dest_suppressed(st, a, before, &until,
	    f->err, sizeof(f->err)), 1);
	assert_true(until >= before + 3600 && until <= after + 3600);
	/* over once the time has passed */
	assert_int_equal(report_store_dest_suppressed(st, a, until, NULL,
	    f->err, sizeof(f->err)), 0);
	/* a success clears the count */
	assert_int_equal(report_store_dest_result(st, a, 1, "250 ok", 3, 3600,
	    f->err, sizeof(f->err)), 0);
	assert_int_equal(report_store_dest_suppressed(st, a, before, NULL,
	    f->err, sizeof(f->err)), 0);
	assert_int_equal(report_store_dest_result(st, a, 0, "451", 3, 3600,
	    f->err, sizeof(f->err)), 0);
	report_store_close(st);
	raw_sql(f->path, "UPDATE destinations SET last_failure = "
	    "last_failure - 86400");
	st = open_rw(f);
	assert_int_equal(report_store_dest_result(st, a, 0, "451", 3, 3600,
	    f->err, sizeof(f->err)), 0);
	assert_int_equal(report_store_dest_suppressed(st, a, before, NULL,
	    f->err, sizeof(f->err)), 0);

	/* case of the address does not matter; max 1: at the first */
	assert_int_equal(report_store_dest_result(st, b, 0, "", 1, 60,
	    f->err, sizeof(f->err)), 0);
	assert_int_equal(report_store_dest_suppressed(st,
	    "reports@example.org", before, NULL, f->err, sizeof(f->err)), 1);
	/* max 0: never suppressed */
	assert_int_equal(report_store_dest_result(st, "x@example.net", 0, "",
	    0, 60, f->err, sizeof(f->err)), 0);
	assert_int_equal(report_store_dest_suppressed(st, "x@example.net",
	    before, NULL, f->err, sizeof(f->err)), 0);
	/* a success for an address never seen */
	assert_int_equal(report_store_dest_result(st, "new@example.net", 1,
	    NULL, 3, 60, f->err, sizeof(f->err)), 0);
	assert_int_equal(report_store_dest_result(st, "", 0, "", 3, 60,
	    f->err, sizeof(f->err)), -1);
	assert_int_equal(report_store_dest_suppressed(st, NULL, 0, NULL,
	    f->err, sizeof(f->err)), -1);
	report_store_close(st);
}

/* ---- domain-owner side ---- */

struct sums {
	struct report_summary_entry e[8];
	char domain[8][64], ip[8][64], reporter[8][64];
	size_t n;
};

static int
sum_cb(const struct report_summary_entry *e, void *arg)
{
	struct sums *s = arg;

	assert_true(s->n < 8);
	s->e[s->n] = *e;
	snprintf(s->domain[s->n], sizeof(s->domain[0]), "%s", e->domain);
	snprintf(s->ip[s->n], sizeof(s->ip[0]), "%s", e->source_ip);
	snprintf(s->reporter[s->n], sizeof(s->reporter[0]), "%s", e->reporter);
	s->n++;
	return 0;
}

static void
meta_init(struct report_meta *m, const char *org, const char *id,
    long long begin, long long end)
{
	memset(m, 0, sizeof(*m));
	m->org_name = org;
	m->email = "noreply@reporter.example";
	m->extra_contact_info = "";
	m->report_id = id;
	m->begin = begin;
	m->end = end;
	m->errors = "";
	m->generator = "";
}

static void
imp_row(struct report_row *r, const char *ip, long long count,
    const char *disp, int dkim, int spf)
{
	row_init(r, 0, ip);
	r->count = count;
	r->disposition = disp;
	r->dkim_aligned = dkim;
	r->spf_aligned = spf;
}

static void
test_import_summary(void **state)
{
	struct fixture *f = *state;
	struct report_store *st = open_rw(f);
	const char *ip1 = "192.0.2.1", *ip2 = "198.51.100.2";
	struct report_meta m;
	struct report_policy p;
	struct report_row ra[3], rb[1], rc[2];
	struct sums s;

	policy_init(&p, "Example.COM", "reject");
	imp_row(&ra[0], ip1, 10, "none", 1, 1);
	imp_row(&ra[1], ip1, 2, "reject", 0, 0);
	imp_row(&ra[2], ip2, 5, "quarantine", 0, 1);
	meta_init(&m, "google.com", "r1", 1000, 2000);
	assert_int_equal(report_store_import(st, &m, &p, ra, 3, "a.xml.gz",
	    f->err, sizeof(f->err)), 1);
	/* the same one again (another copy of the mail) */
	assert_int_equal(report_store_import(st, &m, &p, ra, 3, "a2.zip",
	    f->err, sizeof(f->err)), 0);
	/* the same report_id from another reporter is another report */
	imp_row(&rb[0], ip1, 3, "none", 1, 0);
	meta_init(&m, "Yahoo", "r1", 1500, 2500);
	assert_int_equal(report_store_import(st, &m, &p, rb, 1, "b.xml",
	    f->err, sizeof(f->err)), 1);
	/* a later one from the first reporter */
	policy_init(&p, "example.com", "reject");
	imp_row(&rc[0], ip1, 1, "pass", 1, 0);
	meta_init(&m, "google.com", "r2", 3000, 4000);
	assert_int_equal(report_store_import(st, &m, &p, rc, 1, "c.xml",
	    f->err, sizeof(f->err)), 1);
	/* refused: a negative count (nothing of it stored), no org */
	imp_row(&rc[0], ip1, 100, "none", 1, 0);
	imp_row(&rc[1], ip1, -1, "none", 1, 0);
	meta_init(&m, "bad.example", "r3", 3000, 4000);
	assert_int_equal(report_store_import(st, &m, &p, rc, 2, "d.xml",
	    f->err, sizeof(f->err)), -1);
	meta_init(&m, "", "r4", 3000, 4000);
	assert_int_equal(report_store_import(st, &m, &p, rc, 1, "e.xml",
	    f->err, sizeof(f->err)), -1);

	memset(&s, 0, sizeof(s));
	assert_int_equal(report_store_summary(st, NULL, 0, sum_cb, &s, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(s.n, 3);
	/* by messages, descending */
	assert_string_equal(s.domain[0], "example.com");
	assert_string_equal(s.ip[0], ip1);
	assert_string_equal(s.reporter[0], "google.com");
	assert_int_equal(s.e[0].messages, 13);
	assert_int_equal(s.e[0].dmarc_pass, 11);
	assert_int_equal(s.e[0].dkim_aligned, 11);
	assert_int_equal(s.e[0].spf_aligned, 10);
	assert_int_equal(s.e[0].disp_none, 10);
	assert_int_equal(s.e[0].disp_pass, 1);
	assert_int_equal(s.e[0].disp_quarantine, 0);
	assert_int_equal(s.e[0].disp_reject, 2);
	assert_int_equal(s.e[0].reports, 2);
	assert_int_equal(s.e[0].first, 1000);
	assert_int_equal(s.e[0].last, 4000);
	assert_string_equal(s.ip[1], ip2);
	assert_string_equal(s.reporter[1], "google.com");
	assert_int_equal(s.e[1].messages, 5);
	assert_int_equal(s.e[1].dmarc_pass, 5);
	assert_int_equal(s.e[1].dkim_aligned, 0);
	assert_int_equal(s.e[1].spf_aligned, 5);
	assert_int_equal(s.e[1].disp_quarantine, 5);
	assert_int_equal(s.e[1].reports, 1);
	assert_string_equal(s.ip[2], ip1);
	assert_string_equal(s.reporter[2], "Yahoo");
	assert_int_equal(s.e[2].messages, 3);
	assert_int_equal(s.e[2].dmarc_pass, 3);
	assert_int_equal(s.e[2].first, 1500);
	assert_int_equal(s.e[2].last, 2500);

	/* one domain (any case); since */
	memset(&s, 0, sizeof(s));
	assert_int_equal(report_store_summary(st, "EXAMPLE.com", 0, sum_cb, &s,
	    f->err, sizeof(f->err)), 0);
	assert_int_equal(s.n, 3);
	memset(&s, 0, sizeof(s));
	assert_int_equal(report_store_summary(st, "other.example", 0, sum_cb,
	    &s, f->err, sizeof(f->err)), 0);
	assert_int_equal(s.n, 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(report_store_summary(st, "", 3500, sum_cb, &s, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.e[0].messages, 1);
	assert_int_equal(s.e[0].reports, 1);
	assert_int_equal(s.e[0].disp_pass, 1);

	/* the refused one left nothing: it can come again, whole */
	imp_row(&rc[1], ip2, 4, "none", 1, 0);
	meta_init(&m, "bad.example", "r3", 3000, 4000);
	assert_int_equal(report_store_import(st, &m, &p, rc, 2, "d.xml",
	    f->err, sizeof(f->err)), 1);
	memset(&s, 0, sizeof(s));
	assert_int_equal(report_store_summary(st, NULL, 3500, sum_cb, &s,
	    f->err, sizeof(f->err)), 0);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.e[0].messages, 100);
	assert_string_equal(s.reporter[0], "bad.example");
	report_store_close(st);
}

/* ---- the recorder ---- */

struct feeder {
	struct report_recorder *rec;
	const char *ip;
	int n;
	int queued, dropped;
};

static void *
feed(void *arg)
{
	struct feeder *fd = arg;
	struct report_policy p;
	struct report_row r;
	char sel[32];
	int i;

	policy_init(&p, "example.com", "none");
	for (i = 0; i < fd->n; i++) {
		/* the caller's strings change right after the call */
		snprintf(sel, sizeof(sel), "s%d", i % 3);
		row_init(&r, 0, fd->ip);
		r.dkim[0].selector = sel;
		if (report_recorder_add(fd->rec, &p, &r) == 0)
			fd->queued++;
		else
			fd->dropped++;
		memset(sel, 'X', sizeof(sel) - 1);
	}
	return NULL;
}

static int
count_cb(const struct report_row *r, void *arg)
{
	struct got *g = arg;

	assert_true(r->count > 0);
	assert_true(strcmp(r->source_ip, "192.0.2.10") == 0 ||
	    strcmp(r->source_ip, "192.0.2.20") == 0);
	assert_int_equal(r->ndkim, 1);
	assert_true(strcmp(r->dkim[0].selector, "s0") == 0 ||
	    strcmp(r->dkim[0].selector, "s1") == 0 ||
	    strcmp(r->dkim[0].selector, "s2") == 0);
	g->v[0].count += r->count;
	g->n++;
	return 0;
}

static void
test_recorder(void **state)
{
	struct fixture *f = *state;
	struct report_recorder *rec;
	struct report_recorder_stats stats;
	struct feeder fa = { 0 }, fb = { 0 };
	struct report_policy p;
	struct report_row r;
	struct report_store *st;
	struct got g = { 0 };
	pthread_t ta, tb;
	long long now = (long long)time(NULL), until;

	rec = report_recorder_new(f->path, f->err, sizeof(f->err));
	if (rec == NULL)
		fail_msg("recorder: %s", f->err);
	fa.rec = fb.rec = rec;
	fa.ip = "192.0.2.10";
	fb.ip = "192.0.2.20";
	fa.n = fb.n = 2500;
	assert_int_equal(pthread_create(&ta, NULL, feed, &fa), 0);
	assert_int_equal(pthread_create(&tb, NULL, feed, &fb), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_int_equal(report_recorder_dest_result(rec, "a@example.com", 0,
	    "550", 1, 600), 0);
	report_recorder_sync(rec);
	report_recorder_stats(rec, &stats);
	/* 5000 never fill a queue of REPORT_RECORDER_QUEUE */
	assert_int_equal(fa.dropped + fb.dropped, 0);
	assert_int_equal(stats.recorded, 5000);
	assert_int_equal(stats.dropped, 0);
	assert_int_equal(stats.errors, 0);

	/* refused: counted as errors, nothing queued */
	policy_init(&p, "example.com", "none");
	row_init(&r, 0, "192.0.2.10");
	r.ndkim = REPORT_MAX_DKIM + 1;
	assert_int_equal(report_recorder_add(rec, &p, &r), -1);
	policy_init(&p, "", "none");
	row_init(&r, 0, "192.0.2.10");
	assert_int_equal(report_recorder_add(rec, &p, &r), -1);
	assert_int_equal(report_recorder_dest_result(rec, NULL, 1, "", 1, 1),
	    -1);
	report_recorder_stats(rec, &stats);
	assert_int_equal(stats.errors, 3);

	/* a burst: each evaluation is either recorded or counted dropped */
	fa.n = 3 * REPORT_RECORDER_QUEUE;
	fa.queued = fa.dropped = 0;
	feed(&fa);
	report_recorder_sync(rec);
	report_recorder_stats(rec, &stats);
	assert_int_equal(fa.queued + fa.dropped, fa.n);
	assert_int_equal(stats.recorded, 5000 + (unsigned long long)fa.queued);
	assert_int_equal(stats.dropped, (unsigned long long)fa.dropped);
	/* left queued at free: committed by it */
	fb.n = 100;
	fb.queued = fb.dropped = 0;
	feed(&fb);
	report_recorder_free(rec);
	report_recorder_free(NULL);

	st = report_store_open(f->path, 1, f->err, sizeof(f->err));
	if (st == NULL)
		fail_msg("reopen: %s", f->err);
	assert_int_equal(report_store_rows(st, "example.com", now - 60,
	    now + 600, NULL, count_cb, &g, f->err, sizeof(f->err)), 0);
	assert_int_equal(g.v[0].count, 5000 + fa.queued + fb.queued);
	assert_int_equal(g.n, 6);	/* 2 addresses x 3 selectors */
	assert_int_equal(report_store_dest_suppressed(st, "a@example.com",
	    now, &until, f->err, sizeof(f->err)), 1);
	report_store_close(st);

	/* a recorder on a file that cannot be a store */
	write_file(f->path, "garbage garbage garbage garbage garbage", 39);
	assert_null(report_recorder_new(f->path, f->err, sizeof(f->err)));
	assert_non_null(strstr(f->err, f->path));
}

static void
test_survives_reopen(void **state)
{
	struct fixture *f = *state;
	struct report_store *st = open_rw(f);
	struct report_policy p;
	struct report_row r;
	struct got g = { 0 };
	struct report_meta m;
	struct sums s;

	policy_init(&p, "example.com", "quarantine");
	row_init(&r, 1234, "2001:db8::1");
	r.spf_aligned = 1;
	add(f, st, &p, &r);
	add(f, st, &p, &r);
	meta_init(&m, "org", "id", 1, 2);
	assert_int_equal(report_store_import(st, &m, &p, &r, 1, "x",
	    f->err, sizeof(f->err)), 1);
	report_store_close(st);

	st = report_store_open(f->path, 1, f->err, sizeof(f->err));
	if (st == NULL)
		fail_msg("reopen: %s", f->err);
	assert_int_equal(rows(st, "example.com", 0, 2000, &g, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.v[0].count, 2);
	assert_int_equal(g.v[0].spf_aligned, 1);
	assert_string_equal(g.v[0].ip, "2001:db8::1");
	assert_string_equal(g.p, "quarantine");
	got_free(&g);
	memset(&s, 0, sizeof(s));
	assert_int_equal(report_store_summary(st, NULL, 0, sum_cb, &s, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(s.n, 1);
	/* read-only: writes fail cleanly */
	assert_int_equal(report_store_add(st, &p, &r, f->err, sizeof(f->err)),
	    -1);
	assert_non_null(strstr(f->err, "readonly"));
	report_store_close(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_create_reopen, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_schema_newer_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_readonly_missing, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_file, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_rows_aggregation, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_odd_bytes_round_trip,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_flow, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_expire, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dest_suppression, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_import_summary, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_recorder, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_survives_reopen, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
