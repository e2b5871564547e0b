/*
 * auth/dmarc.c: the DMARC engine (RFC 9989; RFC 7489 discovery by the
 * Public Suffix List as an option).
 *
 * The evaluation is a function of the answers in hand: evaluate() runs
 * from the start after every answer and reads DNS through ask(), which
 * hands out what is known and files a question for what is not. A part
 * that lacks an answer says so (ST_WAIT) and independent parts go on, so
 * their questions go out together; nothing is decided until every part
 * the decision needs is in. Each (name, type) is asked once, and at most
 * DMARC_MAX_QUESTIONS are asked.
 */
#include "auth/dmarc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/orgdomain.h"

#define NAME_BUF	256
#define DOMAIN_MAX	246	/* "_dmarc." + domain within 253 octets */
#define WALK_MAX	8	/* RFC 9989 4.10: at most eight queries */
#define WALK_SHORTEN	7	/* RFC 9989 4.10 step 4: "until 7 labels
				 * remain" */

enum st { ST_OK, ST_WAIT, ST_FAIL };

struct dmarc_q {
	char name[NAME_BUF];
	enum dns_type type;
	int asked, done;
	enum dns_status status;
	int nrec;		/* TXT: records starting "v=DMARC1" */
	int rc;			/* dmarc_record_parse of that one: 0, -2 */
	struct dmarc_record rec;
	char *strbuf;
};

struct dmarc_id {
	char domain[NAME_BUF];	/* A-labels; "" when not a domain name */
	char org[NAME_BUF];	/* PSL mode: its Organizational Domain */
	enum dkim_result result;
	int partial;
};

struct dmarc {
	enum dmarc_discovery mode;
	char author[NAME_BUF];
	/* PSL mode: the Organizational Domains, looked up by dmarc_new (the
	 * list is the caller's, and a reload may free it while the answers
	 * are awaited) */
	char psl_org[NAME_BUF];		/* the author's */
	enum spf_result spf_result;
	char spf_domain[NAME_BUF];
	char spf_org[NAME_BUF];
	struct dmarc_id *dkim;
	size_t ndkim;
	int partial_counts;

	struct dmarc_q q[DMARC_MAX_QUESTIONS];
	size_t nq;
	int aborted;
	char abort_why[128];

	int done;
	struct dmarc_outcome out;
	struct dmarc_record rec;
	char reason[512];
	char policy_domain[NAME_BUF];
	char org_domain[NAME_BUF];
	char dkim_domain[NAME_BUF];
};

/* The first thing that went wrong, for the reason. */
struct why {
	char text[400];
};

/* A tree walk's findings; the names point into its start. */
struct walk {
	const char *org;		/* the Organizational Domain */
	const struct dmarc_q *at_org;	/* its record, or NULL */
	const struct dmarc_q *psd;	/* the psd=y record that ended it */
	const char *psd_dom;
};

static void __attribute__((format(printf, 2, 3)))
why_set(struct why *w, const char *fmt, ...)
{
	va_list ap;

	if (w->text[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(w->text, sizeof(w->text), fmt, ap);
	va_end(ap);
}

static int
dns_failed(enum dns_status s)
{
	return s == DNS_SERVFAIL || s == DNS_TIMEOUT || s == DNS_ERROR;
}

static const char *
failed_name(enum dns_status s)
{
	return s == DNS_TIMEOUT ? "DNS timeout" : s == DNS_SERVFAIL ?
	    "DNS servfail" : "DNS error";
}

/* ---- domain names: lower case A-labels, no trailing dot ---- */

static int
norm(const char *in, char *out)
{
	out[0] = '\0';
	if (in == NULL || *in == '\0' ||
	    orgdomain_ascii(in, out, NAME_BUF) == -1 ||
	    strlen(out) > DOMAIN_MAX) {
		out[0] = '\0';
		return -1;
	}
	return 0;
}

static size_t
labels(const char *s)
{
	size_t n = 1;

	for (; *s != '\0'; s++)
		if (*s == '.')
			n++;
	return n;
}

/* The last k labels of s (s itself when it has no more). */
static const char *
suffix(const char *s, size_t k)
{
	size_t n = labels(s);

	for (; n > k; n--)
		s = strchr(s, '.') + 1;
	return s;
}

/* 1 when x is o or a name below it. */
static int
under(const char *x, const char *o)
{
	size_t lx = strlen(x), lo = strlen(o);

	if (lx == lo)
		return strcmp(x, o) == 0;
	return lx > lo && x[lx - lo - 1] == '.' && strcmp(x + lx - lo, o) == 0;
}

/* ---- questions ---- */

static enum st
ask(struct dmarc *d, const char *name, enum dns_type type,
    const struct dmarc_q **q_r, struct why *w)
{
	struct dmarc_q *q;
	size_t i;

	for (i = 0; i < d->nq; i++)
		if (d->q[i].type == type && strcmp(d->q[i].name, name) == 0) {
			*q_r = &d->q[i];
			return d->q[i].done ? ST_OK : ST_WAIT;
		}
	if (d->aborted) {
		why_set(w, "no answer for %s", name);
		return ST_FAIL;
	}
	if (d->nq == DMARC_MAX_QUESTIONS) {
		why_set(w, "too many DNS questions (over %d) at %s",
		    DMARC_MAX_QUESTIONS, name);
		return ST_FAIL;
	}
	q = &d->q[d->nq++];
	memset(q, 0, sizeof(*q));
	snprintf(q->name, sizeof(q->name), "%s", name);
	q->type = type;
	*q_r = q;
	return ST_WAIT;
}

/* The DMARC record at _dmarc.dom: *rec_r, or NULL when there is none
 * (RFC 9989 4.10 steps 2 and 6: no single "v=DMARC1" record). */
static enum st
txt_at(struct dmarc *d, const char *dom, const struct dmarc_q **rec_r,
    struct why *w)
{
	char name[NAME_BUF];
	const struct dmarc_q *q;
	enum st st;

	*rec_r = NULL;
	snprintf(name, sizeof(name), "_dmarc.%s", dom);
	if ((st = ask(d, name, DNS_T_TXT, &q, w)) != ST_OK)
		return st;
	if (dns_failed(q->status)) {
		why_set(w, "%s at %s", failed_name(q->status), name);
		return ST_FAIL;
	}
	if (q->nrec == 1)
		*rec_r = q;
	return ST_OK;
}

/*
 * RFC 9989 4.10 DNS Tree Walk from start, and the choice of the
 * Organizational Domain among its findings (4.10.2).
 */
static enum st
walk(struct dmarc *d, const char *start, struct walk *wk, struct why *w)
{
	const struct dmarc_q *rec[WALK_MAX];
	const char *dom[WALK_MAX], *name = start;
	size_t n = 0, i, k;
	enum st st;

	memset(wk, 0, sizeof(*wk));
	for (i = 0; i < WALK_MAX; i++) {
		if ((st = txt_at(d, name, &rec[n], w)) != ST_OK)
			return st;
		if (rec[n] != NULL) {
			dom[n] = name;
			/* steps 2 and 6: a record with psd=n or psd=y: stop */
			if (rec[n++]->rec.psd != -1)
				break;
		}
		/* steps 4 and 7: drop the left-most label; from eight
		 * labels or more, drop labels until seven remain */
		if ((k = labels(name)) == 1)
			break;
		name = suffix(name, k - 1 < WALK_SHORTEN ? k - 1 : WALK_SHORTEN);
	}
	/* 4.10.2: from the longest name to the shortest */
	for (i = 0; i < n && wk->org == NULL; i++) {
		if (rec[i]->rec.psd == 0) {
			/* 1: psd=n is the Organizational Domain */
			wk->org = dom[i];
		} else if (rec[i]->rec.psd == 1 && dom[i] != start) {
			/* 2: psd=y elsewhere than the start: one label
			 * below it */
			wk->org = suffix(start, labels(dom[i]) + 1);
			wk->psd = rec[i];
			wk->psd_dom = dom[i];
		}
	}
	/* 3: the record with the fewest labels; none: the start */
	if (wk->org == NULL)
		wk->org = n > 0 ? dom[n - 1] : start;
	for (i = 0; i < n; i++)
		if (strcmp(dom[i], wk->org) == 0)
			wk->at_org = rec[i];
	return ST_OK;
}

/* RFC 7489 3.2 by the list into out[NAME_BUF]; a public suffix is its
 * own. */
static void
psl_org_of(const struct orgdomain_psl *psl, const char *x, char *out)
{
	if (*x == '\0' || orgdomain_psl(psl, x, out, NAME_BUF) == -1)
		snprintf(out, NAME_BUF, "%s", x);
}

/* The Organizational Domain of x into out[NAME_BUF]. */
static enum st
org_of(struct dmarc *d, const char *x, char *out, struct why *w)
{
	struct walk wk;
	enum st st;
	const char *o = x;
	size_t i;

	if (d->mode == DMARC_DISCOVERY_PSL) {
		/* what dmarc_new found for the identifier */
		if (strcmp(x, d->author) == 0)
			o = d->psl_org;
		else if (strcmp(x, d->spf_domain) == 0)
			o = d->spf_org;
		else
			for (i = 0; i < d->ndkim; i++)
				if (strcmp(x, d->dkim[i].domain) == 0) {
					o = d->dkim[i].org;
					break;
				}
		if (o != out)
			snprintf(out, NAME_BUF, "%s", o);
		return ST_OK;
	}
	if ((st = walk(d, x, &wk, w)) == ST_OK)
		snprintf(out, NAME_BUF, "%s", wk.org);
	return st;
}

/* Identifier alignment of x with the author domain (RFC 9989 3.2.10). */
static enum st
aligned(struct dmarc *d, const char *x, enum dmarc_align mode, int *al,
    struct why *w)
{
	char ox[NAME_BUF];
	enum st st;

	*al = 0;
	if (*x == '\0')
		return ST_OK;
	/* identical: strict, and relaxed with no lookup (4.10.2 note) */
	if (strcmp(x, d->author) == 0) {
		*al = 1;
		return ST_OK;
	}
	/* relaxed needs a shared Organizational Domain, which is a
	 * common parent: none without a common top-level label */
	if (mode == DMARC_ALIGN_STRICT ||
	    strcmp(suffix(x, 1), suffix(d->author, 1)) != 0)
		return ST_OK;
	if ((st = org_of(d, d->author, d->org_domain, w)) != ST_OK)
		return st;
	/* an Organizational Domain is its domain or a parent of it, so
	 * x can only share the author's if it lies below that */
	if (!under(x, d->org_domain))
		return ST_OK;
	if ((st = org_of(d, x, ox, w)) != ST_OK)
		return st;
	*al = strcmp(ox, d->org_domain) == 0;
	return ST_OK;
}

/*
 * Policy discovery: the record at the author domain, else (RFC 9989
 * 4.10.1) the one at its Organizational Domain, else the PSD's that ended
 * the walk; in PSL mode (RFC 7489 6.6.3) the one at the PSL
 * Organizational Domain.
 */
static enum st
discover(struct dmarc *d, const struct dmarc_q **pol, const char **dom_r,
    struct why *w)
{
	struct walk wk;
	enum st st;

	*dom_r = d->author;
	if ((st = txt_at(d, d->author, pol, w)) != ST_OK || *pol != NULL)
		return st;
	if (d->mode == DMARC_DISCOVERY_PSL) {
		if (strcmp(d->psl_org, d->author) == 0)
			return ST_OK;
		*dom_r = d->psl_org;
		return txt_at(d, d->psl_org, pol, w);
	}
	if ((st = walk(d, d->author, &wk, w)) != ST_OK)
		return st;
	snprintf(d->org_domain, sizeof(d->org_domain), "%s", wk.org);
	if (wk.at_org != NULL) {
		*pol = wk.at_org;
		*dom_r = wk.org;
	} else if (wk.psd != NULL) {
		*pol = wk.psd;
		*dom_r = wk.psd_dom;
	}
	return ST_OK;
}

/*
 * Does the author domain exist (RFC 9989 3.2.13, A.4)? Non-existent when
 * A, AAAA and MX are all NXDOMAIN (RFC 9091 3.4). A first: most domains
 * answer it, and then one question settles it.
 */
static enum st
exists(struct dmarc *d, int *nonexist, struct why *w)
{
	static const enum dns_type types[] = { DNS_T_A, DNS_T_AAAA, DNS_T_MX };
	const struct dmarc_q *q;
	enum st st, all = ST_OK;
	size_t i;

	*nonexist = 0;
	for (i = 0; i < 3; i++) {
		if ((st = ask(d, d->author, types[i], &q, w)) == ST_FAIL)
			return ST_FAIL;
		if (st == ST_WAIT) {
			if (i == 0)
				return ST_WAIT;
			all = ST_WAIT;
			continue;
		}
		if (q->status == DNS_OK || q->status == DNS_NODATA)
			return ST_OK;
		if (q->status != DNS_NXDOMAIN) {
			why_set(w, "%s at %s (existence test)",
			    failed_name(q->status), d->author);
			return ST_FAIL;
		}
	}
	if (all == ST_WAIT)
		return ST_WAIT;
	*nonexist = 1;
	return ST_OK;
}

static enum dmarc_policy
lower_policy(enum dmarc_policy p)
{
	return p == DMARC_P_REJECT ? DMARC_P_QUARANTINE : DMARC_P_NONE;
}

/* sp=, else p=, else none (RFC 9989 4.7 sp, 4.10.1). */
static enum dmarc_policy
sub_policy(const struct dmarc_record *r)
{
	if (r->sp != DMARC_P_UNSET)
		return r->sp;
	return r->p != DMARC_P_UNSET ? r->p : DMARC_P_NONE;
}

static void __attribute__((format(printf, 4, 5)))
finish(struct dmarc *d, enum dmarc_result res, int nonexist,
    const char *fmt, ...)
{
	const struct dmarc_record *r = d->out.record;
	enum dmarc_policy req = DMARC_P_NONE;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
	va_end(ap);
	if (r != NULL) {
		/* RFC 9989 4.10.1: p= at the author domain; below the
		 * policy domain sp=, or np= when the author domain does not
		 * exist (np= falls back to sp=, then p=; 4.7 np) */
		if (strcmp(d->policy_domain, d->author) == 0)
			req = r->p != DMARC_P_UNSET ? r->p : DMARC_P_NONE;
		else if (nonexist && r->np != DMARC_P_UNSET)
			req = r->np;
		else
			req = sub_policy(r);
	}
	d->out.result = res;
	d->out.requested = req;
	/* RFC 9989 4.7 t=y: "one level below the specified policy" */
	d->out.effective = r != NULL && r->testing ? lower_policy(req) : req;
	d->done = 1;
}

static int
counts(const struct dmarc *d, const struct dmarc_id *s, enum dkim_result r)
{
	/* a signature leaving part of the body unsigned (l=) counts only
	 * when configured so */
	return s->result == r && (!s->partial || d->partial_counts);
}

/* Would an SPF or DKIM temperror have aligned? ST_FAIL counts as yes. */
static enum st
uncertain(struct dmarc *d, int *unc)
{
	struct why w = { "" };
	enum st st, all = ST_OK;
	size_t i;
	int al;

	*unc = 0;
	if (d->spf_result == SPF_TEMPERROR) {
		st = aligned(d, d->spf_domain, d->rec.aspf, &al, &w);
		*unc |= st == ST_FAIL || (st == ST_OK && al);
		all = st == ST_WAIT ? ST_WAIT : all;
	}
	for (i = 0; i < d->ndkim && !*unc; i++) {
		if (!counts(d, &d->dkim[i], DKIM_TEMPERROR))
			continue;
		st = aligned(d, d->dkim[i].domain, d->rec.adkim, &al, &w);
		*unc |= st == ST_FAIL || (st == ST_OK && al);
		all = st == ST_WAIT ? ST_WAIT : all;
	}
	return *unc ? ST_OK : all;
}

static void
evaluate(struct dmarc *d)
{
	const struct dmarc_q *pol;
	const char *poldom, *dkim_dom = NULL;
	struct why w = { "" };
	enum st st, sspf = ST_OK, sdkim, su, sx = ST_OK;
	int spf_al = 0, al, unc = 0, nonexist = 0, dwait = 0, dfail = 0;
	size_t i;

	if (d->done)
		return;
	if ((st = discover(d, &pol, &poldom, &w)) == ST_WAIT)
		return;
	if (st == ST_FAIL) {
		finish(d, DMARC_TEMPERROR, 0, "%s%s%s", d->aborted ?
		    d->abort_why : "", d->aborted ? ": " : "", w.text);
		return;
	}
	if (pol == NULL) {
		/* RFC 9989 4.10.1: no record, no DMARC */
		finish(d, DMARC_NONE, 0, "no policy record");
		return;
	}
	snprintf(d->policy_domain, sizeof(d->policy_domain), "%s", poldom);
	if (pol->rc != 0) {
		/* 4.10.1: bad policy, no valid rua=: no DMARC processing */
		finish(d, DMARC_NONE, 0, "unusable policy record at %s "
		    "(invalid policy, no valid rua=)", pol->name);
		return;
	}
	d->rec = pol->rec;
	d->out.record = &d->rec;

	/* RFC 9989 4.4.2: an SPF pass aligned; 4.4.1: any DKIM pass
	 * aligned (the first in signature order is reported) */
	if (d->spf_result == SPF_PASS)
		sspf = aligned(d, d->spf_domain, d->rec.aspf, &spf_al, &w);
	for (i = 0; i < d->ndkim && dkim_dom == NULL; i++) {
		if (!counts(d, &d->dkim[i], DKIM_PASS))
			continue;
		st = aligned(d, d->dkim[i].domain, d->rec.adkim, &al, &w);
		if (st == ST_OK && al)
			dkim_dom = d->dkim[i].domain;
		dwait |= st == ST_WAIT;
		dfail |= st == ST_FAIL;
	}
	sdkim = dkim_dom != NULL ? ST_OK : dwait ? ST_WAIT : dfail ? ST_FAIL :
	    ST_OK;
	if (sspf == ST_WAIT || sdkim == ST_WAIT)
		return;
	spf_al = sspf == ST_OK && spf_al;
	d->out.spf_aligned = spf_al;
	d->out.dkim_aligned = dkim_dom != NULL;
	snprintf(d->dkim_domain, sizeof(d->dkim_domain), "%s",
	    dkim_dom != NULL ? dkim_dom : "");
	if (spf_al || dkim_dom != NULL) {
		/* RFC 9989 5.3.5 */
		if (dkim_dom != NULL && spf_al)
			finish(d, DMARC_PASS, 0, "aligned DKIM pass d=%s, SPF "
			    "pass aligned", dkim_dom);
		else if (dkim_dom != NULL)
			finish(d, DMARC_PASS, 0, "aligned DKIM pass d=%s",
			    dkim_dom);
		else
			finish(d, DMARC_PASS, 0, "SPF pass aligned");
		return;
	}
	if (sspf == ST_FAIL || sdkim == ST_FAIL) {
		/* 5.3.6: an alignment that could not be learnt */
		finish(d, DMARC_TEMPERROR, 0, "%s%s%s", d->aborted ?
		    d->abort_why : "", d->aborted ? ": " : "", w.text);
		return;
	}
	su = uncertain(d, &unc);
	/* np= only when it could change the policy */
	if (strcmp(poldom, d->author) != 0 && d->rec.np != DMARC_P_UNSET &&
	    d->rec.np != sub_policy(&d->rec))
		sx = exists(d, &nonexist, &w);
	if (su == ST_WAIT || sx == ST_WAIT)
		return;
	if (sx == ST_FAIL) {
		finish(d, DMARC_TEMPERROR, 0, "%s%s%s", d->aborted ?
		    d->abort_why : "", d->aborted ? ": " : "", w.text);
		return;
	}
	d->out.uncertain = unc;
	finish(d, DMARC_FAIL, nonexist, "no aligned identifier%s%s",
	    unc ? "; a temperror might have aligned" : "",
	    nonexist ? "; author domain does not exist" : "");
}

struct dmarc *
dmarc_new(const struct dmarc_params *p)
{
	struct dmarc *d;
	size_t i;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	d->mode = p->discovery;
	d->spf_result = p->spf_result;
	d->partial_counts = p->dkim_partial_counts;
	d->out.reason = d->reason;
	d->out.author_domain = d->author;
	d->out.policy_domain = d->policy_domain;
	d->out.org_domain = d->org_domain;
	d->out.dkim_aligned_domain = d->dkim_domain;
	d->out.discovery = d->mode == DMARC_DISCOVERY_PSL ? "psl" : "treewalk";
	d->out.requested = d->out.effective = DMARC_P_NONE;
	norm(p->spf_domain, d->spf_domain);
	if (p->ndkim > 0) {
		if ((d->dkim = calloc(p->ndkim, sizeof(*d->dkim))) == NULL) {
			free(d);
			return NULL;
		}
		d->ndkim = p->ndkim;
	}
	for (i = 0; i < d->ndkim; i++) {
		norm(p->dkim[i].domain, d->dkim[i].domain);
		d->dkim[i].result = p->dkim[i].result;
		d->dkim[i].partial = p->dkim[i].body_partial;
	}
	if (p->from_problem != NULL || p->author_domain == NULL) {
		/* RFC 9989 5.3.1: no single Author Domain, no DMARC */
		finish(d, DMARC_PERMERROR, 0, "%s", p->from_problem != NULL ?
		    p->from_problem : "no author domain");
		return d;
	}
	/* 5.3.1: U-labels become A-labels */
	if (norm(p->author_domain, d->author) == -1) {
		finish(d, DMARC_PERMERROR, 0, "invalid author domain");
		return d;
	}
	if (d->mode == DMARC_DISCOVERY_PSL) {
		psl_org_of(p->psl, d->author, d->psl_org);
		psl_org_of(p->psl, d->spf_domain, d->spf_org);
		for (i = 0; i < d->ndkim; i++)
			psl_org_of(p->psl, d->dkim[i].domain, d->dkim[i].org);
		snprintf(d->org_domain, sizeof(d->org_domain), "%s",
		    d->psl_org);
	}
	evaluate(d);
	return d;
}

void
dmarc_free(struct dmarc *d)
{
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < d->nq; i++)
		free(d->q[i].strbuf);
	free(d->dkim);
	free(d);
}

const char *
dmarc_next_query(struct dmarc *d, enum dns_type *type_r)
{
	size_t i;

	if (d->done)
		return NULL;
	for (i = 0; i < d->nq; i++)
		if (!d->q[i].asked) {
			d->q[i].asked = 1;
			*type_r = d->q[i].type;
			return d->q[i].name;
		}
	return NULL;
}

/* Keeps the TXT answer's one DMARC record, if exactly one (4.10 step 2). */
static void
keep_txt(struct dmarc_q *q, const struct dns_answer *a)
{
	struct dmarc_record r;
	char *buf;
	size_t i;
	int rc;

	for (i = 0; i < a->n; i++) {
		if (a->rr[i].text == NULL || a->rr[i].len > DMARC_RECORD_MAX)
			continue;
		if ((buf = malloc(a->rr[i].len + 4)) == NULL) {
			q->status = DNS_ERROR;
			break;
		}
		rc = dmarc_record_parse(a->rr[i].text, a->rr[i].len, &r, buf,
		    a->rr[i].len + 4);
		if (rc == -1 || ++q->nrec > 1) {
			free(buf);
			continue;
		}
		q->rec = r;
		q->rc = rc;
		q->strbuf = buf;
	}
	if (q->nrec != 1 || q->status != DNS_OK) {
		free(q->strbuf);
		q->strbuf = NULL;
		q->nrec = q->status != DNS_OK ? 0 : q->nrec;
	}
}

static int
name_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

void
dmarc_answer(struct dmarc *d, const char *name, enum dns_type type,
    const struct dns_answer *a)
{
	struct dmarc_q *q;
	size_t i;

	if (d->done || name == NULL || a == NULL)
		return;
	for (i = 0; i < d->nq; i++) {
		q = &d->q[i];
		if (q->done || q->type != type || !name_eq(q->name, name))
			continue;
		q->done = q->asked = 1;
		q->status = a->status;
		if (type == DNS_T_TXT && a->status == DNS_OK)
			keep_txt(q, a);
		break;
	}
	evaluate(d);
}

void
dmarc_abort(struct dmarc *d, const char *why)
{
	size_t i;

	if (d->done)
		return;
	d->aborted = 1;
	snprintf(d->abort_why, sizeof(d->abort_why), "%s",
	    why != NULL ? why : "aborted");
	for (i = 0; i < d->nq; i++)
		if (!d->q[i].done) {
			d->q[i].done = d->q[i].asked = 1;
			d->q[i].status = DNS_TIMEOUT;
		}
	evaluate(d);
	/* every question is answered now: evaluate cannot wait */
	if (!d->done)
		finish(d, DMARC_TEMPERROR, 0, "%s", d->abort_why);
}

int
dmarc_done(const struct dmarc *d)
{
	return d->done;
}

const struct dmarc_outcome *
dmarc_outcome(const struct dmarc *d)
{
	return &d->out;
}

const char *
dmarc_result_name(enum dmarc_result r)
{
	static const char *names[] = {
		"none", "pass", "fail", "temperror", "permerror",
	};

	return (size_t)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}

const char *
dmarc_policy_name(enum dmarc_policy p)
{
	static const char *names[] = { "", "none", "quarantine", "reject" };

	return (size_t)p < sizeof(names) / sizeof(names[0]) ? names[p] : "?";
}

/* s without leading and trailing dots. */
static void
bare(const char *s, const char **p_r, size_t *n_r)
{
	size_t n;

	while (*s == '.')
		s++;
	n = strlen(s);
	while (n > 0 && s[n - 1] == '.')
		n--;
	*p_r = s;
	*n_r = n;
}

static int
same(const char *a, const char *b)
{
	const char *pa, *pb;
	size_t na, nb;

	bare(a, &pa, &na);
	bare(b, &pb, &nb);
	return na > 0 && na == nb && strncasecmp(pa, pb, na) == 0;
}

int
dmarc_aligned(const char *a, const char *b, const char *org_a,
    const char *org_b, enum dmarc_align mode)
{
	if (a == NULL || b == NULL)
		return 0;
	if (same(a, b))
		return 1;
	if (mode == DMARC_ALIGN_STRICT || org_a == NULL || org_b == NULL)
		return 0;
	return same(org_a, org_b);
}
