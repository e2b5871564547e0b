/*
 * Tests for auth/spf*.c: the record parser, the macro expander (RFC 7208
 * 7.4 examples), the Received-SPF field, and the engine's limits driven
 * by a small scripted resolver.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/spf.h"
#include "auth/spf_int.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- record parser ---- */

static const struct {
	const char *rec;
	int ok;
} records[] = {
	{ "v=spf1", 1 },
	{ "V=SPF1 -ALL", 1 },
	{ "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all", 1 },
	{ "v=spf1 a mx ptr a:example.com/24//64 mx:%{d}", 1 },
	{ "v=spf1 include:_spf.example.com ~all", 1 },
	{ "v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} -all", 1 },
	{ "v=spf1 redirect=_spf.example.com", 1 },
	{ "v=spf1 -all exp=explain._spf.%{d}", 1 },
	{ "v=spf1 foo=bar moo.cow-far_out=man:dog/cat", 1 },
	{ "v=spf1  a   -all  ", 1 },
	{ "v=spf1 a:foo:bar/baz.example.com", 1 },
	{ "v=spf1 a:foo.example.xn--zckzah", 1 },
	{ "v=spf1 a:foo.example.com.", 1 },
	{ "v=spf10", 0 },
	{ "v=spf1 moo", 0 },			/* unknown mechanism */
	{ "v=spf1 -all.", 0 },
	{ "v=spf1 all:x", 0 },
	{ "v=spf1 ip4:1.2.3.4/33", 0 },		/* bad CIDR */
	{ "v=spf1 ip4:1.2.3.4/032", 0 },
	{ "v=spf1 ip4:1.2.3", 0 },
	{ "v=spf1 ip4:01.2.3.4", 0 },
	{ "v=spf1 ip4:1.2.3.4//32", 0 },
	{ "v=spf1 ip6:::1/129", 0 },
	{ "v=spf1 ip6::CAFE::BABE", 0 },
	{ "v=spf1 a/33", 0 },
	{ "v=spf1 a//129", 0 },
	{ "v=spf1 a/24/64", 0 },
	{ "v=spf1 a/99999999999999999999", 0 },	/* no overflow */
	{ "v=spf1 a:", 0 },
	{ "v=spf1 a:museum", 0 },		/* toplabel only */
	{ "v=spf1 a:111.222.33.44", 0 },	/* numeric toplabel */
	{ "v=spf1 a:example.-com", 0 },
	{ "v=spf1 ptr/0", 0 },
	{ "v=spf1 include", 0 },
	{ "v=spf1 exists", 0 },
	{ "v=spf1 redirect:x.example.com", 0 },
	{ "v=spf1 redirect=a.example redirect=b.example", 0 },
	{ "v=spf1 exp=a.example exp=b.example", 0 },
	{ "v=spf1 exp=", 0 },
	{ "v=spf1 1up=foo", 0 },
	{ "v=spf1 =all", 0 },
	{ "v=spf1 -redirect=x.example", 0 },
	{ "v=spf1 foo=%abc", 0 },		/* bad macro */
	{ "v=spf1 a:%{d0}.example.com", 0 },
	{ "v=spf1 a:%{c}.example.com", 0 },	/* c only in exp */
	{ "v=spf1 exp=%{r}.example.com", 0 },
	{ "v=spf1 a:%{a}.example.com", 0 },
	{ "v=spf1 a:foo.example.com\x01", 0 },	/* control octet */
	{ "v=spf1 \x80" "a", 0 },		/* 8-bit */
};

static void
test_record_parse(void **state)
{
	struct spf_record *r;
	const char *err;
	size_t i;

	for (i = 0; i < NELEM(records); i++) {
		int rc = spf_record_parse(records[i].rec,
		    strlen(records[i].rec), &r, &err);

		if ((rc == 0) != records[i].ok)
			fail_msg("record \"%s\": expected %s, got %s", records[i].rec,
			    records[i].ok ? "ok" : "error", rc == 0 ? "ok" : err);
		spf_record_free(r);
	}
}

static void
test_record_fields(void **state)
{
	const char *rec = "v=spf1 ~a:example.com/24//64 ip4:192.0.2.0/24 "
	    "redirect=r.example exp=e.example";
	struct spf_record *r;
	const char *err;

	assert_int_equal(spf_record_parse(rec, strlen(rec), &r, &err), 0);
	assert_int_equal(r->nterms, 2);
	assert_int_equal(r->terms[0].mech, SPF_M_A);
	assert_int_equal(r->terms[0].qual, '~');
	assert_int_equal(r->terms[0].cidr4, 24);
	assert_int_equal(r->terms[0].cidr6, 64);
	assert_int_equal(r->terms[0].speclen, strlen("example.com"));
	assert_memory_equal(r->terms[0].spec, "example.com", 11);
	assert_int_equal(r->terms[1].mech, SPF_M_IP4);
	assert_int_equal(r->terms[1].qual, '+');
	assert_int_equal(r->terms[1].addr[0], 192);
	assert_string_equal(r->redirect, "r.example");
	assert_string_equal(r->exp, "e.example");
	spf_record_free(r);

	/* a NUL inside the text is an error, not a terminator */
	assert_int_equal(spf_record_parse("v=spf1 a\0b", 10, &r, &err), -1);
}

static void
test_record_size_cap(void **state)
{
	struct spf_record *r;
	const char *err;
	char *big = malloc(SPF_RECORD_MAX + 100);
	size_t i;

	assert_non_null(big);
	memcpy(big, "v=spf1", 6);
	for (i = 6; i + 2 < SPF_RECORD_MAX + 100; i += 2)
		memcpy(big + i, " a", 2);
	assert_int_equal(spf_record_parse(big, i, &r, &err), -1);
	assert_string_equal(err, "record too long");
	free(big);
}

/* ---- macros: RFC 7208 7.4 ---- */

static struct spf *
new_check(const char *ip, const char *sender, const char *helo)
{
	struct spf_params p = { 0 };
	struct spf *s;

	p.identity = SPF_ID_MAILFROM;
	p.ip = ip;
	p.sender = sender;
	p.helo = helo;
	p.receiver = "mx.receiver.example";
	p.now = 1234567890;
	s = spf_new(&p);
	assert_non_null(s);
	return s;
}

static const struct {
	const char *src, *v4, *v6;	/* v6 NULL: same as v4 */
} rfc_examples[] = {
	{ "%{s}", "strong-bad@email.example.com", NULL },
	{ "%{o}", "email.example.com", NULL },
	{ "%{d}", "email.example.com", NULL },
	{ "%{d4}", "email.example.com", NULL },
	{ "%{d3}", "email.example.com", NULL },
	{ "%{d2}", "example.com", NULL },
	{ "%{d1}", "com", NULL },
	{ "%{dr}", "com.example.email", NULL },
	{ "%{d2r}", "example.email", NULL },
	{ "%{l}", "strong-bad", NULL },
	{ "%{l-}", "strong.bad", NULL },
	{ "%{lr}", "strong-bad", NULL },
	{ "%{lr-}", "bad.strong", NULL },
	{ "%{l1r-}", "strong", NULL },
	{ "%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com",
	    "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
	    ".ip6._spf.example.com" },
	{ "%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com", NULL },
	{ "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}",
	    "bad.strong.lp.3.2.0.192.in-addr._spf.example.com",
	    "bad.strong.lp.1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	    "8.b.d.0.1.0.0.2.ip6._spf.example.com" },
	{ "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}",
	    "3.2.0.192.in-addr.strong.lp._spf.example.com",
	    "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
	    ".ip6.strong.lp._spf.example.com" },
	{ "%{d2}.trusted-domains.example.net",
	    "example.com.trusted-domains.example.net", NULL },
	/* escapes, URL encoding, more transformers */
	{ "%%%_%-", "% %20", NULL },
	{ "%{L}", "strong-bad", NULL },
	{ "%{S}", "strong-bad%40email.example.com", NULL },
	{ "%{i}", "192.0.2.3",
	    "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.c.b.0.1" },
	{ "%{d999999999999999999999}", "email.example.com", NULL },
	{ "%{l1-=+}", "bad", NULL },
	{ "%{h}", "helo.example.org", NULL },
	{ "%{p}", "unknown", NULL },
	{ "%{v}", "in-addr", "ip6" },
};

static void
test_macro_rfc_examples(void **state)
{
	char out[512];
	size_t i;
	int fam;

	for (fam = 0; fam < 2; fam++) {
		struct spf *s = new_check(fam ? "2001:db8::cb01" : "192.0.2.3",
		    "strong-bad@email.example.com", "helo.example.org");

		for (i = 0; i < NELEM(rfc_examples); i++) {
			const char *want = fam && rfc_examples[i].v6 ?
			    rfc_examples[i].v6 : rfc_examples[i].v4;

			assert_int_equal(spf_expand(s, rfc_examples[i].src, 0,
			    out, sizeof(out)), 0);
			if (strcmp(out, want) != 0)
				fail_msg("%s: expected \"%s\", got \"%s\"",
				    rfc_examples[i].src, want, out);
		}
		spf_free(s);
	}
}

static void
test_macro_exp_only(void **state)
{
	struct spf *s = new_check("2001:db8::cb01", "a@b.example",
	    "h.example");
	char out[256];

	assert_int_equal(spf_expand(s, "%{c}", 0, out, sizeof(out)), -1);
	assert_int_equal(spf_expand(s, "%{r}", 0, out, sizeof(out)), -1);
	assert_int_equal(spf_expand(s, "%{t}", 0, out, sizeof(out)), -1);
	assert_int_equal(spf_expand(s, "%{c} %{r} %{t}", 1, out, sizeof(out)),
	    0);
	assert_string_equal(out, "2001:db8::cb01 mx.receiver.example "
	    "1234567890");
	/* too small an output buffer is an error, not a cut */
	assert_int_equal(spf_expand(s, "%{c}", 1, out, 4), -1);
	spf_free(s);
}

static void
test_macro_syntax_errors(void **state)
{
	static const char *bad[] = {
		"%", "abc%", "%x", "%{", "%{d", "%{d2", "%{dr", "%{q}",
		"%{d0}", "%{d00}", "%{dr2}", "%{d2r-x}", "%(ir)", "%{}",
		"a b\x01", "\xef\xbb\xbf",
	};
	struct spf *s = new_check("192.0.2.3", "a@b.example", "h.example");
	char out[256];
	size_t i;

	for (i = 0; i < NELEM(bad); i++)
		if (spf_expand(s, bad[i], 1, out, sizeof(out)) != -1)
			fail_msg("\"%s\" expanded", bad[i]);
	spf_free(s);
}

static void
test_macro_mapped_and_null_sender(void **state)
{
	struct spf *s = new_check("::ffff:192.0.2.3", "", "helo.example.org");
	char out[256];

	assert_int_equal(spf_expand(s, "%{s} %{i} %{v}", 0, out, sizeof(out)),
	    0);
	assert_string_equal(out, "postmaster@helo.example.org 192.0.2.3 "
	    "in-addr");
	assert_string_equal(spf_domain(s), "helo.example.org");
	spf_free(s);
}

/* ---- a scripted resolver ---- */

struct zrec {
	const char *name;
	enum dns_type type;
	const char *value;	/* TXT text, address, MX / PTR name */
};

static enum spf_result
run(struct spf *s, const struct zrec *z, size_t nz, int *questions)
{
	const char *name;
	enum dns_type type;
	int q = 0;

	while (spf_step(s, &name, &type) == SPF_NEED_DNS) {
		struct dns_rr rr[64];
		struct dns_answer a = { 0 };
		int exists = 0;
		size_t i;

		assert_true(++q < 500);
		memset(rr, 0, sizeof(rr));
		a.name = name;
		a.type = type;
		a.rr = rr;
		for (i = 0; i < nz; i++) {
			if (strcasecmp(z[i].name, name) != 0)
				continue;
			exists = 1;
			if (z[i].type != type || a.n == NELEM(rr))
				continue;
			if (type == DNS_T_A || type == DNS_T_AAAA) {
				rr[a.n].family = type == DNS_T_A ? AF_INET :
				    AF_INET6;
				inet_pton(rr[a.n].family, z[i].value,
				    rr[a.n].addr);
			} else {
				rr[a.n].text = (char *)z[i].value;
				rr[a.n].len = strlen(z[i].value);
			}
			a.n++;
		}
		a.status = a.n ? DNS_OK : exists ? DNS_NODATA : DNS_NXDOMAIN;
		spf_answer(s, &a);
	}
	if (questions != NULL)
		*questions = q;
	return spf_result(s);
}

static enum spf_result
check(const char *ip, const char *sender, const struct zrec *z, size_t nz,
    struct spf **s_r)
{
	struct spf *s = new_check(ip, sender, "helo.example.org");
	enum spf_result r = run(s, z, nz, NULL);

	if (s_r != NULL)
		*s_r = s;
	else
		spf_free(s);
	return r;
}

static void
test_engine_basic(void **state)
{
	static const struct zrec z[] = {
		{ "example.com", DNS_T_TXT, "v=spf1 ip4:192.0.2.0/24 -all" },
		{ "example.com", DNS_T_TXT, "google-site-verification=x" },
	};
	struct spf *s;

	assert_int_equal(check("192.0.2.9", "a@example.com", z, NELEM(z), &s),
	    SPF_PASS);
	assert_string_equal(spf_reason(s), "matched ip4:192.0.2.0/24");
	assert_string_equal(spf_explanation(s), "");
	assert_non_null(strstr(spf_trace(s), "ip4:192.0.2.0/24 -> match"));
	spf_free(s);
	assert_int_equal(check("198.51.100.1", "a@example.com", z, NELEM(z),
	    &s), SPF_FAIL);
	assert_string_equal(spf_explanation(s), "domain of example.com does "
	    "not designate 198.51.100.1 as permitted sender");
	spf_free(s);
	assert_int_equal(check("198.51.100.1", "a@other.example", z,
	    NELEM(z), NULL), SPF_NONE);
}

static void
test_engine_term_limit(void **state)
{
	static const struct zrec z[] = {
		{ "example.com", DNS_T_TXT,
		    "v=spf1 a a a a a a a a a a a -all" },
		{ "example.com", DNS_T_A, "198.51.100.1" },
		{ "loop.example", DNS_T_TXT, "v=spf1 include:loop.example" },
		{ "ten.example", DNS_T_TXT,
		    "v=spf1 a a a a a a a a a a ip4:192.0.2.1" },
		{ "ten.example", DNS_T_A, "198.51.100.1" },
	};
	struct spf *s;

	assert_int_equal(check("192.0.2.1", "a@example.com", z, NELEM(z), &s),
	    SPF_PERMERROR);
	assert_string_equal(spf_reason(s), "too many DNS lookups");
	spf_free(s);
	assert_int_equal(check("192.0.2.1", "a@loop.example", z, NELEM(z), &s),
	    SPF_PERMERROR);
	assert_string_equal(spf_reason(s), "too many DNS lookups");
	spf_free(s);
	assert_int_equal(check("192.0.2.1", "a@ten.example", z, NELEM(z),
	    NULL), SPF_PASS);
}

static void
test_engine_void_limit(void **state)
{
	static const struct zrec z[] = {
		{ "example.com", DNS_T_TXT,
		    "v=spf1 a:n1.example a:n2.example a:n3.example -all" },
		{ "two.example", DNS_T_TXT,
		    "v=spf1 a:n1.example mx:n2.example ?all" },
	};
	struct spf *s;

	assert_int_equal(check("192.0.2.1", "a@example.com", z, NELEM(z), &s),
	    SPF_PERMERROR);
	assert_string_equal(spf_reason(s), "void lookup limit");
	spf_free(s);
	assert_int_equal(check("192.0.2.1", "a@two.example", z, NELEM(z),
	    NULL), SPF_NEUTRAL);
}

static void
test_engine_mx_ptr_limits(void **state)
{
	static const struct zrec z[] = {
		{ "example.com", DNS_T_TXT, "v=spf1 mx -all" },
		{ "example.com", DNS_T_MX, "m1.example.com" },
		{ "example.com", DNS_T_MX, "m2.example.com" },
		{ "example.com", DNS_T_MX, "m3.example.com" },
		{ "example.com", DNS_T_MX, "m4.example.com" },
		{ "example.com", DNS_T_MX, "m5.example.com" },
		{ "example.com", DNS_T_MX, "m6.example.com" },
		{ "example.com", DNS_T_MX, "m7.example.com" },
		{ "example.com", DNS_T_MX, "m8.example.com" },
		{ "example.com", DNS_T_MX, "m9.example.com" },
		{ "example.com", DNS_T_MX, "m10.example.com" },
		{ "example.com", DNS_T_MX, "m11.example.com" },
		{ "p.example", DNS_T_TXT, "v=spf1 ptr -all" },
		{ "1.2.0.192.in-addr.arpa", DNS_T_PTR, "h1.other" },
		{ "1.2.0.192.in-addr.arpa", DNS_T_PTR, "h2.other" },
		{ "1.2.0.192.in-addr.arpa", DNS_T_PTR, "h3.other" },
		{ "1.2.0.192.in-addr.arpa", DNS_T_PTR, "h4.other" },
		{ "1.2.0.192.in-addr.arpa", DNS_T_PTR, "h5.other" },
		{ "1.2.0.192.in-addr.arpa", DNS_T_PTR, "h6.other" },
		{ "1.2.0.192.in-addr.arpa", DNS_T_PTR, "h7.other" },
		{ "1.2.0.192.in-addr.arpa", DNS_T_PTR, "h8.other" },
		{ "1.2.0.192.in-addr.arpa", DNS_T_PTR, "h9.other" },
		{ "1.2.0.192.in-addr.arpa", DNS_T_PTR, "h10.other" },
		{ "1.2.0.192.in-addr.arpa", DNS_T_PTR, "mail.p.example" },
		{ "mail.p.example", DNS_T_A, "192.0.2.1" },
	};
	struct spf *s;

	assert_int_equal(check("192.0.2.1", "a@example.com", z, NELEM(z), &s),
	    SPF_PERMERROR);
	assert_non_null(strstr(spf_reason(s), "too many MX names"));
	spf_free(s);
	/* RFC 7208 4.6.4: only the first 10 PTR names are considered */
	assert_int_equal(check("192.0.2.1", "a@p.example", z, NELEM(z), NULL),
	    SPF_FAIL);
}

static void
test_engine_dns_errors(void **state)
{
	struct spf *s = new_check("192.0.2.1", "a@example.com", "h.example");
	struct dns_answer a = { 0 };
	const char *name, *name2;
	enum dns_type type, type2;

	assert_int_equal(spf_step(s, &name, &type), SPF_NEED_DNS);
	assert_string_equal(name, "example.com");
	assert_int_equal(type, DNS_T_TXT);
	/* asking again without an answer repeats the question */
	assert_int_equal(spf_step(s, &name2, &type2), SPF_NEED_DNS);
	assert_string_equal(name2, "example.com");
	a.status = DNS_SERVFAIL;
	spf_answer(s, &a);
	assert_int_equal(spf_step(s, &name, &type), SPF_DONE);
	assert_int_equal(spf_result(s), SPF_TEMPERROR);
	spf_free(s);

	s = new_check("192.0.2.1", "a@example.com", "h.example");
	assert_int_equal(spf_step(s, &name, &type), SPF_NEED_DNS);
	spf_abort(s, "time budget");
	assert_int_equal(spf_step(s, &name, &type), SPF_DONE);
	assert_int_equal(spf_result(s), SPF_TEMPERROR);
	assert_string_equal(spf_reason(s), "time budget");
	spf_free(s);

	/* RFC 7208 4.3: a malformed domain is none, without DNS */
	s = new_check("192.0.2.1", "a@nodots", "h.example");
	assert_int_equal(spf_step(s, &name, &type), SPF_DONE);
	assert_int_equal(spf_result(s), SPF_NONE);
	spf_free(s);
}

static void
test_engine_helo_identity(void **state)
{
	static const struct zrec z[] = {
		{ "helo.example.org", DNS_T_TXT, "v=spf1 a -all" },
		{ "helo.example.org", DNS_T_A, "192.0.2.7" },
	};
	struct spf_params p = { 0 };
	struct spf *s;

	p.identity = SPF_ID_HELO;
	p.ip = "192.0.2.7";
	p.sender = "someone@elsewhere.example";
	p.helo = "helo.example.org";
	s = spf_new(&p);
	assert_non_null(s);
	assert_int_equal(run(s, z, NELEM(z), NULL), SPF_PASS);
	assert_string_equal(spf_domain(s), "helo.example.org");
	spf_free(s);
}

static void
test_engine_hostile_expansion(void **state)
{
	static const struct zrec z[] = {
		{ "example.com", DNS_T_TXT, NULL },	/* filled below */
		{ "trunc.example", DNS_T_TXT,
		    "v=spf1 exists:%{l}.%{l}.%{l}.%{l}.%{l}.%{l}.%{l}.%{l}."
		    "%{l}.%{l}.%{l}.%{l}.%{l}.%{l}.%{l}.%{l}.%{l}.%{l}.%{l}."
		    "%{l}.%{l}.%{l}.%{l}.%{l}.%{l}.%{l}.%{l}.%{l}.ok.example "
		    "-all" },
	};
	struct zrec zz[NELEM(z)];
	struct buf rec = { 0 };
	struct spf *s;
	const char *name;
	enum dns_type type;
	int i;

	/* a record whose one term expands past the cap: permerror */
	buf_appends(&rec, "v=spf1 a:");
	for (i = 0; i < 900; i++)
		buf_appends(&rec, "%{S}");
	buf_appends(&rec, ".example.com");
	memcpy(zz, z, sizeof(z));
	zz[0].value = rec.data;
	assert_int_equal(check("192.0.2.1", "abcdefghijklmnop@example.com",
	    zz, NELEM(zz), &s), SPF_PERMERROR);
	assert_non_null(strstr(spf_reason(s), "macro expansion"));
	spf_free(s);
	buf_free(&rec);

	/* RFC 7208 7.3: cut from the left to 253 octets */
	s = new_check("192.0.2.1", "abcdefghi@trunc.example", "h.example");
	while (spf_step(s, &name, &type) == SPF_NEED_DNS) {
		struct dns_answer a = { 0 };
		struct dns_rr rr = { 0 };

		if (type == DNS_T_TXT) {
			rr.text = (char *)zz[1].value;
			rr.len = strlen(rr.text);
			a.status = DNS_OK;
			a.rr = &rr;
			a.n = 1;
		} else {
			assert_int_equal(type, DNS_T_A);
			assert_true(strlen(name) <= 253);
			assert_true(strlen(name) > 240);
			assert_string_equal(name + strlen(name) - 17,
			    "abcdefghi.ok.example" + 3);
			assert_true(strncmp(name, "abcdefghi.", 10) == 0);
			a.status = DNS_NXDOMAIN;
		}
		spf_answer(s, &a);
	}
	assert_int_equal(spf_result(s), SPF_FAIL);
	spf_free(s);
}

static void
test_engine_abort_during_exp(void **state)
{
	struct spf *s = new_check("192.0.2.1", "a@example.com", "h.example");
	struct dns_answer a = { 0 };
	struct dns_rr rr = { 0 };
	const char *name;
	enum dns_type type;

	assert_int_equal(spf_step(s, &name, &type), SPF_NEED_DNS);
	rr.text = "v=spf1 -all exp=why.example.com";
	rr.len = strlen(rr.text);
	a.status = DNS_OK;
	a.rr = &rr;
	a.n = 1;
	spf_answer(s, &a);
	assert_int_equal(spf_step(s, &name, &type), SPF_NEED_DNS);
	assert_string_equal(name, "why.example.com");
	/* the result is known: an abort only drops the explanation */
	spf_abort(s, "budget");
	assert_int_equal(spf_step(s, &name, &type), SPF_DONE);
	assert_int_equal(spf_result(s), SPF_FAIL);
	assert_non_null(strstr(spf_explanation(s), "does not designate"));
	spf_free(s);
}

/* ---- Received-SPF ---- */

static void
test_received_header(void **state)
{
	static const struct zrec z[] = {
		{ "example.com", DNS_T_TXT, "v=spf1 ip4:192.0.2.0/24 -all" },
	};
	struct spf *s;
	char out[1024];

	check("192.0.2.9", "a@example.com", z, NELEM(z), &s);
	assert_int_equal(spf_received_header(s, "mx.example.net", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "Received-SPF: pass (mx.example.net: domain "
	    "of a@example.com designates 192.0.2.9 as permitted sender) "
	    "client-ip=192.0.2.9; envelope-from=\"a@example.com\"; "
	    "helo=helo.example.org; receiver=mx.example.net; "
	    "identity=mailfrom;");
	/* too small: -1, never a cut field */
	assert_int_equal(spf_received_header(s, "mx.example.net", out, 20),
	    -1);
	spf_free(s);
}

static void
test_received_header_injection(void **state)
{
	struct spf_params p = { 0 };
	struct spf *s;
	const char *name;
	enum dns_type type;
	char out[2048];
	size_t i;

	p.identity = SPF_ID_MAILFROM;
	p.ip = "2001:db8::1";
	p.sender = "\"x\\\"y\r\nX-Evil: 1\"@ex)ample.com";
	p.helo = "evil\r\nX-Injected: yes (";
	p.receiver = "mx.example.net";
	s = spf_new(&p);
	assert_non_null(s);
	while (spf_step(s, &name, &type) == SPF_NEED_DNS) {
		struct dns_answer a = { 0 };

		a.status = DNS_NXDOMAIN;
		spf_answer(s, &a);
	}
	assert_int_equal(spf_received_header(s, NULL, out, sizeof(out)), 0);
	for (i = 0; out[i] != '\0'; i++)
		assert_true(out[i] >= 0x20 && out[i] < 0x7f);
	assert_non_null(strstr(out, "client-ip=\"2001:db8::1\";"));
	assert_non_null(strstr(out, "helo=\"evil??X-Injected: yes (\";"));
	/* the comment's parentheses stay balanced */
	assert_non_null(strstr(out, "ex\\)ample.com"));
	assert_null(strstr(out, "\r"));
	/* nor into the explanation, the reason or the trace */
	for (i = 0; spf_reason(s)[i] != '\0'; i++)
		assert_true(spf_reason(s)[i] >= 0x20);
	spf_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_parse),
		cmocka_unit_test(test_record_fields),
		cmocka_unit_test(test_record_size_cap),
		cmocka_unit_test(test_macro_rfc_examples),
		cmocka_unit_test(test_macro_exp_only),
		cmocka_unit_test(test_macro_syntax_errors),
		cmocka_unit_test(test_macro_mapped_and_null_sender),
		cmocka_unit_test(test_engine_basic),
		cmocka_unit_test(test_engine_term_limit),
		cmocka_unit_test(test_engine_void_limit),
		cmocka_unit_test(test_engine_mx_ptr_limits),
		cmocka_unit_test(test_engine_dns_errors),
		cmocka_unit_test(test_engine_helo_identity),
		cmocka_unit_test(test_engine_hostile_expansion),
		cmocka_unit_test(test_engine_abort_during_exp),
		cmocka_unit_test(test_received_header),
		cmocka_unit_test(test_received_header_injection),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
