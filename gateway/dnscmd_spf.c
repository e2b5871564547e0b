/*
 * gateway/dnscmd_spf.c: the SPF part of `mxgate dns check`: the record
 * of the domain, then a walk through include: and redirect= counting
 * what RFC 7208 4.6.4 limits (DNS-querying terms, void lookups, MX
 * records per mx), as the evaluator (auth/spf.c) would meet them.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "auth/spf.h"
#include "gateway/dnscmd_int.h"

#define SPF_LOOKUPS	10	/* RFC 7208 4.6.4 */
#define SPF_VOIDS	2	/* RFC 7208 4.6.4 */
#define SPF_MX_NAMES	10	/* RFC 7208 4.6.4: MX records per mx */
#define SPF_DEPTH	10	/* include: and redirect= followed */
#define SPF_QUERIES	40	/* questions the walk may ask */

struct spf_walk {
	struct dnscmd *d;
	unsigned lookups;		/* DNS-querying terms */
	unsigned voids;			/* NXDOMAIN / no-record answers */
	unsigned queries;		/* asked by the walk */
	int macros;			/* terms not followed: macros */
	int cut;			/* stopped following: bounds */
	int loop;			/* a record includes itself */
	char path[SPF_DEPTH + 1][256];	/* the records being walked */
	char seen[SPF_QUERIES][256];	/* every record walked */
	size_t nseen;
};

/* RFC 7208 4.6.4: a void lookup answers NXDOMAIN or no records. */
static int
spf_void(const struct dns_answer *a)
{
	return a->status == DNS_NXDOMAIN || a->status == DNS_NODATA ||
	    (a->status == DNS_OK && a->n == 0);
}

/* The first term that makes the record fail on its own, into out. */
static void
spf_culprit(const char *text, char *out, size_t n)
{
	struct spf_record *r;
	const char *p = text + 6, *q, *err;
	char one[600];

	*out = '\0';
	for (; *p != '\0'; p = q) {
		while (*p == ' ')
			p++;
		for (q = p; *q != '\0' && *q != ' '; q++)
			;
		if (q == p || (size_t)(q - p) > sizeof(one) - 8)
			continue;
		snprintf(one, sizeof(one), "v=spf1 %.*s", (int)(q - p), p);
		if (spf_record_parse(one, strlen(one), &r, &err) == -1) {
			snprintf(out, n, "'%.*s': ", (int)(q - p), p);
			return;
		}
		spf_record_free(r);
	}
}

/*
 * The SPF record at name, parsed (*r_r), or -1 with the finding said.
 * via: the term that named it ("include:x"), NULL for the domain itself.
 */
static int
spf_fetch(struct spf_walk *w, const char *name, const char *via,
    struct spf_record **r_r)
{
	struct dnscmd *d = w->d;
	struct dns_answer *a;
	const char *err, *text = NULL;
	char where[600], culprit[600];
	size_t i, n = 0, len = 0;
	int ret = -1;

	*r_r = NULL;
	if (via)
		snprintf(where, sizeof(where), "%s (%s)", name, via);
	else
		snprintf(where, sizeof(where), "%s", name);
	w->queries++;
	a = dnscmd_ask(d, name, DNS_T_TXT);
	if (dnscmd_failed(a)) {
		dnscmd_err(d, "SPF: TXT query for %s failed: %s",
		    where, dnscmd_why(a));
		goto out;
	}
	if (spf_void(a))
		w->voids++;
	for (i = 0; i < a->n; i++) {
		if (!spf_record_is_spf(a->rr[i].text, a->rr[i].len))
			continue;
		if (n++ == 0) {
			text = a->rr[i].text;
			len = a->rr[i].len;
		}
	}
	if (n == 0) {
		dnscmd_err(d, "SPF: no record at %s%s", where,
		    via ? ": permerror" : "");
		goto out;
	}
	if (n > 1) {
		/* RFC 7208 4.5: more than one record is a permerror */
		dnscmd_err(d, "SPF: %zu records at %s (permerror: "
		    "RFC 7208 4.5 allows one)", n, where);
		goto out;
	}
	if (spf_record_parse(text, len, r_r, &err) == -1) {
		spf_culprit(text, culprit, sizeof(culprit));
		dnscmd_err(d, "SPF: syntax error in the record at "
		    "%s: %s%s (permerror)", where, culprit, err);
		goto out;
	}
	if (via == NULL)
		dnscmd_ok(d, "SPF: %.*s%s", DNSCMD_CLIP(text), text,
		    DNSCMD_MORE(text));
	ret = 0;
out:
	dns_answer_free(a);
	return ret;
}

/* spec (n octets) as a name into out[256], without a final dot; -1 when
 * it cannot be one. */
static int
spf_name(const char *spec, size_t n, char *out)
{
	if (n == 0 || n >= 256)
		return -1;
	memcpy(out, spec, n);
	out[n] = '\0';
	if (n > 1 && out[n - 1] == '.')
		out[n - 1] = '\0';
	return 0;
}

/*
 * RFC 7208 4.6.4: the query of a, mx and exists (to its target, or to
 * the current domain cur for a bare a or mx). A void lookup counts
 * towards the two allowed; an mx whose target has more than ten MX
 * records is a permerror. Which address family: the a mechanism asks A
 * for an IPv4 client and AAAA for an IPv6 one (RFC 7208 5.3); the count
 * is the one an IPv4 client meets, the A query. An IPv6-only host is
 * thus a void lookup, though not said as a host without an address.
 */
static void
spf_target(struct spf_walk *w, const char *cur, const struct spf_term_info *t)
{
	struct dnscmd *d = w->d;
	struct dns_answer *a, *a6;
	enum dns_type type;
	const char *what;
	char name[256];
	int v6 = 0;

	if (t->macro) {
		w->macros = 1;
		return;
	}
	if (t->spec == NULL)
		snprintf(name, sizeof(name), "%s", cur);
	else if (spf_name(t->spec, t->speclen, name) == -1)
		return;
	if (w->queries >= SPF_QUERIES)
		return;
	type = t->kind == SPF_TERM_MX ? DNS_T_MX : DNS_T_A;
	what = t->kind == SPF_TERM_MX ? "MX" : "address";
	w->queries++;
	a = dnscmd_ask(d, name, type);
	if (dnscmd_failed(a)) {
		dnscmd_err(d, "SPF: %s query for %s (%s) failed: %s", what,
		    name, t->text, dnscmd_why(a));
	} else if (spf_void(a)) {
		w->voids++;
		if (t->kind == SPF_TERM_A && w->queries < SPF_QUERIES) {
			w->queries++;
			a6 = dnscmd_ask(d, name, DNS_T_AAAA);
			v6 = a6 != NULL && a6->status == DNS_OK && a6->n > 0;
			dns_answer_free(a6);
		}
		if (!v6)
			dnscmd_warn(d, "SPF: %s names %s, which has no %s",
			    t->text, name, t->kind == SPF_TERM_MX ?
			    "MX record" : t->kind == SPF_TERM_A ? "address" :
			    "A record");
	} else if (t->kind == SPF_TERM_MX && a->n > SPF_MX_NAMES) {
		dnscmd_err(d, "SPF: %s: %s has %zu MX records, more than the "
		    "%d RFC 7208 4.6.4 allows (permerror)", t->text, name,
		    a->n, SPF_MX_NAMES);
	}
	dns_answer_free(a);
}

static void spf_walk(struct spf_walk *w, const char *name,
    const struct spf_record *r, int depth, char *all_r);

/* Follows include: or redirect= to spec; *all_r: how that record ends. */
static void
spf_follow(struct spf_walk *w, const char *spec, size_t n, const char *via,
    int depth, char *all_r)
{
	struct dnscmd *d = w->d;
	struct spf_record *r;
	char name[256];
	size_t i;
	int again = 0;

	*all_r = '\0';
	if (memchr(spec, '%', n) != NULL) {
		w->macros = 1;
		return;
	}
	if (spf_name(spec, n, name) == -1)
		return;
	/* RFC 7208 4.6.4: a loop ends only at the lookup limit */
	for (i = 0; i <= (size_t)depth; i++)
		if (strcasecmp(w->path[i], name) == 0) {
			dnscmd_err(d, "SPF: %s at %s loops back to %s "
			    "(permerror)", via, w->path[depth], name);
			w->loop = 1;
			return;
		}
	if (depth >= SPF_DEPTH || w->queries >= SPF_QUERIES) {
		w->cut = 1;
		return;
	}
	/* a record named twice counts twice, its findings are said once */
	for (i = 0; i < w->nseen && !again; i++)
		again = strcasecmp(w->seen[i], name) == 0;
	if (!again && w->nseen < SPF_QUERIES)
		snprintf(w->seen[w->nseen++], sizeof(w->seen[0]), "%s", name);
	snprintf(w->path[depth + 1], sizeof(w->path[0]), "%s", name);
	d->quiet += again;
	if (spf_fetch(w, name, via, &r) == 0) {
		spf_walk(w, name, r, depth + 1, all_r);
		spf_record_free(r);
	}
	d->quiet -= again;
}

/*
 * RFC 7208 5.2: include matches when its target passes, and a record
 * ending in +all passes every sender; so the include matches everyone,
 * and its own qualifier becomes every sender's result.
 */
static void
spf_include_all(struct spf_walk *w, const char *name,
    const struct spf_term_info *t)
{
	const char *what;

	switch (t->qual) {
	case '-':
		what = "fails every sender (the include matches everyone, "
		    "its qualifier - applies)";
		break;
	case '~':
		what = "softfails every sender (the include matches "
		    "everyone, its qualifier ~ applies)";
		break;
	case '?':
		what = "gives every sender neutral (the include matches "
		    "everyone, its qualifier ? applies)";
		break;
	default:
		what = "passes every sender";
		break;
	}
	dnscmd_err(w->d, "SPF: %s at %s %s: its record ends in +all",
	    t->text, name, what);
}

/*
 * RFC 7208 4.6.4: counts the DNS-querying terms of r (the record at
 * name) and, through include: and redirect=, of the records they name.
 * *all_r: the qualifier of the all that ends r ('\0': none), through
 * redirect= when r has no all (RFC 7208 6.1).
 */
static void
spf_walk(struct spf_walk *w, const char *name, const struct spf_record *r,
    int depth, char *all_r)
{
	struct dnscmd *d = w->d;
	struct spf_term_info t;
	const char *redirect;
	char sub, via[600];
	size_t i, n = spf_record_nterms(r);

	*all_r = '\0';
	for (i = 0; i < n && spf_record_term(r, i, &t) == 0; i++) {
		switch (t.kind) {
		case SPF_TERM_ALL:
			*all_r = t.qual;
			if (i + 1 < n)
				dnscmd_warn(d, "SPF: terms after %s "
				    "at %s are never evaluated", t.text, name);
			return;		/* nothing after all is evaluated */
		case SPF_TERM_IP4:
		case SPF_TERM_IP6:
			break;
		case SPF_TERM_PTR:
			w->lookups++;
			dnscmd_warn(d, "SPF: %s at %s: RFC 7208 5.5 says "
			    "not to use ptr (slow, unreliable)", t.text, name);
			break;
		case SPF_TERM_A:
		case SPF_TERM_MX:
		case SPF_TERM_EXISTS:
			w->lookups++;
			spf_target(w, name, &t);
			break;
		case SPF_TERM_INCLUDE:
			w->lookups++;
			spf_follow(w, t.spec, t.speclen, t.text, depth, &sub);
			if (sub == '+')
				spf_include_all(w, name, &t);
			break;
		}
	}
	if ((redirect = spf_record_redirect(r)) != NULL) {
		w->lookups++;
		snprintf(via, sizeof(via), "redirect=%s", redirect);
		spf_follow(w, redirect, strlen(redirect), via, depth, all_r);
	}
}

void
dnscmd_check_spf(struct dnscmd *d)
{
	struct spf_walk w;
	struct spf_record *r;
	char all;

	memset(&w, 0, sizeof(w));
	w.d = d;
	if (spf_fetch(&w, d->domain, NULL, &r) == -1)
		return;
	snprintf(w.path[0], sizeof(w.path[0]), "%s", d->domain);
	spf_walk(&w, d->domain, r, 0, &all);
	spf_record_free(r);
	if (w.loop)
		;	/* said: the count has no end */
	else if (w.lookups > SPF_LOOKUPS)
		dnscmd_err(d, "SPF: %s%u DNS-querying terms counted through "
		    "include: and redirect=, more than the %d RFC 7208 4.6.4 "
		    "allows (permerror)", w.cut ? "at least " : "", w.lookups,
		    SPF_LOOKUPS);
	else if (w.cut)
		dnscmd_warn(d, "SPF: include: and redirect= nest "
		    "too deep to follow; %u DNS-querying terms counted so far",
		    w.lookups);
	else
		dnscmd_ok(d, "SPF: %u DNS-querying terms (at most "
		    "%d)%s", w.lookups, SPF_LOOKUPS, w.macros ?
		    ", not counting what macros expand to" : "");
	if (w.voids > SPF_VOIDS)
		dnscmd_warn(d, "SPF: %u void lookups (NXDOMAIN or "
		    "no records): receivers may return permerror after %d (RFC "
		    "7208 4.6.4)", w.voids, SPF_VOIDS);
	switch (all) {
	case '+':
		dnscmd_err(d, "SPF: +all: every host on the "
		    "Internet may send as %s", d->domain);
		break;
	case '?':
		dnscmd_warn(d, "SPF: ?all: unlisted senders get "
		    "neutral, as if there were no SPF");
		break;
	case '~':
		dnscmd_ok(d, "SPF: ends with ~all (softfail; -all "
		    "once every sender is listed)");
		break;
	case '-':
		dnscmd_ok(d, "SPF: ends with -all");
		break;
	default:
		dnscmd_warn(d, "SPF: no -all or ~all at the end: "
		    "unlisted senders get neutral");
		break;
	}
}
