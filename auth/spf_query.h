/*
 * auth/spf_query: runs one SPF check (auth/spf) against the resolver
 * (lib/dns) on the event loop, within a time budget. The engine asks one
 * question at a time; each answer resumes it.
 *
 * The callback runs once, never inside spf_query_start(); the engine it
 * gets (results, explanation, header) is valid only during the call.
 * Past the budget the pending question is cancelled and the result is
 * temperror. After spf_query_cancel() no callback runs.
 */
#ifndef AUTH_SPF_QUERY_H
#define AUTH_SPF_QUERY_H

#include "auth/spf.h"
#include "lib/dns.h"

struct event_base;
struct spf_query;

typedef void (*spf_query_cb)(const struct spf *s, void *arg);

/* NULL on allocation failure (no callback then). */
struct spf_query *spf_query_start(struct event_base *base,
    struct dns_resolver *r, const struct spf_params *p, int budget_ms,
    spf_query_cb cb, void *arg);
void spf_query_cancel(struct spf_query *q);

#endif
