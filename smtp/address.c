/*
 * The author address of a From field (RFC 5322 3.4, 3.6.2, obsolete
 * forms of 4.4). A small lexer turns the value into tokens (atoms,
 * quoted strings, domain literals, specials), skipping CFWS; a parser
 * over one token of look-ahead walks the address-list. The first
 * mailbox is copied out as it is parsed; later ones only count.
 */
#include "smtp/address.h"

#include <string.h>
#include <strings.h>

enum {
	T_END = 0,
	T_ERR = 1,
	T_ATOM = 'a',
	T_QSTR = 'q',
	T_DLIT = 'd',
	/* the specials stand for themselves: < > @ , ; : . */
};

struct tok {
	int type;
	size_t start, end;	/* the text; for T_QSTR inside the quotes */
	int bit8;		/* has octets >= 0x80 */
	int ctl;		/* has obs-NO-WS-CTL (quoted strings) */
};

struct lexer {
	const unsigned char *s;
	size_t len, pos;
	size_t before;		/* pos before the look-ahead token */
	int have;
	struct tok tok;
};

/* A bounded copy of the local part or domain of the first mailbox. */
struct wr {
	char *p;
	size_t cap, len;
	int discard, over;
};

struct parse {
	struct lexer lx;
	int utf8;
	size_t nmbox;
	int nodomain;		/* the first mailbox had none */
	struct wr local, domain;
};

static int
addr_is_atext(unsigned char c)
{
	/* RFC 5322 3.2.3 */
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static int
addr_is_ctl(unsigned char c)
{
	return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* RFC 3629 well-formed UTF-8: no overlongs, surrogates or > U+10FFFF. */
static int
addr_utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0, k, need;
	unsigned long cp, min;

	while (i < n) {
		unsigned char c = s[i];

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1; cp = c & 0x1f; min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2; cp = c & 0x0f; min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3; cp = c & 0x07; min = 0x10000;
		} else
			return 0;
		if (n - i <= need)
			return 0;
		for (k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += need + 1;
	}
	return 1;
}

static void
wr_put(struct wr *w, char c)
{
	if (w->discard)
		return;
	if (w->len + 1 >= w->cap) {
		w->over = 1;
		return;
	}
	w->p[w->len++] = c;
}

/* RFC 5322 3.2.2: CRLF is folding only when followed by WSP. */
static int
lex_fold(const struct lexer *l, size_t i)
{
	return i + 2 < l->len && l->s[i] == '\r' && l->s[i + 1] == '\n' &&
	    (l->s[i + 2] == ' ' || l->s[i + 2] == '\t');
}

/*
 * Quoted-pair (RFC 5322 3.2.1, with obs-qp's controls), at l->s[*i] ==
 * '\\'. A CR or LF may not be quoted: that would hide a line break.
 */
static int
lex_qpair(const struct lexer *l, size_t *i, struct tok *t)
{
	unsigned char c;

	if (*i + 1 >= l->len)
		return -1;
	c = l->s[*i + 1];
	if (c == '\r' || c == '\n')
		return -1;
	if (t != NULL && c >= 0x80)
		t->bit8 = 1;
	if (t != NULL && addr_is_ctl(c))
		t->ctl = 1;
	*i += 2;
	return 0;
}

/* RFC 5322 3.2.2 CFWS: white space, folding, nested comments. */
static int
lex_cfws(struct lexer *l)
{
	size_t i = l->pos;
	int depth = 0;

	while (i < l->len) {
		unsigned char c = l->s[i];

		if (c == ' ' || c == '\t')
			i++;
		else if (c == '\r') {
			if (!lex_fold(l, i))
				return -1;
			i += 2;
		} else if (c == '\n')
			return -1;
		else if (c == '(') {
			depth++;
			i++;
		} else if (depth == 0)
			break;
		else if (c == ')') {
			depth--;
			i++;
		} else if (c == '\\') {
			if (lex_qpair(l, &i, NULL) == -1)
				return -1;
		} else
			i++;	/* ctext, obs-ctext, 8-bit */
	}
	if (depth > 0)
		return -1;	/* unterminated comment */
	l->pos = i;
	return 0;
}

static int
lex_qstr(struct lexer *l, struct tok *t)
{
	size_t i = l->pos + 1;

	t->type = T_QSTR;
	t->start = i;
	while (i < l->len) {
		unsigned char c = l->s[i];

		if (c == '"') {
			t->end = i;
			l->pos = i + 1;
			return 0;
		}
		if (c == '\\') {
			if (lex_qpair(l, &i, t) == -1)
				return -1;
			continue;
		}
		if (c == '\r') {
			if (!lex_fold(l, i))
				return -1;
			i += 2;
			continue;
		}
		if (c == '\n')
			return -1;
		if (c >= 0x80)
			t->bit8 = 1;
		else if (addr_is_ctl(c))
			t->ctl = 1;	/* obs-qtext */
		i++;
	}
	return -1;	/* unterminated */
}

/* RFC 5322 3.4.1 domain-literal; only its shape matters here. */
static int
lex_dlit(struct lexer *l, struct tok *t)
{
	size_t i = l->pos + 1;

	t->type = T_DLIT;
	t->start = i;
	while (i < l->len) {
		unsigned char c = l->s[i];

		if (c == ']') {
			t->end = i;
			l->pos = i + 1;
			return 0;
		}
		if (c == '\\') {
			if (lex_qpair(l, &i, t) == -1 || t->bit8)
				return -1;
		} else if (c == '\r') {
			if (!lex_fold(l, i))
				return -1;
			i += 2;
		} else if (c == ' ' || c == '\t' || (c >= 33 && c <= 126 && c != '['))
			i++;
		else
			return -1;
	}
	return -1;
}

static void
lex_next(struct lexer *l, struct tok *t)
{
	unsigned char c;

	memset(t, 0, sizeof(*t));
	if (lex_cfws(l) == -1) {
		t->type = T_ERR;
		return;
	}
	if (l->pos >= l->len) {
		t->type = T_END;
		return;
	}
	c = l->s[l->pos];
	t->start = l->pos;
	if (strchr("<>@,;:.", c) != NULL) {
		t->type = c;
		t->end = ++l->pos;
	} else if (c == '"') {
		if (lex_qstr(l, t) == -1)
			t->type = T_ERR;
	} else if (c == '[') {
		if (lex_dlit(l, t) == -1)
			t->type = T_ERR;
	} else if (addr_is_atext(c) || c >= 0x80) {
		t->type = T_ATOM;
		while (l->pos < l->len && (addr_is_atext(l->s[l->pos]) ||
		    l->s[l->pos] >= 0x80)) {
			if (l->s[l->pos] >= 0x80)
				t->bit8 = 1;
			l->pos++;
		}
		t->end = l->pos;
	} else
		t->type = T_ERR;	/* ) ] \ or a control */
}

static const struct tok *
lx_peek(struct parse *p)
{
	if (!p->lx.have) {
		p->lx.before = p->lx.pos;
		lex_next(&p->lx, &p->lx.tok);
		p->lx.have = 1;
	}
	return &p->lx.tok;
}

static void
lx_skip(struct parse *p)
{
	p->lx.have = 0;
}

static int
lx_accept(struct parse *p, int type)
{
	if (lx_peek(p)->type != type)
		return 0;
	lx_skip(p);
	return 1;
}

static size_t
lx_mark(const struct parse *p)
{
	return p->lx.have ? p->lx.before : p->lx.pos;
}

static void
lx_rewind(struct parse *p, size_t m)
{
	p->lx.pos = m;
	p->lx.have = 0;
}

static int
is_word(const struct tok *t)
{
	return t->type == T_ATOM || t->type == T_QSTR;
}

/*
 * 8-bit octets in an addr-spec need SMTPUTF8 (RFC 6532 3.2) and must
 * then be UTF-8; a control character never belongs in one.
 */
static int
addr_spec_octets_ok(const struct parse *p, const struct tok *t)
{
	if (t->ctl)
		return 0;
	if (!t->bit8)
		return 1;
	return p->utf8 &&
	    addr_utf8_valid(p->lx.s + t->start, t->end - t->start);
}

/* One word of a local part, unquoted (RFC 5322 3.2.4: the CRLF of
 * folding inside a quoted string is invisible, quoted-pairs unescape). */
static int
copy_word(struct parse *p, const struct tok *t, struct wr *w)
{
	const unsigned char *s = p->lx.s;
	size_t i;

	if (!addr_spec_octets_ok(p, t))
		return -1;
	for (i = t->start; i < t->end; i++) {
		if (t->type == T_QSTR && s[i] == '\\')
			i++;
		else if (t->type == T_QSTR && s[i] == '\r') {
			i++;	/* CRLF of folding; the WSP stays */
			continue;
		}
		wr_put(w, (char)s[i]);
	}
	return 0;
}

/* local-part = dot-atom / quoted-string / obs-local-part (word *("." word)) */
static int
parse_local(struct parse *p, struct wr *w)
{
	if (!is_word(lx_peek(p)) || copy_word(p, lx_peek(p), w) == -1)
		return -1;
	lx_skip(p);
	while (lx_accept(p, '.')) {
		wr_put(w, '.');
		if (!is_word(lx_peek(p)) || copy_word(p, lx_peek(p), w) == -1)
			return -1;
		lx_skip(p);
	}
	return 0;
}

/*
 * One label of a domain. RFC 5322 would allow any atext, but the domain
 * is looked up in the DNS for DMARC: "legitimate.com'" must not pass as
 * a name that simply has no policy. Letters, digits, '-', '_', and
 * UTF-8 with SMTPUTF8 (RFC 6532 3.2); at most 63 octets when ASCII.
 */
static int
check_label(const struct parse *p, const struct tok *t)
{
	const unsigned char *s = p->lx.s;
	size_t i;

	if (t->bit8 && !addr_spec_octets_ok(p, t))
		return -1;
	if (!t->bit8 && t->end - t->start > 63)
		return -1;
	for (i = t->start; i < t->end; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' ||
		    s[i] >= 0x80))
			return -1;
	return 0;
}

/*
 * domain = dot-atom / domain-literal / obs-domain (CFWS around the dots).
 * Lower-cased (ASCII); one trailing dot is dropped. *literal_r is set
 * for a domain literal, which names no domain.
 */
static int
parse_domain(struct parse *p, struct wr *w, int *literal_r)
{
	const struct tok *t = lx_peek(p);
	size_t i, total = 0;

	*literal_r = 0;
	if (t->type == T_DLIT) {
		*literal_r = 1;
		lx_skip(p);
		return 0;
	}
	for (;;) {
		if (t->type != T_ATOM || check_label(p, t) == -1)
			return -1;
		for (i = t->start; i < t->end; i++) {
			unsigned char c = p->lx.s[i];

			wr_put(w, (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
		}
		total += t->end - t->start;
		lx_skip(p);
		if (!lx_accept(p, '.'))
			break;
		if (lx_peek(p)->type != T_ATOM)
			break;	/* a trailing dot, dropped */
		wr_put(w, '.');
		total++;
		t = lx_peek(p);
	}
	return total > 253 ? -1 : 0;	/* RFC 1035 2.3.4 */
}

/* Writers for the mailbox being parsed: the first is kept. */
static void
mailbox_writers(struct parse *p, struct wr **l, struct wr **d,
    struct wr *nl, struct wr *nd)
{
	memset(nl, 0, sizeof(*nl));
	memset(nd, 0, sizeof(*nd));
	nl->discard = nd->discard = 1;
	*l = p->nmbox == 0 ? &p->local : nl;
	*d = p->nmbox == 0 ? &p->domain : nd;
}

static void
mailbox_done(struct parse *p, int nodomain)
{
	if (p->nmbox == 0)
		p->nodomain = nodomain;
	p->nmbox++;
}

static int
parse_addr_spec(struct parse *p)
{
	struct wr *l, *d, nl, nd;
	int lit;

	mailbox_writers(p, &l, &d, &nl, &nd);
	if (parse_local(p, l) == -1 || !lx_accept(p, '@') ||
	    parse_domain(p, d, &lit) == -1)
		return -1;
	mailbox_done(p, lit);
	return 0;
}

/* obs-route = obs-domain-list ":" (RFC 5322 4.4); the route is ignored. */
static int
parse_route(struct parse *p)
{
	struct wr nw = { .discard = 1 };
	int lit;

	while (lx_accept(p, ','))
		;
	if (!lx_accept(p, '@') || parse_domain(p, &nw, &lit) == -1)
		return -1;
	while (lx_accept(p, ','))
		if (lx_accept(p, '@') && parse_domain(p, &nw, &lit) == -1)
			return -1;
	return lx_accept(p, ':') ? 0 : -1;
}

/* angle-addr after "<": [obs-route] addr-spec ">". "<>" is no address. */
static int
parse_angle(struct parse *p)
{
	int t = lx_peek(p)->type;

	if ((t == '@' || t == ',') && parse_route(p) == -1)
		return -1;
	if (parse_addr_spec(p) == -1)
		return -1;
	return lx_accept(p, '>') ? 0 : -1;
}

static int parse_element(struct parse *p, int in_group);

/* group after "display-name:": [group-list] ";" (RFC 5322 3.4) */
static int
parse_group(struct parse *p)
{
	for (;;) {
		if (lx_accept(p, ';'))
			return 0;
		if (lx_accept(p, ','))
			continue;	/* obs-group-list, obs-mbox-list */
		if (parse_element(p, 1) == -1)
			return -1;
		if (lx_accept(p, ';'))
			return 0;
		if (!lx_accept(p, ','))
			return -1;	/* includes a group never closed */
	}
}

/*
 * One list element: name-addr, addr-spec or group. Its leading words are
 * scanned first; what follows them says what they were: "<" a display
 * name, ":" a group name, "@" a local part, the end of the element a
 * lone local part (a mailbox without a domain).
 */
static int
parse_element(struct parse *p, int in_group)
{
	const struct tok *t;
	size_t m = lx_mark(p);
	int nwords = 0, local_shape = 1, last_dot = 0;

	for (;;) {
		t = lx_peek(p);
		if (is_word(t)) {
			if (nwords > 0 && !last_dot)
				local_shape = 0;	/* two words: a phrase */
			nwords++;
			last_dot = 0;
		} else if (t->type == '.') {
			/* obs-phrase: a dot after the first word */
			if (nwords == 0 || last_dot)
				local_shape = 0;
			if (nwords == 0)
				return -1;
			last_dot = 1;
		} else
			break;
		lx_skip(p);
	}
	if (last_dot)
		local_shape = 0;
	switch (t->type) {
	case '<':
		lx_skip(p);
		return parse_angle(p);
	case ':':
		if (nwords == 0 || in_group)
			return -1;	/* RFC 5322 3.4: groups do not nest */
		lx_skip(p);
		return parse_group(p);
	case '@':
		if (nwords == 0 || !local_shape)
			return -1;
		lx_rewind(p, m);
		return parse_addr_spec(p);
	case ';':
		if (!in_group)
			return -1;
		/* FALLTHROUGH */
	case ',':
	case T_END:
		if (nwords == 0 || !local_shape)
			return -1;
		lx_rewind(p, m);
		{
			struct wr *l, *d, nl, nd;

			mailbox_writers(p, &l, &d, &nl, &nd);
			if (parse_local(p, l) == -1)
				return -1;
		}
		mailbox_done(p, 1);
		return 0;
	default:
		return -1;
	}
}

/* address-list with the obs-mbox-list / obs-addr-list empty elements */
static int
parse_list(struct parse *p)
{
	for (;;) {
		if (lx_accept(p, T_END))
			return 0;
		if (lx_accept(p, ','))
			continue;
		if (parse_element(p, 0) == -1)
			return -1;
		if (lx_accept(p, T_END))
			return 0;
		if (!lx_accept(p, ','))
			return -1;	/* junk after an address */
	}
}

const char *
addr_from_status_name(enum addr_from_status st)
{
	switch (st) {
	case ADDR_FROM_OK:
		return "ok";
	case ADDR_FROM_EMPTY:
		return "no address";
	case ADDR_FROM_MULTIPLE:
		return "multiple addresses";
	case ADDR_FROM_BAD:
		return "unparseable";
	case ADDR_FROM_NODOMAIN:
		return "no domain";
	}
	return "unknown";
}

enum addr_from_status
addr_from_parse(const char *value, size_t len, int utf8, char *local_r,
    size_t nlocal, char *domain_r, size_t ndomain, size_t *naddr_r)
{
	struct parse p;
	enum addr_from_status st;

	memset(&p, 0, sizeof(p));
	p.lx.s = (const unsigned char *)value;
	p.lx.len = value != NULL ? len : 0;
	p.utf8 = utf8;
	p.local.p = local_r;
	p.local.cap = local_r != NULL ? nlocal : 0;
	p.domain.p = domain_r;
	p.domain.cap = domain_r != NULL ? ndomain : 0;

	if (p.lx.len > 0 && memchr(value, '\0', len) != NULL)
		st = ADDR_FROM_BAD;
	else if (parse_list(&p) == -1)
		st = ADDR_FROM_BAD;
	else if (p.nmbox == 0)
		st = ADDR_FROM_EMPTY;
	else if (p.nmbox > 1)
		st = ADDR_FROM_MULTIPLE;
	else if (p.nodomain)
		st = ADDR_FROM_NODOMAIN;
	else if (p.local.over || p.domain.over || p.local.cap == 0 ||
	    p.domain.cap == 0 || p.domain.len == 0)
		st = ADDR_FROM_BAD;
	else
		st = ADDR_FROM_OK;

	if (st == ADDR_FROM_OK) {
		local_r[p.local.len] = '\0';
		domain_r[p.domain.len] = '\0';
	} else {
		if (local_r != NULL && nlocal > 0)
			local_r[0] = '\0';
		if (domain_r != NULL && ndomain > 0)
			domain_r[0] = '\0';
	}
	if (naddr_r != NULL)
		*naddr_r = p.nmbox;
	return st;
}

/*
 * RFC 5322 3.6.8 field name; obs-optional (4.5.8) allows white space
 * before the colon, and clients differ on folded names ("Name\r\n :"):
 * the name is what precedes the first colon, without the white space and
 * line breaks before it, when that is ftext.
 */
int
addr_field_name(const char *raw, size_t len, const char **name_r,
    size_t *nlen_r, const char **value_r, size_t *vlen_r)
{
	const char *colon = memchr(raw, ':', len);
	size_t n, i;

	if (colon == NULL)
		return 0;
	n = (size_t)(colon - raw);
	while (n > 0 && (raw[n - 1] == ' ' || raw[n - 1] == '\t' ||
	    raw[n - 1] == '\r' || raw[n - 1] == '\n'))
		n--;
	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)raw[i] < 33 || (unsigned char)raw[i] > 126)
			return 0;
	i = (size_t)(colon - raw) + 1;
	if (len >= 2 && raw[len - 2] == '\r' && raw[len - 1] == '\n')
		len -= 2;
	if (i > len)
		i = len;
	*name_r = raw;
	*nlen_r = n;
	*value_r = raw + i;
	*vlen_r = len - i;
	return 1;
}

/* RFC 5322 3.6.2 From, by any reading of its name (addr_field_name). */
int
addr_field_is_from(const char *raw, size_t len, const char **value_r,
    size_t *vlen_r)
{
	const char *name;
	size_t n;

	return addr_field_name(raw, len, &name, &n, value_r, vlen_r) &&
	    n == 4 && strncasecmp(name, "from", 4) == 0;
}
