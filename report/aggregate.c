/*
 * report/aggregate.c: one DMARC aggregate report (RFC 9990) as XML: the
 * values checked against the schema, the order of the DKIM results, the
 * writer. The gzip file, its name and the mail that carries it are in
 * aggregate_mail.c.
 */
#include "report/aggregate.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <libxml/xmlwriter.h>

#include "lib/log.h"

#define AGG_RID_MAX	255

#include "report/aggregate_int.h"

void
aggregate_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static const char *
nz(const char *s)
{
	return s != NULL ? s : "";
}

/* ------------------------------------------------------------ vocabulary */

/* The words of the schema (etc/dmarc-aggregate-2.0.xsd). */
static const char *const agg_dispositions[] =
	{ "none", "pass", "quarantine", "reject", NULL };
static const char *const agg_policies[] =
	{ "none", "quarantine", "reject", NULL };
static const char *const agg_reasons[] = { "local_policy", "mailing_list",
	"other", "policy_test_mode", "trusted_forwarder", NULL };
static const char *const agg_dkim_results[] = { "none", "pass", "fail",
	"policy", "neutral", "temperror", "permerror", NULL };
static const char *const agg_spf_results[] = { "none", "neutral", "pass",
	"fail", "softfail", "temperror", "permerror", NULL };
static const char *const agg_alignments[] = { "r", "s", NULL };
static const char *const agg_testing[] = { "n", "y", NULL };
static const char *const agg_discovery[] = { "psl", "treewalk", NULL };
static const char *const agg_scopes[] = { "mfrom", NULL };

static int
agg_word(const char *s, const char *const *words)
{
	for (; *words != NULL; words++)
		if (strcmp(s, *words) == 0)
			return 1;
	return 0;
}

/*
 * Why s cannot go into the report, or NULL: it must be UTF-8 (RFC 3629:
 * shortest form, no surrogates, at most U+10FFFF), hold no control
 * character but TAB and LF (C0, DEL, C1: values come from the wire and
 * end up in logs and spreadsheets), and only XML 1.0 characters (2.2:
 * not U+FFFE / U+FFFF).
 */
static const char *
agg_text_bad(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned long cp;
	size_t n, i;

	while (*p != '\0') {
		if (*p < 0x80) {
			if ((*p < 0x20 && *p != '\t' && *p != '\n') ||
			    *p == 0x7f)
				return "control character";
			p++;
			continue;
		}
		if (*p >= 0xc2 && *p <= 0xdf) {
			n = 1;
			cp = *p & 0x1f;
		} else if (*p >= 0xe0 && *p <= 0xef) {
			n = 2;
			cp = *p & 0x0f;
		} else if (*p >= 0xf0 && *p <= 0xf4) {
			n = 3;
			cp = *p & 0x07;
		} else
			return "invalid UTF-8";
		/* a NUL ends the loop as a bad continuation octet */
		for (i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return "invalid UTF-8";
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return "invalid UTF-8";
		if (cp <= 0x9f)
			return "control character";
		if (cp == 0xfffe || cp == 0xffff)
			return "character not allowed in XML";
		p += n + 1;
	}
	return NULL;
}

static int
agg_atext(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || (c != '\0' &&
	    strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* RFC 5322 3.2.3 dot-atom-text over s[0..n). */
static int
agg_dot_atom(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] == '.' ? s[i + 1] == '.' : !agg_atext(s[i]))
			return 0;
	return 1;
}

/* RFC 9990 "Definition of Report-ID": ridfmt = dot-atom-text ["@"
 * dot-atom-text]. */
int
aggregate_ridfmt(const char *s)
{
	const char *at = strchr(s, '@');
	size_t n = strlen(s);

	if (n > AGG_RID_MAX)
		return 0;
	if (at == NULL)
		return agg_dot_atom(s, n);
	return agg_dot_atom(s, (size_t)(at - s)) &&
	    agg_dot_atom(at + 1, n - (size_t)(at - s) - 1);
}

/* -------------------------------------------------------------- checking */

struct agg_ck {
	char *err;
	size_t errlen;
	const char *where;	/* "record[2]/row/" ... */
};

static int
ck_text(struct agg_ck *c, const char *name, const char *s, int required)
{
	const char *why;

	s = nz(s);
	if (required && *s == '\0') {
		aggregate_err(c->err, c->errlen, "%s%s: missing", c->where,
		    name);
		return -1;
	}
	if ((why = agg_text_bad(s)) != NULL) {
		aggregate_err(c->err, c->errlen, "%s%s: %s", c->where, name,
		    why);
		return -1;
	}
	return 0;
}

static int
ck_word(struct agg_ck *c, const char *name, const char *s,
    const char *const *words, int required)
{
	s = nz(s);
	if (*s == '\0' && !required)
		return 0;
	if (*s == '\0') {
		aggregate_err(c->err, c->errlen, "%s%s: missing", c->where,
		    name);
		return -1;
	}
	if (!agg_word(s, words)) {
		aggregate_err(c->err, c->errlen, "%s%s: unknown value %s",
		    c->where, name, log_safe(s));
		return -1;
	}
	return 0;
}

static int
ck_meta(struct agg_ck *c, const struct report_meta *m)
{
	c->where = "report_metadata/";
	if (ck_text(c, "org_name", m->org_name, 1) == -1 ||
	    ck_text(c, "email", m->email, 1) == -1 ||
	    ck_text(c, "extra_contact_info", m->extra_contact_info, 0) == -1 ||
	    ck_text(c, "report_id", m->report_id, 1) == -1 ||
	    ck_text(c, "error", m->errors, 0) == -1 ||
	    ck_text(c, "generator", m->generator, 0) == -1)
		return -1;
	if (!aggregate_ridfmt(m->report_id)) {
		aggregate_err(c->err, c->errlen, "report_metadata/report_id: "
		    "%s is not dot-atom-text [\"@\" dot-atom-text] (RFC 9990 "
		    "ridfmt)", log_safe(m->report_id));
		return -1;
	}
	if (m->begin < 0 || m->end < m->begin) {
		aggregate_err(c->err, c->errlen, "report_metadata/date_range: "
		    "begin %lld end %lld", m->begin, m->end);
		return -1;
	}
	return 0;
}

static int
ck_policy(struct agg_ck *c, const struct report_policy *p)
{
	c->where = "policy_published/";
	return ck_text(c, "domain", p->domain, 1) == -1 ||
	    ck_word(c, "discovery_method", p->discovery_method, agg_discovery,
	    0) == -1 ||
	    ck_word(c, "p", p->p, agg_policies, 1) == -1 ||
	    ck_word(c, "sp", p->sp, agg_policies, 0) == -1 ||
	    ck_word(c, "np", p->np, agg_policies, 0) == -1 ||
	    ck_text(c, "fo", p->fo, 0) == -1 ||
	    ck_word(c, "adkim", p->adkim, agg_alignments, 0) == -1 ||
	    ck_word(c, "aspf", p->aspf, agg_alignments, 0) == -1 ||
	    ck_word(c, "testing", p->testing, agg_testing, 0) == -1 ? -1 : 0;
}

/* The textual address, RFC 5952 form, into ip (INET6_ADDRSTRLEN). */
static int
agg_ip(const char *s, char *ip)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, s, a) == 1)
		return inet_ntop(AF_INET, a, ip, INET6_ADDRSTRLEN) ? 0 : -1;
	if (inet_pton(AF_INET6, s, a) == 1)
		return inet_ntop(AF_INET6, a, ip, INET6_ADDRSTRLEN) ? 0 : -1;
	return -1;
}

static int
ck_row(struct agg_ck *c, const struct report_row *r, size_t idx)
{
	char where[96], ip[INET6_ADDRSTRLEN];
	size_t i;

	snprintf(where, sizeof(where), "record[%zu]/row/", idx + 1);
	c->where = where;
	if (agg_ip(nz(r->source_ip), ip) == -1) {
		aggregate_err(c->err, c->errlen, "%ssource_ip: %s is not an "
		    "IPv4 or IPv6 address", where, log_safe(nz(r->source_ip)));
		return -1;
	}
	if (r->count < 0) {
		aggregate_err(c->err, c->errlen, "%scount: %lld", where,
		    r->count);
		return -1;
	}
	snprintf(where, sizeof(where), "record[%zu]/row/policy_evaluated/",
	    idx + 1);
	if (ck_word(c, "disposition", r->disposition, agg_dispositions,
	    1) == -1)
		return -1;
	if ((r->dkim_aligned != 0 && r->dkim_aligned != 1) ||
	    (r->spf_aligned != 0 && r->spf_aligned != 1)) {
		aggregate_err(c->err, c->errlen, "%sdkim/spf: not pass (1) or "
		    "fail (0)", where);
		return -1;
	}
	if (r->nreasons > REPORT_MAX_REASONS) {
		aggregate_err(c->err, c->errlen, "%sreason: %zu, at most %d",
		    where, r->nreasons, REPORT_MAX_REASONS);
		return -1;
	}
	for (i = 0; i < r->nreasons; i++) {
		snprintf(where, sizeof(where),
		    "record[%zu]/row/policy_evaluated/reason[%zu]/", idx + 1,
		    i + 1);
		if (ck_word(c, "type", r->reasons[i].type, agg_reasons, 1) == -1 ||
		    ck_text(c, "comment", r->reasons[i].comment, 0) == -1)
			return -1;
	}
	snprintf(where, sizeof(where), "record[%zu]/identifiers/", idx + 1);
	if (ck_text(c, "header_from", r->header_from, 1) == -1 ||
	    ck_text(c, "envelope_from", r->envelope_from, 0) == -1 ||
	    ck_text(c, "envelope_to", r->envelope_to, 0) == -1)
		return -1;
	if (r->ndkim > REPORT_MAX_DKIM) {
		aggregate_err(c->err, c->errlen, "record[%zu]/auth_results/"
		    "dkim: %zu, at most %d", idx + 1, r->ndkim,
		    REPORT_MAX_DKIM);
		return -1;
	}
	for (i = 0; i < r->ndkim; i++) {
		snprintf(where, sizeof(where), "record[%zu]/auth_results/"
		    "dkim[%zu]/", idx + 1, i + 1);
		if (ck_text(c, "domain", r->dkim[i].domain, 1) == -1 ||
		    ck_text(c, "selector", r->dkim[i].selector, 0) == -1 ||
		    ck_word(c, "result", r->dkim[i].result, agg_dkim_results,
		    1) == -1 ||
		    ck_text(c, "human_result", r->dkim[i].human_result, 0) == -1)
			return -1;
	}
	if (*nz(r->spf_domain) == '\0')
		return 0;
	/* RFC 9990 2.1: scope "MUST contain mfrom, the only valid value" */
	snprintf(where, sizeof(where), "record[%zu]/auth_results/spf/",
	    idx + 1);
	return ck_text(c, "domain", r->spf_domain, 1) == -1 ||
	    ck_word(c, "scope", r->spf_scope, agg_scopes, 0) == -1 ||
	    ck_word(c, "result", r->spf_result, agg_spf_results, 1) == -1 ?
	    -1 : 0;
}

static int
agg_check(const struct report_meta *m, const struct report_policy *p,
    const struct report_row *rows, size_t nrows, char *err, size_t errlen)
{
	struct agg_ck c = { err, errlen, "" };
	size_t i;

	if (m == NULL || p == NULL) {
		aggregate_err(err, errlen, "report: no metadata or policy");
		return -1;
	}
	/* RFC 9990 2.1: "There MUST be at least one record element" */
	if (nrows == 0 || rows == NULL) {
		aggregate_err(err, errlen, "report: no record (RFC 9990 "
		    "requires at least one)");
		return -1;
	}
	if (ck_meta(&c, m) == -1 || ck_policy(&c, p) == -1)
		return -1;
	for (i = 0; i < nrows; i++)
		if (ck_row(&c, &rows[i], i) == -1)
			return -1;
	return 0;
}

/* ------------------------------------------------------------- DKIM order */

/* b is a proper suffix of a at a label boundary ("x.example.com",
 * "example.com"). */
static int
agg_label_suffix(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	return lb > 0 && la > lb && a[la - lb - 1] == '.' &&
	    strcasecmp(a + la - lb, b) == 0;
}

/*
 * RFC 9990 "DKIM Signatures in Aggregate Reports": 0 a pass in strict
 * alignment with the RFC5322.From domain, 1 a pass in relaxed alignment,
 * 2 any other pass, 3 the rest. Relaxed alignment means the same
 * Organizational Domain (RFC 9989); here it is approximated, without the
 * PSL or the DNS tree walk, by "d= is a parent or a child of the From
 * domain", one a suffix of the other at a label boundary. So a d= that is
 * a public suffix of the From domain ranks as relaxed, and a sibling
 * (a.example.com, b.example.com) as "other pass": the order is only a
 * preference, nothing is decided by it.
 */
static int
agg_dkim_class(const struct report_dkim *d, const char *header_from)
{
	const char *dom = nz(d->domain);

	if (strcmp(nz(d->result), "pass") != 0)
		return 3;
	if (strcasecmp(dom, header_from) == 0)
		return 0;
	if (agg_label_suffix(dom, header_from) ||
	    agg_label_suffix(header_from, dom))
		return 1;
	return 2;
}

size_t
report_dkim_order(const struct report_dkim *dkim, size_t n,
    const char *header_from, size_t *order_r)
{
	size_t i, k = 0;
	int cls;

	/* stable: each class in input order; at most 100 ("SHOULD") */
	for (cls = 0; cls < 4; cls++)
		for (i = 0; i < n && k < REPORT_MAX_DKIM_PER_ROW; i++)
			if (agg_dkim_class(&dkim[i], nz(header_from)) == cls)
				order_r[k++] = i;
	return k;
}

/* ---------------------------------------------------------------- writing */

static int
w_start(xmlTextWriterPtr w, const char *name)
{
	return xmlTextWriterStartElement(w, BAD_CAST name) < 0 ? -1 : 0;
}

static int
w_end(xmlTextWriterPtr w)
{
	return xmlTextWriterEndElement(w) < 0 ? -1 : 0;
}

/* <name>value</name>, escaped by the writer. */
static int
w_el(xmlTextWriterPtr w, const char *name, const char *value)
{
	return xmlTextWriterWriteElement(w, BAD_CAST name,
	    BAD_CAST nz(value)) < 0 ? -1 : 0;
}

/* Left out when "" (absent). */
static int
w_opt(xmlTextWriterPtr w, const char *name, const char *value)
{
	return *nz(value) == '\0' ? 0 : w_el(w, name, value);
}

static int
w_num(xmlTextWriterPtr w, const char *name, long long v)
{
	char s[24];

	snprintf(s, sizeof(s), "%lld", v);
	return w_el(w, name, s);
}

/* One <error> per non-empty line of errors. */
static int
w_errors(xmlTextWriterPtr w, const char *errors)
{
	struct buf line = { 0 };
	const char *e;
	int r = 0;

	for (; r == 0 && *errors != '\0'; errors = *e ? e + 1 : e) {
		e = strchr(errors, '\n');
		if (e == NULL)
			e = errors + strlen(errors);
		if (e == errors)
			continue;
		buf_reset(&line);
		if (buf_append(&line, errors, (size_t)(e - errors)) == -1 ||
		    w_el(w, "error", line.data) == -1)
			r = -1;
	}
	buf_free(&line);
	return r;
}

static int
w_meta(xmlTextWriterPtr w, const struct report_meta *m)
{
	return w_start(w, "report_metadata") == -1 ||
	    w_el(w, "org_name", m->org_name) == -1 ||
	    w_el(w, "email", m->email) == -1 ||
	    w_opt(w, "extra_contact_info", m->extra_contact_info) == -1 ||
	    w_el(w, "report_id", m->report_id) == -1 ||
	    w_start(w, "date_range") == -1 ||
	    w_num(w, "begin", m->begin) == -1 ||
	    w_num(w, "end", m->end) == -1 ||
	    w_end(w) == -1 ||
	    w_errors(w, nz(m->errors)) == -1 ||
	    w_opt(w, "generator", m->generator) == -1 ||
	    w_end(w) == -1 ? -1 : 0;
}

static int
w_policy(xmlTextWriterPtr w, const struct report_policy *p)
{
	return w_start(w, "policy_published") == -1 ||
	    w_el(w, "domain", p->domain) == -1 ||
	    w_opt(w, "discovery_method", p->discovery_method) == -1 ||
	    w_el(w, "p", p->p) == -1 ||
	    w_opt(w, "sp", p->sp) == -1 ||
	    w_opt(w, "np", p->np) == -1 ||
	    w_opt(w, "fo", p->fo) == -1 ||
	    w_opt(w, "adkim", p->adkim) == -1 ||
	    w_opt(w, "aspf", p->aspf) == -1 ||
	    w_opt(w, "testing", p->testing) == -1 ||
	    w_end(w) == -1 ? -1 : 0;
}

static int
w_row(xmlTextWriterPtr w, const struct report_row *r)
{
	char ip[INET6_ADDRSTRLEN];
	size_t i;

	if (agg_ip(r->source_ip, ip) == -1 ||
	    w_start(w, "row") == -1 ||
	    w_el(w, "source_ip", ip) == -1 ||
	    w_num(w, "count", r->count) == -1 ||
	    w_start(w, "policy_evaluated") == -1 ||
	    w_el(w, "disposition", r->disposition) == -1 ||
	    w_el(w, "dkim", r->dkim_aligned ? "pass" : "fail") == -1 ||
	    w_el(w, "spf", r->spf_aligned ? "pass" : "fail") == -1)
		return -1;
	for (i = 0; i < r->nreasons; i++)
		if (w_start(w, "reason") == -1 ||
		    w_el(w, "type", r->reasons[i].type) == -1 ||
		    w_opt(w, "comment", r->reasons[i].comment) == -1 ||
		    w_end(w) == -1)
			return -1;
	return w_end(w) == -1 || w_end(w) == -1 ? -1 : 0;
}

static int
w_record(xmlTextWriterPtr w, const struct report_row *r)
{
	size_t order[REPORT_MAX_DKIM], n, i;

	if (w_start(w, "record") == -1 || w_row(w, r) == -1 ||
	    w_start(w, "identifiers") == -1 ||
	    w_el(w, "header_from", r->header_from) == -1 ||
	    /* present, maybe empty: the null reverse-path (RFC 9990 2.1) */
	    w_el(w, "envelope_from", r->envelope_from) == -1 ||
	    w_opt(w, "envelope_to", r->envelope_to) == -1 ||
	    w_end(w) == -1 ||
	    w_start(w, "auth_results") == -1)
		return -1;
	n = report_dkim_order(r->dkim, r->ndkim, r->header_from, order);
	for (i = 0; i < n; i++) {
		const struct report_dkim *d = &r->dkim[order[i]];

		if (w_start(w, "dkim") == -1 ||
		    w_el(w, "domain", d->domain) == -1 ||
		    w_el(w, "selector", d->selector) == -1 ||
		    w_el(w, "result", d->result) == -1 ||
		    w_opt(w, "human_result", d->human_result) == -1 ||
		    w_end(w) == -1)
			return -1;
	}
	if (*nz(r->spf_domain) != '\0' &&
	    (w_start(w, "spf") == -1 ||
	    w_el(w, "domain", r->spf_domain) == -1 ||
	    w_opt(w, "scope", r->spf_scope) == -1 ||
	    w_el(w, "result", r->spf_result) == -1 ||
	    w_end(w) == -1))
		return -1;
	return w_end(w) == -1 || w_end(w) == -1 ? -1 : 0;
}

static int
w_feedback(xmlTextWriterPtr w, const struct report_meta *m,
    const struct report_policy *p, const struct report_row *rows,
    size_t nrows)
{
	size_t i;

	if (xmlTextWriterStartDocument(w, "1.0", "UTF-8", NULL) < 0 ||
	    xmlTextWriterStartElementNS(w, NULL, BAD_CAST "feedback",
	    BAD_CAST REPORT_XMLNS) < 0 ||
	    w_el(w, "version", "1.0") == -1 ||
	    w_meta(w, m) == -1 || w_policy(w, p) == -1)
		return -1;
	for (i = 0; i < nrows; i++)
		if (w_record(w, &rows[i]) == -1)
			return -1;
	return w_end(w) == -1 || xmlTextWriterEndDocument(w) < 0 ||
	    xmlTextWriterFlush(w) < 0 ? -1 : 0;
}

int
report_xml(const struct report_meta *m, const struct report_policy *p,
    const struct report_row *rows, size_t nrows, struct buf *out,
    char *err, size_t errlen)
{
	xmlBufferPtr xb;
	xmlTextWriterPtr w = NULL;
	int r = -1;

	if (agg_check(m, p, rows, nrows, err, errlen) == -1)
		return -1;
	if ((xb = xmlBufferCreate()) == NULL ||
	    (w = xmlNewTextWriterMemory(xb, 0)) == NULL) {
		aggregate_err(err, errlen, "report XML: out of memory");
		goto out;
	}
	if (xmlTextWriterSetIndent(w, 1) < 0 ||
	    xmlTextWriterSetIndentString(w, BAD_CAST "  ") < 0 ||
	    w_feedback(w, m, p, rows, nrows) == -1) {
		aggregate_err(err, errlen, "report XML: the writer failed");
		goto out;
	}
	xmlFreeTextWriter(w);
	w = NULL;
	if (buf_append(out, xmlBufferContent(xb),
	    (size_t)xmlBufferLength(xb)) == -1) {
		aggregate_err(err, errlen, "report XML: out of memory");
		goto out;
	}
	r = 0;
out:
	if (w != NULL)
		xmlFreeTextWriter(w);
	if (xb != NULL)
		xmlBufferFree(xb);
	return r;
}
