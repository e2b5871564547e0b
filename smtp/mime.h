/*
 * smtp/mime: the MIME structure of a message (RFC 2045, 2046), followed as
 * the content streams in, counted and bounded. No body is kept.
 *
 * The scanner is fed the message content (header section, blank line,
 * body), CRLF lines split anywhere, as the session hands it over. It reads
 * Content-Type fields (RFC 2045 5.1: parameters, quoted strings, comments,
 * case-insensitive names, folded lines), the boundary delimiter lines of
 * multiparts (RFC 2046 5.1.1: "--boundary" and the close delimiter
 * "--boundary--", each with optional trailing whitespace), and enters
 * message/rfc822 and message/global parts, whose content is a message with
 * a header section of its own. It counts:
 *   parts  the body parts of every multipart at every level (each
 *          delimiter line opens one; the message itself is not a part)
 *   depth  nesting: each multipart and each enclosed message is a level.
 *          A text/plain message has depth 0, multipart/mixed 1, a
 *          multipart/alternative inside it 2.
 * Once a part beyond max_parts or a level beyond max_depth is seen, the
 * error is recorded and the scanner stops: every later call returns -1.
 *
 * Decided where RFC 2046 leaves room (all in favour of counting):
 * - A line ends at LF; CR, SP and HTAB at the end of a delimiter line are
 *   transport padding. A bare CR or a NUL is an ordinary octet.
 * - A delimiter of an enclosing multipart ends the inner levels, as if
 *   they had been closed; so does one in a part's header section (the
 *   part then has no body). The end of content ends every level, without
 *   error (an unterminated multipart is not refused here).
 * - A multipart without a boundary parameter, or with an empty one, has
 *   no parts to find: its body is not scanned and it is not a level.
 * - Boundaries up to MIME_BOUNDARY_MAX octets match exactly. A longer one
 *   (RFC 2046 allows 70) is kept as its first MIME_BOUNDARY_MAX octets and
 *   its length: a line sharing both is taken for a delimiter. Memory stays
 *   bounded, and such a boundary can only make more parts, never fewer.
 * - Of several Content-Type fields in one header section, the first that
 *   makes the entity a container (a multipart with a boundary, a
 *   message/rfc822) counts; the first boundary parameter of a field counts.
 * - In a multipart/digest a part without Content-Type is message/rfc822
 *   (RFC 2046 5.1.5).
 * - Content-Transfer-Encoding is not read: an encoded message/rfc822 is
 *   entered all the same (one level; its encoded lines show no structure).
 *   Encoded content cannot hold a delimiter line (RFC 2046 5.1.1).
 * - RFC 2231 parameter continuations (boundary*0=) are not joined.
 *
 * Cost and memory: bodies are skipped a line at a time with memchr; only
 * lines starting with "-" and Content-Type values are read octet by
 * octet. A fixed structure plus a stack of at most max_depth levels, each
 * with its boundary (at most MIME_BOUNDARY_MAX octets), grown only as
 * nesting is seen; nothing is allocated per line.
 */
#ifndef SMTP_MIME_H
#define SMTP_MIME_H

#include <stddef.h>

#define MIME_BOUNDARY_MAX 200	/* boundary octets kept and compared */

struct mime_scan;

enum mime_error {
	MIME_OK,
	MIME_ERR_DEPTH,		/* nesting deeper than max_depth */
	MIME_ERR_PARTS,		/* more than max_parts parts */
	MIME_ERR_NOMEM,
};

/* max_depth and max_parts: at least 1 each. NULL without memory. */
struct mime_scan *mime_scan_new(size_t max_depth, size_t max_parts);
void mime_scan_free(struct mime_scan *m);

/* The next n octets of content. 0, or -1 once an error is recorded. */
int mime_scan_feed(struct mime_scan *m, const char *p, size_t n);
/* End of content (a last line without line end counts). 0 or -1; feeding
 * after it is refused (-1). */
int mime_scan_end(struct mime_scan *m);

enum mime_error mime_scan_error(const struct mime_scan *m);
/* Parts seen so far; when the error is MIME_ERR_PARTS, max_parts + 1. */
size_t mime_scan_parts(const struct mime_scan *m);
/* The deepest nesting seen; when the error is MIME_ERR_DEPTH,
 * max_depth + 1. */
size_t mime_scan_depth(const struct mime_scan *m);

#endif
