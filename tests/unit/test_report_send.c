/*
 * report/send: the rua= parser (RFC 9989 4.7, RFC 9990 3 size limits) and
 * the reporting period for ri= (report/send.h). The run itself is tested
 * end to end in tests/integration/test_report.py.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "report/send.h"

static void
rua_basic(void **state)
{
	struct report_rua r[REPORT_RUA_MAX];
	size_t bad, n;

	(void)state;
	n = report_rua_parse("mailto:dmarc@Example.COM", r, REPORT_RUA_MAX, &bad);
	assert_int_equal(n, 1);
	assert_int_equal(bad, 0);
	assert_string_equal(r[0].addr, "dmarc@Example.COM");
	assert_string_equal(r[0].host, "example.com");
	assert_int_equal(r[0].max_size, 0);

	n = report_rua_parse(" mailto:a@x.test!10m , mailto:b@y.test!20k,"
	    "mailto:c@z.test!1g,mailto:d@w.test!2", r, REPORT_RUA_MAX, &bad);
	assert_int_equal(n, 4);
	assert_int_equal(r[0].max_size, 10ULL << 20);
	assert_int_equal(r[1].max_size, 20ULL << 10);
	assert_int_equal(r[2].max_size, 1ULL << 30);
	assert_int_equal(r[3].max_size, 2);
	assert_string_equal(r[1].host, "y.test");
}

static void
rua_bad(void **state)
{
	struct report_rua r[REPORT_RUA_MAX];
	size_t bad, n;

	(void)state;
	/* non-mailto, no @, two @, bad size, empty size, zero size */
	n = report_rua_parse("https://x.test/r,mailto:nobody,mailto:a@b@c.test,"
	    "mailto:a@x.test!10q,mailto:a@x.test!,mailto:a@x.test!0,"
	    "mailto:ok@x.test", r, REPORT_RUA_MAX, &bad);
	assert_int_equal(n, 1);
	assert_int_equal(bad, 6);
	assert_string_equal(r[0].addr, "ok@x.test");
	/* percent-decoding, a query part dropped, a control octet refused */
	n = report_rua_parse("mailto:d%6Darc@x.test?subject=hi,mailto:a%0a@x.test",
	    r, REPORT_RUA_MAX, &bad);
	assert_int_equal(n, 1);
	assert_int_equal(bad, 1);
	assert_string_equal(r[0].addr, "dmarc@x.test");
	/* truncated escape, empty list, only commas */
	assert_int_equal(report_rua_parse("mailto:a%4@x.test", r, 8, &bad), 0);
	assert_int_equal(bad, 1);
	assert_int_equal(report_rua_parse("", r, 8, &bad), 0);
	assert_int_equal(bad, 0);
	assert_int_equal(report_rua_parse(" , ,", r, 8, &bad), 0);
	assert_int_equal(bad, 0);
	/* a host that is no domain name */
	assert_int_equal(report_rua_parse("mailto:a@exa..mple", r, 8, &bad), 0);
	/* overflowing size */
	assert_int_equal(report_rua_parse("mailto:a@x.test!99999999999999999999t",
	    r, 8, &bad), 0);
}

static void
rua_max(void **state)
{
	struct report_rua r[2];
	size_t bad;

	(void)state;
	assert_int_equal(report_rua_parse("mailto:a@x.test,mailto:b@x.test,"
	    "mailto:c@x.test", r, 2, &bad), 2);
	assert_string_equal(r[1].addr, "b@x.test");
}

static void
period(void **state)
{
	(void)state;
	assert_int_equal(report_period(0, 86400, 3600), 86400);
	assert_int_equal(report_period(86400, 86400, 3600), 86400);
	assert_int_equal(report_period(604800, 86400, 3600), 86400);
	assert_int_equal(report_period(3600, 86400, 3600), 3600);
	assert_int_equal(report_period(7199, 86400, 3600), 3600);
	assert_int_equal(report_period(5 * 3600, 86400, 3600), 4 * 3600);
	assert_int_equal(report_period(13 * 3600, 86400, 3600), 12 * 3600);
	assert_int_equal(report_period(60, 86400, 3600), 3600);
	assert_int_equal(report_period(3600, 86400, 6 * 3600), 6 * 3600);
	assert_int_equal(report_period(3600, 3 * 3600, 3600), 3600);
	assert_int_equal(report_period(8 * 3600, 6 * 3600, 3600), 6 * 3600);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rua_basic),
		cmocka_unit_test(rua_bad),
		cmocka_unit_test(rua_max),
		cmocka_unit_test(period),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
