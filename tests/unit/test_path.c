/* Tests for smtp/path.c: MAIL FROM / RCPT TO arguments (RFC 5321 4.1.2). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "smtp/path.h"

#define OK SMTP_PATH_OK
#define SYNTAX SMTP_PATH_SYNTAX
#define BADADDR SMTP_PATH_BADADDR
#define TOOLONG SMTP_PATH_TOOLONG
#define BADPARAM SMTP_PATH_BADPARAM

struct path_case {
	const char *kw;
	const char *arg;
	enum smtp_path_result result;
	const char *path;	/* when OK */
	const char *domain;	/* when OK; NULL for "" and postmaster */
	int utf8;
	size_t nparams;
};

static const struct path_case path_cases[] = {
	/* null path and plain mailboxes */
	{ "FROM", "FROM:<>", OK, "", NULL, 0, 0 },
	{ "FROM", "FROM:<a@b.example>", OK, "a@b.example", "b.example", 0, 0 },
	{ "FROM", "from:<a@b.example>", OK, "a@b.example", "b.example", 0, 0 },
	{ "FROM", "FROM: <a@b.example>", OK, "a@b.example", "b.example", 0, 0 },
	{ "FROM", "FROM:   <a@b.example>", OK, "a@b.example", "b.example", 0, 0 },
	{ "FROM", "FROM: <>", OK, "", NULL, 0, 0 },
	{ "FROM", "FROM:<first.last+tag@sub.b.example>", OK, "first.last+tag@sub.b.example", "sub.b.example", 0, 0 },
	{ "FROM", "FROM:<!#$%&'*+-/=?^_`{|}~@b.example>", OK, "!#$%&'*+-/=?^_`{|}~@b.example", "b.example", 0, 0 },
	{ "FROM", "FROM:<a@localhost>", OK, "a@localhost", "localhost", 0, 0 },
	{ "FROM", "FROM:<a@e-x.example>", OK, "a@e-x.example", "e-x.example", 0, 0 },
	{ "FROM", "FROM:<a@1.example>", OK, "a@1.example", "1.example", 0, 0 },
	{ "TO", "TO:<c@d.example>", OK, "c@d.example", "d.example", 0, 0 },
	{ "TO", "to:<c@d.example>", OK, "c@d.example", "d.example", 0, 0 },
	{ "TO", "TO: <c@d.example>", OK, "c@d.example", "d.example", 0, 0 },

	/* null path only for the sender; postmaster only for recipients */
	{ "TO", "TO:<>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<postmaster>", OK, "postmaster", NULL, 0, 0 },
	{ "TO", "TO:<PostMaster>", OK, "PostMaster", NULL, 0, 0 },
	{ "TO", "TO:<POSTMASTER>", OK, "POSTMASTER", NULL, 0, 0 },
	{ "TO", "TO:<postmaster@d.example>", OK, "postmaster@d.example", "d.example", 0, 0 },
	{ "TO", "TO:<postmasterx>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<abuse>", BADADDR, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<postmaster>", BADADDR, NULL, NULL, 0, 0 },

	/* not FROM:<...> / TO:<...> at all */
	{ "FROM", "FROM:a@b.example", SYNTAX, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a@b.example", SYNTAX, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:a@b.example>", SYNTAX, NULL, NULL, 0, 0 },
	{ "FROM", "FROM <a@b.example>", SYNTAX, NULL, NULL, 0, 0 },
	{ "FROM", "FROM :<a@b.example>", SYNTAX, NULL, NULL, 0, 0 },
	{ "FROM", "FRO:<a@b.example>", SYNTAX, NULL, NULL, 0, 0 },
	{ "FROM", "FROMX:<a@b.example>", SYNTAX, NULL, NULL, 0, 0 },
	{ "FROM", "<a@b.example>", SYNTAX, NULL, NULL, 0, 0 },
	{ "FROM", "", SYNTAX, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:", SYNTAX, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a@b.example>x", SYNTAX, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a@b.example>SIZE=10", SYNTAX, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a@b.example>\tSIZE=10", SYNTAX, NULL, NULL, 0, 0 },
	{ "FROM", "TO:<a@b.example>", SYNTAX, NULL, NULL, 0, 0 },
	{ "TO", "FROM:<a@b.example>", SYNTAX, NULL, NULL, 0, 0 },
	{ "TO", "TO:c@d.example", SYNTAX, NULL, NULL, 0, 0 },

	/* source routes: accepted and dropped (RFC 5321 4.1.1.3) */
	{ "FROM", "FROM:<@r.example:u@c.example>", OK, "u@c.example", "c.example", 0, 0 },
	{ "TO", "TO:<@r1.example,@r2.example:u@c.example>", OK, "u@c.example", "c.example", 0, 0 },
	{ "TO", "TO:<@r1.example,@r2.example,@r3.example:postmaster>", OK, "postmaster", NULL, 0, 0 },
	{ "FROM", "FROM:<@r.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<@r.example:>", OK, "", NULL, 0, 0 },
	{ "TO", "TO:<@r.example:bad..local@c.example>", BADADDR, NULL, NULL, 0, 0 },

	/* quoted local parts */
	{ "FROM", "FROM:<\"john doe\"@b.example>", OK, "\"john doe\"@b.example", "b.example", 0, 0 },
	{ "FROM", "FROM:<\"a\\\"b\"@b.example>", OK, "\"a\\\"b\"@b.example", "b.example", 0, 0 },
	{ "FROM", "FROM:<\"a\\\\b\"@b.example>", OK, "\"a\\\\b\"@b.example", "b.example", 0, 0 },
	{ "FROM", "FROM:<\"a\\ b\"@b.example>", OK, "\"a\\ b\"@b.example", "b.example", 0, 0 },
	{ "FROM", "FROM:<\"a>b\"@b.example>", OK, "\"a>b\"@b.example", "b.example", 0, 0 },
	{ "FROM", "FROM:<\"a@b\"@b.example>", OK, "\"a@b\"@b.example", "b.example", 0, 0 },
	{ "FROM", "FROM:<\"\"@b.example>", OK, "\"\"@b.example", "b.example", 0, 0 },
	{ "FROM", "FROM:<\"a.\"@b.example>", OK, "\"a.\"@b.example", "b.example", 0, 0 },
	{ "FROM", "FROM:<\"a\\\"@b.example>", SYNTAX, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<\"open@b.example>", SYNTAX, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<\"a\"b@b.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<\"a\x01\"@b.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<\"a\\\x01\"@b.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<\"a\x7f\"@b.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a.\"b\"@b.example>", BADADDR, NULL, NULL, 0, 0 },

	/* dot-string local parts */
	{ "FROM", "FROM:<a..b@b.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<.a@b.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a.@b.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a b@b.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a(b)@b.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a,b@b.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a;b@b.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a\\b@b.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a\x01@b.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a>", BADADDR, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a@>", BADADDR, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<@b.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a@b@c.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<c@d.example> ", OK, "c@d.example", "d.example", 0, 0 },

	/* address literals (RFC 5321 4.1.3) */
	{ "TO", "TO:<a@[192.0.2.1]>", OK, "a@[192.0.2.1]", "[192.0.2.1]", 0, 0 },
	{ "TO", "TO:<a@[IPv6:::1]>", OK, "a@[IPv6:::1]", "[IPv6:::1]", 0, 0 },
	{ "TO", "TO:<a@[ipv6:2001:db8::1]>", OK, "a@[ipv6:2001:db8::1]", "[ipv6:2001:db8::1]", 0, 0 },
	{ "TO", "TO:<a@[IPv6:::ffff:192.0.2.1]>", OK, "a@[IPv6:::ffff:192.0.2.1]", "[IPv6:::ffff:192.0.2.1]", 0, 0 },
	{ "TO", "TO:<a@[256.0.0.1]>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<a@[1.2.3]>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<a@[1.2.3.4.5]>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<a@[::1]>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<a@[IPv6:1.2.3.4]>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<a@[IPv6:::g]>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<a@[IPv6:]>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<a@[]>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<a@[>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<a@[1.2.3.4>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<a@1.2.3.4]>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<a@[1.2.3.4]x>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<a@[ 1.2.3.4]>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<a@x.[1.2.3.4]>", BADADDR, NULL, NULL, 0, 0 },

	/* domain labels (RFC 5321 4.1.2 sub-domain) */
	{ "TO", "TO:<a@-ex.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<a@ex-.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<a@ex.example->", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<a@ex..example>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<a@.ex.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<a@ex.example.>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<a@.>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<a@ex_ample.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<a@ex ample.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<a@ex%ample.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<a@xn--bcher-kva.example>", OK, "a@xn--bcher-kva.example", "xn--bcher-kva.example", 0, 0 },
	{ "TO", "TO:<a@"
	    "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij123"
	    ".example>", OK,
	    "a@abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij123.example",
	    "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij123.example", 0, 0 },
	{ "TO", "TO:<a@"
	    "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234"
	    ".example>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<a@example."
	    "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<a@example."
	    "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij-23>", OK,
	    "a@example.abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij-23",
	    "example.abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij-23", 0, 0 },

	/* UTF-8 (RFC 6531): admitted and flagged */
	{ "TO", "TO:<j\xc3\xb6rg@d.example>", OK, "j\xc3\xb6rg@d.example", "d.example", 1, 0 },
	{ "TO", "TO:<a@b\xc3\xbc" "cher.example>", OK, "a@b\xc3\xbc" "cher.example", "b\xc3\xbc" "cher.example", 1, 0 },
	{ "FROM", "FROM:<\"j\xc3\xb6rg\"@d.example> SMTPUTF8", OK, "\"j\xc3\xb6rg\"@d.example", "d.example", 1, 1 },
	{ "FROM", "FROM:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.example>", OK,
	    "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.example",
	    "\xe4\xbe\x8b\xe5\xad\x90.example", 1, 0 },

	/* parameters (RFC 5321 4.1.2 esmtp-param) */
	{ "FROM", "FROM:<a@b.example> SIZE=10", OK, "a@b.example", "b.example", 0, 1 },
	{ "FROM", "FROM:<> SIZE=10", OK, "", NULL, 0, 1 },
	{ "FROM", "FROM:<a@b.example> BODY=8BITMIME SMTPUTF8", OK, "a@b.example", "b.example", 0, 2 },
	{ "FROM", "FROM:<a@b.example>  SIZE=10   BODY=7BIT", OK, "a@b.example", "b.example", 0, 2 },
	{ "FROM", "FROM:<a@b.example> X-PRIVATE-1", OK, "a@b.example", "b.example", 0, 1 },
	{ "FROM", "FROM:<a@b.example> AUTH=<>", OK, "a@b.example", "b.example", 0, 1 },
	{ "TO", "TO:<c@d.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c@d.example", OK, "c@d.example", "d.example", 0, 2 },
	{ "FROM", "FROM:<a@b.example> SIZE=", BADPARAM, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a@b.example> =10", BADPARAM, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a@b.example> =", BADPARAM, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a@b.example> SIZE=1=2", BADPARAM, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a@b.example> SI_ZE=10", BADPARAM, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a@b.example> SI.ZE=10", BADPARAM, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a@b.example> -SIZE=10", BADPARAM, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a@b.example> S\xc3\xafZE=10", BADPARAM, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a@b.example> SIZE=1\x01", BADPARAM, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a@b.example> SIZE=1\x7f", BADPARAM, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a@b.example> SIZE=10\tBODY=8BITMIME", BADPARAM, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a@b.example> BODY=8BITMIME <x@y.example>", BADPARAM, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<a@b.example> "
	    "P1 P2 P3 P4 P5 P6 P7 P8 P9 P10 P11 P12 P13 P14 P15 P16", OK,
	    "a@b.example", "b.example", 0, 16 },
	{ "FROM", "FROM:<a@b.example> "
	    "P1 P2 P3 P4 P5 P6 P7 P8 P9 P10 P11 P12 P13 P14 P15 P16 P17", BADPARAM, NULL, NULL, 0, 0 },
	/* a bad address is reported before its parameters */
	{ "FROM", "FROM:<a..b@b.example> SIZE=10", BADADDR, NULL, NULL, 0, 0 },
};

/*
 * RFC 5321 4.1.2: A-d-l = At-domain *( "," At-domain ), At-domain = "@"
 * Domain. A route is ignored, but one that is not this syntax is not a
 * path at all.
 */
static const struct path_case route_cases[] = {
	{ "TO", "TO:<@r1.example,@r2.example:u@c.example>", OK, "u@c.example", "c.example", 0, 0 },
	{ "TO", "TO:<@[192.0.2.1]:u@c.example>", OK, "u@c.example", "c.example", 0, 0 },
	{ "TO", "TO:<@:u@c.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<@bad..route:u@c.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<@r.example,:u@c.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<@r.example@r2.example:u@c.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "TO", "TO:<@r one:u@c.example>", BADADDR, NULL, NULL, 0, 0 },
	{ "FROM", "FROM:<@\"x\":u@c.example>", BADADDR, NULL, NULL, 0, 0 },
};

static const char *
path_result_name(enum smtp_path_result r)
{
	static const char *names[] = { "OK", "SYNTAX", "BADADDR", "TOOLONG",
	    "BADPARAM" };

	return (unsigned)r < 5 ? names[r] : "?";
}

/* Returns the number of mismatches, each printed. */
static int
check_path_case(size_t i, const struct path_case *c)
{
	char arg[1024];
	struct smtp_path_args r;
	const char *err = NULL;
	enum smtp_path_result res;
	int bad = 0;

	assert_true(strlen(c->arg) < sizeof(arg));
	snprintf(arg, sizeof(arg), "%s", c->arg);
	res = smtp_path_parse(arg, c->kw, &r, &err);
	if (res != c->result) {
		print_error("case %zu %s \"%s\": %s (%s), expected %s\n", i,
		    c->kw, c->arg, path_result_name(res),
		    res != SMTP_PATH_OK && err ? err : "-",
		    path_result_name(c->result));
		return 1;
	}
	if (res != SMTP_PATH_OK) {
		/* every refusal explains itself */
		if (err == NULL || err[0] == '\0') {
			print_error("case %zu \"%s\": no error text\n", i, c->arg);
			bad++;
		}
		return bad;
	}
	if (strcmp(r.path, c->path) != 0) {
		print_error("case %zu \"%s\": path \"%s\", expected \"%s\"\n",
		    i, c->arg, r.path, c->path);
		bad++;
	}
	if (c->domain == NULL && r.domain != NULL) {
		print_error("case %zu \"%s\": domain \"%s\", expected none\n",
		    i, c->arg, r.domain);
		bad++;
	} else if (c->domain != NULL && (r.domain == NULL ||
	    strcmp(r.domain, c->domain) != 0 || r.domain <= r.path ||
	    r.domain >= r.path + strlen(r.path))) {
		/* domain must point into path */
		print_error("case %zu \"%s\": domain \"%s\", expected \"%s\" "
		    "inside the path\n", i, c->arg,
		    r.domain ? r.domain : "(null)", c->domain);
		bad++;
	}
	if (r.utf8 != c->utf8) {
		print_error("case %zu \"%s\": utf8 %d, expected %d\n", i,
		    c->arg, r.utf8, c->utf8);
		bad++;
	}
	if (r.nparams != c->nparams) {
		print_error("case %zu \"%s\": %zu params, expected %zu\n", i,
		    c->arg, r.nparams, c->nparams);
		bad++;
	}
	return bad;
}

static void
test_path_table(void **state)
{
	size_t i;
	int bad = 0;

	for (i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++)
		bad += check_path_case(i, &path_cases[i]);
	assert_int_equal(bad, 0);
}

static void
test_path_source_route_syntax(void **state)
{
	size_t i;
	int bad = 0;

	for (i = 0; i < sizeof(route_cases) / sizeof(route_cases[0]); i++)
		bad += check_path_case(i, &route_cases[i]);
	assert_int_equal(bad, 0);
}

/* local part of llen octets, domain of dlen octets in labels of <= 63 */
static void
make_mailbox(char *out, size_t llen, size_t dlen)
{
	size_t i, label = 0;

	for (i = 0; i < llen; i++)
		*out++ = (char)('a' + i % 26);
	*out++ = '@';
	for (i = 0; i < dlen; i++) {
		/* a dot every 63 letters; never first or last */
		if (label == 63 && i + 1 < dlen) {
			*out++ = '.';
			label = 0;
		} else {
			*out++ = (char)('a' + i % 26);
			label++;
		}
	}
	*out = '\0';
}

static void
test_path_lengths(void **state)
{
	static const struct {
		size_t llen, dlen;
		enum smtp_path_result result;
	} cases[] = {
		/* RFC 5321 4.5.3.1.1: local part at most 64 octets */
		{ 64, 20, OK },
		{ 65, 20, TOOLONG },
		{ 200, 20, TOOLONG },
		/* 4.5.3.1.3: path at most 256 octets with its brackets */
		{ 64, 189, OK },	/* 1 + 64 + 1 + 189 + 1 = 256 */
		{ 64, 190, TOOLONG },
		{ 10, 243, OK },
		{ 10, 244, TOOLONG },
		{ 1, 252, OK },
		{ 1, 253, TOOLONG },
		{ 1, 600, TOOLONG },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char mbox[1024], arg[1100];
		const char *kw[] = { "FROM", "TO" };
		size_t k;

		make_mailbox(mbox, cases[i].llen, cases[i].dlen);
		for (k = 0; k < 2; k++) {
			struct smtp_path_args r;
			const char *err;
			enum smtp_path_result res;

			snprintf(arg, sizeof(arg), "%s:<%s>", kw[k], mbox);
			res = smtp_path_parse(arg, kw[k], &r, &err);
			if (res != cases[i].result)
				fail_msg("local %zu domain %zu %s: %s (%s), expected %s",
				    cases[i].llen, cases[i].dlen, kw[k],
				    path_result_name(res), err,
				    path_result_name(cases[i].result));
			if (res == OK)
				assert_string_equal(r.path, mbox);
		}
	}
}

static void
test_path_quoted_localpart_length(void **state)
{
	char arg[300];
	struct smtp_path_args r;
	const char *err;

	/* the quotes count: 62 octets inside + 2 quotes = 64 */
	snprintf(arg, sizeof(arg), "TO:<\"%.62s\"@d.example>",
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	assert_int_equal(smtp_path_parse(arg, "TO", &r, &err), OK);
	snprintf(arg, sizeof(arg), "TO:<\"%.63s\"@d.example>",
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	assert_int_equal(smtp_path_parse(arg, "TO", &r, &err), TOOLONG);
}

static void
test_path_source_route_length(void **state)
{
	char arg[600], route[300];
	struct smtp_path_args r;
	const char *err;

	/* the route counts toward the 256-octet path: 2 + 231 + 1 + 11 + 1 */
	memset(route, 'r', 240);
	route[240] = '\0';
	snprintf(arg, sizeof(arg), "TO:<@%.60s.%.60s.%.60s.%.48s:u@d.example>",
	    route, route, route, route);
	assert_int_equal(strlen(arg) - 3, 246);
	assert_int_equal(smtp_path_parse(arg, "TO", &r, &err), OK);
	assert_string_equal(r.path, "u@d.example");
	/* 2 + 255 + 1 + 11 + 1 */
	snprintf(arg, sizeof(arg), "TO:<@%.63s.%.63s.%.63s.%.63s:u@d.example>",
	    route, route, route, route);
	assert_int_equal(smtp_path_parse(arg, "TO", &r, &err), TOOLONG);
}

static void
test_path_params(void **state)
{
	char arg[] = "FROM:<a@b.example> SIZE=1000 body=8BITMIME SMTPUTF8 "
	    "RET=HDRS";
	struct smtp_path_args r;
	const struct smtp_param *p;
	const char *err;

	assert_int_equal(smtp_path_parse(arg, "FROM", &r, &err), OK);
	assert_int_equal(r.nparams, 4);
	assert_string_equal(r.params[0].keyword, "SIZE");
	assert_string_equal(r.params[0].value, "1000");
	assert_string_equal(r.params[1].keyword, "body");
	assert_string_equal(r.params[1].value, "8BITMIME");
	assert_string_equal(r.params[2].keyword, "SMTPUTF8");
	assert_null(r.params[2].value);
	assert_string_equal(r.params[3].keyword, "RET");
	assert_string_equal(r.params[3].value, "HDRS");

	/* lookup ignores case */
	p = smtp_path_param(&r, "size");
	assert_non_null(p);
	assert_string_equal(p->value, "1000");
	p = smtp_path_param(&r, "BODY");
	assert_non_null(p);
	assert_string_equal(p->value, "8BITMIME");
	p = smtp_path_param(&r, "smtputf8");
	assert_non_null(p);
	assert_null(p->value);
	assert_null(smtp_path_param(&r, "ENVID"));
	assert_null(smtp_path_param(&r, "SIZ"));
	assert_null(smtp_path_param(&r, "SIZE=1000"));
}

static void
test_path_error_text(void **state)
{
	static const struct {
		const char *kw, *arg;
		const char *needle;	/* expected in err */
	} cases[] = {
		{ "TO", "TO:<>", "null" },
		{ "FROM", "FROM:<a@b.example> " "P1 P2 P3 P4 P5 P6 P7 P8 P9 P10 "
		    "P11 P12 P13 P14 P15 P16 P17", "too many" },
		{ "FROM", "FROM:<a@b.example> SIZE=", "parameter" },
		{ "FROM", "FROM:<a..b@b.example>", "local part" },
		{ "FROM", "FROM:<a@b..example>", "domain" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char arg[200];
		struct smtp_path_args r;
		const char *err = NULL;

		snprintf(arg, sizeof(arg), "%s", cases[i].arg);
		assert_int_not_equal(smtp_path_parse(arg, cases[i].kw, &r, &err),
		    OK);
		if (err == NULL || strstr(err, cases[i].needle) == NULL)
			fail_msg("\"%s\": error \"%s\" lacks \"%s\"", cases[i].arg,
			    err ? err : "(null)", cases[i].needle);
	}
}

static void
test_check_mailbox(void **state)
{
	static const struct {
		const char *mbox;
		int allow_utf8;
		int valid;
	} cases[] = {
		{ "a@b.example", 0, 1 },
		{ "a@b.example", 1, 1 },
		{ "\"a b\"@b.example", 0, 1 },
		{ "j\xc3\xb6rg@d.example", 1, 1 },
		{ "j\xc3\xb6rg@d.example", 0, 0 },
		{ "a@b\xc3\xbc" "cher.example", 0, 0 },
		{ "a@b\xc3\xbc" "cher.example", 1, 1 },
		{ "\"j\xc3\xb6rg\"@d.example", 0, 0 },
		{ "\"j\xc3\xb6rg\"@d.example", 1, 1 },
		{ "a@[192.0.2.1]", 0, 1 },
		{ "", 0, 0 },
		{ "@", 0, 0 },
		{ "a", 0, 0 },
		{ "a@", 0, 0 },
		{ "@b.example", 0, 0 },
		{ "postmaster", 0, 0 },
		{ "a@b.example ", 0, 0 },
		{ " a@b.example", 0, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *err = NULL;
		int r = smtp_path_check_mailbox(cases[i].mbox,
		    cases[i].allow_utf8, &err);

		if ((r == 0) != cases[i].valid)
			fail_msg("mailbox \"%s\" utf8=%d: %d (%s), expected %s",
			    cases[i].mbox, cases[i].allow_utf8, r,
			    err ? err : "-", cases[i].valid ? "valid" : "invalid");
		if (r == -1)
			assert_non_null(err);
	}
}

static void
test_check_domain(void **state)
{
	static const struct {
		const char *domain;
		int allow_utf8;
		int valid;
	} cases[] = {
		{ "example", 0, 1 },
		{ "b.example", 0, 1 },
		{ "B.EXAMPLE", 0, 1 },
		{ "a-b.c-d.example", 0, 1 },
		{ "a--b.example", 0, 1 },
		{ "1.2.3.4", 0, 1 },
		{ "[192.0.2.1]", 0, 1 },
		{ "[IPv6:2001:db8::1]", 0, 1 },
		{ "[IPv6:::1]", 0, 1 },
		{ "[192.0.2.256]", 0, 0 },
		{ "[::1]", 0, 0 },
		{ "[IPv6:::1", 0, 0 },
		{ "[]", 0, 0 },
		{ "[", 0, 0 },
		{ "", 0, 0 },
		{ ".", 0, 0 },
		{ "-a.example", 0, 0 },
		{ "a-.example", 0, 0 },
		{ "a.-b.example", 0, 0 },
		{ "a..example", 0, 0 },
		{ ".a.example", 0, 0 },
		{ "a.example.", 0, 0 },
		{ "a.example-", 0, 0 },
		{ "a_b.example", 0, 0 },
		{ "a b.example", 0, 0 },
		{ "a@b.example", 0, 0 },
		{ "b\xc3\xbc" "cher.example", 0, 0 },
		{ "b\xc3\xbc" "cher.example", 1, 1 },
	};
	char label63[128], label64[128];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if ((smtp_path_check_domain(cases[i].domain,
		    cases[i].allow_utf8) == 0) != cases[i].valid)
			fail_msg("domain \"%s\" utf8=%d: expected %s",
			    cases[i].domain, cases[i].allow_utf8,
			    cases[i].valid ? "valid" : "invalid");

	/* RFC 1035 2.3.4: labels of at most 63 octets */
	memset(label63, 'x', 63);
	strcpy(label63 + 63, ".example");
	assert_int_equal(smtp_path_check_domain(label63, 0), 0);
	memset(label64, 'x', 64);
	strcpy(label64 + 64, ".example");
	assert_int_equal(smtp_path_check_domain(label64, 0), -1);
	/* a hyphen counts toward the label */
	memset(label64, 'x', 64);
	label64[30] = '-';
	label64[64] = '\0';
	assert_int_equal(smtp_path_check_domain(label64, 0), -1);
	label64[63] = '\0';
	assert_int_equal(smtp_path_check_domain(label64, 0), 0);
}

static void
test_check_domain_total_length(void **state)
{
	char d[400];
	size_t i;

	/* RFC 5321 4.5.3.1.2: a domain is at most 255 octets */
	for (i = 0; i < 300; i++)
		d[i] = (i % 50 == 49) ? '.' : 'd';
	d[255] = '\0';
	assert_int_equal(smtp_path_check_domain(d, 0), 0);
	d[255] = 'd';
	d[256] = '\0';
	assert_int_equal(smtp_path_check_domain(d, 0), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_table),
		cmocka_unit_test(test_path_source_route_syntax),
		cmocka_unit_test(test_path_lengths),
		cmocka_unit_test(test_path_quoted_localpart_length),
		cmocka_unit_test(test_path_source_route_length),
		cmocka_unit_test(test_path_params),
		cmocka_unit_test(test_path_error_text),
		cmocka_unit_test(test_check_mailbox),
		cmocka_unit_test(test_check_domain),
		cmocka_unit_test(test_check_domain_total_length),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
