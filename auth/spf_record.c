/*
 * auth/spf_record.c: the syntax of an SPF record (RFC 7208 4.5, 4.6,
 * 5, 6, 7.1), parsed once into terms; nothing is expanded here.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/spf_int.h"

static int
is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int
is_alnum(char c)
{
	return is_alpha(c) || is_digit(c);
}

int
spf_record_is_spf(const char *text, size_t len)
{
	/* RFC 7208 4.5: "v=spf1" followed by a space or the end */
	if (len < 6 || strncasecmp(text, "v=spf1", 6) != 0)
		return 0;
	return len == 6 || text[6] == ' ';
}

/*
 * RFC 7208 7.1: toplabel = ( *alphanum ALPHA *alphanum ) /
 * ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
 */
static int
toplabel_ok(const char *s, size_t len)
{
	int alpha = 0, dash = 0;
	size_t i;

	if (len == 0 || !is_alnum(s[0]) || !is_alnum(s[len - 1]))
		return 0;
	for (i = 0; i < len; i++) {
		if (s[i] == '-')
			dash = 1;
		else if (is_alpha(s[i]))
			alpha = 1;
		else if (!is_digit(s[i]))
			return 0;
	}
	return alpha || dash;
}

/*
 * RFC 7208 7.1: domain-spec = macro-string domain-end, domain-end =
 * ( "." toplabel [ "." ] ) / macro-expand. Checked before expansion:
 * what the macros expand to is not subject to this syntax.
 */
int
spf_domain_spec_ok(const char *s, size_t len)
{
	size_t i, end, b;

	if (len == 0 || spf_macro_expand(NULL, s, len, 0, NULL) != 0)
		return -1;
	/* ends with a macro-expand: find where the last one ends */
	for (i = 0; i < len; i++) {
		if (s[i] != '%')
			continue;
		if (s[i + 1] == '{') {
			end = i + 2;
			while (s[end] != '}')
				end++;
			if (end + 1 == len)
				return 0;
			i = end;
		} else {
			if (i + 2 == len)
				return 0;
			i++;
		}
	}
	end = len;
	if (s[end - 1] == '.')
		end--;
	for (b = end; b > 0 && (is_alnum(s[b - 1]) || s[b - 1] == '-'); b--)
		;
	if (b == 0 || s[b - 1] != '.' || !toplabel_ok(s + b, end - b))
		return -1;
	/* the '.' is a literal, not the tail of "%%" etc. */
	if (b >= 2 && s[b - 2] == '%') {
		for (i = b - 2; i > 0 && s[i - 1] == '%'; i--)
			;
		if ((b - 1 - i) % 2 == 1)
			return -1;
	}
	return 0;
}

/* CIDR length: 1*DIGIT without leading zeros, at most max. */
static int
cidr_parse(const char *s, size_t len, unsigned max, unsigned *r)
{
	unsigned v = 0;
	size_t i;

	if (len == 0 || len > 3 || (len > 1 && s[0] == '0'))
		return -1;
	for (i = 0; i < len; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*r = v;
	return 0;
}

/* Digits at the end of s[0..*len), after a '/': their start or 0. */
static size_t
tail_digits(const char *s, size_t len)
{
	size_t b = len;

	while (b > 0 && is_digit(s[b - 1]))
		b--;
	if (b == len || b == 0 || s[b - 1] != '/')
		return 0;
	return b;
}

/*
 * RFC 7208 5.6: dual-cidr-length = [ ip4-cidr-length ] [ "/"
 * ip6-cidr-length ], taken off the end of the argument.
 */
static int
dual_cidr(struct spf_term *t, const char *s, size_t *len)
{
	size_t b;

	if ((b = tail_digits(s, *len)) != 0 && b >= 2 && s[b - 2] == '/') {
		if (cidr_parse(s + b, *len - b, 128, &t->cidr6) == -1)
			return -1;
		*len = b - 2;
	}
	if ((b = tail_digits(s, *len)) != 0) {
		if (cidr_parse(s + b, *len - b, 32, &t->cidr4) == -1)
			return -1;
		*len = b - 1;
	}
	return 0;
}

/* RFC 7208 5.6: ip4-network is a dotted quad, no leading zeros. */
static int
ip4_parse(const char *s, size_t len, unsigned char *addr)
{
	size_t i = 0, n, k;
	unsigned v;

	for (k = 0; k < 4; k++) {
		if (k > 0) {
			if (i >= len || s[i] != '.')
				return -1;
			i++;
		}
		for (n = 0, v = 0; i < len && is_digit(s[i]) && n < 4; n++, i++)
			v = v * 10 + (unsigned)(s[i] - '0');
		if (n == 0 || n > 3 || v > 255 ||
		    (n > 1 && s[i - n] == '0'))
			return -1;
		addr[k] = (unsigned char)v;
	}
	return i == len ? 0 : -1;
}

static int
ip6_parse(const char *s, size_t len, unsigned char *addr)
{
	char tmp[64];

	if (len == 0 || len >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	return inet_pton(AF_INET6, tmp, addr) == 1 ? 0 : -1;
}

static const struct {
	const char *name;
	enum spf_mech mech;
} mechs[] = {
	{ "all", SPF_M_ALL },
	{ "include", SPF_M_INCLUDE },
	{ "a", SPF_M_A },
	{ "mx", SPF_M_MX },
	{ "ptr", SPF_M_PTR },
	{ "ip4", SPF_M_IP4 },
	{ "ip6", SPF_M_IP6 },
	{ "exists", SPF_M_EXISTS },
};

/* A mechanism's argument (after its name): RFC 7208 5.1 to 5.7. */
static int
mech_args(struct spf_term *t, const char *arg, const char **err_r)
{
	size_t len = strlen(arg);

	t->cidr4 = 32;
	t->cidr6 = 128;
	switch (t->mech) {
	case SPF_M_ALL:
		if (len != 0)
			goto bad;
		return 0;
	case SPF_M_INCLUDE:
	case SPF_M_EXISTS:
	case SPF_M_PTR:
		if (len == 0 && t->mech == SPF_M_PTR)
			return 0;
		if (arg[0] != ':')
			goto bad;
		t->spec = arg + 1;
		t->speclen = len - 1;
		break;
	case SPF_M_A:
	case SPF_M_MX:
		if (dual_cidr(t, arg, &len) == -1) {
			*err_r = "bad CIDR length";
			return -1;
		}
		if (len == 0)
			return 0;
		if (arg[0] != ':')
			goto bad;
		t->spec = arg + 1;
		t->speclen = len - 1;
		break;
	case SPF_M_IP4:
	case SPF_M_IP6:
		if (arg[0] != ':')
			goto bad;
		arg++;
		len--;
		if (tail_digits(arg, len) != 0) {
			size_t b = tail_digits(arg, len);

			if (cidr_parse(arg + b, len - b,
			    t->mech == SPF_M_IP4 ? 32 : 128,
			    t->mech == SPF_M_IP4 ? &t->cidr4 : &t->cidr6) == -1) {
				*err_r = "bad CIDR length";
				return -1;
			}
			len = b - 1;
		}
		if (t->mech == SPF_M_IP4 ? ip4_parse(arg, len, t->addr) :
		    ip6_parse(arg, len, t->addr)) {
			*err_r = "bad IP address";
			return -1;
		}
		return 0;
	}
	if (spf_domain_spec_ok(t->spec, t->speclen) == -1) {
		*err_r = "bad domain-spec";
		return -1;
	}
	return 0;
bad:
	*err_r = "bad mechanism argument";
	return -1;
}

/* RFC 7208 4.6.1 and 6: a modifier (name "=" value). */
static int
modifier(struct spf_record *r, const char *name, size_t nlen,
    const char *val, const char **err_r)
{
	const char **slot = NULL;
	size_t vlen = strlen(val);

	if (nlen == 8 && strncasecmp(name, "redirect", 8) == 0)
		slot = &r->redirect;
	else if (nlen == 3 && strncasecmp(name, "exp", 3) == 0)
		slot = &r->exp;
	if (slot == NULL) {
		/* RFC 7208 6: unknown modifiers are ignored, but their
		 * macro-string must be valid */
		if (spf_macro_expand(NULL, val, vlen, 1, NULL) != 0) {
			*err_r = "bad macro in modifier";
			return -1;
		}
		return 0;
	}
	/* RFC 7208 6: redirect and exp at most once each */
	if (*slot != NULL) {
		*err_r = "modifier appears twice";
		return -1;
	}
	if (spf_domain_spec_ok(val, vlen) == -1) {
		*err_r = "bad domain-spec in modifier";
		return -1;
	}
	*slot = val;
	return 0;
}

static int
term(struct spf_record *r, char *p, const char **err_r)
{
	struct spf_term *t = &r->terms[r->nterms];
	const char *name;
	size_t nlen, i;
	char qual = 0;

	memset(t, 0, sizeof(*t));
	t->text = p;
	if (strchr("+-~?", *p) != NULL)
		qual = *p++;
	name = p;
	/* RFC 7208 4.6.1: name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ) */
	while (is_alnum(*p) || *p == '-' || *p == '_' || *p == '.')
		p++;
	nlen = (size_t)(p - name);
	if (*p == '=') {
		if (qual != 0 || nlen == 0 || !is_alpha(name[0])) {
			*err_r = "bad modifier name";
			return -1;
		}
		return modifier(r, name, nlen, p + 1, err_r);
	}
	for (i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++)
		if (strlen(mechs[i].name) == nlen &&
		    strncasecmp(mechs[i].name, name, nlen) == 0)
			break;
	if (i == sizeof(mechs) / sizeof(mechs[0])) {
		*err_r = "unknown mechanism";
		return -1;
	}
	t->mech = mechs[i].mech;
	t->qual = qual ? qual : '+';
	if (mech_args(t, p, err_r) == -1)
		return -1;
	r->nterms++;
	return 0;
}

int
spf_record_parse(const char *text, size_t len, struct spf_record **rr,
    const char **err_r)
{
	struct spf_record *r;
	size_t i, n = 1;
	char *p, *q;

	*rr = NULL;
	if (!spf_record_is_spf(text, len)) {
		*err_r = "not an SPF record";
		return -1;
	}
	if (len > SPF_RECORD_MAX) {
		*err_r = "record too long";
		return -1;
	}
	/* RFC 7208 3.1, 4.6.1: printable ASCII, terms split by spaces */
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c < 0x20 || c > 0x7e) {
			*err_r = "invalid character in record";
			return -1;
		}
		if (c == ' ')
			n++;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->text = malloc(len + 1)) == NULL ||
	    (r->terms = calloc(n, sizeof(*r->terms))) == NULL) {
		*err_r = "out of memory";
		goto fail;
	}
	memcpy(r->text, text, len);
	r->text[len] = '\0';
	for (p = r->text + 6; *p != '\0'; p = q) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		for (q = p; *q != '\0' && *q != ' '; q++)
			;
		if (*q == ' ')
			*q++ = '\0';
		if (term(r, p, err_r) == -1)
			goto fail;
	}
	*rr = r;
	return 0;
fail:
	spf_record_free(r);
	return -1;
}

void
spf_record_free(struct spf_record *r)
{
	if (r == NULL)
		return;
	free(r->terms);
	free(r->text);
	free(r);
}

size_t
spf_record_nterms(const struct spf_record *r)
{
	return r->nterms;
}

int
spf_record_term(const struct spf_record *r, size_t i,
    struct spf_term_info *t_r)
{
	static const enum spf_term_kind kinds[] = {
		[SPF_M_ALL] = SPF_TERM_ALL,
		[SPF_M_INCLUDE] = SPF_TERM_INCLUDE,
		[SPF_M_A] = SPF_TERM_A,
		[SPF_M_MX] = SPF_TERM_MX,
		[SPF_M_PTR] = SPF_TERM_PTR,
		[SPF_M_IP4] = SPF_TERM_IP4,
		[SPF_M_IP6] = SPF_TERM_IP6,
		[SPF_M_EXISTS] = SPF_TERM_EXISTS,
	};
	const struct spf_term *t;

	if (i >= r->nterms)
		return -1;
	t = &r->terms[i];
	memset(t_r, 0, sizeof(*t_r));
	t_r->kind = kinds[t->mech];
	t_r->qual = t->qual;
	t_r->text = t->text;
	t_r->spec = t->spec;
	t_r->speclen = t->spec != NULL ? t->speclen : 0;
	/* RFC 7208 7.1: every macro, "%%" "%_" "%-" too, starts with % */
	t_r->macro = t->spec != NULL &&
	    memchr(t->spec, '%', t->speclen) != NULL;
	return 0;
}

const char *
spf_record_redirect(const struct spf_record *r)
{
	return r->redirect;
}
