/*
 * The original client behind trusted relays, from Received fields.
 *
 * A Received field is text a relay assembled from what the client told
 * it: the HELO name is the client's, and an MTA that lets spaces into it
 * (Postfix collapses "HELO a b" into "a b") writes
 *   from x (fake [198.51.100.7]) (rdns [203.0.113.9]) by relay ...
 * So the clause is read strictly, and any doubt is a failure:
 *   - the whole value lexes (comments balanced, folding is CRLF WSP, no
 *     NUL, bare CR or LF), with exactly one ";" outside comments (the
 *     one before the date, RFC 5321 4.4 Stamp);
 *   - it starts "from", and before the ";" has no other "from" and
 *     exactly one "by" outside comments;
 *   - "from" WORD? then comments up to "by": the first comment holds
 *     the address the relay saw (or, Exim without a verified name, the
 *     word is "[address]"); a later one may not be a bare address;
 *   - every "[" before the ";" belongs to the word or to the first
 *     comment's own level (not nested, not in the "by" part).
 */
#include "policy/received.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

enum { RT_END, RT_ERR, RT_WORD, RT_COMMENT, RT_SEMI };

struct rlex {
	const char *s;
	size_t len, pos;
};

struct rtok {
	int type;
	size_t start, end;	/* comments: inside the outer parentheses */
};

static int
rcv_fold(const struct rlex *l, size_t i)
{
	return i + 2 < l->len && l->s[i] == '\r' && l->s[i + 1] == '\n' &&
	    (l->s[i + 2] == ' ' || l->s[i + 2] == '\t');
}

/* Skip WSP and folding; -1 on a CR or LF that is not folding. */
static int
rcv_fws(const struct rlex *l, size_t *i)
{
	while (*i < l->len) {
		char c = l->s[*i];

		if (c == ' ' || c == '\t')
			(*i)++;
		else if (c == '\r') {
			if (!rcv_fold(l, *i))
				return -1;
			*i += 2;
		} else if (c == '\n')
			return -1;
		else
			break;
	}
	return 0;
}

/* A comment from its "(" (RFC 5322 3.2.2: nested, with quoted-pairs). */
static int
rcv_comment(const struct rlex *l, size_t *i)
{
	int depth = 0;

	while (*i < l->len) {
		char c = l->s[*i];

		if (c == '\\') {
			if (*i + 1 >= l->len || l->s[*i + 1] == '\r' ||
			    l->s[*i + 1] == '\n')
				return -1;
			*i += 2;
			continue;
		}
		if (c == '\r') {
			if (!rcv_fold(l, *i))
				return -1;
			*i += 2;
			continue;
		}
		if (c == '\n')
			return -1;
		(*i)++;
		if (c == '(')
			depth++;
		else if (c == ')' && --depth == 0)
			return 0;
	}
	return -1;
}

static int
rcv_wordch(char c)
{
	return c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '(' &&
	    c != ')' && c != ';';
}

static void
rcv_next(struct rlex *l, struct rtok *t)
{
	size_t i = l->pos;

	t->type = RT_ERR;
	if (rcv_fws(l, &i) == -1)
		return;
	t->start = i;
	if (i >= l->len)
		t->type = RT_END;
	else if (l->s[i] == '(') {
		if (rcv_comment(l, &i) == -1)
			return;
		t->type = RT_COMMENT;
		t->start++;
		t->end = i - 1;
	} else if (l->s[i] == ';') {
		t->type = RT_SEMI;
		t->end = ++i;
	} else if (l->s[i] == ')')
		return;
	else {
		while (i < l->len && rcv_wordch(l->s[i]))
			i++;
		t->type = RT_WORD;
		t->end = i;
	}
	l->pos = i;
}

static int
rcv_is(const struct rlex *l, const struct rtok *t, const char *w)
{
	size_t n = strlen(w);

	return t->type == RT_WORD && t->end - t->start == n &&
	    strncasecmp(l->s + t->start, w, n) == 0;
}

static size_t
rcv_count(const char *s, size_t n, char c)
{
	size_t k = 0;

	while (n-- > 0)
		if (*s++ == c)
			k++;
	return k;
}

/*
 * An address as text: IPv4, or IPv6 (also after "IPv6:" when in a
 * literal, RFC 5321 4.1.3). Written back by inet_ntop; an IPv4-mapped
 * IPv6 address is written as the IPv4 address.
 */
static int
rcv_addr(const char *s, size_t n, int literal, char *ip_r, size_t nip)
{
	char text[INET6_ADDRSTRLEN + 6];
	unsigned char a[16];

	if (n == 0 || n >= sizeof(text))
		return -1;
	memcpy(text, s, n);
	text[n] = '\0';
	if (literal && strncasecmp(text, "IPv6:", 5) == 0) {
		if (inet_pton(AF_INET6, text + 5, a) != 1)
			return -1;
	} else if (inet_pton(AF_INET, text, a) == 1)
		return inet_ntop(AF_INET, a, ip_r, (socklen_t)nip) ? 0 : -1;
	else if (inet_pton(AF_INET6, text, a) != 1)
		return -1;
	if (memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0)
		return inet_ntop(AF_INET, a + 12, ip_r, (socklen_t)nip) ? 0 : -1;
	return inet_ntop(AF_INET6, a, ip_r, (socklen_t)nip) ? 0 : -1;
}

/* "[addr]" with an optional ":port" (Exim, Postfix port logging). */
static int
rcv_literal(const char *s, size_t n, char *ip_r, size_t nip)
{
	const char *close = memchr(s, ']', n);
	size_t i, rest;

	if (n < 2 || s[0] != '[' || close == NULL)
		return -1;
	i = (size_t)(close - s) + 1;
	rest = n - i;
	if (rest > 0) {
		if (s[i] != ':' || rest < 2 || rest > 6)
			return -1;
		for (i++; i < n; i++)
			if (s[i] < '0' || s[i] > '9')
				return -1;
	}
	return rcv_addr(s + 1, (size_t)(close - s) - 1, 1, ip_r, nip);
}

struct rcv_info {
	int naddr;		/* addresses found */
	const char *helo;	/* "helo=" value */
	size_t helo_len;
	int nhelo;
	size_t brackets;	/* "[" at the comment's own level */
	int nwords;
	int bare;		/* the only word is a bare address */
};

/*
 * The words of a comment at its own level (nested comments skipped):
 * "[addr]" is the address, "helo=NAME" the HELO (Exim), a lone bare
 * address the address (Exchange), anything else (the reverse name,
 * "unknown", "IDENT:user@host", "port=N") is ignored.
 */
static int
rcv_scan_comment(const char *s, size_t n, struct rcv_info *ci, char *ip_r,
    size_t nip)
{
	struct rlex l = { s, n, 0 };
	size_t i = 0, w;
	const char *first = NULL;
	size_t first_len = 0;

	memset(ci, 0, sizeof(*ci));
	for (;;) {
		if (rcv_fws(&l, &i) == -1)
			return -1;
		if (i >= n)
			break;
		if (s[i] == '(') {
			if (rcv_comment(&l, &i) == -1)
				return -1;
			continue;
		}
		for (w = i; i < n && rcv_wordch(s[i]); i++)
			if (s[i] == '\\' && i + 1 < n)
				i++;	/* quoted-pair: not a delimiter */
		if (i == w) {
			i++;	/* ";" or ")" inside a comment: text */
			continue;
		}
		if (ci->nwords++ == 0) {
			first = s + w;
			first_len = i - w;
		}
		ci->brackets += rcv_count(s + w, i - w, '[');
		if (s[w] == '[') {
			if (rcv_literal(s + w, i - w, ip_r, nip) == -1)
				return -1;	/* an address that does not parse */
			ci->naddr++;
		} else if (i - w >= 5 && strncasecmp(s + w, "helo=", 5) == 0) {
			ci->helo = s + w + 5;
			ci->helo_len = i - w - 5;
			ci->nhelo++;
		}
	}
	if (ci->nwords == 1 && first[0] != '[' &&
	    rcv_addr(first, first_len, 0, ip_r, nip) == 0) {
		ci->bare = 1;
		ci->naddr++;
	}
	return 0;
}

/*
 * The HELO as written. One that cannot be a HELO name (too long, white
 * space, controls, comment or quoting characters) is left out: the
 * address stands on its own, the HELO is only extra information.
 */
static void
rcv_set_helo(struct received_from *r, const char *s, size_t n)
{
	size_t i;

	r->helo[0] = '\0';
	if (n >= sizeof(r->helo))
		return;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= ' ' || c == 0x7f || strchr("()\\;\"", c) != NULL)
			return;
	}
	memcpy(r->helo, s, n);
	r->helo[n] = '\0';
}

int
received_parse_from(const char *value, size_t len, struct received_from *r)
{
	struct rlex l = { value, len, 0 };
	struct rtok t, word = { RT_END, 0, 0 }, c1 = { RT_END, 0, 0 };
	struct rcv_info ci, cx;
	char wip[sizeof(r->ip)], cip[sizeof(r->ip)], scratch[sizeof(r->ip)];
	size_t semi = 0, nsemi = 0, nby = 0;
	int ncomments = 0, state = 0;

	memset(r, 0, sizeof(*r));
	if (value == NULL || memchr(value, '\0', len) != NULL)
		return -1;
	rcv_next(&l, &t);
	if (!rcv_is(&l, &t, "from"))
		return -1;
	/* state 0: after "from"; 1: comments; 2: after "by"; 3: after ";" */
	for (;;) {
		rcv_next(&l, &t);
		if (t.type == RT_ERR)
			return -1;
		if (t.type == RT_END)
			break;
		if (t.type == RT_SEMI) {
			if (nsemi++ == 0)
				semi = t.start;
			if (state < 2)
				return -1;	/* no "by" */
			state = 3;
			continue;
		}
		if (state == 3)
			continue;	/* the date */
		if (state == 0 && t.type == RT_WORD) {
			word = t;
			state = 1;
			continue;
		}
		if (state < 2 && t.type == RT_COMMENT) {
			if (ncomments++ == 0)
				c1 = t;
			else if (rcv_scan_comment(value + t.start,
			    t.end - t.start, &cx, scratch, sizeof(scratch)) == -1 ||
			    cx.bare)
				return -1;	/* a second address */
			state = 1;
			continue;
		}
		if (rcv_is(&l, &t, "from"))
			return -1;
		if (rcv_is(&l, &t, "by")) {
			nby++;
			state = 2;
			continue;
		}
		if (state < 2)
			return -1;	/* "from x y": junk before "by" */
	}
	if (nsemi != 1 || nby != 1)
		return -1;

	/* the address the relay saw */
	wip[0] = cip[0] = '\0';
	memset(&ci, 0, sizeof(ci));
	if (c1.type == RT_COMMENT && rcv_scan_comment(value + c1.start,
	    c1.end - c1.start, &ci, cip, sizeof(cip)) == -1)
		return -1;
	if (ci.naddr > 1 || ci.nhelo > 1)
		return -1;
	if (rcv_count(value, semi, '[') != ci.brackets +
	    rcv_count(value + word.start, word.end - word.start, '['))
		return -1;	/* an address literal out of place */
	/* the HELO: Exim's "helo=" when present, else the word */
	if (ci.nhelo == 1)
		rcv_set_helo(r, ci.helo, ci.helo_len);
	else if (word.type == RT_WORD)
		rcv_set_helo(r, value + word.start, word.end - word.start);
	if (ci.naddr == 1)
		memcpy(r->ip, cip, sizeof(r->ip));
	else if (word.type == RT_WORD && rcv_literal(value + word.start,
	    word.end - word.start, wip, sizeof(wip)) == 0)
		memcpy(r->ip, wip, sizeof(r->ip));
	else {
		memset(r, 0, sizeof(*r));
		return -1;
	}
	return 0;
}

/* Without a hidden global to format into: "field N" as literals. */
static const char *const rcv_unparseable[] = {
	"unparseable Received field 1", "unparseable Received field 2",
	"unparseable Received field 3", "unparseable Received field 4",
	"unparseable Received field 5", "unparseable Received field 6",
	"unparseable Received field 7", "unparseable Received field 8",
	"unparseable Received field 9", "unparseable Received field 10",
	"unparseable Received field after the 10th",
};

int
received_recover(const char *const *values, const size_t *lens, size_t n,
    const struct cidr_list *trusted, struct received_from *r,
    const char **why_r)
{
	const size_t last = sizeof(rcv_unparseable) /
	    sizeof(rcv_unparseable[0]) - 1;
	const char *why;
	size_t i;

	if (why_r == NULL)
		why_r = &why;

	memset(r, 0, sizeof(*r));
	if (n == 0 || values == NULL || lens == NULL) {
		*why_r = "no Received field from a trusted relay";
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (received_parse_from(values[i], lens[i], r) == -1) {
			memset(r, 0, sizeof(*r));
			*why_r = rcv_unparseable[i < last ? i : last];
			return -1;
		}
		/* written by a trusted relay about its client */
		if (trusted == NULL || !cidr_list_match(trusted, r->ip)) {
			*why_r = NULL;
			return 0;
		}
	}
	memset(r, 0, sizeof(*r));
	*why_r = "every hop is a trusted relay";
	return -1;
}
