/*
 * report/import: DMARC aggregate reports as receivers send them (RFC 9990;
 * RFC 7489 Appendix C), read from XML, gzip, zip or the report mail.
 *
 * The input is walked as a tree of containers (mail, MIME part, zip,
 * gzip), each sniffed from its content, down to XML documents. Every limit
 * of import.h is checked while the data is produced: decompression stops
 * at the cap, never trusting a declared size. The first error ends the
 * walk; reports already handed to the callback stay handed.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlreader.h>
#include <libxml/xmlerror.h>
#include <zip.h>
#include <zlib.h>

#include "lib/buf.h"
#include "report/import.h"
#include "smtp/message.h"

#define NS_DMARC2	"urn:ietf:params:xml:ns:dmarc-2.0"

/*
 * Work decompressed over the whole input, all levels together: nested
 * containers (a zip of zips) could otherwise multiply the per-document
 * caps into hours of inflating.
 */
#define IMP_MAX_TOTAL	((uint64_t)REPORT_IMPORT_MAX_MEMBERS * REPORT_IMPORT_MAX_XML)
#define IMP_MAX_PARTS	1000		/* MIME parts per multipart */
#define IMP_MAX_HEADER	(1u << 20)	/* header section of a MIME entity */
#define IMP_MAX_FIELDS	2000
#define IMP_MAX_RECOVER	(4u << 20)	/* XML parsed again to recover */

#if LIBXML_VERSION >= 21200
#define XERR_CONST const
#else
#define XERR_CONST
#endif

/* Returns of the walk: 0 go on, -1 error (err set), IMP_STOP callback. */
#define IMP_STOP	1

/* What a container's content may be. */
#define IMP_MAIL	0x1	/* an RFC 5322 message (top level, message/rfc822) */
#define IMP_SKIP	0x2	/* unknown content is skipped, not an error */

struct imp {
	const char *name;
	int (*cb)(const struct report_parsed *, void *);
	void *arg;
	char *err;
	size_t errlen;
	int failed;
	int found;
	int cbrc;			/* the callback's non-zero return */
	uint64_t inflated;		/* decompressed so far, all levels */
	uint64_t budget;		/* at most, all levels */
	char where[256];		/* "part 2: zip member 1: " */
	char container[96];		/* "mail/zip" */
	const char *kind;		/* of the input: "mail", "zip" ... */
};

static int imp_blob(struct imp *, const char *, size_t, int, int);
static int mime_entity(struct imp *, const char *, size_t, int);

/* ------------------------------------------------------------ errors */

static int
imp_fail(struct imp *imp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
imp_fail(struct imp *imp, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (imp->failed)
		return -1;
	imp->failed = 1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (imp->err != NULL && imp->errlen > 0)
		snprintf(imp->err, imp->errlen, "%s: %s%s", imp->name,
		    imp->where, msg);
	return -1;
}

/* Append to a path string; the old length, for imp_pop. */
static size_t
imp_push(char *s, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static size_t
imp_push(char *s, size_t size, const char *fmt, ...)
{
	size_t old = strlen(s);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s + old, size - old, fmt, ap);
	va_end(ap);
	return old;
}

static void
imp_pop(char *s, size_t old)
{
	s[old] = '\0';
}

/* A container (mail, part, zip, gzip) in too many others; XML is a leaf. */
static int
imp_deep(struct imp *imp)
{
	return imp_fail(imp, "nested deeper than %d levels",
	    REPORT_IMPORT_MAX_DEPTH);
}

/* A hostile value, fit for an error message: printable ASCII, cut. */
static const char *
imp_quote(const char *s, char *out, size_t size)
{
	size_t i, o = 0;

	for (i = 0; s[i] != '\0' && o + 4 < size; i++)
		out[o++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (s[i] != '\0' && o + 3 < size) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

/* ------------------------------------------------------------- arena */

/* The strings of one report: freed together after the callback. */
struct arena {
	struct arena *next;
	size_t used, size;
	char data[];
};

static void *
arena_alloc(struct arena **a, size_t n)
{
	struct arena *c = *a;
	size_t size;
	void *p;

	n = (n + 7) & ~(size_t)7;
	if (c == NULL || c->size - c->used < n) {
		size = n > 65536 - sizeof(*c) ? n : 65536 - sizeof(*c);
		if ((c = malloc(sizeof(*c) + size)) == NULL)
			return NULL;
		c->next = *a;
		c->used = 0;
		c->size = size;
		*a = c;
	}
	p = c->data + c->used;
	c->used += n;
	return p;
}

static void
arena_free(struct arena **a)
{
	struct arena *c, *next;

	for (c = *a; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	*a = NULL;
}

/* ----------------------------------------------------------- values */

/* Length of a valid UTF-8 sequence at s (RFC 3629 4), 0 if invalid. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	unsigned int c = s[0];
	size_t len, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	/* no overlong forms, surrogates or code points past U+10FFFF */
	if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) ||
	    (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
		return 0;
	return len;
}

static int
is_ws(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * An arena copy of s[0..n): surrounding whitespace trimmed, invalid UTF-8
 * replaced by U+FFFD, ASCII folded to lower case if asked.
 */
static char *
value_copy(struct arena **a, const char *s, size_t n, int lower)
{
	const unsigned char *u;
	size_t i, k, o = 0, bad = 0;
	char *out;

	while (n > 0 && is_ws((unsigned char)s[0])) {
		s++;
		n--;
	}
	while (n > 0 && is_ws((unsigned char)s[n - 1]))
		n--;
	u = (const unsigned char *)s;
	for (i = 0; i < n; i += k)
		if ((k = utf8_len(u + i, n - i)) == 0) {
			k = 1;
			bad++;
		}
	/* n is at most REPORT_IMPORT_MAX_XML: no overflow */
	if ((out = arena_alloc(a, n + 2 * bad + 1)) == NULL)
		return NULL;
	for (i = 0; i < n; i += k) {
		if ((k = utf8_len(u + i, n - i)) == 0) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			k = 1;
			continue;
		}
		memcpy(out + o, s + i, k);
		if (lower && k == 1)
			out[o] = (char)tolower(u[i]);
		o += k;
	}
	out[o] = '\0';
	return out;
}

/* Decimal digits only, at most 18 of them (no overflow); -1 otherwise. */
static long long
parse_count(const char *s)
{
	long long v = 0;
	size_t i;

	if (s[0] == '\0' || strlen(s) > 18)
		return -1;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* Seconds since the epoch; real reports write "1538204542.0" too. */
static int
parse_time(const char *s, long long *t_r)
{
	char whole[20];
	size_t n = strcspn(s, ".");

	if (n == 0 || n >= sizeof(whole))
		return -1;
	if (s[n] == '.') {
		const char *f = s + n + 1;

		if (*f == '\0' || strspn(f, "0123456789") != strlen(f))
			return -1;
	}
	memcpy(whole, s, n);
	whole[n] = '\0';
	if ((*t_r = parse_count(whole)) < 0)
		return -1;
	return 0;
}

/* ---------------------------------------------------------------- XML */

/* One report being read: what the callback gets, as it is found. */
struct xrep {
	struct imp *imp;
	struct arena *arena;
	int nomem;
	int have_meta, have_policy;
	struct report_parsed r;
	struct report_row *rows;
	size_t cap;
};

struct xerr {
	int set;
	int line;
	char msg[160];
};

static void
xml_on_error(void *ctx, XERR_CONST xmlError *e)
{
	struct xerr *x = ctx;
	size_t n;

	if (x->set || e == NULL || e->level < XML_ERR_ERROR)
		return;
	x->set = 1;
	x->line = e->line;
	snprintf(x->msg, sizeof(x->msg), "%s",
	    e->message != NULL ? e->message : "malformed");
	n = strlen(x->msg);
	while (n > 0 && is_ws((unsigned char)x->msg[n - 1]))
		x->msg[--n] = '\0';
}

static void
xml_on_generic(void *ctx, const char *fmt, ...)
{
	(void)ctx;
	(void)fmt;
}

/* The first element child of n called name (local name; any namespace). */
static xmlNode *
xchild(xmlNode *n, const char *name)
{
	xmlNode *c;

	if (n == NULL)
		return NULL;
	for (c = n->children; c != NULL; c = c->next)
		if (c->type == XML_ELEMENT_NODE &&
		    strcmp((const char *)c->name, name) == 0)
			return c;
	return NULL;
}

static xmlNode *
xnext(xmlNode *c, const char *name)
{
	for (c = c->next; c != NULL; c = c->next)
		if (c->type == XML_ELEMENT_NODE &&
		    strcmp((const char *)c->name, name) == 0)
			return c;
	return NULL;
}

/*
 * The text of element n: its text and CDATA children only (an entity
 * reference is never followed), cleaned by value_copy; "" when n is NULL.
 */
static const char *
xtext(struct xrep *x, xmlNode *n, int lower)
{
	xmlNode *c, *only = NULL;
	size_t len = 0, o = 0, parts = 0;
	char *tmp, *v;

	if (n == NULL)
		return "";
	for (c = n->children; c != NULL; c = c->next)
		if ((c->type == XML_TEXT_NODE ||
		    c->type == XML_CDATA_SECTION_NODE) && c->content != NULL) {
			len += strlen((const char *)c->content);
			only = c;
			parts++;
		}
	if (parts == 0)
		return "";
	if (parts == 1) {
		v = value_copy(&x->arena, (const char *)only->content, len,
		    lower);
	} else {
		if ((tmp = malloc(len + 1)) == NULL)
			goto nomem;
		for (c = n->children; c != NULL; c = c->next)
			if ((c->type == XML_TEXT_NODE ||
			    c->type == XML_CDATA_SECTION_NODE) &&
			    c->content != NULL) {
				size_t k = strlen((const char *)c->content);

				memcpy(tmp + o, c->content, k);
				o += k;
			}
		v = value_copy(&x->arena, tmp, o, lower);
		free(tmp);
	}
	if (v != NULL)
		return v;
nomem:
	x->nomem = 1;
	return "";
}

static const char *
xfield(struct xrep *x, xmlNode *n, const char *name, int lower)
{
	return xtext(x, xchild(n, name), lower);
}

/* Deepest element nesting of the tree under root, stopping past max. */
static int
xml_too_deep(xmlNode *root, int max)
{
	xmlNode *n = root;
	int d = 1;

	for (;;) {
		if (d > max)
			return 1;
		if (n->type == XML_ELEMENT_NODE && n->children != NULL) {
			n = n->children;
			d++;
			continue;
		}
		while (n != root && n->next == NULL) {
			n = n->parent;
			d--;
		}
		if (n == root)
			return 0;
		n = n->next;
	}
}

static int
xml_row(struct xrep *x, xmlNode *rec, size_t i, struct report_row *row)
{
	struct imp *imp = x->imp;
	xmlNode *rw, *pe, *id, *ar, *c;
	const char *ip, *count, *type, *comment;
	unsigned char addr[16];
	char q[80], *norm;
	int af;

	rw = xchild(rec, "row");
	ip = xfield(x, rw, "source_ip", 0);
	count = xfield(x, rw, "count", 0);
	if (*ip == '\0')
		return imp_fail(imp, "record %zu: no source_ip", i + 1);
	af = strchr(ip, ':') != NULL ? AF_INET6 : AF_INET;
	if (inet_pton(af, ip, addr) != 1)
		return imp_fail(imp, "record %zu: source_ip \"%s\" is not an "
		    "IP address", i + 1, imp_quote(ip, q, sizeof(q)));
	/* RFC 5952 form */
	if ((norm = arena_alloc(&x->arena, INET6_ADDRSTRLEN)) == NULL ||
	    inet_ntop(af, addr, norm, INET6_ADDRSTRLEN) == NULL) {
		x->nomem = 1;
		return 0;
	}
	row->source_ip = norm;
	if (*count == '\0' && xchild(rw, "count") == NULL)
		return imp_fail(imp, "record %zu: no count", i + 1);
	if ((row->count = parse_count(count)) < 0)
		return imp_fail(imp, "record %zu: count \"%s\" is not a "
		    "non-negative integer", i + 1, imp_quote(count, q, sizeof(q)));

	pe = xchild(rw, "policy_evaluated");
	row->disposition = xfield(x, pe, "disposition", 1);
	row->dkim_aligned = strcmp(xfield(x, pe, "dkim", 1), "pass") == 0;
	row->spf_aligned = strcmp(xfield(x, pe, "spf", 1), "pass") == 0;
	for (c = xchild(pe, "reason"); c != NULL &&
	    row->nreasons < REPORT_MAX_REASONS; c = xnext(c, "reason")) {
		type = xfield(x, c, "type", 1);
		comment = xfield(x, c, "comment", 0);
		/* an empty <reason> says nothing; a comment alone is "other" */
		if (*type == '\0' && *comment == '\0')
			continue;
		row->reasons[row->nreasons].type = *type ? type : "other";
		row->reasons[row->nreasons++].comment = comment;
	}

	id = xchild(rec, "identifiers");
	row->header_from = xfield(x, id, "header_from", 1);
	row->envelope_from = xfield(x, id, "envelope_from", 1);
	row->envelope_to = xfield(x, id, "envelope_to", 1);

	ar = xchild(rec, "auth_results");
	for (c = xchild(ar, "dkim"); c != NULL && row->ndkim < REPORT_MAX_DKIM;
	    c = xnext(c, "dkim")) {
		struct report_dkim *d = &row->dkim[row->ndkim++];

		d->domain = xfield(x, c, "domain", 1);
		d->selector = xfield(x, c, "selector", 0);
		d->result = xfield(x, c, "result", 1);
		d->human_result = xfield(x, c, "human_result", 0);
	}
	/* RFC 7489 allowed several <spf>; the first is kept */
	c = xchild(ar, "spf");
	row->spf_domain = xfield(x, c, "domain", 1);
	row->spf_scope = xfield(x, c, "scope", 1);
	row->spf_result = xfield(x, c, "result", 1);
	return 0;
}

static int
xml_meta(struct xrep *x, xmlNode *md)
{
	struct imp *imp = x->imp;
	struct report_meta *m = &x->r.meta;
	xmlNode *dr, *c;
	const char *v, *at;
	struct buf errs = { 0 };
	char q[80];
	size_t len;

	if (xchild(md, "org_name") == NULL)
		return imp_fail(imp, "no report_metadata/org_name");
	m->org_name = xfield(x, md, "org_name", 0);
	m->email = xfield(x, md, "email", 0);
	/* an empty org_name: the domain of the email, as parsedmarc does */
	if (*m->org_name == '\0' && (at = strrchr(m->email, '@')) != NULL)
		m->org_name = value_copy(&x->arena, at + 1, strlen(at + 1), 1);
	if (m->org_name == NULL)
		m->org_name = "";
	if (*m->org_name == '\0' && !x->nomem)
		return imp_fail(imp, "report_metadata/org_name is empty");
	m->extra_contact_info = xfield(x, md, "extra_contact_info", 0);
	v = xfield(x, md, "report_id", 0);
	len = strlen(v);
	if (len >= 2 && v[0] == '<' && v[len - 1] == '>')
		v = value_copy(&x->arena, v + 1, len - 2, 0);
	if (v == NULL) {
		x->nomem = 1;
		v = "";
	}
	m->report_id = v;
	if (*v == '\0' && !x->nomem)
		return imp_fail(imp, "no report_metadata/report_id");
	if ((dr = xchild(md, "date_range")) == NULL)
		return imp_fail(imp, "no report_metadata/date_range");
	v = xfield(x, dr, "begin", 0);
	if (parse_time(v, &m->begin) == -1)
		return imp_fail(imp, "date_range/begin \"%s\" is not a time",
		    imp_quote(v, q, sizeof(q)));
	v = xfield(x, dr, "end", 0);
	if (parse_time(v, &m->end) == -1)
		return imp_fail(imp, "date_range/end \"%s\" is not a time",
		    imp_quote(v, q, sizeof(q)));
	m->generator = xfield(x, md, "generator", 0);

	/* one line per <error> */
	for (c = xchild(md, "error"); c != NULL; c = xnext(c, "error")) {
		v = xtext(x, c, 0);
		if (*v != '\0' && ((errs.len > 0 && buf_appendc(&errs, '\n')) ||
		    buf_appends(&errs, v)))
			x->nomem = 1;
	}
	m->errors = "";
	if (errs.len > 0 &&
	    (m->errors = value_copy(&x->arena, errs.data, errs.len, 0)) == NULL) {
		m->errors = "";
		x->nomem = 1;
	}
	buf_free(&errs);
	return 0;
}

static int
xml_policy(struct xrep *x, xmlNode *pp)
{
	struct report_policy *p = &x->r.policy;
	const char *v;

	p->domain = xfield(x, pp, "domain", 1);
	if (*p->domain == '\0' && !x->nomem)
		return imp_fail(x->imp, "no policy_published/domain");
	p->discovery_method = xfield(x, pp, "discovery_method", 1);
	p->p = xfield(x, pp, "p", 1);
	p->sp = xfield(x, pp, "sp", 1);
	p->np = xfield(x, pp, "np", 1);
	p->fo = xfield(x, pp, "fo", 1);
	/* RFC 9989: adkim and aspf default to relaxed */
	p->adkim = xfield(x, pp, "adkim", 1);
	if (*p->adkim == '\0')
		p->adkim = "r";
	p->aspf = xfield(x, pp, "aspf", 1);
	if (*p->aspf == '\0')
		p->aspf = "r";
	/*
	 * RFC 9990 <testing>, or <t>; before it, RFC 7489 pct=0 applied the
	 * policy to no message, which RFC 9989's t=y replaces.
	 */
	v = xfield(x, pp, "testing", 1);
	if (*v == '\0')
		v = xfield(x, pp, "t", 1);
	if (*v == '\0')
		v = strcmp(xfield(x, pp, "pct", 0), "0") == 0 ? "y" : "n";
	p->testing = v;
	p->rua = "";
	p->ri = 0;
	return 0;
}

/* A child of <feedback>: metadata, policy or a record; others ignored. */
static int
xml_section(struct xrep *x, xmlNode *n)
{
	const char *name = (const char *)n->name;
	struct report_row *nr;
	size_t cap;

	if (strcmp(name, "report_metadata") == 0 && !x->have_meta) {
		x->have_meta = 1;
		return xml_meta(x, n);
	}
	if (strcmp(name, "policy_published") == 0 && !x->have_policy) {
		x->have_policy = 1;
		return xml_policy(x, n);
	}
	if (strcmp(name, "record") != 0)
		return 0;
	if (x->r.nrows == REPORT_IMPORT_MAX_RECORDS)
		return imp_fail(x->imp, "more than %d records",
		    REPORT_IMPORT_MAX_RECORDS);
	if (x->r.nrows == x->cap) {
		cap = x->cap == 0 ? 64 : x->cap * 2;
		if (cap > REPORT_IMPORT_MAX_RECORDS)
			cap = REPORT_IMPORT_MAX_RECORDS;
		if ((nr = reallocarray(x->rows, cap, sizeof(*nr))) == NULL)
			return imp_fail(x->imp, "out of memory for %zu records",
			    cap);
		x->rows = nr;
		x->cap = cap;
	}
	nr = &x->rows[x->r.nrows];
	memset(nr, 0, sizeof(*nr));
	if (xml_row(x, n, x->r.nrows, nr) == -1)
		return -1;
	x->r.nrows++;
	return 0;
}

/* All of <feedback> read: is the report whole? */
static int
xml_finish(struct xrep *x, int rfc9990)
{
	struct imp *imp = x->imp;

	if (!x->have_meta)
		return imp_fail(imp, "no report_metadata");
	if (!x->have_policy)
		return imp_fail(imp, "no policy_published");
	if (x->nomem)
		return imp_fail(imp, "out of memory");
	x->r.format = rfc9990 ? "rfc9990" : "rfc7489";
	x->r.container = imp->container[0] != '\0' ? imp->container : "xml";
	x->r.rows = x->rows;
	return 0;
}

static void
xml_reset(struct xrep *x)
{
	struct imp *imp = x->imp;

	free(x->rows);
	arena_free(&x->arena);
	memset(x, 0, sizeof(*x));
	x->imp = imp;
}

static int
is_dmarc2(const xmlChar *href)
{
	return href != NULL && strcmp((const char *)href, NS_DMARC2) == 0;
}

static int
not_report(struct imp *imp, const char *root)
{
	char q[80];

	return imp_fail(imp, "not a DMARC aggregate report (root element "
	    "<%s>)", imp_quote(root, q, sizeof(q)));
}

/*
 * The document streamed: one child of <feedback> in memory at a time
 * (the rows are copies), so a 64 MB document of tiny elements costs no
 * tree of a gigabyte. <feedback> is the root, or a child of a wrapping
 * root. 0 read, -1 error, or 2: not well-formed (to recover).
 */
static int
xml_stream(struct xrep *x, const char *data, size_t len, int opts)
{
	struct imp *imp = x->imp;
	xmlTextReaderPtr rd;
	xmlNode *n;
	char root[64] = "";
	int ret, next = 0, depth, fb = -1, done = 0, rfc9990 = 0, rc = 2;

	if ((rd = xmlReaderForMemory(data, (int)len, NULL, NULL, opts)) == NULL)
		return imp_fail(imp, "XML: out of memory");
	for (;;) {
		ret = next ? xmlTextReaderNext(rd) : xmlTextReaderRead(rd);
		next = 0;
		if (ret != 1)
			break;
		if (xmlTextReaderNodeType(rd) == XML_READER_TYPE_DOCUMENT_TYPE) {
			rc = imp_fail(imp, "XML with a DOCTYPE refused");
			goto out;
		}
		if (xmlTextReaderNodeType(rd) != XML_READER_TYPE_ELEMENT)
			continue;
		if ((depth = xmlTextReaderDepth(rd)) >=
		    REPORT_IMPORT_MAX_XML_DEPTH) {
			rc = imp_fail(imp, "XML nested deeper than %d levels",
			    REPORT_IMPORT_MAX_XML_DEPTH);
			goto out;
		}
		if (depth == 0)
			snprintf(root, sizeof(root), "%s",
			    (const char *)xmlTextReaderConstLocalName(rd));
		if (fb < 0) {
			if (depth <= 1 && strcmp((const char *)
			    xmlTextReaderConstLocalName(rd), "feedback") == 0) {
				fb = depth;
				rfc9990 = is_dmarc2(
				    xmlTextReaderConstNamespaceUri(rd));
			}
			continue;
		}
		/* past </feedback> (in a wrapper), nothing more is read */
		if (depth <= fb)
			done = 1;
		if (done || depth != fb + 1)
			continue;	/* inside an ignored element */
		if ((n = xmlTextReaderExpand(rd)) == NULL)
			break;		/* not well-formed inside */
		if (xml_too_deep(n, REPORT_IMPORT_MAX_XML_DEPTH - depth)) {
			rc = imp_fail(imp, "XML nested deeper than %d levels",
			    REPORT_IMPORT_MAX_XML_DEPTH);
			goto out;
		}
		if (xml_section(x, n) == -1) {
			rc = -1;
			goto out;
		}
		next = 1;
	}
	if (ret == 0) {
		if (fb < 0)
			rc = not_report(imp, root);
		else
			rc = xml_finish(x, rfc9990);
	}
out:
	xmlFreeTextReader(rd);
	return rc;
}

/* The recovering parse, for a small document that is not well-formed. */
static int
xml_recover(struct xrep *x, const char *data, size_t len, int opts,
    const struct xerr *xe)
{
	struct imp *imp = x->imp;
	xmlNode *root, *fb, *c;
	xmlDoc *doc;
	int rc;

	doc = xmlReadMemory(data, (int)len, NULL, NULL, opts | XML_PARSE_RECOVER);
	if (doc == NULL || (root = xmlDocGetRootElement(doc)) == NULL) {
		/* nothing recovered: the strict parse's error says why */
		xmlFreeDoc(doc);
		return imp_fail(imp, "XML: line %d: %s", xe->line,
		    xe->set ? xe->msg : "not well-formed");
	}
	if (doc->intSubset != NULL || doc->extSubset != NULL)
		rc = imp_fail(imp, "XML with a DOCTYPE refused");
	else if (xml_too_deep(root, REPORT_IMPORT_MAX_XML_DEPTH))
		rc = imp_fail(imp, "XML nested deeper than %d levels",
		    REPORT_IMPORT_MAX_XML_DEPTH);
	else if ((fb = strcmp((const char *)root->name, "feedback") == 0 ?
	    root : xchild(root, "feedback")) == NULL)
		rc = not_report(imp, (const char *)root->name);
	else {
		rc = 0;
		for (c = fb->children; c != NULL && rc == 0; c = c->next)
			if (c->type == XML_ELEMENT_NODE)
				rc = xml_section(x, c);
		if (rc == 0)
			rc = xml_finish(x, fb->ns != NULL &&
			    is_dmarc2(fb->ns->href));
	}
	xmlFreeDoc(doc);
	return rc;
}

/* Case-insensitive search for needle in s[0..n). */
static const char *
memcasemem(const char *s, size_t n, const char *needle)
{
	size_t k = strlen(needle), i;

	for (i = 0; i + k <= n; i++)
		if (s[i] == '<' && strncasecmp(s + i, needle, k) == 0)
			return s + i;
	return NULL;
}

static int
imp_xml(struct imp *imp, const char *data, size_t len)
{
	xmlStructuredErrorFunc old_s = xmlStructuredError;
	void *old_sctx = xmlStructuredErrorContext;
	xmlGenericErrorFunc old_g = xmlGenericError;
	void *old_gctx = xmlGenericErrorContext;
	struct xerr xe = { 0 };
	struct xrep x = { .imp = imp };
	const char *p;
	int opts, rc;

	if (len > REPORT_IMPORT_MAX_XML)
		return imp_fail(imp, "XML over %u MB", REPORT_IMPORT_MAX_XML >> 20);
	if (len > INT_MAX)
		return imp_fail(imp, "XML too large");
	if ((p = memchr(data, '\0', len)) != NULL)
		return imp_fail(imp, "NUL octet in XML at offset %zu",
		    (size_t)(p - data));
	/*
	 * No DTD of any kind: refused before the parser sees it, so no
	 * entity is ever declared, expanded or fetched.
	 */
	if (memcasemem(data, len, "<!DOCTYPE") != NULL ||
	    memcasemem(data, len, "<!ENTITY") != NULL)
		return imp_fail(imp, "XML with a DOCTYPE or ENTITY declaration "
		    "refused");

	/* libxml2 reports through us, never on stderr */
	xmlSetStructuredErrorFunc(&xe, xml_on_error);
	xmlSetGenericErrorFunc(NULL, xml_on_generic);
	opts = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
	    XML_PARSE_COMPACT;
	rc = xml_stream(&x, data, len, opts);
	/*
	 * Real reports are sloppy (parsedmarc's invalid_xml.xml, an
	 * unclosed wrapper element): a small one is parsed again, recovering
	 * what libxml2 can, and the result held to the same checks.
	 */
	if (rc == 2 && len <= IMP_MAX_RECOVER) {
		xml_reset(&x);
		rc = xml_recover(&x, data, len, opts, &xe);
	} else if (rc == 2)
		rc = imp_fail(imp, "XML: line %d: %s", xe.line,
		    xe.set ? xe.msg : "not well-formed");
	xmlSetStructuredErrorFunc(old_sctx, old_s);
	xmlSetGenericErrorFunc(old_gctx, old_g);
	if (rc == 0) {
		imp->found++;
		if ((imp->cbrc = imp->cb(&x.r, imp->arg)) != 0)
			rc = IMP_STOP;
	}
	xml_reset(&x);
	return rc;
}

/* --------------------------------------------------------------- gzip */

/*
 * At most how much the content of a container of len octets may grow to:
 * one document's cap, the ratio, and what remains of the total; *why_r
 * says which, for imp_over.
 */
enum cap { CAP_SIZE, CAP_RATIO, CAP_TOTAL };

static uint64_t
imp_cap(struct imp *imp, size_t len, enum cap *why_r)
{
	uint64_t cap = REPORT_IMPORT_MAX_XML;

	*why_r = CAP_SIZE;
	if ((uint64_t)len * REPORT_IMPORT_MAX_RATIO < cap) {
		cap = (uint64_t)len * REPORT_IMPORT_MAX_RATIO;
		*why_r = CAP_RATIO;
	}
	if (imp->budget - imp->inflated < cap) {
		cap = imp->budget - imp->inflated;
		*why_r = CAP_TOTAL;
	}
	return cap;
}

static int
imp_over(struct imp *imp, size_t len, enum cap why)
{
	if (why == CAP_TOTAL)
		return imp_fail(imp, "more than %llu octets decompressed in all",
		    (unsigned long long)imp->budget);
	if (why == CAP_RATIO)
		return imp_fail(imp, "decompressed size over %d times the "
		    "compressed size (%zu octets)", REPORT_IMPORT_MAX_RATIO, len);
	return imp_fail(imp, "decompressed size over %u MB",
	    REPORT_IMPORT_MAX_XML >> 20);
}

/*
 * Grow *out, up to cap + 1 octets: one past the cap shows the cap was
 * passed (the callers check len > cap after each step, so a full buffer
 * here is always below cap + 1).
 */
static int
imp_grow(char **out, size_t *size, uint64_t cap)
{
	size_t n = *size < 65536 ? 65536 : *size * 2;
	char *p;

	if (n > cap + 1)
		n = (size_t)cap + 1;
	if ((p = realloc(*out, n)) == NULL)
		return -1;
	*out = p;
	*size = n;
	return 0;
}

/* RFC 1952, members one after the other (2.2); trailing garbage ignored. */
static int
imp_gzip(struct imp *imp, const char *data, size_t len, int depth)
{
	enum cap why;
	uint64_t cap = imp_cap(imp, len, &why);
	z_stream zs;
	char *out = NULL;
	size_t size = 0, olen = 0, wpos;
	int zrc, rc = -1;

	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, 15 + 32) != Z_OK)
		return imp_fail(imp, "out of memory");
	zs.next_in = (Bytef *)(uintptr_t)data;
	zs.avail_in = (uInt)len;	/* len <= REPORT_IMPORT_MAX_XML */
	for (;;) {
		if (olen == size && imp_grow(&out, &size, cap) == -1) {
			imp_fail(imp, "out of memory");
			goto out;
		}
		zs.next_out = (Bytef *)out + olen;
		zs.avail_out = (uInt)(size - olen);
		wpos = olen;
		zrc = inflate(&zs, Z_NO_FLUSH);
		olen = size - zs.avail_out;
		imp->inflated += olen - wpos;
		if (olen > cap) {
			imp_over(imp, len, why);
			goto out;
		}
		if (zrc == Z_STREAM_END) {
			/* another member follows, or the rest is ignored */
			if (zs.avail_in >= 2 && zs.next_in[0] == 0x1f &&
			    zs.next_in[1] == 0x8b) {
				if (inflateReset(&zs) != Z_OK) {
					imp_fail(imp, "reset failed");
					goto out;
				}
				continue;
			}
			break;
		}
		/* room was left for output: no progress means no input */
		if ((zrc == Z_OK || zrc == Z_BUF_ERROR) && zs.avail_in == 0 &&
		    zs.avail_out > 0) {
			imp_fail(imp, "truncated");
			goto out;
		}
		if (zrc != Z_OK) {
			imp_fail(imp, "corrupt (%s)",
			    zs.msg != NULL ? zs.msg : "inflate failed");
			goto out;
		}
	}
	rc = imp_blob(imp, out, olen, depth + 1, 0);
out:
	inflateEnd(&zs);
	free(out);
	return rc;
}

/* ---------------------------------------------------------------- zip */

static int
zip_member(struct imp *imp, zip_t *za, zip_uint64_t i, size_t zlen,
    int depth)
{
	enum cap why;
	uint64_t cap = imp_cap(imp, zlen, &why);
	zip_file_t *zf;
	char *out = NULL;
	size_t size = 0, olen = 0;
	zip_int64_t n;
	int rc = -1;

	if ((zf = zip_fopen_index(za, i, 0)) == NULL)
		return imp_fail(imp, "cannot open: %s", zip_strerror(za));
	for (;;) {
		if (olen == size && imp_grow(&out, &size, cap) == -1) {
			imp_fail(imp, "out of memory");
			goto out;
		}
		n = zip_fread(zf, out + olen, size - olen);
		if (n < 0) {
			imp_fail(imp, "cannot read: %s", zip_file_strerror(zf));
			goto out;
		}
		if (n == 0)
			break;
		olen += (size_t)n;
		imp->inflated += (uint64_t)n;
		if (olen > cap) {
			imp_over(imp, zlen, why);
			goto out;
		}
	}
	rc = imp_blob(imp, out, olen, depth + 1, IMP_SKIP);
out:
	zip_fclose(zf);
	free(out);
	return rc;
}

static int
imp_zip(struct imp *imp, const char *data, size_t len, int depth)
{
	zip_error_t ze;
	zip_source_t *src;
	zip_t *za;
	zip_int64_t n, i;
	const char *mname;
	size_t old;
	int rc = 0;

	zip_error_init(&ze);
	if ((src = zip_source_buffer_create(data, len, 0, &ze)) == NULL) {
		rc = imp_fail(imp, "zip: %s", zip_error_strerror(&ze));
		zip_error_fini(&ze);
		return rc;
	}
	if ((za = zip_open_from_source(src, ZIP_RDONLY, &ze)) == NULL) {
		rc = imp_fail(imp, "not a valid zip: %s",
		    zip_error_strerror(&ze));
		zip_source_free(src);
		zip_error_fini(&ze);
		return rc;
	}
	zip_error_fini(&ze);
	n = zip_get_num_entries(za, 0);
	if (n > REPORT_IMPORT_MAX_MEMBERS) {
		rc = imp_fail(imp, "zip with more than %d members",
		    REPORT_IMPORT_MAX_MEMBERS);
		goto out;
	}
	for (i = 0; i < n && rc == 0; i++) {
		/* a directory holds nothing; an empty name is a file */
		mname = zip_get_name(za, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
		if (mname != NULL && *mname != '\0' &&
		    mname[strlen(mname) - 1] == '/')
			continue;
		old = imp_push(imp->where, sizeof(imp->where),
		    "zip member %lld: ", (long long)i + 1);
		rc = zip_member(imp, za, (zip_uint64_t)i, len, depth);
		if (rc != -1)
			imp_pop(imp->where, old);
	}
out:
	zip_discard(za);	/* frees the source too */
	return rc;
}

/* --------------------------------------------------------------- MIME */

enum cte { CTE_IDENTITY, CTE_BASE64, CTE_QP, CTE_UNKNOWN };

struct mime_hdr {
	char type[80];		/* "type/subtype", lower case */
	char boundary[128];	/* RFC 2046 5.1.1: 1 to 70 characters */
	char filename[128];	/* Content-Type name or Content-Disposition
				 * filename, for its extension */
	int bad_boundary;
	enum cte cte;
	const char *body;
	size_t body_len;
};

static int
mime_on_body(const char *p, size_t n, void *arg)
{
	struct mime_hdr *h = arg;

	if (h->body == NULL)
		h->body = p;
	h->body_len += n;
	return 0;
}

/* Skip whitespace and RFC 5322 3.2.2 comments. */
static const char *
mime_skip(const char *s)
{
	int level;

	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s != '(')
			return s;
		for (level = 0; *s != '\0'; s++) {
			if (*s == '\\' && s[1] != '\0')
				s++;
			else if (*s == '(')
				level++;
			else if (*s == ')' && --level == 0) {
				s++;
				break;
			}
		}
	}
}

/* A token or quoted-string (RFC 2045 5.1) into out; NULL if too long. */
static const char *
mime_word(const char *s, char *out, size_t size, int *toolong)
{
	size_t o = 0;

	*toolong = 0;
	if (*s == '"') {
		for (s++; *s != '\0' && *s != '"'; s++) {
			if (*s == '\\' && s[1] != '\0')
				s++;
			if (o + 1 < size)
				out[o++] = *s;
			else
				*toolong = 1;
		}
		if (*s == '"')
			s++;
	} else {
		for (; *s != '\0' && *s != ';' && *s != ' ' && *s != '\t' &&
		    *s != '(' && *s != '"'; s++) {
			if (o + 1 < size)
				out[o++] = *s;
			else
				*toolong = 1;
		}
	}
	out[o] = '\0';
	return s;
}

/*
 * Content-Type and Content-Disposition (RFC 2045 5.1, RFC 2183): the
 * value and the parameters boundary, name, filename (RFC 2231 "name*"
 * with its charset'lang' prefix dropped).
 */
static void
mime_params(struct mime_hdr *h, const char *v, int is_type)
{
	char attr[40], val[256];
	const char *q;
	size_t n;
	int toolong;

	v = mime_skip(v);
	n = strcspn(v, "; \t(");
	if (is_type && n > 0 && n < sizeof(h->type) && h->type[0] == '\0') {
		memcpy(h->type, v, n);
		h->type[n] = '\0';
		for (q = h->type; *q != '\0'; q++)
			h->type[q - h->type] = (char)tolower((unsigned char)*q);
	}
	v += n;
	for (;;) {
		v = mime_skip(v);
		if (*v != ';') {
			if (*v == '\0')
				return;
			v++;		/* junk: skip a character */
			continue;
		}
		v = mime_skip(v + 1);
		n = strcspn(v, "=; \t");
		if (n == 0 || n >= sizeof(attr)) {
			v += n;
			continue;
		}
		memcpy(attr, v, n);
		attr[n] = '\0';
		v = mime_skip(v + n);
		if (*v != '=')
			continue;
		v = mime_word(mime_skip(v + 1), val, sizeof(val), &toolong);
		if (is_type && strcasecmp(attr, "boundary") == 0) {
			if (toolong || strlen(val) >= sizeof(h->boundary) ||
			    val[0] == '\0')
				h->bad_boundary = 1;
			else if (h->boundary[0] == '\0')
				memcpy(h->boundary, val, strlen(val) + 1);
		} else if (strcasecmp(attr, "name") == 0 ||
		    strcasecmp(attr, "filename") == 0 ||
		    strcasecmp(attr, "name*") == 0 ||
		    strcasecmp(attr, "filename*") == 0 ||
		    strncasecmp(attr, "filename*0", 10) == 0 ||
		    strncasecmp(attr, "name*0", 6) == 0) {
			q = val;
			if (attr[n - 1] == '*' && (q = strchr(val, '\'')) != NULL &&
			    (q = strchr(q + 1, '\'')) != NULL)
				q++;
			else
				q = val;
			/* the end of a long name: its extension counts */
			n = strlen(q);
			if (n >= sizeof(h->filename))
				q += n - (sizeof(h->filename) - 1);
			if (h->filename[0] == '\0')
				memcpy(h->filename, q, strlen(q) + 1);
		}
	}
}

/* Parse the header section of an entity; body and body_len set. */
static int
mime_header(struct imp *imp, const char *data, size_t len,
    struct mime_hdr *h)
{
	const struct msg_field *f;
	struct msg_parser *mp;
	char *v;
	size_t i, k, o;
	int seen_type = 0, seen_cte = 0, seen_disp = 0;

	memset(h, 0, sizeof(*h));
	if ((mp = msg_parser_new(IMP_MAX_HEADER, IMP_MAX_FIELDS, NULL,
	    mime_on_body, h)) == NULL)
		return imp_fail(imp, "out of memory");
	if (msg_parser_feed(mp, data, len) == -1 || msg_parser_end(mp) == -1) {
		msg_parser_free(mp);
		return imp_fail(imp, "MIME header section too large");
	}
	for (i = 0; i < msg_parser_count(mp); i++) {
		f = msg_parser_field(mp, i);
		if (f->name_len == 0)
			continue;
		/* RFC 5322 2.2.3: unfold */
		if ((v = malloc(f->value_len + 1)) == NULL) {
			msg_parser_free(mp);
			return imp_fail(imp, "out of memory");
		}
		for (k = o = 0; k < f->value_len; k++)
			if (f->value[k] != '\r' && f->value[k] != '\n' &&
			    f->value[k] != '\0')
				v[o++] = f->value[k];
		v[o] = '\0';
#define IS(s) (f->name_len == sizeof(s) - 1 && \
	    strncasecmp(f->name, s, sizeof(s) - 1) == 0)
		if (IS("Content-Type") && !seen_type++)
			mime_params(h, v, 1);
		else if (IS("Content-Disposition") && !seen_disp++)
			mime_params(h, v, 0);
		else if (IS("Content-Transfer-Encoding") && !seen_cte++) {
			const char *t = mime_skip(v);
			size_t tn = strcspn(t, " \t(;");

			if (tn == 6 && strncasecmp(t, "base64", 6) == 0)
				h->cte = CTE_BASE64;
			else if (tn == 16 &&
			    strncasecmp(t, "quoted-printable", 16) == 0)
				h->cte = CTE_QP;
			else if (!((tn == 4 && (strncasecmp(t, "7bit", 4) == 0 ||
			    strncasecmp(t, "8bit", 4) == 0)) ||
			    (tn == 6 && strncasecmp(t, "binary", 6) == 0) ||
			    tn == 0))
				h->cte = CTE_UNKNOWN;
		}
#undef IS
		free(v);
	}
	msg_parser_free(mp);
	/* RFC 2045 5.2: the default */
	if (h->type[0] == '\0' || strchr(h->type, '/') == NULL)
		snprintf(h->type, sizeof(h->type), "text/plain");
	if (h->body == NULL)
		h->body = data + len;
	return 0;
}

/* RFC 2045 6.8: characters outside the alphabet are ignored. */
static size_t
b64_decode(const char *in, size_t len, char *out)
{
	static const char alpha[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	signed char map[256];
	unsigned int acc = 0, bits = 0;
	size_t i, o = 0;

	memset(map, -1, sizeof(map));
	for (i = 0; i < 64; i++)
		map[(unsigned char)alpha[i]] = (signed char)i;
	for (i = 0; i < len && in[i] != '='; i++) {
		int v = map[(unsigned char)in[i]];

		if (v < 0)
			continue;
		acc = (acc << 6) | (unsigned int)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	return o;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* RFC 2045 6.7: =XX, soft line breaks, trailing whitespace dropped. */
static size_t
qp_decode(const char *in, size_t len, char *out)
{
	const char *nl;
	size_t i = 0, o = 0, eol, next, end, term;
	int soft;

	while (i < len) {
		nl = memchr(in + i, '\n', len - i);
		eol = nl != NULL ? (size_t)(nl - in) : len;
		next = nl != NULL ? eol + 1 : len;
		term = eol;
		if (nl != NULL && eol > i && in[eol - 1] == '\r')
			term--;
		end = term;
		while (end > i && (in[end - 1] == ' ' || in[end - 1] == '\t'))
			end--;
		if ((soft = end > i && in[end - 1] == '=') != 0)
			end--;
		for (; i < end; i++) {
			if (in[i] == '=' && end - i >= 3 &&
			    hexval((unsigned char)in[i + 1]) >= 0 &&
			    hexval((unsigned char)in[i + 2]) >= 0) {
				out[o++] = (char)(hexval((unsigned char)in[i + 1]) *
				    16 + hexval((unsigned char)in[i + 2]));
				i += 2;
			} else
				out[o++] = in[i];
		}
		/* a hard line break stays as it was written */
		if (!soft && nl != NULL) {
			memcpy(out + o, in + term, next - term);
			o += next - term;
		}
		i = next;
	}
	return o;
}

/*
 * The next delimiter line "--boundary" (RFC 2046 5.1.1) at or after from,
 * which is the start of a line: its start, the offset after it, and
 * whether it closes ("--boundary--"). -1 if there is none.
 */
static int
mime_delim(const char *b, size_t len, size_t from, const char *bnd,
    size_t *start_r, size_t *after_r, int *close_r)
{
	size_t blen = strlen(bnd), p = from, q;
	const char *nl;

	while (p < len) {
		if (len - p >= blen + 2 && b[p] == '-' && b[p + 1] == '-' &&
		    memcmp(b + p + 2, bnd, blen) == 0) {
			q = p + 2 + blen;
			*close_r = len - q >= 2 && b[q] == '-' && b[q + 1] == '-';
			if (*close_r)
				q += 2;
			/* transport padding, then the end of the line */
			while (q < len && (b[q] == ' ' || b[q] == '\t'))
				q++;
			if (q < len && b[q] == '\r')
				q++;
			if (q == len || b[q] == '\n') {
				*start_r = p;
				*after_r = q < len ? q + 1 : q;
				return 0;
			}
		}
		if ((nl = memchr(b + p, '\n', len - p)) == NULL)
			break;
		p = (size_t)(nl - b) + 1;
	}
	return -1;
}

static int
mime_multipart(struct imp *imp, const struct mime_hdr *h, int depth)
{
	const char *b = h->body;
	size_t len = h->body_len, start, after, first, from, end, old;
	int close, rc, n, parts;

	if (h->bad_boundary || h->boundary[0] == '\0')
		return imp_fail(imp, "%s without a usable boundary", h->type);
	/* the preamble is ignored */
	if (mime_delim(b, len, 0, h->boundary, &start, &first, &close) == -1)
		return imp_fail(imp, "%s: no boundary line", h->type);
	/* a truncated multipart is refused before any part is read */
	for (parts = 0, after = first; !close; parts++) {
		if (parts >= IMP_MAX_PARTS)
			return imp_fail(imp, "%s: more than %d parts", h->type,
			    IMP_MAX_PARTS);
		if (mime_delim(b, len, after, h->boundary, &start, &after,
		    &close) == -1)
			return imp_fail(imp, "%s: unterminated (no closing "
			    "boundary)", h->type);
	}
	for (n = 1, after = first; n <= parts; n++) {
		from = after;
		(void)mime_delim(b, len, from, h->boundary, &start, &after,
		    &close);
		/* the line break before the delimiter belongs to it */
		end = start;
		if (end > from && b[end - 1] == '\n')
			end--;
		if (end > from && b[end - 1] == '\r')
			end--;
		old = imp_push(imp->where, sizeof(imp->where), "part %d: ", n);
		if ((rc = mime_entity(imp, b + from, end - from, depth + 1)) != 0)
			return rc;
		imp_pop(imp->where, old);
	}
	return 0;
}

/* A media type or file name that says gzip, zip or XML. */
static int
mime_is_report(const struct mime_hdr *h)
{
	static const char *const ext[] = { ".xml", ".gz", ".gzip", ".zip" };
	const char *sub = strchr(h->type, '/') + 1;
	size_t i, n = strlen(h->filename), k;

	if (strcmp(sub, "xml") == 0 || strstr(sub, "gzip") != NULL ||
	    strcmp(sub, "zip") == 0 || strcmp(sub, "x-zip") == 0 ||
	    strcmp(sub, "x-zip-compressed") == 0)
		return 1;
	for (i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		k = strlen(ext[i]);
		if (n >= k && strcasecmp(h->filename + n - k, ext[i]) == 0)
			return 1;
	}
	return 0;
}

/* One MIME entity (RFC 2045 3): a message or a body part. */
static int
mime_entity(struct imp *imp, const char *data, size_t len, int depth)
{
	struct mime_hdr h;
	char *dec = NULL;
	const char *body;
	size_t blen;
	int rc, is_msg;

	if (depth > REPORT_IMPORT_MAX_DEPTH)
		return imp_deep(imp);
	if (mime_header(imp, data, len, &h) == -1)
		return -1;
	/* RFC 2046 5.1.1: a multipart's own encoding is identity */
	if (strncmp(h.type, "multipart/", 10) == 0)
		return mime_multipart(imp, &h, depth);
	is_msg = strcmp(h.type, "message/rfc822") == 0;
	if (!is_msg && !mime_is_report(&h))
		return 0;	/* a text part, an image: not ours */
	body = h.body;
	blen = h.body_len;
	if (h.cte == CTE_UNKNOWN)
		return imp_fail(imp, "unknown Content-Transfer-Encoding");
	if (h.cte != CTE_IDENTITY) {
		if ((dec = malloc(blen + 1)) == NULL)
			return imp_fail(imp, "out of memory");
		blen = h.cte == CTE_BASE64 ? b64_decode(body, blen, dec) :
		    qp_decode(body, blen, dec);
		body = dec;
	}
	if (is_msg)
		rc = imp_blob(imp, body, blen, depth + 1, IMP_MAIL);
	else
		rc = imp_blob(imp, body, blen, depth + 1, 0);
	free(dec);
	return rc;
}

/* RFC 5322 2.2: the first line is a header field ("Name:"). */
static int
looks_like_mail(const char *d, size_t len)
{
	size_t i;

	for (i = 0; i < len && i < 1000; i++) {
		unsigned char c = (unsigned char)d[i];

		if (c == ':')
			return i > 0;
		if (c < 33 || c > 126)
			break;
	}
	/* obs-optional: WSP before the colon (RFC 5322 4.5.8) */
	while (i > 0 && i < len && (d[i] == ' ' || d[i] == '\t'))
		i++;
	return i > 0 && i < len && d[i] == ':';
}

/* ------------------------------------------------------------ sniffing */

static int
imp_blob(struct imp *imp, const char *d, size_t len, int depth, int flags)
{
	size_t i = 0, old, wold;
	int rc;

	if (len == 0)
		return (flags & IMP_SKIP) ? 0 : imp_fail(imp, "empty");
	if (len >= 2 && (unsigned char)d[0] == 0x1f &&
	    (unsigned char)d[1] == 0x8b) {
		if (depth > REPORT_IMPORT_MAX_DEPTH)
			return imp_deep(imp);
		if (depth == 0)
			imp->kind = "gzip";
		old = imp_push(imp->container, sizeof(imp->container), "%s%s",
		    imp->container[0] ? "/" : "", "gzip");
		wold = imp_push(imp->where, sizeof(imp->where), "gzip: ");
		if ((rc = imp_gzip(imp, d, len, depth)) != -1)
			imp_pop(imp->where, wold);
		imp_pop(imp->container, old);
		return rc;
	}
	if (len >= 4 && d[0] == 'P' && d[1] == 'K' &&
	    ((d[2] == 3 && d[3] == 4) || (d[2] == 5 && d[3] == 6))) {
		if (depth > REPORT_IMPORT_MAX_DEPTH)
			return imp_deep(imp);
		if (depth == 0)
			imp->kind = "zip";
		old = imp_push(imp->container, sizeof(imp->container), "%s%s",
		    imp->container[0] ? "/" : "", "zip");
		rc = imp_zip(imp, d, len, depth);
		imp_pop(imp->container, old);
		return rc;
	}
	/* XML: after a UTF-8 byte order mark and white space, a tag */
	if (len >= 3 && memcmp(d, "\xef\xbb\xbf", 3) == 0)
		i = 3;
	while (i < len && is_ws((unsigned char)d[i]))
		i++;
	if (i < len && d[i] == '<')
		return imp_xml(imp, d, len);
	if (flags & IMP_MAIL) {
		/* an mbox "From " line first */
		if (len >= 5 && memcmp(d, "From ", 5) == 0) {
			const char *nl = memchr(d, '\n', len);

			i = nl != NULL ? (size_t)(nl - d) + 1 : len;
			d += i;
			len -= i;
		}
		if (looks_like_mail(d, len)) {
			if (depth == 0)
				imp->kind = "mail";
			old = imp_push(imp->container, sizeof(imp->container),
			    "%s%s", imp->container[0] ? "/" : "", "mail");
			rc = mime_entity(imp, d, len, depth);
			imp_pop(imp->container, old);
			return rc;
		}
	}
	if (flags & IMP_SKIP)
		return 0;
	return imp_fail(imp, "neither XML, gzip, zip%s",
	    (flags & IMP_MAIL) ? " nor a mail" : "");
}

int
report_import(const void *data, size_t len, const char *name,
    int (*cb)(const struct report_parsed *r, void *arg), void *arg,
    char *err, size_t errlen)
{
	struct imp imp;
	int rc;

	memset(&imp, 0, sizeof(imp));
	imp.name = name != NULL ? name : "input";
	imp.cb = cb;
	imp.arg = arg;
	imp.err = err;
	imp.errlen = errlen;
	imp.kind = "XML";
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (len > REPORT_IMPORT_MAX_INPUT)
		return imp_fail(&imp, "input over %u MB",
		    REPORT_IMPORT_MAX_INPUT >> 20);
	if (len == 0 || data == NULL)
		return imp_fail(&imp, "empty input");
	imp.budget = (uint64_t)len * REPORT_IMPORT_MAX_RATIO;
	if (imp.budget > IMP_MAX_TOTAL)
		imp.budget = IMP_MAX_TOTAL;
	xmlInitParser();
	rc = imp_blob(&imp, data, len, 0, IMP_MAIL);
	if (rc == -1)
		return -1;
	if (rc == IMP_STOP) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s: stopped by the caller",
			    imp.name);
		return imp.cbrc;
	}
	if (imp.found == 0) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s: no DMARC report found in "
			    "the %s", imp.name, imp.kind);
		return 0;
	}
	return imp.found;
}
