/*
 * auth/dmarc_record.c: the DMARC policy record parser (RFC 9989 4.7 and
 * 4.8; the RFC 7489 6.3 tags pct, rf and ri of records still published).
 *
 * Lenient where RFC 9989 4.8 says to be ("Syntax errors in the remainder
 * of the record MUST be discarded in favor of default values (if any) or
 * ignored outright"): a tag without "=", a bad tag name, an empty
 * segment (";;") and a second instance of a tag are skipped; a bad
 * adkim/aspf/t/psd/pct/ri value falls back to the default. The version
 * tag and the policy tags are strict (4.7 v, 4.10.1).
 */
#include "auth/dmarc.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

struct span {
	const char *p;
	size_t n;
};

enum {
	T_P, T_SP, T_NP, T_ADKIM, T_ASPF, T_PSD, T_T, T_PCT, T_RI, T_RUA,
	T_RUF, T_FO, T_RF, T_NTAGS
};

static const char *const tagnames[T_NTAGS] = {
	"p", "sp", "np", "adkim", "aspf", "psd", "t", "pct", "ri", "rua",
	"ruf", "fo", "rf",
};

static int
is_wsp(char c)
{
	/* WSP, and the CR LF of DKIM's tag-list FWS (RFC 6376 3.2) */
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void
trim(struct span *s)
{
	while (s->n > 0 && is_wsp(s->p[0])) {
		s->p++;
		s->n--;
	}
	while (s->n > 0 && is_wsp(s->p[s->n - 1]))
		s->n--;
}

/* ABNF literals are case-insensitive (RFC 5234 2.3). */
static int
span_is(const struct span *s, const char *word)
{
	return s->n == strlen(word) && strncasecmp(s->p, word, s->n) == 0;
}

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
is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* dmarc-request (RFC 9989 4.8); DMARC_P_UNSET when not one. */
static enum dmarc_policy
policy_value(const struct span *v)
{
	if (span_is(v, "none"))
		return DMARC_P_NONE;
	if (span_is(v, "quarantine"))
		return DMARC_P_QUARANTINE;
	if (span_is(v, "reject"))
		return DMARC_P_REJECT;
	return DMARC_P_UNSET;
}

/* 1*DIGIT into *v (capped at INT_MAX); -1 if not digits. */
static int
number(const struct span *s, int *v)
{
	long long n = 0;
	size_t i;

	if (s->n == 0)
		return -1;
	for (i = 0; i < s->n; i++) {
		if (!is_digit(s->p[i]))
			return -1;
		if (n < INT_MAX)
			n = n * 10 + (s->p[i] - '0');
	}
	*v = n > INT_MAX ? INT_MAX : (int)n;
	return 0;
}

/*
 * One dmarc-uri / obs-dmarc-uri (RFC 9989 4.8): an RFC 3986 URI, scheme
 * ":" and at least one more URI character ("," and "!" must be
 * percent-encoded), optionally followed by the obsolete "!" size.
 */
static int
uri_ok(const char *p, size_t n)
{
	const char *bang = memchr(p, '!', n);
	size_t i, end = bang != NULL ? (size_t)(bang - p) : n;

	if (bang != NULL) {
		/* obs-dmarc-report-size = "!" 1*DIGIT [ k / m / g / t ] */
		for (i = end + 1; i < n && is_digit(p[i]); i++)
			;
		if (i == end + 1)
			return 0;
		if (i < n && strchr("kmgtKMGT", p[i]) != NULL)
			i++;
		if (i != n)
			return 0;
	}
	if (end == 0 || !is_alpha(p[0]))
		return 0;
	/* RFC 3986 3.1 scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
	for (i = 1; i < end && p[i] != ':'; i++)
		if (!is_alpha(p[i]) && !is_digit(p[i]) &&
		    strchr("+-.", p[i]) == NULL)
			return 0;
	if (i + 1 >= end)
		return 0;
	for (i++; i < end; i++) {
		if (p[i] == '%') {
			if (i + 2 >= end || !is_hex(p[i + 1]) ||
			    !is_hex(p[i + 2]))
				return 0;
			i += 2;
		} else if (!is_alpha(p[i]) && !is_digit(p[i]) &&
		    strchr("-._~:/?#[]@$&'()*+;=", p[i]) == NULL)
			return 0;
	}
	return 1;
}

/* dmarc-urilist: 1 when at least one URI is syntactically valid (what
 * RFC 9989 4.10.1 asks of rua= to rescue a bad policy). */
static int
urilist_ok(const struct span *v)
{
	const char *p = v->p, *end = v->p + v->n, *c;
	struct span u;

	for (;;) {
		if ((c = memchr(p, ',', (size_t)(end - p))) == NULL)
			c = end;
		u.p = p;
		u.n = (size_t)(c - p);
		trim(&u);
		if (uri_ok(u.p, u.n))
			return 1;
		if (c == end)
			return 0;
		p = c + 1;
	}
}

/* dmarc-value: printable US-ASCII but ";" (RFC 9989 4.8). */
static int
value_ok(const struct span *v)
{
	size_t i;

	if (v->n == 0)
		return 0;
	for (i = 0; i < v->n; i++)
		if (((unsigned char)v->p[i] < 0x20 && !is_wsp(v->p[i])) ||
		    (unsigned char)v->p[i] > 0x7e)
			return 0;
	return 1;
}

static const char *
keep(const struct span *v, char *strbuf, size_t nstrbuf, size_t *used)
{
	char *s;

	if (*used + v->n + 1 > nstrbuf)
		return NULL;
	s = strbuf + *used;
	memcpy(s, v->p, v->n);
	s[v->n] = '\0';
	*used += v->n + 1;
	return s;
}

/* The version tag, RFC 9989 4.7 v: "v" equals %s"DMARC1", first. */
static int
version_ok(struct span seg)
{
	const char *eq;
	struct span name, val;

	trim(&seg);
	if ((eq = memchr(seg.p, '=', seg.n)) == NULL)
		return 0;
	name.p = seg.p;
	name.n = (size_t)(eq - seg.p);
	val.p = eq + 1;
	val.n = seg.n - name.n - 1;
	trim(&name);
	trim(&val);
	/* the tag name is an ABNF literal (any case); the value is %s */
	return span_is(&name, "v") && val.n == 6 &&
	    memcmp(val.p, "DMARC1", 6) == 0;
}

int
dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *r,
    char *strbuf, size_t nstrbuf)
{
	struct span seg, name, val;
	const char *p, *end = txt + len, *semi, *eq;
	size_t used = 0;
	unsigned seen = 0;
	int bad_policy = 0, t = -1, i, n;

	memset(r, 0, sizeof(*r));
	r->p = r->sp = r->np = DMARC_P_UNSET;
	r->adkim = r->aspf = DMARC_ALIGN_RELAXED;
	r->psd = r->pct = r->ri = -1;
	r->rua = r->ruf = r->fo = r->rf = "";
	/* bounded, and a NUL is no part of a record */
	if (txt == NULL || len > DMARC_RECORD_MAX || memchr(txt, '\0', len))
		return -1;
	if ((semi = memchr(txt, ';', len)) == NULL)
		semi = end;
	seg.p = txt;
	seg.n = (size_t)(semi - txt);
	if (!version_ok(seg))
		return -1;
	while (semi < end) {
		p = semi + 1;
		if ((semi = memchr(p, ';', (size_t)(end - p))) == NULL)
			semi = end;
		seg.p = p;
		seg.n = (size_t)(semi - p);
		trim(&seg);
		if (seg.n == 0 || (eq = memchr(seg.p, '=', seg.n)) == NULL)
			continue;
		name.p = seg.p;
		name.n = (size_t)(eq - seg.p);
		val.p = eq + 1;
		val.n = seg.n - name.n - 1;
		trim(&name);
		trim(&val);
		for (i = 0; i < T_NTAGS; i++)
			if (span_is(&name, tagnames[i]))
				break;
		/* unknown tags MUST be ignored (4.7); the first of a
		 * repeated tag counts */
		if (i == T_NTAGS || (seen & (1u << i)))
			continue;
		seen |= 1u << i;
		if (!value_ok(&val)) {
			if (i == T_P || i == T_SP || i == T_NP)
				bad_policy = 1;
			continue;
		}
		switch (i) {
		case T_P:
		case T_SP:
		case T_NP: {
			enum dmarc_policy pv = policy_value(&val);

			if (pv == DMARC_P_UNSET)
				bad_policy = 1;
			else if (i == T_P)
				r->p = pv;
			else if (i == T_SP)
				r->sp = pv;
			else
				r->np = pv;
			break;
		}
		case T_ADKIM:
		case T_ASPF:
			/* dmarc-rors; anything else keeps the default r */
			if (span_is(&val, "s"))
				*(i == T_ADKIM ? &r->adkim : &r->aspf) =
				    DMARC_ALIGN_STRICT;
			break;
		case T_PSD:
			/* dmarc-psd: "u" is the default, like absence */
			r->psd = span_is(&val, "y") ? 1 : span_is(&val, "n") ?
			    0 : -1;
			break;
		case T_T:
			t = span_is(&val, "y") ? 1 : span_is(&val, "n") ? 0 : -1;
			break;
		case T_PCT:
			/* RFC 7489 6.3: an integer 0 to 100 */
			if (number(&val, &n) == 0 && n <= 100)
				r->pct = n;
			break;
		case T_RI:
			if (number(&val, &n) == 0)
				r->ri = n;
			break;
		default: {
			const char *s = keep(&val, strbuf, nstrbuf, &used);

			if (s == NULL)
				return -1;
			if (i == T_RUA)
				r->rua = s;
			else if (i == T_RUF)
				r->ruf = s;
			else if (i == T_FO)
				r->fo = s;
			else
				r->rf = s;
			break;
		}
		}
	}
	/*
	 * RFC 9989 A.6: t=y and t=n are "analogous" to pct=0 and pct=100
	 * of RFC 7489 records. An explicit t= wins; pct 1..99 is taken as
	 * 100 (the default, t=n).
	 */
	r->testing = t == 1 || (t == -1 && r->pct == 0);
	/*
	 * RFC 9989 4.10.1 (and RFC 7489 6.6.3): a bad p=, sp= or np= is
	 * p=none when rua= holds a syntactically valid URI, else the
	 * record is unusable. A missing p= is p=none (4.7 p).
	 */
	if (bad_policy) {
		struct span rua = { r->rua, strlen(r->rua) };

		if (!urilist_ok(&rua))
			return -2;
		r->p = DMARC_P_NONE;
		r->sp = r->np = DMARC_P_UNSET;
	}
	return 0;
}
