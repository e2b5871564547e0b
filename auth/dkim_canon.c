/*
 * auth/dkim_canon.c: simple and relaxed canonicalization (RFC 6376 3.4)
 * of header fields and of the body, the body hashed as it streams in
 * (with the l= limit, 3.5), and the header hash (3.7, 5.4.2).
 */
#include "auth/dkim_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BODY_OBUF	4096

struct dkim_body {
	int relaxed;
	long long limit;		/* < 0: no l= */
	unsigned long long total;	/* canonical octets produced */
	unsigned long long crlfs;	/* empty lines held back */
	int cr;				/* a CR seen, LF not yet */
	int wsp;			/* relaxed: WSP run held back */
	int any;			/* some non-empty content produced */
	EVP_MD_CTX *md;
	char obuf[BODY_OBUF];
	size_t olen;
};

static int
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

int
dkim_canon_header(struct buf *out, const char *raw, size_t len, int relaxed,
    int crlf)
{
	const char *colon, *v, *end;
	size_t i, nlen;
	int sp, started;

	if (!relaxed) {
		/* RFC 6376 3.4.1: no change at all */
		if (buf_append(out, raw, len) == -1)
			return -1;
		return crlf ? buf_append(out, "\r\n", 2) : 0;
	}
	/* RFC 6376 3.4.2: lowercase name, unfold, compress WSP, trim */
	if ((colon = memchr(raw, ':', len)) == NULL)
		colon = raw + len;
	nlen = colon - raw;
	while (nlen > 0 && is_wsp(raw[nlen - 1]))
		nlen--;
	for (i = 0; i < nlen; i++) {
		char c = raw[i];

		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		if (buf_appendc(out, c) == -1)
			return -1;
	}
	if (buf_appendc(out, ':') == -1)
		return -1;
	v = colon < raw + len ? colon + 1 : raw + len;
	end = raw + len;
	sp = started = 0;
	for (; v < end; v++) {
		if (*v == '\r' || *v == '\n')
			continue;
		if (is_wsp(*v)) {
			sp = 1;
			continue;
		}
		/* WSP before the value and at its end is dropped */
		if (sp && started && buf_appendc(out, ' ') == -1)
			return -1;
		sp = 0;
		started = 1;
		if (buf_appendc(out, *v) == -1)
			return -1;
	}
	return crlf ? buf_append(out, "\r\n", 2) : 0;
}

struct dkim_body *
dkim_body_new(int relaxed, long long limit)
{
	struct dkim_body *b;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	b->relaxed = relaxed;
	b->limit = limit;
	if ((b->md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(b->md, EVP_sha256(), NULL) != 1) {
		dkim_body_free(b);
		return NULL;
	}
	return b;
}

void
dkim_body_free(struct dkim_body *b)
{
	if (b == NULL)
		return;
	EVP_MD_CTX_free(b->md);
	free(b);
}

static int
body_flush(struct dkim_body *b)
{
	size_t n = b->olen;

	if (b->limit >= 0) {
		/* RFC 6376 3.5 l=: only the first l octets are hashed */
		unsigned long long done = b->total - b->olen;

		if (done >= (unsigned long long)b->limit)
			n = 0;
		else if (b->limit - done < n)
			n = b->limit - done;
	}
	b->olen = 0;
	if (n > 0 && EVP_DigestUpdate(b->md, b->obuf, n) != 1)
		return -1;
	return 0;
}

static int
body_out(struct dkim_body *b, const char *p, size_t n)
{
	while (n > 0) {
		size_t k = BODY_OBUF - b->olen;

		if (k > n)
			k = n;
		memcpy(b->obuf + b->olen, p, k);
		b->olen += k;
		b->total += k;
		p += k;
		n -= k;
		if (b->olen == BODY_OBUF && body_flush(b) == -1)
			return -1;
	}
	return 0;
}

/* Content other than line breaks and (relaxed) WSP: what was held back
 * goes out first, then the run itself. */
static int
body_content(struct dkim_body *b, const char *p, size_t n)
{
	for (; b->crlfs > 0; b->crlfs--)
		if (body_out(b, "\r\n", 2) == -1)
			return -1;
	if (b->wsp) {
		/* RFC 6376 3.4.4: a WSP run becomes one SP */
		b->wsp = 0;
		if (body_out(b, " ", 1) == -1)
			return -1;
	}
	b->any = 1;
	return body_out(b, p, n);
}

/* Runs of ordinary octets go out whole; only CR, LF after CR and
 * (relaxed) WSP need a decision one octet at a time. */
int
dkim_body_update(struct dkim_body *b, const char *p, size_t n)
{
	size_t i = 0, j;

	while (i < n) {
		char c = p[i];

		if (b->cr) {
			b->cr = 0;
			if (c == '\n') {
				/* RFC 6376 3.4.4: WSP at line end removed */
				b->wsp = 0;
				b->crlfs++;
				i++;
				continue;
			}
			if (body_content(b, "\r", 1) == -1)
				return -1;
		}
		if (c == '\r') {
			b->cr = 1;
			i++;
			continue;
		}
		if (b->relaxed && is_wsp(c)) {
			b->wsp = 1;
			i++;
			continue;
		}
		for (j = i + 1; j < n && p[j] != '\r' &&
		    !(b->relaxed && is_wsp(p[j])); j++)
			;
		if (body_content(b, p + i, j - i) == -1)
			return -1;
		i = j;
	}
	return 0;
}

int
dkim_body_final(struct dkim_body *b, unsigned char out[DKIM_HASH_LEN],
    unsigned long long *total_r)
{
	unsigned len;

	if (b->cr) {
		b->cr = 0;
		if (body_content(b, "\r", 1) == -1)
			return -1;
	}
	b->wsp = 0;
	/*
	 * RFC 6376 3.4.3 / 3.4.4: trailing empty lines go, a last line
	 * gets its CRLF; an empty body is CRLF (simple) or nothing
	 * (relaxed). Here b->any tells whether there was a non-empty line.
	 */
	if (b->any || !b->relaxed) {
		if (body_out(b, "\r\n", 2) == -1)
			return -1;
	}
	if (body_flush(b) == -1)
		return -1;
	if (EVP_DigestFinal_ex(b->md, out, &len) != 1 || len != DKIM_HASH_LEN)
		return -1;
	*total_r = b->total;
	return 0;
}

int
dkim_header_hash(const struct msg_field *const *fields, size_t nfields,
    char *const *names, size_t nnames, int relaxed, const char *sigraw,
    size_t siglen, unsigned char out[DKIM_HASH_LEN])
{
	struct buf b = { 0 };
	unsigned char *used = NULL;
	EVP_MD_CTX *md = NULL;
	size_t i, len, nl;
	unsigned dlen;
	int ret = -1;

	if ((used = calloc(nfields + 1, 1)) == NULL)
		goto fail;
	for (i = 0; i < nnames; i++) {
		size_t j;

		nl = strlen(names[i]);
		/* RFC 6376 5.4.2: the last unused instance, bottom-up */
		for (j = nfields; j-- > 0;) {
			const struct msg_field *f = fields[j];

			if (used[j] || f->name_len != nl ||
			    strncasecmp(f->name, names[i], nl) != 0)
				continue;
			used[j] = 1;
			len = f->raw_len;
			if (len > 0 && f->raw[len - 1] == '\n')
				len--;
			if (len > 0 && f->raw[len - 1] == '\r')
				len--;
			if (dkim_canon_header(&b, f->raw, len, relaxed, 1) == -1)
				goto fail;
			break;
		}
		/* none left: contributes nothing (over-signing) */
	}
	if (dkim_canon_header(&b, sigraw, siglen, relaxed, 0) == -1)
		goto fail;
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, b.data, b.len) != 1 ||
	    EVP_DigestFinal_ex(md, out, &dlen) != 1)
		goto fail;
	ret = 0;
fail:
	EVP_MD_CTX_free(md);
	free(used);
	buf_free(&b);
	return ret;
}
