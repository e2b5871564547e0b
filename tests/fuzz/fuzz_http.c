/*
 * libFuzzer target for gateway/http_request.c, the metrics endpoint's
 * request head reader. The input is what a client sends. It is fed whole,
 * in pieces of 7 and of 300 octets, and (when short) octet by octet, the
 * way the endpoint feeds it (the unconsumed rest again, with more after
 * it); every way must give the same answer. Then the invariants: the head
 * stays within HTTP_REQUEST_HEAD_MAX, a final answer depends only on the
 * octets consumed, a complete head has a well-formed request line and no
 * NUL, and the path is taken from the request target.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/http_request.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

struct outcome {
	int status;
	enum http_request_method method;
	char *path;
	size_t seen, used, nfields;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
feed(const uint8_t *data, size_t size, size_t step, struct outcome *o)
{
	struct http_request r;
	char *pending = malloc(size + 1);
	size_t plen = 0, off = 0, used;
	int status = HTTP_REQUEST_MORE;

	CHECK(pending != NULL);
	memset(o, 0, sizeof(*o));
	http_request_init(&r);
	while (off < size && status == HTTP_REQUEST_MORE) {
		size_t len = step && size - off > step ? step : size - off;

		memcpy(pending + plen, data + off, len);
		plen += len;
		off += len;
		status = http_request_feed(&r, pending, plen, &used);
		CHECK(used <= plen);
		if (status == HTTP_REQUEST_MORE || status == HTTP_REQUEST_DONE ||
		    status == HTTP_REQUEST_VERSION || status == HTTP_REQUEST_BAD)
			CHECK(r.seen == o->used + used);
		o->used += used;
		memmove(pending, pending + used, plen - used);
		plen -= used;
	}
	if (status != HTTP_REQUEST_MORE) {
		size_t again;

		CHECK(http_request_feed(&r, "\r\n", 2, &again) == status);
		CHECK(again == 0);
	}
	CHECK(status != HTTP_REQUEST_NOMEM);
	o->status = status;
	o->method = r.method;
	o->seen = r.seen;
	o->nfields = r.nfields;
	if (r.path != NULL)
		CHECK((o->path = strdup(r.path)) != NULL);
	if (status == HTTP_REQUEST_TOO_LARGE)
		o->used = 0;
	http_request_clear(&r);
	CHECK(r.path == NULL);
	free(pending);
}

static int
same(const struct outcome *a, const struct outcome *b)
{
	if (a->status != b->status || a->method != b->method ||
	    a->nfields != b->nfields || (a->path == NULL) != (b->path == NULL) ||
	    (a->path != NULL && strcmp(a->path, b->path) != 0))
		return 0;
	if (a->status == HTTP_REQUEST_TOO_LARGE)
		return 1;
	return a->seen == b->seen && a->used == b->used;
}

/* The first line that is not empty (RFC 9112 2.2), without its end. */
static const uint8_t *
request_line(const uint8_t *p, size_t n, size_t *len_r)
{
	for (;;) {
		const uint8_t *lf = memchr(p, '\n', n);
		size_t k;

		if (lf == NULL)
			return NULL;
		k = (size_t)(lf - p);
		if (k > 0 && p[k - 1] == '\r')
			*len_r = k - 1;
		else
			*len_r = k;
		if (*len_r > 0)
			return p;
		n -= k + 1;
		p += k + 1;
	}
}

static void
check_invariants(const uint8_t *data, size_t size, const struct outcome *o)
{
	const uint8_t *rl;
	size_t rlen = 0;

	switch (o->status) {
	case HTTP_REQUEST_MORE:
		/* undecided only while within the limit */
		CHECK(size <= HTTP_REQUEST_HEAD_MAX);
		break;
	case HTTP_REQUEST_TOO_LARGE:
		CHECK(size > HTTP_REQUEST_HEAD_MAX);
		break;
	case HTTP_REQUEST_DONE:
	case HTTP_REQUEST_VERSION:
		/* a whole head: ends with an empty line, no NUL in it */
		CHECK(o->used >= 2 && data[o->used - 1] == '\n');
		CHECK(data[o->used - 2] == '\n' || (o->used >= 3 &&
		    data[o->used - 2] == '\r' && data[o->used - 3] == '\n'));
		CHECK(memchr(data, '\0', o->used) == NULL);
		CHECK(o->method != HTTP_METHOD_NONE);
		rl = request_line(data, o->used, &rlen);
		CHECK(rl != NULL && rlen >= 12);	/* "M / HTTP/x.y" */
		CHECK(memcmp(rl + rlen - 8, "HTTP/", 5) == 0);
		CHECK(rl[rlen - 9] == ' ');
		if (o->status == HTTP_REQUEST_VERSION)
			CHECK(rl[rlen - 3] != '1' && o->path == NULL);
		else
			CHECK(rl[rlen - 3] == '1');
		break;
	case HTTP_REQUEST_BAD:
		break;
	default:
		CHECK(0);
	}
	if (o->status != HTTP_REQUEST_TOO_LARGE)
		CHECK(o->used == o->seen && o->seen <= HTTP_REQUEST_HEAD_MAX);
	if (o->method != HTTP_METHOD_NONE) {
		rl = request_line(data, size, &rlen);
		CHECK(rl != NULL);
		if (o->method == HTTP_METHOD_GET)
			CHECK(rlen > 4 && memcmp(rl, "GET ", 4) == 0);
		else if (o->method == HTTP_METHOD_HEAD)
			CHECK(rlen > 5 && memcmp(rl, "HEAD ", 5) == 0);
		/* the path comes from the target, undecoded */
		if (o->path != NULL && o->path[0] != '\0')
			CHECK(memmem(rl, rlen, o->path, strlen(o->path)) != NULL);
	} else
		CHECK(o->path == NULL && o->nfields == 0);
	if (o->nfields > 0)
		CHECK(o->method != HTTP_METHOD_NONE);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome whole, piece, again;

	feed(data, size, 0, &whole);
	check_invariants(data, size, &whole);
	feed(data, size, 7, &piece);
	CHECK(same(&whole, &piece));
	free(piece.path);
	feed(data, size, 300, &piece);
	CHECK(same(&whole, &piece));
	free(piece.path);
	if (size <= 2048) {
		feed(data, size, 1, &piece);
		CHECK(same(&whole, &piece));
		free(piece.path);
	}
	/* a final answer depends only on the octets consumed */
	if (whole.status != HTTP_REQUEST_MORE &&
	    whole.status != HTTP_REQUEST_TOO_LARGE) {
		feed(data, whole.used, 0, &again);
		CHECK(same(&whole, &again));
		free(again.path);
	}
	free(whole.path);
	return 0;
}
