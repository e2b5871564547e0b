/*
 * SASL PLAIN (RFC 4616) and LOGIN decoding for AUTH (RFC 4954).
 */
#include "smtp/sasl.h"

#include <string.h>

static const char sasl_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
sasl_b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* -1: not base64; -2: valid but longer than outsize. */
long
sasl_b64_decode(const char *in, size_t inlen, unsigned char *out,
    size_t outsize)
{
	size_t i, pad = 0, n;
	unsigned long acc = 0;
	long o = 0;

	/* RFC 4648 3.3, 4: the whole input is the alphabet, padded to a
	 * multiple of 4, padding only at the end. */
	if (inlen % 4 != 0)
		return -1;
	if (inlen > 0 && in[inlen - 1] == '=')
		pad = (inlen > 1 && in[inlen - 2] == '=') ? 2 : 1;
	for (i = 0; i < inlen - pad; i++)
		if (sasl_b64_value((unsigned char)in[i]) < 0)
			return -1;
	n = inlen / 4 * 3 - pad;
	if (n > outsize)
		return -2;
	for (i = 0; i < inlen; i++) {
		int v = i < inlen - pad ? sasl_b64_value((unsigned char)in[i]) : 0;

		acc = (acc << 6) | (unsigned long)v;
		if (i % 4 == 3) {
			unsigned char b[3] = { (unsigned char)(acc >> 16),
			    (unsigned char)(acc >> 8), (unsigned char)acc };
			size_t k, take = 3;

			if (i == inlen - 1)
				take = 3 - pad;
			for (k = 0; k < take; k++)
				out[o++] = b[k];
			acc = 0;
		}
	}
	return o;
}

int
sasl_b64_encode(const unsigned char *p, size_t n, char *out, size_t outsize)
{
	size_t i, o = 0;

	if (outsize < (n + 2) / 3 * 4 + 1)
		return -1;
	for (i = 0; i < n; i += 3) {
		unsigned long v = (unsigned long)p[i] << 16;

		if (i + 1 < n)
			v |= (unsigned long)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		out[o++] = sasl_b64[(v >> 18) & 63];
		out[o++] = sasl_b64[(v >> 12) & 63];
		out[o++] = i + 1 < n ? sasl_b64[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? sasl_b64[v & 63] : '=';
	}
	out[o] = '\0';
	return 0;
}

/* Copy one decoded field: non-empty (RFC 4616 2: 1*SAFE), NUL-free. */
static enum sasl_result
sasl_field(const unsigned char *p, size_t n, char *out_r)
{
	if (n == 0)
		return SASL_BAD_SYNTAX;
	if (memchr(p, '\0', n) != NULL)
		return SASL_NUL;
	if (n > SASL_FIELD_MAX)
		return SASL_TOO_LONG;
	memcpy(out_r, p, n);
	out_r[n] = '\0';
	return SASL_OK;
}

enum sasl_result
sasl_plain_decode(const char *line, size_t len, char *user_r, char *pass_r)
{
	/* The longest message that can succeed: three full fields, two NULs. */
	unsigned char msg[3 * SASL_FIELD_MAX + 2];
	const unsigned char *n1, *n2;
	size_t zlen, ulen;
	long n;
	enum sasl_result r;

	user_r[0] = pass_r[0] = '\0';
	if (len == 1 && line[0] == '=')
		return SASL_BAD_SYNTAX;		/* empty response */
	if ((n = sasl_b64_decode(line, len, msg, sizeof(msg))) == -1)
		return SASL_BAD_BASE64;
	if (n == -2)
		return SASL_TOO_LONG;
	if ((n1 = memchr(msg, '\0', (size_t)n)) == NULL ||
	    (n2 = memchr(n1 + 1, '\0', (size_t)n - (size_t)(n1 + 1 - msg))) == NULL) {
		r = SASL_BAD_SYNTAX;
		goto out;
	}
	zlen = (size_t)(n1 - msg);
	ulen = (size_t)(n2 - n1 - 1);
	if ((r = sasl_field(n1 + 1, ulen, user_r)) != SASL_OK ||
	    (r = sasl_field(n2 + 1, (size_t)n - (size_t)(n2 + 1 - msg),
	    pass_r)) != SASL_OK)
		goto out;
	/* RFC 4616 2: the authzid, when present, is whom to act as. We let
	 * a user act only as itself. */
	if (zlen > 0 && (zlen != ulen || memcmp(msg, n1 + 1, zlen) != 0))
		r = SASL_AUTHZID;
out:
	if (r != SASL_OK) {
		explicit_bzero(user_r, SASL_FIELD_MAX + 1);
		explicit_bzero(pass_r, SASL_FIELD_MAX + 1);
	}
	explicit_bzero(msg, sizeof(msg));
	return r;
}

enum sasl_result
sasl_login_decode(const char *line, size_t len, char *out_r)
{
	unsigned char msg[SASL_FIELD_MAX];
	enum sasl_result r;
	long n;

	out_r[0] = '\0';
	if ((n = sasl_b64_decode(line, len, msg, sizeof(msg))) == -1)
		return SASL_BAD_BASE64;
	if (n == -2)
		return SASL_TOO_LONG;
	r = sasl_field(msg, (size_t)n, out_r);
	explicit_bzero(msg, sizeof(msg));
	return r;
}

int
sasl_is_cancel(const char *line, size_t len)
{
	return len == 1 && line[0] == '*';
}

const char *
sasl_result_str(enum sasl_result r)
{
	switch (r) {
	case SASL_OK:
		return "ok";
	case SASL_BAD_BASE64:
		return "invalid base64";
	case SASL_BAD_SYNTAX:
		return "malformed response";
	case SASL_NUL:
		return "NUL in credentials";
	case SASL_TOO_LONG:
		return "credentials too long";
	case SASL_AUTHZID:
		return "authorization identity differs from the user";
	}
	return "?";
}
