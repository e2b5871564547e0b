/*
 * queue/scheduler: decides when each queued message is attempted, runs
 * attempts through queue/delivery, and settles the outcome in the spool:
 * delivered and failed recipients are recorded, the message is removed
 * once no recipient is pending, otherwise retried with exponential backoff
 * until max_lifetime, when the rest fail.
 *
 * Reports to the sender (RFC 3464 DSNs, queue/dsn.h), queued like any
 * message from the null sender, never about a message from the null
 * sender (so never about a report): after each attempt, one "failed"
 * report listing the recipients that failed in it, one "relayed" report
 * for those delivered in it that asked NOTIFY=SUCCESS where the next hop
 * did not take the request (RFC 3461 5.2.2), and once per message, when
 * delay_warning has passed since arrival, one "delayed" report listing the
 * recipients still pending (recorded in the envelope). A recipient is in
 * a report only if its NOTIFY allows it (none given: FAILURE,DELAY).
 *
 * The schedule lives in memory; the spool is the truth. On start the
 * gateway feeds every recovered message with scheduler_add. While it runs,
 * a timer checks the spool's pickup/ once a second (spool_pickup): a
 * message named there is due now, added if it is not known yet (that is
 * how `mxgate quarantine release` and `mxgate queue release|flush` reach
 * a running daemon); pickup/FLUSH-ALL makes every known message due now.
 * An attempt holds its message's content locked (spool_attempt_lock) until
 * its outcome is written; a message found gone from queue/ when its turn
 * comes (held or deleted by `mxgate queue`) is forgotten with an info line.
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
	int delay_warning;	/* seconds before one "delayed" report (RFC
				 * 3464) goes to the sender; 0: never */
	/* Called (when set) for each recipient whose state became final in
	 * an attempt, delivered or failed (expired included), before the
	 * outcome is written; rcpt indexes env->rcpts. */
	void (*on_settled)(const struct envelope *env, size_t rcpt, void *arg);
	void *settled_arg;
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
