/*
 * report/store_import: the domain-owner side of the reporting store
 * (store.h): aggregate reports others sent us, imported and deduplicated
 * (report_store_import), and summarised (report_store_summary).
 */
#include "report/store.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "report/store_int.h"

static char *
lower_dup(const char *s)
{
	char *d, *p;

	if ((d = strdup(store_nz(s))) == NULL)
		return NULL;
	for (p = d; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p += 'a' - 'A';
	return d;
}

static int
store_import_rows(struct report_store *st, long long report,
    const struct report_row *rows, size_t nrows, char *err, size_t errlen)
{
	sqlite3_stmt *s;
	size_t i;
	int rc;

	for (i = 0; i < nrows; i++) {
		if (store_check_row(st, &rows[i], err, errlen) == -1)
			return -1;
		if (store_ser_lists(st, &rows[i]) == -1) {
			store_errx(st, err, errlen, "out of memory");
			return -1;
		}
		if ((s = store_stmt(st, SQL_IMPORT_RECORD, err, errlen)) == NULL)
			return -1;
		rc = store_bind_int(s, 1, report);
		rc |= store_bind_int(s, 2, rows[i].count);
		rc |= store_bind_row(s, 3, st, &rows[i]);
		if (rc != SQLITE_OK) {
			store_err(st, err, errlen, "bind");
			store_done(s);
			return -1;
		}
		if (store_step_done(st, s, "adding a record", err, errlen) == -1)
			return -1;
	}
	return 0;
}

int
report_store_import(struct report_store *st, const struct report_meta *m,
    const struct report_policy *p, const struct report_row *rows,
    size_t nrows, const char *source, char *err, size_t errlen)
{
	sqlite3_stmt *s = NULL;
	char *domain;
	int rc = 0;

	if (m == NULL || p == NULL || m->org_name == NULL ||
	    *m->org_name == '\0' || m->report_id == NULL ||
	    *m->report_id == '\0' || p->domain == NULL || *p->domain == '\0') {
		store_errx(st, err, errlen, "report without org_name, "
		    "report_id or policy domain");
		return -1;
	}
	/* Domain names compare without case; stored lower case. */
	if ((domain = lower_dup(p->domain)) == NULL) {
		store_errx(st, err, errlen, "out of memory");
		return -1;
	}
	if (store_exec(st, "BEGIN IMMEDIATE", "begin", err, errlen) == -1) {
		free(domain);
		return -1;
	}
	if ((s = store_stmt(st, SQL_IMPORT_REPORT, err, errlen)) == NULL)
		goto fail;
	rc |= store_bind_text(s, 1, m->org_name);
	rc |= store_bind_text(s, 2, m->report_id);
	rc |= store_bind_text(s, 3, m->email);
	rc |= store_bind_text(s, 4, m->extra_contact_info);
	rc |= store_bind_text(s, 5, m->errors);
	rc |= store_bind_text(s, 6, m->generator);
	rc |= store_bind_text(s, 7, domain);
	rc |= store_bind_int(s, 8, m->begin);
	rc |= store_bind_int(s, 9, m->end);
	rc |= store_bind_text(s, 10, source);
	rc |= store_bind_int(s, 11, (long long)time(NULL));
	rc |= store_bind_policy(s, 12, p);
	if (rc != SQLITE_OK) {
		store_err(st, err, errlen, "bind");
		goto fail;
	}
	if (store_step_done(st, s, "adding the report", err, errlen) == -1)
		goto fail_nos;
	s = NULL;
	/* RFC 9990: report_id is unique per reporter; seen before. */
	if (sqlite3_changes(st->db) == 0) {
		store_rollback(st);
		free(domain);
		return 0;
	}
	if (store_import_rows(st, sqlite3_last_insert_rowid(st->db), rows,
	    nrows, err, errlen) == -1)
		goto fail_nos;
	free(domain);
	if (store_commit(st, err, errlen) == -1)
		return -1;
	return 1;
fail:
	store_done(s);
fail_nos:
	store_rollback(st);
	free(domain);
	return -1;
}

int
report_store_summary(struct report_store *st, const char *domain,
    long long since,
    int (*cb)(const struct report_summary_entry *e, void *arg), void *arg,
    char *err, size_t errlen)
{
	struct report_summary_entry e;
	sqlite3_stmt *s;
	char *d;
	int rc = SQLITE_DONE, r = 0;

	if ((d = lower_dup(domain)) == NULL) {
		store_errx(st, err, errlen, "out of memory");
		return -1;
	}
	if ((s = store_stmt(st, SQL_SUMMARY, err, errlen)) == NULL) {
		free(d);
		return -1;
	}
	if ((store_bind_text(s, 1, d) |
	    store_bind_int(s, 2, since)) != SQLITE_OK) {
		store_err(st, err, errlen, "bind");
		store_done(s);
		free(d);
		return -1;
	}
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&e, 0, sizeof(e));
		e.domain = store_col_text(s, 0);
		e.source_ip = store_col_text(s, 1);
		e.reporter = store_col_text(s, 2);
		e.messages = sqlite3_column_int64(s, 3);
		e.dmarc_pass = sqlite3_column_int64(s, 4);
		e.dkim_aligned = sqlite3_column_int64(s, 5);
		e.spf_aligned = sqlite3_column_int64(s, 6);
		e.disp_none = sqlite3_column_int64(s, 7);
		e.disp_pass = sqlite3_column_int64(s, 8);
		e.disp_quarantine = sqlite3_column_int64(s, 9);
		e.disp_reject = sqlite3_column_int64(s, 10);
		e.reports = sqlite3_column_int64(s, 11);
		e.first = sqlite3_column_int64(s, 12);
		e.last = sqlite3_column_int64(s, 13);
		if ((r = cb(&e, arg)) != 0)
			store_errx(st, err, errlen, "walk stopped by the "
			    "caller");
	}
	if (r == 0 && rc != SQLITE_DONE) {
		/* e.g. "integer overflow" from absurd counts */
		store_err(st, err, errlen, "summarising");
		r = -1;
	}
	store_done(s);
	free(d);
	return r;
}
