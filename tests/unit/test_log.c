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
	/* 70 fields: only the first 64 distinct keys are kept; all valid */
	{
		char big[8192], o2[8192];
		size_t n = 0;
		int k;

		for (k = 0; k < 70; k++)
			n += (size_t)snprintf(big + n, sizeof(big) - n, "k%d=v ", k);
		fields(big, o2, sizeof(o2));
		assert_non_null(strstr(o2, "\"k63\""));
		assert_null(strstr(o2, "\"k64\""));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(json_plain),
		cmocka_unit_test(json_quoting_undone),
		cmocka_unit_test(json_duplicates_and_msg_key),
		cmocka_unit_test(json_truncated_stays_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
