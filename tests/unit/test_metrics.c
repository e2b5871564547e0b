/* Tests for lib/metrics.c: counters, labels, escaping, histograms, the
 * series cap, bad input, collectors, the output grammar, and increments
 * from several threads at once. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/metrics.h"

static int
setup(void **state)
{
	metrics_reset();
	metrics_enable(1);
	return 0;
}

static int
teardown(void **state)
{
	metrics_reset();
	metrics_enable(0);
	return 0;
}

/* The whole exposition. */
static char *
render(void)
{
	struct buf b = { 0 };

	assert_int_equal(metrics_render(&b), 0);
	assert_non_null(b.data);
	return buf_steal(&b);
}

/* The value of the sample line "key value", or NULL if there is none
 * (key is the name with its {labels}). Points into text. */
static const char *
sample(const char *text, const char *key)
{
	size_t n = strlen(key);
	const char *p = text;

	while (p != NULL && *p) {
		if (strncmp(p, key, n) == 0 && p[n] == ' ')
			return p + n + 1;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NULL;
}

static unsigned long long
value_of(const char *text, const char *key)
{
	const char *v = sample(text, key);

	if (v == NULL)
		fail_msg("no sample %s in:\n%s", key, text);
	return strtoull(v, NULL, 10);
}

static size_t
count_prefix(const char *text, const char *prefix)
{
	size_t n = 0, pl = strlen(prefix);
	const char *p = text;

	while (p != NULL && *p) {
		if (strncmp(p, prefix, pl) == 0)
			n++;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return n;
}

/*
 * The text format 0.0.4 grammar, line by line: HELP and TYPE comments,
 * samples "name{l="v",...} value" with escaped label values; every sample
 * of a family after its TYPE, a histogram's under _bucket, _sum, _count.
 */
static void
assert_grammar(const char *text)
{
	regex_t help, type, smp;
	char family[128] = "", kind[16] = "";
	const char *p = text;

	assert_int_equal(regcomp(&help, "^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*)( .*)?$",
	    REG_EXTENDED), 0);
	assert_int_equal(regcomp(&type, "^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) "
	    "(counter|gauge|histogram)$", REG_EXTENDED), 0);
	assert_int_equal(regcomp(&smp, "^([a-zA-Z_:][a-zA-Z0-9_:]*)"
	    "([{][a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\""
	    "(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\")*[}])? "
	    "(NaN|[+-]Inf|-?[0-9]+(\\.[0-9]+)?(e[+-]?[0-9]+)?)$", REG_EXTENDED), 0);
	assert_true(strlen(text) > 0 && text[strlen(text) - 1] == '\n');
	while (*p) {
		const char *nl = strchr(p, '\n');
		char line[1024];
		regmatch_t m[3];
		size_t n = (size_t)(nl - p);

		assert_non_null(nl);
		assert_true(n < sizeof(line));
		memcpy(line, p, n);
		line[n] = '\0';
		if (regexec(&type, line, 3, m, 0) == 0) {
			snprintf(family, sizeof(family), "%.*s",
			    (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
			snprintf(kind, sizeof(kind), "%.*s",
			    (int)(m[2].rm_eo - m[2].rm_so), line + m[2].rm_so);
		} else if (regexec(&help, line, 3, m, 0) == 0) {
			family[0] = '\0';	/* the TYPE comes next */
		} else if (regexec(&smp, line, 3, m, 0) == 0) {
			char name[128];
			size_t fl = strlen(family);

			snprintf(name, sizeof(name), "%.*s",
			    (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
			if (fl == 0)
				fail_msg("sample before its TYPE: %s", line);
			if (strcmp(kind, "histogram") == 0)
				assert_true(strncmp(name, family, fl) == 0 &&
				    (strcmp(name + fl, "_bucket") == 0 ||
				    strcmp(name + fl, "_sum") == 0 ||
				    strcmp(name + fl, "_count") == 0));
			else
				assert_string_equal(name, family);
		} else
			fail_msg("not text format 0.0.4: %s", line);
		p = nl + 1;
	}
	regfree(&help);
	regfree(&type);
	regfree(&smp);
}

static void
test_counting(void **state)
{
	char *t;

	assert_int_equal(metrics_define("t_msgs_total", METRICS_COUNTER,
	    "Messages."), 0);
	metrics_inc("t_msgs_total");
	metrics_inc("t_msgs_total");
	metrics_add("t_msgs_total", 5);
	/* off: nothing counts */
	metrics_enable(0);
	metrics_inc("t_msgs_total");
	metrics_add("t_msgs_total", 100);
	metrics_enable(1);
	t = render();
	assert_int_equal(value_of(t, "t_msgs_total"), 7);
	assert_non_null(strstr(t, "# HELP t_msgs_total Messages.\n"
	    "# TYPE t_msgs_total counter\nt_msgs_total 7\n"));
	assert_int_equal(value_of(t, "mxgate_metrics_dropped_total"), 0);
	assert_grammar(t);
	free(t);
}

static void
test_labels(void **state)
{
	char *t;

	metrics_define("t_dns_total", METRICS_COUNTER, "DNS.");
	metrics_inc("t_dns_total", "type", "TXT", "outcome", "ok");
	metrics_inc("t_dns_total", "type", "TXT", "outcome", "ok");
	/* the same label set named in another order is the same series */
	metrics_inc("t_dns_total", "outcome", "ok", "type", "TXT");
	metrics_inc("t_dns_total", "type", "TXT", "outcome", "nxdomain");
	metrics_inc("t_dns_total", "type", "MX", "outcome", "ok");
	metrics_add("t_dns_total", 0, "type", "A", "outcome", "ok");
	t = render();
	assert_int_equal(value_of(t, "t_dns_total{outcome=\"ok\",type=\"TXT\"}"), 3);
	assert_int_equal(value_of(t,
	    "t_dns_total{outcome=\"nxdomain\",type=\"TXT\"}"), 1);
	assert_int_equal(value_of(t, "t_dns_total{outcome=\"ok\",type=\"MX\"}"), 1);
	assert_int_equal(value_of(t, "t_dns_total{outcome=\"ok\",type=\"A\"}"), 0);
	assert_int_equal(count_prefix(t, "t_dns_total{"), 4);
	/* one family: one HELP, one TYPE */
	assert_int_equal(count_prefix(t, "# TYPE t_dns_total "), 1);
	assert_grammar(t);
	free(t);
}

static void
test_escaping(void **state)
{
	char *t;

	metrics_define("t_esc", METRICS_GAUGE, "Back\\slash and\nnew line.");
	metrics_set("t_esc", 2, "v", "a\\b\"c\nd");
	metrics_set("t_esc", 3, "v", "");
	metrics_set("t_esc", 4, "v", "caf\xc3\xa9 {x=\"y\"}");
	t = render();
	assert_non_null(strstr(t, "# HELP t_esc Back\\\\slash and\\nnew line.\n"));
	assert_int_equal(value_of(t, "t_esc{v=\"a\\\\b\\\"c\\nd\"}"), 2);
	assert_int_equal(value_of(t, "t_esc{v=\"\"}"), 3);
	assert_int_equal(value_of(t,
	    "t_esc{v=\"caf\xc3\xa9 {x=\\\"y\\\"}\"}"), 4);
	assert_grammar(t);
	free(t);
}

static void
test_gauges(void **state)
{
	char *t;

	metrics_define("t_g", METRICS_GAUGE, "A gauge.");
	metrics_set("t_g", 5, "k", "a");
	metrics_set("t_g", 2, "k", "a");	/* set, not added */
	metrics_set("t_g", 0.25, "k", "b");
	metrics_set("t_g", NAN, "k", "nan");
	metrics_set("t_g", INFINITY, "k", "inf");
	metrics_set("t_g", -INFINITY, "k", "ninf");
	metrics_set("t_g", -3, "k", "neg");
	t = render();
	assert_non_null(strstr(t, "t_g{k=\"a\"} 2\n"));
	assert_non_null(strstr(t, "t_g{k=\"b\"} 0.25\n"));
	assert_non_null(strstr(t, "t_g{k=\"nan\"} NaN\n"));
	assert_non_null(strstr(t, "t_g{k=\"inf\"} +Inf\n"));
	assert_non_null(strstr(t, "t_g{k=\"ninf\"} -Inf\n"));
	assert_non_null(strstr(t, "t_g{k=\"neg\"} -3\n"));
	assert_grammar(t);
	free(t);
}

static void
test_histogram(void **state)
{
	static const char *const le[] = { "0.001", "0.0025", "0.005", "0.01",
	    "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30",
	    "+Inf" };
	static const unsigned long long want[] = { 2, 2, 3, 3, 3, 3, 3, 4, 4,
	    4, 4, 4, 5, 5, 6 };
	char key[128], *t;
	double sum;
	size_t i;

	metrics_define("t_check_seconds", METRICS_HISTOGRAM, "Check time.");
	/* le is inclusive: 0.001 is in the first bucket */
	metrics_observe("t_check_seconds", 0.0005, "check", "spf");
	metrics_observe("t_check_seconds", 0.001, "check", "spf");
	metrics_observe("t_check_seconds", 0.003, "check", "spf");
	metrics_observe("t_check_seconds", 0.2, "check", "spf");
	metrics_observe("t_check_seconds", 7, "check", "spf");
	metrics_observe("t_check_seconds", 100, "check", "spf");
	metrics_observe("t_check_seconds", NAN, "check", "spf");	/* dropped */
	metrics_observe("t_check_seconds", 0.5, "check", "dkim");
	t = render();
	for (i = 0; i < sizeof(le) / sizeof(le[0]); i++) {
		snprintf(key, sizeof(key),
		    "t_check_seconds_bucket{check=\"spf\",le=\"%s\"}", le[i]);
		assert_int_equal(value_of(t, key), want[i]);
	}
	assert_int_equal(value_of(t, "t_check_seconds_count{check=\"spf\"}"), 6);
	sum = strtod(sample(t, "t_check_seconds_sum{check=\"spf\"}"), NULL);
	assert_true(fabs(sum - 107.2045) < 1e-9);
	assert_int_equal(value_of(t,
	    "t_check_seconds_bucket{check=\"dkim\",le=\"0.25\"}"), 0);
	assert_int_equal(value_of(t,
	    "t_check_seconds_bucket{check=\"dkim\",le=\"0.5\"}"), 1);
	assert_int_equal(value_of(t, "t_check_seconds_count{check=\"dkim\"}"), 1);
	assert_int_equal(count_prefix(t, "t_check_seconds_bucket{check=\"spf\""), 15);
	assert_int_equal(value_of(t, "mxgate_metrics_dropped_total"), 1);
	/* a histogram without labels */
	metrics_observe("t_plain_seconds", 2.0);
	free(t);
	t = render();
	assert_int_equal(value_of(t, "t_plain_seconds_bucket{le=\"2.5\"}"), 1);
	assert_int_equal(value_of(t, "t_plain_seconds_count"), 1);
	assert_non_null(sample(t, "t_plain_seconds_sum"));
	assert_grammar(t);
	free(t);
}

static void
test_series_cap(void **state)
{
	char v[16], *t;
	int i;

	metrics_define("t_cap_total", METRICS_COUNTER, "Cap.");
	metrics_inc("t_cap_total", "i", "first");
	for (i = 0; i < METRICS_MAX_SERIES + 10; i++) {
		snprintf(v, sizeof(v), "%d", i);
		metrics_inc("t_cap_total", "i", v);
	}
	/* known series still count; new ones, in any family, do not */
	metrics_inc("t_cap_total", "i", "first");
	metrics_inc("t_cap_new_total");
	metrics_set("t_cap_gauge", 1);
	t = render();
	assert_int_equal(count_prefix(t, "t_cap_total{"), METRICS_MAX_SERIES);
	assert_int_equal(value_of(t, "t_cap_total{i=\"first\"}"), 2);
	assert_int_equal(value_of(t, "t_cap_total{i=\"4094\"}"), 1);
	assert_null(sample(t, "t_cap_total{i=\"4095\"}"));
	assert_null(strstr(t, "t_cap_new_total"));
	assert_null(strstr(t, "t_cap_gauge"));
	assert_int_equal(value_of(t, "mxgate_metrics_dropped_total"), 13);
	assert_grammar(t);
	free(t);
	/* a reset makes room again */
	metrics_reset();
	metrics_inc("t_cap_new_total");
	t = render();
	assert_int_equal(value_of(t, "t_cap_new_total"), 1);
	assert_int_equal(value_of(t, "mxgate_metrics_dropped_total"), 0);
	free(t);
}

static void
test_bad_input(void **state)
{
	char longv[400], *t;

	memset(longv, 'x', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	assert_int_equal(metrics_define("9bad", METRICS_COUNTER, "x"), -1);
	assert_int_equal(metrics_define("bad-name", METRICS_COUNTER, "x"), -1);
	assert_int_equal(metrics_define("", METRICS_COUNTER, "x"), -1);
	assert_int_equal(metrics_define(longv, METRICS_COUNTER, "x"), -1);
	assert_int_equal(metrics_define("mxgate_metrics_dropped_total",
	    METRICS_GAUGE, "x"), -1);
	assert_int_equal(metrics_define("t_ok:sub_total", METRICS_COUNTER,
	    "Colons are allowed."), 0);
	/* the same definition twice is fine, another type is not */
	assert_int_equal(metrics_define("t_g", METRICS_GAUGE, "G."), 0);
	assert_int_equal(metrics_define("t_g", METRICS_GAUGE, "G."), 0);
	assert_int_equal(metrics_define("t_g", METRICS_COUNTER, "G."), -1);

	metrics_inc("9bad");				/* 1 */
	metrics_inc("t_c", "bad-label", "v");		/* 2 */
	metrics_inc("t_c", "__reserved", "v");		/* 3 */
	metrics_inc("t_c", "k");			/* 4: no value */
	metrics_inc("t_c", "a", "1", "b", "2", "c", "3", "d", "4", "e", "5");
							/* 5: too many */
	metrics_inc("t_c", "k", longv);			/* 6: too long */
	metrics_inc("t_c", "k", "1", "k", "2");		/* 7: repeated */
	metrics_inc("t_g");				/* 8: a gauge */
	metrics_observe("t_g", 1.0);			/* 9 */
	metrics_observe("t_h", 1.0, "le", "1");		/* 10: le is ours */
	metrics_inc((const char *)NULL);		/* 11 */
	/* four pairs are fine; "le" is an ordinary name elsewhere */
	metrics_inc("t_c", "a", "1", "b", "2", "c", "3", "d", "4");
	metrics_inc("t_c", "le", "x");
	metrics_set("t_g", 1.5);
	t = render();
	assert_int_equal(value_of(t, "mxgate_metrics_dropped_total"), 11);
	assert_int_equal(value_of(t,
	    "t_c{a=\"1\",b=\"2\",c=\"3\",d=\"4\"}"), 1);
	assert_int_equal(value_of(t, "t_c{le=\"x\"}"), 1);
	assert_null(strstr(t, "t_h"));
	assert_null(strstr(t, "9bad"));
	assert_non_null(strstr(t, "t_g 1.5\n"));
	/* used before defined: a family without help text */
	assert_non_null(strstr(t, "# HELP t_c\n# TYPE t_c counter\n"));
	/* defined, never used: its HELP and TYPE, no sample */
	assert_non_null(strstr(t, "# HELP t_ok:sub_total Colons are allowed.\n"
	    "# TYPE t_ok:sub_total counter\n#"));
	assert_grammar(t);
	free(t);
}

static void
test_vocab(void **state)
{
	static const char *const tls[] = { "TLSv1.2", "TLSv1.3", NULL };

	assert_string_equal(metrics_vocab("TLSv1.3", tls), "TLSv1.3");
	assert_string_equal(metrics_vocab("TLSv1.2", tls), "TLSv1.2");
	assert_string_equal(metrics_vocab("TLSv1", tls), "other");
	assert_string_equal(metrics_vocab("TLSv1.3 ", tls), "other");
	assert_string_equal(metrics_vocab("", tls), "other");
	assert_string_equal(metrics_vocab(NULL, tls), "other");
}

static int collected;

static void
collect(void *arg)
{
	collected++;
	metrics_set("t_conns", (double)*(int *)arg);
}

static void
nothing(void *arg)
{
}

static void
test_collectors(void **state)
{
	int conns = 3, i;
	char *t;

	metrics_define("t_conns", METRICS_GAUGE, "Open connections.");
	assert_int_equal(metrics_collector_add(collect, &conns), 0);
	t = render();
	assert_int_equal(value_of(t, "t_conns"), 3);
	free(t);
	conns = 5;
	t = render();
	assert_int_equal(value_of(t, "t_conns"), 5);
	assert_int_equal(collected, 2);
	free(t);
	metrics_collector_remove(collect, &conns);
	conns = 9;
	t = render();
	assert_int_equal(value_of(t, "t_conns"), 5);
	assert_int_equal(collected, 2);
	free(t);
	for (i = 0; i < METRICS_MAX_COLLECTORS; i++)
		assert_int_equal(metrics_collector_add(nothing, &conns), 0);
	assert_int_equal(metrics_collector_add(nothing, &conns), -1);
}

static void
test_now_monotonic(void **state)
{
	double a = metrics_now(), b = metrics_now();

	assert_true(a > 0 && b >= a);
}

#define THREADS 4
#define PER_THREAD 100000

static void *
hammer(void *arg)
{
	const char *who = arg;
	int i;

	for (i = 0; i < PER_THREAD; i++) {
		metrics_inc("t_shared_total");
		metrics_inc("t_own_total", "thread", who);
		if (i % 100 == 0)
			metrics_observe("t_lat_seconds", 0.002, "thread", who);
	}
	return NULL;
}

static void
test_threads(void **state)
{
	static const char *const names[THREADS] = { "a", "b", "c", "d" };
	pthread_t th[THREADS];
	char key[64], *t;
	size_t i;

	for (i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, hammer,
		    (void *)names[i]), 0);
	for (i = 0; i < THREADS; i++) {
		struct buf b = { 0 };

		/* rendering while others count */
		assert_int_equal(metrics_render(&b), 0);
		buf_free(&b);
	}
	for (i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	t = render();
	assert_int_equal(value_of(t, "t_shared_total"), THREADS * PER_THREAD);
	for (i = 0; i < THREADS; i++) {
		snprintf(key, sizeof(key), "t_own_total{thread=\"%s\"}", names[i]);
		assert_int_equal(value_of(t, key), PER_THREAD);
		snprintf(key, sizeof(key), "t_lat_seconds_count{thread=\"%s\"}",
		    names[i]);
		assert_int_equal(value_of(t, key), PER_THREAD / 100);
	}
	assert_grammar(t);
	free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_counting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_labels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gauges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_histogram, setup, teardown),
		cmocka_unit_test_setup_teardown(test_series_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
		cmocka_unit_test(test_vocab),
		cmocka_unit_test_setup_teardown(test_collectors, setup, teardown),
		cmocka_unit_test(test_now_monotonic),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
