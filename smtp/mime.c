/*
 * smtp/mime.c: the MIME structure of a streaming message, counted (see
 * smtp/mime.h for what is counted and what is decided).
 *
 * The content is a sequence of lines, each read in one of two modes:
 * a header section (of the message, of a body part, of an enclosed
 * message), where only Content-Type fields and delimiter lines matter, or
 * a body, where only delimiter lines of the enclosing multiparts matter.
 * The levels entered so far form a stack; a multipart level keeps its
 * boundary in one arena, in stack order.
 */
#include "smtp/mime.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* "--" and the part of a boundary that is compared */
#define CAND_MAX	(2 + MIME_BOUNDARY_MAX)
#define NAME_MAX_LEN	32	/* header field names read ("content-type") */
#define TYPE_MAX_LEN	32	/* media type octets read */
#define PNAME_MAX_LEN	16	/* parameter names read ("boundary") */

struct mime_level {
	size_t off;		/* boundary: bnd + off, plen octets kept */
	size_t plen;
	size_t blen;		/* its whole length */
	size_t maxblen;		/* longest blen of this and enclosing levels */
	int multipart;		/* else an enclosed message */
	int digest;		/* multipart/digest */
};

enum mode {
	M_HEADER,		/* a header section */
	M_BODY,			/* a body inside a multipart */
	M_DONE,			/* nothing left to find */
	M_STOP,			/* error recorded */
	M_ENDED,		/* mime_scan_end was called */
};

enum line {
	L_START,		/* at the start of a line */
	L_SKIP,			/* the rest of the line does not matter */
	L_CAND,			/* a line starting with '-': a delimiter? */
	L_HNAME,		/* header: the field name */
	L_HCR,			/* header: the line so far is a CR */
	L_CTYPE,		/* header: a Content-Type value */
};

enum field {
	F_NONE,			/* no field yet in this header section */
	F_OTHER,		/* a field of no interest (or a bad line) */
	F_CTYPE,		/* a Content-Type field being read */
};

/* RFC 2045 5.1 Content-Type value, read an octet at a time */
enum ct_state {
	CT_TYPE0,		/* before the media type */
	CT_TYPE,		/* in type/subtype */
	CT_SEMI,		/* anything up to the next ';' */
	CT_NAME0,		/* before a parameter name */
	CT_NAME,		/* in a parameter name */
	CT_EQ,			/* after the name, before '=' */
	CT_VAL0,		/* after '=' */
	CT_VAL,			/* a token value */
	CT_QVAL,		/* a quoted-string value */
	CT_QESC,		/* after a backslash in it */
};

struct mime_scan {
	size_t max_depth, max_parts;
	size_t parts, depth;
	enum mime_error err;
	enum mode mode;
	enum line line;
	enum field field;

	struct mime_level *lv;	/* the stack, lv[nlv - 1] innermost */
	size_t nlv, caplv;
	char *bnd;		/* boundaries of the multipart levels */
	size_t bndlen, bndcap;

	/* the entity whose header section is being read */
	int e_digest;		/* its parent is a multipart/digest */
	int e_ctype;		/* a Content-Type field was seen */
	enum { E_LEAF, E_MULTI, E_MSG } e_kind;
	int e_mdigest;		/* E_MULTI: multipart/digest */
	char e_bnd[MIME_BOUNDARY_MAX];
	size_t e_blen;

	/* header line */
	char name[NAME_MAX_LEN];
	size_t nlen;
	int cr;			/* a CR held back in a Content-Type value */

	/* Content-Type field being read */
	enum ct_state ct;
	int cdepth, cesc;	/* comment nesting, quoted-pair in it */
	char type[TYPE_MAX_LEN];
	size_t tlen;
	int tover;		/* more than TYPE_MAX_LEN octets */
	char pname[PNAME_MAX_LEN];
	size_t pnlen;
	int capture;		/* this value is the boundary */
	int have_bnd;
	char v[MIME_BOUNDARY_MAX];
	size_t vlen, vtrim;	/* octets, and up to the last non-LWSP */

	/* candidate delimiter line */
	char cand[CAND_MAX];
	size_t clen;		/* octets kept */
	size_t len, tlen_c;	/* octets, and up to the last non-padding */
	unsigned char t1, t2;	/* the two octets ending at tlen_c */
	unsigned char last;
};

struct mime_scan *
mime_scan_new(size_t max_depth, size_t max_parts)
{
	struct mime_scan *m;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	m->max_depth = max_depth;
	m->max_parts = max_parts;
	m->mode = M_HEADER;
	m->line = L_START;
	return m;
}

void
mime_scan_free(struct mime_scan *m)
{
	if (m == NULL)
		return;
	free(m->lv);
	free(m->bnd);
	free(m);
}

static void
mime_fail(struct mime_scan *m, enum mime_error e)
{
	m->err = e;
	m->mode = M_STOP;
}

static int
mime_pad(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static unsigned char
mime_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static size_t
mime_maxblen(const struct mime_scan *m)
{
	return m->nlv ? m->lv[m->nlv - 1].maxblen : 0;
}

/* Start the header section of an entity (parent: a digest or not). */
static void
mime_entity(struct mime_scan *m, int digest)
{
	m->mode = M_HEADER;
	m->field = F_NONE;
	m->e_digest = digest;
	m->e_ctype = 0;
	m->e_kind = E_LEAF;
	m->e_blen = 0;
}

/* A body whose only interest is the delimiters around it. */
static void
mime_body(struct mime_scan *m)
{
	m->mode = mime_maxblen(m) > 0 ? M_BODY : M_DONE;
}

/* One level deeper: a multipart (with boundary b) or a message. */
static int
mime_push(struct mime_scan *m, int multipart, int digest, const char *b,
    size_t blen)
{
	struct mime_level *l;
	size_t plen = blen < MIME_BOUNDARY_MAX ? blen : MIME_BOUNDARY_MAX;
	size_t n, maxblen = mime_maxblen(m);

	if (m->nlv >= m->max_depth) {
		m->depth = m->nlv + 1;
		mime_fail(m, MIME_ERR_DEPTH);
		return -1;
	}
	if (m->nlv == m->caplv) {
		n = m->caplv ? m->caplv * 2 : 8;
		if (n > m->max_depth)
			n = m->max_depth;
		if ((l = reallocarray(m->lv, n, sizeof(*l))) == NULL)
			goto nomem;
		m->lv = l;
		m->caplv = n;
	}
	if (multipart && m->bndcap - m->bndlen < plen) {
		char *nb;

		n = m->bndcap ? m->bndcap * 2 : 256;
		while (n - m->bndlen < plen)
			n *= 2;
		if ((nb = realloc(m->bnd, n)) == NULL)
			goto nomem;
		m->bnd = nb;
		m->bndcap = n;
	}
	l = &m->lv[m->nlv++];
	l->multipart = multipart;
	l->digest = digest;
	l->off = m->bndlen;
	l->plen = multipart ? plen : 0;
	l->blen = multipart ? blen : 0;
	l->maxblen = multipart && blen > maxblen ? blen : maxblen;
	if (multipart) {
		memcpy(m->bnd + m->bndlen, b, plen);
		m->bndlen += plen;
	}
	if (m->nlv > m->depth)
		m->depth = m->nlv;
	return 0;
nomem:
	mime_fail(m, MIME_ERR_NOMEM);
	return -1;
}

static void
mime_pop(struct mime_scan *m, size_t n)
{
	m->nlv = n;
	m->bndlen = n ? m->lv[n - 1].off + m->lv[n - 1].plen : 0;
}

/* ---- Content-Type (RFC 2045 5.1) ---- */

static void
ct_begin(struct mime_scan *m)
{
	m->ct = CT_TYPE0;
	m->cdepth = m->cesc = 0;
	m->tlen = m->pnlen = 0;
	m->tover = 0;
	m->capture = m->have_bnd = 0;
	m->vlen = m->vtrim = 0;
	m->cr = 0;
}

static void
ct_name_end(struct mime_scan *m)
{
	m->capture = !m->have_bnd && m->pnlen == 8 &&
	    memcmp(m->pname, "boundary", 8) == 0;
	if (m->capture)
		m->vlen = m->vtrim = 0;
}

static void
ct_value_end(struct mime_scan *m)
{
	if (m->capture) {
		m->capture = 0;
		m->have_bnd = 1;
	}
}

static void
ct_value_octet(struct mime_scan *m, unsigned char c)
{
	if (!m->capture)
		return;
	if (m->vlen < MIME_BOUNDARY_MAX)
		m->v[m->vlen] = (char)c;
	m->vlen++;
	/* RFC 2046 5.1.1: a boundary does not end in space; padding after
	 * it in a delimiter line is not part of it either */
	if (!mime_pad(c))
		m->vtrim = m->vlen;
}

/* A comment opens: what it ends. */
static void
ct_comment(struct mime_scan *m)
{
	switch (m->ct) {
	case CT_TYPE:
		m->ct = CT_SEMI;
		break;
	case CT_NAME:
		m->ct = CT_EQ;
		break;
	case CT_VAL:
		ct_value_end(m);
		m->ct = CT_SEMI;
		break;
	default:
		break;
	}
	m->cdepth = 1;
}

static void
ct_octet(struct mime_scan *m, unsigned char c)
{
	int ws = c == ' ' || c == '\t' || c == '\r';

	if (m->cdepth > 0) {
		/* RFC 5322 3.2.2: comments nest, quoted-pair inside */
		if (m->cesc)
			m->cesc = 0;
		else if (c == '\\')
			m->cesc = 1;
		else if (c == '(' && m->cdepth < INT_MAX)
			m->cdepth++;
		else if (c == ')')
			m->cdepth--;
		return;
	}
	switch (m->ct) {
	case CT_QVAL:
		if (c == '\\')
			m->ct = CT_QESC;
		else if (c == '"') {
			ct_value_end(m);
			m->ct = CT_SEMI;
		} else
			ct_value_octet(m, c);
		return;
	case CT_QESC:
		ct_value_octet(m, c);
		m->ct = CT_QVAL;
		return;
	default:
		break;
	}
	if (c == '(') {
		ct_comment(m);
		return;
	}
	switch (m->ct) {
	case CT_TYPE0:
		if (ws)
			return;
		if (c == ';') {
			m->ct = CT_NAME0;
			return;
		}
		m->ct = CT_TYPE;
		/* FALLTHROUGH */
	case CT_TYPE:
		if (ws)
			m->ct = CT_SEMI;
		else if (c == ';')
			m->ct = CT_NAME0;
		else if (m->tlen < TYPE_MAX_LEN)
			m->type[m->tlen++] = (char)mime_lower(c);
		else
			m->tover = 1;	/* the start is kept */
		return;
	case CT_SEMI:
		if (c == ';')
			m->ct = CT_NAME0;
		return;
	case CT_NAME0:
		if (ws || c == ';')
			return;
		m->pnlen = 0;
		m->ct = CT_NAME;
		/* FALLTHROUGH */
	case CT_NAME:
		if (ws)
			m->ct = CT_EQ;
		else if (c == '=') {
			ct_name_end(m);
			m->ct = CT_VAL0;
		} else if (c == ';')
			m->ct = CT_NAME0;
		else if (m->pnlen < PNAME_MAX_LEN)
			m->pname[m->pnlen++] = (char)mime_lower(c);
		else
			m->pnlen = PNAME_MAX_LEN + 1;
		return;
	case CT_EQ:
		if (ws)
			return;
		if (c == '=') {
			ct_name_end(m);
			m->ct = CT_VAL0;
		} else
			m->ct = c == ';' ? CT_NAME0 : CT_SEMI;
		return;
	case CT_VAL0:
		if (ws)
			return;
		if (c == '"') {
			m->ct = CT_QVAL;
			return;
		}
		if (c == ';') {		/* an empty value */
			ct_value_end(m);
			m->ct = CT_NAME0;
			return;
		}
		m->ct = CT_VAL;
		/* FALLTHROUGH */
	case CT_VAL:
		/* tolerant: a token runs to white space, ';' or a comment
		 * (boundaries with '=' or '?' are often left unquoted) */
		if (ws) {
			ct_value_end(m);
			m->ct = CT_SEMI;
		} else if (c == ';') {
			ct_value_end(m);
			m->ct = CT_NAME0;
		} else
			ct_value_octet(m, c);
		return;
	default:
		return;
	}
}

static int
ct_type_is(const struct mime_scan *m, const char *t)
{
	size_t n = strlen(t);

	return !m->tover && m->tlen == n && memcmp(m->type, t, n) == 0;
}

/* The Content-Type field is complete: what the entity is. */
static void
ct_end(struct mime_scan *m)
{
	if (m->ct == CT_VAL || m->ct == CT_QVAL || m->ct == CT_QESC)
		ct_value_end(m);	/* also an unterminated quoted string */
	m->e_ctype = 1;
	if (m->e_kind != E_LEAF)
		return;
	/* RFC 2046 5.1.7: any multipart subtype is read as mixed */
	if (m->tlen >= 10 && memcmp(m->type, "multipart/", 10) == 0) {
		if (!m->have_bnd || m->vtrim == 0)
			return;		/* no parts to find */
		m->e_kind = E_MULTI;
		m->e_mdigest = ct_type_is(m, "multipart/digest");
		m->e_blen = m->vtrim;
		memcpy(m->e_bnd, m->v, m->vtrim < MIME_BOUNDARY_MAX ?
		    m->vtrim : MIME_BOUNDARY_MAX);
	} else if (ct_type_is(m, "message/rfc822") ||
	    ct_type_is(m, "message/global"))	/* RFC 6532 3.7 */
		m->e_kind = E_MSG;
}

/* ---- lines ---- */

static void
mime_field_end(struct mime_scan *m)
{
	if (m->field == F_CTYPE)
		ct_end(m);
	m->field = F_NONE;
}

/* The blank line after a header section: into the entity's body. */
static void
mime_header_end(struct mime_scan *m)
{
	mime_field_end(m);
	/* RFC 2046 5.1.5: in a digest the default is message/rfc822 */
	if (m->e_kind == E_LEAF && !m->e_ctype && m->e_digest)
		m->e_kind = E_MSG;
	switch (m->e_kind) {
	case E_MULTI:
		if (mime_push(m, 1, m->e_mdigest, m->e_bnd, m->e_blen) == 0)
			m->mode = M_BODY;	/* the preamble */
		break;
	case E_MSG:
		if (mime_push(m, 0, 0, NULL, 0) == 0)
			mime_entity(m, 0);
		break;
	case E_LEAF:
		mime_body(m);
		break;
	}
}

static void
cand_begin(struct mime_scan *m)
{
	m->clen = m->len = m->tlen_c = 0;
	m->t1 = m->t2 = m->last = 0;
	m->line = L_CAND;
}

/* A line starting with '-' ended: a delimiter of an open multipart? */
static void
cand_end(struct mime_scan *m)
{
	const struct mime_level *l;
	size_t k;
	int close;

	m->line = L_START;
	if (m->len < 2 || m->cand[1] != '-')
		return;
	for (k = m->nlv; k-- > 0;) {
		l = &m->lv[k];
		if (!l->multipart)
			continue;
		/* RFC 2046 5.1.1: "--" boundary ["--"] transport-padding */
		if (m->tlen_c == 2 + l->blen)
			close = 0;
		else if (m->tlen_c == 4 + l->blen && m->t1 == '-' && m->t2 == '-')
			close = 1;
		else
			continue;
		if (memcmp(m->cand + 2, m->bnd + l->off, l->plen) != 0)
			continue;
		if (close) {
			/* the epilogue: up to a delimiter further out */
			mime_pop(m, k);
			mime_body(m);
			return;
		}
		mime_pop(m, k + 1);
		if (++m->parts > m->max_parts) {
			mime_fail(m, MIME_ERR_PARTS);
			return;
		}
		mime_entity(m, l->digest);
		return;
	}
}

/* Octets of a candidate line from p[i]; returns the new i. */
static size_t
cand_feed(struct mime_scan *m, const unsigned char *p, size_t i, size_t n)
{
	size_t stop = 4 + mime_maxblen(m);
	unsigned char c;

	for (; i < n; i++) {
		c = p[i];
		if (c == '\n') {
			cand_end(m);
			return i + 1;
		}
		if (m->clen < CAND_MAX)
			m->cand[m->clen++] = (char)c;
		m->len++;
		if (!mime_pad(c)) {
			m->t1 = m->last;
			m->t2 = c;
			m->tlen_c = m->len;
		}
		m->last = c;
		/* not "--", or longer than any delimiter can be */
		if ((m->len == 2 && c != '-') || m->tlen_c > stop) {
			m->line = L_SKIP;
			return i + 1;
		}
	}
	return i;
}

/* Octets of a Content-Type value line from p[i]; returns the new i. */
static size_t
ctype_feed(struct mime_scan *m, const unsigned char *p, size_t i, size_t n)
{
	unsigned char c;

	for (; i < n; i++) {
		c = p[i];
		if (c == '\r') {
			if (m->cr)
				ct_octet(m, '\r');
			m->cr = 1;
			continue;
		}
		if (m->cr) {
			m->cr = 0;
			if (c != '\n')
				ct_octet(m, '\r');
		}
		if (c == '\n') {
			/* the field may go on (RFC 5322 2.2.3 folding) */
			m->line = L_START;
			return i + 1;
		}
		ct_octet(m, c);
	}
	return i;
}

/* The field name from p[i] up to its colon; returns the new i. */
static size_t
hname_feed(struct mime_scan *m, const unsigned char *p, size_t i, size_t n)
{
	unsigned char c;

	for (; i < n; i++) {
		c = p[i];
		if (c == '\n') {	/* no colon: not a field */
			m->field = F_OTHER;
			m->line = L_START;
			return i + 1;
		}
		if (c == ':') {
			/* RFC 5322 4.5.8: WSP before the colon */
			while (m->nlen > 0 && (m->name[m->nlen - 1] == ' ' ||
			    m->name[m->nlen - 1] == '\t'))
				m->nlen--;
			if (m->e_kind == E_LEAF && m->nlen == 12 &&
			    memcmp(m->name, "content-type", 12) == 0) {
				m->field = F_CTYPE;
				ct_begin(m);
				m->line = L_CTYPE;
			} else {
				m->field = F_OTHER;
				m->line = L_SKIP;
			}
			return i + 1;
		}
		if (m->nlen == NAME_MAX_LEN) {
			m->field = F_OTHER;
			m->line = L_SKIP;
			return i;
		}
		m->name[m->nlen++] = (char)mime_lower(c);
	}
	return i;
}

/* The first octet of a line in a header section. */
static void
header_start(struct mime_scan *m, unsigned char c)
{
	switch (c) {
	case '\n':
		mime_header_end(m);
		return;
	case '\r':
		m->line = L_HCR;
		return;
	case ' ':
	case '\t':
		/* RFC 5322 2.2.3: a folded continuation */
		m->line = m->field == F_CTYPE ? L_CTYPE : L_SKIP;
		if (m->field == F_CTYPE)
			ct_octet(m, c);
		return;
	default:
		break;
	}
	mime_field_end(m);
	if (c == '-' && mime_maxblen(m) > 0) {
		m->field = F_OTHER;
		cand_begin(m);
		return;
	}
	m->nlen = 0;
	m->line = L_HNAME;
}

int
mime_scan_feed(struct mime_scan *m, const char *data, size_t n)
{
	const unsigned char *p = (const unsigned char *)data;
	const unsigned char *q;
	size_t i = 0;

	while (i < n) {
		if (m->mode == M_DONE)
			return 0;
		if (m->mode == M_STOP || m->mode == M_ENDED)
			return -1;
		switch (m->line) {
		case L_SKIP:
			if ((q = memchr(p + i, '\n', n - i)) == NULL)
				return 0;
			i = (size_t)(q - p) + 1;
			m->line = L_START;
			break;
		case L_START:
			if (m->mode == M_HEADER) {
				header_start(m, p[i]);
				if (m->line != L_HNAME && m->line != L_CAND)
					i++;	/* else read there */
			} else if (p[i] == '-')
				cand_begin(m);
			else if (p[i] == '\n')
				i++;
			else
				m->line = L_SKIP;
			break;
		case L_HCR:
			if (p[i] == '\n') {
				i++;
				m->line = L_START;
				mime_header_end(m);
			} else {
				/* a line starting with CR: no field */
				mime_field_end(m);
				m->field = F_OTHER;
				m->line = L_SKIP;
			}
			break;
		case L_CAND:
			i = cand_feed(m, p, i, n);
			break;
		case L_HNAME:
			i = hname_feed(m, p, i, n);
			break;
		case L_CTYPE:
			i = ctype_feed(m, p, i, n);
			break;
		}
	}
	return m->mode == M_STOP || m->mode == M_ENDED ? -1 : 0;
}

int
mime_scan_end(struct mime_scan *m)
{
	if (m->mode == M_STOP || m->mode == M_ENDED)
		return -1;
	if (m->line == L_CAND)
		cand_end(m);
	if (m->mode == M_STOP)
		return -1;
	m->mode = M_ENDED;
	return 0;
}

enum mime_error
mime_scan_error(const struct mime_scan *m)
{
	return m->err;
}

size_t
mime_scan_parts(const struct mime_scan *m)
{
	return m->parts;
}

size_t
mime_scan_depth(const struct mime_scan *m)
{
	return m->depth;
}
