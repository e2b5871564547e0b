/*
 * report/store: the DMARC reporting store, one SQLite database (WAL
 * journal, synchronous=NORMAL: a crash or kill -9 of the process loses no
 * committed transaction; a power failure may lose the last ones but never
 * corrupts the file; busy timeout 5 s, so the daemon and the command line
 * share it). The schema is created on first open and carries a version
 * (PRAGMA user_version); a newer version than this code knows is an
 * error, never overwritten.
 *
 * Two halves:
 *   - as a receiver: every DMARC evaluation (report_store_add), and the
 *     bookkeeping of the aggregate reports made from them (which period
 *     of which policy domain was reported, under which report id) and of
 *     rua destinations (failures, suppression);
 *   - as a domain owner: aggregate reports others sent us, imported
 *     (report_store_import), deduplicated by (org_name, report_id), and
 *     summarised (report_store_summary).
 *
 * Every call blocks on the disk: the daemon records through
 * report/recorder.h (a worker thread), the command line calls directly.
 * Strings handed in are copied; strings handed out by callbacks are valid
 * only during the callback. Calls return 0 on success and -1 with err
 * filled ("what: why", e.g. "report store /var/.../reports.db: database
 * is locked") unless said otherwise. Not thread-safe: one thread per
 * handle.
 *
 * Walks (the calls taking a cb): a non-zero return from cb stops the walk
 * and is returned (err then says "walk stopped by the caller"). The
 * callbacks of report_store_pending, _unfinished and _reports may call
 * the store (the list is read whole first); those of report_store_rows
 * and _summary must not (they run while the query does).
 */
#ifndef REPORT_STORE_H
#define REPORT_STORE_H

#include <stddef.h>

#include "report/report.h"

struct report_store;

/* Creates the file (mode 0600) and its schema when missing, unless
 * readonly. */
struct report_store *report_store_open(const char *path, int readonly,
    char *err, size_t errlen);
void report_store_close(struct report_store *st);

/* ---- receiver side ---- */

/* One evaluation: r (count taken as 1; time 0 = now) under the policy that
 * applied (p->domain is the policy domain; its other fields are the
 * record as published, kept with the row: a report states the policy of
 * the last evaluation of its period, RFC 9990 2.1). */
int report_store_add(struct report_store *st, const struct report_policy *p,
    const struct report_row *r, char *err, size_t errlen);
/* Several in one transaction (the recorder's batches). */
int report_store_add_many(struct report_store *st,
    const struct report_policy *const *p, const struct report_row *const *r,
    size_t n, char *err, size_t errlen);

/* Policy domains with evaluations at or after their reported_until (0 for
 * a domain never reported), with the time of the earliest such one and
 * the reported_until itself: cb(domain, first, reported_until, arg); a
 * non-zero return from cb stops the walk and is returned. */
int report_store_pending(struct report_store *st,
    int (*cb)(const char *domain, long long first, long long reported_until,
    void *arg), void *arg, char *err, size_t errlen);

/* The rows of domain's evaluations with begin <= time < end, aggregated:
 * one row per distinct (source_ip, disposition, dkim_aligned,
 * spf_aligned, reasons, header_from, envelope_from, envelope_to,
 * spf_domain/scope/result, dkim results) with its count, ordered by count
 * descending then source_ip; and the policy of the latest evaluation in
 * the range. cb gets each row; policy_cb (may be NULL) gets the policy
 * once, before the rows (policy and rows from one read snapshot); cb NULL:
 * the policy alone (no aggregation). Nothing in range: 0, no callback. A
 * row's time is 0. */
int report_store_rows(struct report_store *st, const char *domain,
    long long begin, long long end,
    void (*policy_cb)(const struct report_policy *p, void *arg),
    int (*cb)(const struct report_row *r, void *arg), void *arg,
    char *err, size_t errlen);

/*
 * Report bookkeeping, so that a period is reported once and a crash
 * between building and queueing resends the same report (RFC 9990: the
 * same file name and Report-ID).
 *   report_store_begin_report: in one transaction, record report id for
 *     (domain, begin, end) in state "pending" and move the domain's
 *     reported_until to end (never backwards: a late older period does
 *     not reopen later ones). 1 if created, 0 if that (domain, begin) was
 *     already recorded (its id is copied into id_r[idlen]; id_r may be
 *     NULL; an id longer than idlen - 1 is an error). An id already used
 *     for another (domain, begin) is an error.
 *   report_store_finish_report: state "queued" (or "skipped" with a
 *     reason: no usable rua, all over their size limit..., or "failed");
 *     any non-empty word is kept, only "pending" means unfinished. An
 *     unknown id is an error.
 *   report_store_unfinished: each report still "pending"
 *     (cb(domain, begin, end, id, arg)).
 */
int report_store_begin_report(struct report_store *st, const char *domain,
    long long begin, long long end, const char *id, char *id_r,
    size_t idlen, char *err, size_t errlen);
int report_store_finish_report(struct report_store *st, const char *id,
    const char *state, const char *why, char *err, size_t errlen);
int report_store_unfinished(struct report_store *st,
    int (*cb)(const char *domain, long long begin, long long end,
    const char *id, void *arg), void *arg, char *err, size_t errlen);
/* Reports made so far, newest first, at most limit (0 = all). */
int report_store_reports(struct report_store *st, size_t limit,
    int (*cb)(const char *domain, long long begin, long long end,
    const char *id, const char *state, const char *why, void *arg),
    void *arg, char *err, size_t errlen);

/* Evaluations older than before, reported or not: deleted (retention;
 * the daemon's recorder runs it too, so the store stays bounded when no
 * report is sent). The number deleted, or -1. */
long long report_store_expire(struct report_store *st, long long before,
    char *err, size_t errlen);

/*
 * rua destinations ("mailto:" address, lower case): each queued report's
 * final delivery result is noted; a success clears the count, a failure
 * adds one (at most one a day: an outage that fails several reports at
 * once counts once); at max_failures consecutive failures the destination is
 * suppressed until (now + suppress_for). report_store_dest_suppressed: 1
 * suppressed (until_r set), 0 not, -1 error.
 */
int report_store_dest_result(struct report_store *st, const char *addr,
    int ok, const char *text, int max_failures, long long suppress_for,
    char *err, size_t errlen);
int report_store_dest_suppressed(struct report_store *st, const char *addr,
    long long now, long long *until_r, char *err, size_t errlen);

/* ---- domain-owner side ---- */

/* One aggregate report received (report/import.h parses it). 1 stored, 0
 * already there (same org_name and report_id), -1 error. source names
 * where it came from (file name), for the summary. */
int report_store_import(struct report_store *st, const struct report_meta *m,
    const struct report_policy *p, const struct report_row *rows,
    size_t nrows, const char *source, char *err, size_t errlen);

/* Aggregates over imported reports whose date_range ends at or after
 * since (0 = all), for policy domain (NULL/"" = all; policy domains are
 * compared without case and kept in lower case). One entry per (policy
 * domain, source_ip, reporter org_name): message count and how many had
 * DMARC pass (dkim or spf aligned), DKIM aligned, SPF aligned, and each
 * disposition. Ordered by messages descending. */
struct report_summary_entry {
	const char *domain;		/* policy domain */
	const char *source_ip;
	const char *reporter;		/* org_name */
	long long messages;
	long long dmarc_pass, dkim_aligned, spf_aligned;
	long long disp_none, disp_pass, disp_quarantine, disp_reject;
	long long reports;		/* distinct reports it appears in */
	long long first, last;		/* date_range span seen */
};
int report_store_summary(struct report_store *st, const char *domain,
    long long since,
    int (*cb)(const struct report_summary_entry *e, void *arg), void *arg,
    char *err, size_t errlen);

#endif
