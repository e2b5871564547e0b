/* Tests for smtp/reply.c: the SMTP client's reply parser (RFC 5321 4.2). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/reply.h"

#define MORE SMTP_REPLY_MORE
#define DONE SMTP_REPLY_DONE
#define ERROR SMTP_REPLY_ERROR

/* A line with its exact length: NULs inside count. */
struct line {
	const char *s;
	size_t len;
};
#define L(s) { s, sizeof(s) - 1 }
#define MAXLINES 6

/*
 * One reply, line by line: what each feed returns, then (for the last one)
 * the code, text and line count, or a prefix of the error.
 */
struct reply_case {
	const char *what;
	struct line lines[MAXLINES];
	int results[MAXLINES];
	int code;
	const char *text;	/* joined text, or error prefix */
	size_t nlines;
};

static const struct reply_case reply_cases[] = {
	/* good replies */
	{ "greeting", { L("220 mx.example ESMTP ready") }, { DONE },
	    220, "220 mx.example ESMTP ready", 1 },
	{ "code only (RFC 5321 4.2: the text is optional)", { L("250") },
	    { DONE }, 250, "250", 1 },
	{ "code and space", { L("250 ") }, { DONE }, 250, "250", 1 },
	{ "EHLO reply", { L("250-mx.example"), L("250-PIPELINING"),
	    L("250-SIZE 10240000"), L("250 CHUNKING") },
	    { MORE, MORE, MORE, DONE }, 250,
	    "250 mx.example PIPELINING SIZE 10240000 CHUNKING", 4 },
	{ "continuation with the code only", { L("250-"), L("250 ok") },
	    { MORE, DONE }, 250, "250 ok", 2 },
	{ "final line with the code only", { L("250-first"), L("250") },
	    { MORE, DONE }, 250, "250 first", 2 },
	{ "intermediate reply", { L("354 go ahead") }, { DONE }, 354,
	    "354 go ahead", 1 },
	{ "any second digit", { L("299 odd") }, { DONE }, 299, "299 odd", 1 },
	{ "8-bit text is kept", { L("250 caf\xc3\xa9") }, { DONE }, 250,
	    "250 caf\xc3\xa9", 1 },

	/* RFC 3463 enhanced codes: said once */
	{ "enhanced code repeated", { L("550-5.1.1 No such user"),
	    L("550-5.1.1 here, try"), L("550 5.1.1 elsewhere") },
	    { MORE, MORE, DONE }, 550,
	    "550 5.1.1 No such user here, try elsewhere", 3 },
	{ "enhanced code alone on a line", { L("451-4.3.0 busy"),
	    L("451 4.3.0") }, { MORE, DONE }, 451, "451 4.3.0 busy", 2 },
	{ "another enhanced code is text", { L("550-5.1.1 a"),
	    L("550 5.7.1 b") }, { MORE, DONE }, 550, "550 5.1.1 a 5.7.1 b", 2 },
	{ "enhanced code prefix is not stripped", { L("550-5.1.1 a"),
	    L("550 5.1.10 b") }, { MORE, DONE }, 550, "550 5.1.1 a 5.1.10 b",
	    2 },
	{ "wrong class is no enhanced code", { L("550-4.1.1 a"),
	    L("550 4.1.1 b") }, { MORE, DONE }, 550, "550 4.1.1 a 4.1.1 b", 2 },
	{ "too long for an enhanced code", { L("250-2.0.00000000000000 a"),
	    L("250 2.0.00000000000000 b") }, { MORE, DONE }, 250,
	    "250 2.0.00000000000000 a 2.0.00000000000000 b", 2 },

	/* control octets and NULs become '?' */
	{ "NUL in the text", { L("250 a\0b") }, { DONE }, 250, "250 a?b", 1 },
	{ "bare CR in the text", { L("250 a\rb") }, { DONE }, 250,
	    "250 a?b", 1 },
	{ "CR left from CRCRLF", { L("250 ok\r") }, { DONE }, 250,
	    "250 ok?", 1 },
	{ "escape and DEL", { L("250 \x1b[31m\x7f") }, { DONE }, 250,
	    "250 ?[31m?", 1 },
	{ "NUL on a later line", { L("250-a"), L("250 b\0c\n") },
	    { MORE, DONE }, 250, "250 a b?c?", 2 },

	/* bad lines */
	{ "empty line", { L("") }, { ERROR }, 0, "bad reply line", 0 },
	{ "one digit", { L("2") }, { ERROR }, 0, "bad reply line", 0 },
	{ "two digits (truncated)", { L("25") }, { ERROR }, 0,
	    "bad reply line", 0 },
	{ "letters", { L("abc ok") }, { ERROR }, 0, "bad reply line", 0 },
	{ "non-digit last", { L("25x ok") }, { ERROR }, 0, "bad reply line",
	    0 },
	{ "non-digit middle", { L("2x0 ok") }, { ERROR }, 0, "bad reply line",
	    0 },
	{ "code 600", { L("600 out of range") }, { ERROR }, 0,
	    "bad reply line", 0 },
	{ "code 199", { L("199 out of range") }, { ERROR }, 0,
	    "bad reply line", 0 },
	{ "code 099", { L("099") }, { ERROR }, 0, "bad reply line", 0 },
	{ "four digits", { L("2500 ok") }, { ERROR }, 0, "bad reply line",
	    0 },
	{ "tab separator", { L("250\tok") }, { ERROR }, 0, "bad reply line",
	    0 },
	{ "leading space", { L(" 250 ok") }, { ERROR }, 0, "bad reply line",
	    0 },
	{ "NUL in the code", { L("2\0" "0 ok") }, { ERROR }, 0,
	    "bad reply line", 0 },
	{ "NUL as separator", { L("250\0ok") }, { ERROR }, 0,
	    "bad reply line 250\\x00ok", 0 },
	{ "bad continuation", { L("250-a"), L("junk") }, { MORE, ERROR }, 0,
	    "bad reply line junk", 0 },

	/* RFC 5321 4.2.1: one code per reply */
	{ "codes mixed", { L("250-a"), L("251 b") }, { MORE, ERROR }, 0,
	    "reply codes 250 and 251 mixed", 0 },
	{ "classes mixed", { L("250-a"), L("250-b"), L("550 c") },
	    { MORE, MORE, ERROR }, 0, "reply codes 250 and 550 mixed", 0 },

	/* each reply starts afresh */
	{ "two replies", { L("250 a"), L("354 b") }, { DONE, DONE }, 354,
	    "354 b", 1 },
	{ "after an error", { L("250-a"), L("251 b"), L("220 c") },
	    { MORE, ERROR, DONE }, 220, "220 c", 1 },
	{ "after a bad line", { L("250-a"), L("x"), L("221 bye") },
	    { MORE, ERROR, DONE }, 221, "221 bye", 1 },
};

static void
run_case(const struct reply_case *tc)
{
	struct smtp_reply r;
	size_t i, n = 0;
	int rv = MORE;

	smtp_reply_init(&r);
	for (i = 0; i < MAXLINES && tc->lines[i].s != NULL; i++) {
		rv = smtp_reply_feed(&r, tc->lines[i].s, tc->lines[i].len);
		if (rv != tc->results[i])
			fail_msg("%s: line %zu: got %d, want %d (err %s)",
			    tc->what, i, rv, tc->results[i], r.err);
		n++;
	}
	assert_true(n > 0);
	if (rv == ERROR) {
		if (strncmp(r.err, tc->text, strlen(tc->text)) != 0)
			fail_msg("%s: error %s, want %s...", tc->what, r.err,
			    tc->text);
		return;
	}
	assert_string_equal(r.err, "");
	if (r.code != tc->code || strcmp(r.text, tc->text) != 0 ||
	    r.nlines != tc->nlines)
		fail_msg("%s: got %d \"%s\" %zu lines, want %d \"%s\" %zu",
		    tc->what, r.code, r.text, r.nlines, tc->code, tc->text,
		    tc->nlines);
}

static void
test_reply_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++)
		run_case(&reply_cases[i]);
}

/* r.line is each line's text after the code, for EHLO keywords. */
static void
test_reply_line_text(void **state)
{
	struct smtp_reply r;

	(void)state;
	smtp_reply_init(&r);
	assert_int_equal(smtp_reply_feed(&r, "250-mx.example", 14), MORE);
	assert_string_equal(r.line, "mx.example");
	assert_int_equal(smtp_reply_feed(&r, "250-SIZE 1000\0", 14), MORE);
	assert_string_equal(r.line, "SIZE 1000?");
	assert_int_equal(smtp_reply_feed(&r, "250-", 4), MORE);
	assert_string_equal(r.line, "");
	assert_int_equal(smtp_reply_feed(&r, "250 8BITMIME", 12), DONE);
	assert_string_equal(r.line, "8BITMIME");
	assert_int_equal(r.nlines, 4);
	assert_int_equal(smtp_reply_feed(&r, "250", 3), DONE);
	assert_string_equal(r.line, "");
	assert_int_equal(r.nlines, 1);
}

/* A half-read reply is dropped by init. */
static void
test_reply_init_drops_partial(void **state)
{
	struct smtp_reply r;

	(void)state;
	smtp_reply_init(&r);
	assert_int_equal(smtp_reply_feed(&r, "250-a", 5), MORE);
	smtp_reply_init(&r);
	assert_int_equal(smtp_reply_feed(&r, "421 bye", 7), DONE);
	assert_int_equal(r.code, 421);
	assert_string_equal(r.text, "421 bye");
}

/* SMTP_REPLY_LINE_MAX octets pass, one more fails, whatever the line. */
static void
test_reply_line_limit(void **state)
{
	size_t max = SMTP_REPLY_LINE_MAX;
	char *line = malloc(max + 2);
	struct smtp_reply r;

	(void)state;
	assert_non_null(line);
	memset(line, 'x', max + 1);
	memcpy(line, "250 ", 4);
	line[max + 1] = '\0';
	smtp_reply_init(&r);
	assert_int_equal(smtp_reply_feed(&r, line, max), DONE);
	/* the text is truncated to fit, never overflows */
	assert_int_equal(strlen(r.text), sizeof(r.text) - 1);
	assert_int_equal(strncmp(r.text, "250 xxx", 7), 0);
	assert_int_equal(strlen(r.line), max - 4);
	assert_int_equal(smtp_reply_feed(&r, line, max + 1), ERROR);
	assert_string_equal(r.err, "reply line longer than 4096 octets");
	/* also in the middle of a reply, and it ends that reply */
	line[3] = '-';
	assert_int_equal(smtp_reply_feed(&r, line, max), MORE);
	assert_int_equal(smtp_reply_feed(&r, line, max + 1), ERROR);
	assert_int_equal(smtp_reply_feed(&r, "220 new", 7), DONE);
	assert_int_equal(r.code, 220);
	free(line);
}

/* The error text quotes a bounded, escaped excerpt of a bad line. */
static void
test_reply_bad_line_excerpt(void **state)
{
	char line[3000];
	struct smtp_reply r;

	(void)state;
	memset(line, 'A', sizeof(line));
	line[10] = '\0';
	line[11] = '\n';
	smtp_reply_init(&r);
	assert_int_equal(smtp_reply_feed(&r, line, sizeof(line)), ERROR);
	assert_int_equal(strncmp(r.err, "bad reply line AAAAAAAAAA\\x00\\x0a",
	    33), 0);
	assert_true(strlen(r.err) < sizeof(r.err));
	assert_null(memchr(r.err, '\n', strlen(r.err)));
	/* 64 octets of the line at most */
	assert_true(strlen(r.err) <= strlen("bad reply line ") + 64 + 2 * 3);
}

/* Lines joined past the text size are truncated. */
static void
test_reply_text_truncated(void **state)
{
	char line[400];
	struct smtp_reply r;
	int i;

	(void)state;
	memset(line, 'y', sizeof(line));
	memcpy(line, "250-", 4);
	smtp_reply_init(&r);
	for (i = 0; i < 5; i++)
		assert_int_equal(smtp_reply_feed(&r, line, sizeof(line)), MORE);
	line[3] = ' ';
	assert_int_equal(smtp_reply_feed(&r, line, sizeof(line)), DONE);
	assert_int_equal(strlen(r.text), sizeof(r.text) - 1);
	assert_int_equal(r.nlines, 6);
}

/* A reply of SMTP_REPLY_LINES_MAX lines passes; the next line fails. */
static void
test_reply_lines_limit(void **state)
{
	struct smtp_reply r;
	size_t i;

	(void)state;
	smtp_reply_init(&r);
	for (i = 1; i < SMTP_REPLY_LINES_MAX; i++)
		assert_int_equal(smtp_reply_feed(&r, "250-X", 5), MORE);
	assert_int_equal(smtp_reply_feed(&r, "250 end", 7), DONE);
	assert_int_equal(r.nlines, SMTP_REPLY_LINES_MAX);

	/* one more: refused at that line, continuation or final */
	smtp_reply_init(&r);
	for (i = 0; i < SMTP_REPLY_LINES_MAX; i++)
		assert_int_equal(smtp_reply_feed(&r, "250-X", 5), MORE);
	assert_int_equal(smtp_reply_feed(&r, "250 end", 7), ERROR);
	assert_string_equal(r.err, "reply of more than 1000 lines");
	smtp_reply_init(&r);
	for (i = 0; i < SMTP_REPLY_LINES_MAX; i++)
		assert_int_equal(smtp_reply_feed(&r, "250-X", 5), MORE);
	assert_int_equal(smtp_reply_feed(&r, "250-X", 5), ERROR);
	/* and what follows is a new reply */
	assert_int_equal(smtp_reply_feed(&r, "250 ok", 6), DONE);
	assert_int_equal(r.nlines, 1);
}

/* An EHLO reply with a few dozen lines is fine. */
static void
test_reply_long_ehlo(void **state)
{
	char line[64];
	struct smtp_reply r;
	int i, n;

	(void)state;
	smtp_reply_init(&r);
	for (i = 0; i < 60; i++) {
		n = snprintf(line, sizeof(line), "250%cX-EXTENSION-%d",
		    i == 59 ? ' ' : '-', i);
		assert_int_equal(smtp_reply_feed(&r, line, (size_t)n),
		    i == 59 ? DONE : MORE);
	}
	assert_int_equal(r.nlines, 60);
	assert_int_equal(r.code, 250);
}

/* Every single octet as a line, and after each code prefix. */
static void
test_reply_all_octets(void **state)
{
	struct smtp_reply r;
	char line[5];
	int c, rv;

	(void)state;
	for (c = 0; c < 256; c++) {
		smtp_reply_init(&r);
		line[0] = (char)c;
		assert_int_equal(smtp_reply_feed(&r, line, 1), ERROR);
		memcpy(line, "250", 3);
		line[3] = (char)c;
		rv = smtp_reply_feed(&r, line, 4);
		assert_int_equal(rv, c == ' ' ? DONE : c == '-' ? MORE : ERROR);
		line[3] = ' ';
		line[4] = (char)c;
		smtp_reply_init(&r);
		assert_int_equal(smtp_reply_feed(&r, line, 5), DONE);
		assert_int_equal(strlen(r.text), 5);
		assert_true((unsigned char)r.text[4] >= 0x20 &&
		    r.text[4] != 0x7f);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_table),
		cmocka_unit_test(test_reply_line_text),
		cmocka_unit_test(test_reply_init_drops_partial),
		cmocka_unit_test(test_reply_line_limit),
		cmocka_unit_test(test_reply_bad_line_excerpt),
		cmocka_unit_test(test_reply_text_truncated),
		cmocka_unit_test(test_reply_lines_limit),
		cmocka_unit_test(test_reply_long_ehlo),
		cmocka_unit_test(test_reply_all_octets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
