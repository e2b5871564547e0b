/*
 * Tests for smtp/address.c: the author address of a From field value.
 * A table of tricky values, the espoofer attack cases and the OpenDMARC
 * From vectors from ../shared/conformance/, and oversize inputs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#include "smtp/address.h"

#define ESPOOFER	"../shared/conformance/espoofer-cases/espoofer-testcases.json"
#define OPENDMARC	"../shared/conformance/opendmarc-testfiles/opendmarc-unit-vectors.yml"

#define OK	ADDR_FROM_OK
#define EMPTY	ADDR_FROM_EMPTY
#define MULTI	ADDR_FROM_MULTIPLE
#define BAD	ADDR_FROM_BAD
#define NODOM	ADDR_FROM_NODOMAIN

struct result {
	enum addr_from_status st;
	char local[320];
	char domain[256];
	size_t naddr;
};

static void
parse(const char *v, size_t len, int utf8, struct result *r)
{
	memset(r, 'x', sizeof(*r));	/* outputs must be written */
	r->naddr = 12345;
	r->st = addr_from_parse(v, len, utf8, r->local, sizeof(r->local),
	    r->domain, sizeof(r->domain), &r->naddr);
	assert_int_not_equal(r->naddr, 12345);
	if (r->st != OK) {
		assert_string_equal(r->local, "");
		assert_string_equal(r->domain, "");
	}
}

/* ---- the table ---- */

struct tcase {
	const char *in;
	size_t len;		/* 0: strlen */
	int utf8;
	enum addr_from_status st;
	const char *local, *domain;	/* for OK */
	int naddr;		/* -1: not checked */
};

static const struct tcase cases[] = {
	/* plain forms */
	{ "joe@joe.example", 0, 0, OK, "joe", "joe.example", 1 },
	{ "Joe <joe@Joe.EXAMPLE>", 0, 0, OK, "joe", "joe.example", 1 },
	{ "<a@x.example>", 0, 0, OK, "a", "x.example", 1 },
	/* a display name that looks like an address: the real one counts */
	{ "\"admin@bank.example\" <x@evil.example>", 0, 0, OK, "x",
	  "evil.example", 1 },
	/* unquoted "@" in a display name is not a display name */
	{ "admin@legitimate.com <x@evil.example>", 0, 0, BAD, 0, 0, -1 },
	/* RFC 2047 encoded words are opaque phrase text, never decoded */
	{ "=?UTF-8?B?QWRtaW4=?= <a@b.example>", 0, 0, OK, "a", "b.example", 1 },
	{ "=?utf-8?q?J=C3=B6rg_M?= <jorg@x.example>", 0, 0, OK, "jorg",
	  "x.example", 1 },
	{ "=?utf-8?B?PGFkbWluQGxlZ2l0aW1hdGUuY29tPg==?= <x@evil.example>", 0, 0,
	  OK, "x", "evil.example", 1 },
	{ "=?utf-8?q?a?=@x.example", 0, 0, OK, "=?utf-8?q?a?=", "x.example", 1 },
	/* an encoded word alone is a mailbox without a domain */
	{ "=?utf-8?B?PGFkbWluQGxlZ2l0aW1hdGUuY29tPg==?=", 0, 0, NODOM, 0, 0, 1 },
	/* comments: nested, quoted-pairs, anywhere CFWS may be */
	{ "(a (nested (deeply)) comment) a@x.example", 0, 0, OK, "a",
	  "x.example", 1 },
	{ "a@x.example (with \\) and \\( quoted)", 0, 0, OK, "a", "x.example", 1 },
	{ "a(c)@(c)x.example(c)", 0, 0, OK, "a", "x.example", 1 },
	{ "(unterminated a@x.example", 0, 0, BAD, 0, 0, -1 },
	{ "a@x.example (nested (unbalanced)", 0, 0, BAD, 0, 0, -1 },
	{ "a@x.example)", 0, 0, BAD, 0, 0, -1 },
	/* quoted local parts are unquoted */
	{ "\"john doe\"@x.example", 0, 0, OK, "john doe", "x.example", 1 },
	{ "\"john\\\"doe\"@x.example", 0, 0, OK, "john\"doe", "x.example", 1 },
	{ "\"a\\\\b\"@x.example", 0, 0, OK, "a\\b", "x.example", 1 },
	{ "\"\"@x.example", 0, 0, OK, "", "x.example", 1 },
	{ "\"a\".b@x.example", 0, 0, OK, "a.b", "x.example", 1 },
	{ "\"unterminated <a@x.example>", 0, 0, BAD, 0, 0, -1 },
	{ "a\\@b@x.example", 0, 0, BAD, 0, 0, -1 },
	/* display names with commas and dots */
	{ "\"Smith, John\" <j@x.example>", 0, 0, OK, "j", "x.example", 1 },
	/* unquoted, the comma splits: "Smith" is a second (domainless) mailbox */
	{ "Smith, John <j@x.example>", 0, 0, MULTI, 0, 0, 2 },
	{ "J. Q. Public <jqp@x.example>", 0, 0, OK, "jqp", "x.example", 1 },
	{ "\"\" <a@x.example>", 0, 0, OK, "a", "x.example", 1 },
	/* groups */
	{ "undisclosed-recipients:;", 0, 0, EMPTY, 0, 0, 0 },
	{ "Team: a@x.example;", 0, 0, OK, "a", "x.example", 1 },
	{ "Team: a@x.example, b@y.example;", 0, 0, MULTI, 0, 0, 2 },
	{ "Team: a@x.example", 0, 0, BAD, 0, 0, -1 },
	{ "A: B: c@x.example;;", 0, 0, BAD, 0, 0, -1 },
	{ "Team:;, a@x.example", 0, 0, OK, "a", "x.example", 1 },
	{ "G: <@r.example:a@x.example>;", 0, 0, OK, "a", "x.example", 1 },
	{ "G:a@x.example;junk", 0, 0, BAD, 0, 0, -1 },
	{ "G:a@x.example; , b@y.example", 0, 0, MULTI, 0, 0, 2 },
	{ "a@x.example;", 0, 0, BAD, 0, 0, -1 },
	/* obs-route: the final addr-spec is the address */
	{ "<@a.example,@b.example:user@domain.example>", 0, 0, OK, "user",
	  "domain.example", 1 },
	{ "<@a.example:user@domain.example>", 0, 0, OK, "user",
	  "domain.example", 1 },
	{ "<,@a.example,,@[192.0.2.1]:u@d.example>", 0, 0, OK, "u", "d.example", 1 },
	{ "<@a.example>", 0, 0, BAD, 0, 0, -1 },
	{ "<@a.example:>", 0, 0, BAD, 0, 0, -1 },
	/* UTF-8 (RFC 6532): in an addr-spec only with SMTPUTF8 */
	{ "user@B\xc3\xbc" "cher.EXAMPLE", 0, 1, OK, "user",
	  "b\xc3\xbc" "cher.example", 1 },
	{ "user@b\xc3\xbc" "cher.example", 0, 0, BAD, 0, 0, -1 },
	{ "user@b\xc3\xbc" "cher~.example", 0, 1, BAD, 0, 0, -1 },
	{ "j\xc3\xb6rg@x.example", 0, 1, OK, "j\xc3\xb6rg", "x.example", 1 },
	{ "j\xc3\xb6rg@x.example", 0, 0, BAD, 0, 0, -1 },
	{ "j\xff@x.example", 0, 1, BAD, 0, 0, -1 },	/* not UTF-8 */
	{ "j\xc0\xaf@x.example", 0, 1, BAD, 0, 0, -1 },	/* overlong */
	{ "\"j\xc3\xb6rg\"@x.example", 0, 0, BAD, 0, 0, -1 },
	/* 8-bit display names are common without SMTPUTF8: accepted */
	{ "J\xf6rg <j@x.example>", 0, 0, OK, "j", "x.example", 1 },
	{ "\"J\xf6rg\" <j@x.example>", 0, 0, OK, "j", "x.example", 1 },
	{ "(J\xf6rg) j@x.example", 0, 0, OK, "j", "x.example", 1 },
	/* empty values */
	{ "", 0, 0, EMPTY, 0, 0, 0 },
	{ "   \t ", 0, 0, EMPTY, 0, 0, 0 },
	{ "(only a comment)", 0, 0, EMPTY, 0, 0, 0 },
	{ ",", 0, 0, EMPTY, 0, 0, 0 },
	{ ",, a@x.example ,", 0, 0, OK, "a", "x.example", 1 },
	/* "<>" is not a mailbox */
	{ "<>", 0, 0, BAD, 0, 0, -1 },
	{ "Joe <>", 0, 0, BAD, 0, 0, -1 },
	/* NUL, bare CR, bare LF, folding */
	{ "a@x.example\0b", 13, 0, BAD, 0, 0, -1 },
	{ "\0", 1, 0, BAD, 0, 0, -1 },
	{ "Joe\r<a@x.example>", 0, 0, BAD, 0, 0, -1 },
	{ "Joe\n <a@x.example>", 0, 0, BAD, 0, 0, -1 },
	{ "Joe\r\n<a@x.example>", 0, 0, BAD, 0, 0, -1 },
	{ "<a@x.example>\r\n", 0, 0, BAD, 0, 0, -1 },
	{ "Joe\r\n\t<a@x.example>", 0, 0, OK, "a", "x.example", 1 },
	{ "Joe\r\n <a@x.example>\r\n (folded\r\n comment)", 0, 0, OK, "a",
	  "x.example", 1 },
	{ "\"quoted\r\n folded\"@x.example", 0, 0, OK, "quoted folded",
	  "x.example", 1 },
	{ "\"quoted\\\r\n x\"@x.example", 0, 0, BAD, 0, 0, -1 },
	{ "(comment \\\r\n x) a@x.example", 0, 0, BAD, 0, 0, -1 },
	/* controls: obs-qtext in a display name, never in an address */
	{ "\"a\x01\" <a@x.example>", 0, 0, OK, "a", "x.example", 1 },
	{ "a\x01 <a@x.example>", 0, 0, BAD, 0, 0, -1 },
	{ "\"a\x01\"@x.example", 0, 0, BAD, 0, 0, -1 },
	/* several addresses, junk, unterminated */
	{ "<a@x.example>, <b@y.example>", 0, 0, MULTI, 0, 0, 2 },
	{ "a@x.example, b@y.example, c@z.example", 0, 0, MULTI, 0, 0, 3 },
	{ "a@x.example b@y.example", 0, 0, BAD, 0, 0, -1 },
	{ "<a@x.example> junk", 0, 0, BAD, 0, 0, -1 },
	{ "<a@x.example>>", 0, 0, BAD, 0, 0, -1 },
	{ "<a@x.example", 0, 0, BAD, 0, 0, -1 },
	{ "<<a@x.example>>", 0, 0, BAD, 0, 0, -1 },
	/* domains */
	{ "a@X.EXAMPLE.", 0, 0, OK, "a", "x.example", 1 },
	{ "a . b @ x . example", 0, 0, OK, "a.b", "x.example", 1 },
	{ "a@x_y-z.example", 0, 0, OK, "a", "x_y-z.example", 1 },
	{ "a@[192.0.2.1]", 0, 0, NODOM, 0, 0, 1 },
	{ "Joe <a@[IPv6:2001:db8::1]>", 0, 0, NODOM, 0, 0, 1 },
	{ "a@[192.0.2.1", 0, 0, BAD, 0, 0, -1 },
	{ "joe", 0, 0, NODOM, 0, 0, 1 },
	{ "Joe Johnson", 0, 0, BAD, 0, 0, -1 },
	{ "a@x..example", 0, 0, BAD, 0, 0, -1 },
	{ "a@x.example..", 0, 0, BAD, 0, 0, -1 },
	{ "a@.x.example", 0, 0, BAD, 0, 0, -1 },
	{ ".a@x.example", 0, 0, BAD, 0, 0, -1 },
	{ "a.@x.example", 0, 0, BAD, 0, 0, -1 },
	{ "a..b@x.example", 0, 0, BAD, 0, 0, -1 },
	{ "a@", 0, 0, BAD, 0, 0, -1 },
	{ "@x.example", 0, 0, BAD, 0, 0, -1 },
	{ "a@.", 0, 0, BAD, 0, 0, -1 },
	/* atext RFC 5322 allows but no DNS name has: no silent "no policy" */
	{ "a@legitimate.com'", 0, 0, BAD, 0, 0, -1 },
	{ "a@legitimate.com#x", 0, 0, BAD, 0, 0, -1 },
	{ "a@x.example@y.example", 0, 0, BAD, 0, 0, -1 },
	{ "a@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example",
	  0, 0, BAD, 0, 0, -1 },	/* a 64-octet label */
};

static void
test_table(void **state)
{
	struct result r;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct tcase *c = &cases[i];
		size_t len = c->len ? c->len : strlen(c->in);

		parse(c->in, len, c->utf8, &r);
		if (r.st != c->st)
			print_error("case %zu \"%s\": %s, want %s\n", i, c->in,
			    addr_from_status_name(r.st),
			    addr_from_status_name(c->st));
		assert_int_equal(r.st, c->st);
		if (c->st == OK) {
			assert_string_equal(r.local, c->local);
			assert_string_equal(r.domain, c->domain);
		}
		if (c->naddr >= 0)
			assert_int_equal(r.naddr, (size_t)c->naddr);
	}
}

static void
test_status_names(void **state)
{
	assert_string_equal(addr_from_status_name(OK), "ok");
	assert_string_equal(addr_from_status_name(EMPTY), "no address");
	assert_string_equal(addr_from_status_name(MULTI), "multiple addresses");
	assert_string_equal(addr_from_status_name(BAD), "unparseable");
	assert_string_equal(addr_from_status_name(NODOM), "no domain");
	assert_non_null(addr_from_status_name((enum addr_from_status)99));
}

/* Outputs that do not fit are BAD, never truncated. */
static void
test_small_buffers(void **state)
{
	char l[4], d[10];
	size_t n;

	assert_int_equal(addr_from_parse("abc@x.example", 13, 0, l, sizeof(l),
	    d, sizeof(d), &n), OK);
	assert_string_equal(l, "abc");
	assert_string_equal(d, "x.example");
	assert_int_equal(addr_from_parse("abcd@x.example", 14, 0, l, sizeof(l),
	    d, sizeof(d), &n), BAD);
	assert_string_equal(l, "");
	assert_int_equal(addr_from_parse("abc@xy.example", 14, 0, l, sizeof(l),
	    d, sizeof(d), &n), BAD);
	assert_int_equal(addr_from_parse("abc@xy.example", 14, 0, l, 0,
	    d, sizeof(d), NULL), BAD);
	/* the second mailbox is not copied, so it may be long */
	assert_int_equal(addr_from_parse(
	    "a@x.example, bbbbbbbbbbbbbbbbbbb@y.example",
	    strlen("a@x.example, bbbbbbbbbbbbbbbbbbb@y.example"), 0, l,
	    sizeof(l), d, sizeof(d), &n), MULTI);
	assert_int_equal(n, 2);
	/* len, not the NUL, bounds the value */
	assert_int_equal(addr_from_parse("a@x.example, b@y.example", 11, 0,
	    l, sizeof(l), d, sizeof(d), &n), OK);
	assert_int_equal(addr_from_parse(NULL, 0, 0, l, sizeof(l), d,
	    sizeof(d), &n), EMPTY);
}

/* ---- oversize inputs (100 KB) ---- */

#define BIG	(100 * 1024)

static void
test_oversize(void **state)
{
	struct result r;
	char *b = malloc(BIG + 64);
	size_t i, n;

	assert_non_null(b);
	/* a huge display name, then the address */
	memset(b, 'a', BIG);
	strcpy(b + BIG, " <a@x.example>");
	parse(b, strlen(b), 0, &r);
	assert_int_equal(r.st, OK);
	assert_string_equal(r.domain, "x.example");

	/* a huge local part does not fit */
	strcpy(b + BIG, "@x.example");
	parse(b, strlen(b), 0, &r);
	assert_int_equal(r.st, BAD);

	/* a huge domain */
	b[0] = 'a';
	b[1] = '@';
	for (i = 2; i < BIG; i++)
		b[i] = (i % 10 == 0) ? '.' : 'b';
	parse(b, BIG, 0, &r);
	assert_int_equal(r.st, BAD);

	/* deep comments: balanced, then unbalanced */
	n = BIG / 2;
	memset(b, '(', n);
	memset(b + n, ')', n);
	strcpy(b + 2 * n, "a@x.example");
	parse(b, strlen(b), 0, &r);
	assert_int_equal(r.st, OK);
	b[2 * n - 1] = 'x';
	parse(b, strlen(b), 0, &r);
	assert_int_equal(r.st, BAD);

	/* only commas and folding */
	for (i = 0; i + 4 <= BIG; i += 4)
		memcpy(b + i, ",\r\n ", 4);
	parse(b, i, 0, &r);
	assert_int_equal(r.st, EMPTY);

	/* thousands of addresses */
	for (i = 0, n = 0; i + 16 <= BIG; i += 16, n++)
		memcpy(b + i, "a@x.example,    ", 16);
	parse(b, i, 0, &r);
	assert_int_equal(r.st, MULTI);
	assert_int_equal(r.naddr, n);

	/* an unterminated quoted string */
	b[0] = '"';
	memset(b + 1, 'q', BIG - 1);
	parse(b, BIG, 0, &r);
	assert_int_equal(r.st, BAD);

	/* a NUL at the very end */
	memset(b, 'a', BIG);
	strcpy(b + BIG - 20, " <a@x.example>");
	b[BIG - 1] = '\0';
	parse(b, BIG, 0, &r);
	assert_int_equal(r.st, BAD);
	free(b);
}

/* ---- conformance data ---- */

static char *
slurp(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (p = malloc((size_t)n + 1)) != NULL) {
		*len_r = fread(p, 1, (size_t)n, f);
		p[*len_r] = '\0';
	}
	fclose(f);
	return p;
}

static yaml_node_t *
map_get(yaml_document_t *d, yaml_node_t *map, const char *key)
{
	yaml_node_pair_t *p;

	if (map == NULL || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (p = map->data.mapping.pairs.start;
	    p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(d, p->key);

		if (k != NULL && k->type == YAML_SCALAR_NODE &&
		    strcmp((char *)k->data.scalar.value, key) == 0)
			return yaml_document_get_node(d, p->value);
	}
	return NULL;
}

static int
load_yaml(const char *path, yaml_document_t *doc)
{
	yaml_parser_t yp;
	char *text;
	size_t len;
	int rc;

	if ((text = slurp(path, &len)) == NULL)
		return -1;
	yaml_parser_initialize(&yp);
	yaml_parser_set_input_string(&yp, (unsigned char *)text, len);
	rc = yaml_parser_load(&yp, doc) ? 0 : -1;
	yaml_parser_delete(&yp);
	free(text);
	return rc;
}

/*
 * The JSON stores one code point per wire octet (Latin-1); libyaml
 * hands back UTF-8. Fold U+0080..U+00FF back to octets.
 */
static size_t
unlatin(const unsigned char *in, size_t n, char *out)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		if ((in[i] == 0xc2 || in[i] == 0xc3) && i + 1 < n &&
		    (in[i + 1] & 0xc0) == 0x80) {
			out[o++] = (char)(((in[i] & 3) << 6) | (in[i + 1] & 0x3f));
			i++;
		} else
			out[o++] = (char)in[i];
	}
	out[o] = '\0';
	return o;
}

/*
 * What each espoofer from_header gives. The header block is cut into
 * fields (a line starting with WSP continues the previous one; a line
 * without a colon is no field); every field whose name is "From" once
 * white space and folding around it are dropped counts, because some
 * reader will take it for one (A9-A11 exploit readers that disagree).
 * Each such value goes through addr_from_parse. Two From fields are for
 * the message layer to refuse (RFC 5322 3.6: at most one; RFC 7489
 * 6.6.1); here each value is checked on its own.
 */
struct espoof {
	const char *id;
	int nfields;
	enum addr_from_status st[2];
	const char *domain[2];
	/* the whole header gives exactly one clean legitimate.com address */
	int clean_legit;
};

static const struct espoof espoofs[] = {
	/* A1-A7 attack the envelope, SPF/DKIM and Authentication-Results;
	 * the From field is honest: the one address a client shows. DMARC
	 * then evaluates legitimate.com and the attacker cannot align. */
	{ "server_a1", 1, { OK }, { "legitimate.com" }, 1 },
	{ "server_a2", 1, { OK }, { "legitimate.com" }, 1 },
	{ "server_a3", 1, { OK }, { "legitimate.com" }, 1 },
	{ "server_a4", 1, { OK }, { "legitimate.com" }, 1 },
	{ "server_a5", 1, { OK }, { "legitimate.com" }, 1 },
	{ "server_a6", 1, { OK }, { "legitimate.com" }, 1 },
	{ "server_a7", 1, { OK }, { "legitimate.com" }, 1 },
	/* A8: two From fields, each clean; the second field is the catch */
	{ "server_a8", 2, { OK, OK }, { "attack.com", "legitimate.com" }, 0 },
	/* A9: " From:" (leading space) is a field for some readers */
	{ "server_a9", 2, { OK, OK }, { "attack.com", "legitimate.com" }, 0 },
	/* A10: "From :" (obs-field WSP before the colon, RFC 5322 4.5.8) */
	{ "server_a10", 2, { OK, OK }, { "attack.com", "legitimate.com" }, 0 },
	/* A11: "From\r\n :" folded name */
	{ "server_a11", 2, { OK, OK }, { "attack.com", "legitimate.com" }, 0 },
	/* A12/A13: the only From is the attacker's own domain (the stray "n"
	 * line in A12 has no colon and is no field) */
	{ "server_a12", 1, { OK }, { "attack.com" }, 0 },
	{ "server_a13", 1, { OK }, { "attack.com" }, 0 },
	/* A14: two mailboxes in one field */
	{ "server_a14", 1, { MULTI }, { 0 }, 0 },
	/* A15: an encoded word hiding "<admin@legitimate.com>": opaque text,
	 * so it is a domainless mailbox beside <second@attack.com> */
	{ "server_a15", 1, { MULTI }, { 0 }, 0 },
	/* A16: obs-route; the route (attack.com, any.com) is no address,
	 * the mailbox is admin@legitimate.com, which is what clients show
	 * and what DMARC must evaluate (and the attacker then fails it) */
	{ "server_a16", 1, { OK }, { "legitimate.com" }, 1 },
	/* A17: "\," outside a quoted string is no quoted-pair: junk */
	{ "server_a17", 1, { BAD }, { 0 }, 0 },
	/* A18: addr-spec then angle-addr: two mailboxes */
	{ "server_a18", 1, { MULTI }, { 0 }, 0 },
	/* A19: "<any@attack.com>admin@legitimate.com": junk after the address */
	{ "server_a19", 1, { BAD }, { 0 }, 0 },
	{ "client_a1", 2, { OK, OK }, { "example.com", "example.com" }, 0 },
	{ "client_a2", 1, { MULTI }, { 0 }, 0 },
	{ "client_a3", 1, { OK }, { "example.com" }, 0 },
};

struct field {
	const char *value;
	size_t len;
};

/* The From field values of a header block, as described above. */
static int
from_fields(const char *h, size_t n, struct field *out, int max)
{
	size_t i = 0, start, colon, end, a, b;
	int nf = 0;

	while (i < n) {
		/* one field: up to a CRLF not followed by WSP (or the end) */
		start = i;
		while (i < n && !(h[i] == '\r' && i + 1 < n && h[i + 1] == '\n' &&
		    !(i + 2 < n && (h[i + 2] == ' ' || h[i + 2] == '\t'))))
			i++;
		end = i;
		i = i < n ? i + 2 : n;
		for (colon = start; colon < end && h[colon] != ':'; colon++)
			;
		if (colon == end)
			continue;	/* no colon: no field */
		for (a = start; a < colon && strchr(" \t\r\n", h[a]); a++)
			;
		for (b = colon; b > a && strchr(" \t\r\n", h[b - 1]); b--)
			;
		if (b - a == 4 && strncasecmp(h + a, "From", 4) == 0) {
			assert_true(nf < max);
			out[nf].value = h + colon + 1;
			out[nf].len = end - colon - 1;
			nf++;
		}
	}
	return nf;
}

static void
test_espoofer(void **state)
{
	yaml_document_t doc;
	yaml_node_t *root;
	yaml_node_pair_t *p;
	size_t i, ran = 0;
	int k;

	if (access(ESPOOFER, R_OK) != 0 || load_yaml(ESPOOFER, &doc) == -1) {
		printf("skipped: %s absent\n", ESPOOFER);
		skip();
	}
	root = yaml_document_get_root_node(&doc);
	assert_non_null(root);
	assert_int_equal(root->type, YAML_MAPPING_NODE);
	for (p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
	    p++) {
		yaml_node_t *key = yaml_document_get_node(&doc, p->key);
		yaml_node_t *c = yaml_document_get_node(&doc, p->value);
		yaml_node_t *fh = map_get(&doc, map_get(&doc, c, "data"),
		    "from_header");
		const char *id = (const char *)key->data.scalar.value;
		const struct espoof *e = NULL;
		struct field f[4];
		struct result r;
		char *h;
		size_t hl;
		int nf, legit = 0;

		for (i = 0; i < sizeof(espoofs) / sizeof(espoofs[0]); i++)
			if (strcmp(espoofs[i].id, id) == 0)
				e = &espoofs[i];
		if (e == NULL)
			fail_msg("espoofer case %s has no expectation", id);
		assert_non_null(fh);
		assert_int_equal(fh->type, YAML_SCALAR_NODE);
		h = malloc(fh->data.scalar.length + 1);
		assert_non_null(h);
		hl = unlatin(fh->data.scalar.value, fh->data.scalar.length, h);
		nf = from_fields(h, hl, f, 4);
		if (nf != e->nfields)
			fail_msg("%s: %d From fields, want %d", id, nf, e->nfields);
		for (k = 0; k < nf; k++) {
			parse(f[k].value, f[k].len, 0, &r);
			if (r.st != e->st[k])
				fail_msg("%s field %d: %s, want %s", id, k,
				    addr_from_status_name(r.st),
				    addr_from_status_name(e->st[k]));
			if (r.st == OK)
				assert_string_equal(r.domain, e->domain[k]);
			if (r.st == OK && strcmp(r.domain, "legitimate.com") == 0)
				legit++;
			/* the same with SMTPUTF8 */
			parse(f[k].value, f[k].len, 1, &r);
			assert_int_equal(r.st, e->st[k]);
		}
		assert_int_equal(nf == 1 && legit == 1, e->clean_legit);
		free(h);
		ran++;
	}
	yaml_document_delete(&doc);
	printf("espoofer: %zu ran\n", ran);
	assert_int_equal(ran, sizeof(espoofs) / sizeof(espoofs[0]));
}

/*
 * OpenDMARC's From vectors (opendmarc_util_finddomain). Its expectation
 * is a domain for every one; ours is a status:
 *  - where OpenDMARC takes the first of several addresses, we answer
 *    MULTIPLE (RFC 7489 6.6.1 leaves the choice; DMARCbis says a
 *    receiver may reject, and we never guess which one the user sees);
 *  - where the value is not RFC 5322 (a quoted phrase before a bare
 *    addr-spec, "<<<>", a group never closed by ";") we answer BAD.
 */
struct odvec {
	const char *raw;
	enum addr_from_status st;
};

static const struct odvec odvecs[] = {
	{ "Joe Johnson <joe@joe.com>", OK },
	/* quoted phrase then an addr-spec: no angle brackets, so neither a
	 * name-addr nor an addr-spec (two words before "@") */
	{ "\"Johnson, Joe <joe@joe.com>\" joe@joe.com", BAD },
	{ "\"Joe Johnson\" <joe@joe.com>", OK },
	{ "(Joe Johnson) joe@joe.com", OK },
	{ "joe@joe.com", OK },
	/* nested angle brackets */
	{ "<<<><joe@joe.com>>>", BAD },
	{ "Joe Johnson <joe@joe.com>, ace@ace.com", MULTI },
	{ "joe@joe.com, ace@ace.com", MULTI },
	/* "Mail From:" opens a group that no ";" closes */
	{ "Mail From:<joe@joe.com>", BAD },
	{ "\"Mandel, Bob\" <joe@joe.com>", OK },
	{ "(,) joe@joe.com", OK },
	{ "\"( bob@bob.com)\" joe@joe.com", BAD },
	/* a whole "From: ..." line as the value: again an unclosed group */
	{ "From: Davide D'Marco <user@blah.com>", BAD },
};

static void
test_opendmarc(void **state)
{
	yaml_document_t doc;
	yaml_node_t *list;
	yaml_node_item_t *it;
	size_t i, ran = 0, agree = 0;

	if (access(OPENDMARC, R_OK) != 0 || load_yaml(OPENDMARC, &doc) == -1) {
		printf("skipped: %s absent\n", OPENDMARC);
		skip();
	}
	list = map_get(&doc, yaml_document_get_root_node(&doc),
	    "from_header_domain");
	assert_non_null(list);
	assert_int_equal(list->type, YAML_SEQUENCE_NODE);
	for (it = list->data.sequence.items.start;
	    it < list->data.sequence.items.top; it++) {
		yaml_node_t *v = yaml_document_get_node(&doc, *it);
		yaml_node_t *raw = map_get(&doc, v, "raw");
		yaml_node_t *dom = map_get(&doc, v, "domain");
		const struct odvec *e = NULL;
		struct result r;

		assert_non_null(raw);
		assert_non_null(dom);
		for (i = 0; i < sizeof(odvecs) / sizeof(odvecs[0]); i++)
			if (strcmp(odvecs[i].raw,
			    (const char *)raw->data.scalar.value) == 0)
				e = &odvecs[i];
		if (e == NULL)
			fail_msg("OpenDMARC vector \"%s\" has no expectation",
			    raw->data.scalar.value);
		parse((const char *)raw->data.scalar.value,
		    raw->data.scalar.length, 0, &r);
		if (r.st != e->st)
			fail_msg("\"%s\": %s, want %s", e->raw,
			    addr_from_status_name(r.st),
			    addr_from_status_name(e->st));
		if (r.st == OK) {
			/* where we answer, the domain is OpenDMARC's */
			assert_string_equal(r.domain,
			    (const char *)dom->data.scalar.value);
			agree++;
		}
		ran++;
	}
	yaml_document_delete(&doc);
	printf("opendmarc from_header_domain: %zu ran, %zu same domain\n", ran,
	    agree);
	assert_int_equal(ran, sizeof(odvecs) / sizeof(odvecs[0]));
}

static void
test_field_is_from(void **state)
{
	static const struct {
		const char *raw;
		int is;
		const char *value;
	} t[] = {
		{ "From: a@b.example\r\n", 1, " a@b.example" },
		{ "from:a@b.example\r\n", 1, "a@b.example" },
		{ "FROM : a@b.example\r\n", 1, " a@b.example" },
		{ "From\t: a@b.example\r\n", 1, " a@b.example" },
		{ "From\r\n : a@b.example\r\n", 1, " a@b.example" },
		{ "From:\r\n", 1, "" },
		{ "From:", 1, "" },
		{ "Fromage: x\r\n", 0, NULL },
		{ "Resent-From: a@b.example\r\n", 0, NULL },
		{ "X-From: a@b.example\r\n", 0, NULL },
		{ "From a@b.example\r\n", 0, NULL },
		{ "Fro", 0, NULL },
		{ "", 0, NULL },
	};
	size_t i, n;
	const char *v;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int is = addr_field_is_from(t[i].raw, strlen(t[i].raw), &v, &n);

		if (is != t[i].is)
			fail_msg("%zu: \"%s\": got %d", i, t[i].raw, is);
		if (is && (n != strlen(t[i].value) ||
		    memcmp(v, t[i].value, n) != 0))
			fail_msg("%zu: value \"%.*s\"", i, (int)n, v);
	}
}

/* Our stamps are recognised however a reader spells the name. */
static void
test_field_name(void **state)
{
	static const struct {
		const char *raw;
		const char *name;	/* NULL: no name */
		const char *value;
	} t[] = {
		{ "X-Mxgate-Verdict: clean\r\n", "X-Mxgate-Verdict", " clean" },
		{ "X-Mxgate-Verdict : clean\r\n", "X-Mxgate-Verdict", " clean" },
		{ "X-Mxgate-Verdict\r\n : clean\r\n", "X-Mxgate-Verdict", " clean" },
		{ "Authentication-Results\t:x; dmarc=pass", "Authentication-Results",
		    "x; dmarc=pass" },
		{ "Subject:\r\n", "Subject", "" },
		{ "a:b:c\r\n", "a", "b:c" },
		{ "X Y: z\r\n", NULL, NULL },
		{ "X\x01Y: z\r\n", NULL, NULL },
		{ "X\xc3\xa9: z\r\n", NULL, NULL },
		{ " X: z\r\n", NULL, NULL },
		{ ": z\r\n", NULL, NULL },
		{ "\r\n : z\r\n", NULL, NULL },
		{ "no colon\r\n", NULL, NULL },
		{ "", NULL, NULL },
	};
	size_t i, n, vn;
	const char *name, *v;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int is = addr_field_name(t[i].raw, strlen(t[i].raw), &name, &n,
		    &v, &vn);

		if (is != (t[i].name != NULL))
			fail_msg("%zu: \"%s\": got %d", i, t[i].raw, is);
		if (is && (n != strlen(t[i].name) ||
		    memcmp(name, t[i].name, n) != 0))
			fail_msg("%zu: name \"%.*s\"", i, (int)n, name);
		if (is && (vn != strlen(t[i].value) ||
		    memcmp(v, t[i].value, vn) != 0))
			fail_msg("%zu: value \"%.*s\"", i, (int)vn, v);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_status_names),
		cmocka_unit_test(test_small_buffers),
		cmocka_unit_test(test_oversize),
		cmocka_unit_test(test_espoofer),
		cmocka_unit_test(test_opendmarc),
		cmocka_unit_test(test_field_is_from),
		cmocka_unit_test(test_field_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
