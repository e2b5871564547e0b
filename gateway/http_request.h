/*
 * gateway/http_request: reading an HTTP/1.1 request head (RFC 9112 2-5),
 * for the metrics endpoint. Pure computation on bytes: no I/O, no event
 * loop; the caller feeds what has arrived and answers from the result.
 *
 * The head is read line by line; a line ends at LF, with one CR before it
 * taken as part of the end (CRLF, or a bare LF: RFC 9112 2.2). Empty lines
 * before the request line are ignored (RFC 9112 2.2). The request line is
 * method SP request-target SP HTTP-version (RFC 9112 3); a field line
 * needs a colon and must not start with white space (RFC 9112 5, 5.2: the
 * obsolete line folding is refused). A NUL anywhere in a line is refused.
 * Field values are not kept: nothing here needs them. A request body is
 * never read.
 *
 * The whole head, up to and including the empty line that ends it, is at
 * most HTTP_REQUEST_HEAD_MAX octets; the decision never depends on how the
 * octets were split between calls.
 */
#ifndef GATEWAY_HTTP_REQUEST_H
#define GATEWAY_HTTP_REQUEST_H

#include <stddef.h>

#define HTTP_REQUEST_HEAD_MAX	8192	/* request line and header fields */

enum http_request_status {
	HTTP_REQUEST_MORE,	/* the head is not complete: feed more */
	HTTP_REQUEST_DONE,	/* a complete, well-formed HTTP/1.x head */
	HTTP_REQUEST_BAD,	/* malformed (400): answer at once */
	HTTP_REQUEST_TOO_LARGE,	/* over HTTP_REQUEST_HEAD_MAX (431) */
	HTTP_REQUEST_VERSION,	/* complete, but not HTTP/1.x (505) */
	HTTP_REQUEST_NOMEM,	/* out of memory */
};

enum http_request_method {
	HTTP_METHOD_NONE,	/* no well-formed request line (yet) */
	HTTP_METHOD_GET,
	HTTP_METHOD_HEAD,
	HTTP_METHOD_OTHER,	/* any other token */
};

struct http_request {
	enum http_request_method method;	/* set once the request line
						 * is well-formed */
	char *path;		/* the target's path (origin or absolute form,
				 * the query left out), or NULL when the
				 * target has none or was not read; owned,
				 * freed by http_request_clear */
	size_t seen;		/* octets of complete lines consumed */
	size_t nfields;		/* field lines read */
	int status;		/* private */
	int state;		/* private */
	int version_bad;	/* private: answer 505 at the end */
};

void http_request_init(struct http_request *r);
void http_request_clear(struct http_request *r);

/*
 * Feed in[0..n): the octets received and not yet consumed. Complete lines
 * are consumed (*used_r counts them) until the head ends or fails; the
 * rest of an incomplete line is left to the caller, to be fed again with
 * what follows it. Looks at no more than HTTP_REQUEST_HEAD_MAX + 1 - seen
 * octets, so a caller may pass just that many.
 *
 * Returns HTTP_REQUEST_MORE, or the final status; once final, further
 * calls return it again and consume nothing. After DONE or VERSION,
 * *used_r stops at the end of the head (what follows is a body or the next
 * request, never looked at); after BAD, at the end of the line at fault;
 * after TOO_LARGE the input is to be discarded.
 */
int http_request_feed(struct http_request *r, const char *in, size_t n,
    size_t *used_r);

#endif
