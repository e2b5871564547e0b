/*
 * auth/spf_macro.c: macro strings (RFC 7208 7): syntax and expansion.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/spf_int.h"

/* RFC 7208 7.1: delimiter = "." / "-" / "+" / "," / "/" / "_" / "=" */
static int
is_delim(char c)
{
	return c != '\0' && strchr(".-+,/_=", c) != NULL;
}

/* RFC 3986 unreserved, kept as is by the URL escaping of 7.3 */
static int
is_unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	    c == '~';
}

static int
put(struct buf *out, const char *p, size_t n)
{
	if (out == NULL)
		return 0;
	if (out->len + n > SPF_EXPAND_MAX)
		return -2;
	return buf_append(out, p, n) == -1 ? -2 : 0;
}

static int
put_escaped(struct buf *out, const char *p, size_t n, int esc)
{
	static const char hex[] = "0123456789ABCDEF";
	char tri[3];
	size_t i;
	int rc;

	if (!esc)
		return put(out, p, n);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (is_unreserved(c)) {
			rc = put(out, (const char *)&p[i], 1);
		} else {
			tri[0] = '%';
			tri[1] = hex[c >> 4];
			tri[2] = hex[c & 15];
			rc = put(out, tri, 3);
		}
		if (rc != 0)
			return rc;
	}
	return 0;
}

static const char *
letter_value(const struct spf_macro_ctx *c, char l, char *tbuf, size_t tlen)
{
	switch (l) {
	case 's': return c->sender;
	case 'l': return c->local;
	case 'o': return c->sdomain;
	case 'd': return c->domain;
	case 'i': return c->ip_i;
	case 'p': return c->ptr != NULL ? c->ptr : "unknown";
	case 'v': return c->v;
	case 'h': return c->helo;
	case 'c': return c->ip_c;
	case 'r': return c->receiver != NULL ? c->receiver : "unknown";
	case 't':
		snprintf(tbuf, tlen, "%lld", c->now);
		return tbuf;
	}
	return "";
}

/*
 * RFC 7208 7.3: split on the delimiters, reverse if asked, keep the
 * rightmost n parts, join with ".".
 */
static int
transform(struct buf *out, const char *val, const char *delims,
    size_t ndelims, size_t keep, int rev, int esc)
{
	size_t len = strlen(val), nparts = 1, i, j, first, *start = NULL;
	int rc = -2;

	for (i = 0; i < len; i++)
		if (memchr(delims, val[i], ndelims) != NULL)
			nparts++;
	/* start[k]..start[k+1]-1 is part k (the delimiter excluded) */
	if ((start = calloc(nparts + 1, sizeof(*start))) == NULL)
		return -2;
	for (i = 0, j = 1; i < len; i++)
		if (memchr(delims, val[i], ndelims) != NULL)
			start[j++] = i + 1;
	start[nparts] = len + 1;
	if (keep == 0 || keep > nparts)
		keep = nparts;
	first = nparts - keep;
	for (i = first; i < nparts; i++) {
		size_t k = rev ? nparts - 1 - i : i;
		size_t b = start[k], e = start[k + 1] - 1;

		if (i > first && (rc = put(out, ".", 1)) != 0)
			goto fail;
		if ((rc = put_escaped(out, val + b, e - b, esc)) != 0)
			goto fail;
	}
	rc = 0;
fail:
	free(start);
	return rc;
}

int
spf_macro_expand(const struct spf_macro_ctx *ctx, const char *src,
    size_t len, int exp, struct buf *out)
{
	char delims[8], tbuf[32];
	size_t i = 0, ndelims, keep;
	int rc, rev, esc;
	char l;

	while (i < len) {
		unsigned char c = (unsigned char)src[i];

		/* RFC 7208 7.1: macro-literal is visible ASCII; the
		 * explanation string also has spaces */
		if (c < 0x20 || c > 0x7e)
			return -1;
		if (c != '%') {
			if ((rc = put(out, &src[i], 1)) != 0)
				return rc;
			i++;
			continue;
		}
		if (++i >= len)
			return -1;
		switch (src[i]) {
		case '%':
			rc = put(out, "%", 1);
			break;
		case '_':
			rc = put(out, " ", 1);
			break;
		case '-':
			rc = put(out, "%20", 3);
			break;
		case '{':
			rc = 0;
			break;
		default:
			/* RFC 7208 7.1: any other '%' is a syntax error */
			return -1;
		}
		if (rc != 0)
			return rc;
		if (src[i++] != '{')
			continue;
		if (i >= len)
			return -1;
		l = src[i++];
		esc = l >= 'A' && l <= 'Z';
		if (esc)
			l = (char)(l - 'A' + 'a');
		if (strchr("slodipvhcrt", l) == NULL || l == '\0')
			return -1;
		/* RFC 7208 7.3: c, r and t only in explanations */
		if (!exp && strchr("crt", l) != NULL)
			return -1;
		keep = 0;
		if (i < len && src[i] >= '0' && src[i] <= '9') {
			while (i < len && src[i] >= '0' && src[i] <= '9') {
				/* no overflow: anything past 128 keeps all */
				if (keep < 1000)
					keep = keep * 10 + (size_t)(src[i] - '0');
				i++;
			}
			/* RFC 7208 7.1: a DIGIT transformer is nonzero */
			if (keep == 0)
				return -1;
		}
		rev = 0;
		if (i < len && (src[i] == 'r' || src[i] == 'R')) {
			rev = 1;
			i++;
		}
		ndelims = 0;
		while (i < len && is_delim(src[i])) {
			if (memchr(delims, src[i], ndelims) == NULL)
				delims[ndelims++] = src[i];
			i++;
		}
		if (i >= len || src[i] != '}')
			return -1;
		i++;
		if (ndelims == 0)
			delims[ndelims++] = '.';
		if (out == NULL || ctx == NULL)
			continue;
		rc = transform(out, letter_value(ctx, l, tbuf, sizeof(tbuf)),
		    delims, ndelims, keep, rev, esc);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int
spf_macro_uses_p(const char *src, size_t len)
{
	size_t i;

	for (i = 0; i + 2 < len; i++) {
		if (src[i] != '%')
			continue;
		if (src[i + 1] == '{' && (src[i + 2] == 'p' ||
		    src[i + 2] == 'P'))
			return 1;
		i++;	/* skip the escaped octet of %% %_ %- */
	}
	return 0;
}
