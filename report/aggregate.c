/*
 * report/aggregate.c: one DMARC aggregate report (RFC 9990) as XML, as a
 * gzip file, and as the mail that carries it.
 */
#include "report/aggregate.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <libxml/xmlwriter.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <zlib.h>

#include "lib/log.h"

#define AGG_FOLD	78	/* RFC 5322 2.1.1: SHOULD NOT exceed 78 */
#define AGG_ADDR_MAX	254	/* one address in To: */
#define AGG_FIELD_MAX	900	/* a value, so a line stays under 998 */
#define AGG_RID_MAX	255
#define AGG_B64_IN	57	/* 57 octets make a 76-column line */

static void agg_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
agg_err(char *err, size_t errlen, const char *fmt, ...)
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
static int
agg_ridfmt(const char *s)
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

/* A DNS name of LDH labels (and '_'), 1..63 octets each, at most 253:
 * what Subject's domain-name and the file name's domain take here. */
static int
agg_domain(const char *s)
{
	size_t i, label = 0;

	if (s == NULL || *s == '\0' || strlen(s) > 253)
		return 0;
	for (i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_') {
			if (++label > 63)
				return 0;
		} else
			return 0;
	}
	return label > 0;
}

/* Printable ASCII (space too when spaces), nothing from reject. */
static int
agg_header_text(const char *s, int spaces, const char *reject, size_t max)
{
	size_t n = 0;

	if (s == NULL || *s == '\0')
		return 0;
	for (; *s != '\0'; s++, n++)
		if (!((*s > ' ' && *s < 0x7f) || (spaces && *s == ' ')) ||
		    strchr(reject, *s) != NULL)
			return 0;
	return n <= max;
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
		agg_err(c->err, c->errlen, "%s%s: missing", c->where, name);
		return -1;
	}
	if ((why = agg_text_bad(s)) != NULL) {
		agg_err(c->err, c->errlen, "%s%s: %s", c->where, name, why);
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
		agg_err(c->err, c->errlen, "%s%s: missing", c->where, name);
		return -1;
	}
	if (!agg_word(s, words)) {
		agg_err(c->err, c->errlen, "%s%s: unknown value %s", c->where,
		    name, log_safe(s));
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
	if (!agg_ridfmt(m->report_id)) {
		agg_err(c->err, c->errlen, "report_metadata/report_id: %s is not"
		    " dot-atom-text [\"@\" dot-atom-text] (RFC 9990 ridfmt)",
		    log_safe(m->report_id));
		return -1;
	}
	if (m->begin < 0 || m->end < m->begin) {
		agg_err(c->err, c->errlen, "report_metadata/date_range: "
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
		agg_err(c->err, c->errlen, "%ssource_ip: %s is not an IPv4 or"
		    " IPv6 address", where, log_safe(nz(r->source_ip)));
		return -1;
	}
	if (r->count < 0) {
		agg_err(c->err, c->errlen, "%scount: %lld", where, r->count);
		return -1;
	}
	snprintf(where, sizeof(where), "record[%zu]/row/policy_evaluated/",
	    idx + 1);
	if (ck_word(c, "disposition", r->disposition, agg_dispositions,
	    1) == -1)
		return -1;
	if ((r->dkim_aligned != 0 && r->dkim_aligned != 1) ||
	    (r->spf_aligned != 0 && r->spf_aligned != 1)) {
		agg_err(c->err, c->errlen, "%sdkim/spf: not pass (1) or fail (0)",
		    where);
		return -1;
	}
	if (r->nreasons > REPORT_MAX_REASONS) {
		agg_err(c->err, c->errlen, "%sreason: %zu, at most %d", where,
		    r->nreasons, REPORT_MAX_REASONS);
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
		agg_err(c->err, c->errlen, "record[%zu]/auth_results/dkim: %zu,"
		    " at most %d", idx + 1, r->ndkim, REPORT_MAX_DKIM);
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
		agg_err(err, errlen, "report: no metadata or policy");
		return -1;
	}
	/* RFC 9990 2.1: "There MUST be at least one record element" */
	if (nrows == 0 || rows == NULL) {
		agg_err(err, errlen, "report: no record (RFC 9990 requires at"
		    " least one)");
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
		agg_err(err, errlen, "report XML: out of memory");
		goto out;
	}
	if (xmlTextWriterSetIndent(w, 1) < 0 ||
	    xmlTextWriterSetIndentString(w, BAD_CAST "  ") < 0 ||
	    w_feedback(w, m, p, rows, nrows) == -1) {
		agg_err(err, errlen, "report XML: the writer failed");
		goto out;
	}
	xmlFreeTextWriter(w);
	w = NULL;
	if (buf_append(out, xmlBufferContent(xb),
	    (size_t)xmlBufferLength(xb)) == -1) {
		agg_err(err, errlen, "report XML: out of memory");
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

/* ------------------------------------------------------------------- gzip */

int
report_gzip(const void *data, size_t len, const char *name,
    long long mtime, struct buf *out, char *err, size_t errlen)
{
	unsigned char chunk[16384];
	const unsigned char *in = data;
	size_t start = out->len, left = len;
	z_stream z;
	gz_header h;
	int zr;

	if (data == NULL && len > 0) {
		agg_err(err, errlen, "gzip: no data");
		return -1;
	}
	memset(&z, 0, sizeof(z));
	memset(&h, 0, sizeof(h));
	/* RFC 1952 2.3.1: FNAME is zero-terminated; MTIME 0 is "none" */
	h.name = (Bytef *)(*nz(name) != '\0' ? name : NULL);
	h.time = mtime > 0 && mtime <= 0xffffffffLL ? (uLong)mtime : 0;
	h.os = 3;	/* Unix */
	if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8,
	    Z_DEFAULT_STRATEGY) != Z_OK) {
		agg_err(err, errlen, "gzip: deflateInit2 failed");
		return -1;
	}
	if (deflateSetHeader(&z, &h) != Z_OK)
		goto fail;
	do {
		if (z.avail_in == 0 && left > 0) {
			z.next_in = (Bytef *)in;
			z.avail_in = left > UINT_MAX ? UINT_MAX : (uInt)left;
			in += z.avail_in;
			left -= z.avail_in;
		}
		z.next_out = chunk;
		z.avail_out = sizeof(chunk);
		zr = deflate(&z, left == 0 ? Z_FINISH : Z_NO_FLUSH);
		if (zr == Z_STREAM_ERROR ||
		    buf_append(out, chunk, sizeof(chunk) - z.avail_out) == -1)
			goto fail;
	} while (zr != Z_STREAM_END);
	deflateEnd(&z);
	return 0;
fail:
	deflateEnd(&z);
	out->len = start;
	if (out->data != NULL)
		out->data[start] = '\0';
	agg_err(err, errlen, "gzip: deflate failed or out of memory");
	return -1;
}

/* --------------------------------------------------------------- filename */

int
report_filename(const char *receiver, const char *policy_domain,
    long long begin, long long end, const char *unique_id, struct buf *out)
{
	const char *u;

	/* RFC 9990 3.1.1: receiver and policy-domain are domains; refuse
	 * anything that could split the name ('!') or make it a path */
	if (!agg_domain(receiver) || !agg_domain(policy_domain) ||
	    begin < 0 || end < begin)
		return -1;
	/* unique-id = 1*(ALPHA / DIGIT) */
	for (u = nz(unique_id); *u != '\0'; u++)
		if (!((*u >= 'a' && *u <= 'z') || (*u >= 'A' && *u <= 'Z') ||
		    (*u >= '0' && *u <= '9')))
			return -1;
	return buf_appendf(out, "%s!%s!%lld!%lld%s%s.xml.gz", receiver,
	    policy_domain, begin, end, *nz(unique_id) ? "!" : "",
	    nz(unique_id));
}

/* ---------------------------------------------------------------- message */

/*
 * Text split at its spaces into lines of at most AGG_FOLD octets where
 * the words allow, each further line starting with cont (" ": RFC 5322
 * 2.2.3 folding at FWS; "": a body paragraph).
 */
struct agg_fold {
	struct buf *b;
	size_t col;		/* where the next octet goes */
	int first;		/* nothing on the line yet */
	const char *cont;
};

static int
fold_words(struct agg_fold *f, const char *text, size_t n)
{
	size_t i = 0, j;

	for (;;) {
		while (i < n && text[i] == ' ')
			i++;
		for (j = i; j < n && text[j] != ' '; j++)
			;
		if (j == i)
			return 0;
		if (!f->first && f->col + 1 + (j - i) > AGG_FOLD) {
			if (buf_appends(f->b, "\r\n") == -1 ||
			    buf_appends(f->b, f->cont) == -1)
				return -1;
			f->col = strlen(f->cont);
		} else if (!f->first) {
			if (buf_appendc(f->b, ' ') == -1)
				return -1;
			f->col++;
		}
		if (buf_append(f->b, text + i, j - i) == -1)
			return -1;
		f->col += j - i;
		f->first = 0;
		i = j;
	}
}

/* Folds between the groups first: a group that fits on a line of its
 * own is not broken. Ends with CRLF. */
static int
agg_fold_groups(struct buf *b, const char *const *groups, size_t n,
    size_t col, const char *cont)
{
	struct agg_fold f = { b, col, 1, cont };
	size_t i, len;

	for (i = 0; i < n; i++) {
		len = strlen(groups[i]);
		if (!f.first && f.col + 1 + len > AGG_FOLD &&
		    strlen(cont) + len <= AGG_FOLD) {
			if (buf_appends(b, "\r\n") == -1 ||
			    buf_appends(b, cont) == -1)
				return -1;
			f.col = strlen(cont);
			f.first = 1;	/* the fold's WSP is the FWS */
		}
		if (fold_words(&f, groups[i], len) == -1)
			return -1;
	}
	return buf_appends(b, "\r\n");
}

static int
agg_fold(struct buf *b, const char *text, size_t col, const char *cont)
{
	return agg_fold_groups(b, &text, 1, col, cont);
}

static int
agg_field(struct buf *b, const char *name, const char *value)
{
	if (buf_appendf(b, "%s: ", name) == -1)
		return -1;
	return agg_fold(b, value, strlen(name) + 2, " ");
}

/* RFC 5322 3.3 date-time in UTC, without the locale. */
static int
agg_date(long long t, char *out, size_t n)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu",
		"Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May",
		"Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;

	if ((long long)tt != t || gmtime_r(&tt, &tm) == NULL ||
	    tm.tm_year < 0 || tm.tm_year > 9999 - 1900)
		return -1;
	snprintf(out, n, "%s, %02d %s %04d %02d:%02d:%02d +0000",
	    days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return 0;
}

/* "YYYY-MM-DD HH:MM:SS" in UTC. */
static int
agg_stamp(long long t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if ((long long)tt != t || gmtime_r(&tt, &tm) == NULL ||
	    tm.tm_year < 0 || tm.tm_year > 9999 - 1900)
		return -1;
	snprintf(out, n, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return 0;
}

/* base64 (RFC 2045 6.8) in lines of 76. */
static int
agg_base64(struct buf *b, const unsigned char *p, size_t n)
{
	unsigned char line[(AGG_B64_IN / 3) * 4 + 1];
	size_t k;
	int len;

	while (n > 0) {
		k = n < AGG_B64_IN ? n : AGG_B64_IN;
		len = EVP_EncodeBlock(line, p, (int)k);
		if (len < 0 || buf_append(b, line, (size_t)len) == -1 ||
		    buf_appends(b, "\r\n") == -1)
			return -1;
		p += k;
		n -= k;
	}
	return 0;
}

/* RFC 2046 5.1.1: a boundary that occurs in none of the parts. "=_"
 * cannot occur in base64, and the rest is random. */
static int
agg_boundary(char *bnd, size_t n, const struct buf *parts, size_t nparts)
{
	unsigned char rnd[16];
	size_t i, tries;
	int clash;

	for (tries = 0; tries < 8; tries++) {
		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			return -1;
		snprintf(bnd, n, "=_");
		for (i = 0; i < sizeof(rnd); i++)
			snprintf(bnd + 2 + 2 * i, n - 2 - 2 * i, "%02x", rnd[i]);
		clash = 0;
		for (i = 0; i < nparts; i++)
			if (parts[i].len > 0 &&
			    memmem(parts[i].data, parts[i].len, bnd,
			    strlen(bnd)) != NULL)
				clash = 1;
		if (!clash)
			return 0;
	}
	return -1;
}

static int
ck_mail(const struct report_mail *mail, const struct report_meta *m,
    const struct report_policy *p, const void *gz, size_t gzlen,
    char *err, size_t errlen)
{
	size_t i;

	if (mail == NULL || m == NULL || p == NULL || gz == NULL ||
	    gzlen == 0) {
		agg_err(err, errlen, "report mail: nothing to send");
		return -1;
	}
	if (!agg_header_text(mail->from, 1, "", AGG_FIELD_MAX)) {
		agg_err(err, errlen, "report mail: From %s is not printable"
		    " ASCII", log_safe(nz(mail->from)));
		return -1;
	}
	if (mail->nto == 0 || mail->to == NULL) {
		agg_err(err, errlen, "report mail: no recipient");
		return -1;
	}
	for (i = 0; i < mail->nto; i++)
		if (!agg_header_text(mail->to[i], 0, ",;<>()\"",
		    AGG_ADDR_MAX)) {
			agg_err(err, errlen, "report mail: To %s is not an "
			    "address", log_safe(nz(mail->to[i])));
			return -1;
		}
	if (!agg_domain(mail->submitter) || !agg_domain(p->domain)) {
		agg_err(err, errlen, "report mail: Subject domains %s %s are "
		    "not domain names", log_safe(nz(p->domain)),
		    log_safe(nz(mail->submitter)));
		return -1;
	}
	if (!agg_ridfmt(nz(m->report_id))) {
		agg_err(err, errlen, "report mail: Report-ID %s is not RFC 9990"
		    " ridfmt", log_safe(nz(m->report_id)));
		return -1;
	}
	/* a quoted-string parameter value: no quote, backslash or path */
	if (!agg_header_text(mail->filename, 0, "\"\\/", AGG_FIELD_MAX)) {
		agg_err(err, errlen, "report mail: file name %s refused",
		    log_safe(nz(mail->filename)));
		return -1;
	}
	return 0;
}

/* The header of the mail, without Content-Type. */
static int
agg_mail_header(struct buf *b, const struct report_mail *mail,
    const struct report_meta *m, const struct report_policy *p,
    const char *date)
{
	struct buf v = { 0 };
	size_t i;
	int r;

	r = agg_field(b, "From", mail->from);
	for (i = 0; r == 0 && i < mail->nto; i++)
		r = buf_appendf(&v, "%s%s", i ? ", " : "", mail->to[i]);
	if (r == 0)
		r = agg_field(b, "To", v.data);
	if (r == 0)
		r = agg_field(b, "Date", date);
	/* RFC 9990: the Report-ID may be part or whole of the Message-ID;
	 * a msg-id needs an "@" (RFC 5322 3.6.4) */
	buf_reset(&v);
	if (r == 0)
		r = buf_appendf(&v, "<%s%s%s>", m->report_id,
		    strchr(m->report_id, '@') ? "" : "@",
		    strchr(m->report_id, '@') ? "" : mail->submitter);
	if (r == 0)
		r = agg_field(b, "Message-ID", v.data);
	/* RFC 9990 3.1.1 dmarc-subject, folded between its three parts
	 * as its example is (the parts NUL-separated in v) */
	buf_reset(&v);
	if (r == 0)
		r = buf_appendf(&v, "Report Domain: %s%cSubmitter: %s%c"
		    "Report-ID: <%s>", p->domain, 0, mail->submitter, 0,
		    m->report_id);
	if (r == 0) {
		const char *g[3];

		g[0] = v.data;
		g[1] = g[0] + strlen(g[0]) + 1;
		g[2] = g[1] + strlen(g[1]) + 1;
		r = buf_appends(b, "Subject: ") == -1 ||
		    agg_fold_groups(b, g, 3, 9, " ") == -1 ? -1 : 0;
	}
	buf_free(&v);
	if (r == 0)
		/* RFC 3834 5: not to be answered automatically */
		r = agg_field(b, "Auto-Submitted", "auto-generated");
	if (r == 0)
		r = agg_field(b, "MIME-Version", "1.0");
	return r;
}

int
report_message(const struct report_mail *mail, const struct report_meta *m,
    const struct report_policy *p, const void *gz, size_t gzlen,
    struct buf *out, char *err, size_t errlen)
{
	struct buf msg = { 0 }, parts[2] = { { 0 }, { 0 } }, v = { 0 };
	char date[64], from[32], to[32], bnd[40];
	int r = -1;

	if (ck_mail(mail, m, p, gz, gzlen, err, errlen) == -1)
		return -1;
	if (agg_date(mail->date, date, sizeof(date)) == -1 ||
	    agg_stamp(m->begin, from, sizeof(from)) == -1 ||
	    agg_stamp(m->end, to, sizeof(to)) == -1) {
		agg_err(err, errlen, "report mail: date out of range");
		return -1;
	}
	/* the human-readable annotation (RFC 9990 3.1.1 "MAY") */
	if (buf_appends(&parts[0], "Content-Type: text/plain; "
	    "charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n") ==
	    -1 ||
	    buf_appendf(&v, "This is a DMARC aggregate report for %s from %s "
	    "covering %s to %s (UTC).", p->domain, mail->submitter, from,
	    to) == -1 ||
	    agg_fold(&parts[0], v.data, 0, "") == -1)
		goto nomem;
	buf_reset(&v);
	/* the report: application/gzip (RFC 6713), named as RFC 9990 says */
	if (buf_appendf(&v, "application/gzip; name=\"%s\"",
	    mail->filename) == -1 ||
	    agg_field(&parts[1], "Content-Type", v.data) == -1 ||
	    agg_field(&parts[1], "Content-Transfer-Encoding", "base64") == -1)
		goto nomem;
	buf_reset(&v);
	if (buf_appendf(&v, "attachment; filename=\"%s\"",
	    mail->filename) == -1 ||
	    agg_field(&parts[1], "Content-Disposition", v.data) == -1 ||
	    buf_appends(&parts[1], "\r\n") == -1 ||
	    agg_base64(&parts[1], gz, gzlen) == -1)
		goto nomem;
	if (agg_boundary(bnd, sizeof(bnd), parts, 2) == -1) {
		agg_err(err, errlen, "report mail: no boundary (RAND_bytes)");
		goto out;
	}
	buf_reset(&v);
	if (agg_mail_header(&msg, mail, m, p, date) == -1 ||
	    buf_appendf(&v, "multipart/mixed; boundary=\"%s\"", bnd) == -1 ||
	    agg_field(&msg, "Content-Type", v.data) == -1 ||
	    buf_appendf(&msg, "\r\n--%s\r\n", bnd) == -1 ||
	    buf_append(&msg, parts[0].data, parts[0].len) == -1 ||
	    buf_appendf(&msg, "\r\n--%s\r\n", bnd) == -1 ||
	    buf_append(&msg, parts[1].data, parts[1].len) == -1 ||
	    buf_appendf(&msg, "\r\n--%s--\r\n", bnd) == -1 ||
	    buf_append(out, msg.data, msg.len) == -1)
		goto nomem;
	r = 0;
	goto out;
nomem:
	agg_err(err, errlen, "report mail: out of memory");
out:
	buf_free(&msg);
	buf_free(&parts[0]);
	buf_free(&parts[1]);
	buf_free(&v);
	return r;
}
