/* Tests for smtp/command.c: one command line into verb and argument. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "smtp/command.h"

struct command_case {
	const char *line;
	size_t len;		/* 0: strlen(line) */
	enum smtp_parse_result result;
	enum smtp_verb verb;
	const char *name;
	const char *arg;
};

#define LINE(s) s, sizeof(s) - 1

static const struct command_case command_cases[] = {
	/* verbs, any case */
	{ LINE("HELO client.example"), SMTP_PARSE_OK, SMTP_CMD_HELO, "HELO", "client.example" },
	{ LINE("ehlo client.example"), SMTP_PARSE_OK, SMTP_CMD_EHLO, "EHLO", "client.example" },
	{ LINE("MaIl FROM:<a@b.example>"), SMTP_PARSE_OK, SMTP_CMD_MAIL, "MAIL", "FROM:<a@b.example>" },
	{ LINE("rcpt TO:<c@d.example> NOTIFY=NEVER"), SMTP_PARSE_OK, SMTP_CMD_RCPT, "RCPT", "TO:<c@d.example> NOTIFY=NEVER" },
	{ LINE("DATA"), SMTP_PARSE_OK, SMTP_CMD_DATA, "DATA", "" },
	{ LINE("bdat 100 LAST"), SMTP_PARSE_OK, SMTP_CMD_BDAT, "BDAT", "100 LAST" },
	{ LINE("RSET"), SMTP_PARSE_OK, SMTP_CMD_RSET, "RSET", "" },
	{ LINE("noop"), SMTP_PARSE_OK, SMTP_CMD_NOOP, "NOOP", "" },
	{ LINE("NOOP any text"), SMTP_PARSE_OK, SMTP_CMD_NOOP, "NOOP", "any text" },
	{ LINE("Quit"), SMTP_PARSE_OK, SMTP_CMD_QUIT, "QUIT", "" },
	{ LINE("VRFY user"), SMTP_PARSE_OK, SMTP_CMD_VRFY, "VRFY", "user" },
	{ LINE("EXPN list"), SMTP_PARSE_OK, SMTP_CMD_EXPN, "EXPN", "list" },
	{ LINE("HELP"), SMTP_PARSE_OK, SMTP_CMD_HELP, "HELP", "" },
	{ LINE("StartTLS"), SMTP_PARSE_OK, SMTP_CMD_STARTTLS, "STARTTLS", "" },
	{ LINE("AUTH PLAIN AGZvbwBiYXI="), SMTP_PARSE_OK, SMTP_CMD_AUTH, "AUTH", "PLAIN AGZvbwBiYXI=" },

	/* separators and trailing white space */
	{ LINE("HELO   spaced.example"), SMTP_PARSE_OK, SMTP_CMD_HELO, "HELO", "spaced.example" },
	{ LINE("HELO\tclient.example"), SMTP_PARSE_OK, SMTP_CMD_HELO, "HELO", "client.example" },
	{ LINE("QUIT   "), SMTP_PARSE_OK, SMTP_CMD_QUIT, "QUIT", "" },
	{ LINE("DATA\t \t"), SMTP_PARSE_OK, SMTP_CMD_DATA, "DATA", "" },
	{ LINE("EHLO client.example   "), SMTP_PARSE_OK, SMTP_CMD_EHLO, "EHLO", "client.example" },
	{ LINE("MAIL FROM:<a b@c>  SIZE=1 "), SMTP_PARSE_OK, SMTP_CMD_MAIL, "MAIL", "FROM:<a b@c>  SIZE=1" },

	/* empty lines */
	{ LINE(""), SMTP_PARSE_EMPTY, SMTP_CMD_UNKNOWN, "?", NULL },
	{ LINE("   "), SMTP_PARSE_EMPTY, SMTP_CMD_UNKNOWN, "?", NULL },
	{ LINE("\t"), SMTP_PARSE_EMPTY, SMTP_CMD_UNKNOWN, "?", NULL },

	/* NUL, control characters, bare CR */
	{ LINE("NO\0OP"), SMTP_PARSE_NUL, SMTP_CMD_UNKNOWN, "?", NULL },
	{ LINE("\0"), SMTP_PARSE_NUL, SMTP_CMD_UNKNOWN, "?", NULL },
	{ LINE("HELO x\0"), SMTP_PARSE_NUL, SMTP_CMD_UNKNOWN, "?", NULL },
	{ LINE("MAIL FROM:<a@b>\0RCPT TO:<c@d>"), SMTP_PARSE_NUL, SMTP_CMD_UNKNOWN, "?", NULL },
	{ LINE("NOOP\r"), SMTP_PARSE_BADCHAR, SMTP_CMD_UNKNOWN, "?", NULL },
	{ LINE("DATA\rRSET"), SMTP_PARSE_BADCHAR, SMTP_CMD_UNKNOWN, "?", NULL },
	{ LINE("\r"), SMTP_PARSE_BADCHAR, SMTP_CMD_UNKNOWN, "?", NULL },
	{ LINE("NOOP\nRSET"), SMTP_PARSE_BADCHAR, SMTP_CMD_UNKNOWN, "?", NULL },
	{ LINE("HELO \x1b[31mred"), SMTP_PARSE_BADCHAR, SMTP_CMD_UNKNOWN, "?", NULL },
	{ LINE("HELO a\x01"), SMTP_PARSE_BADCHAR, SMTP_CMD_UNKNOWN, "?", NULL },
	{ LINE("HELO a\x1f"), SMTP_PARSE_BADCHAR, SMTP_CMD_UNKNOWN, "?", NULL },
	{ LINE("HELO a\x7f"), SMTP_PARSE_BADCHAR, SMTP_CMD_UNKNOWN, "?", NULL },
	{ LINE("\x7f"), SMTP_PARSE_BADCHAR, SMTP_CMD_UNKNOWN, "?", NULL },
	/* 8-bit octets are not control characters */
	{ LINE("HELO h\xc3\xa9.example"), SMTP_PARSE_OK, SMTP_CMD_HELO, "HELO", "h\xc3\xa9.example" },

	/* web clients */
	{ LINE("GET / HTTP/1.1"), SMTP_PARSE_OK, SMTP_CMD_HTTP, "GET", "/ HTTP/1.1" },
	{ LINE("get /index.html HTTP/1.0"), SMTP_PARSE_OK, SMTP_CMD_HTTP, "GET", "/index.html HTTP/1.0" },
	{ LINE("POST /form HTTP/1.1"), SMTP_PARSE_OK, SMTP_CMD_HTTP, "POST", "/form HTTP/1.1" },
	{ LINE("HEAD / HTTP/1.1"), SMTP_PARSE_OK, SMTP_CMD_HTTP, "HEAD", "/ HTTP/1.1" },
	{ LINE("PUT /x HTTP/1.1"), SMTP_PARSE_OK, SMTP_CMD_HTTP, "PUT", "/x HTTP/1.1" },
	{ LINE("CONNECT mx.example:25 HTTP/1.1"), SMTP_PARSE_OK, SMTP_CMD_HTTP, "CONNECT", "mx.example:25 HTTP/1.1" },
	{ LINE("OPTIONS * HTTP/1.1"), SMTP_PARSE_OK, SMTP_CMD_HTTP, "OPTIONS", "* HTTP/1.1" },

	/* unknown verbs: no prefix or partial matches */
	{ LINE("FOO bar"), SMTP_PARSE_OK, SMTP_CMD_UNKNOWN, "?", "bar" },
	{ LINE("MAILX FROM:<a@b>"), SMTP_PARSE_OK, SMTP_CMD_UNKNOWN, "?", "FROM:<a@b>" },
	{ LINE("MAI FROM:<a@b>"), SMTP_PARSE_OK, SMTP_CMD_UNKNOWN, "?", "FROM:<a@b>" },
	{ LINE("MAILFROM:<a@b>"), SMTP_PARSE_OK, SMTP_CMD_UNKNOWN, "?", "" },
	{ LINE("STARTTL"), SMTP_PARSE_OK, SMTP_CMD_UNKNOWN, "?", "" },
	{ LINE("QUITQUIT"), SMTP_PARSE_OK, SMTP_CMD_UNKNOWN, "?", "" },
	{ LINE("X"), SMTP_PARSE_OK, SMTP_CMD_UNKNOWN, "?", "" },
	{ LINE("  QUIT"), SMTP_PARSE_OK, SMTP_CMD_UNKNOWN, "?", "QUIT" },
	{ LINE("D\xc3\xa1TA"), SMTP_PARSE_OK, SMTP_CMD_UNKNOWN, "?", "" },
};

static void
test_command_table(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(command_cases) / sizeof(command_cases[0]); i++) {
		const struct command_case *c = &command_cases[i];
		char line[256];
		struct smtp_command cmd;
		enum smtp_parse_result r;

		assert_true(c->len < sizeof(line));
		/* garbage after the line: the parser must terminate it */
		memset(line, 'Z', sizeof(line));
		memcpy(line, c->line, c->len);
		r = smtp_command_parse(line, c->len, &cmd);
		if (r != c->result)
			fail_msg("case %zu (\"%s\"): result %d, expected %d", i,
			    c->line, r, c->result);
		if (r != SMTP_PARSE_OK)
			continue;
		if (cmd.verb != c->verb || strcmp(cmd.name, c->name) != 0)
			fail_msg("case %zu (\"%s\"): verb %d %s, expected %d %s", i,
			    c->line, cmd.verb, cmd.name, c->verb, c->name);
		assert_non_null(cmd.arg);
		if (strcmp(cmd.arg, c->arg) != 0)
			fail_msg("case %zu (\"%s\"): arg \"%s\", expected \"%s\"", i,
			    c->line, cmd.arg, c->arg);
		/* the argument lies inside the line */
		assert_true(cmd.arg >= line && cmd.arg <= line + c->len);
	}
}

static void
test_command_terminates(void **state)
{
	char line[] = "NOOPXXXX";
	struct smtp_command cmd;

	/* len excludes the trailing bytes: they are not part of the line */
	assert_int_equal(smtp_command_parse(line, 4, &cmd), SMTP_PARSE_OK);
	assert_int_equal(cmd.verb, SMTP_CMD_NOOP);
	assert_string_equal(cmd.arg, "");
	assert_int_equal(line[4], '\0');
}

static void
test_command_verb_only(void **state)
{
	char line[] = "RSET";
	struct smtp_command cmd;

	assert_int_equal(smtp_command_parse(line, 4, &cmd), SMTP_PARSE_OK);
	assert_ptr_equal(cmd.arg, line + 4);
	assert_string_equal(cmd.arg, "");
}

static void
test_command_long_line(void **state)
{
	char line[5000];
	struct smtp_command cmd;

	memcpy(line, "NOOP ", 5);
	memset(line + 5, 'a', sizeof(line) - 6);
	assert_int_equal(smtp_command_parse(line, sizeof(line) - 1, &cmd),
	    SMTP_PARSE_OK);
	assert_int_equal(cmd.verb, SMTP_CMD_NOOP);
	assert_int_equal(strlen(cmd.arg), sizeof(line) - 6);
}

static void
test_command_all_octets(void **state)
{
	unsigned c;

	/* every single octet after a verb: only TAB and printable/8-bit pass */
	for (c = 0; c < 256; c++) {
		char line[8] = "NOOP ";
		struct smtp_command cmd;
		enum smtp_parse_result r, want;

		line[5] = (char)c;
		r = smtp_command_parse(line, 6, &cmd);
		if (c == 0)
			want = SMTP_PARSE_NUL;
		else if ((c < 0x20 && c != '\t') || c == 0x7f)
			want = SMTP_PARSE_BADCHAR;
		else
			want = SMTP_PARSE_OK;
		if (r != want)
			fail_msg("octet 0x%02x: result %d, expected %d", c, r, want);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_command_table),
		cmocka_unit_test(test_command_terminates),
		cmocka_unit_test(test_command_verb_only),
		cmocka_unit_test(test_command_long_line),
		cmocka_unit_test(test_command_all_octets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
