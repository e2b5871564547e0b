/*
 * Tests for smtp/message.c: fields in order with their folding, the
 * boundary found wherever the feed chunks split, limits, odd lines.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "smtp/message.h"

struct seen {
	size_t nfields;
	struct buf body;
	int stop_at;		/* field count at which on_field says stop */
};

static int
on_field(const struct msg_field *f, void *arg)
{
	struct seen *s = arg;

	s->nfields++;
	return s->stop_at && (int)s->nfields == s->stop_at ? -1 : 0;
}

static int
on_body(const char *p, size_t n, void *arg)
{
	struct seen *s = arg;

	return buf_append(&s->body, p, n);
}

static struct msg_parser *
parse(const char *msg, size_t len, size_t chunk, struct seen *s)
{
	struct msg_parser *p;
	size_t off;

	memset(s, 0, sizeof(*s));
	p = msg_parser_new(65536, 100, on_field, on_body, s);
	assert_non_null(p);
	for (off = 0; off < len; off += chunk)
		msg_parser_feed(p, msg + off, len - off < chunk ? len - off : chunk);
	msg_parser_end(p);
	return p;
}

static void
check_field(const struct msg_parser *p, size_t i, const char *name,
    const char *value, const char *raw)
{
	const struct msg_field *f = msg_parser_field(p, i);

	assert_non_null(f);
	assert_int_equal(f->name_len, strlen(name));
	assert_memory_equal(f->name, name, f->name_len);
	assert_int_equal(f->value_len, strlen(value));
	assert_memory_equal(f->value, value, f->value_len);
	if (raw != NULL) {
		assert_int_equal(f->raw_len, strlen(raw));
		assert_memory_equal(f->raw, raw, f->raw_len);
	}
}

static const char folded[] =
    "From: a@example.com\r\n"
    "Subject: hello\r\n"
    "\tworld\r\n"
    "  again\r\n"
    "received: one\r\n"
    "RECEIVED: two\r\n"
    "X-Empty:\r\n"
    "\r\n"
    "body line\r\n"
    "\r\n"
    "From: not a header\r\n";

static void
test_folding_and_order(void **state)
{
	struct msg_parser *p;
	struct seen s;

	p = parse(folded, sizeof(folded) - 1, 4096, &s);
	assert_int_equal(msg_parser_error(p), MSG_OK);
	assert_int_equal(msg_parser_count(p), 5);
	assert_int_equal(s.nfields, 5);
	check_field(p, 0, "From", " a@example.com", "From: a@example.com\r\n");
	check_field(p, 1, "Subject", " hello\r\n\tworld\r\n  again",
	    "Subject: hello\r\n\tworld\r\n  again\r\n");
	check_field(p, 2, "received", " one", NULL);
	check_field(p, 3, "RECEIVED", " two", NULL);
	check_field(p, 4, "X-Empty", "", "X-Empty:\r\n");
	assert_true(msg_parser_in_body(p));
	assert_string_equal(s.body.data, "body line\r\n\r\nFrom: not a header\r\n");
	/* names compare without case: both Received fields found */
	assert_int_equal(strncasecmp(msg_parser_field(p, 2)->name,
	    msg_parser_field(p, 3)->name, 8), 0);
	msg_parser_free(p);
	buf_free(&s.body);
}

/* The same result for every split of the content in two chunks. */
static void
test_split_everywhere(void **state)
{
	size_t len = sizeof(folded) - 1, cut, i;
	struct seen s;

	for (cut = 0; cut <= len; cut++) {
		struct msg_parser *p;

		memset(&s, 0, sizeof(s));
		p = msg_parser_new(65536, 100, on_field, on_body, &s);
		assert_int_equal(msg_parser_feed(p, folded, cut), 0);
		assert_int_equal(msg_parser_feed(p, folded + cut, len - cut), 0);
		assert_int_equal(msg_parser_end(p), 0);
		assert_int_equal(msg_parser_count(p), 5);
		check_field(p, 1, "Subject", " hello\r\n\tworld\r\n  again", NULL);
		assert_string_equal(s.body.data,
		    "body line\r\n\r\nFrom: not a header\r\n");
		msg_parser_free(p);
		buf_free(&s.body);
	}
	/* and byte by byte */
	for (i = 1; i < 4; i++) {
		struct msg_parser *p = parse(folded, len, i, &s);

		assert_int_equal(msg_parser_count(p), 5);
		assert_string_equal(s.body.data,
		    "body line\r\n\r\nFrom: not a header\r\n");
		msg_parser_free(p);
		buf_free(&s.body);
	}
}

static void
test_no_body(void **state)
{
	static const char m1[] = "From: a\r\nTo: b\r\n";
	static const char m2[] = "From: a\r\nTo: b";
	struct msg_parser *p;
	struct seen s;

	p = parse(m1, sizeof(m1) - 1, 3, &s);
	assert_int_equal(msg_parser_count(p), 2);
	assert_false(msg_parser_in_body(p));
	assert_int_equal(s.body.len, 0);
	msg_parser_free(p);
	p = parse(m2, sizeof(m2) - 1, 5, &s);
	assert_int_equal(msg_parser_count(p), 2);
	check_field(p, 1, "To", " b", "To: b");
	msg_parser_free(p);
	/* blank line right away: no fields, all body */
	p = parse("\r\nx\r\n", 5, 1, &s);
	assert_int_equal(msg_parser_count(p), 0);
	assert_true(msg_parser_in_body(p));
	assert_string_equal(s.body.data, "x\r\n");
	msg_parser_free(p);
	buf_free(&s.body);
}

static void
test_limits(void **state)
{
	struct msg_parser *p;
	struct seen s;
	char big[200];

	memset(&s, 0, sizeof(s));
	p = msg_parser_new(100, 2, on_field, on_body, &s);
	assert_int_equal(msg_parser_feed(p, "A: 1\r\nB: 2\r\nC: 3\r\n\r\n", 20),
	    -1);
	assert_int_equal(msg_parser_error(p), MSG_ERR_LIMIT);
	assert_int_equal(msg_parser_count(p), 2);
	assert_int_equal(msg_parser_feed(p, "x", 1), -1);
	msg_parser_free(p);

	memset(big, 'a', sizeof(big));
	memcpy(big, "X: ", 3);
	p = msg_parser_new(100, 10, on_field, on_body, &s);
	assert_int_equal(msg_parser_feed(p, big, sizeof(big)), -1);
	assert_int_equal(msg_parser_error(p), MSG_ERR_LIMIT);
	msg_parser_free(p);

	/* the body does not count */
	p = msg_parser_new(10, 10, on_field, on_body, &s);
	assert_int_equal(msg_parser_feed(p, "A: 1\r\n\r\n", 8), 0);
	assert_int_equal(msg_parser_feed(p, big, sizeof(big)), 0);
	msg_parser_free(p);
	buf_free(&s.body);

	/* a callback stops the parse */
	memset(&s, 0, sizeof(s));
	s.stop_at = 1;
	p = msg_parser_new(1000, 10, on_field, on_body, &s);
	assert_int_equal(msg_parser_feed(p, "A: 1\r\nB: 2\r\n", 12), -1);
	msg_parser_free(p);
}

static void
test_odd_lines(void **state)
{
	static const char m[] =
	    "From: a\r\n"
	    "no colon here\r\n"
	    "Bad Name: x\r\n"
	    "Spaced : y\r\n"
	    "\r\n";
	static const char nul[] = "X-Nul: a\0b\r\nTo: c\r\n\r\nbo\0dy";
	struct msg_parser *p;
	struct seen s;

	p = parse(m, sizeof(m) - 1, 2, &s);
	assert_int_equal(msg_parser_error(p), MSG_ERR_SYNTAX);
	assert_int_equal(msg_parser_count(p), 4);
	check_field(p, 1, "", "no colon here", "no colon here\r\n");
	check_field(p, 2, "", "Bad Name: x", NULL);
	check_field(p, 3, "Spaced", " y", NULL);
	msg_parser_free(p);

	p = parse(nul, sizeof(nul) - 1, 3, &s);
	assert_int_equal(msg_parser_count(p), 2);
	assert_int_equal(msg_parser_field(p, 0)->value_len, 4);
	assert_memory_equal(msg_parser_field(p, 0)->value, " a\0b", 4);
	assert_int_equal(s.body.len, 5);
	msg_parser_free(p);
	buf_free(&s.body);

	/* a continuation line before any field; bare LF line ends */
	p = parse(" lead\r\nA: 1\nB: 2\n\nbody\n", 23, 1, &s);
	assert_int_equal(msg_parser_count(p), 3);
	check_field(p, 0, "", " lead", NULL);
	check_field(p, 1, "A", " 1", "A: 1\n");
	assert_string_equal(s.body.data, "body\n");
	msg_parser_free(p);
	buf_free(&s.body);

	/* a line starting with CR is not the blank line */
	p = parse("A: 1\r\n\rB: 2\r\n\r\nx", 17, 1, &s);
	assert_int_equal(msg_parser_count(p), 2);
	check_field(p, 1, "", "\rB: 2", NULL);
	assert_string_equal(s.body.data, "x");
	msg_parser_free(p);
	buf_free(&s.body);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_folding_and_order),
		cmocka_unit_test(test_split_everywhere),
		cmocka_unit_test(test_no_body),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_odd_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
