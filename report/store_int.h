/*
 * report/store_int: what store.c and store_import.c share: the handle,
 * the prepared statements, and the helpers for errors, transactions,
 * binding and the serialised lists. Only report/store*.c include this;
 * everyone else uses report/store.h.
 */
#ifndef REPORT_STORE_INT_H
#define REPORT_STORE_INT_H

#include <stddef.h>

#include <sqlite3.h>

#include "lib/buf.h"
#include "report/store.h"

/* The statements (store_sql[] in store.c), prepared on first use. */
enum store_sql {
	SQL_ADD_DOMAIN,
	SQL_ADD_EVAL,
	SQL_POLICY,
	SQL_ROWS,
	SQL_PENDING,
	SQL_REPORT_FIND,
	SQL_REPORT_ADD,
	SQL_DOMAIN_UNTIL,
	SQL_REPORT_FINISH,
	SQL_UNFINISHED,
	SQL_REPORTS,
	SQL_EXPIRE,
	SQL_DEST_OK,
	SQL_DEST_FAIL,
	SQL_DEST_GET,
	SQL_IMPORT_REPORT,
	SQL_IMPORT_RECORD,
	SQL_SUMMARY,
	SQL_N
};

struct report_store {
	sqlite3 *db;
	char *path;
	sqlite3_stmt *stmt[SQL_N];
	struct buf dkim, reasons;	/* serialising */
	struct buf scratch;		/* deserialising */
};

/* s, or "" for NULL. */
const char *store_nz(const char *s);

/* err = "report store PATH: " and the message; the SQLite error after
 * what for store_err. */
void store_errx(struct report_store *st, char *err, size_t errlen,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void store_err(struct report_store *st, char *err, size_t errlen,
    const char *what);

/* Transactions: 0, or -1 with err (store_commit rolls back on failure). */
int store_exec(struct report_store *st, const char *sql, const char *what,
    char *err, size_t errlen);
void store_rollback(struct report_store *st);
int store_commit(struct report_store *st, char *err, size_t errlen);

/* The prepared statement, or NULL with err; store_done after each use. */
sqlite3_stmt *store_stmt(struct report_store *st, enum store_sql which,
    char *err, size_t errlen);
void store_done(sqlite3_stmt *s);
/* Runs a statement that returns no row, then store_done: 0 or -1. */
int store_step_done(struct report_store *st, sqlite3_stmt *s,
    const char *what, char *err, size_t errlen);

/* Binding returns the SQLite code; NULL text binds as "". */
int store_bind_text(sqlite3_stmt *s, int i, const char *v);
int store_bind_int(sqlite3_stmt *s, int i, long long v);
/* Column i as text, "" for NULL; valid until the next step. */
const char *store_col_text(sqlite3_stmt *s, int i);

/* A row's counts within the limits of report.h: 0, or -1 with err. */
int store_check_row(struct report_store *st, const struct report_row *r,
    char *err, size_t errlen);
/* The DKIM and reason lists of r into st->dkim and st->reasons; -1 when
 * out of memory. */
int store_ser_lists(struct report_store *st, const struct report_row *r);
/* Binds the row columns of r (st->dkim and st->reasons serialised) from
 * parameter first on. */
int store_bind_row(sqlite3_stmt *s, int first, struct report_store *st,
    const struct report_row *r);
/* Binds the policy columns of p from parameter first on. */
int store_bind_policy(sqlite3_stmt *s, int first,
    const struct report_policy *p);

#endif
