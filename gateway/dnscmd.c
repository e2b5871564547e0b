/*
 * `mxgate dns records DOMAIN [-c FILE]`: what DOMAIN should publish for
 * mxgate to be its MX and its outbound relay, as zone-file lines with a
 * comment above each: MX, SPF, the DKIM key records of [dkim sign DOMAIN]
 * (the public halves of the configured keys), DMARC, and, when [report]
 * email is in another organizational domain, the RFC 9990 4 record that
 * authorises it to receive DOMAIN's reports.
 *
 * `mxgate dns check DOMAIN [-c FILE] [--dns HOST:PORT]`: what DOMAIN
 * publishes, fetched on the command's own event loop through lib/dns
 * ([dns] servers, or --dns), judged one finding a line ("ok: ...",
 * "warning: ...", "error: ..."), MX, SPF, DKIM and DMARC in that order,
 * then "N errors, N warnings". A DNS failure (timeout, SERVFAIL, a broken
 * answer) is an error naming the query, never taken for an absent record.
 * Questions are asked one at a time: a person waits, not a queue.
 *
 * Exit status: 0 no errors, 1 errors (or the command could not run),
 * 2 usage.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "auth/dkim.h"
#include "auth/dmarc.h"
#include "auth/orgdomain.h"
#include "auth/spf_int.h"
#include "gateway/gateway.h"
#include "lib/buf.h"
#include "lib/dns.h"
#include "report/send.h"

#define DNSCMD_CONFIG		"/etc/mxgate/mxgate.ini"
#define DNSCMD_SPF_LOOKUPS	10	/* RFC 7208 4.6.4 */
#define DNSCMD_SPF_VOIDS	2	/* RFC 7208 4.6.4 */
#define DNSCMD_SPF_DEPTH	10	/* include: and redirect= followed */
#define DNSCMD_SPF_QUERIES	40	/* questions the SPF walk may ask */

/* published text in a finding: at most 300 octets, "..." when cut */
#define DNSCMD_CLIP(s)	(strlen(s) > 300 ? 300 : (int)strlen(s))
#define DNSCMD_MORE(s)	(strlen(s) > 300 ? "..." : "")

enum dnscmd_level { DNSCMD_OK, DNSCMD_WARNING, DNSCMD_ERROR };

struct dnscmd {
	struct config *cfg;
	struct orgdomain_psl *psl;	/* NULL: org domains by equality */
	char domain[256];		/* lower case, A-labels, no final dot */
	int accepted;			/* in [domains] accept */
	const struct config_signer *signer;
	/* check */
	struct event_base *base;
	struct dns_resolver *res;
	unsigned errors, warnings;
	/* the SPF walk */
	unsigned lookups;		/* DNS-querying terms */
	unsigned voids;			/* NXDOMAIN / no-record answers */
	unsigned queries;		/* asked by the walk */
	int macros;			/* terms not followed: macros */
	int cut;			/* stopped following: bounds */
	int loop;			/* a record includes itself */
	char path[DNSCMD_SPF_DEPTH + 1][256];	/* the records being walked */
	char seen[DNSCMD_SPF_QUERIES][256];	/* every record walked */
	size_t nseen;
	int quiet;			/* walking one again: said already */
};

static void
dnscmd_usage(FILE *f)
{
	fprintf(f, "usage: mxgate dns records DOMAIN [-c FILE]\n"
	    "       mxgate dns check DOMAIN [-c FILE] [--dns HOST:PORT]\n");
}

/* One finding. Published text reaches a terminal: no control octets. */
static void
dnscmd_vsay(struct dnscmd *d, enum dnscmd_level l, const char *fmt,
    va_list ap)
{
	static const char *names[] = { "ok", "warning", "error" };
	struct buf b = { 0 };
	size_t i;

	if (d->quiet)
		return;
	if (buf_vappendf(&b, fmt, ap) == -1)
		buf_free(&b);
	for (i = 0; i < b.len; i++)
		if ((unsigned char)b.data[i] < 0x20 || b.data[i] == 0x7f)
			b.data[i] = '?';
	printf("%s: %s\n", names[l], b.data ? b.data : "(out of memory)");
	buf_free(&b);
	if (l == DNSCMD_ERROR)
		d->errors++;
	else if (l == DNSCMD_WARNING)
		d->warnings++;
}

static void dnscmd_ok(struct dnscmd *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
dnscmd_ok(struct dnscmd *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dnscmd_vsay(d, DNSCMD_OK, fmt, ap);
	va_end(ap);
}

static void dnscmd_warn(struct dnscmd *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
dnscmd_warn(struct dnscmd *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dnscmd_vsay(d, DNSCMD_WARNING, fmt, ap);
	va_end(ap);
}

static void dnscmd_err(struct dnscmd *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
dnscmd_err(struct dnscmd *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dnscmd_vsay(d, DNSCMD_ERROR, fmt, ap);
	va_end(ap);
}

/* ---- DNS, one question at a time on the command's loop ---- */

struct dnscmd_wait {
	struct dns_answer *a;
	int done;
};

static void
dnscmd_answered(const struct dns_answer *a, void *arg)
{
	struct dnscmd_wait *w = arg;

	w->a = dns_answer_dup(a);
	w->done = 1;
}

/* The answer (dns_answer_free), or NULL when memory ran out. */
static struct dns_answer *
dnscmd_ask(struct dnscmd *d, const char *name, enum dns_type type)
{
	struct dnscmd_wait w = { NULL, 0 };
	struct dns_query *q;

	if ((q = dns_query(d->res, name, type, dnscmd_answered, &w)) == NULL)
		return NULL;
	while (!w.done && event_base_loop(d->base, EVLOOP_ONCE) == 0)
		;
	if (!w.done)
		dns_cancel(q);
	return w.a;
}

/* A failure, not an answer: nothing can be said about what is published. */
static int
dnscmd_failed(const struct dns_answer *a)
{
	return a == NULL || a->status == DNS_SERVFAIL ||
	    a->status == DNS_TIMEOUT || a->status == DNS_ERROR;
}

static const char *
dnscmd_why(const struct dns_answer *a)
{
	return a == NULL ? "out of memory" : dns_status_name(a->status);
}

/* RFC 9990 4: no authorisation is needed inside one organizational
 * domain (PSL); without a list, only for the same name. */
static int
dnscmd_same_org(const struct dnscmd *d, const char *a, const char *b)
{
	char oa[256], ob[256];

	if (orgdomain_psl(d->psl, a, oa, sizeof(oa)) == 0 &&
	    orgdomain_psl(d->psl, b, ob, sizeof(ob)) == 0)
		return strcmp(oa, ob) == 0;
	return strcasecmp(a, b) == 0;
}

/* ---- MX ---- */

static int
dnscmd_is_root(const char *name)
{
	return *name == '\0' || strcmp(name, ".") == 0;
}

static int
dnscmd_same_host(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

static void
dnscmd_check_mx(struct dnscmd *d)
{
	struct dns_answer *a = dnscmd_ask(d, d->domain, DNS_T_MX);
	const char *host = d->cfg->hostname;
	struct buf list = { 0 };
	size_t i, nnull = 0;
	int us = 0;

	if (dnscmd_failed(a)) {
		dnscmd_err(d, "MX: MX query for %s failed: %s",
		    d->domain, dnscmd_why(a));
		goto out;
	}
	if (a->status == DNS_NXDOMAIN) {
		dnscmd_err(d, "MX: %s does not exist (NXDOMAIN)",
		    d->domain);
		goto out;
	}
	if (a->status == DNS_NODATA || a->n == 0) {
		dnscmd_err(d, "MX: no MX record for %s: publish "
		    "\"%s. IN MX 10 %s.\"", d->domain, d->domain, host);
		goto out;
	}
	for (i = 0; i < a->n; i++) {
		if (dnscmd_is_root(a->rr[i].text))
			nnull++;
		else if (dnscmd_same_host(a->rr[i].text, host))
			us = 1;
		buf_appendf(&list, "%s%u %s", i ? ", " : "", a->rr[i].pref,
		    dnscmd_is_root(a->rr[i].text) ? "." : a->rr[i].text);
	}
	if (nnull > 0 && a->n > 1) {
		/* RFC 7505 3: a null MX stands alone */
		dnscmd_err(d, "MX: a null MX among other MX records "
		    "(%s): RFC 7505 3 says a null MX stands alone", list.data);
	} else if (nnull > 0) {
		if (d->accepted)
			dnscmd_err(d, "MX: %s publishes a null MX (RFC "
			    "7505): it receives no mail, yet [domains] "
			    "accept lists it", d->domain);
		else
			dnscmd_ok(d, "MX: null MX (RFC 7505): %s "
			    "receives no mail", d->domain);
	} else if (us) {
		dnscmd_ok(d, "MX: %s", list.data);
	} else if (d->accepted) {
		dnscmd_warn(d, "MX: %s is not among the MX hosts (%s): "
		    "mxgate is not the MX; for hybrid set-ups see [hybrid]",
		    host, list.data);
	} else {
		dnscmd_ok(d, "MX: %s (not in [domains] accept: "
		    "mxgate is not its MX)", list.data);
	}
out:
	buf_free(&list);
	dns_answer_free(a);
}

/* ---- SPF ---- */

/* The first term that makes the record fail on its own, into out. */
static void
dnscmd_spf_culprit(const char *text, char *out, size_t n)
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
dnscmd_spf_fetch(struct dnscmd *d, const char *name, const char *via,
    struct spf_record **r_r)
{
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
	d->queries++;
	a = dnscmd_ask(d, name, DNS_T_TXT);
	if (dnscmd_failed(a)) {
		dnscmd_err(d, "SPF: TXT query for %s failed: %s",
		    where, dnscmd_why(a));
		goto out;
	}
	/* RFC 7208 4.6.4: a void lookup answers nothing or NXDOMAIN */
	if (a->status == DNS_NXDOMAIN || a->status == DNS_NODATA)
		d->voids++;
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
		dnscmd_spf_culprit(text, culprit, sizeof(culprit));
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

/* RFC 7208 4.6.4: a: and mx: targets that do not exist are void lookups. */
static void
dnscmd_spf_target(struct dnscmd *d, const struct spf_term *t)
{
	struct dns_answer *a;
	char name[256];

	if (t->spec == NULL)
		return;		/* the current domain */
	if (memchr(t->spec, '%', t->speclen) != NULL) {
		d->macros = 1;
		return;
	}
	if (t->speclen >= sizeof(name) || d->queries >= DNSCMD_SPF_QUERIES)
		return;
	memcpy(name, t->spec, t->speclen);
	name[t->speclen] = '\0';
	d->queries++;
	a = dnscmd_ask(d, name, t->mech == SPF_M_MX ? DNS_T_MX : DNS_T_A);
	if (a != NULL && a->status == DNS_NODATA && t->mech == SPF_M_A &&
	    d->queries < DNSCMD_SPF_QUERIES) {
		/* an IPv6-only host is no void */
		dns_answer_free(a);
		d->queries++;
		a = dnscmd_ask(d, name, DNS_T_AAAA);
	}
	if (dnscmd_failed(a))
		dnscmd_err(d, "SPF: %s query for %s (%s) failed: %s",
		    t->mech == SPF_M_MX ? "MX" : "address", name, t->text,
		    dnscmd_why(a));
	else if (a->status == DNS_NXDOMAIN || a->status == DNS_NODATA) {
		d->voids++;
		dnscmd_warn(d, "SPF: %s names %s, which has no %s",
		    t->text, name, t->mech == SPF_M_MX ? "MX record" :
		    "address");
	}
	dns_answer_free(a);
}

static void dnscmd_spf_walk(struct dnscmd *d, const char *name,
    const struct spf_record *r, int depth, char *all_r);

/* Follows include: or redirect= to spec; *all_r: how that record ends. */
static void
dnscmd_spf_follow(struct dnscmd *d, const char *spec, size_t n,
    const char *via, int depth, char *all_r)
{
	struct spf_record *r;
	char name[256];
	size_t i;
	int again = 0;

	*all_r = '\0';
	if (memchr(spec, '%', n) != NULL) {
		d->macros = 1;
		return;
	}
	if (n >= sizeof(name))
		return;
	memcpy(name, spec, n);
	name[n] = '\0';
	if (n > 1 && name[n - 1] == '.')
		name[n - 1] = '\0';
	/* RFC 7208 4.6.4: a loop ends only at the lookup limit */
	for (i = 0; i <= (size_t)depth; i++)
		if (strcasecmp(d->path[i], name) == 0) {
			dnscmd_err(d, "SPF: %s at %s loops back to %s "
			    "(permerror)", via, d->path[depth], name);
			d->loop = 1;
			return;
		}
	if (depth >= DNSCMD_SPF_DEPTH || d->queries >= DNSCMD_SPF_QUERIES) {
		d->cut = 1;
		return;
	}
	/* a record named twice counts twice, its findings are said once */
	for (i = 0; i < d->nseen && !again; i++)
		again = strcasecmp(d->seen[i], name) == 0;
	if (!again && d->nseen < DNSCMD_SPF_QUERIES)
		snprintf(d->seen[d->nseen++], sizeof(d->seen[0]), "%s", name);
	snprintf(d->path[depth + 1], sizeof(d->path[0]), "%s", name);
	d->quiet += again;
	if (dnscmd_spf_fetch(d, name, via, &r) == 0) {
		dnscmd_spf_walk(d, name, r, depth + 1, all_r);
		spf_record_free(r);
	}
	d->quiet -= again;
}

/*
 * RFC 7208 4.6.4: counts the DNS-querying terms of r (the record at
 * name) and, through include: and redirect=, of the records they name.
 * *all_r: the qualifier of the all that ends r ('\0': none), through
 * redirect= when r has no all (RFC 7208 6.1).
 */
static void
dnscmd_spf_walk(struct dnscmd *d, const char *name, const struct spf_record *r,
    int depth, char *all_r)
{
	char sub, via[600];
	size_t i;

	*all_r = '\0';
	for (i = 0; i < r->nterms; i++) {
		const struct spf_term *t = &r->terms[i];

		switch (t->mech) {
		case SPF_M_ALL:
			*all_r = t->qual;
			if (i + 1 < r->nterms)
				dnscmd_warn(d, "SPF: terms after %s "
				    "at %s are never evaluated", t->text, name);
			return;		/* nothing after all is evaluated */
		case SPF_M_IP4:
		case SPF_M_IP6:
			break;
		case SPF_M_PTR:
			d->lookups++;
			dnscmd_warn(d, "SPF: %s at %s: RFC 7208 5.5 says "
			    "not to use ptr (slow, unreliable)", t->text, name);
			break;
		case SPF_M_A:
		case SPF_M_MX:
			d->lookups++;
			dnscmd_spf_target(d, t);
			break;
		case SPF_M_EXISTS:
			d->lookups++;
			if (memchr(t->spec, '%', t->speclen) != NULL)
				d->macros = 1;
			break;
		case SPF_M_INCLUDE:
			d->lookups++;
			dnscmd_spf_follow(d, t->spec, t->speclen, t->text,
			    depth, &sub);
			/* RFC 7208 5.2: include matches when its target
			 * passes */
			if (sub == '+')
				dnscmd_err(d, "SPF: %s at %s passes every "
				    "sender: its record ends in +all", t->text,
				    name);
			break;
		}
	}
	if (r->redirect != NULL) {
		d->lookups++;
		snprintf(via, sizeof(via), "redirect=%s", r->redirect);
		dnscmd_spf_follow(d, r->redirect, strlen(r->redirect), via,
		    depth, all_r);
	}
}

static void
dnscmd_check_spf(struct dnscmd *d)
{
	struct spf_record *r;
	char all;

	if (dnscmd_spf_fetch(d, d->domain, NULL, &r) == -1)
		return;
	snprintf(d->path[0], sizeof(d->path[0]), "%s", d->domain);
	dnscmd_spf_walk(d, d->domain, r, 0, &all);
	spf_record_free(r);
	if (d->loop)
		;	/* said: the count has no end */
	else if (d->lookups > DNSCMD_SPF_LOOKUPS)
		dnscmd_err(d, "SPF: %s%u DNS-querying terms counted through "
		    "include: and redirect=, more than the %d RFC 7208 4.6.4 "
		    "allows (permerror)", d->cut ? "at least " : "", d->lookups,
		    DNSCMD_SPF_LOOKUPS);
	else if (d->cut)
		dnscmd_warn(d, "SPF: include: and redirect= nest "
		    "too deep to follow; %u DNS-querying terms counted so far",
		    d->lookups);
	else
		dnscmd_ok(d, "SPF: %u DNS-querying terms (at most "
		    "%d)%s", d->lookups, DNSCMD_SPF_LOOKUPS, d->macros ?
		    ", not counting what macros expand to" : "");
	if (d->voids > DNSCMD_SPF_VOIDS)
		dnscmd_warn(d, "SPF: %u void lookups (NXDOMAIN or "
		    "no records): receivers may return permerror after %d (RFC "
		    "7208 4.6.4)", d->voids, DNSCMD_SPF_VOIDS);
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

/* ---- DKIM ---- */

/*
 * RFC 6376 3.2 tag-list: the value of tag name in txt, white space
 * around it trimmed (*v_r, *n_r). 1 found, 0 not.
 */
static int
dnscmd_tag(const char *txt, const char *name, const char **v_r, size_t *n_r)
{
	const char *p = txt, *semi, *eq, *k, *ke, *v, *ve;

	for (; *p != '\0'; p = *semi ? semi + 1 : semi) {
		semi = p + strcspn(p, ";");
		if ((eq = memchr(p, '=', (size_t)(semi - p))) == NULL)
			continue;
		for (k = p; k < eq && strchr(" \t\r\n", *k); k++)
			;
		for (ke = eq; ke > k && strchr(" \t\r\n", ke[-1]); ke--)
			;
		if ((size_t)(ke - k) != strlen(name) ||
		    strncmp(k, name, (size_t)(ke - k)) != 0)
			continue;
		for (v = eq + 1; v < semi && strchr(" \t\r\n", *v); v++)
			;
		for (ve = semi; ve > v && strchr(" \t\r\n", ve[-1]); ve--)
			;
		*v_r = v;
		*n_r = (size_t)(ve - v);
		return 1;
	}
	return 0;
}

/* base64 with the folding white space left out (RFC 6376 3.6.1 p=) */
static int
dnscmd_same_b64(const char *a, size_t na, const char *b, size_t nb)
{
	size_t i = 0, j = 0;

	for (;;) {
		while (i < na && strchr(" \t\r\n", a[i]))
			i++;
		while (j < nb && strchr(" \t\r\n", b[j]))
			j++;
		if (i == na || j == nb)
			return i == na && j == nb;
		if (a[i++] != b[j++])
			return 0;
	}
}

/* RFC 6376 3.6.1: a key record has p=, and v=DKIM1 first if any v= */
static int
dnscmd_is_key(const char *txt)
{
	const char *v;
	size_t n;

	if (!dnscmd_tag(txt, "p", &v, &n))
		return 0;
	return !dnscmd_tag(txt, "v", &v, &n) ||
	    (n == 5 && strncmp(v, "DKIM1", 5) == 0);
}

static void
dnscmd_check_key(struct dnscmd *d, const struct config_sign_key *k)
{
	struct dns_answer *a = NULL;
	struct buf ours = { 0 };
	const char *txt = NULL, *pv, *kv, *op, *type;
	char name[600];
	size_t pn, kn, opn, i, nkeys = 0;

	snprintf(name, sizeof(name), "%s._domainkey.%s", k->selector,
	    d->domain);
	if (k->key == NULL || dkim_key_record(k->key, &ours) == -1 ||
	    !dnscmd_tag(ours.data, "p", &op, &opn)) {
		dnscmd_err(d, "DKIM: %s: no public key for %s",
		    name, k->file);
		goto out;
	}
	type = strcmp(dkim_key_algorithm(k->key), "ed25519-sha256") == 0 ?
	    "ed25519" : "rsa";
	a = dnscmd_ask(d, name, DNS_T_TXT);
	if (dnscmd_failed(a)) {
		dnscmd_err(d, "DKIM: TXT query for %s failed: %s",
		    name, dnscmd_why(a));
		goto out;
	}
	for (i = 0; i < a->n; i++)
		if (dnscmd_is_key(a->rr[i].text) && nkeys++ == 0)
			txt = a->rr[i].text;
	if (txt == NULL) {
		dnscmd_err(d, "DKIM: no key record at %s (selector "
		    "%s of [dkim sign %s]): receivers cannot verify its "
		    "signatures", name, k->selector, d->domain);
		goto out;
	}
	if (nkeys > 1)
		dnscmd_warn(d, "DKIM: %zu key records at %s: "
		    "verifiers may take any one", nkeys, name);
	dnscmd_tag(txt, "p", &pv, &pn);
	if (pn == 0) {
		dnscmd_err(d, "DKIM: the key at %s is revoked "
		    "(empty p=): signatures with selector %s fail", name,
		    k->selector);
		goto out;
	}
	/* RFC 6376 3.6.1: k= defaults to rsa */
	if (!dnscmd_tag(txt, "k", &kv, &kn)) {
		kv = "rsa";
		kn = 3;
	}
	if (kn != strlen(type) || strncasecmp(kv, type, kn) != 0) {
		dnscmd_err(d, "DKIM: %s has k=%.*s but %s is an %s "
		    "key", name, (int)kn, kv, k->file, type);
		goto out;
	}
	if (!dnscmd_same_b64(pv, pn, op, opn)) {
		dnscmd_err(d, "DKIM key mismatch at %s: the "
		    "published p= is not the public half of %s", name, k->file);
		goto out;
	}
	dnscmd_ok(d, "DKIM: %s publishes the %s key of %s", name,
	    type, k->file);
	if (dnscmd_tag(txt, "t", &kv, &kn) && memchr(kv, 'y', kn) != NULL)
		dnscmd_warn(d, "DKIM: %s has t=y (testing): "
		    "verifiers may treat its signatures as absent", name);
out:
	buf_free(&ours);
	dns_answer_free(a);
}

static void
dnscmd_check_dkim(struct dnscmd *d)
{
	size_t i;

	if (d->signer == NULL) {
		dnscmd_warn(d, "DKIM: no [dkim sign %s] section: "
		    "mail from %s leaves unsigned (mxgate dkim keygen makes a "
		    "key)", d->domain, d->domain);
		return;
	}
	for (i = 0; i < d->signer->nkeys; i++)
		dnscmd_check_key(d, &d->signer->keys[i]);
}

/* ---- DMARC ---- */

/* RFC 9990 4: an address outside the domain's organizational domain
 * receives its reports only if its domain says so. */
static void
dnscmd_check_rua(struct dnscmd *d, const char *uri, size_t len)
{
	struct report_rua r, over[REPORT_RUA_MAX];
	struct dmarc_record rec;
	struct dns_answer *a = NULL;
	char one[512], name[600], *sb = NULL;
	size_t i, j, n;
	int found = 0;

	while (len > 0 && strchr(" \t", *uri)) {
		uri++;
		len--;
	}
	while (len > 0 && strchr(" \t", uri[len - 1]))
		len--;
	if (len == 0)
		return;
	if (len >= sizeof(one)) {
		dnscmd_warn(d, "DMARC: rua URI %.60s... is too long",
		    uri);
		return;
	}
	memcpy(one, uri, len);
	one[len] = '\0';
	if (len < 7 || strncasecmp(one, "mailto:", 7) != 0) {
		dnscmd_warn(d, "DMARC: rua URI %s is not mailto: "
		    "(reports go by mail: RFC 9990 3)", one);
		return;
	}
	if (report_rua_parse(one, &r, 1, NULL) != 1) {
		dnscmd_warn(d, "DMARC: rua URI %s is malformed", one);
		return;
	}
	if (dnscmd_same_org(d, d->domain, r.host))
		return;
	if ((size_t)snprintf(name, sizeof(name), "%s._report._dmarc.%s",
	    d->domain, r.host) >= sizeof(name) || strlen(name) > 253) {
		dnscmd_err(d, "DMARC: rua %s: the authorising name "
		    "%s._report._dmarc.%s is too long for DNS (RFC 9990 4)",
		    r.addr, d->domain, r.host);
		return;
	}
	a = dnscmd_ask(d, name, DNS_T_TXT);
	if (dnscmd_failed(a)) {
		dnscmd_err(d, "DMARC: TXT query for %s failed: %s",
		    name, dnscmd_why(a));
		goto out;
	}
	for (i = 0; i < a->n && !found; i++) {
		free(sb);
		if ((sb = malloc(a->rr[i].len + 4)) == NULL)
			break;
		if (dmarc_record_parse(a->rr[i].text, a->rr[i].len, &rec, sb,
		    a->rr[i].len + 4) == -1)
			continue;
		found = 1;
		/* RFC 9990 4: an override must stay on that host */
		n = report_rua_parse(rec.rua, over, REPORT_RUA_MAX, NULL);
		for (j = 0; j < n; j++)
			if (strcmp(over[j].host, r.host) != 0) {
				dnscmd_err(d, "DMARC: rua %s: the authorising "
				    "record at %s names another host (%s): "
				    "neither is used (RFC 9990 4)", r.addr,
				    name, over[j].host);
				goto out;
			}
	}
	if (!found)
		dnscmd_err(d, "DMARC: rua %s is outside %s and not "
		    "authorised: no v=DMARC1 record at %s (RFC 9990 4), so "
		    "receivers send it no reports", r.addr, d->domain, name);
	else
		dnscmd_ok(d, "DMARC: rua %s is outside %s and "
		    "authorised by %s", r.addr, d->domain, name);
out:
	free(sb);
	dns_answer_free(a);
}

static void
dnscmd_dmarc_record(struct dnscmd *d, const char *text,
    const struct dmarc_record *r)
{
	const char *p, *comma;
	int none = r->p == DMARC_P_NONE || r->p == DMARC_P_UNSET;

	dnscmd_ok(d, "DMARC: %.*s%s", DNSCMD_CLIP(text), text,
	    DNSCMD_MORE(text));
	if (none && *r->rua == '\0')
		dnscmd_warn(d, "DMARC: p=none and no rua: you "
		    "learn nothing");
	else if (none)
		dnscmd_ok(d, "DMARC: p=none with reports: read them "
		    "(mxgate report summary), then move on to p=quarantine and "
		    "p=reject once they look clean");
	else if (*r->rua == '\0')
		dnscmd_warn(d, "DMARC: p=%s and no rua: you get no "
		    "aggregate reports", dmarc_policy_name(r->p));
	else
		dnscmd_ok(d, "DMARC: p=%s", dmarc_policy_name(r->p));
	/* RFC 7489 6.3 pct=; RFC 9989 4.7 t=y (pct=0 is the same) */
	if (r->pct >= 0 && r->pct < 100)
		dnscmd_warn(d, "DMARC: pct=%d: the policy applies "
		    "to part of the failing mail only", r->pct);
	else if (r->testing)
		dnscmd_warn(d, "DMARC: t=y (testing): receivers "
		    "apply one policy level less than p=");
	for (p = r->rua; *p != '\0'; p = *comma ? comma + 1 : comma) {
		comma = p + strcspn(p, ",");
		dnscmd_check_rua(d, p, (size_t)(comma - p));
	}
}

/* "v", "=", "DMARC" in any case and spacing: meant as a DMARC record. */
static int
dnscmd_dmarc_like(const char *t)
{
	t += strspn(t, " \t");
	if (*t != 'v' && *t != 'V')
		return 0;
	t += 1 + strspn(t + 1, " \t");
	if (*t != '=')
		return 0;
	t += 1 + strspn(t + 1, " \t");
	return strncasecmp(t, "DMARC", 5) == 0;
}

static void
dnscmd_check_dmarc(struct dnscmd *d)
{
	struct dmarc_record r, one;
	struct dns_answer *a;
	char name[300], *sb = NULL, *keep = NULL;
	const char *text = NULL;
	size_t i, nvalid = 0;
	int rc, keep_rc = 0;

	memset(&r, 0, sizeof(r));
	snprintf(name, sizeof(name), "_dmarc.%s", d->domain);
	a = dnscmd_ask(d, name, DNS_T_TXT);
	if (dnscmd_failed(a)) {
		dnscmd_err(d, "DMARC: TXT query for %s failed: %s",
		    name, dnscmd_why(a));
		goto out;
	}
	for (i = 0; i < a->n; i++) {
		free(sb);
		if ((sb = malloc(a->rr[i].len + 4)) == NULL)
			goto out;
		rc = dmarc_record_parse(a->rr[i].text, a->rr[i].len, &one, sb,
		    a->rr[i].len + 4);
		if (rc != -1) {
			/* the strings of the first one stay in keep */
			if (nvalid++ == 0) {
				r = one;
				keep = sb;
				sb = NULL;
				keep_rc = rc;
				text = a->rr[i].text;
			}
			continue;
		}
		/* meant as DMARC, yet receivers discard it */
		if (dnscmd_dmarc_like(a->rr[i].text))
			dnscmd_err(d, "DMARC: unparseable record at %s: "
			    "\"%.*s%s\" (receivers ignore it; it must start "
			    "with v=DMARC1;)", name, DNSCMD_CLIP(a->rr[i].text),
			    a->rr[i].text, DNSCMD_MORE(a->rr[i].text));
	}
	if (nvalid == 0) {
		dnscmd_err(d, "DMARC: no record at %s: receivers "
		    "apply no policy", name);
		goto out;
	}
	if (nvalid > 1) {
		dnscmd_err(d, "DMARC: %zu records at %s: receivers "
		    "ignore them all (RFC 9989 4.10)", nvalid, name);
		goto out;
	}
	if (keep_rc == -2) {
		dnscmd_err(d, "DMARC: the record at %s has a bad p=, "
		    "sp= or np= and no valid rua=: receivers ignore it", name);
		goto out;
	}
	dnscmd_dmarc_record(d, text, &r);
out:
	free(sb);
	free(keep);
	dns_answer_free(a);
}

/* ---- the two commands ---- */

static int
dnscmd_open(struct dnscmd *d, const char *domain, const char *path)
{
	struct buf errors = { 0 };
	char err[256];

	memset(d, 0, sizeof(*d));
	if (orgdomain_ascii(domain, d->domain, sizeof(d->domain)) == -1 ||
	    strchr(d->domain, '.') == NULL) {
		fprintf(stderr, "mxgate: '%s' is not a domain name\n", domain);
		return 2;
	}
	if ((d->cfg = config_load(path, &errors)) == NULL) {
		fputs(errors.data ? errors.data : "configuration failed\n",
		    stderr);
		buf_free(&errors);
		return 1;
	}
	buf_free(&errors);
	d->accepted = config_accepts_domain(d->cfg, d->domain);
	d->signer = config_signer_for(d->cfg, d->domain);
	if ((d->psl = orgdomain_psl_load(d->cfg->dmarc_psl_file, err,
	    sizeof(err))) == NULL)
		fprintf(stderr, "mxgate: warning: public suffix list: %s "
		    "(organizational domains taken as the names)\n", err);
	if (!d->accepted && d->signer == NULL)
		fprintf(stderr, "mxgate: warning: %s is not in [domains] "
		    "accept and has no [dkim sign %s] section in %s: mxgate "
		    "neither receives nor signs its mail\n", d->domain,
		    d->domain, path);
	return 0;
}

static void
dnscmd_close(struct dnscmd *d)
{
	if (d->res)
		dns_resolver_free(d->res);
	if (d->base)
		event_base_free(d->base);
	orgdomain_psl_free(d->psl);
	config_free(d->cfg);
}

/* The DKIM part of `records`. */
static int
dnscmd_records_dkim(struct dnscmd *d, const char *path)
{
	const struct config_sign_key *k;
	struct buf txt = { 0 };
	size_t i;

	if (d->signer == NULL) {
		printf("; DKIM (RFC 6376): %s has no [dkim sign %s] section, "
		    "so mxgate does not sign\n"
		    "; its mail. To sign it, make a key:\n"
		    ";   mxgate dkim keygen --domain %s --selector SELECTOR "
		    "--type ed25519 --out FILE\n"
		    "; add [dkim sign %s] with keys = SELECTOR:FILE (a "
		    "second rsa key for dual\n"
		    "; signing), and run this command again for its "
		    "record.\n\n", path, d->domain, d->domain, d->domain);
		return 0;
	}
	for (i = 0; i < d->signer->nkeys; i++) {
		k = &d->signer->keys[i];
		buf_reset(&txt);
		if (k->key == NULL || dkim_key_record(k->key, &txt) == -1) {
			fprintf(stderr, "mxgate: %s: no public key\n", k->file);
			buf_free(&txt);
			return -1;
		}
		printf("; DKIM (RFC 6376): the public half of %s (%s), "
		    "selector %s:\n"
		    "; receivers verify mxgate's signatures for %s with it.\n",
		    k->file, dkim_key_algorithm(k->key), k->selector,
		    d->domain);
		dkimcmd_zone_txt(stdout, k->selector, d->domain, txt.data,
		    txt.len);
		printf("\n");
	}
	buf_free(&txt);
	return 0;
}

static int
dnscmd_records(const char *domain, const char *path)
{
	struct dnscmd d;
	const char *host, *at, *rdom = NULL;
	int rc, ret = 1;

	if ((rc = dnscmd_open(&d, domain, path)) != 0)
		return rc;
	host = d.cfg->hostname;
	printf("; MX: mxgate (%s) receives the mail for %s.\n", host, d.domain);
	printf("%s. IN MX 10 %s.\n\n", d.domain, host);
	printf("; SPF (RFC 7208): mx covers mxgate as long as it is the MX, "
	    "a:%s covers it\n"
	    "; as the outbound relay. List your other senders (include:, "
	    "ip4:) before -all;\n"
	    "; use ~all while testing.\n", host);
	printf("%s. IN TXT \"v=spf1 mx a:%s -all\"\n\n", d.domain, host);
	if (dnscmd_records_dkim(&d, path) == -1)
		goto out;
	at = strrchr(d.cfg->report_email, '@');
	if (at != NULL)
		rdom = at + 1;
	printf("; DMARC (RFC 9989): start with p=none and read the reports "
	    "(mxgate report summary);\n"
	    "; once they show only your own senders, move to p=quarantine, "
	    "then p=reject.\n");
	if (rdom != NULL && dnscmd_same_org(&d, d.domain, rdom))
		printf("_dmarc.%s. IN TXT \"v=DMARC1; p=none; "
		    "rua=mailto:%s\"\n", d.domain, d.cfg->report_email);
	else
		printf("_dmarc.%s. IN TXT \"v=DMARC1; p=none; "
		    "rua=mailto:dmarc-reports@%s\"\n", d.domain, d.domain);
	if (rdom != NULL && !dnscmd_same_org(&d, d.domain, rdom)) {
		printf("\n; [report] email (%s) is in another domain. To have "
		    "%s's reports\n"
		    "; sent there too, add mailto:%s to rua= above and "
		    "publish this in\n"
		    "; %s's zone (RFC 9990 4: it agrees to receive them):\n",
		    d.cfg->report_email, d.domain, d.cfg->report_email, rdom);
		printf("%s._report._dmarc.%s. IN TXT \"v=DMARC1\"\n", d.domain,
		    rdom);
	}
	ret = 0;
out:
	dnscmd_close(&d);
	return ret;
}

static int
dnscmd_check(const char *domain, const char *path, const char *server)
{
	struct dnscmd d;
	struct dns_config dc;
	char err[256];
	int rc;

	if ((rc = dnscmd_open(&d, domain, path)) != 0)
		return rc;
	/* the resolver [dns] configures, or the one server asked for */
	memset(&dc, 0, sizeof(dc));
	dc.servers = (const char *const *)d.cfg->dns_servers;
	dc.nservers = d.cfg->ndns_servers;
	if (server != NULL) {
		dc.servers = &server;
		dc.nservers = 1;
	}
	dc.timeout_ms = d.cfg->dns_timeout_ms;
	dc.tries = 2;
	if ((d.base = event_base_new()) == NULL ||
	    (d.res = dns_resolver_new(d.base, &dc, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxgate: resolver: %s\n", d.base ? err :
		    "out of memory");
		dnscmd_close(&d);
		return 1;
	}
	dnscmd_check_mx(&d);
	dnscmd_check_spf(&d);
	dnscmd_check_dkim(&d);
	dnscmd_check_dmarc(&d);
	printf("%u error%s, %u warning%s\n", d.errors, d.errors == 1 ? "" : "s",
	    d.warnings, d.warnings == 1 ? "" : "s");
	rc = d.errors > 0 ? 1 : 0;
	dnscmd_close(&d);
	return rc;
}

int
dnscmd_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dns", required_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = DNSCMD_CONFIG, *server = NULL, *sub;
	int ch, check;

	if (argc < 2 || (strcmp(argv[1], "records") != 0 &&
	    strcmp(argv[1], "check") != 0)) {
		dnscmd_usage(stderr);
		return 2;
	}
	sub = argv[1];
	check = strcmp(sub, "check") == 0;
	argc--;
	argv++;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'D':
			if (!check)
				goto usage;
			server = optarg;
			break;
		default:
			goto usage;
		}
	}
	if (optind + 1 != argc)
		goto usage;
	if (check)
		return dnscmd_check(argv[optind], path, server);
	return dnscmd_records(argv[optind], path);
usage:
	dnscmd_usage(stderr);
	return 2;
}
