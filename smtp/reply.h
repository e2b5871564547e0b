/*
 * smtp/reply: the SMTP client's reply parser (RFC 5321 4.2), a pure
 * function on lines: no I/O, no allocation, no network, nothing that waits.
 *
 * The caller cuts its input into lines, each without its line ending (CRLF,
 * or a bare LF: servers that send one are common enough to tolerate), and
 * feeds them one at a time:
 *
 *	struct smtp_reply r;
 *
 *	smtp_reply_init(&r);
 *	for each line:
 *		switch (smtp_reply_feed(&r, line, len)) {
 *		case SMTP_REPLY_MORE:	a continuation line (RFC 5321 4.2:
 *					"xyz-text"); more must follow
 *		case SMTP_REPLY_DONE:	"xyz text" or "xyz": r.code and
 *					r.text hold the whole reply
 *		case SMTP_REPLY_ERROR:	r.err says why; close the connection
 *		}
 *
 * After DONE or ERROR the next line starts a new reply. An ERROR means the
 * stream is out of step with the commands; nothing more should be read.
 *
 * Bounds: a line of more than SMTP_REPLY_LINE_MAX octets and a reply of more
 * than SMTP_REPLY_LINES_MAX lines are errors. A caller that buffers input
 * must refuse a line as soon as it has more than SMTP_REPLY_LINE_MAX octets
 * of it (plus the CR of a CRLF not yet complete), not wait for its end.
 *
 * Everything the struct holds is NUL-terminated, bounded and free of
 * control octets (each becomes '?'): it may go to logs and DSNs as it is.
 */
#ifndef SMTP_REPLY_H
#define SMTP_REPLY_H

#include <stddef.h>

/* RFC 5321 4.5.3.1.5: 512 octets per reply line with CRLF; be lenient. */
#define SMTP_REPLY_LINE_MAX	4096
/* No limit in RFC 5321; an EHLO reply has a few dozen lines at most. */
#define SMTP_REPLY_LINES_MAX	1000
/* Room for the joined text; longer replies are truncated, not refused. */
#define SMTP_REPLY_TEXT_MAX	512

enum smtp_reply_result {
	SMTP_REPLY_ERROR = -1,
	SMTP_REPLY_MORE = 0,
	SMTP_REPLY_DONE = 1,
};

struct smtp_reply {
	/* The reply being read or just read: its code (200..599), the
	 * number of lines so far, and its text: the first line with "xyz-"
	 * made "xyz ", the text of later lines appended after a space, an
	 * enhanced code (RFC 3463) that repeats the first line's left out. */
	int	 code;
	size_t	 nlines;
	char	 text[SMTP_REPLY_TEXT_MAX];
	/* The text of the line just fed (MORE or DONE), after "xyz-" or
	 * "xyz ": for the caller that reads EHLO keywords from it (RFC 5321
	 * 4.1.1.1). */
	char	 line[SMTP_REPLY_LINE_MAX + 1];
	/* Why the last feed was an error. */
	char	 err[320];
	char	 esc[16];	/* enhanced code of the first line, or "" */
	int	 open;		/* a reply is half read */
};

/* Ready for the first line of a reply; also drops a reply half read. */
void smtp_reply_init(struct smtp_reply *r);

/*
 * One line of len octets, without its line ending; it may hold any octet,
 * NUL included. Returns an enum smtp_reply_result.
 */
int smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len);

#endif
