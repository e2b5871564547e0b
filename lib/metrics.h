/*
 * metrics: the registry behind the Prometheus endpoint, usable from every
 * layer (a mutex inside: any thread may count).
 *
 * A family is a name (Prometheus metric name syntax), a type and a help
 * text (metrics_define). A series is a family plus up to METRICS_MAX_LABELS
 * label pairs given as NUL-terminated strings after the value:
 *
 *	metrics_inc("mxgate_dns_queries_total", "type", "TXT",
 *	    "outcome", "nxdomain");
 *	metrics_observe("mxgate_check_duration_seconds", secs, "check", "spf");
 *
 * (the macros add the NULL that ends the list). A name used before it is
 * defined gets a family of the type of that first use and no help text.
 *
 * Bounded: at most METRICS_MAX_SERIES series in all (a histogram is one).
 * What does not fit (a new series past the cap, a label text past
 * METRICS_LABELS_MAX octets, a bad name, a use that does not match the
 * family's type) is dropped and counted in mxgate_metrics_dropped_total.
 * Label values are escaped on output, but every series stays until exit:
 * a value that comes from the wire (a TLS version, a result word) must be
 * mapped to a fixed vocabulary first (metrics_vocab), or anyone could
 * fill the registry.
 *
 * Until metrics_enable(1) every call returns at once (one atomic load):
 * a daemon without [metrics] listen pays nothing.
 */
#ifndef LIB_METRICS_H
#define LIB_METRICS_H

#include <stddef.h>

struct buf;

#define METRICS_MAX_SERIES	4096
#define METRICS_MAX_FAMILIES	128
#define METRICS_MAX_LABELS	4	/* label pairs per series */
#define METRICS_LABELS_MAX	256	/* rendered label text of a series */
#define METRICS_NAME_MAX	96
#define METRICS_MAX_COLLECTORS	8

/* The endpoint that serves the registry (gateway/metrics_http.c): at most
 * this many connections at once (the daemon counts them in its descriptor
 * budget), each closed this many seconds after it was accepted. */
#define METRICS_HTTP_MAX_CONNS	16
#define METRICS_HTTP_DEADLINE	10

enum metrics_type {
	METRICS_COUNTER,
	METRICS_GAUGE,
	METRICS_HISTOGRAM,	/* seconds: 0.001 ... 30, +Inf */
};

/* Start (1) or stop (0) counting; off at start. Series stay. */
void metrics_enable(int on);
int metrics_enabled(void);

/* Name a family: 0, or -1 for a bad name, a full registry or a name
 * defined before with another type (the same definition again is fine). */
int metrics_define(const char *name, enum metrics_type type, const char *help);

/* Counter += 1, counter += n (counters only go up). */
void metrics_inc_l(const char *name, ...)
	__attribute__((sentinel));
void metrics_add_l(const char *name, unsigned long long n, ...)
	__attribute__((sentinel));
/* Gauge = v. */
void metrics_set_l(const char *name, double v, ...)
	__attribute__((sentinel));
/* One observation of v (seconds) in a histogram. */
void metrics_observe_l(const char *name, double v, ...)
	__attribute__((sentinel));

#define metrics_inc(...)	metrics_inc_l(__VA_ARGS__, (const char *)0)
#define metrics_add(...)	metrics_add_l(__VA_ARGS__, (const char *)0)
#define metrics_set(...)	metrics_set_l(__VA_ARGS__, (const char *)0)
#define metrics_observe(...)	metrics_observe_l(__VA_ARGS__, (const char *)0)

/* v when it is one of the NULL-terminated list words, else "other". */
const char *metrics_vocab(const char *v, const char *const *words);

/* A monotonic clock in seconds, for durations. */
double metrics_now(void);

/*
 * Called by metrics_render before it writes, in the renderer's thread,
 * without the registry's lock held: where gauges are set from state only
 * their owner may read. 0, or -1 when METRICS_MAX_COLLECTORS are set.
 */
int metrics_collector_add(void (*fn)(void *arg), void *arg);
void metrics_collector_remove(void (*fn)(void *arg), void *arg);

/* The text exposition format 0.0.4: every family with # HELP and # TYPE,
 * in definition order, series in creation order. 0, or -1 when out of
 * memory (out then holds a part). */
int metrics_render(struct buf *out);

/* Forget every family, series and collector (tests, exit). */
void metrics_reset(void);

#endif
