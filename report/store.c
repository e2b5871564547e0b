/*
 * The DMARC reporting store: one SQLite database, prepared statements
 * only (every value is bound, never formatted into SQL).
 *
 * This file: the schema and the statements, the helpers store_int.h
 * shares, open and close, and the receiver side (evaluations, the reports
 * made from them, rua destinations). The domain-owner side (reports
 * imported, the summary) is in store_import.c.
 *
 * The DKIM results and override reasons of a row are kept in one column
 * each, as a list of "LEN:BYTES" fields (4 per DKIM result, 2 per
 * reason): unambiguous whatever bytes the values hold, and written the
 * same way for the same values, so GROUP BY on the column merges exactly
 * the identical evaluations.
 */
#include "report/store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "lib/buf.h"
#include "report/store_int.h"

#define STORE_VERSION		1
#define STORE_STR2(x)		#x
#define STORE_STR(x)		STORE_STR2(x)
#define STORE_BUSY_MS		5000
#define STORE_EXPIRE_CHUNK	10000	/* rows per DELETE: short write locks */

static const char store_schema[] =
	"CREATE TABLE evaluations ("
	" id INTEGER PRIMARY KEY,"
	" time INTEGER NOT NULL,"
	" policy_domain TEXT NOT NULL,"
	" source_ip TEXT NOT NULL,"
	" disposition TEXT NOT NULL,"
	" dkim_aligned INTEGER NOT NULL,"
	" spf_aligned INTEGER NOT NULL,"
	" reasons TEXT NOT NULL,"
	" header_from TEXT NOT NULL,"
	" envelope_from TEXT NOT NULL,"
	" envelope_to TEXT NOT NULL,"
	" spf_domain TEXT NOT NULL,"
	" spf_scope TEXT NOT NULL,"
	" spf_result TEXT NOT NULL,"
	" dkim TEXT NOT NULL,"
	" discovery_method TEXT NOT NULL,"
	" p TEXT NOT NULL, sp TEXT NOT NULL, np TEXT NOT NULL,"
	" fo TEXT NOT NULL, adkim TEXT NOT NULL, aspf TEXT NOT NULL,"
	" testing TEXT NOT NULL, rua TEXT NOT NULL, ri INTEGER NOT NULL);"
	"CREATE INDEX evaluations_domain_time"
	" ON evaluations(policy_domain, time);"
	"CREATE TABLE domains ("
	" policy_domain TEXT PRIMARY KEY,"
	" reported_until INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE reports ("
	" id TEXT PRIMARY KEY,"
	" domain TEXT NOT NULL,"
	" begin INTEGER NOT NULL,"
	" end INTEGER NOT NULL,"
	" state TEXT NOT NULL,"
	" why TEXT NOT NULL DEFAULT '',"
	" created INTEGER NOT NULL,"
	" UNIQUE(domain, begin));"
	"CREATE TABLE destinations ("
	" addr TEXT PRIMARY KEY,"
	" failures INTEGER NOT NULL DEFAULT 0,"
	" last_failure INTEGER NOT NULL DEFAULT 0,"
	" last_text TEXT NOT NULL DEFAULT '',"
	" suppressed_until INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE imported_reports ("
	" id INTEGER PRIMARY KEY,"
	" org_name TEXT NOT NULL,"
	" report_id TEXT NOT NULL,"
	" email TEXT NOT NULL,"
	" extra_contact_info TEXT NOT NULL,"
	" errors TEXT NOT NULL,"
	" generator TEXT NOT NULL,"
	" domain TEXT NOT NULL,"
	" begin INTEGER NOT NULL,"
	" end INTEGER NOT NULL,"
	" source TEXT NOT NULL,"
	" imported INTEGER NOT NULL,"
	" discovery_method TEXT NOT NULL,"
	" p TEXT NOT NULL, sp TEXT NOT NULL, np TEXT NOT NULL,"
	" fo TEXT NOT NULL, adkim TEXT NOT NULL, aspf TEXT NOT NULL,"
	" testing TEXT NOT NULL,"
	" UNIQUE(org_name, report_id));"
	"CREATE INDEX imported_reports_domain_end"
	" ON imported_reports(domain, end);"
	"CREATE TABLE imported_records ("
	" report INTEGER NOT NULL"
	"  REFERENCES imported_reports(id) ON DELETE CASCADE,"
	" source_ip TEXT NOT NULL,"
	" count INTEGER NOT NULL,"
	" disposition TEXT NOT NULL,"
	" dkim_aligned INTEGER NOT NULL,"
	" spf_aligned INTEGER NOT NULL,"
	" reasons TEXT NOT NULL,"
	" header_from TEXT NOT NULL,"
	" envelope_from TEXT NOT NULL,"
	" envelope_to TEXT NOT NULL,"
	" spf_domain TEXT NOT NULL,"
	" spf_scope TEXT NOT NULL,"
	" spf_result TEXT NOT NULL,"
	" dkim TEXT NOT NULL);"
	"CREATE INDEX imported_records_report ON imported_records(report);"
	"PRAGMA user_version = " STORE_STR(STORE_VERSION) ";";

/* The columns of a row, in this order, in evaluations and the queries. */
#define ROW_COLS "source_ip, disposition, dkim_aligned, spf_aligned, " \
	"reasons, header_from, envelope_from, envelope_to, spf_domain, " \
	"spf_scope, spf_result, dkim"
#define POLICY_COLS "discovery_method, p, sp, np, fo, adkim, aspf, testing"

static const char *const store_sql[SQL_N] = {
	[SQL_ADD_DOMAIN] =
	"INSERT OR IGNORE INTO domains(policy_domain, reported_until)"
	" VALUES(?1, 0)",
	[SQL_ADD_EVAL] =
	"INSERT INTO evaluations(time, policy_domain, " ROW_COLS ", "
	POLICY_COLS ", rua, ri) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
	" ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22,"
	" ?23, ?24)",
	[SQL_POLICY] =
	"SELECT " POLICY_COLS ", rua, ri FROM evaluations"
	" WHERE policy_domain = ?1 AND time >= ?2 AND time < ?3"
	" ORDER BY time DESC, id DESC LIMIT 1",
	[SQL_ROWS] =
	"SELECT " ROW_COLS ", count(*) AS n FROM evaluations"
	" WHERE policy_domain = ?1 AND time >= ?2 AND time < ?3"
	" GROUP BY " ROW_COLS
	" ORDER BY n DESC, " ROW_COLS,
	[SQL_PENDING] =
	"SELECT domain, first, until FROM (SELECT d.policy_domain AS domain,"
	" (SELECT min(e.time) FROM evaluations e"
	"  WHERE e.policy_domain = d.policy_domain"
	"  AND e.time >= d.reported_until) AS first,"
	" d.reported_until AS until"
	" FROM domains d) WHERE first IS NOT NULL ORDER BY domain",
	[SQL_REPORT_FIND] =
	"SELECT id FROM reports WHERE domain = ?1 AND begin = ?2",
	[SQL_REPORT_ADD] =
	"INSERT INTO reports(id, domain, begin, end, state, why, created)"
	" VALUES(?1, ?2, ?3, ?4, 'pending', '', ?5)",
	/* Never backwards: an older period reported late does not reopen
	 * the ones after it. */
	[SQL_DOMAIN_UNTIL] =
	"INSERT INTO domains(policy_domain, reported_until) VALUES(?1, ?2)"
	" ON CONFLICT(policy_domain) DO UPDATE SET"
	" reported_until = max(reported_until, excluded.reported_until)",
	[SQL_REPORT_FINISH] =
	"UPDATE reports SET state = ?2, why = ?3 WHERE id = ?1",
	[SQL_UNFINISHED] =
	"SELECT domain, begin, end, id FROM reports WHERE state = 'pending'"
	" ORDER BY begin, domain",
	[SQL_REPORTS] =
	"SELECT domain, begin, end, id, state, why FROM reports"
	" ORDER BY created DESC, rowid DESC LIMIT ?1",
	/* Retention: reported or not (a period not reported by then will
	 * not be: the reports that failed are in the reports table). */
	[SQL_EXPIRE] =
	"DELETE FROM evaluations WHERE id IN (SELECT id FROM evaluations"
	" WHERE time < ?1 LIMIT ?2)",
	[SQL_DEST_OK] =
	"INSERT INTO destinations(addr) VALUES(?1)"
	" ON CONFLICT(addr) DO UPDATE SET failures = 0, suppressed_until = 0",
	/* ?1 addr, ?2 now, ?3 text, ?4 max_failures, ?5 suppress_for;
	 * "failures" in DO UPDATE is the stored count. */
	/* At most one failure counts per day: one outage that fails the
	 * reports of several domains at once is one failure. */
	[SQL_DEST_FAIL] =
	"INSERT INTO destinations(addr, failures, last_failure, last_text,"
	" suppressed_until) VALUES(?1, 1, ?2, ?3,"
	" CASE WHEN ?4 > 0 AND 1 >= ?4 THEN ?2 + ?5 ELSE 0 END)"
	" ON CONFLICT(addr) DO UPDATE SET failures = failures +"
	" (last_failure <= ?2 - 86400),"
	" last_failure = CASE WHEN last_failure <= ?2 - 86400 THEN ?2"
	" ELSE last_failure END, last_text = ?3, suppressed_until ="
	" CASE WHEN ?4 > 0 AND failures + (last_failure <= ?2 - 86400) >= ?4"
	" THEN ?2 + ?5 ELSE suppressed_until END",
	[SQL_DEST_GET] =
	"SELECT suppressed_until FROM destinations WHERE addr = ?1",
	[SQL_IMPORT_REPORT] =
	"INSERT INTO imported_reports(org_name, report_id, email,"
	" extra_contact_info, errors, generator, domain, begin, end, source,"
	" imported, " POLICY_COLS ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,"
	" ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
	" ON CONFLICT(org_name, report_id) DO NOTHING",
	[SQL_IMPORT_RECORD] =
	"INSERT INTO imported_records(report, count, " ROW_COLS ")"
	" VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
	[SQL_SUMMARY] =
	"SELECT ir.domain, r.source_ip, ir.org_name, sum(r.count) AS n,"
	" sum(CASE WHEN r.dkim_aligned OR r.spf_aligned THEN r.count"
	"  ELSE 0 END),"
	" sum(CASE WHEN r.dkim_aligned THEN r.count ELSE 0 END),"
	" sum(CASE WHEN r.spf_aligned THEN r.count ELSE 0 END),"
	" sum(CASE WHEN r.disposition = 'none' THEN r.count ELSE 0 END),"
	" sum(CASE WHEN r.disposition = 'pass' THEN r.count ELSE 0 END),"
	" sum(CASE WHEN r.disposition = 'quarantine' THEN r.count ELSE 0 END),"
	" sum(CASE WHEN r.disposition = 'reject' THEN r.count ELSE 0 END),"
	" count(DISTINCT ir.id), min(ir.begin), max(ir.end)"
	" FROM imported_reports ir JOIN imported_records r ON r.report = ir.id"
	" WHERE (?1 = '' OR ir.domain = ?1) AND (?2 = 0 OR ir.end >= ?2)"
	" GROUP BY ir.domain, r.source_ip, ir.org_name"
	" ORDER BY n DESC, ir.domain, r.source_ip, ir.org_name",
};

/* A row of a walk read whole before its callbacks run (so that they may
 * call the store). */
struct store_rec {
	char *s[6];
	long long i[6];
};

const char *
store_nz(const char *s)
{
	return s != NULL ? s : "";
}

void
store_errx(struct report_store *st, char *err, size_t errlen,
    const char *fmt, ...)
{
	va_list ap;
	int n;

	if (err == NULL || errlen == 0)
		return;
	n = snprintf(err, errlen, "report store %s: ", st->path);
	if (n < 0 || (size_t)n >= errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

void
store_err(struct report_store *st, char *err, size_t errlen, const char *what)
{
	store_errx(st, err, errlen, "%s: %s", what, sqlite3_errmsg(st->db));
}

int
store_exec(struct report_store *st, const char *sql, const char *what,
    char *err, size_t errlen)
{
	if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		store_err(st, err, errlen, what);
		return -1;
	}
	return 0;
}

void
store_rollback(struct report_store *st)
{
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

int
store_commit(struct report_store *st, char *err, size_t errlen)
{
	if (store_exec(st, "COMMIT", "commit", err, errlen) == -1) {
		store_rollback(st);
		return -1;
	}
	return 0;
}

sqlite3_stmt *
store_stmt(struct report_store *st, enum store_sql which, char *err,
    size_t errlen)
{
	if (st->stmt[which] == NULL && sqlite3_prepare_v3(st->db,
	    store_sql[which], -1, SQLITE_PREPARE_PERSISTENT, &st->stmt[which],
	    NULL) != SQLITE_OK) {
		store_err(st, err, errlen, "prepare");
		st->stmt[which] = NULL;
		return NULL;
	}
	return st->stmt[which];
}

/* Ends a statement's use: a SELECT left unreset would hold its read
 * snapshot (and keep the WAL from being checkpointed). */
void
store_done(sqlite3_stmt *s)
{
	if (s != NULL) {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
	}
}

int
store_bind_text(sqlite3_stmt *s, int i, const char *v)
{
	v = store_nz(v);
	return sqlite3_bind_text64(s, i, v, strlen(v), SQLITE_STATIC,
	    SQLITE_UTF8);
}

int
store_bind_int(sqlite3_stmt *s, int i, long long v)
{
	return sqlite3_bind_int64(s, i, v);
}

/* Runs a statement that returns no row. */
int
store_step_done(struct report_store *st, sqlite3_stmt *s, const char *what,
    char *err, size_t errlen)
{
	if (sqlite3_step(s) != SQLITE_DONE) {
		store_err(st, err, errlen, what);
		store_done(s);
		return -1;
	}
	store_done(s);
	return 0;
}

const char *
store_col_text(sqlite3_stmt *s, int i)
{
	return store_nz((const char *)sqlite3_column_text(s, i));
}

/* ---- the serialised lists ---- */

static int
ser_field(struct buf *b, const char *s)
{
	s = store_nz(s);
	return buf_appendf(b, "%zu:%s", strlen(s), s);
}

int
store_ser_lists(struct report_store *st, const struct report_row *r)
{
	size_t i;

	buf_reset(&st->dkim);
	buf_reset(&st->reasons);
	/* An empty list is "", not a NULL pointer. */
	if (buf_append(&st->dkim, "", 0) == -1 ||
	    buf_append(&st->reasons, "", 0) == -1)
		return -1;
	for (i = 0; i < r->ndkim; i++)
		if (ser_field(&st->dkim, r->dkim[i].domain) == -1 ||
		    ser_field(&st->dkim, r->dkim[i].selector) == -1 ||
		    ser_field(&st->dkim, r->dkim[i].result) == -1 ||
		    ser_field(&st->dkim, r->dkim[i].human_result) == -1)
			return -1;
	for (i = 0; i < r->nreasons; i++)
		if (ser_field(&st->reasons, r->reasons[i].type) == -1 ||
		    ser_field(&st->reasons, r->reasons[i].comment) == -1)
			return -1;
	return 0;
}

/*
 * One "LEN:BYTES" field at *pp, moved to *pp and NUL-terminated in place:
 * the prefix is at least 2 bytes, so the NUL lands inside the field just
 * read and the next one is untouched.
 */
static int
de_field(char **pp, char *end, const char **out)
{
	char *p = *pp, *q;
	size_t len = 0;

	for (q = p; q < end && *q >= '0' && *q <= '9'; q++) {
		if (q - p >= 10)
			return -1;
		len = len * 10 + (size_t)(*q - '0');
	}
	if (q == p || q >= end || *q != ':')
		return -1;
	q++;
	if ((size_t)(end - q) < len)
		return -1;
	memmove(p, q, len);
	p[len] = '\0';
	*out = p;
	*pp = q + len;
	return 0;
}

static int
de_dkim(char *p, char *end, struct report_row *r)
{
	struct report_dkim *d;

	for (r->ndkim = 0; p < end; r->ndkim++) {
		if (r->ndkim == REPORT_MAX_DKIM)
			return -1;
		d = &r->dkim[r->ndkim];
		if (de_field(&p, end, &d->domain) == -1 ||
		    de_field(&p, end, &d->selector) == -1 ||
		    de_field(&p, end, &d->result) == -1 ||
		    de_field(&p, end, &d->human_result) == -1)
			return -1;
	}
	return 0;
}

static int
de_reasons(char *p, char *end, struct report_row *r)
{
	struct report_reason *x;

	for (r->nreasons = 0; p < end; r->nreasons++) {
		if (r->nreasons == REPORT_MAX_REASONS)
			return -1;
		x = &r->reasons[r->nreasons];
		if (de_field(&p, end, &x->type) == -1 ||
		    de_field(&p, end, &x->comment) == -1)
			return -1;
	}
	return 0;
}

int
store_check_row(struct report_store *st, const struct report_row *r, char *err,
    size_t errlen)
{
	if (r->ndkim > REPORT_MAX_DKIM || r->nreasons > REPORT_MAX_REASONS) {
		store_errx(st, err, errlen, "row with %zu DKIM results and %zu "
		    "reasons (at most %d and %d)", r->ndkim, r->nreasons,
		    REPORT_MAX_DKIM, REPORT_MAX_REASONS);
		return -1;
	}
	if (r->count < 0) {
		store_errx(st, err, errlen, "row with a negative count");
		return -1;
	}
	return 0;
}

/* Binds the ROW_COLS of r from parameter first on. */
int
store_bind_row(sqlite3_stmt *s, int first, struct report_store *st,
    const struct report_row *r)
{
	int i = first, rc = 0;

	rc |= store_bind_text(s, i++, r->source_ip);
	rc |= store_bind_text(s, i++, r->disposition);
	rc |= store_bind_int(s, i++, r->dkim_aligned != 0);
	rc |= store_bind_int(s, i++, r->spf_aligned != 0);
	rc |= store_bind_text(s, i++, st->reasons.data);
	rc |= store_bind_text(s, i++, r->header_from);
	rc |= store_bind_text(s, i++, r->envelope_from);
	rc |= store_bind_text(s, i++, r->envelope_to);
	rc |= store_bind_text(s, i++, r->spf_domain);
	rc |= store_bind_text(s, i++, r->spf_scope);
	rc |= store_bind_text(s, i++, r->spf_result);
	rc |= store_bind_text(s, i++, st->dkim.data);
	return rc;
}

/* Binds the POLICY_COLS of p from parameter first on. */
int
store_bind_policy(sqlite3_stmt *s, int first, const struct report_policy *p)
{
	int i = first, rc = 0;

	rc |= store_bind_text(s, i++, p->discovery_method);
	rc |= store_bind_text(s, i++, p->p);
	rc |= store_bind_text(s, i++, p->sp);
	rc |= store_bind_text(s, i++, p->np);
	rc |= store_bind_text(s, i++, p->fo);
	rc |= store_bind_text(s, i++, p->adkim);
	rc |= store_bind_text(s, i++, p->aspf);
	rc |= store_bind_text(s, i++, p->testing);
	return rc;
}

/* ---- open and close ---- */

static int
store_user_version(struct report_store *st, int *v_r, char *err,
    size_t errlen)
{
	sqlite3_stmt *s = NULL;
	int rc;

	/* The first read of the file: a file that is not a database
	 * fails here ("file is not a database"). */
	if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s,
	    NULL) != SQLITE_OK || (rc = sqlite3_step(s)) != SQLITE_ROW) {
		store_err(st, err, errlen, "reading the schema version");
		sqlite3_finalize(s);
		return -1;
	}
	*v_r = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return 0;
}

static int
store_wal(struct report_store *st, char *err, size_t errlen)
{
	sqlite3_stmt *s = NULL;
	const char *mode;

	if (sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1, &s,
	    NULL) != SQLITE_OK || sqlite3_step(s) != SQLITE_ROW) {
		store_err(st, err, errlen, "setting the WAL journal");
		sqlite3_finalize(s);
		return -1;
	}
	mode = store_col_text(s, 0);
	if (strcmp(mode, "wal") != 0) {
		store_errx(st, err, errlen, "cannot use a WAL journal "
		    "(journal mode stays %s)", mode);
		sqlite3_finalize(s);
		return -1;
	}
	sqlite3_finalize(s);
	return 0;
}

/* The schema, once: under the write lock, so two processes opening a new
 * file at once create it once. */
static int
store_create(struct report_store *st, char *err, size_t errlen)
{
	sqlite3_stmt *s = NULL;
	int v, ntables;

	if (store_exec(st, "BEGIN IMMEDIATE", "begin", err, errlen) == -1)
		return -1;
	if (store_user_version(st, &v, err, errlen) == -1)
		goto fail;
	if (v != 0)
		return store_commit(st, err, errlen);
	if (sqlite3_prepare_v2(st->db, "SELECT count(*) FROM sqlite_master",
	    -1, &s, NULL) != SQLITE_OK || sqlite3_step(s) != SQLITE_ROW) {
		store_err(st, err, errlen, "reading the schema");
		sqlite3_finalize(s);
		goto fail;
	}
	ntables = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	/* Never add our tables to some other program's database. */
	if (ntables != 0) {
		store_errx(st, err, errlen, "not a report store (a database "
		    "without its schema version)");
		goto fail;
	}
	if (store_exec(st, store_schema, "creating the schema", err,
	    errlen) == -1)
		goto fail;
	return store_commit(st, err, errlen);
fail:
	store_rollback(st);
	return -1;
}

struct report_store *
report_store_open(const char *path, int readonly, char *err, size_t errlen)
{
	struct report_store *st;
	int fd, flags, v;

	if ((st = calloc(1, sizeof(*st))) == NULL ||
	    (st->path = strdup(path)) == NULL) {
		snprintf(err, errlen, "report store %s: out of memory", path);
		free(st);
		return NULL;
	}
	if (!readonly) {
		/* Created here, not by SQLite, for its mode; the -wal and -shm
		 * files SQLite makes take the mode of the database. */
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
		if (fd == -1) {
			store_errx(st, err, errlen, "cannot create: %s",
			    strerror(errno));
			goto fail;
		}
		close(fd);
	}
	flags = (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
	    SQLITE_OPEN_NOMUTEX;
	if (sqlite3_open_v2(path, &st->db, flags, NULL) != SQLITE_OK) {
		if (st->db != NULL)
			store_err(st, err, errlen, "open");
		else
			store_errx(st, err, errlen, "open: out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(st->db, STORE_BUSY_MS);
	sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
	if (store_user_version(st, &v, err, errlen) == -1)
		goto fail;
	if (v > STORE_VERSION) {
		store_errx(st, err, errlen, "schema version %d is newer than "
		    "this program's (%d)", v, STORE_VERSION);
		goto fail;
	}
	if (readonly && v == 0) {
		store_errx(st, err, errlen, "not a report store (no schema)");
		goto fail;
	}
	if (!readonly && store_wal(st, err, errlen) == -1)
		goto fail;
	if (store_exec(st, "PRAGMA synchronous = NORMAL;"
	    "PRAGMA foreign_keys = ON", "setting up", err, errlen) == -1)
		goto fail;
	if (!readonly && v == 0 && store_create(st, err, errlen) == -1)
		goto fail;
	return st;
fail:
	report_store_close(st);
	return NULL;
}

void
report_store_close(struct report_store *st)
{
	size_t i;

	if (st == NULL)
		return;
	for (i = 0; i < SQL_N; i++)
		sqlite3_finalize(st->stmt[i]);
	sqlite3_close(st->db);
	buf_free(&st->dkim);
	buf_free(&st->reasons);
	buf_free(&st->scratch);
	free(st->path);
	free(st);
}

/* ---- walks read whole ---- */

static void
recs_free(struct store_rec *v, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++)
		for (j = 0; j < 6; j++)
			free(v[i].s[j]);
	free(v);
}

/* Every row of s (bound by the caller), kinds[i] 's' text or 'i' integer
 * for column i. */
static int
store_collect(struct report_store *st, sqlite3_stmt *s, const char *kinds,
    struct store_rec **v_r, size_t *n_r, char *err, size_t errlen)
{
	struct store_rec *v = NULL, *nv;
	size_t n = 0, cap = 0, j;
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL)
				goto nomem;
			v = nv;
		}
		memset(&v[n], 0, sizeof(v[n]));
		n++;
		for (j = 0; kinds[j] && j < 6; j++) {
			if (kinds[j] == 'i')
				v[n - 1].i[j] = sqlite3_column_int64(s, (int)j);
			else if ((v[n - 1].s[j] = strdup(store_col_text(s,
			    (int)j))) == NULL)
				goto nomem;
		}
	}
	if (rc != SQLITE_DONE) {
		store_err(st, err, errlen, "reading");
		goto fail;
	}
	store_done(s);
	*v_r = v;
	*n_r = n;
	return 0;
nomem:
	store_errx(st, err, errlen, "out of memory");
fail:
	store_done(s);
	recs_free(v, n);
	return -1;
}

/* ---- receiver side ---- */

static int
store_add_one(struct report_store *st, const struct report_policy *p,
    const struct report_row *r, long long now, char *err, size_t errlen)
{
	sqlite3_stmt *s;
	int rc = 0;

	if (p == NULL || r == NULL || p->domain == NULL || *p->domain == '\0') {
		store_errx(st, err, errlen, "evaluation without a policy "
		    "domain");
		return -1;
	}
	if (store_check_row(st, r, err, errlen) == -1)
		return -1;
	if (store_ser_lists(st, r) == -1) {
		store_errx(st, err, errlen, "out of memory");
		return -1;
	}
	if ((s = store_stmt(st, SQL_ADD_DOMAIN, err, errlen)) == NULL)
		return -1;
	if (store_bind_text(s, 1, p->domain) != SQLITE_OK) {
		store_err(st, err, errlen, "bind");
		store_done(s);
		return -1;
	}
	if (store_step_done(st, s, "adding the domain", err, errlen) == -1)
		return -1;
	if ((s = store_stmt(st, SQL_ADD_EVAL, err, errlen)) == NULL)
		return -1;
	rc |= store_bind_int(s, 1, r->time != 0 ? r->time : now);
	rc |= store_bind_text(s, 2, p->domain);
	rc |= store_bind_row(s, 3, st, r);
	rc |= store_bind_policy(s, 15, p);
	rc |= store_bind_text(s, 23, p->rua);
	rc |= store_bind_int(s, 24, p->ri);
	if (rc != SQLITE_OK) {
		store_err(st, err, errlen, "bind");
		store_done(s);
		return -1;
	}
	return store_step_done(st, s, "adding an evaluation", err, errlen);
}

int
report_store_add_many(struct report_store *st,
    const struct report_policy *const *p, const struct report_row *const *r,
    size_t n, char *err, size_t errlen)
{
	long long now = (long long)time(NULL);
	size_t i;

	if (n == 0)
		return 0;
	if (store_exec(st, "BEGIN IMMEDIATE", "begin", err, errlen) == -1)
		return -1;
	for (i = 0; i < n; i++)
		if (store_add_one(st, p[i], r[i], now, err, errlen) == -1) {
			store_rollback(st);
			return -1;
		}
	return store_commit(st, err, errlen);
}

int
report_store_add(struct report_store *st, const struct report_policy *p,
    const struct report_row *r, char *err, size_t errlen)
{
	return report_store_add_many(st, &p, &r, 1, err, errlen);
}

int
report_store_pending(struct report_store *st,
    int (*cb)(const char *domain, long long first, long long reported_until,
    void *arg), void *arg, char *err, size_t errlen)
{
	struct store_rec *v;
	sqlite3_stmt *s;
	size_t n, i;
	int r = 0;

	if ((s = store_stmt(st, SQL_PENDING, err, errlen)) == NULL ||
	    store_collect(st, s, "sii", &v, &n, err, errlen) == -1)
		return -1;
	for (i = 0; i < n && r == 0; i++)
		r = cb(v[i].s[0], v[i].i[1], v[i].i[2], arg);
	recs_free(v, n);
	if (r != 0)
		store_errx(st, err, errlen, "walk stopped by the caller");
	return r;
}

/* The policy of the latest evaluation in range: 1 found (policy_cb
 * called), 0 none, -1 error. */
static int
store_rows_policy(struct report_store *st, const char *domain,
    long long begin, long long end,
    void (*policy_cb)(const struct report_policy *p, void *arg), void *arg,
    char *err, size_t errlen)
{
	struct report_policy p;
	sqlite3_stmt *s;
	int rc = 0;

	if ((s = store_stmt(st, SQL_POLICY, err, errlen)) == NULL)
		return -1;
	rc |= store_bind_text(s, 1, domain);
	rc |= store_bind_int(s, 2, begin);
	rc |= store_bind_int(s, 3, end);
	if (rc != SQLITE_OK) {
		store_err(st, err, errlen, "bind");
		store_done(s);
		return -1;
	}
	if ((rc = sqlite3_step(s)) == SQLITE_DONE) {
		store_done(s);
		return 0;
	}
	if (rc != SQLITE_ROW) {
		store_err(st, err, errlen, "reading the policy");
		store_done(s);
		return -1;
	}
	if (policy_cb != NULL) {
		memset(&p, 0, sizeof(p));
		p.domain = domain;
		p.discovery_method = store_col_text(s, 0);
		p.p = store_col_text(s, 1);
		p.sp = store_col_text(s, 2);
		p.np = store_col_text(s, 3);
		p.fo = store_col_text(s, 4);
		p.adkim = store_col_text(s, 5);
		p.aspf = store_col_text(s, 6);
		p.testing = store_col_text(s, 7);
		p.rua = store_col_text(s, 8);
		p.ri = sqlite3_column_int(s, 9);
		policy_cb(&p, arg);
	}
	store_done(s);
	return 1;
}

/* Points r into the current row of s (SQL_ROWS) and st->scratch. */
static int
store_row_read(struct report_store *st, sqlite3_stmt *s, struct report_row *r)
{
	const char *reasons, *dkim;
	size_t nreasons, ndkim;
	char *base;

	memset(r, 0, sizeof(*r));
	r->source_ip = store_col_text(s, 0);
	r->disposition = store_col_text(s, 1);
	r->dkim_aligned = sqlite3_column_int(s, 2) != 0;
	r->spf_aligned = sqlite3_column_int(s, 3) != 0;
	reasons = store_col_text(s, 4);
	nreasons = (size_t)sqlite3_column_bytes(s, 4);
	r->header_from = store_col_text(s, 5);
	r->envelope_from = store_col_text(s, 6);
	r->envelope_to = store_col_text(s, 7);
	r->spf_domain = store_col_text(s, 8);
	r->spf_scope = store_col_text(s, 9);
	r->spf_result = store_col_text(s, 10);
	dkim = store_col_text(s, 11);
	ndkim = (size_t)sqlite3_column_bytes(s, 11);
	r->count = sqlite3_column_int64(s, 12);
	/* Both lists copied first: the buffer does not move while they are
	 * cut up in place. */
	buf_reset(&st->scratch);
	if (buf_append(&st->scratch, reasons, nreasons) == -1 ||
	    buf_append(&st->scratch, dkim, ndkim) == -1)
		return -2;
	base = st->scratch.data;
	if (de_reasons(base, base + nreasons, r) == -1 ||
	    de_dkim(base + nreasons, base + nreasons + ndkim, r) == -1)
		return -1;
	return 0;
}

int
report_store_rows(struct report_store *st, const char *domain,
    long long begin, long long end,
    void (*policy_cb)(const struct report_policy *p, void *arg),
    int (*cb)(const struct report_row *r, void *arg), void *arg,
    char *err, size_t errlen)
{
	struct report_row row;
	sqlite3_stmt *s;
	int rc = SQLITE_DONE, r = 0;

	domain = store_nz(domain);
	/* One read snapshot for the policy and the rows. */
	if (store_exec(st, "BEGIN", "begin", err, errlen) == -1)
		return -1;
	if ((rc = store_rows_policy(st, domain, begin, end, policy_cb, arg,
	    err, errlen)) <= 0) {
		store_rollback(st);
		return rc;
	}
	if (cb == NULL)		/* the policy alone */
		return store_commit(st, err, errlen) == -1 ? -1 : 0;
	if ((s = store_stmt(st, SQL_ROWS, err, errlen)) == NULL)
		goto fail;
	rc = 0;
	rc |= store_bind_text(s, 1, domain);
	rc |= store_bind_int(s, 2, begin);
	rc |= store_bind_int(s, 3, end);
	if (rc != SQLITE_OK) {
		store_err(st, err, errlen, "bind");
		goto fail;
	}
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		if ((rc = store_row_read(st, s, &row)) != 0) {
			store_errx(st, err, errlen, rc == -2 ? "out of memory" :
			    "corrupt dkim or reasons column");
			goto fail;
		}
		if ((r = cb(&row, arg)) != 0)
			store_errx(st, err, errlen, "walk stopped by the "
			    "caller");
	}
	if (r == 0 && rc != SQLITE_DONE) {
		store_err(st, err, errlen, "reading rows");
		goto fail;
	}
	store_done(s);
	if (store_commit(st, err, errlen) == -1)
		return -1;
	return r;
fail:
	store_done(s);
	store_rollback(st);
	return -1;
}

int
report_store_begin_report(struct report_store *st, const char *domain,
    long long begin, long long end, const char *id, char *id_r,
    size_t idlen, char *err, size_t errlen)
{
	const char *found = id;
	sqlite3_stmt *s = NULL;
	int rc, created;

	if (domain == NULL || *domain == '\0' || id == NULL || *id == '\0' ||
	    begin >= end) {
		store_errx(st, err, errlen, "report without a domain, an id or "
		    "a period");
		return -1;
	}
	if (store_exec(st, "BEGIN IMMEDIATE", "begin", err, errlen) == -1)
		return -1;
	if ((s = store_stmt(st, SQL_REPORT_FIND, err, errlen)) == NULL)
		goto fail;
	if ((store_bind_text(s, 1, domain) |
	    store_bind_int(s, 2, begin)) != SQLITE_OK) {
		store_err(st, err, errlen, "bind");
		goto fail;
	}
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		created = 0;
		found = store_col_text(s, 0);
	} else if (rc == SQLITE_DONE) {
		created = 1;
	} else {
		store_err(st, err, errlen, "finding the report");
		goto fail;
	}
	if (id_r != NULL && idlen > 0 &&
	    (size_t)snprintf(id_r, idlen, "%s", found) >= idlen) {
		store_errx(st, err, errlen, "report id longer than %zu bytes",
		    idlen - 1);
		goto fail;
	}
	store_done(s);
	s = NULL;
	if (!created) {
		store_rollback(st);
		return 0;
	}
	if ((s = store_stmt(st, SQL_REPORT_ADD, err, errlen)) == NULL)
		goto fail;
	if ((store_bind_text(s, 1, id) | store_bind_text(s, 2, domain) |
	    store_bind_int(s, 3, begin) | store_bind_int(s, 4, end) |
	    store_bind_int(s, 5, (long long)time(NULL))) != SQLITE_OK) {
		store_err(st, err, errlen, "bind");
		goto fail;
	}
	if (store_step_done(st, s, "adding the report", err, errlen) == -1)
		goto fail_nos;
	if ((s = store_stmt(st, SQL_DOMAIN_UNTIL, err, errlen)) == NULL)
		goto fail;
	if ((store_bind_text(s, 1, domain) |
	    store_bind_int(s, 2, end)) != SQLITE_OK) {
		store_err(st, err, errlen, "bind");
		goto fail;
	}
	if (store_step_done(st, s, "moving reported_until", err,
	    errlen) == -1)
		goto fail_nos;
	if (store_commit(st, err, errlen) == -1)
		return -1;
	return 1;
fail:
	store_done(s);
fail_nos:
	store_rollback(st);
	return -1;
}

int
report_store_finish_report(struct report_store *st, const char *id,
    const char *state, const char *why, char *err, size_t errlen)
{
	sqlite3_stmt *s;

	state = store_nz(state);
	if (*state == '\0') {
		store_errx(st, err, errlen, "empty report state");
		return -1;
	}
	if ((s = store_stmt(st, SQL_REPORT_FINISH, err, errlen)) == NULL)
		return -1;
	if ((store_bind_text(s, 1, id) | store_bind_text(s, 2, state) |
	    store_bind_text(s, 3, why)) != SQLITE_OK) {
		store_err(st, err, errlen, "bind");
		store_done(s);
		return -1;
	}
	if (store_step_done(st, s, "finishing the report", err, errlen) == -1)
		return -1;
	if (sqlite3_changes(st->db) == 0) {
		store_errx(st, err, errlen, "no report %s", store_nz(id));
		return -1;
	}
	return 0;
}

int
report_store_unfinished(struct report_store *st,
    int (*cb)(const char *domain, long long begin, long long end,
    const char *id, void *arg), void *arg, char *err, size_t errlen)
{
	struct store_rec *v;
	sqlite3_stmt *s;
	size_t n, i;
	int r = 0;

	if ((s = store_stmt(st, SQL_UNFINISHED, err, errlen)) == NULL ||
	    store_collect(st, s, "siis", &v, &n, err, errlen) == -1)
		return -1;
	for (i = 0; i < n && r == 0; i++)
		r = cb(v[i].s[0], v[i].i[1], v[i].i[2], v[i].s[3], arg);
	recs_free(v, n);
	if (r != 0)
		store_errx(st, err, errlen, "walk stopped by the caller");
	return r;
}

int
report_store_reports(struct report_store *st, size_t limit,
    int (*cb)(const char *domain, long long begin, long long end,
    const char *id, const char *state, const char *why, void *arg),
    void *arg, char *err, size_t errlen)
{
	struct store_rec *v;
	sqlite3_stmt *s;
	size_t n, i;
	int r = 0;

	if ((s = store_stmt(st, SQL_REPORTS, err, errlen)) == NULL)
		return -1;
	/* LIMIT -1: no limit */
	if (store_bind_int(s, 1, limit == 0 || limit > LLONG_MAX ? -1 :
	    (long long)limit) != SQLITE_OK) {
		store_err(st, err, errlen, "bind");
		store_done(s);
		return -1;
	}
	if (store_collect(st, s, "siisss", &v, &n, err, errlen) == -1)
		return -1;
	for (i = 0; i < n && r == 0; i++)
		r = cb(v[i].s[0], v[i].i[1], v[i].i[2], v[i].s[3], v[i].s[4],
		    v[i].s[5], arg);
	recs_free(v, n);
	if (r != 0)
		store_errx(st, err, errlen, "walk stopped by the caller");
	return r;
}

long long
report_store_expire(struct report_store *st, long long before, char *err,
    size_t errlen)
{
	sqlite3_stmt *s;
	long long total = 0, n;

	/* In chunks, each its own transaction: the recorder waits for the
	 * write lock at most 5 s. */
	do {
		if ((s = store_stmt(st, SQL_EXPIRE, err, errlen)) == NULL)
			return -1;
		if ((store_bind_int(s, 1, before) |
		    store_bind_int(s, 2, STORE_EXPIRE_CHUNK)) != SQLITE_OK) {
			store_err(st, err, errlen, "bind");
			store_done(s);
			return -1;
		}
		if (store_step_done(st, s, "expiring", err, errlen) == -1)
			return -1;
		n = (long long)sqlite3_changes64(st->db);
		total += n;
	} while (n == STORE_EXPIRE_CHUNK);
	return total;
}

/* addr in lower case (ASCII), malloc'd */
static char *
dest_key(struct report_store *st, const char *addr, char *err, size_t errlen)
{
	char *k, *p;

	if (addr == NULL || *addr == '\0') {
		store_errx(st, err, errlen, "empty destination");
		return NULL;
	}
	if ((k = strdup(addr)) == NULL) {
		store_errx(st, err, errlen, "out of memory");
		return NULL;
	}
	for (p = k; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p += 'a' - 'A';
	return k;
}

int
report_store_dest_result(struct report_store *st, const char *addr,
    int ok, const char *text, int max_failures, long long suppress_for,
    char *err, size_t errlen)
{
	sqlite3_stmt *s;
	char *key;
	int rc = 0;

	if ((key = dest_key(st, addr, err, errlen)) == NULL)
		return -1;
	if ((s = store_stmt(st, ok ? SQL_DEST_OK : SQL_DEST_FAIL, err,
	    errlen)) == NULL) {
		free(key);
		return -1;
	}
	rc |= store_bind_text(s, 1, key);
	if (!ok) {
		rc |= store_bind_int(s, 2, (long long)time(NULL));
		rc |= store_bind_text(s, 3, text);
		rc |= store_bind_int(s, 4, max_failures);
		rc |= store_bind_int(s, 5, suppress_for);
	}
	if (rc != SQLITE_OK) {
		store_err(st, err, errlen, "bind");
		store_done(s);
		free(key);
		return -1;
	}
	rc = store_step_done(st, s, "noting a delivery result", err, errlen);
	free(key);
	return rc;
}

int
report_store_dest_suppressed(struct report_store *st, const char *addr,
    long long now, long long *until_r, char *err, size_t errlen)
{
	sqlite3_stmt *s;
	long long until = 0;
	char *key;
	int rc;

	if ((key = dest_key(st, addr, err, errlen)) == NULL)
		return -1;
	if ((s = store_stmt(st, SQL_DEST_GET, err, errlen)) == NULL) {
		free(key);
		return -1;
	}
	if (store_bind_text(s, 1, key) != SQLITE_OK) {
		store_err(st, err, errlen, "bind");
		store_done(s);
		free(key);
		return -1;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		until = sqlite3_column_int64(s, 0);
	else if (rc != SQLITE_DONE) {
		store_err(st, err, errlen, "reading a destination");
		store_done(s);
		free(key);
		return -1;
	}
	store_done(s);
	free(key);
	if (until > now) {
		if (until_r != NULL)
			*until_r = until;
		return 1;
	}
	return 0;
}
