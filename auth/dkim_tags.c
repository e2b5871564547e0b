/*
 * auth/dkim_tags.c: tag=value lists (RFC 6376 3.2), used by the
 * DKIM-Signature field and key records; and base64 with FWS.
 */
#include "auth/dkim_int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

/* FWS: WSP, or CRLF followed by WSP (RFC 5322 3.2.2; a bare LF too). */
static size_t
tag_fws(const char *s, size_t len, size_t i)
{
	for (;;) {
		if (i < len && (s[i] == ' ' || s[i] == '\t')) {
			i++;
			continue;
		}
		if (i + 2 < len && s[i] == '\r' && s[i + 1] == '\n' &&
		    (s[i + 2] == ' ' || s[i + 2] == '\t')) {
			i += 3;
			continue;
		}
		if (i + 1 < len && s[i] == '\n' &&
		    (s[i + 1] == ' ' || s[i + 1] == '\t')) {
			i += 2;
			continue;
		}
		return i;
	}
}

/* RFC 6376 3.2: tag-name = ALPHA *ALNUMPUNC */
static int
tag_namechar(char c, int first)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return 1;
	return !first && ((c >= '0' && c <= '9') || c == '_');
}

/* RFC 6376 3.2: VALCHAR = %x21-3A / %x3C-7E */
static int
tag_valchar(char c)
{
	return (unsigned char)c >= 0x21 && (unsigned char)c <= 0x7e && c != ';';
}

int
dkim_tags_parse(const char *s, size_t len, struct dkim_taglist *tl,
    const char **err_r)
{
	struct dkim_tag *t;
	size_t i = 0, j, k;

	tl->n = 0;
	for (;;) {
		i = tag_fws(s, len, i);
		if (i == len) {
			/* trailing ';' allowed, an empty list is not */
			if (tl->n == 0)
				goto syntax;
			return 0;
		}
		if (tl->n == DKIM_MAX_TAGS) {
			*err_r = "too many tags";
			return -1;
		}
		t = &tl->tag[tl->n];
		if (!tag_namechar(s[i], 1))
			goto syntax;
		t->name = s + i;
		for (j = i + 1; j < len && tag_namechar(s[j], 0); j++)
			;
		t->name_len = j - i;
		i = tag_fws(s, len, j);
		if (i == len || s[i] != '=')
			goto syntax;
		t->val_off = ++i;
		i = tag_fws(s, len, i);
		t->value = s + i;
		t->end_off = i;
		/* tag-value = [ tval *( 1*(WSP / FWS) tval ) ] */
		while (i < len && tag_valchar(s[i])) {
			while (i < len && tag_valchar(s[i]))
				i++;
			t->end_off = i;
			i = tag_fws(s, len, i);
		}
		t->value_len = t->end_off - (t->value - s);
		for (k = 0; k < tl->n; k++)
			if (tl->tag[k].name_len == t->name_len &&
			    memcmp(tl->tag[k].name, t->name, t->name_len) == 0) {
				/* RFC 6376 3.2: duplicate tag is an error */
				*err_r = "duplicate tag";
				return -1;
			}
		tl->n++;
		if (i == len)
			return 0;
		if (s[i] != ';')
			goto syntax;
		i++;
	}
syntax:
	*err_r = "tag-list syntax error";
	return -1;
}

const struct dkim_tag *
dkim_tags_find(const struct dkim_taglist *tl, const char *name)
{
	size_t i, n = strlen(name);

	for (i = 0; i < tl->n; i++)
		if (tl->tag[i].name_len == n &&
		    memcmp(tl->tag[i].name, name, n) == 0)
			return &tl->tag[i];
	return NULL;
}

char *
dkim_tag_strip(const struct dkim_tag *t)
{
	char *s;
	size_t i, n = 0;

	if ((s = malloc(t->value_len + 1)) == NULL)
		return NULL;
	for (i = 0; i < t->value_len; i++) {
		char c = t->value[i];

		if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
			s[n++] = c;
	}
	s[n] = '\0';
	return s;
}

int
dkim_tag_is(const struct dkim_tag *t, const char *s)
{
	return t->value_len == strlen(s) && memcmp(t->value, s, t->value_len) == 0;
}

static int
b64_val(unsigned char c)
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

/*
 * Strict: only the alphabet, then at most two '=' completing the last
 * quantum; FWS anywhere (RFC 6376 3.5 b=, bh=; 3.6.1 p=).
 */
int
dkim_b64_decode(const char *s, size_t n, unsigned char **out_r, size_t *len_r)
{
	unsigned char *out;
	unsigned acc = 0;
	size_t i, o = 0, nch = 0, pad = 0;
	int v;

	if ((out = malloc(n / 4 * 3 + 3)) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned char c = s[i];

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		if (pad || (v = b64_val(c)) < 0)
			goto fail;
		acc = acc << 6 | (unsigned)v;
		if (++nch % 4 == 0) {
			out[o++] = acc >> 16;
			out[o++] = acc >> 8;
			out[o++] = acc;
			acc = 0;
		}
	}
	switch (nch % 4) {
	case 0:
		if (pad != 0)
			goto fail;
		break;
	case 2:
		if (pad != 0 && pad != 2)
			goto fail;
		out[o++] = acc >> 4;
		break;
	case 3:
		if (pad > 1)
			goto fail;
		out[o++] = acc >> 10;
		out[o++] = acc >> 2;
		break;
	default:
		goto fail;
	}
	*out_r = out;
	*len_r = o;
	return 0;
fail:
	free(out);
	return -1;
}

int
dkim_b64_encode(const unsigned char *p, size_t n, struct buf *out)
{
	size_t need = (n + 2) / 3 * 4;

	if (buf_reserve(out, need + 1) == -1)
		return -1;
	EVP_EncodeBlock((unsigned char *)out->data + out->len, p, (int)n);
	out->len += need;
	out->data[out->len] = '\0';
	return 0;
}

/* RFC 6376 3.5 d=, s=: labels of letters, digits, '-' (and '_' seen in
 * practice for selectors), 1-63 octets, 253 in all. */
int
dkim_domain_ok(const char *s, size_t n)
{
	size_t i, lab = 0;

	if (n == 0 || n > 253)
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c == '.') {
			if (lab == 0)
				return 0;
			lab = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return 0;
		if (++lab > 63)
			return 0;
	}
	return lab != 0;
}
