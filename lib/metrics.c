/*
 * metrics: one mutex over a fixed registry. A series is found by a hash of
 * its family name and its rendered label text (which is also what is
 * written out), so an increment is: format the labels on the caller's
 * stack, lock, one hash chain walk, add, unlock. Families keep their
 * series in creation order for the output.
 */
#include "lib/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/buf.h"

#define NBUCKETS	14
#define HASH_SIZE	8192		/* a power of two, twice the series cap */
#define DROPPED_NAME	"mxgate_metrics_dropped_total"

/* upper bounds (le) in seconds, and as written */
static const double bucket_le[NBUCKETS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
	10, 30,
};
static const char *const bucket_text[NBUCKETS] = {
	"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
	"0.5", "1", "2.5", "5", "10", "30",
};

struct series {
	struct family *fam;
	struct series *next;		/* in its family, creation order */
	struct series *hnext;		/* hash chain */
	uint32_t hash;
	unsigned long long count;	/* counter value; observations */
	double value;			/* gauge value; sum of observations */
	unsigned long long bucket[NBUCKETS];	/* per bucket, not cumulative */
	char labels[];			/* k="v",k="v" escaped; "" for none */
};

struct family {
	char name[METRICS_NAME_MAX];
	char *help;			/* NULL: used before defined */
	enum metrics_type type;
	struct series *first, *last;
};

struct collector {
	void (*fn)(void *arg);
	void *arg;
};

static pthread_mutex_t metrics_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int metrics_on;
static atomic_ullong metrics_dropped;
static struct family families[METRICS_MAX_FAMILIES];
static size_t nfamilies;
static struct series *table[HASH_SIZE];
static size_t nseries;
static struct collector collectors[METRICS_MAX_COLLECTORS];

void
metrics_enable(int on)
{
	atomic_store(&metrics_on, on != 0);
}

int
metrics_enabled(void)
{
	return atomic_load_explicit(&metrics_on, memory_order_relaxed);
}

/* Prometheus data model: metric names [a-zA-Z_:][a-zA-Z0-9_:]*, label
 * names the same without ':' (and "__" reserved). */
static int
metrics_valid_name(const char *s, int metric)
{
	size_t i;

	if (s == NULL || *s == '\0' || strlen(s) >= METRICS_NAME_MAX)
		return 0;
	if (!metric && s[0] == '_' && s[1] == '_')
		return 0;
	for (i = 0; s[i]; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    c == '_' || (metric && c == ':') ||
		    (i > 0 && c >= '0' && c <= '9')))
			return 0;
	}
	return 1;
}

static void
metrics_drop(void)
{
	atomic_fetch_add_explicit(&metrics_dropped, 1, memory_order_relaxed);
}

/*
 * The label pairs of ap as k="v",k="v" into out[n], sorted by name (one
 * label set is one series, whatever order a caller names it in), values
 * escaped as the text format wants (backslash, double quote, line feed).
 * Length, or -1 for a bad or repeated name, a name without value, too
 * many pairs or too long a text.
 */
static int
metrics_labels(va_list ap, enum metrics_type type, char *out, size_t n)
{
	const char *k[METRICS_MAX_LABELS + 1], *v[METRICS_MAX_LABELS + 1];
	const char *p;
	size_t len = 0, np = 0, i, j;

	while ((k[np] = va_arg(ap, const char *)) != NULL) {
		if ((v[np] = va_arg(ap, const char *)) == NULL ||
		    !metrics_valid_name(k[np], 0) ||
		    (type == METRICS_HISTOGRAM && strcmp(k[np], "le") == 0) ||
		    ++np > METRICS_MAX_LABELS)
			return -1;
		for (i = np - 1; i > 0 && strcmp(k[i - 1], k[i]) >= 0; i--) {
			if (strcmp(k[i - 1], k[i]) == 0)
				return -1;
			p = k[i];
			k[i] = k[i - 1];
			k[i - 1] = p;
			p = v[i];
			v[i] = v[i - 1];
			v[i - 1] = p;
		}
	}
	out[0] = '\0';
	for (i = 0; i < np; i++) {
		if (len + strlen(k[i]) + 4 >= n)
			return -1;
		len += (size_t)snprintf(out + len, n - len, "%s%s=\"",
		    i ? "," : "", k[i]);
		for (j = 0; v[i][j]; j++) {
			char c = v[i][j];
			const char *e = c == '\\' ? "\\\\" : c == '"' ? "\\\"" :
			    c == '\n' ? "\\n" : NULL;

			if (len + (e ? 2 : 1) + 2 >= n)
				return -1;
			if (e) {
				memcpy(out + len, e, 2);
				len += 2;
			} else
				out[len++] = c;
		}
		out[len++] = '"';
		out[len] = '\0';
	}
	return (int)len;
}

/* FNV-1a over name, a NUL, labels. */
static uint32_t
metrics_hash(const char *name, const char *labels)
{
	uint32_t h = 2166136261u;
	const unsigned char *p;

	for (p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 16777619u;
	h *= 16777619u;
	for (p = (const unsigned char *)labels; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

/* Under the lock. */
static struct family *
metrics_family(const char *name, enum metrics_type type, int create)
{
	size_t i;

	for (i = 0; i < nfamilies; i++)
		if (strcmp(families[i].name, name) == 0)
			return &families[i];
	if (!create || nfamilies == METRICS_MAX_FAMILIES ||
	    !metrics_valid_name(name, 1) || strcmp(name, DROPPED_NAME) == 0)
		return NULL;
	memset(&families[nfamilies], 0, sizeof(families[0]));
	snprintf(families[nfamilies].name, METRICS_NAME_MAX, "%s", name);
	families[nfamilies].type = type;
	return &families[nfamilies++];
}

/* Under the lock: the series, created if there is room; NULL if not or
 * if the family has another type. */
static struct series *
metrics_series(const char *name, const char *labels, size_t llen,
    enum metrics_type type)
{
	uint32_t h = metrics_hash(name, labels);
	struct series *s;
	struct family *f;

	for (s = table[h & (HASH_SIZE - 1)]; s != NULL; s = s->hnext)
		if (s->hash == h && strcmp(s->labels, labels) == 0 &&
		    strcmp(s->fam->name, name) == 0)
			return s->fam->type == type ? s : NULL;
	if (nseries >= METRICS_MAX_SERIES ||
	    (f = metrics_family(name, type, 1)) == NULL || f->type != type ||
	    (s = calloc(1, sizeof(*s) + llen + 1)) == NULL)
		return NULL;
	memcpy(s->labels, labels, llen + 1);
	s->fam = f;
	s->hash = h;
	s->hnext = table[h & (HASH_SIZE - 1)];
	table[h & (HASH_SIZE - 1)] = s;
	if (f->last)
		f->last->next = s;
	else
		f->first = s;
	f->last = s;
	nseries++;
	return s;
}

static void
metrics_record(const char *name, enum metrics_type type,
    unsigned long long n, double v, va_list ap)
{
	char labels[METRICS_LABELS_MAX];
	struct series *s;
	int len;
	size_t i;

	if ((len = metrics_labels(ap, type, labels, sizeof(labels))) == -1 ||
	    name == NULL || (type == METRICS_HISTOGRAM && isnan(v))) {
		metrics_drop();
		return;
	}
	pthread_mutex_lock(&metrics_mu);
	if ((s = metrics_series(name, labels, (size_t)len, type)) == NULL) {
		pthread_mutex_unlock(&metrics_mu);
		metrics_drop();
		return;
	}
	switch (type) {
	case METRICS_COUNTER:
		s->count += n;
		break;
	case METRICS_GAUGE:
		s->value = v;
		break;
	case METRICS_HISTOGRAM:
		for (i = 0; i < NBUCKETS; i++)
			if (v <= bucket_le[i]) {
				s->bucket[i]++;
				break;
			}
		s->count++;
		s->value += v;
		break;
	}
	pthread_mutex_unlock(&metrics_mu);
}

void
metrics_inc_l(const char *name, ...)
{
	va_list ap;

	if (!metrics_enabled())
		return;
	va_start(ap, name);
	metrics_record(name, METRICS_COUNTER, 1, 0, ap);
	va_end(ap);
}

void
metrics_add_l(const char *name, unsigned long long n, ...)
{
	va_list ap;

	if (!metrics_enabled())
		return;
	va_start(ap, n);
	metrics_record(name, METRICS_COUNTER, n, 0, ap);
	va_end(ap);
}

void
metrics_set_l(const char *name, double v, ...)
{
	va_list ap;

	if (!metrics_enabled())
		return;
	va_start(ap, v);
	metrics_record(name, METRICS_GAUGE, 0, v, ap);
	va_end(ap);
}

void
metrics_observe_l(const char *name, double v, ...)
{
	va_list ap;

	if (!metrics_enabled())
		return;
	va_start(ap, v);
	metrics_record(name, METRICS_HISTOGRAM, 0, v, ap);
	va_end(ap);
}

int
metrics_define(const char *name, enum metrics_type type, const char *help)
{
	struct family *f;
	int r = -1;

	pthread_mutex_lock(&metrics_mu);
	if ((f = metrics_family(name, type, 1)) != NULL && f->type == type) {
		r = 0;
		if (f->help == NULL && help != NULL &&
		    (f->help = strdup(help)) == NULL)
			r = -1;
	}
	pthread_mutex_unlock(&metrics_mu);
	return r;
}

const char *
metrics_vocab(const char *v, const char *const *words)
{
	for (; v != NULL && *words != NULL; words++)
		if (strcmp(v, *words) == 0)
			return *words;
	return "other";
}

double
metrics_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
metrics_collector_add(void (*fn)(void *arg), void *arg)
{
	size_t i;
	int r = -1;

	pthread_mutex_lock(&metrics_mu);
	for (i = 0; i < METRICS_MAX_COLLECTORS; i++)
		if (collectors[i].fn == NULL) {
			collectors[i].fn = fn;
			collectors[i].arg = arg;
			r = 0;
			break;
		}
	pthread_mutex_unlock(&metrics_mu);
	return r;
}

void
metrics_collector_remove(void (*fn)(void *arg), void *arg)
{
	size_t i;

	pthread_mutex_lock(&metrics_mu);
	for (i = 0; i < METRICS_MAX_COLLECTORS; i++)
		if (collectors[i].fn == fn && collectors[i].arg == arg)
			collectors[i].fn = NULL;
	pthread_mutex_unlock(&metrics_mu);
}

/* Text format 0.0.4: NaN, +Inf, -Inf, else a Go-style float. */
static const char *
metrics_double(double v, char *b, size_t n)
{
	if (isnan(v))
		return "NaN";
	if (isinf(v))
		return v > 0 ? "+Inf" : "-Inf";
	snprintf(b, n, "%.15g", v);
	return b;
}

/* # HELP text: backslash and line feed escaped. */
static int
metrics_help(struct buf *out, const struct family *f)
{
	static const char *const types[] = { "counter", "gauge", "histogram" };
	const char *p = f->help ? f->help : "";
	int r = buf_appendf(out, "# HELP %s", f->name);

	if (*p)
		r |= buf_appendc(out, ' ');
	for (; *p; p++)
		r |= *p == '\\' ? buf_appends(out, "\\\\") :
		    *p == '\n' ? buf_appends(out, "\\n") : buf_appendc(out, *p);
	return r | buf_appendf(out, "\n# TYPE %s %s\n", f->name, types[f->type]);
}

static int
metrics_histogram(struct buf *out, const struct family *f,
    const struct series *s)
{
	const char *sep = s->labels[0] ? "," : "";
	unsigned long long cum = 0;
	char d[64];
	size_t i;
	int r = 0;

	for (i = 0; i < NBUCKETS; i++) {
		cum += s->bucket[i];
		r |= buf_appendf(out, "%s_bucket{%s%sle=\"%s\"} %llu\n", f->name,
		    s->labels, sep, bucket_text[i], cum);
	}
	r |= buf_appendf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", f->name,
	    s->labels, sep, s->count);
	if (s->labels[0]) {
		r |= buf_appendf(out, "%s_sum{%s} %s\n", f->name, s->labels,
		    metrics_double(s->value, d, sizeof(d)));
		r |= buf_appendf(out, "%s_count{%s} %llu\n", f->name, s->labels,
		    s->count);
	} else {
		r |= buf_appendf(out, "%s_sum %s\n", f->name,
		    metrics_double(s->value, d, sizeof(d)));
		r |= buf_appendf(out, "%s_count %llu\n", f->name, s->count);
	}
	return r;
}

static int
metrics_sample(struct buf *out, const struct family *f,
    const struct series *s)
{
	char d[64];
	const char *v = d;

	if (f->type == METRICS_HISTOGRAM)
		return metrics_histogram(out, f, s);
	if (f->type == METRICS_COUNTER)
		snprintf(d, sizeof(d), "%llu", s->count);
	else
		v = metrics_double(s->value, d, sizeof(d));
	if (s->labels[0])
		return buf_appendf(out, "%s{%s} %s\n", f->name, s->labels, v);
	return buf_appendf(out, "%s %s\n", f->name, v);
}

int
metrics_render(struct buf *out)
{
	struct collector run[METRICS_MAX_COLLECTORS];
	const struct series *s;
	size_t i;
	int r = 0;

	/* collectors set gauges: they take the lock themselves */
	pthread_mutex_lock(&metrics_mu);
	memcpy(run, collectors, sizeof(run));
	pthread_mutex_unlock(&metrics_mu);
	for (i = 0; i < METRICS_MAX_COLLECTORS; i++)
		if (run[i].fn != NULL)
			run[i].fn(run[i].arg);

	pthread_mutex_lock(&metrics_mu);
	for (i = 0; i < nfamilies && r == 0; i++) {
		r |= metrics_help(out, &families[i]);
		for (s = families[i].first; s != NULL && r == 0; s = s->next)
			r |= metrics_sample(out, &families[i], s);
	}
	pthread_mutex_unlock(&metrics_mu);
	if (r == 0)
		r = buf_appendf(out, "# HELP %s Updates the metrics registry "
		    "could not keep (series cap, bad labels).\n# TYPE %s counter\n"
		    "%s %llu\n", DROPPED_NAME, DROPPED_NAME, DROPPED_NAME,
		    (unsigned long long)atomic_load(&metrics_dropped));
	return r == 0 ? 0 : -1;
}

void
metrics_reset(void)
{
	struct series *s, *next;
	size_t i;

	pthread_mutex_lock(&metrics_mu);
	for (i = 0; i < nfamilies; i++) {
		for (s = families[i].first; s != NULL; s = next) {
			next = s->next;
			free(s);
		}
		free(families[i].help);
	}
	memset(families, 0, sizeof(families));
	memset(table, 0, sizeof(table));
	memset(collectors, 0, sizeof(collectors));
	nfamilies = nseries = 0;
	atomic_store(&metrics_dropped, 0);
	pthread_mutex_unlock(&metrics_mu);
}
