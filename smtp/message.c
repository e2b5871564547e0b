/*
 * smtp/message.c: the header section of a message (RFC 5322 2.2), parsed
 * line by line as the content streams in; the body is handed on.
 *
 * A field is complete only when the next line does not start with WSP
 * (RFC 5322 2.2.3 folding), so the current field is held in `cur` until
 * the first octet of the following line is seen.
 */
#include "smtp/message.h"

#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"

struct msg_parser {
	size_t max_bytes, max_fields;
	msg_field_cb on_field;
	msg_body_cb on_body;
	void *arg;

	struct msg_field *fields;	/* raw of each owned (malloc) */
	size_t nfields, capfields;

	struct buf cur;			/* field being assembled */
	int cur_open;			/* cur holds a field */
	enum {
		LINE_START,		/* at the beginning of a line */
		LINE_HELD_CR,		/* line so far is a CR: blank? */
		LINE_MID,
	} state;
	size_t bytes;			/* header octets so far */
	int in_body, stopped, ended;
	enum msg_error err;
};

struct msg_parser *
msg_parser_new(size_t max_bytes, size_t max_fields, msg_field_cb on_field,
    msg_body_cb on_body, void *arg)
{
	struct msg_parser *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->max_bytes = max_bytes;
	p->max_fields = max_fields;
	p->on_field = on_field;
	p->on_body = on_body;
	p->arg = arg;
	return p;
}

void
msg_parser_free(struct msg_parser *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nfields; i++)
		free((char *)p->fields[i].raw);
	free(p->fields);
	buf_free(&p->cur);
	free(p);
}

static int
msg_fail(struct msg_parser *p, enum msg_error e)
{
	if (p->err == MSG_OK || p->err == MSG_ERR_SYNTAX)
		p->err = e;
	p->stopped = 1;
	return -1;
}

/* RFC 5322 3.6.8: ftext is printable US-ASCII except colon. */
static int
msg_name_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 33 || (unsigned char)s[i] > 126)
			return 0;
	return 1;
}

/* The field in cur is complete: split it, keep it, report it. */
static int
msg_flush(struct msg_parser *p)
{
	struct msg_field *f, *nf;
	const char *colon;
	size_t n, end;
	char *raw;

	if (!p->cur_open)
		return 0;
	p->cur_open = 0;
	if (p->nfields >= p->max_fields)
		return msg_fail(p, MSG_ERR_LIMIT);
	if (p->nfields == p->capfields) {
		n = p->capfields ? p->capfields * 2 : 16;
		if ((nf = reallocarray(p->fields, n, sizeof(*nf))) == NULL)
			return msg_fail(p, MSG_ERR_NOMEM);
		p->fields = nf;
		p->capfields = n;
	}
	n = p->cur.len;
	if ((raw = malloc(n + 1)) == NULL)
		return msg_fail(p, MSG_ERR_NOMEM);
	memcpy(raw, p->cur.data, n);
	raw[n] = '\0';
	buf_reset(&p->cur);

	f = &p->fields[p->nfields++];
	memset(f, 0, sizeof(*f));
	f->raw = raw;
	f->raw_len = n;
	end = n;
	if (end > 0 && raw[end - 1] == '\n')
		end--;
	if (end > 0 && raw[end - 1] == '\r')
		end--;
	/* without a (valid) name, the value is the whole line */
	f->name = raw;
	f->value = raw;
	f->value_len = end;
	colon = memchr(raw, ':', end);
	if (colon != NULL) {
		/* obs-optional (RFC 5322 4.5.8): WSP before the colon */
		n = colon - raw;
		while (n > 0 && (raw[n - 1] == ' ' || raw[n - 1] == '\t'))
			n--;
		if (msg_name_ok(raw, n)) {
			f->name_len = n;
			f->value = colon + 1;
			f->value_len = raw + end - (colon + 1);
		} else
			colon = NULL;
	}
	if (colon == NULL && p->err == MSG_OK)
		p->err = MSG_ERR_SYNTAX;	/* RFC 5322 2.2: kept as sent */
	if (p->on_field != NULL && p->on_field(f, p->arg) == -1) {
		p->stopped = 1;
		return -1;
	}
	return 0;
}

/* Start a new field line (the previous field is complete). */
static int
msg_newline(struct msg_parser *p)
{
	if (msg_flush(p) == -1)
		return -1;
	p->cur_open = 1;
	return 0;
}

int
msg_parser_feed(struct msg_parser *p, const char *data, size_t n)
{
	size_t i;

	if (p->stopped || p->ended)
		return -1;
	if (p->in_body)
		goto body;
	for (i = 0; i < n; i++) {
		char c = data[i];

		if (++p->bytes > p->max_bytes)
			return msg_fail(p, MSG_ERR_LIMIT);
		if (p->state == LINE_HELD_CR) {
			if (c == '\n') {
				/* RFC 5322 2.1: the empty line ends the header */
				i++;
				goto blank;
			}
			/* a line starting with CR: not a continuation */
			if (msg_newline(p) == -1)
				return -1;
			if (buf_appendc(&p->cur, '\r') == -1)
				return msg_fail(p, MSG_ERR_NOMEM);
			p->state = LINE_MID;
		} else if (p->state == LINE_START) {
			if (c == '\n') {
				i++;
				goto blank;
			}
			if (c == '\r') {
				p->state = LINE_HELD_CR;
				continue;
			}
			/* RFC 5322 2.2.3: WSP first means folded */
			if ((c != ' ' && c != '\t') || !p->cur_open)
				if (msg_newline(p) == -1)
					return -1;
			p->state = LINE_MID;
		}
		if (buf_appendc(&p->cur, c) == -1)
			return msg_fail(p, MSG_ERR_NOMEM);
		if (c == '\n')
			p->state = LINE_START;
	}
	return 0;
blank:
	if (msg_flush(p) == -1)
		return -1;
	p->in_body = 1;
	buf_free(&p->cur);
	data += i;
	n -= i;
body:
	if (n > 0 && p->on_body != NULL && p->on_body(data, n, p->arg) == -1) {
		p->stopped = 1;
		return -1;
	}
	return 0;
}

int
msg_parser_end(struct msg_parser *p)
{
	if (p->stopped)
		return -1;
	if (p->ended)
		return 0;
	p->ended = 1;
	if (p->in_body)
		return 0;
	if (p->state == LINE_HELD_CR) {
		/* a lone CR at the end */
		if (msg_newline(p) == -1)
			return -1;
		if (buf_appendc(&p->cur, '\r') == -1)
			return msg_fail(p, MSG_ERR_NOMEM);
	}
	return msg_flush(p);
}

enum msg_error
msg_parser_error(const struct msg_parser *p)
{
	return p->err;
}

size_t
msg_parser_count(const struct msg_parser *p)
{
	return p->nfields;
}

const struct msg_field *
msg_parser_field(const struct msg_parser *p, size_t i)
{
	return i < p->nfields ? &p->fields[i] : NULL;
}

int
msg_parser_in_body(const struct msg_parser *p)
{
	return p->in_body != 0;
}
