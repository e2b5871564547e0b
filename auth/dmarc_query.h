/*
 * auth/dmarc_query: runs one DMARC evaluation (auth/dmarc) against the
 * resolver (lib/dns) on the event loop, within a time budget, asking the
 * engine's questions in parallel.
 *
 * The callback runs once, never inside dmarc_query_start(); the outcome
 * it gets is valid only during the call. Past the budget the pending
 * questions are cancelled and count as timeouts. After
 * dmarc_query_cancel() no callback runs.
 */
#ifndef AUTH_DMARC_QUERY_H
#define AUTH_DMARC_QUERY_H

#include "auth/dmarc.h"
#include "lib/dns.h"

struct event_base;
struct dmarc_query;

typedef void (*dmarc_query_cb)(const struct dmarc_outcome *o, void *arg);

/* NULL on allocation failure (no callback then). */
struct dmarc_query *dmarc_query_start(struct event_base *base,
    struct dns_resolver *r, const struct dmarc_params *p, int budget_ms,
    dmarc_query_cb cb, void *arg);
void dmarc_query_cancel(struct dmarc_query *q);

#endif
