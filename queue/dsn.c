#include "queue/dsn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "smtp/path.h"

#define DSN_VALUE_MAX 900	/* a field stays under 998 octets (RFC 5322 2.1.1) */
#define DSN_FOLD 78

/* ---- values ---- */

/* s[0..n) without control octets (they become spaces), and without
 * octets above 127 unless utf8 (they become '?'), at most max octets. */
static int
dsn_put_safe(struct buf *b, const char *s, size_t n, size_t max, int utf8)
{
	size_t i;

	if (n > max)
		n = max;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			c = ' ';
		else if (c >= 0x80 && !utf8)
			c = '?';
		if (buf_appendc(b, (char)c) == -1)
			return -1;
	}
	return 0;
}

/* "Name: value" CRLF, the value made safe and folded between words to keep
 * lines near 78 octets (RFC 5322 2.2.3). */
static int
dsn_field(struct buf *b, const char *name, const char *value, int utf8)
{
	struct buf v = { 0 };
	size_t col = strlen(name) + 1, first = col, i = 0, j;
	int r = 0;

	if (value == NULL)
		return 0;
	if (dsn_put_safe(&v, value, strlen(value), DSN_VALUE_MAX, utf8) == -1 ||
	    buf_appendf(b, "%s:", name) == -1) {
		buf_free(&v);
		return -1;
	}
	while (r == 0 && i < v.len) {
		while (i < v.len && v.data[i] == ' ')
			i++;
		for (j = i; j < v.len && v.data[j] != ' '; j++)
			;
		if (j == i)
			break;
		if (col > first && col + 1 + (j - i) > DSN_FOLD) {
			r = buf_appends(b, "\r\n");
			col = 0;
		}
		if (r == 0)
			r = buf_appendc(b, ' ') == -1 ||
			    buf_append(b, v.data + i, j - i) == -1 ? -1 : 0;
		col += 1 + (j - i);
		i = j;
	}
	buf_free(&v);
	return r == 0 ? buf_appends(b, "\r\n") : -1;
}

/* Field whose value is printf-formatted. */
static int
dsn_fieldf(struct buf *b, int utf8, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
dsn_fieldf(struct buf *b, int utf8, const char *name, const char *fmt, ...)
{
	char v[DSN_VALUE_MAX + 1];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v, sizeof(v), fmt, ap);
	va_end(ap);
	return dsn_field(b, name, v, utf8);
}

/* RFC 5322 3.3 date-time, in UTC. */
static const char *
dsn_date(long long t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, n, "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0)
		snprintf(out, n, "Thu, 01 Jan 1970 00:00:00 +0000");
	return out;
}

/* xtext (RFC 3461 4) decoded for display; NULL if it does not decode. */
static const char *
dsn_xtext(const char *x, char *out, size_t n)
{
	return x != NULL && smtp_xtext_decode(x, out, n) >= 0 ? out : NULL;
}

/* ---- what the last result says ---- */

struct dsn_result {
	char remote[256];	/* Remote-MTA name, "" when no server answered */
	const char *reply;	/* the server's reply, or the local reason */
};

/* queue/delivery writes "HOST said: REPLY", HOST being "name[ip]:port" or
 * "[ip]:port"; the first " said: " is ours (a reply may say anything). */
static void
dsn_parse_last(const char *last, struct dsn_result *res)
{
	const char *said = last ? strstr(last, " said: ") : NULL, *h, *e;

	res->remote[0] = '\0';
	res->reply = last;
	if (said == NULL)
		return;
	res->reply = said + 7;
	for (h = said; h > last && h[-1] != ' '; h--)
		;
	if (*h == '[') {
		/* an address literal: the address */
		h++;
		for (e = h; e < said && *e != ']'; e++)
			;
	} else
		for (e = h; e < said && *e != '['; e++)
			;
	if (e > h && (size_t)(e - h) < sizeof(res->remote)) {
		memcpy(res->remote, h, (size_t)(e - h));
		res->remote[e - h] = '\0';
	}
}

static int
dsn_digits(const char *s, size_t max)
{
	size_t n = 0;

	while (s[n] >= '0' && s[n] <= '9')
		n++;
	return n >= 1 && n <= max ? (int)n : 0;
}

/* Does the text read as an SMTP reply ("550 ..." or "550")? */
static int
dsn_is_reply(const char *s)
{
	return s != NULL && dsn_digits(s, 3) == 3 && s[0] >= '2' &&
	    s[0] <= '5' && (s[3] == ' ' || s[3] == '\0');
}

/* RFC 3463 enhanced code after the reply code, its class the same as the
 * reply's: "550 5.1.1 ..." gives "5.1.1". */
static int
dsn_enhanced(const char *reply, char *out, size_t outlen)
{
	const char *p;
	int a, b;

	if (!dsn_is_reply(reply) || reply[3] != ' ')
		return -1;
	p = reply + 4;
	if (p[0] != reply[0] || p[1] != '.' || (a = dsn_digits(p + 2, 3)) == 0 ||
	    p[2 + a] != '.' || (b = dsn_digits(p + 3 + a, 3)) == 0 ||
	    (p[3 + a + b] != ' ' && p[3 + a + b] != '\0'))
		return -1;
	snprintf(out, outlen, "%.*s", 3 + a + b, p);
	return 0;
}

void
dsn_status(const struct dsn_rcpt *r, char *out, size_t outlen)
{
	struct dsn_result res;
	char want = r->action == DSN_FAILED ? '5' :
	    r->action == DSN_DELAYED ? '4' : '2';

	dsn_parse_last(r->last, &res);
	if (dsn_enhanced(res.reply, out, outlen) == 0 && out[0] == want)
		return;
	if (r->action == DSN_FAILED && r->expired &&
	    !(dsn_is_reply(res.reply) && res.reply[0] == '5'))
		snprintf(out, outlen, "5.4.7");	/* RFC 3463: delivery time expired */
	else
		snprintf(out, outlen, "%c.0.0", want);
}

/* ---- the parts ---- */

static const char *
dsn_action_name(enum dsn_action a)
{
	static const char *names[] = { "failed", "delayed", "delivered", "relayed" };

	return names[a];
}

/* The report's kind: failed if anyone failed, else delayed if anyone is
 * delayed, else a success report. */
static enum dsn_action
dsn_kind(const struct dsn_report *r)
{
	enum dsn_action k = DSN_DELIVERED;
	size_t i;

	for (i = 0; i < r->nrcpt; i++)
		if (r->rcpts[i].action == DSN_FAILED)
			return DSN_FAILED;
		else if (r->rcpts[i].action == DSN_DELAYED)
			k = DSN_DELAYED;
	return k;
}

static int
dsn_has_8bit(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

static int
dsn_status_part(const struct dsn_report *r, struct buf *b)
{
	int u = r->smtputf8, e = 0;
	char date[64], x[SMTP_DSN_ORCPT_MAX + 1], st[16];
	size_t i;

	/* RFC 3464 2.2 per-message fields */
	e |= dsn_fieldf(b, u, "Reporting-MTA", "dns; %s", r->hostname);
	e |= dsn_field(b, "X-Mxgate-Queue-ID", r->queue_id, u);
	if (r->envid && *r->envid)
		e |= dsn_field(b, "Original-Envelope-Id", dsn_xtext(r->envid, x,
		    sizeof(x)), u);
	e |= dsn_field(b, "Arrival-Date", dsn_date(r->arrival, date,
	    sizeof(date)), u);
	for (i = 0; i < r->nrcpt; i++) {
		const struct dsn_rcpt *rc = &r->rcpts[i];
		struct dsn_result res;
		const char *semi = rc->orcpt ? strchr(rc->orcpt, ';') : NULL;

		/* RFC 3464 2.3 per-recipient fields */
		dsn_parse_last(rc->last, &res);
		e |= buf_appends(b, "\r\n");
		if (semi && dsn_xtext(semi + 1, x, sizeof(x)))
			e |= dsn_fieldf(b, u, "Original-Recipient", "%.*s;%s",
			    (int)(semi - rc->orcpt), rc->orcpt, x);
		/* RFC 6533 3: "utf-8" for an address outside ASCII */
		e |= dsn_fieldf(b, u, "Final-Recipient", "%s; %s",
		    u && dsn_has_8bit(rc->addr) ? "utf-8" : "rfc822", rc->addr);
		e |= dsn_field(b, "Action", dsn_action_name(rc->action), u);
		dsn_status(rc, st, sizeof(st));
		e |= dsn_field(b, "Status", st, u);
		if (res.remote[0])
			e |= dsn_fieldf(b, u, "Remote-MTA", "dns; %s", res.remote);
		if (res.reply && *res.reply)
			e |= dsn_fieldf(b, u, "Diagnostic-Code", "%s; %s",
			    res.remote[0] || dsn_is_reply(res.reply) ? "smtp" :
			    "X-mxgate", res.reply);
		if (r->attempt)
			e |= dsn_field(b, "Last-Attempt-Date", dsn_date(r->attempt,
			    date, sizeof(date)), u);
		if (rc->action == DSN_DELAYED && r->retry_until)
			e |= dsn_field(b, "Will-Retry-Until",
			    dsn_date(r->retry_until, date, sizeof(date)), u);
	}
	return e ? -1 : 0;
}

static int
dsn_text_part(const struct dsn_report *r, enum dsn_action kind,
    const char *note, struct buf *b)
{
	char date[64], until[64];
	size_t i;
	int e = 0;

	e |= buf_appendf(b, "This is the mail system at %s.\r\n\r\n", r->hostname);
	if (kind == DSN_FAILED)
		e |= buf_appends(b, "Your message could not be delivered to one "
		    "or more of its recipients,\r\nlisted below with the reason. "
		    "It will not be retried for them.\r\n");
	else if (kind == DSN_DELAYED)
		e |= buf_appendf(b, "Your message has not been delivered yet to "
		    "the recipients listed below.\r\nThe mail system keeps "
		    "trying until %s;\r\nyou need not send it again.\r\n",
		    dsn_date(r->retry_until, until, sizeof(until)));
	else
		e |= buf_appends(b, "Your message has been delivered to the next "
		    "mail system for the recipients\r\nlisted below, as you asked "
		    "(NOTIFY=SUCCESS). That system does not\r\nsend delivery "
		    "reports, so this is the last you will hear of it.\r\n");
	e |= buf_appendf(b, "\r\nQueue ID %s, received %s.\r\n\r\n", r->queue_id,
	    dsn_date(r->arrival, date, sizeof(date)));
	for (i = 0; i < r->nrcpt; i++) {
		const struct dsn_rcpt *rc = &r->rcpts[i];
		const char *last = rc->last ? rc->last : dsn_action_name(rc->action);

		/* one line, under 998 octets (RFC 5322 2.1.1) */
		e |= buf_appendc(b, '<');
		e |= dsn_put_safe(b, rc->addr, strlen(rc->addr), 300, r->smtputf8);
		e |= buf_appends(b, ">: ");
		e |= dsn_put_safe(b, last, strlen(last), 680, r->smtputf8);
		e |= buf_appends(b, "\r\n");
	}
	if (note)
		e |= buf_appendf(b, "\r\n%s\r\n", note);
	return e ? -1 : 0;
}

/* Reads content[0..n) at offset 0 into b. */
static int
dsn_read(int fd, size_t n, struct buf *b)
{
	size_t got = 0;
	ssize_t k;

	if (buf_reserve(b, n + 1) == -1)
		return -1;
	while (got < n) {
		k = pread(fd, b->data + b->len, n - got, (off_t)got);
		if (k == -1 && errno == EINTR)
			continue;
		if (k <= 0)
			break;	/* shorter than said: what there is */
		got += (size_t)k;
		b->len += (size_t)k;
	}
	b->data[b->len] = '\0';
	return 0;
}

/* The header section of c (with its final CRLF, without the empty line),
 * at most DSN_HDRS_MAX octets, cut at a line end. */
static size_t
dsn_header_len(const struct buf *c, int whole)
{
	const char *end;
	size_t i;

	if (c->len >= 2 && memcmp(c->data, "\r\n", 2) == 0)
		return 0;	/* no header fields at all */
	if ((end = memmem(c->data, c->len, "\r\n\r\n", 4)) != NULL)
		return (size_t)(end - c->data) + 2;
	if (whole)
		return c->len;	/* all header, no body */
	for (i = c->len; i >= 2; i--)
		if (c->data[i - 2] == '\r' && c->data[i - 1] == '\n')
			return i;
	return 0;
}

/* Part 3: sets *type_r; b gets the content, ending in CRLF. */
static int
dsn_original(const struct dsn_report *r, enum dsn_action kind, int fd,
    off_t size, struct buf *b, const char **type_r, char *note, size_t notelen)
{
	size_t full_max = r->full_max ? r->full_max : DSN_FULL_MAX, n;
	int full = r->ret_full && kind == DSN_FAILED;

	note[0] = '\0';
	if (size < 0)
		size = 0;
	if (full && (unsigned long long)size > full_max) {
		/* RFC 3461 4.3 lets us return less; a cut message/rfc822
		 * would be a broken message, so its headers instead */
		snprintf(note, notelen, "Your message was too large to return "
		    "in full (%lld octets, more than %zu);\r\nonly its header "
		    "section is attached.", (long long)size, full_max);
		full = 0;
	}
	n = full ? (size_t)size : (size_t)size < DSN_HDRS_MAX ?
	    (size_t)size : DSN_HDRS_MAX;
	if (dsn_read(fd, n, b) == -1)
		return -1;
	if (!full)
		b->len = dsn_header_len(b, n == (size_t)size);
	if (b->len > 0 && (b->len < 2 || memcmp(b->data + b->len - 2, "\r\n",
	    2) != 0) && buf_appends(b, "\r\n") == -1)
		return -1;
	/* RFC 6533 3.5, 3.7: the global types for an SMTPUTF8 message */
	if (full)
		*type_r = r->smtputf8 ? "message/global" : "message/rfc822";
	else
		*type_r = r->smtputf8 ? "message/global-headers" :
		    "text/rfc822-headers";
	return 0;
}

static int
dsn_bytes_8bit(const struct buf *b)
{
	size_t i;

	for (i = 0; i < b->len; i++)
		if ((unsigned char)b->data[i] >= 0x80)
			return 1;
	return 0;
}

/* A boundary found in none of the parts (RFC 2046 5.1.1). */
static void
dsn_boundary(const struct dsn_report *r, struct buf *parts, size_t n,
    char *out, size_t outlen)
{
	unsigned k;
	size_t i;

	for (k = 0;; k++) {
		snprintf(out, outlen, "=_mxgate_%s_%u", r->dsn_id, k);
		for (i = 0; i < n; i++)
			if (parts[i].len > 0 && memmem(parts[i].data, parts[i].len,
			    out, strlen(out)) != NULL)
				break;
		if (i == n)
			return;
	}
}

int
dsn_build(const struct dsn_report *r, int fd, off_t size, struct buf *out,
    int *eightbit_r)
{
	static const char *subjects[] = {
		"Undelivered Mail Returned to Sender",
		"Delayed Mail (still being retried)",
		"Successful Mail Delivery Report",
		"Successful Mail Delivery Report",
	};
	struct buf parts[3] = { { 0 }, { 0 }, { 0 } };
	enum dsn_action kind;
	const char *otype = NULL;
	char note[200], date[64], bnd[128];
	int e = -1, u = r->smtputf8, eight;
	size_t i;

	*eightbit_r = 0;
	if (r->nrcpt == 0)
		return -1;
	kind = dsn_kind(r);
	note[0] = '\0';
	if (fd != -1 && dsn_original(r, kind, fd, size, &parts[2], &otype,
	    note, sizeof(note)) == -1)
		goto out;
	if (dsn_text_part(r, kind, note[0] ? note : NULL, &parts[0]) == -1 ||
	    dsn_status_part(r, &parts[1]) == -1)
		goto out;
	eight = dsn_bytes_8bit(&parts[0]) || dsn_bytes_8bit(&parts[1]) ||
	    dsn_bytes_8bit(&parts[2]);
	dsn_boundary(r, parts, 3, bnd, sizeof(bnd));

	/* RFC 3464 3, RFC 6522 3; Auto-Submitted: RFC 3834 5 */
	e = 0;
	e |= buf_appendf(out, "From: \"Mail Delivery System\" <MAILER-DAEMON@%s>\r\n",
	    r->hostname);
	e |= buf_appends(out, "To: <");
	e |= dsn_put_safe(out, r->sender, strlen(r->sender), DSN_VALUE_MAX, u);
	e |= buf_appends(out, ">\r\n");
	e |= dsn_field(out, "Subject", subjects[kind], 0);
	e |= dsn_field(out, "Date", dsn_date(r->now, date, sizeof(date)), 0);
	e |= buf_appendf(out, "Message-ID: <%s.dsn@%s>\r\n", r->dsn_id, r->hostname);
	e |= buf_appends(out, "Auto-Submitted: auto-replied\r\n"
	    "MIME-Version: 1.0\r\n");
	e |= buf_appendf(out, "Content-Type: multipart/report; "
	    "report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n", bnd);
	e |= buf_appendf(out, "Content-Transfer-Encoding: %s\r\n\r\n",
	    eight ? "8bit" : "7bit");
	e |= buf_appends(out, "This is a MIME-encapsulated delivery status "
	    "notification (RFC 3464).\r\n");

	e |= buf_appendf(out, "\r\n--%s\r\nContent-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=%s\r\n\r\n", bnd,
	    u ? "utf-8" : "us-ascii");
	e |= buf_append(out, parts[0].data, parts[0].len);
	e |= buf_appendf(out, "\r\n--%s\r\nContent-Description: Delivery report\r\n"
	    "Content-Type: %s\r\n\r\n", bnd, u ? "message/global-delivery-status" :
	    "message/delivery-status");
	e |= buf_append(out, parts[1].data, parts[1].len);
	if (otype != NULL) {
		e |= buf_appendf(out, "\r\n--%s\r\nContent-Description: %s\r\n"
		    "Content-Type: %s\r\n", bnd, strstr(otype, "headers") ?
		    "Headers of the message" : "The message", otype);
		if (dsn_bytes_8bit(&parts[2]))
			e |= buf_appends(out, "Content-Transfer-Encoding: 8bit\r\n");
		e |= buf_appends(out, "\r\n");
		e |= buf_append(out, parts[2].data, parts[2].len);
	}
	e |= buf_appendf(out, "\r\n--%s--\r\n", bnd);
	*eightbit_r = eight;
	e = e ? -1 : 0;
out:
	for (i = 0; i < 3; i++)
		buf_free(&parts[i]);
	return e;
}
