/*
 * Tests for gateway/http_request.c: reading the metrics endpoint's request
 * head (RFC 9112 2-5), well-formed and hostile, whole and in pieces.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/http_request.h"
#include "lib/buf.h"

#define S(s) s, sizeof(s) - 1

#define MORE HTTP_REQUEST_MORE
#define DONE HTTP_REQUEST_DONE
#define BAD HTTP_REQUEST_BAD
#define BIG HTTP_REQUEST_TOO_LARGE
#define VER HTTP_REQUEST_VERSION

struct outcome {
	int status;
	enum http_request_method method;
	char path[64];		/* "-" for none */
	size_t used;		/* octets consumed in all (not for BIG) */
	size_t nfields;
};

/*
 * Feed in[0..n) in pieces of at most step octets (0: all at once), as the
 * endpoint does: what is not consumed is fed again with what follows.
 */
static void
feed(const char *in, size_t n, size_t step, struct outcome *o)
{
	struct http_request r;
	struct buf pending = { 0 };
	size_t off = 0, used, total = 0;
	int status = MORE;

	http_request_init(&r);
	buf_reserve(&pending, 0);
	while (off < n && status == MORE) {
		size_t len = step && n - off > step ? step : n - off;

		assert_int_equal(buf_append(&pending, in + off, len), 0);
		off += len;
		status = http_request_feed(&r, pending.data, pending.len, &used);
		assert_true(used <= pending.len);
		total += used;
		memmove(pending.data, pending.data + used, pending.len - used);
		pending.len -= used;
	}
	/* final: fed again, the same answer and nothing consumed */
	if (status != MORE) {
		assert_int_equal(http_request_feed(&r, S("x\r\n"), &used), status);
		assert_int_equal(used, 0);
	}
	memset(o, 0, sizeof(*o));
	o->status = status;
	o->method = r.method;
	snprintf(o->path, sizeof(o->path), "%s", r.path ? r.path : "-");
	o->used = status == BIG ? 0 : total;
	o->nfields = r.nfields;
	assert_int_equal(r.seen, status == BIG ? r.seen : total);
	buf_free(&pending);
	http_request_clear(&r);
	assert_null(r.path);
}

static const struct {
	const char *in;
	size_t len;
	int status;
	enum http_request_method method;
	const char *path;
	size_t used;		/* (size_t)-1: the whole input */
	size_t nfields;
} cases[] = {
#define ALL ((size_t)-1)
	{ S("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), DONE,
	    HTTP_METHOD_GET, "/metrics", ALL, 1 },
	{ S("HEAD /metrics HTTP/1.1\r\n\r\n"), DONE, HTTP_METHOD_HEAD,
	    "/metrics", ALL, 0 },
	{ S("GET /metrics HTTP/1.0\r\n\r\n"), DONE, HTTP_METHOD_GET,
	    "/metrics", ALL, 0 },
	/* RFC 9112 2.2: a bare LF ends a line too */
	{ S("GET /metrics HTTP/1.1\nHost: x\nAccept: */*\n\n"), DONE,
	    HTTP_METHOD_GET, "/metrics", ALL, 2 },
	/* RFC 9112 2.2: empty lines before the request line */
	{ S("\r\n\n\r\nGET /metrics HTTP/1.1\r\n\r\n"), DONE, HTTP_METHOD_GET,
	    "/metrics", ALL, 0 },
	/* the query is not part of the path; absolute form */
	{ S("GET /metrics?x=1 HTTP/1.1\r\n\r\n"), DONE, HTTP_METHOD_GET,
	    "/metrics", ALL, 0 },
	{ S("GET http://h:9/metrics HTTP/1.1\r\n\r\n"), DONE, HTTP_METHOD_GET,
	    "/metrics", ALL, 0 },
	{ S("POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"), DONE,
	    HTTP_METHOD_OTHER, "/metrics", 45, 1 },
	{ S("get /metrics HTTP/1.1\r\n\r\n"), DONE, HTTP_METHOD_OTHER,
	    "/metrics", ALL, 0 },
	{ S("GET / HTTP/1.1\r\n\r\n"), DONE, HTTP_METHOD_GET, "/", ALL, 0 },
	/* the body or the next request is never looked at */
	{ S("GET /metrics HTTP/1.1\r\n\r\nGET /x HTTP/1.1\r\n\r\n"), DONE,
	    HTTP_METHOD_GET, "/metrics", 25, 0 },
	/* incomplete */
	{ S(""), MORE, HTTP_METHOD_NONE, "-", 0, 0 },
	{ S("GET /metrics HTTP/1.1"), MORE, HTTP_METHOD_NONE, "-", 0, 0 },
	{ S("GET /metrics HTTP/1.1\r\nHost: x\r\n"), MORE, HTTP_METHOD_GET,
	    "/metrics", ALL, 1 },
	{ S("GET /metrics HTTP/1.1\r\n\r"), MORE, HTTP_METHOD_GET,
	    "/metrics", 23, 0 },
	/* RFC 9110 15.6.6: another version is read, then refused */
	{ S("GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n"), VER, HTTP_METHOD_GET,
	    "-", ALL, 1 },
	{ S("HEAD /metrics HTTP/0.9\r\n\r\n"), VER, HTTP_METHOD_HEAD, "-",
	    ALL, 0 },
	/* malformed request lines: answered at once */
	{ S("GET /metrics\r\n\r\n"), BAD, HTTP_METHOD_NONE, "-", 14, 0 },
	{ S("GET\r\n"), BAD, HTTP_METHOD_NONE, "-", ALL, 0 },
	{ S("GET  /metrics HTTP/1.1\r\n"), BAD, HTTP_METHOD_NONE, "-", ALL, 0 },
	{ S("GET /metrics  HTTP/1.1\r\n"), BAD, HTTP_METHOD_NONE, "-", ALL, 0 },
	{ S("GET /metrics HTTP/1.1 \r\n"), BAD, HTTP_METHOD_NONE, "-", ALL, 0 },
	{ S(" GET /metrics HTTP/1.1\r\n"), BAD, HTTP_METHOD_NONE, "-", ALL, 0 },
	{ S("G(T /metrics HTTP/1.1\r\n"), BAD, HTTP_METHOD_NONE, "-", ALL, 0 },
	{ S("GET /metrics HTTP/11\r\n"), BAD, HTTP_METHOD_NONE, "-", ALL, 0 },
	{ S("GET /metrics HTTP/1.10\r\n"), BAD, HTTP_METHOD_NONE, "-", ALL, 0 },
	{ S("GET /metrics http/1.1\r\n"), BAD, HTTP_METHOD_NONE, "-", ALL, 0 },
	{ S("GET /metrics HTTP/x.1\r\n"), BAD, HTTP_METHOD_NONE, "-", ALL, 0 },
	/* a bare CR is not a line end: the version is then malformed */
	{ S("GET /metrics HTTP/1.1\r\r\n\r\n"), BAD, HTTP_METHOD_NONE, "-",
	    24, 0 },
	{ S("GET /metrics HTTP/1.1\rHost: x\r\n"), BAD, HTTP_METHOD_NONE, "-",
	    ALL, 0 },
	/* NUL anywhere in a line */
	{ S("GET /met\0rics HTTP/1.1\r\n\r\n"), BAD, HTTP_METHOD_NONE, "-",
	    24, 0 },
	{ S("GET /metrics HTTP/1.1\r\nHost: a\0b\r\n\r\n"), BAD,
	    HTTP_METHOD_GET, "/metrics", 34, 0 },
	{ S("\0\r\n"), BAD, HTTP_METHOD_NONE, "-", ALL, 0 },
	/* a bare CR inside a field line (RFC 9112 2.2) */
	{ S("GET /metrics HTTP/1.1\r\nHost: a\rb\r\n\r\n"), BAD,
	    HTTP_METHOD_GET, "/metrics", 34, 0 },
	/* field lines: a colon, and no obs-fold (RFC 9112 5.2) */
	{ S("GET /metrics HTTP/1.1\r\nHost x\r\n\r\n"), BAD, HTTP_METHOD_GET,
	    "/metrics", 31, 0 },
	{ S("GET /metrics HTTP/1.1\r\nA: b\r\n c\r\n\r\n"), BAD,
	    HTTP_METHOD_GET, "/metrics", 33, 1 },
	{ S("GET /metrics HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n"), BAD,
	    HTTP_METHOD_GET, "/metrics", 33, 1 },
	/* a bad field after a bad version: 400 wins */
	{ S("GET /metrics HTTP/3.0\r\nno colon\r\n\r\n"), BAD,
	    HTTP_METHOD_GET, "-", 33, 0 },
#undef ALL
};

static void
check_case(size_t i, size_t step)
{
	struct outcome o;
	size_t used = cases[i].used == (size_t)-1 ? cases[i].len : cases[i].used;

	feed(cases[i].in, cases[i].len, step, &o);
	if (o.status != cases[i].status || o.method != cases[i].method ||
	    strcmp(o.path, cases[i].path) != 0 ||
	    (o.status != BIG && o.used != used) ||
	    o.nfields != cases[i].nfields)
		fail_msg("case %zu step %zu: status %d method %d path %s used %zu "
		    "fields %zu", i, step, o.status, o.method, o.path, o.used,
		    o.nfields);
}

static void
test_http_request_table(void **state)
{
	size_t i, step;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (step = 0; step <= 5; step++)
			check_case(i, step);
}

/* A head of n octets in all (n >= 29): the request line, fields of at
 * most 100 octets, the empty line. */
static void
make_head(struct buf *b, size_t n)
{
	static const char rl[] = "GET /metrics HTTP/1.1\r\n";
	size_t left = n - (sizeof(rl) - 1) - 2;	/* for the fields */

	b->len = 0;
	buf_append(b, rl, sizeof(rl) - 1);
	while (left > 0) {
		size_t len = left > 100 ? 100 : left;	/* "X:" y* CRLF */

		if (left - len > 0 && left - len < 4)
			len -= 4;
		buf_append(b, "X:", 2);
		for (size_t k = 4; k < len; k++)
			buf_appendc(b, 'y');
		buf_append(b, "\r\n", 2);
		left -= len;
	}
	buf_append(b, "\r\n", 2);
	assert_int_equal(b->len, n);
}

/* 8 KiB of head is fine, one octet more is not, however it arrives. */
static void
test_http_request_limit(void **state)
{
	struct buf b = { 0 };
	struct outcome o;
	size_t step;

	for (step = 0; step < 3; step++) {
		size_t s = step == 0 ? 0 : step == 1 ? 1 : 1000;

		make_head(&b, HTTP_REQUEST_HEAD_MAX);
		feed(b.data, b.len, s, &o);
		assert_int_equal(o.status, DONE);
		assert_int_equal(o.used, HTTP_REQUEST_HEAD_MAX);
		make_head(&b, HTTP_REQUEST_HEAD_MAX + 1);
		feed(b.data, b.len, s, &o);
		assert_int_equal(o.status, BIG);
		/* a body past a head within the limit is not counted */
		make_head(&b, HTTP_REQUEST_HEAD_MAX);
		buf_append(&b, "body", 4);
		feed(b.data, b.len, s, &o);
		assert_int_equal(o.status, DONE);
	}
	buf_free(&b);
}

/* One endless line (with a bare LF far later, or none), and endless
 * empty lines before the request line: both end at the limit. */
static void
test_http_request_overlong(void **state)
{
	struct buf b = { 0 };
	struct outcome o;
	size_t i;

	for (i = 0; i < HTTP_REQUEST_HEAD_MAX + 1; i++)
		buf_appendc(&b, 'A');
	feed(b.data, b.len, 0, &o);
	assert_int_equal(o.status, BIG);
	feed(b.data, b.len - 1, 0, &o);
	assert_int_equal(o.status, MORE);
	assert_int_equal(o.used, 0);
	buf_append(&b, " / HTTP/1.1\n\n", 14);
	feed(b.data, b.len, 7, &o);
	assert_int_equal(o.status, BIG);

	b.len = 0;
	for (i = 0; i < HTTP_REQUEST_HEAD_MAX / 2 + 1; i++)
		buf_append(&b, "\r\n", 2);
	feed(b.data, b.len, 0, &o);
	assert_int_equal(o.status, BIG);
	feed(b.data, HTTP_REQUEST_HEAD_MAX, 0, &o);
	assert_int_equal(o.status, MORE);
	assert_int_equal(o.used, HTTP_REQUEST_HEAD_MAX);
	buf_free(&b);
}

/* The parser never reads past what it may need: a caller may pass only
 * HTTP_REQUEST_HEAD_MAX + 1 octets of a flood. */
static void
test_http_request_window(void **state)
{
	size_t n = 4 * HTTP_REQUEST_HEAD_MAX, used;
	char *in = malloc(n);
	struct http_request r;

	assert_non_null(in);
	memset(in, 'a', n);
	http_request_init(&r);
	assert_int_equal(http_request_feed(&r, in, HTTP_REQUEST_HEAD_MAX + 1,
	    &used), BIG);
	http_request_clear(&r);
	/* the same as the whole flood */
	assert_int_equal(http_request_feed(&r, in, n, &used), BIG);
	http_request_clear(&r);
	free(in);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_request_table),
		cmocka_unit_test(test_http_request_limit),
		cmocka_unit_test(test_http_request_overlong),
		cmocka_unit_test(test_http_request_window),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
