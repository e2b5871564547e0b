/*
 * report/import_xml: one XML document of the import (import.c) read into a
 * struct report_parsed and handed to the callback: the libxml2 streaming
 * parse of <feedback>, the recovering parse of a small document that is
 * not well-formed, and the values cleaned (UTF-8, case, counts, times).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlreader.h>
#include <libxml/xmlerror.h>

#include "lib/buf.h"
#include "report/import_int.h"

#define NS_DMARC2	"urn:ietf:params:xml:ns:dmarc-2.0"

#define IMP_MAX_RECOVER	(4u << 20)	/* XML parsed again to recover */

#if LIBXML_VERSION >= 21200
#define XERR_CONST const
#else
#define XERR_CONST
#endif

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

int
import_is_ws(int c)
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

	while (n > 0 && import_is_ws((unsigned char)s[0])) {
		s++;
		n--;
	}
	while (n > 0 && import_is_ws((unsigned char)s[n - 1]))
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
	while (n > 0 && import_is_ws((unsigned char)x->msg[n - 1]))
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
		return import_fail(imp, "record %zu: no source_ip", i + 1);
	af = strchr(ip, ':') != NULL ? AF_INET6 : AF_INET;
	if (inet_pton(af, ip, addr) != 1)
		return import_fail(imp, "record %zu: source_ip \"%s\" is not "
		    "an IP address", i + 1, imp_quote(ip, q, sizeof(q)));
	/* RFC 5952 form */
	if ((norm = arena_alloc(&x->arena, INET6_ADDRSTRLEN)) == NULL ||
	    inet_ntop(af, addr, norm, INET6_ADDRSTRLEN) == NULL) {
		x->nomem = 1;
		return 0;
	}
	row->source_ip = norm;
	if (*count == '\0' && xchild(rw, "count") == NULL)
		return import_fail(imp, "record %zu: no count", i + 1);
	if ((row->count = parse_count(count)) < 0)
		return import_fail(imp, "record %zu: count \"%s\" is not a "
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
		return import_fail(imp, "no report_metadata/org_name");
	m->org_name = xfield(x, md, "org_name", 0);
	m->email = xfield(x, md, "email", 0);
	/* an empty org_name: the domain of the email, as parsedmarc does */
	if (*m->org_name == '\0' && (at = strrchr(m->email, '@')) != NULL)
		m->org_name = value_copy(&x->arena, at + 1, strlen(at + 1), 1);
	if (m->org_name == NULL)
		m->org_name = "";
	if (*m->org_name == '\0' && !x->nomem)
		return import_fail(imp, "report_metadata/org_name is empty");
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
		return import_fail(imp, "no report_metadata/report_id");
	if ((dr = xchild(md, "date_range")) == NULL)
		return import_fail(imp, "no report_metadata/date_range");
	v = xfield(x, dr, "begin", 0);
	if (parse_time(v, &m->begin) == -1)
		return import_fail(imp, "date_range/begin \"%s\" is not a time",
		    imp_quote(v, q, sizeof(q)));
	v = xfield(x, dr, "end", 0);
	if (parse_time(v, &m->end) == -1)
		return import_fail(imp, "date_range/end \"%s\" is not a time",
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
		return import_fail(x->imp, "no policy_published/domain");
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
		return import_fail(x->imp, "more than %d records",
		    REPORT_IMPORT_MAX_RECORDS);
	if (x->r.nrows == x->cap) {
		cap = x->cap == 0 ? 64 : x->cap * 2;
		if (cap > REPORT_IMPORT_MAX_RECORDS)
			cap = REPORT_IMPORT_MAX_RECORDS;
		if ((nr = reallocarray(x->rows, cap, sizeof(*nr))) == NULL)
			return import_fail(x->imp, "out of memory for %zu "
			    "records", cap);
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
		return import_fail(imp, "no report_metadata");
	if (!x->have_policy)
		return import_fail(imp, "no policy_published");
	if (x->nomem)
		return import_fail(imp, "out of memory");
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

	return import_fail(imp, "not a DMARC aggregate report (root element "
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
		return import_fail(imp, "XML: out of memory");
	for (;;) {
		ret = next ? xmlTextReaderNext(rd) : xmlTextReaderRead(rd);
		next = 0;
		if (ret != 1)
			break;
		if (xmlTextReaderNodeType(rd) == XML_READER_TYPE_DOCUMENT_TYPE) {
			rc = import_fail(imp, "XML with a DOCTYPE refused");
			goto out;
		}
		if (xmlTextReaderNodeType(rd) != XML_READER_TYPE_ELEMENT)
			continue;
		if ((depth = xmlTextReaderDepth(rd)) >=
		    REPORT_IMPORT_MAX_XML_DEPTH) {
			rc = import_fail(imp, "XML nested deeper than %d "
			    "levels", REPORT_IMPORT_MAX_XML_DEPTH);
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
			rc = import_fail(imp, "XML nested deeper than %d "
			    "levels", REPORT_IMPORT_MAX_XML_DEPTH);
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
		return import_fail(imp, "XML: line %d: %s", xe->line,
		    xe->set ? xe->msg : "not well-formed");
	}
	if (doc->intSubset != NULL || doc->extSubset != NULL)
		rc = import_fail(imp, "XML with a DOCTYPE refused");
	else if (xml_too_deep(root, REPORT_IMPORT_MAX_XML_DEPTH))
		rc = import_fail(imp, "XML nested deeper than %d levels",
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

int
import_xml(struct imp *imp, const char *data, size_t len)
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
		return import_fail(imp, "XML over %u MB",
		    REPORT_IMPORT_MAX_XML >> 20);
	if (len > INT_MAX)
		return import_fail(imp, "XML too large");
	if ((p = memchr(data, '\0', len)) != NULL)
		return import_fail(imp, "NUL octet in XML at offset %zu",
		    (size_t)(p - data));
	/*
	 * No DTD of any kind: refused before the parser sees it, so no
	 * entity is ever declared, expanded or fetched.
	 */
	if (memcasemem(data, len, "<!DOCTYPE") != NULL ||
	    memcasemem(data, len, "<!ENTITY") != NULL)
		return import_fail(imp, "XML with a DOCTYPE or ENTITY "
		    "declaration refused");

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
		rc = import_fail(imp, "XML: line %d: %s", xe.line,
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
