/*
 * report/import_mime: the MIME entities of a report mail (import.c): the
 * header section, multipart bodies part by part (RFC 2046 5.1), base64
 * and quoted-printable (RFC 2045 6.7, 6.8); a part that may hold a report
 * (XML, gzip, zip, a message/rfc822) goes back to the walk.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "report/import_int.h"
#include "smtp/message.h"

#define IMP_MAX_PARTS	1000		/* MIME parts per multipart */
#define IMP_MAX_HEADER	(1u << 20)	/* header section of a MIME entity */
#define IMP_MAX_FIELDS	2000

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
		return import_fail(imp, "out of memory");
	if (msg_parser_feed(mp, data, len) == -1 || msg_parser_end(mp) == -1) {
		msg_parser_free(mp);
		return import_fail(imp, "MIME header section too large");
	}
	for (i = 0; i < msg_parser_count(mp); i++) {
		f = msg_parser_field(mp, i);
		if (f->name_len == 0)
			continue;
		/* RFC 5322 2.2.3: unfold */
		if ((v = malloc(f->value_len + 1)) == NULL) {
			msg_parser_free(mp);
			return import_fail(imp, "out of memory");
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
		return import_fail(imp, "%s without a usable boundary",
		    h->type);
	/* the preamble is ignored */
	if (mime_delim(b, len, 0, h->boundary, &start, &first, &close) == -1)
		return import_fail(imp, "%s: no boundary line", h->type);
	/* a truncated multipart is refused before any part is read */
	for (parts = 0, after = first; !close; parts++) {
		if (parts >= IMP_MAX_PARTS)
			return import_fail(imp, "%s: more than %d parts",
			    h->type, IMP_MAX_PARTS);
		if (mime_delim(b, len, after, h->boundary, &start, &after,
		    &close) == -1)
			return import_fail(imp, "%s: unterminated (no closing "
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
		old = import_push(imp->where, sizeof(imp->where), "part %d: ",
		    n);
		if ((rc = import_mime_entity(imp, b + from, end - from,
		    depth + 1)) != 0)
			return rc;
		import_pop(imp->where, old);
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
int
import_mime_entity(struct imp *imp, const char *data, size_t len, int depth)
{
	struct mime_hdr h;
	char *dec = NULL;
	const char *body;
	size_t blen;
	int rc, is_msg;

	if (depth > REPORT_IMPORT_MAX_DEPTH)
		return import_deep(imp);
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
		return import_fail(imp, "unknown Content-Transfer-Encoding");
	if (h.cte != CTE_IDENTITY) {
		if ((dec = malloc(blen + 1)) == NULL)
			return import_fail(imp, "out of memory");
		blen = h.cte == CTE_BASE64 ? b64_decode(body, blen, dec) :
		    qp_decode(body, blen, dec);
		body = dec;
	}
	if (is_msg)
		rc = import_blob(imp, body, blen, depth + 1, IMP_MAIL);
	else
		rc = import_blob(imp, body, blen, depth + 1, 0);
	free(dec);
	return rc;
}
