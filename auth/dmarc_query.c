/*
 * auth/dmarc_query.c: one DMARC evaluation on the event loop. Every
 * question the engine offers goes out at once (lib/dns), answers are fed
 * back as they come, and a timer bounds the whole.
 */
#include "auth/dmarc_query.h"

#include <stdlib.h>

#include <event2/event.h>

struct dmarc_slot {
	struct dmarc_query *q;
	struct dns_query *dq;	/* in flight; NULL when the slot is free */
	const char *name;	/* the engine's, valid until dmarc_free */
	enum dns_type type;
};

struct dmarc_query {
	struct dmarc *d;
	struct dns_resolver *r;
	/* the engine asks at most DMARC_MAX_QUESTIONS in all */
	struct dmarc_slot slot[DMARC_MAX_QUESTIONS];
	struct event *budget;
	struct event *kick;		/* start from the loop */
	dmarc_query_cb cb;
	void *arg;
};

static void dmarc_query_advance(struct dmarc_query *q);

static void
dmarc_query_drop(struct dmarc_query *q)
{
	size_t i;

	for (i = 0; i < DMARC_MAX_QUESTIONS; i++)
		if (q->slot[i].dq != NULL) {
			dns_cancel(q->slot[i].dq);
			q->slot[i].dq = NULL;
		}
}

static void
dmarc_query_free(struct dmarc_query *q)
{
	dmarc_query_drop(q);
	if (q->budget)
		event_free(q->budget);
	if (q->kick)
		event_free(q->kick);
	dmarc_free(q->d);
	free(q);
}

static void
dmarc_query_finish(struct dmarc_query *q)
{
	dmarc_query_cb cb = q->cb;
	void *arg = q->arg;
	struct dmarc *d = q->d;

	q->d = NULL;
	dmarc_query_free(q);
	cb(dmarc_outcome(d), arg);
	dmarc_free(d);
}

static void
dmarc_query_on_answer(const struct dns_answer *a, void *arg)
{
	struct dmarc_slot *s = arg;
	struct dmarc_query *q = s->q;

	s->dq = NULL;
	dmarc_answer(q->d, s->name, s->type, a);
	dmarc_query_advance(q);
}

static void
dmarc_query_advance(struct dmarc_query *q)
{
	struct dmarc_slot *s;
	const char *name;
	enum dns_type type;
	size_t i;

	while (!dmarc_done(q->d) &&
	    (name = dmarc_next_query(q->d, &type)) != NULL) {
		for (i = 0; i < DMARC_MAX_QUESTIONS; i++)
			if (q->slot[i].dq == NULL)
				break;
		if (i == DMARC_MAX_QUESTIONS) {
			dmarc_abort(q->d, "too many DNS questions in flight");
			break;
		}
		s = &q->slot[i];
		s->q = q;
		s->name = name;
		s->type = type;
		if ((s->dq = dns_query(q->r, name, type, dmarc_query_on_answer,
		    s)) == NULL) {
			dmarc_abort(q->d, "out of memory starting a DNS query");
			break;
		}
	}
	if (!dmarc_done(q->d)) {
		for (i = 0; i < DMARC_MAX_QUESTIONS; i++)
			if (q->slot[i].dq != NULL)
				return;		/* wait for an answer */
		/* nothing in flight and not done: cannot happen */
		dmarc_abort(q->d, "DMARC evaluation stalled");
	}
	dmarc_query_finish(q);
}

static void
dmarc_query_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	dmarc_query_advance(arg);
}

static void
dmarc_query_budget_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dmarc_query *q = arg;

	dmarc_query_drop(q);
	dmarc_abort(q->d, "time budget for the DMARC check exceeded");
	dmarc_query_finish(q);
}

struct dmarc_query *
dmarc_query_start(struct event_base *base, struct dns_resolver *r,
    const struct dmarc_params *p, int budget_ms, dmarc_query_cb cb, void *arg)
{
	struct dmarc_query *q = calloc(1, sizeof(*q));
	struct timeval tv = { budget_ms / 1000, (budget_ms % 1000) * 1000 },
	    now = { 0, 0 };

	if (q == NULL)
		return NULL;
	q->r = r;
	q->cb = cb;
	q->arg = arg;
	if ((q->d = dmarc_new(p)) == NULL ||
	    (q->budget = evtimer_new(base, dmarc_query_budget_cb, q)) == NULL ||
	    (q->kick = evtimer_new(base, dmarc_query_kick_cb, q)) == NULL) {
		dmarc_query_free(q);
		return NULL;
	}
	evtimer_add(q->budget, &tv);
	evtimer_add(q->kick, &now);
	return q;
}

void
dmarc_query_cancel(struct dmarc_query *q)
{
	if (q)
		dmarc_query_free(q);
}
