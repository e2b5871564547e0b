/*
 * Tests for auth/dmarc*.c and auth/orgdomain.c: the record parser, the
 * alignment helper, and the engine (tree walk, PSL discovery, alignment,
 * policy, limits) driven by a scripted in-memory resolver that records
 * every question, answered a round at a time as a parallel resolver
 * would.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <event2/event.h>

#include "auth/dmarc.h"
#include "auth/dmarc_query.h"
#include "auth/orgdomain.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- record parser ---- */

#define BADREC(t, rc)	{ t, rc, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL }

static const struct rcase {
	const char *txt;
	int rc;				/* 0, -1 not DMARC, -2 unusable */
	enum dmarc_policy p, sp, np;
	int strict_dkim, strict_spf;
	int psd, testing, pct, ri;
	const char *rua;		/* NULL: not checked */
} records[] = {
	{ "v=DMARC1; p=reject", 0, DMARC_P_REJECT, 0, 0, 0, 0, -1, 0, -1, -1,
	    "" },
	{ "v=DMARC1;p=none;", 0, DMARC_P_NONE, 0, 0, 0, 0, -1, 0, -1, -1, NULL },
	{ "  v = DMARC1 ;  p = quarantine ;  ", 0, DMARC_P_QUARANTINE, 0, 0,
	    0, 0, -1, 0, -1, -1, NULL },
	{ "v=DMARC1\t;\tp=reject\t;\tsp=none", 0, DMARC_P_REJECT,
	    DMARC_P_NONE, 0, 0, 0, -1, 0, -1, -1, NULL },
	/* the tag name "v" is an ABNF literal: any case; "DMARC1" is %s */
	{ "V=DMARC1; p=reject", 0, DMARC_P_REJECT, 0, 0, 0, 0, -1, 0, -1, -1,
	    NULL },
	BADREC("v=dmarc1; p=reject", -1),
	BADREC("v=DMARC10; p=reject", -1),
	BADREC("v=DMARC1 p=reject", -1),
	BADREC("p=reject; v=DMARC1", -1),
	BADREC(" ; v=DMARC1; p=reject", -1),
	BADREC("", -1),
	BADREC("v=spf1 -all", -1),
	/* RFC 9989 4.7: no p= is p=none (the tag stays unset) */
	{ "v=DMARC1", 0, DMARC_P_UNSET, 0, 0, 0, 0, -1, 0, -1, -1, NULL },
	{ "v=DMARC1; rua=mailto:d@example.com", 0, DMARC_P_UNSET, 0, 0, 0, 0,
	    -1, 0, -1, -1, "mailto:d@example.com" },
	/* tag names and policy words in any case */
	{ "v=DMARC1; P=REJECT; SP=Quarantine", 0, DMARC_P_REJECT,
	    DMARC_P_QUARANTINE, 0, 0, 0, -1, 0, -1, -1, NULL },
	/* RFC 9989 4.10.1: a bad p/sp/np is p=none with a valid rua=,
	 * else the record is unusable */
	BADREC("v=DMARC1; p=bogus", -2),
	BADREC("v=DMARC1; p=", -2),
	BADREC("v=DMARC1; p=n", -2),
	{ "v=DMARC1; p=bogus; rua=mailto:d@example.com", 0, DMARC_P_NONE, 0,
	    0, 0, 0, -1, 0, -1, -1, "mailto:d@example.com" },
	{ "v=DMARC1; p=; rua=mailto:d@example.com", 0, DMARC_P_NONE, 0, 0, 0,
	    0, -1, 0, -1, -1, NULL },
	BADREC("v=DMARC1; p=bogus; rua=bogus", -2),
	BADREC("v=DMARC1; p=bogus; rua=mailto:", -2),
	BADREC("v=DMARC1; p=bogus; rua=:x", -2),
	BADREC("v=DMARC1; p=bogus; rua=mailto:d@example.com!x", -2),
	BADREC("v=DMARC1; p=bogus; rua=mailto:d%2", -2),
	{ "v=DMARC1; p=bogus; rua=mailto:d@example.com!10m", 0, DMARC_P_NONE,
	    0, 0, 0, 0, -1, 0, -1, -1, NULL },
	{ "v=DMARC1; p=bogus; rua=ftp://abuse.example", 0, DMARC_P_NONE, 0,
	    0, 0, 0, -1, 0, -1, -1, NULL },
	{ "v=DMARC1; p=bogus; rua=junk , mailto:d@example.com", 0,
	    DMARC_P_NONE, 0, 0, 0, 0, -1, 0, -1, -1,
	    "junk , mailto:d@example.com" },
	BADREC("v=DMARC1; p=reject; sp=bogus", -2),
	BADREC("v=DMARC1; p=reject; np=x", -2),
	{ "v=DMARC1; p=reject; sp=bogus; rua=mailto:d@example.com", 0,
	    DMARC_P_NONE, DMARC_P_UNSET, 0, 0, 0, -1, 0, -1, -1, NULL },
	BADREC("v=DMARC1; p=rej\xe9" "ct", -2),
	/* the first of a repeated tag counts; unknown tags are ignored */
	{ "v=DMARC1; p=reject; p=none", 0, DMARC_P_REJECT, 0, 0, 0, 0, -1, 0,
	    -1, -1, NULL },
	{ "v=DMARC1; p=reject; foo=bar; x=; =y; zz; 9a=b", 0, DMARC_P_REJECT,
	    0, 0, 0, 0, -1, 0, -1, -1, NULL },
	{ "v=DMARC1; p=reject;; ;p=none;", 0, DMARC_P_REJECT, 0, 0, 0, 0, -1,
	    0, -1, -1, NULL },
	/* bad values of other tags fall back to defaults (4.8) */
	{ "v=DMARC1; p=reject; adkim=s; aspf=x", 0, DMARC_P_REJECT, 0, 0, 1,
	    0, -1, 0, -1, -1, NULL },
	{ "v=DMARC1; p=reject; adkim=S; aspf=s", 0, DMARC_P_REJECT, 0, 0, 1,
	    1, -1, 0, -1, -1, NULL },
	{ "v=DMARC1; p=reject; np=quarantine; psd=y", 0, DMARC_P_REJECT,
	    DMARC_P_UNSET, DMARC_P_QUARANTINE, 0, 0, 1, 0, -1, -1, NULL },
	{ "v=DMARC1; p=reject; psd=n", 0, DMARC_P_REJECT, 0, 0, 0, 0, 0, 0,
	    -1, -1, NULL },
	{ "v=DMARC1; p=reject; psd=u", 0, DMARC_P_REJECT, 0, 0, 0, 0, -1, 0,
	    -1, -1, NULL },
	{ "v=DMARC1; p=reject; psd=q", 0, DMARC_P_REJECT, 0, 0, 0, 0, -1, 0,
	    -1, -1, NULL },
	/* t=, and pct= of RFC 7489 records (RFC 9989 A.6) */
	{ "v=DMARC1; p=reject; t=y", 0, DMARC_P_REJECT, 0, 0, 0, 0, -1, 1, -1,
	    -1, NULL },
	{ "v=DMARC1; p=reject; t=maybe", 0, DMARC_P_REJECT, 0, 0, 0, 0, -1, 0,
	    -1, -1, NULL },
	{ "v=DMARC1; p=reject; pct=0", 0, DMARC_P_REJECT, 0, 0, 0, 0, -1, 1, 0,
	    -1, NULL },
	{ "v=DMARC1; p=reject; pct=50", 0, DMARC_P_REJECT, 0, 0, 0, 0, -1, 0,
	    50, -1, NULL },
	{ "v=DMARC1; p=reject; pct=100", 0, DMARC_P_REJECT, 0, 0, 0, 0, -1, 0,
	    100, -1, NULL },
	{ "v=DMARC1; p=reject; pct=101", 0, DMARC_P_REJECT, 0, 0, 0, 0, -1, 0,
	    -1, -1, NULL },
	{ "v=DMARC1; p=reject; pct=-1", 0, DMARC_P_REJECT, 0, 0, 0, 0, -1, 0,
	    -1, -1, NULL },
	{ "v=DMARC1; p=reject; t=n; pct=0", 0, DMARC_P_REJECT, 0, 0, 0, 0, -1,
	    0, 0, -1, NULL },
	{ "v=DMARC1; p=reject; t=y; pct=100", 0, DMARC_P_REJECT, 0, 0, 0, 0,
	    -1, 1, 100, -1, NULL },
	{ "v=DMARC1; p=reject; ri=3600", 0, DMARC_P_REJECT, 0, 0, 0, 0, -1, 0,
	    -1, 3600, NULL },
	{ "v=DMARC1; p=reject; ri=99999999999999999999", 0, DMARC_P_REJECT, 0,
	    0, 0, 0, -1, 0, -1, INT_MAX, NULL },
	{ "v=DMARC1; p=reject; ri=bob", 0, DMARC_P_REJECT, 0, 0, 0, 0, -1, 0,
	    -1, -1, NULL },
	{ "v=DMARC1; p=none; rua = mailto:a@example.com , mailto:b@example.net ",
	    0, DMARC_P_NONE, 0, 0, 0, 0, -1, 0, -1, -1,
	    "mailto:a@example.com , mailto:b@example.net" },
};

static void
test_record_parse(void **state)
{
	struct dmarc_record r;
	char buf[DMARC_RECORD_MAX + 4];
	size_t i;

	for (i = 0; i < NELEM(records); i++) {
		const struct rcase *c = &records[i];
		int rc = dmarc_record_parse(c->txt, strlen(c->txt), &r, buf,
		    sizeof(buf));

		if (rc != c->rc)
			fail_msg("\"%s\": rc %d, expected %d", c->txt, rc, c->rc);
		if (rc != 0)
			continue;
		if (r.p != c->p || r.sp != c->sp || r.np != c->np ||
		    (r.adkim == DMARC_ALIGN_STRICT) != c->strict_dkim ||
		    (r.aspf == DMARC_ALIGN_STRICT) != c->strict_spf ||
		    r.psd != c->psd || r.testing != c->testing ||
		    r.pct != c->pct || r.ri != c->ri)
			fail_msg("\"%s\": p=%d sp=%d np=%d adkim=%d aspf=%d psd=%d "
			    "testing=%d pct=%d ri=%d", c->txt, r.p, r.sp, r.np,
			    r.adkim, r.aspf, r.psd, r.testing, r.pct, r.ri);
		if (c->rua != NULL && strcmp(r.rua, c->rua) != 0)
			fail_msg("\"%s\": rua \"%s\"", c->txt, r.rua);
	}
}

static void
test_record_fields_and_bounds(void **state)
{
	static const char rec[] = "v=DMARC1; p=reject; rua=mailto:a@example.com;"
	    " ruf=mailto:f@example.com; fo=1:d; rf=afrf";
	struct dmarc_record r;
	char buf[sizeof(rec) + 4], *big;
	size_t n;

	assert_int_equal(dmarc_record_parse(rec, strlen(rec), &r, buf,
	    sizeof(buf)), 0);
	assert_string_equal(r.rua, "mailto:a@example.com");
	assert_string_equal(r.ruf, "mailto:f@example.com");
	assert_string_equal(r.fo, "1:d");
	assert_string_equal(r.rf, "afrf");
	/* strings outside the caller's buffer are refused, not cut */
	assert_int_equal(dmarc_record_parse(rec, strlen(rec), &r, buf, 10), -1);
	/* a NUL inside is no terminator */
	assert_int_equal(dmarc_record_parse("v=DMARC1\0; p=reject", 19, &r, buf,
	    sizeof(buf)), -1);
	assert_int_equal(dmarc_record_parse("v=DMARC1; p=reject\0", 19, &r,
	    buf, sizeof(buf)), -1);
	/* oversize records are rejected whole */
	n = DMARC_RECORD_MAX + 1;
	big = malloc(n + 4);
	assert_non_null(big);
	memset(big, ' ', n);
	memcpy(big, "v=DMARC1; p=reject; rua=mailto:x@example.com", 45);
	assert_int_equal(dmarc_record_parse(big, n, &r, big, 0), -1);
	assert_int_equal(dmarc_record_parse(big, n - 1, &r, buf, 0), -1);
	free(big);
	/* unusable records still tell their psd= (they count in a walk) */
	assert_int_equal(dmarc_record_parse("v=DMARC1; p=x; psd=n", 20, &r, buf,
	    sizeof(buf)), -2);
	assert_int_equal(r.psd, 0);
}

/* ---- alignment helper ---- */

static void
test_aligned(void **state)
{
	static const struct {
		const char *a, *b, *oa, *ob;
		enum dmarc_align m;
		int want;
	} t[] = {
		{ "example.com", "EXAMPLE.com.", NULL, NULL, DMARC_ALIGN_STRICT,
		    1 },
		{ "mail.example.com", "example.com", "example.com",
		    "example.com", DMARC_ALIGN_STRICT, 0 },
		{ "mail.example.com", "example.com", "example.com",
		    "example.com", DMARC_ALIGN_RELAXED, 1 },
		{ "mail.example.com", "example.com", NULL, NULL,
		    DMARC_ALIGN_RELAXED, 0 },
		{ "example.com", "example.net", "example.com", "example.net",
		    DMARC_ALIGN_RELAXED, 0 },
		{ "oooo.com", "ooo.com", NULL, NULL, DMARC_ALIGN_STRICT, 0 },
		{ ".mac.com.", "mac.com", NULL, NULL, DMARC_ALIGN_STRICT, 1 },
		{ "mac...com", "..com", NULL, NULL, DMARC_ALIGN_STRICT, 0 },
		{ "...", ".", NULL, NULL, DMARC_ALIGN_STRICT, 0 },
	};
	size_t i;

	for (i = 0; i < NELEM(t); i++)
		if (dmarc_aligned(t[i].a, t[i].b, t[i].oa, t[i].ob, t[i].m) !=
		    t[i].want)
			fail_msg("%s / %s: expected %d", t[i].a, t[i].b, t[i].want);
	assert_int_equal(dmarc_aligned(NULL, "a.example", NULL, NULL,
	    DMARC_ALIGN_STRICT), 0);
}

/* ---- the A-label conversion ---- */

static void
test_ascii(void **state)
{
	static const struct {
		const char *in, *out;	/* out NULL: -1 */
	} t[] = {
		{ "Example.COM.", "example.com" },
		{ "b\xc3\xbc" "cher.example", "xn--bcher-kva.example" },
		{ "B\xc3\x9c" "CHER.example", "xn--bcher-kva.example" },
		{ "\xe9\xa3\x9f\xe7\x8b\xae.\xe5\x85\xac\xe5\x8f\xb8.cn",
		    "xn--85x722f.xn--55qx5d.cn" },
		{ "xn--85x722f.com.cn", "xn--85x722f.com.cn" },
		{ "_dmarc.example.com", "_dmarc.example.com" },
		{ "", NULL },
		{ ".", NULL },
		{ "a..b", NULL },
		{ ".a", NULL },
		{ "exa mple.com", NULL },
		{ "exa@mple.com", NULL },
		{ "b\xc3" "cher.example", NULL },		/* bad UTF-8 */
		{ "b\xc0\xbc" "cher.example", NULL },		/* overlong */
		{ "b\xed\xa0\x80" "cher.example", NULL },	/* surrogate */
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    ".example", NULL },				/* 64 octets */
		/* RFC 3490 3.1: U+3002, U+FF0E, U+FF61 separate labels as
		 * "." does: "paypal\xe3\x80\x82com" is paypal.com to the
		 * reader's client, so it is to DMARC */
		{ "paypal\xe3\x80\x82" "com", "paypal.com" },
		{ "Mail\xef\xbc\x8e" "PayPal\xef\xbd\xa1" "com\xe3\x80\x82",
		    "mail.paypal.com" },
		{ "b\xc3\xbc" "cher\xef\xbc\x8e" "example",
		    "xn--bcher-kva.example" },
		{ "paypal\xe3\x80\x82\xe3\x80\x82" "com", NULL },	/* empty label */
		{ "\xef\xbc\x8e" "com", NULL },
	};
	char out[300];
	size_t i;

	for (i = 0; i < NELEM(t); i++) {
		int rc = orgdomain_ascii(t[i].in, out, sizeof(out));

		if (t[i].out == NULL ? rc != -1 :
		    rc != 0 || strcmp(out, t[i].out) != 0)
			fail_msg("\"%s\": rc %d \"%s\"", t[i].in, rc,
			    rc == 0 ? out : "");
	}
	assert_int_equal(orgdomain_ascii("example.com", out, 5), -1);
}

/* ---- a scripted resolver ---- */

/*
 * A zone is lines of "name TYPE value". A name that is in the zone with
 * no record of the type asked is NODATA; one not in it is NXDOMAIN. A
 * value "!TIMEOUT", "!SERVFAIL" or "!NOANSWER" (never answered) replaces
 * the answer for that name and type.
 */
static int
zone_answer(const char *zone, const char *name, enum dns_type type,
    struct dns_answer *a, char texts[][600], size_t max)
{
	static const char *tn[] = { [DNS_T_A] = "A", [DNS_T_AAAA] = "AAAA",
	    [DNS_T_MX] = "MX", [DNS_T_TXT] = "TXT", [DNS_T_PTR] = "PTR" };
	const char *p = zone, *nl;
	int exists = 0;

	a->status = DNS_NXDOMAIN;
	a->n = 0;
	for (; p != NULL && *p != '\0'; p = nl != NULL ? nl + 1 : NULL) {
		char line[700], lname[300], ltype[16];
		int off = 0;
		size_t len;

		nl = strchr(p, '\n');
		len = nl != NULL ? (size_t)(nl - p) : strlen(p);
		assert_true(len < sizeof(line));
		memcpy(line, p, len);
		line[len] = '\0';
		if (sscanf(line, "%299s %15s %n", lname, ltype, &off) < 2 ||
		    strcasecmp(lname, name) != 0)
			continue;
		exists = 1;
		if (strcmp(ltype, tn[type]) != 0)
			continue;
		if (strcmp(line + off, "!TIMEOUT") == 0) {
			a->status = DNS_TIMEOUT;
			return 1;
		}
		if (strcmp(line + off, "!SERVFAIL") == 0) {
			a->status = DNS_SERVFAIL;
			return 1;
		}
		if (strcmp(line + off, "!NOANSWER") == 0)
			return 0;
		assert_true(a->n < max);
		snprintf(texts[a->n], 600, "%s", line + off);
		a->rr[a->n].text = texts[a->n];
		a->rr[a->n].len = strlen(texts[a->n]);
		if (type == DNS_T_A || type == DNS_T_AAAA) {
			a->rr[a->n].family = type == DNS_T_A ? AF_INET : AF_INET6;
			inet_pton(a->rr[a->n].family, texts[a->n],
			    a->rr[a->n].addr);
		}
		a->n++;
	}
	a->status = a->n > 0 ? DNS_OK : exists ? DNS_NODATA : DNS_NXDOMAIN;
	return 1;
}

static const char *
type_suffix(enum dns_type t)
{
	return t == DNS_T_TXT ? "" : t == DNS_T_A ? "/A" : t == DNS_T_AAAA ?
	    "/AAAA" : t == DNS_T_MX ? "/MX" : "/?";
}

/*
 * Runs d against zone, a round at a time: every question offered is
 * collected, then all are answered in order. The questions asked go to
 * asked ("name" for TXT, "name/A" ...), space-separated. Each (name,
 * type) must come once. Returns when done or when nothing is offered.
 */
static void
drive(struct dmarc *d, const char *zone, char *asked, size_t n)
{
	char names[DMARC_MAX_QUESTIONS + 1][260];
	enum dns_type types[DMARC_MAX_QUESTIONS + 1];
	int np, total = 0, rounds = 0, i;

	asked[0] = '\0';
	for (;;) {
		const char *name;
		enum dns_type type;

		np = 0;
		while ((name = dmarc_next_query(d, &type)) != NULL) {
			char one[300];

			snprintf(one, sizeof(one), "%s%s", name,
			    type_suffix(type));
			/* never the same (name, type) twice */
			for (i = 0; i < total; i++) {
				const char *s = strstr(asked, one);

				if (s != NULL && (s == asked || s[-1] == ' ') &&
				    (s[strlen(one)] == ' ' ||
				    s[strlen(one)] == '\0'))
					fail_msg("asked twice: %s", one);
			}
			snprintf(asked + strlen(asked), n - strlen(asked),
			    "%s%s", asked[0] ? " " : "", one);
			assert_true(++total <= DMARC_MAX_QUESTIONS);
			assert_true(np < DMARC_MAX_QUESTIONS);
			snprintf(names[np], sizeof(names[np]), "%s", name);
			types[np++] = type;
		}
		if (dmarc_done(d) || np == 0)
			return;
		for (i = 0; i < np; i++) {
			struct dns_rr rr[8];
			char texts[8][600];
			struct dns_answer a = { 0 };

			memset(rr, 0, sizeof(rr));
			a.rr = rr;
			a.name = names[i];
			a.type = types[i];
			if (zone_answer(zone, names[i], types[i], &a, texts,
			    NELEM(rr)))
				dmarc_answer(d, names[i], types[i], &a);
		}
		assert_true(++rounds < 50);
	}
}

/* ---- the engine, table-driven ---- */

#define REC_EXAMPLE \
	"_dmarc.example.com TXT v=DMARC1; p=reject; sp=quarantine; np=reject;" \
	" rua=mailto:d@example.com\n" \
	"example.com A 192.0.2.1\n" \
	"mail.example.com A 192.0.2.2\n" \
	"_dmarc.example.com TXT google-site-verification=abc\n"
#define REC_REJECT "_dmarc.example.com TXT v=DMARC1; p=reject\n"
#define REC_BANK \
	"_dmarc.bank.example TXT v=DMARC1; p=reject; psd=y\n" \
	"_dmarc.giant.bank.example TXT v=DMARC1; p=none; " \
	"rua=mailto:d@giant.bank.example\n"
#define DEEP13 "a.b.c.d.e.f.g.h.i.j.mail.example.com"

struct ecase {
	const char *title;
	const char *zone;
	enum dmarc_discovery mode;
	const char *author;
	const char *from_problem;
	enum spf_result spf;
	const char *spf_domain;
	struct dmarc_dkim_input dkim[12];
	size_t ndkim;
	int partial_counts;
	int abort;			/* dmarc_abort once it stalls */
	/* expected */
	enum dmarc_result result;
	const char *asked;		/* exact, in order */
	enum dmarc_policy requested;	/* UNSET: not checked */
	enum dmarc_policy effective;
	const char *policy_domain;	/* NULL: not checked */
	const char *org_domain;
	const char *reason;		/* a part of it */
	int spf_aligned, dkim_aligned, uncertain;
};

#define PASS(d)		{ d, NULL, DKIM_PASS, 0 }
#define TEMP(d)		{ d, NULL, DKIM_TEMPERROR, 0 }
#define FAILED(d)	{ d, NULL, DKIM_FAIL, 0 }
#define PARTIAL(d)	{ d, NULL, DKIM_PASS, 1 }

static const struct ecase cases[] = {
	{
		.title = "record at the author domain, DKIM identical",
		.zone = REC_EXAMPLE, .author = "example.com",
		.dkim = { PASS("example.com") }, .ndkim = 1,
		.result = DMARC_PASS, .asked = "_dmarc.example.com",
		.requested = DMARC_P_REJECT, .effective = DMARC_P_REJECT,
		.policy_domain = "example.com", .org_domain = "",
		.reason = "aligned DKIM pass d=example.com", .dkim_aligned = 1,
	},
	{
		.title = "relaxed SPF below the author domain walks both",
		.zone = REC_EXAMPLE, .author = "example.com",
		.spf = SPF_PASS, .spf_domain = "bounce.example.com",
		.result = DMARC_PASS,
		.asked = "_dmarc.example.com _dmarc.com "
		    "_dmarc.bounce.example.com",
		.org_domain = "example.com", .reason = "SPF pass aligned",
		.spf_aligned = 1,
	},
	{
		.title = "SPF of another organization: no walk for it",
		.zone = REC_EXAMPLE, .author = "example.com",
		.spf = SPF_PASS, .spf_domain = "other.com",
		.dkim = { FAILED("example.com") }, .ndkim = 1,
		.result = DMARC_FAIL, .asked = "_dmarc.example.com _dmarc.com",
		.requested = DMARC_P_REJECT, .reason = "no aligned identifier",
	},
	{
		.title = "SPF under another top-level domain: no walk at all",
		.zone = REC_EXAMPLE, .author = "example.com",
		.spf = SPF_PASS, .spf_domain = "example.net",
		.result = DMARC_FAIL, .asked = "_dmarc.example.com",
		.org_domain = "",
	},
	{
		.title = "existing subdomain inherits sp=",
		.zone = REC_EXAMPLE, .author = "mail.example.com",
		.result = DMARC_FAIL,
		.asked = "_dmarc.mail.example.com _dmarc.example.com _dmarc.com "
		    "mail.example.com/A",
		.requested = DMARC_P_QUARANTINE,
		.effective = DMARC_P_QUARANTINE,
		.policy_domain = "example.com", .org_domain = "example.com",
	},
	{
		.title = "non-existent subdomain gets np=",
		.zone = REC_EXAMPLE, .author = "nx.example.com",
		.result = DMARC_FAIL,
		.asked = "_dmarc.nx.example.com _dmarc.example.com _dmarc.com "
		    "nx.example.com/A nx.example.com/AAAA nx.example.com/MX",
		.requested = DMARC_P_REJECT, .policy_domain = "example.com",
		.reason = "does not exist",
	},
	{
		.title = "np= absent: sp=, and no existence test",
		.zone = "_dmarc.example.org TXT v=DMARC1; p=reject; sp=none\n",
		.author = "nx.example.org", .result = DMARC_FAIL,
		.asked = "_dmarc.nx.example.org _dmarc.example.org _dmarc.org",
		.requested = DMARC_P_NONE,
	},
	{
		.title = "np= and sp= absent: p=",
		.zone = REC_REJECT, .author = "nx.example.com",
		.result = DMARC_FAIL,
		.asked = "_dmarc.nx.example.com _dmarc.example.com _dmarc.com",
		.requested = DMARC_P_REJECT,
	},
	{
		.title = "np= equal to sp=: no existence test",
		.zone = "_dmarc.example.com TXT v=DMARC1; p=none; sp=reject; "
		    "np=reject\n",
		.author = "nx.example.com", .result = DMARC_FAIL,
		.asked = "_dmarc.nx.example.com _dmarc.example.com _dmarc.com",
		.requested = DMARC_P_REJECT,
	},
	{
		.title = "no record anywhere",
		.zone = "example.net A 192.0.2.1\n", .author = "a.b.example.net",
		.spf = SPF_PASS, .spf_domain = "a.b.example.net",
		.result = DMARC_NONE,
		.asked = "_dmarc.a.b.example.net _dmarc.b.example.net "
		    "_dmarc.example.net _dmarc.net",
		.requested = DMARC_P_NONE, .effective = DMARC_P_NONE,
		.policy_domain = "", .reason = "no policy record",
	},
	{
		.title = "RFC 9989 4.10: 13 labels shorten to 7",
		.zone = REC_REJECT, .author = DEEP13, .result = DMARC_FAIL,
		.asked = "_dmarc." DEEP13 " _dmarc.g.h.i.j.mail.example.com "
		    "_dmarc.h.i.j.mail.example.com _dmarc.i.j.mail.example.com "
		    "_dmarc.j.mail.example.com _dmarc.mail.example.com "
		    "_dmarc.example.com _dmarc.com",
		.requested = DMARC_P_REJECT, .policy_domain = "example.com",
		.org_domain = "example.com",
	},
	{
		.title = "8 labels: the parent (7)",
		.zone = REC_REJECT, .author = "b.c.d.e.f.g.example.com",
		.result = DMARC_FAIL,
		.asked = "_dmarc.b.c.d.e.f.g.example.com "
		    "_dmarc.c.d.e.f.g.example.com _dmarc.d.e.f.g.example.com "
		    "_dmarc.e.f.g.example.com _dmarc.f.g.example.com "
		    "_dmarc.g.example.com _dmarc.example.com _dmarc.com",
	},
	{
		.title = "9 labels: one skipped",
		.zone = REC_REJECT, .author = "a.b.c.d.e.f.g.example.com",
		.result = DMARC_FAIL,
		.asked = "_dmarc.a.b.c.d.e.f.g.example.com "
		    "_dmarc.c.d.e.f.g.example.com _dmarc.d.e.f.g.example.com "
		    "_dmarc.e.f.g.example.com _dmarc.f.g.example.com "
		    "_dmarc.g.example.com _dmarc.example.com _dmarc.com",
	},
	{
		/* RFC 9989 5.1.8: the psd=n record is never seen */
		.title = "a record skipped by the shortening is not found",
		.zone = REC_REJECT "_dmarc.b.c.d.e.f.g.example.com TXT "
		    "v=DMARC1; p=none; psd=n\n",
		.author = "mail.a.b.c.d.e.f.g.example.com",
		.result = DMARC_FAIL,
		.asked = "_dmarc.mail.a.b.c.d.e.f.g.example.com "
		    "_dmarc.c.d.e.f.g.example.com _dmarc.d.e.f.g.example.com "
		    "_dmarc.e.f.g.example.com _dmarc.f.g.example.com "
		    "_dmarc.g.example.com _dmarc.example.com _dmarc.com",
		.requested = DMARC_P_REJECT, .policy_domain = "example.com",
	},
	{
		/* RFC 9989 B.4.2 */
		.title = "deep author, SPF and DKIM both aligned",
		.zone = REC_REJECT "_dmarc.signing.example.com TXT v=DMARC1; "
		    "p=none\n",
		.author = "a.b.c.d.e.f.g.h.i.j.k.example.com",
		.spf = SPF_PASS, .spf_domain = "example.com",
		.dkim = { PASS("signing.example.com") }, .ndkim = 1,
		.result = DMARC_PASS,
		.asked = "_dmarc.a.b.c.d.e.f.g.h.i.j.k.example.com "
		    "_dmarc.g.h.i.j.k.example.com _dmarc.h.i.j.k.example.com "
		    "_dmarc.i.j.k.example.com _dmarc.j.k.example.com "
		    "_dmarc.k.example.com _dmarc.example.com _dmarc.com "
		    "_dmarc.signing.example.com",
		.org_domain = "example.com",
		.reason = "aligned DKIM pass d=signing.example.com, SPF pass",
		.spf_aligned = 1, .dkim_aligned = 1,
	},
	{
		/* RFC 9989 B.4.3 */
		.title = "psd=y: the Organizational Domain is one below",
		.zone = REC_BANK, .author = "giant.bank.example",
		.spf = SPF_PASS, .spf_domain = "mail.giant.bank.example",
		.dkim = { PASS("mail.mega.bank.example") }, .ndkim = 1,
		.result = DMARC_PASS,
		.asked = "_dmarc.giant.bank.example _dmarc.bank.example "
		    "_dmarc.mail.giant.bank.example",
		.policy_domain = "giant.bank.example",
		.org_domain = "giant.bank.example", .requested = DMARC_P_NONE,
		.spf_aligned = 1,
	},
	{
		.title = "psd=y: a subdomain without records takes the PSD's",
		.zone = REC_BANK, .author = "a.shop.bank.example",
		.dkim = { PASS("shop.bank.example") }, .ndkim = 1,
		.result = DMARC_PASS,
		.asked = "_dmarc.a.shop.bank.example _dmarc.shop.bank.example "
		    "_dmarc.bank.example",
		.policy_domain = "bank.example",
		.org_domain = "shop.bank.example", .requested = DMARC_P_REJECT,
		.dkim_aligned = 1,
	},
	{
		.title = "psd=y: another registrant's DKIM does not align",
		.zone = REC_BANK, .author = "a.shop.bank.example",
		.dkim = { PASS("other.bank.example") }, .ndkim = 1,
		.result = DMARC_FAIL,
		.asked = "_dmarc.a.shop.bank.example _dmarc.shop.bank.example "
		    "_dmarc.bank.example",
		.policy_domain = "bank.example", .requested = DMARC_P_REJECT,
	},
	{
		.title = "psd=y at the author domain itself: p=",
		.zone = REC_BANK, .author = "bank.example", .result = DMARC_FAIL,
		.asked = "_dmarc.bank.example", .policy_domain = "bank.example",
		.requested = DMARC_P_REJECT,
	},
	{
		.title = "psd=n stops the walk",
		.zone = REC_REJECT "_dmarc.dept.example.com TXT v=DMARC1; "
		    "p=quarantine; psd=n\n",
		.author = "x.dept.example.com",
		.spf = SPF_PASS, .spf_domain = "bounce.example.com",
		.result = DMARC_FAIL,
		.asked = "_dmarc.x.dept.example.com _dmarc.dept.example.com",
		.policy_domain = "dept.example.com",
		.org_domain = "dept.example.com",
		.requested = DMARC_P_QUARANTINE,
	},
	{
		/* RFC 9989 4.10.2 example: the fewest labels */
		.title = "records at two levels: the shorter is the org",
		.zone = REC_REJECT "_dmarc.mail.example.com TXT v=DMARC1; "
		    "p=none\n",
		.author = "a.mail.example.com", .result = DMARC_FAIL,
		.asked = "_dmarc.a.mail.example.com _dmarc.mail.example.com "
		    "_dmarc.example.com _dmarc.com",
		.policy_domain = "example.com", .org_domain = "example.com",
		.requested = DMARC_P_REJECT,
	},
	{
		.title = "several DMARC records at a name count as none",
		.zone = REC_REJECT "_dmarc.mail.example.com TXT v=DMARC1; "
		    "p=none\n_dmarc.mail.example.com TXT v=DMARC1; p=none\n",
		.author = "mail.example.com", .result = DMARC_FAIL,
		.asked = "_dmarc.mail.example.com _dmarc.example.com "
		    "_dmarc.com",
		.policy_domain = "example.com", .requested = DMARC_P_REJECT,
	},
	{
		.title = "strict DKIM: a parent domain does not align",
		.zone = "_dmarc.example.com TXT v=DMARC1; p=reject; adkim=s; "
		    "aspf=s\n",
		.author = "example.com",
		.dkim = { PASS("mail.example.com") }, .ndkim = 1,
		.result = DMARC_FAIL, .asked = "_dmarc.example.com",
	},
	{
		.title = "strict SPF, identical",
		.zone = "_dmarc.example.com TXT v=DMARC1; p=reject; adkim=s; "
		    "aspf=s\n",
		.author = "example.com",
		.spf = SPF_PASS, .spf_domain = "EXAMPLE.COM.",
		.dkim = { PASS("mail.example.com") }, .ndkim = 1,
		.result = DMARC_PASS, .asked = "_dmarc.example.com",
		.spf_aligned = 1,
	},
	{
		.title = "relaxed DKIM from the parent of the author domain",
		.zone = REC_EXAMPLE, .author = "mail.example.com",
		.dkim = { FAILED("mail.example.com"), PASS("example.com") },
		.ndkim = 2, .result = DMARC_PASS,
		.asked = "_dmarc.mail.example.com _dmarc.example.com _dmarc.com",
		.reason = "aligned DKIM pass d=example.com", .dkim_aligned = 1,
	},
	{
		.title = "body_partial does not count by default",
		.zone = REC_REJECT, .author = "example.com",
		.dkim = { PARTIAL("example.com") }, .ndkim = 1,
		.result = DMARC_FAIL, .asked = "_dmarc.example.com",
	},
	{
		.title = "body_partial counts when configured",
		.zone = REC_REJECT, .author = "example.com",
		.dkim = { PARTIAL("example.com") }, .ndkim = 1,
		.partial_counts = 1,
		.result = DMARC_PASS, .asked = "_dmarc.example.com",
		.dkim_aligned = 1,
	},
	{
		.title = "timeout at the author's _dmarc",
		.zone = "_dmarc.example.com TXT !TIMEOUT\n", .author = "example.com",
		.dkim = { PASS("example.com") }, .ndkim = 1,
		.result = DMARC_TEMPERROR, .asked = "_dmarc.example.com",
		.requested = DMARC_P_NONE,
		.reason = "DNS timeout at _dmarc.example.com",
	},
	{
		.title = "servfail in the walk",
		.zone = REC_REJECT "_dmarc.mail.example.com TXT !SERVFAIL\n",
		.author = "a.mail.example.com", .result = DMARC_TEMPERROR,
		.asked = "_dmarc.a.mail.example.com _dmarc.mail.example.com",
		.reason = "DNS servfail at _dmarc.mail.example.com",
	},
	{
		.title = "a failed walk for one identifier, another aligned",
		.zone = REC_REJECT "_dmarc.bounce.example.com TXT !TIMEOUT\n",
		.author = "example.com",
		.spf = SPF_PASS, .spf_domain = "bounce.example.com",
		.dkim = { PASS("example.com") }, .ndkim = 1,
		.result = DMARC_PASS, .dkim_aligned = 1,
	},
	{
		.title = "a failed walk that could have aligned",
		.zone = REC_REJECT "_dmarc.bounce.example.com TXT !TIMEOUT\n",
		.author = "example.com",
		.spf = SPF_PASS, .spf_domain = "bounce.example.com",
		.result = DMARC_TEMPERROR,
		.reason = "DNS timeout at _dmarc.bounce.example.com",
		.requested = DMARC_P_REJECT,
	},
	{
		.title = "existence test times out",
		.zone = REC_EXAMPLE "nx2.example.com A !TIMEOUT\n",
		.author = "nx2.example.com", .result = DMARC_TEMPERROR,
		.reason = "DNS timeout at nx2.example.com",
	},
	{
		.title = "uncertain: a DKIM temperror for the author domain",
		.zone = REC_REJECT, .author = "example.com",
		.dkim = { FAILED("example.com"), TEMP("example.com") },
		.ndkim = 2,
		.result = DMARC_FAIL, .uncertain = 1,
		.reason = "a temperror might have aligned",
	},
	{
		.title = "not uncertain: the temperror is another domain",
		.zone = REC_REJECT, .author = "example.com",
		.dkim = { TEMP("example.net") }, .ndkim = 1,
		.result = DMARC_FAIL, .uncertain = 0, .asked = "_dmarc.example.com",
	},
	{
		.title = "uncertain: SPF temperror below the org (walked)",
		.zone = REC_REJECT, .author = "example.com",
		.spf = SPF_TEMPERROR, .spf_domain = "bounce.example.com",
		.result = DMARC_FAIL, .uncertain = 1,
		.asked = "_dmarc.example.com _dmarc.com "
		    "_dmarc.bounce.example.com",
	},
	{
		.title = "t=y: reject is applied as quarantine",
		.zone = "_dmarc.example.com TXT v=DMARC1; p=reject; t=y\n",
		.author = "example.com", .result = DMARC_FAIL,
		.requested = DMARC_P_REJECT, .effective = DMARC_P_QUARANTINE,
	},
	{
		.title = "t=y: quarantine is applied as none",
		.zone = "_dmarc.example.com TXT v=DMARC1; p=quarantine; t=y\n",
		.author = "example.com", .result = DMARC_FAIL,
		.requested = DMARC_P_QUARANTINE, .effective = DMARC_P_NONE,
	},
	{
		.title = "pct=0 in an RFC 7489 record is t=y",
		.zone = "_dmarc.example.com TXT v=DMARC1; p=reject; pct=0\n",
		.author = "example.com", .result = DMARC_FAIL,
		.requested = DMARC_P_REJECT, .effective = DMARC_P_QUARANTINE,
	},
	{
		.title = "pct=50 is t=n",
		.zone = "_dmarc.example.com TXT v=DMARC1; p=reject; pct=50\n",
		.author = "example.com", .result = DMARC_FAIL,
		.requested = DMARC_P_REJECT, .effective = DMARC_P_REJECT,
	},
	{
		.title = "unusable record: no DMARC",
		.zone = "_dmarc.example.com TXT v=DMARC1; p=bogus\n",
		.author = "example.com", .result = DMARC_NONE,
		.asked = "_dmarc.example.com", .requested = DMARC_P_NONE,
		.reason = "unusable policy record at _dmarc.example.com",
	},
	{
		.title = "bad p= rescued by rua=: p=none",
		.zone = "_dmarc.example.com TXT v=DMARC1; p=bogus; "
		    "rua=mailto:d@example.com\n",
		.author = "example.com", .result = DMARC_FAIL,
		.requested = DMARC_P_NONE,
	},
	{
		.title = "no p=: p=none",
		.zone = "_dmarc.example.com TXT v=DMARC1\n",
		.author = "example.com", .result = DMARC_FAIL,
		.requested = DMARC_P_NONE,
	},
	{
		.title = "U-label author domain becomes an A-label",
		.zone = "_dmarc.xn--bcher-kva.example TXT v=DMARC1; p=reject\n",
		.author = "B\xc3\x9c" "CHER.example",
		.dkim = { PASS("xn--bcher-kva.example") }, .ndkim = 1,
		.result = DMARC_PASS, .asked = "_dmarc.xn--bcher-kva.example",
		.policy_domain = "xn--bcher-kva.example", .dkim_aligned = 1,
	},
	{
		.title = "several From fields",
		.zone = REC_REJECT, .from_problem = "multiple From fields",
		.result = DMARC_PERMERROR, .asked = "",
		.reason = "multiple From fields", .requested = DMARC_P_NONE,
	},
	{
		.title = "an author domain that is no domain name",
		.zone = REC_REJECT, .author = "exa mple..com",
		.result = DMARC_PERMERROR, .asked = "",
		.reason = "invalid author domain",
	},
	{
		.title = "time budget: unanswered questions are timeouts",
		.zone = "_dmarc.example.com TXT !NOANSWER\n",
		.author = "example.com", .abort = 1,
		.result = DMARC_TEMPERROR, .asked = "_dmarc.example.com",
		.reason = "budget exceeded: DNS timeout at _dmarc.example.com",
	},
	{
		/* ten signatures, each from its own psd=n organization: the
		 * walks need 22 questions */
		.title = "at most 20 questions",
		.zone = REC_REJECT
		    "_dmarc.y0.example.com TXT v=DMARC1; p=none; psd=n\n"
		    "_dmarc.y1.example.com TXT v=DMARC1; p=none; psd=n\n"
		    "_dmarc.y2.example.com TXT v=DMARC1; p=none; psd=n\n"
		    "_dmarc.y3.example.com TXT v=DMARC1; p=none; psd=n\n"
		    "_dmarc.y4.example.com TXT v=DMARC1; p=none; psd=n\n"
		    "_dmarc.y5.example.com TXT v=DMARC1; p=none; psd=n\n"
		    "_dmarc.y6.example.com TXT v=DMARC1; p=none; psd=n\n"
		    "_dmarc.y7.example.com TXT v=DMARC1; p=none; psd=n\n"
		    "_dmarc.y8.example.com TXT v=DMARC1; p=none; psd=n\n"
		    "_dmarc.y9.example.com TXT v=DMARC1; p=none; psd=n\n",
		.author = "example.com",
		.dkim = { PASS("x.y0.example.com"), PASS("x.y1.example.com"),
		    PASS("x.y2.example.com"), PASS("x.y3.example.com"),
		    PASS("x.y4.example.com"), PASS("x.y5.example.com"),
		    PASS("x.y6.example.com"), PASS("x.y7.example.com"),
		    PASS("x.y8.example.com"), PASS("x.y9.example.com") },
		.ndkim = 10,
		.result = DMARC_TEMPERROR, .reason = "too many DNS questions",
	},
	/* RFC 7489 discovery by the PSL (the test list below) */
	{
		.title = "PSL: subdomain, record at the org domain, sp=",
		.mode = DMARC_DISCOVERY_PSL,
		.zone = "_dmarc.example.co.uk TXT v=DMARC1; p=reject; "
		    "sp=quarantine\nmail.example.co.uk A 192.0.2.1\n",
		.author = "mail.example.co.uk",
		.spf = SPF_PASS, .spf_domain = "bounce.example.co.uk",
		.result = DMARC_PASS,
		.asked = "_dmarc.mail.example.co.uk _dmarc.example.co.uk",
		.policy_domain = "example.co.uk", .org_domain = "example.co.uk",
		.requested = DMARC_P_QUARANTINE, .spf_aligned = 1,
	},
	{
		.title = "PSL: the org domain itself, one question",
		.mode = DMARC_DISCOVERY_PSL,
		.zone = "_dmarc.example.co.uk TXT v=DMARC1; p=reject\n",
		.author = "example.co.uk",
		.dkim = { PASS("other.co.uk") }, .ndkim = 1,
		.result = DMARC_FAIL, .asked = "_dmarc.example.co.uk",
		.requested = DMARC_P_REJECT, .org_domain = "example.co.uk",
	},
	{
		.title = "PSL: no record",
		.mode = DMARC_DISCOVERY_PSL, .zone = "",
		.author = "a.b.example.co.uk", .result = DMARC_NONE,
		.asked = "_dmarc.a.b.example.co.uk _dmarc.example.co.uk",
	},
	{
		.title = "PSL: np= for a non-existent subdomain",
		.mode = DMARC_DISCOVERY_PSL,
		.zone = "_dmarc.example.co.uk TXT v=DMARC1; p=none; np=reject\n",
		.author = "nx.example.co.uk", .result = DMARC_FAIL,
		.asked = "_dmarc.nx.example.co.uk _dmarc.example.co.uk "
		    "nx.example.co.uk/A nx.example.co.uk/AAAA "
		    "nx.example.co.uk/MX",
		.requested = DMARC_P_REJECT,
	},
};

static const struct orgdomain_psl *test_psl;

static void
run_case(const struct ecase *c)
{
	struct dmarc_params p;
	const struct dmarc_outcome *o;
	struct dmarc *d;
	char asked[4096];

	memset(&p, 0, sizeof(p));
	p.discovery = c->mode;
	p.psl = test_psl;
	p.author_domain = c->author;
	p.from_problem = c->from_problem;
	p.spf_result = c->spf;
	p.spf_domain = c->spf_domain;
	p.dkim = c->dkim;
	p.ndkim = c->ndkim;
	p.dkim_partial_counts = c->partial_counts;
	d = dmarc_new(&p);
	assert_non_null(d);
	drive(d, c->zone, asked, sizeof(asked));
	if (c->abort) {
		assert_false(dmarc_done(d));
		dmarc_abort(d, "budget exceeded");
	}
	if (!dmarc_done(d))
		fail_msg("%s: not done after \"%s\"", c->title, asked);
	o = dmarc_outcome(d);
	if (o->result != c->result)
		fail_msg("%s: %s, expected %s (%s; asked %s)", c->title,
		    dmarc_result_name(o->result), dmarc_result_name(c->result),
		    o->reason, asked);
	if (c->asked != NULL && strcmp(asked, c->asked) != 0)
		fail_msg("%s: asked\n  \"%s\", expected\n  \"%s\"", c->title,
		    asked, c->asked);
	if (c->requested != DMARC_P_UNSET && o->requested != c->requested)
		fail_msg("%s: requested %s, expected %s", c->title,
		    dmarc_policy_name(o->requested),
		    dmarc_policy_name(c->requested));
	if (c->effective != DMARC_P_UNSET && o->effective != c->effective)
		fail_msg("%s: effective %s, expected %s", c->title,
		    dmarc_policy_name(o->effective),
		    dmarc_policy_name(c->effective));
	if (c->policy_domain != NULL &&
	    strcmp(o->policy_domain, c->policy_domain) != 0)
		fail_msg("%s: policy domain \"%s\"", c->title, o->policy_domain);
	if (c->org_domain != NULL && strcmp(o->org_domain, c->org_domain) != 0)
		fail_msg("%s: org domain \"%s\"", c->title, o->org_domain);
	if (c->reason != NULL && strstr(o->reason, c->reason) == NULL)
		fail_msg("%s: reason \"%s\"", c->title, o->reason);
	if (o->spf_aligned != c->spf_aligned ||
	    o->dkim_aligned != c->dkim_aligned ||
	    o->uncertain != c->uncertain)
		fail_msg("%s: spf_aligned %d dkim_aligned %d uncertain %d",
		    c->title, o->spf_aligned, o->dkim_aligned, o->uncertain);
	if ((o->record != NULL) != (o->result == DMARC_PASS ||
	    o->result == DMARC_FAIL || (o->result == DMARC_TEMPERROR &&
	    *o->policy_domain != '\0')))
		fail_msg("%s: record %p", c->title, (const void *)o->record);
	assert_string_equal(o->discovery, c->mode == DMARC_DISCOVERY_PSL ?
	    "psl" : "treewalk");
	dmarc_free(d);
}

static void
test_engine(void **state)
{
	size_t i;

	for (i = 0; i < NELEM(cases); i++)
		run_case(&cases[i]);
}

/* Answers after the end, unknown names and repeats change nothing. */
static void
test_engine_stray_answers(void **state)
{
	struct dmarc_params p;
	struct dmarc_dkim_input dk = PASS("example.com");
	struct dns_rr rr = { 0 };
	struct dns_answer a = { 0 };
	struct dmarc *d;
	enum dns_type t;
	const char *name;

	memset(&p, 0, sizeof(p));
	p.author_domain = "example.com";
	p.dkim = &dk;
	p.ndkim = 1;
	assert_non_null(d = dmarc_new(&p));
	assert_non_null(name = dmarc_next_query(d, &t));
	assert_string_equal(name, "_dmarc.example.com");
	assert_null(dmarc_next_query(d, &t));
	a.status = DNS_OK;
	a.type = DNS_T_TXT;
	a.rr = &rr;
	a.n = 1;
	rr.text = "v=DMARC1; p=reject";
	rr.len = strlen(rr.text);
	dmarc_answer(d, "_dmarc.other.example", DNS_T_TXT, &a);
	dmarc_answer(d, "_dmarc.example.com", DNS_T_A, &a);
	assert_false(dmarc_done(d));
	dmarc_answer(d, "_DMARC.Example.COM.", DNS_T_TXT, &a);
	assert_true(dmarc_done(d));
	assert_int_equal(dmarc_outcome(d)->result, DMARC_PASS);
	a.status = DNS_TIMEOUT;
	dmarc_answer(d, "_dmarc.example.com", DNS_T_TXT, &a);
	dmarc_abort(d, "late");
	assert_int_equal(dmarc_outcome(d)->result, DMARC_PASS);
	assert_null(dmarc_next_query(d, &t));
	dmarc_free(d);
}

/*
 * PSL mode: the list is the caller's (the daemon's configuration, which
 * a reload frees); the engine must not read it after dmarc_new, while it
 * waits for answers. Under ASan a read of the freed list fails the test.
 */
static void
test_engine_psl_not_kept(void **state)
{
	static const char list[] = "com\n";
	struct dmarc_dkim_input dk = PASS("news.example.com");
	struct orgdomain_psl *psl;
	struct dmarc_params p;
	struct dmarc *d;
	const struct dmarc_outcome *o;
	char path[] = "/tmp/mxgate-test-psl2.XXXXXX", err[256], asked[1024];
	int fd = mkstemp(path);

	assert_true(fd != -1);
	assert_int_equal(write(fd, list, sizeof(list) - 1), sizeof(list) - 1);
	close(fd);
	psl = orgdomain_psl_load(path, err, sizeof(err));
	unlink(path);
	assert_non_null(psl);
	memset(&p, 0, sizeof(p));
	p.discovery = DMARC_DISCOVERY_PSL;
	p.psl = psl;
	p.author_domain = "mail.example.com";
	p.spf_result = SPF_PASS;
	p.spf_domain = "bounce.example.com";
	p.dkim = &dk;
	p.ndkim = 1;
	assert_non_null(d = dmarc_new(&p));
	orgdomain_psl_free(psl);	/* a reload freed it */
	drive(d, "_dmarc.example.com TXT v=DMARC1; p=reject\n", asked,
	    sizeof(asked));
	assert_true(dmarc_done(d));
	o = dmarc_outcome(d);
	assert_int_equal(o->result, DMARC_PASS);
	assert_true(o->dkim_aligned);
	assert_true(o->spf_aligned);
	assert_string_equal(o->org_domain, "example.com");
	assert_string_equal(o->policy_domain, "example.com");
	dmarc_free(d);
}

static int
setup_psl(void **state)
{
	static const char list[] = "// a small list for the tests\n"
	    "com\nnet\norg\nuk\nco.uk\nexample\n";
	char path[] = "/tmp/mxgate-test-psl.XXXXXX", err[256];
	int fd = mkstemp(path);

	if (fd == -1 || write(fd, list, sizeof(list) - 1) !=
	    (ssize_t)(sizeof(list) - 1)) {
		perror("psl list");
		return -1;
	}
	close(fd);
	test_psl = orgdomain_psl_load(path, err, sizeof(err));
	unlink(path);
	if (test_psl == NULL)
		fprintf(stderr, "%s\n", err);
	return test_psl == NULL ? -1 : 0;
}

static int
teardown_psl(void **state)
{
	orgdomain_psl_free((struct orgdomain_psl *)test_psl);
	return 0;
}

static void
test_orgdomain_psl(void **state)
{
	char out[256], err[256];

	assert_int_equal(orgdomain_psl(test_psl, "a.b.Example.CO.UK", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "example.co.uk");
	assert_int_equal(orgdomain_psl(test_psl, "co.uk", out, sizeof(out)),
	    -1);
	assert_int_equal(orgdomain_psl(test_psl, ".example.com", out,
	    sizeof(out)), -1);
	assert_int_equal(orgdomain_psl(test_psl, "a.example.com", out, 5), -1);
	assert_int_equal(orgdomain_psl(NULL, "a.example.com", out,
	    sizeof(out)), -1);
	assert_null(orgdomain_psl_load("/nonexistent/psl.dat", err,
	    sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/psl.dat"));
}

/* ---- auth/dmarc_query over lib/dns and tests/tools/dnsserver.py ---- */

#define PYTHON		"/usr/bin/python3"
#define DNSSERVER	"tests/tools/dnsserver.py"

static const char qzone[] = "{\n"
    "\"_dmarc.example.com\": [{\"type\": \"TXT\", \"value\": "
    "\"v=DMARC1; p=none; np=reject\"}],\n"
    "\"example.com\": [{\"type\": \"A\", \"value\": \"192.0.2.1\"}]\n"
    "}\n";

static struct {
	pid_t pid;
	char dir[64], zone[128], log[128], server[64];
} dsrv;

struct qres {
	int calls, inside;
	enum dmarc_result result;
	enum dmarc_policy requested;
	char reason[512];
};

static int in_start;

static void
qdone(const struct dmarc_outcome *o, void *arg)
{
	struct qres *r = arg;

	r->calls++;
	r->inside |= in_start;
	r->result = o->result;
	r->requested = o->requested;
	snprintf(r->reason, sizeof(r->reason), "%s", o->reason);
}

static int
dns_server_start(void)
{
	char line[64] = "";
	struct pollfd pfd;
	int fds[2], port, i;
	ssize_t got;
	size_t n = 0;
	FILE *f;

	if (access(PYTHON, X_OK) == -1 || access(DNSSERVER, R_OK) == -1)
		return -1;
	snprintf(dsrv.dir, sizeof(dsrv.dir), "/tmp/mxgate-dmarc.XXXXXX");
	if (mkdtemp(dsrv.dir) == NULL)
		return -1;
	snprintf(dsrv.zone, sizeof(dsrv.zone), "%s/zone.json", dsrv.dir);
	snprintf(dsrv.log, sizeof(dsrv.log), "%s/queries.log", dsrv.dir);
	if ((f = fopen(dsrv.zone, "w")) == NULL)
		return -1;
	fputs(qzone, f);
	if (fclose(f) != 0 || pipe(fds) == -1 || (dsrv.pid = fork()) == -1)
		return -1;
	if (dsrv.pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execl(PYTHON, "python3", DNSSERVER, "--zone", dsrv.zone,
		    "--port", "0", "--log", dsrv.log, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	pfd.fd = fds[0];
	pfd.events = POLLIN;
	for (i = 0; i < 100 && memchr(line, '\n', n) == NULL &&
	    n < sizeof(line) - 1; i++) {
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if ((got = read(fds[0], line + n, sizeof(line) - 1 - n)) <= 0)
			break;
		n += (size_t)got;
		line[n] = '\0';
	}
	close(fds[0]);
	if (sscanf(line, "LISTENING %d", &port) != 1)
		return -1;
	snprintf(dsrv.server, sizeof(dsrv.server), "127.0.0.1:%d", port);
	return 0;
}

static void
dns_server_stop(void)
{
	if (dsrv.pid > 0) {
		kill(dsrv.pid, SIGTERM);
		waitpid(dsrv.pid, NULL, 0);
		dsrv.pid = 0;
	}
	if (dsrv.dir[0] != '\0') {
		unlink(dsrv.zone);
		unlink(dsrv.log);
		rmdir(dsrv.dir);
		dsrv.dir[0] = '\0';
	}
}

/* Lines of the server's log naming (name, type). */
static int
served(const char *name, const char *type)
{
	char wn[300], wt[32], line[512];
	FILE *f = fopen(dsrv.log, "r");
	int n = 0;

	snprintf(wn, sizeof(wn), "\"name\":\"%s\"", name);
	snprintf(wt, sizeof(wt), "\"type\":\"%s\"", type);
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, wn) != NULL && strstr(line, wt) != NULL;
	if (f != NULL)
		fclose(f);
	return n;
}

static struct dmarc_query *
qstart(struct event_base *base, struct dns_resolver *r, const char *author,
    const char *problem, int budget_ms, struct qres *res)
{
	struct dmarc_params p;
	struct dmarc_query *q;

	memset(&p, 0, sizeof(p));
	p.author_domain = author;
	p.from_problem = problem;
	in_start = 1;
	q = dmarc_query_start(base, r, &p, budget_ms, qdone, res);
	in_start = 0;
	assert_non_null(q);
	assert_int_equal(res->calls, 0);
	return q;
}

static void
qwait(struct event_base *base, struct qres *res, int ms)
{
	struct timeval tv = { 0, 10000 };
	int i;

	for (i = 0; i < ms / 10 && res->calls == 0; i++) {
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
}

static void
test_query_driver(void **state)
{
	const char *servers[1];
	struct dns_config cfg = { .nservers = 1, .timeout_ms = 400,
	    .tries = 1, .cache_entries = 0 };
	struct event_base *base;
	struct dns_resolver *r;
	struct dmarc_query *q;
	struct qres res;
	char err[256];

	if (dns_server_start() == -1) {
		dns_server_stop();
		printf("skipped: %s or %s not available (run from the "
		    "repository root)\n", PYTHON, DNSSERVER);
		skip();
	}
	servers[0] = dsrv.server;
	cfg.servers = servers;
	assert_non_null(base = event_base_new());
	r = dns_resolver_new(base, &cfg, err, sizeof(err));
	if (r == NULL)
		fail_msg("dns_resolver_new: %s", err);

	/* the walk, then A, AAAA and MX together: np= applies */
	memset(&res, 0, sizeof(res));
	qstart(base, r, "nx.example.com", NULL, 5000, &res);
	qwait(base, &res, 5000);
	assert_int_equal(res.calls, 1);
	assert_int_equal(res.inside, 0);
	assert_int_equal(res.result, DMARC_FAIL);
	assert_int_equal(res.requested, DMARC_P_REJECT);
	assert_int_equal(served("_dmarc.nx.example.com", "TXT"), 1);
	assert_int_equal(served("_dmarc.example.com", "TXT"), 1);
	assert_int_equal(served("_dmarc.com", "TXT"), 1);
	assert_int_equal(served("nx.example.com", "A"), 1);
	assert_int_equal(served("nx.example.com", "AAAA"), 1);
	assert_int_equal(served("nx.example.com", "MX"), 1);

	/* no question: the answer still comes from the loop */
	memset(&res, 0, sizeof(res));
	qstart(base, r, NULL, "no From field", 5000, &res);
	qwait(base, &res, 1000);
	assert_int_equal(res.calls, 1);
	assert_int_equal(res.result, DMARC_PERMERROR);

	/* cancelled before it began, or with a question in flight: never
	 * called */
	memset(&res, 0, sizeof(res));
	dmarc_query_cancel(qstart(base, r, "example.com", NULL, 5000, &res));
	qwait(base, &res, 200);
	assert_int_equal(res.calls, 0);
	q = qstart(base, r, "b.timeout", NULL, 5000, &res);
	qwait(base, &res, 200);
	assert_int_equal(served("_dmarc.b.timeout", "TXT"), 1);
	dmarc_query_cancel(q);
	qwait(base, &res, 600);
	assert_int_equal(res.calls, 0);

	/* "timeout" names are never answered: the budget ends it */
	memset(&res, 0, sizeof(res));
	qstart(base, r, "a.timeout", NULL, 150, &res);
	qwait(base, &res, 3000);
	assert_int_equal(res.calls, 1);
	assert_int_equal(res.result, DMARC_TEMPERROR);
	assert_non_null(strstr(res.reason, "time budget"));

	dns_resolver_free(r);
	event_base_free(base);
	dns_server_stop();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_parse),
		cmocka_unit_test(test_record_fields_and_bounds),
		cmocka_unit_test(test_aligned),
		cmocka_unit_test(test_ascii),
		cmocka_unit_test(test_orgdomain_psl),
		cmocka_unit_test(test_engine),
		cmocka_unit_test(test_engine_stray_answers),
		cmocka_unit_test(test_engine_psl_not_kept),
		cmocka_unit_test(test_query_driver),
	};

	return cmocka_run_group_tests(tests, setup_psl, teardown_psl);
}
