/*
 * auth/orgdomain.c: the RFC 7489 3.2 Organizational Domain from the
 * Public Suffix List (libpsl), and U-label to A-label conversion (RFC
 * 9989 5.3.1: "If the domain is a U-label, the domain MUST be converted
 * to an A-label"), with the label separators of RFC 3490 3.1.
 *
 * libpsl keeps its IDN rules in both forms, so the registrable domain is
 * asked for the A-label form and comes back in it. The Punycode encoder
 * is RFC 3492 6.3, done here because libpsl exports no ToASCII.
 */
#include "auth/orgdomain.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpsl.h>

#define LABEL_MAX	63	/* RFC 1035 2.3.4 */
#define NAME_MAX_LEN	253	/* RFC 1035 2.3.4, without the root dot */

struct orgdomain_psl {
	psl_ctx_t *ctx;
};

struct orgdomain_psl *
orgdomain_psl_load(const char *path, char *err, size_t errlen)
{
	struct orgdomain_psl *p;

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (path == NULL || *path == '\0')
		p->ctx = psl_latest(NULL);
	else
		p->ctx = psl_load_file(path);
	if (p->ctx == NULL) {
		snprintf(err, errlen, "%s: cannot load the public suffix list",
		    path != NULL && *path != '\0' ? path : "system list");
		free(p);
		return NULL;
	}
	return p;
}

void
orgdomain_psl_free(struct orgdomain_psl *p)
{
	if (p == NULL)
		return;
	psl_free(p->ctx);
	free(p);
}

/* RFC 3492 6.1 */
static uint32_t
puny_adapt(uint32_t delta, uint32_t npoints, int first)
{
	uint32_t k = 0;

	delta = first ? delta / 700 : delta / 2;
	delta += delta / npoints;
	while (delta > ((36 - 1) * 26) / 2) {
		delta /= 36 - 1;
		k += 36;
	}
	return k + (36 * delta) / (delta + 38);
}

static int
puny_put(char *out, size_t n, size_t *o, char c)
{
	if (*o + 1 >= n)
		return -1;
	out[(*o)++] = c;
	return 0;
}

static char
puny_digit(uint32_t d)
{
	return (char)(d < 26 ? 'a' + d : '0' + (d - 26));
}

/* RFC 3492 6.3, with the prefix "xn--" (RFC 5890 2.3.2.1). */
static int
puny_encode(const uint32_t *cp, size_t ncp, char *out, size_t n, size_t *o)
{
	uint32_t cur = 128, delta = 0, bias = 72, h, b, m, q, k, t;
	size_t i;

	for (i = 0; i < 4; i++)
		if (puny_put(out, n, o, "xn--"[i]) == -1)
			return -1;
	for (i = 0, b = 0; i < ncp; i++)
		if (cp[i] < 128) {
			if (puny_put(out, n, o, (char)cp[i]) == -1)
				return -1;
			b++;
		}
	if (b > 0 && puny_put(out, n, o, '-') == -1)
		return -1;
	for (h = b; h < ncp; delta++, cur++) {
		for (m = UINT32_MAX, i = 0; i < ncp; i++)
			if (cp[i] >= cur && cp[i] < m)
				m = cp[i];
		/* no overflow: at most 63 code points below 0x110000 */
		delta += (m - cur) * (h + 1);
		cur = m;
		for (i = 0; i < ncp; i++) {
			if (cp[i] < cur)
				delta++;
			if (cp[i] != cur)
				continue;
			for (q = delta, k = 36;; k += 36) {
				t = k <= bias ? 1 : k >= bias + 26 ? 26 : k - bias;
				if (q < t)
					break;
				if (puny_put(out, n, o,
				    puny_digit(t + (q - t) % (36 - t))) == -1)
					return -1;
				q = (q - t) / (36 - t);
			}
			if (puny_put(out, n, o, puny_digit(q)) == -1)
				return -1;
			bias = puny_adapt(delta, h + 1, h == b);
			delta = 0;
			h++;
		}
	}
	return 0;
}

/* One UTF-8 sequence at s[0..len): the code point, or -1 (overlong,
 * surrogate, past U+10FFFF, truncated). */
static int
utf8_next(const unsigned char *s, size_t len, size_t *used, uint32_t *cp)
{
	uint32_t c = s[0], min;
	size_t need, i;

	if (c < 0x80) {
		need = 0;
		min = 0;
	} else if ((c & 0xe0) == 0xc0) {
		need = 1;
		c &= 0x1f;
		min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		need = 2;
		c &= 0x0f;
		min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		need = 3;
		c &= 0x07;
		min = 0x10000;
	} else
		return -1;
	if (need >= len)
		return -1;
	for (i = 1; i <= need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return -1;
	*used = need + 1;
	*cp = c;
	return 0;
}

static int
ldh(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
	    c == '_';
}

/* One label (already lower case) appended to out. */
static int
label_out(const char *p, size_t len, char *out, size_t n, size_t *o)
{
	uint32_t cp[LABEL_MAX + 1];
	size_t i, used, ncp = 0, start = *o;
	int ascii = 1;

	for (i = 0; i < len; i++)
		if ((unsigned char)p[i] >= 0x80)
			ascii = 0;
	if (ascii) {
		for (i = 0; i < len; i++)
			if (!ldh((unsigned char)p[i]) ||
			    puny_put(out, n, o, p[i]) == -1)
				return -1;
	} else {
		for (i = 0; i < len; i += used) {
			if (ncp > LABEL_MAX || utf8_next((const unsigned char *)
			    p + i, len - i, &used, &cp[ncp]) == -1)
				return -1;
			if (cp[ncp] < 0x80 && !ldh((unsigned char)cp[ncp]))
				return -1;
			ncp++;
		}
		if (ncp > LABEL_MAX || puny_encode(cp, ncp, out, n, o) == -1)
			return -1;
	}
	return *o - start > LABEL_MAX ? -1 : 0;
}

int
orgdomain_ascii(const char *domain, char *out, size_t n)
{
	char *lower = NULL;
	const char *s = domain, *p, *e;
	size_t len, i, o = 0, used;
	uint32_t cp;
	int ret = -1, eight = 0;

	if (domain == NULL || n == 0)
		return -1;
	len = strlen(domain);
	/* valid UTF-8 first: the lower-casing would mend it */
	for (i = 0; i < len; i += used) {
		if (utf8_next((const unsigned char *)domain + i, len - i, &used,
		    &cp) == -1)
			return -1;
		eight |= cp >= 0x80;
	}
	if (eight) {
		if (psl_str_to_utf8lower(domain, "utf-8", NULL, &lower) !=
		    PSL_SUCCESS || lower == NULL)
			return -1;
		/* RFC 3490 3.1: U+3002, U+FF0E and U+FF61 are dots */
		for (i = o = 0; lower[i] != '\0'; i++, o++) {
			if (strncmp(lower + i, "\xe3\x80\x82", 3) == 0 ||
			    strncmp(lower + i, "\xef\xbc\x8e", 3) == 0 ||
			    strncmp(lower + i, "\xef\xbd\xa1", 3) == 0) {
				lower[o] = '.';
				i += 2;
			} else
				lower[o] = lower[i];
		}
		lower[o] = '\0';
		o = 0;
		s = lower;
	}
	len = strlen(s);
	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0)
		goto out;
	for (p = s;; p = e + 1) {
		char lab[LABEL_MAX * 4 + 1];

		if ((e = memchr(p, '.', (size_t)(s + len - p))) == NULL)
			e = s + len;
		if (e == p || (size_t)(e - p) >= sizeof(lab))
			goto out;
		for (i = 0; i < (size_t)(e - p); i++)
			lab[i] = (p[i] >= 'A' && p[i] <= 'Z') ? p[i] + 32 : p[i];
		if (label_out(lab, (size_t)(e - p), out, n, &o) == -1)
			goto out;
		if (e == s + len)
			break;
		if (puny_put(out, n, &o, '.') == -1)
			goto out;
	}
	if (o > NAME_MAX_LEN)
		goto out;
	out[o] = '\0';
	ret = 0;
out:
	if (ret == -1)
		out[0] = '\0';
	psl_free_string(lower);
	return ret;
}

int
orgdomain_psl(const struct orgdomain_psl *p, const char *domain, char *out,
    size_t n)
{
	char a[NAME_MAX_LEN + 2];
	const char *r;
	size_t len;

	if (p == NULL || domain == NULL || *domain == '.' || n == 0)
		return -1;
	if (orgdomain_ascii(domain, a, sizeof(a)) == -1)
		return -1;
	if ((r = psl_registrable_domain(p->ctx, a)) == NULL)
		return -1;
	if ((len = strlen(r)) >= n)
		return -1;
	memcpy(out, r, len + 1);
	return 0;
}
