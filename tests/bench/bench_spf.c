/*
 * SPF checks per second with a warm resolver cache: a benchmark, not a
 * test. Usage: bench_spf DNS_HOST:PORT SENDER IP COUNT PARALLEL
 * (tests/bench/spf.sh starts a DNS server with a realistic zone and runs
 * this; `make bench` builds it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "auth/spf.h"
#include "auth/spf_query.h"
#include "lib/dns.h"

struct bench {
	struct event_base *base;
	struct dns_resolver *r;
	struct spf_params p;
	long left, running, done;
	long results[SPF_PERMERROR + 1];
};

static void bench_start(struct bench *b);

static void
bench_done(const struct spf *s, void *arg)
{
	struct bench *b = arg;

	b->results[spf_result(s)]++;
	b->running--;
	b->done++;
	bench_start(b);
	if (b->running == 0 && b->left == 0)
		event_base_loopbreak(b->base);
}

/* One more check in flight, if any are left. */
static void
bench_start(struct bench *b)
{
	if (b->left > 0 &&
	    spf_query_start(b->base, b->r, &b->p, 20000, bench_done, b) != NULL) {
		b->left--;
		b->running++;
	}
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	struct bench b;
	struct dns_config dc;
	const char *server;
	char err[256];
	long count, parallel, i;
	double t0, t1;

	if (argc != 6) {
		fprintf(stderr, "usage: bench_spf DNS_HOST:PORT SENDER IP COUNT PARALLEL\n");
		return 2;
	}
	server = argv[1];
	memset(&b, 0, sizeof(b));
	memset(&dc, 0, sizeof(dc));
	dc.servers = &server;
	dc.nservers = 1;
	b.base = event_base_new();
	if ((b.r = dns_resolver_new(b.base, &dc, err, sizeof(err))) == NULL) {
		fprintf(stderr, "resolver: %s\n", err);
		return 1;
	}
	b.p.identity = SPF_ID_MAILFROM;
	b.p.sender = argv[2];
	b.p.ip = argv[3];
	b.p.helo = "bench.test";
	b.p.receiver = "mx.bench.test";
	count = atol(argv[4]);
	parallel = atol(argv[5]);

	/* warm the cache */
	b.left = 1;
	bench_start(&b);
	event_base_dispatch(b.base);
	memset(b.results, 0, sizeof(b.results));
	b.done = 0;

	b.left = count;
	t0 = now();
	for (i = 0; i < parallel && b.left > 0; i++) {
		if (spf_query_start(b.base, b.r, &b.p, 20000, bench_done, &b) == NULL)
			break;
		b.left--;
		b.running++;
	}
	event_base_dispatch(b.base);
	t1 = now();
	printf("spf checks: %ld in %.3f s = %.0f/s (warm cache, %ld in flight); "
	    "pass=%ld fail=%ld other=%ld\n", b.done, t1 - t0,
	    b.done / (t1 - t0), parallel, b.results[SPF_PASS], b.results[SPF_FAIL],
	    b.done - b.results[SPF_PASS] - b.results[SPF_FAIL]);
	dns_resolver_free(b.r);
	event_base_free(b.base);
	return 0;
}
