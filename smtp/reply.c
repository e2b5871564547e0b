/*
 * smtp/reply: reply lines in, whole replies out (RFC 5321 4.2). Nothing
 * here reads a socket: smtp/client cuts lines, the fuzz target and the
 * unit tests feed them directly.
 */
#include "smtp/reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"

static int reply_error(struct smtp_reply *, const char *, ...)
	__attribute__((format(printf, 2, 3)));

static int
reply_error(struct smtp_reply *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
	/* The stream is out of step: whatever follows starts afresh. */
	r->open = 0;
	return SMTP_REPLY_ERROR;
}

/* Append to the reply text, truncating to fit. */
static void
reply_append(struct smtp_reply *r, const char *s, size_t n)
{
	size_t len = strlen(r->text);

	if (n > sizeof(r->text) - 1 - len)
		n = sizeof(r->text) - 1 - len;
	memcpy(r->text + len, s, n);
	r->text[len + n] = '\0';
}

void
smtp_reply_init(struct smtp_reply *r)
{
	memset(r, 0, sizeof(*r));
}

int
smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len)
{
	size_t i, n;
	const char *s;
	int code, last;

	r->err[0] = '\0';
	if (len > SMTP_REPLY_LINE_MAX)
		return reply_error(r, "reply line longer than %d octets",
		    SMTP_REPLY_LINE_MAX);
	/*
	 * RFC 5321 4.2: Reply-code [ SP textstring ] CRLF ends a reply,
	 * Reply-code "-" [ textstring ] CRLF continues it; the first digit
	 * is 2 to 5 (4.2.1). The second digit is taken as any digit: the
	 * first one alone decides what we do.
	 */
	if (len < 3 || line[0] < '2' || line[0] > '5' ||
	    line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9' ||
	    (len > 3 && line[3] != ' ' && line[3] != '-'))
		return reply_error(r, "bad reply line %s",
		    log_safen(line, len > 64 ? 64 : len));
	last = len == 3 || line[3] == ' ';
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->open) {
		/* RFC 5321 4.2.1: every line of a reply has the same code. */
		if (code != r->code)
			return reply_error(r, "reply codes %d and %d mixed",
			    r->code, code);
		/* Nothing in RFC 5321 bounds a reply; we must. */
		if (r->nlines >= SMTP_REPLY_LINES_MAX)
			return reply_error(r, "reply of more than %d lines",
			    SMTP_REPLY_LINES_MAX);
	}
	/* Replies end up in logs and DSNs: no control octets, no NULs. */
	s = len > 3 ? line + 4 : line + len;
	n = len - (size_t)(s - line);
	for (i = 0; i < n; i++)
		r->line[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ?
		    '?' : s[i];
	r->line[n] = '\0';
	s = r->line;
	if (!r->open) {
		memset(r->text, 0, sizeof(r->text));
		r->code = code;
		r->nlines = 0;
		reply_append(r, line, 3);
		if (n > 0) {
			reply_append(r, " ", 1);
			reply_append(r, s, n);
		}
		/* RFC 3463: "x.y.z" with x the reply's first digit; later
		 * lines usually repeat it, and it is said once. */
		n = strcspn(s, " ");
		r->esc[0] = '\0';
		if (n > 0 && n < sizeof(r->esc) && s[0] == line[0] &&
		    s[1] == '.')
			snprintf(r->esc, sizeof(r->esc), "%.*s", (int)n, s);
	} else {
		n = strlen(r->esc);
		if (n > 0 && strncmp(s, r->esc, n) == 0 &&
		    (s[n] == ' ' || s[n] == '\0'))
			s += n + (s[n] == ' ');
		if (*s != '\0') {
			reply_append(r, " ", 1);
			reply_append(r, s, strlen(s));
		}
	}
	r->nlines++;
	r->open = !last;
	return last ? SMTP_REPLY_DONE : SMTP_REPLY_MORE;
}
