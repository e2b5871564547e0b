/* HTTP/1.1 request head reading: see http_request.h. */
#include "gateway/http_request.h"

#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

enum {
	HR_REQUEST_LINE,
	HR_FIELDS,
};

/* RFC 9110 5.6.2: tchar */
static const char http_request_tchar[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    "0123456789!#$%&'*+-.^_`|~";

void
http_request_init(struct http_request *r)
{
	memset(r, 0, sizeof(*r));
	r->status = HTTP_REQUEST_MORE;
	r->state = HR_REQUEST_LINE;
}

void
http_request_clear(struct http_request *r)
{
	free(r->path);
	http_request_init(r);
}

static size_t
http_request_token(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] == '\0' || strchr(http_request_tchar, s[i]) == NULL)
			break;
	return i;
}

/*
 * RFC 9112 3: method SP request-target SP HTTP-version, line[0..n) without
 * a NUL. The path is read as evhttp would (origin or absolute form, the
 * query left out).
 */
static int
http_request_line(struct http_request *r, const char *line, size_t n)
{
	char target[HTTP_REQUEST_HEAD_MAX + 1];
	const char *t, *sp, *version, *path;
	struct evhttp_uri *u;
	size_t mlen, tlen, vlen;

	mlen = http_request_token(line, n);
	if (mlen == 0 || mlen == n || line[mlen] != ' ')
		return HTTP_REQUEST_BAD;
	t = line + mlen + 1;
	if ((sp = memchr(t, ' ', n - mlen - 1)) == NULL || sp == t)
		return HTTP_REQUEST_BAD;
	tlen = (size_t)(sp - t);
	version = sp + 1;
	vlen = n - (size_t)(version - line);
	/* HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112 2.3) */
	if (vlen != 8 || memcmp(version, "HTTP/", 5) != 0 ||
	    version[5] < '0' || version[5] > '9' || version[6] != '.' ||
	    version[7] < '0' || version[7] > '9')
		return HTTP_REQUEST_BAD;
	if (mlen == 3 && memcmp(line, "GET", 3) == 0)
		r->method = HTTP_METHOD_GET;
	else if (mlen == 4 && memcmp(line, "HEAD", 4) == 0)
		r->method = HTTP_METHOD_HEAD;
	else
		r->method = HTTP_METHOD_OTHER;
	if (version[5] != '1') {
		/* RFC 9110 15.6.6: answered (505) once the head is read */
		r->version_bad = 1;
		return HTTP_REQUEST_MORE;
	}
	memcpy(target, t, tlen);
	target[tlen] = '\0';
	if ((u = evhttp_uri_parse_with_flags(target,
	    EVHTTP_URI_NONCONFORMANT)) == NULL)
		return HTTP_REQUEST_BAD;
	if ((path = evhttp_uri_get_path(u)) != NULL &&
	    (r->path = strdup(path)) == NULL) {
		evhttp_uri_free(u);
		return HTTP_REQUEST_NOMEM;
	}
	evhttp_uri_free(u);
	return HTTP_REQUEST_MORE;
}

/* One line of the head, without its CRLF or LF. */
static int
http_request_one(struct http_request *r, const char *line, size_t n)
{
	/* RFC 9112 2.2: a bare CR anywhere in the head is refused */
	if (memchr(line, '\0', n) != NULL || memchr(line, '\r', n) != NULL)
		return HTTP_REQUEST_BAD;
	if (r->state == HR_REQUEST_LINE) {
		/* RFC 9112 2.2: empty lines before it are ignored */
		if (n == 0)
			return HTTP_REQUEST_MORE;
		r->state = HR_FIELDS;
		return http_request_line(r, line, n);
	}
	if (n == 0)	/* the head is complete */
		return r->version_bad ? HTTP_REQUEST_VERSION : HTTP_REQUEST_DONE;
	/* RFC 9112 5: a field has a name and a colon; 5.2: obsolete line
	 * folding may be refused */
	if (memchr(line, ':', n) == NULL || line[0] == ' ' || line[0] == '\t')
		return HTTP_REQUEST_BAD;
	r->nfields++;
	return HTTP_REQUEST_MORE;
}

int
http_request_feed(struct http_request *r, const char *in, size_t n,
    size_t *used_r)
{
	size_t off = 0;

	*used_r = 0;
	if (r->status != HTTP_REQUEST_MORE)
		return r->status;
	while (r->status == HTTP_REQUEST_MORE) {
		/* never look past the first octet over the limit */
		size_t room = HTTP_REQUEST_HEAD_MAX - r->seen + 1;
		size_t avail = n - off, len, k;
		const char *lf;

		if (avail > room)
			avail = room;
		if (avail == 0)
			break;
		if ((lf = memchr(in + off, '\n', avail)) == NULL) {
			if (avail == room)
				r->status = HTTP_REQUEST_TOO_LARGE;
			break;
		}
		k = (size_t)(lf - (in + off));
		if (k + 1 == room) {
			r->status = HTTP_REQUEST_TOO_LARGE;
			break;
		}
		len = k > 0 && in[off + k - 1] == '\r' ? k - 1 : k;
		r->status = http_request_one(r, in + off, len);
		off += k + 1;
		r->seen += k + 1;
	}
	*used_r = r->status == HTTP_REQUEST_TOO_LARGE ? n : off;
	return r->status;
}
