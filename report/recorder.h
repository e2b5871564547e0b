/*
 * report/recorder: records DMARC evaluations into the store from the
 * daemon without blocking its event loop. report_recorder_add copies the
 * evaluation into a bounded in-memory queue and returns at once; one
 * worker thread owns the store handle and commits whatever has queued
 * up, one transaction per batch (so the lag is one commit: no timer).
 * When the queue is full (REPORT_RECORDER_QUEUE) the evaluation is
 * dropped and counted (reporting is best-effort, mail never waits for
 * it); drops and store errors are logged at most once a minute with
 * their count. report_recorder_free commits what is queued, then stops.
 *
 * The same thread also notes rua delivery results
 * (report_recorder_dest_result: report_store_dest_result's arguments).
 */
#ifndef REPORT_RECORDER_H
#define REPORT_RECORDER_H

#include <stddef.h>

#include "report/report.h"

#define REPORT_RECORDER_QUEUE	10000

struct report_recorder;

/* Opens the store at path (created when missing) and starts the thread.
 * NULL with err filled. */
struct report_recorder *report_recorder_new(const char *path, char *err,
    size_t errlen);
void report_recorder_free(struct report_recorder *rec);

/* 0 queued, -1 dropped (queue full or no memory). Thread-safe. */
int report_recorder_add(struct report_recorder *rec,
    const struct report_policy *p, const struct report_row *r);
int report_recorder_dest_result(struct report_recorder *rec, const char *addr,
    int ok, const char *text, int max_failures, long long suppress_for);

/* Retention: the worker deletes evaluations older than seconds (reported
 * or not, report_store_expire) when it starts idling and then hourly, so
 * the store stays bounded whether reports are sent or not. 0: never. */
void report_recorder_set_retention(struct report_recorder *rec,
    long long seconds);

/* Wait until everything added before the call is committed (tests and
 * shutdown). */
void report_recorder_sync(struct report_recorder *rec);

/* Counters since start. */
struct report_recorder_stats {
	unsigned long long recorded, dropped, errors;
};
void report_recorder_stats(struct report_recorder *rec,
    struct report_recorder_stats *s);

#endif
