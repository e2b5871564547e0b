#include "auth/spf_query.h"

#include <stdlib.h>

#include <event2/event.h>

#include "lib/log.h"

struct spf_query {
	struct spf *spf;
	struct dns_resolver *r;
	struct dns_query *dq;		/* question in flight */
	struct event *budget;
	struct event *kick;		/* resume from the loop */
	spf_query_cb cb;
	void *arg;
};

static void spf_query_advance(struct spf_query *q);

static void
spf_query_free(struct spf_query *q)
{
	if (q->dq)
		dns_cancel(q->dq);
	if (q->budget)
		event_free(q->budget);
	if (q->kick)
		event_free(q->kick);
	spf_free(q->spf);
	free(q);
}

static void
spf_query_finish(struct spf_query *q)
{
	spf_query_cb cb = q->cb;
	void *arg = q->arg;
	struct spf *s = q->spf;

	q->spf = NULL;
	spf_query_free(q);
	cb(s, arg);
	spf_free(s);
}

static void
spf_query_on_answer(const struct dns_answer *a, void *arg)
{
	struct spf_query *q = arg;

	q->dq = NULL;
	spf_answer(q->spf, a);
	spf_query_advance(q);
}

static void
spf_query_advance(struct spf_query *q)
{
	const char *name;
	enum dns_type type;

	if (spf_step(q->spf, &name, &type) == SPF_DONE) {
		spf_query_finish(q);
		return;
	}
	q->dq = dns_query(q->r, name, type, spf_query_on_answer, q);
	if (q->dq == NULL) {
		spf_abort(q->spf, "out of memory starting a DNS query");
		spf_query_finish(q);
	}
}

static void
spf_query_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	spf_query_advance(arg);
}

static void
spf_query_budget_cb(evutil_socket_t fd, short what, void *arg)
{
	struct spf_query *q = arg;

	if (q->dq) {
		dns_cancel(q->dq);
		q->dq = NULL;
	}
	spf_abort(q->spf, "time budget for the SPF check exceeded");
	spf_query_finish(q);
}

struct spf_query *
spf_query_start(struct event_base *base, struct dns_resolver *r,
    const struct spf_params *p, int budget_ms, spf_query_cb cb, void *arg)
{
	struct spf_query *q = calloc(1, sizeof(*q));
	struct timeval tv = { budget_ms / 1000, (budget_ms % 1000) * 1000 },
	    now = { 0, 0 };

	if (q == NULL)
		return NULL;
	q->r = r;
	q->cb = cb;
	q->arg = arg;
	if ((q->spf = spf_new(p)) == NULL ||
	    (q->budget = evtimer_new(base, spf_query_budget_cb, q)) == NULL ||
	    (q->kick = evtimer_new(base, spf_query_kick_cb, q)) == NULL) {
		spf_query_free(q);
		return NULL;
	}
	evtimer_add(q->budget, &tv);
	evtimer_add(q->kick, &now);
	return q;
}

void
spf_query_cancel(struct spf_query *q)
{
	if (q)
		spf_query_free(q);
}
