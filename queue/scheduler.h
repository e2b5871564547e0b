/*
 * queue/scheduler: decides when each queued message is attempted, runs
 * attempts through queue/delivery, and settles the outcome in the spool:
 * delivered and failed recipients are recorded, failed ones are bounced to
 * the sender (never for the null sender), the message is removed once no
 * recipient is pending, otherwise retried with exponential backoff until
 * max_lifetime, when the rest fail.
 *
 * The schedule lives in memory; the spool is the truth. On start the
 * gateway feeds every recovered message with scheduler_add. While it runs,
 * a timer checks the spool's pickup/ once a second (spool_pickup) and adds
 * each message released there that it does not know yet, due now: that is
 * how `mxgate quarantine release` reaches a running daemon.
 */
#ifndef QUEUE_SCHEDULER_H
#define QUEUE_SCHEDULER_H

#include "queue/delivery.h"
#include "queue/spool.h"

struct event_base;
struct scheduler;

struct scheduler_params {
	const char *hostname;	/* for bounces */
	int concurrency;	/* attempts in progress at once */
	int retry_initial;	/* seconds until the first retry */
	int retry_max;		/* backoff cap */
	int max_lifetime;	/* seconds before pending recipients fail */
};

/* All borrowed; they must outlive the scheduler. */
struct scheduler *scheduler_new(struct event_base *base, struct spool *sp,
    struct delivery_ctx *dctx, const struct scheduler_params *p);
void scheduler_free(struct scheduler *s);

/* New parameters (configuration reload). */
void scheduler_set_params(struct scheduler *s, const struct scheduler_params *p);

/* A committed message to attempt at `when` (unix seconds; 0 = now). */
int scheduler_add(struct scheduler *s, const char *id, long long when);
/* Messages known, attempts running. */
size_t scheduler_queued(const struct scheduler *s);
size_t scheduler_active(const struct scheduler *s);

/* Backoff after `attempts` failed attempts, exposed for tests. */
int scheduler_backoff(const struct scheduler_params *p, int attempts);

#endif
