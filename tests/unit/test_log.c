/*
 * lib/log: the JSON line form (log_format = json): key=value fields become
 * members with log_safe's quoting undone, the rest becomes "msg", the
 * result is always one valid JSON object (checked here with a small
 * validating parser of our own, strict about strings and escapes).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "lib/log.h"

/* ---- a strict JSON object checker (objects of string members) ---- */

static const char *
js_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	while (*p != '"') {
		unsigned char c = (unsigned char)*p;

		if (c == '\0' || c < 0x20)
			return NULL;
		if (c == '\\') {
			p++;
			if (*p == 'u') {
				int i;

				for (i = 1; i <= 4; i++)
					if (!strchr("0123456789abcdefABCDEF", p[i]) ||
					    p[i] == '\0')
						return NULL;
				p += 5;
				continue;
			}
			if (!strchr("\"\\/bfnrt", *p) || *p == '\0')
				return NULL;
		}
		p++;
	}
	return p + 1;
}

/* 1 if s is {"k":"v",...} (values strings) with nothing after it. */
static int
js_object(const char *s)
{
	const char *p = s;

	if (*p++ != '{')
		return 0;
	if (*p == '}')
		return p[1] == '\0';
	for (;;) {
		if ((p = js_string(p)) == NULL || *p++ != ':' ||
		    (p = js_string(p)) == NULL)
			return 0;
		if (*p == '}')
			return p[1] == '\0';
		if (*p++ != ',')
			return 0;
	}
}

static void
fields(const char *line, char *out, size_t n)
{
	log_json_fields(line, out, n);
	if (!js_object(out))
		fail_msg("not a JSON object: %s (from %s)", out, line);
}

static void
json_plain(void **state)
{
	char out[1024];

	(void)state;
	fields("session=4 id=06B0 client=127.0.0.1 status=queued", out,
	    sizeof(out));
	assert_string_equal(out, "{\"session\":\"4\",\"id\":\"06B0\","
	    "\"client\":\"127.0.0.1\",\"status\":\"queued\"}");
	fields("mxgate ready hostname=mx.example.test", out, sizeof(out));
	assert_string_equal(out, "{\"hostname\":\"mx.example.test\","
	    "\"msg\":\"mxgate ready\"}");
	fields("", out, sizeof(out));
	assert_string_equal(out, "{}");
	fields("just words here", out, sizeof(out));
	assert_string_equal(out, "{\"msg\":\"just words here\"}");
}

static void
json_quoting_undone(void **state)
{
	char out[1024], line[512];

	(void)state;
	/* what log_safe writes comes back as the original bytes */
	snprintf(line, sizeof(line), "reason=%s helo=%s x=%s",
	    log_safe("no SPF record at \"x\" \\ y"), log_safe("a\tb\x01"),
	    log_safe(""));
	fields(line, out, sizeof(out));
	assert_string_equal(out, "{\"reason\":\"no SPF record at \\\"x\\\" \\\\ "
	    "y\",\"helo\":\"a\\u0009b\\u0001\",\"x\":\"\"}");
	/* invalid UTF-8 and DEL */
	fields("v=\xff\xfe ok=caf\xc3\xa9 d=\x7f", out, sizeof(out));
	assert_string_equal(out, "{\"v\":\"\\ufffd\\ufffd\",\"ok\":\"caf\xc3\xa9\","
	    "\"d\":\"\\u007f\"}");
}

static void
json_duplicates_and_msg_key(void **state)
{
	char out[1024];

	(void)state;
	fields("a=1 a=2 msg=forged b=3", out, sizeof(out));
	assert_string_equal(out, "{\"a\":\"1\",\"b\":\"3\"}");
	/* "=" alone, or a key with odd characters, is message text */
	fields("= x=1 we?ird=2 =y", out, sizeof(out));
	assert_string_equal(out, "{\"x\":\"1\",\"msg\":\"= we?ird=2 =y\"}");
	/* an unterminated quote runs to the end */
	fields("a=\"open value", out, sizeof(out));
	assert_string_equal(out, "{\"a\":\"open value\"}");
}

static void
json_truncated_stays_valid(void **state)
{
	char out[64], line[4096];
	size_t i;

	(void)state;
	for (i = 0; i + 12 < sizeof(line); i += 12)
		memcpy(line + i, "key=value-x ", 12);
	line[i] = '\0';
	fields(line, out, sizeof(out));
	assert_true(strlen(out) < sizeof(out));
	/* 70 fields: 59 keys are kept (64 less the 5 reserved); all valid */
	{
		char big[8192], o2[8192];
		size_t n = 0;
		int k;

		for (k = 0; k < 70; k++)
			n += (size_t)snprintf(big + n, sizeof(big) - n, "k%d=v ", k);
		fields(big, o2, sizeof(o2));
		assert_non_null(strstr(o2, "\"k58\""));
		assert_null(strstr(o2, "\"k59\""));
	}
}

/* log_safe passes printable UTF-8 whole and escapes C1 controls (0x9b is
 * CSI on an 8-bit terminal), invalid and overlong UTF-8, surrogates. */
static void
safe_utf8_and_c1(void **state)
{
	(void)state;
	assert_string_equal(log_safe("caf\xc3\xa9 \xe2\x82\xac"),
	    "\"caf\xc3\xa9 \xe2\x82\xac\"");
	assert_string_equal(log_safe("\xf0\x9f\x93\xa7"), "\xf0\x9f\x93\xa7");
	assert_string_equal(log_safe("a\x9b" "2Jb"), "a\\x9b2Jb");
	assert_string_equal(log_safe("a\xc2\x9b" "2Jb"), "a\\xc2\\x9b2Jb");
	assert_string_equal(log_safe("a\xff\xfe"), "a\\xff\\xfe");
	assert_string_equal(log_safe("\xc0\xaf"), "\\xc0\\xaf");	/* overlong */
	assert_string_equal(log_safe("\xed\xa0\x80"), "\\xed\\xa0\\x80");
	assert_string_equal(log_safe("\xe2\x82"), "\\xe2\\x82");	/* cut */
	assert_string_equal(log_safe("\xc2\xa0"), "\xc2\xa0");	/* U+00A0 */
}

/* Values that fill the buffer mid-member: the member is left out whole,
 * never cut into invalid JSON. Each invalid octet becomes 6 octets. */
static void
json_full_buffer_stays_valid(void **state)
{
	char line[4096], out[8192], v[300];
	size_t n = 0;
	int k;

	(void)state;
	memset(v, 0xff, 256);
	v[256] = '\0';
	for (k = 0; k < 8; k++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, "k%d=%s ", k,
		    v);	/* raw: log_safe would escape them */
	/* each member is 1545 octets: five fit in 8192, the sixth not */
	fields(line, out, sizeof(out));
	assert_non_null(strstr(out, "\"k4\""));
	assert_null(strstr(out, "\"k5\""));
	assert_null(strstr(out, "\"k7\""));
}

/* A value that log_safe quoted inside other text (from=<"a b"@c>) stays
 * one value: a client cannot add or replace fields. */
static void
json_no_field_injection(void **state)
{
	char out[1024], line[512];

	(void)state;
	snprintf(line, sizeof(line), "session=1 from=<%s@sender.test> "
	    "status=rejected", log_safe("\"x status=queued level=error y\""));
	fields(line, out, sizeof(out));
	assert_string_equal(out, "{\"session\":\"1\",\"from\":\"<\\\"x "
	    "status=queued level=error y\\\"@sender.test>\",\"status\":"
	    "\"rejected\"}");
	/* the caller's members cannot be supplied by a line */
	fields("time=1 level=fatal ident=x pid=0 a=1", out, sizeof(out));
	assert_string_equal(out, "{\"a\":\"1\"}");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(json_plain),
		cmocka_unit_test(json_quoting_undone),
		cmocka_unit_test(json_duplicates_and_msg_key),
		cmocka_unit_test(json_truncated_stays_valid),
		cmocka_unit_test(json_full_buffer_stays_valid),
		cmocka_unit_test(safe_utf8_and_c1),
		cmocka_unit_test(json_no_field_injection),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
