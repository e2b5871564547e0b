/*
 * Tests for smtp/mime.c: parts and nesting counted on real-looking mails
 * however the content is split, the limits at and one past their value,
 * and hostile or broken input (missing, empty and huge boundaries,
 * unterminated multiparts, NUL, bare CR and LF, long lines, deep nesting).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "smtp/mime.h"

struct result {
	size_t parts, depth;
	enum mime_error err;
	int feed_rc, end_rc;
};

/* Feed msg in chunks of `chunk` octets (0: at once), then end. */
static struct result
scan_n(const char *msg, size_t len, size_t chunk, size_t max_depth,
    size_t max_parts)
{
	struct mime_scan *m = mime_scan_new(max_depth, max_parts);
	struct result r;
	size_t off, k;

	assert_non_null(m);
	memset(&r, 0, sizeof(r));
	if (chunk == 0)
		chunk = len ? len : 1;
	for (off = 0; off < len; off += k) {
		k = len - off < chunk ? len - off : chunk;
		if (mime_scan_feed(m, msg + off, k) == -1)
			r.feed_rc = -1;
	}
	r.end_rc = mime_scan_end(m);
	r.parts = mime_scan_parts(m);
	r.depth = mime_scan_depth(m);
	r.err = mime_scan_error(m);
	mime_scan_free(m);
	return r;
}

static struct result
scan(const char *msg, size_t max_depth, size_t max_parts)
{
	return scan_n(msg, strlen(msg), 0, max_depth, max_parts);
}

static void
check(struct result r, size_t parts, size_t depth, enum mime_error err)
{
	assert_int_equal(r.err, err);
	assert_int_equal(r.parts, parts);
	assert_int_equal(r.depth, depth);
	assert_int_equal(r.end_rc, err == MIME_OK ? 0 : -1);
	assert_int_equal(r.feed_rc, err == MIME_OK ? 0 : -1);
}

/* The same result for every split into two feeds, and octet by octet. */
static void
check_splits(const char *msg, size_t len, size_t parts, size_t depth)
{
	struct mime_scan *m;
	size_t k;

	check(scan_n(msg, len, 0, 100, 1000), parts, depth, MIME_OK);
	check(scan_n(msg, len, 1, 100, 1000), parts, depth, MIME_OK);
	check(scan_n(msg, len, 7, 100, 1000), parts, depth, MIME_OK);
	for (k = 0; k <= len; k++) {
		assert_non_null(m = mime_scan_new(100, 1000));
		assert_int_equal(mime_scan_feed(m, msg, k), 0);
		assert_int_equal(mime_scan_feed(m, msg + k, len - k), 0);
		assert_int_equal(mime_scan_end(m), 0);
		if (mime_scan_parts(m) != parts || mime_scan_depth(m) != depth)
			fail_msg("split at %zu: %zu parts, depth %zu", k,
			    mime_scan_parts(m), mime_scan_depth(m));
		mime_scan_free(m);
	}
}

static const char plain[] =
    "From: a@example.com\r\n"
    "To: b@example.org\r\n"
    "Subject: hello\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "--not a delimiter\r\n"
    "Hello.\r\n";

/* mixed > (alternative > text, html), attachment; a base64 line holds the
 * boundary, not at its start; lines in the body look like headers */
static const char alternative[] =
    "From: a@example.com\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
    "\r\n"
    "This is a multi-part message in MIME format.\r\n"
    "--outer\r\n"
    "Content-Type: multipart/alternative;\r\n"
    "\tboundary=\"inner\"\r\n"
    "\r\n"
    "--inner\r\n"
    "Content-Type: text/plain; charset=us-ascii\r\n"
    "\r\n"
    "Content-Type: multipart/mixed; boundary=fake\r\n"
    "--fake\r\n"
    "--inner-not\r\n"
    "--inner\r\n"
    "Content-Type: text/html\r\n"
    "\r\n"
    "<p>hi</p>\r\n"
    "--inner--\r\n"
    "--outer\r\n"
    "Content-Type: application/octet-stream; name=\"a.bin\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "QUJD--outer\r\n"
    "QUJD--outer--\r\n"
    "--outer--\r\n"
    "epilogue\r\n"
    "--outer\r\n"
    "--inner\r\n";

/* a forwarded message (message/rfc822) with its own alternative */
static const char forwarded[] =
    "From: a@example.com\r\n"
    "Content-Type: multipart/mixed; boundary=\"=_mix_1\"\r\n"
    "\r\n"
    "--=_mix_1\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "See below.\r\n"
    "--=_mix_1\r\n"
    "Content-Type: message/rfc822\r\n"
    "Content-Disposition: attachment\r\n"
    "\r\n"
    "From: c@example.net\r\n"
    "Subject: original\r\n"
    "Content-Type: multipart/alternative; boundary=\"=_alt_2\"\r\n"
    "\r\n"
    "--=_alt_2\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "text\r\n"
    "--=_alt_2\r\n"
    "Content-Type: text/html\r\n"
    "\r\n"
    "<b>html</b>\r\n"
    "--=_alt_2--\r\n"
    "\r\n"
    "--=_mix_1--\r\n";

/* quoted boundary with spaces, comments, folding, odd case, padding */
static const char quoted[] =
    "Content-type : Multipart/Mixed (a comment; boundary=fake) ;\r\n"
    " charset=\"x\"; BOUNDARY\r\n"
    "  = \"simple \\\"boundary\\\" here\" ; other=1\r\n"
    "\r\n"
    "preamble\r\n"
    "--simple \"boundary\" here \t \r\n"
    "\r\n"
    "part one\r\n"
    "--simple \"boundary\" here\r\n"
    "--fake\r\n"
    "--simple \"boundary\" here--  \r\n";

static void
test_plain(void **state)
{
	check(scan(plain, 20, 1000), 0, 0, MIME_OK);
	check(scan("", 20, 1000), 0, 0, MIME_OK);
	/* a message without a body */
	check(scan("Content-Type: multipart/mixed; boundary=b\r\n", 20, 1000),
	    0, 0, MIME_OK);
}

static void
test_alternative(void **state)
{
	check_splits(alternative, strlen(alternative), 4, 2);
}

static void
test_forwarded(void **state)
{
	check_splits(forwarded, strlen(forwarded), 4, 3);
	/* the enclosed message is a level */
	check(scan(forwarded, 2, 1000), 2, 3, MIME_ERR_DEPTH);
}

static void
test_quoted(void **state)
{
	check_splits(quoted, strlen(quoted), 2, 1);
}

static void
test_bare_lf(void **state)
{
	struct buf b = { 0 };
	size_t i;

	/* LF-only line ends: the same structure */
	for (i = 0; forwarded[i]; i++)
		if (forwarded[i] != '\r')
			assert_int_equal(buf_appendc(&b, forwarded[i]), 0);
	check_splits(b.data, b.len, 4, 3);
	buf_free(&b);
	/* a bare CR inside a delimiter line is no padding there */
	check(scan("Content-Type: multipart/mixed; boundary=b\r\n\r\n"
	    "--b\rx\r\n--b\r\r\n--b--\r\n", 20, 1000), 1, 1, MIME_OK);
	/* a line starting with CR in a header section is no field */
	check(scan("Content-Type: multipart/mixed; boundary=b\r\n\rX: y\r\n\r\n"
	    "--b\r\n", 20, 1000), 1, 1, MIME_OK);
}

static void
test_digest(void **state)
{
	/* RFC 2046 5.1.5: parts of a digest are messages by default */
	static const char d[] =
	    "Content-Type: multipart/digest; boundary=d\r\n\r\n"
	    "--d\r\n\r\n"
	    "From: x@example.com\r\n"
	    "Content-Type: multipart/mixed; boundary=m\r\n\r\n"
	    "--m\r\n\r\nx\r\n--m--\r\n"
	    "--d\r\nContent-Type: text/plain\r\n\r\n"
	    "--d--\r\n";

	check_splits(d, sizeof(d) - 1, 3, 3);
}

static void
test_delimiters(void **state)
{
	/* an outer delimiter ends an inner multipart left open */
	check(scan("Content-Type: multipart/mixed; boundary=o\r\n\r\n"
	    "--o\r\nContent-Type: multipart/mixed; boundary=i\r\n\r\n"
	    "--i\r\n\r\n--i\r\n"
	    "--o\r\n\r\n--i\r\n--o--\r\n", 20, 1000), 4, 2, MIME_OK);
	/* a delimiter in a part's header section: a part without body */
	check(scan("Content-Type: multipart/mixed; boundary=o\r\n\r\n"
	    "--o\r\nContent-Type: multipart/mixed; boundary=i\r\n"
	    "--o\r\n\r\n--i\r\n--o--\r\n", 20, 1000), 2, 1, MIME_OK);
	/* not delimiters: text after it, a longer name, not at the start */
	check(scan("Content-Type: multipart/mixed; boundary=b\r\n\r\n"
	    "--b x\r\n--bb\r\n--b-\r\n--b---\r\n x--b\r\n-b\r\n--\r\n"
	    "- -b\r\n---b\r\n", 20, 1000), 0, 1, MIME_OK);
	/* a close delimiter ends the counting of that level */
	check(scan("Content-Type: multipart/mixed; boundary=b\r\n\r\n"
	    "--b\r\n\r\n--b--\r\n--b\r\n--b\r\n", 20, 1000), 1, 1, MIME_OK);
	/* the first container Content-Type counts, not a later one */
	check(scan("Content-Type: text/plain\r\n"
	    "Content-Type: multipart/mixed; boundary=b\r\n"
	    "Content-Type: multipart/mixed; boundary=c\r\n\r\n"
	    "--c\r\n--b\r\n--b\r\n", 20, 1000), 2, 1, MIME_OK);
	/* any multipart subtype is mixed, also a long one */
	check(scan("Content-Type: multipart/x-a-very-long-subtype-name-indeed"
	    "; boundary=b\r\n\r\n--b\r\n", 20, 1000), 1, 1, MIME_OK);
	/* message/rfc822 at the top, and message/global */
	check(scan("Content-Type: message/rfc822\r\n\r\n"
	    "Content-Type: message/global\r\n\r\n"
	    "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n",
	    20, 1000), 1, 3, MIME_OK);
	/* unquoted boundary with '=' and '?' (tolerated) */
	check(scan("Content-Type: multipart/mixed; boundary==_x?y\r\n\r\n"
	    "--=_x?y\r\n\r\n--=_x?y--\r\n", 20, 1000), 1, 1, MIME_OK);
}

/* n multiparts, one inside the other, each with its own boundary */
static void
nested(struct buf *b, size_t n)
{
	size_t i;

	buf_reset(b);
	for (i = 0; i < n; i++)
		assert_int_not_equal(buf_appendf(b, "Content-Type: multipart/mixed;"
		    " boundary=\"lvl%zu\"\r\n\r\npreamble\r\n--lvl%zu\r\n", i, i), -1);
	assert_int_not_equal(buf_appends(b, "Content-Type: text/plain\r\n\r\n"
	    "leaf\r\n"), -1);
	for (i = n; i-- > 0;)
		assert_int_not_equal(buf_appendf(b, "--lvl%zu--\r\n", i), -1);
}

/* one multipart of n parts */
static void
flat(struct buf *b, size_t n)
{
	size_t i;

	buf_reset(b);
	assert_int_not_equal(buf_appends(b,
	    "Content-Type: multipart/mixed; boundary=p\r\n\r\n"), -1);
	for (i = 0; i < n; i++)
		assert_int_not_equal(buf_appendf(b, "--p\r\nContent-Type: "
		    "text/plain\r\n\r\npart %zu\r\n", i), -1);
	assert_int_not_equal(buf_appends(b, "--p--\r\n"), -1);
}

static void
test_depth_limit(void **state)
{
	struct buf b = { 0 };

	nested(&b, 3);
	check(scan_n(b.data, b.len, 0, 3, 1000), 3, 3, MIME_OK);
	check(scan_n(b.data, b.len, 5, 3, 1000), 3, 3, MIME_OK);
	nested(&b, 4);
	check(scan_n(b.data, b.len, 0, 3, 1000), 3, 4, MIME_ERR_DEPTH);
	check(scan_n(b.data, b.len, 1, 3, 1000), 3, 4, MIME_ERR_DEPTH);
	nested(&b, 1);
	check(scan_n(b.data, b.len, 0, 1, 1000), 1, 1, MIME_OK);
	nested(&b, 2);
	check(scan_n(b.data, b.len, 0, 1, 1000), 1, 2, MIME_ERR_DEPTH);
	buf_free(&b);
}

static void
test_parts_limit(void **state)
{
	struct buf b = { 0 };
	struct result r;

	flat(&b, 10);
	check(scan_n(b.data, b.len, 0, 20, 10), 10, 1, MIME_OK);
	check(scan_n(b.data, b.len, 3, 20, 10), 10, 1, MIME_OK);
	flat(&b, 11);
	check(scan_n(b.data, b.len, 0, 20, 10), 11, 1, MIME_ERR_PARTS);
	check(scan_n(b.data, b.len, 1, 20, 10), 11, 1, MIME_ERR_PARTS);
	/* parts at every level count: 2 + 2 in alternative */
	check(scan(alternative, 20, 3), 4, 2, MIME_ERR_PARTS);
	check(scan(alternative, 20, 4), 4, 2, MIME_OK);
	/* a delimiter as the last line, without line end (BDAT): counted
	 * at the end */
	r = scan("Content-Type: multipart/mixed; boundary=p\r\n\r\n"
	    "--p\r\n\r\n--p", 20, 1);
	assert_int_equal(r.feed_rc, 0);
	assert_int_equal(r.end_rc, -1);
	assert_int_equal(r.err, MIME_ERR_PARTS);
	assert_int_equal(r.parts, 2);
	buf_free(&b);
}

static void
test_stops(void **state)
{
	struct mime_scan *m;
	struct buf b = { 0 };

	/* after an error everything fails, and nothing more is counted */
	flat(&b, 5);
	assert_non_null(m = mime_scan_new(20, 2));
	assert_int_equal(mime_scan_feed(m, b.data, b.len), -1);
	assert_int_equal(mime_scan_error(m), MIME_ERR_PARTS);
	assert_int_equal(mime_scan_parts(m), 3);
	assert_int_equal(mime_scan_feed(m, b.data, b.len), -1);
	assert_int_equal(mime_scan_parts(m), 3);
	assert_int_equal(mime_scan_end(m), -1);
	mime_scan_free(m);
	/* nothing is fed after the end */
	assert_non_null(m = mime_scan_new(20, 20));
	assert_int_equal(mime_scan_feed(m, b.data, b.len), 0);
	assert_int_equal(mime_scan_end(m), 0);
	assert_int_equal(mime_scan_feed(m, "x", 1), -1);
	assert_int_equal(mime_scan_end(m), -1);
	assert_int_equal(mime_scan_error(m), MIME_OK);
	mime_scan_free(m);
	mime_scan_free(NULL);
	buf_free(&b);
}

static void
test_no_boundary(void **state)
{
	static const char *bad[] = {
		"Content-Type: multipart/mixed\r\n\r\n--b\r\n--\r\n----\r\n",
		"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n----\r\n",
		"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n----\r\n",
		"Content-Type: multipart/mixed; boundary=  ;x=y\r\n\r\n--\r\n",
		"Content-Type: multipart/mixed; boundary=\"   \"\r\n\r\n--   \r\n",
		"Content-Type: multipart/mixed; boundary\r\n\r\n--\r\n",
		"Content-Type: multipart/mixed; (boundary=b)\r\n\r\n--b\r\n",
		"Content-Type: multipart/mixed; boundary*0=b\r\n\r\n--b\r\n",
		"Content-Type: ; boundary=b\r\n\r\n--b\r\n",
		"Content-Type:\r\n\r\n--b\r\n",
		"Content-Type\r\n\r\n--b\r\n",
		"X-Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n",
		"Content-Type: multipart/mixed; boundary=\"b\r\n\r\n--b\r\n",
		"\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n",
	};
	size_t i;
	struct result r;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = scan(bad[i], 20, 1000);
		if (r.parts != (i == 12) || r.err != MIME_OK)
			fail_msg("case %zu: %zu parts", i, r.parts);
	}
}

static void
test_long_boundary(void **state)
{
	struct buf b = { 0 }, bnd = { 0 };
	size_t i;

	/* 1000 octets: matched on its first MIME_BOUNDARY_MAX and length */
	for (i = 0; i < 1000; i++)
		assert_int_equal(buf_appendc(&bnd, "abcdefghij"[i % 10]), 0);
	assert_int_not_equal(buf_appendf(&b, "Content-Type: multipart/mixed; "
	    "boundary=\"%s\"\r\n\r\n", bnd.data), -1);
	for (i = 0; i < 3; i++)
		assert_int_not_equal(buf_appendf(&b, "--%s\r\n\r\npart\r\n",
		    bnd.data), -1);
	/* shorter or longer by one: no delimiter */
	assert_int_not_equal(buf_appendf(&b, "--%.*s\r\n--%sa\r\n--%sa--\r\n",
	    999, bnd.data, bnd.data, bnd.data), -1);
	assert_int_not_equal(buf_appendf(&b, "--%s--\r\n--%s\r\n",
	    bnd.data, bnd.data), -1);
	check(scan_n(b.data, b.len, 0, 20, 1000), 3, 1, MIME_OK);
	check(scan_n(b.data, b.len, 13, 20, 1000), 3, 1, MIME_OK);
	check(scan_n(b.data, b.len, 0, 20, 2), 3, 1, MIME_ERR_PARTS);
	/* At MIME_BOUNDARY_MAX a line differing in its last octet is no
	 * delimiter; one octet longer, only the first MIME_BOUNDARY_MAX and
	 * the length are compared: it is taken for one (one part more). */
	for (i = MIME_BOUNDARY_MAX; i <= MIME_BOUNDARY_MAX + 1; i++) {
		buf_reset(&b);
		assert_int_not_equal(buf_appendf(&b, "Content-Type: multipart/"
		    "mixed; boundary=\"%.*s\"\r\n\r\n--%.*s\r\n--%.*sX\r\n"
		    "--%.*s--\r\n--%.*s\r\n", (int)i, bnd.data, (int)i, bnd.data,
		    (int)i - 1, bnd.data, (int)i, bnd.data, (int)i, bnd.data), -1);
		check(scan_n(b.data, b.len, 0, 20, 1000),
		    i == MIME_BOUNDARY_MAX ? 1 : 2, 1, MIME_OK);
	}
	buf_free(&b);
	buf_free(&bnd);
}

static void
test_unterminated(void **state)
{
	/* no close delimiter, and content ending inside a part's header */
	check(scan("Content-Type: multipart/mixed; boundary=b\r\n\r\n"
	    "--b\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n"
	    "--c\r\n\r\ntext\r\n", 20, 1000), 2, 2, MIME_OK);
	check(scan("Content-Type: multipart/mixed; boundary=b\r\n\r\n"
	    "--b\r\nContent-Type: multipart/alternative; bound", 20, 1000),
	    1, 1, MIME_OK);
	check(scan("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b",
	    20, 1000), 1, 1, MIME_OK);
	check(scan("Content-Type: multipart/mixed; boundary=\"b", 20, 1000),
	    0, 0, MIME_OK);
}

static void
test_nul(void **state)
{
	static const char m[] =
	    "X-A: \0\0\r\n"
	    "Content-Type: multipart/mixed; boundary=\"a\0b\"\r\n\r\n"
	    "\0--a\0b\r\n"
	    "--a\0b\r\n\r\n\0\0\0\r\n"
	    "--a\r\n"
	    "--a\0b--\r\n";

	check_splits(m, sizeof(m) - 1, 1, 1);
}

static void
test_long_lines(void **state)
{
	struct buf b = { 0 };
	size_t i;

	/* a 100 KB header field, then a 100 KB Content-Type value whose
	 * boundary comes last, then 100 KB body lines */
	assert_int_not_equal(buf_appends(&b, "X-Long: "), -1);
	for (i = 0; i < 100 * 1024; i++)
		assert_int_equal(buf_appendc(&b, 'x'), 0);
	assert_int_not_equal(buf_appends(&b, "\r\nContent-Type: multipart/mixed"), -1);
	for (i = 0; i < 10 * 1024; i++)
		assert_int_not_equal(buf_appendf(&b, ";\r\n p%zu=\"v\"", i % 10), -1);
	assert_int_not_equal(buf_appends(&b, "; boundary=\"b\"\r\n\r\n--b\r\n\r\n"), -1);
	for (i = 0; i < 100 * 1024; i++)
		assert_int_equal(buf_appendc(&b, i % 2 ? '-' : ' '), 0);
	assert_int_not_equal(buf_appends(&b, "\r\n--b"), -1);
	for (i = 0; i < 100 * 1024; i++)
		assert_int_equal(buf_appendc(&b, i % 2 ? ' ' : '\t'), 0);
	assert_int_not_equal(buf_appends(&b, "\r\n--"), -1);
	for (i = 0; i < 100 * 1024; i++)
		assert_int_equal(buf_appendc(&b, 'b'), 0);
	assert_int_not_equal(buf_appends(&b, "\r\n--b--\r\n"), -1);
	check(scan_n(b.data, b.len, 0, 20, 1000), 2, 1, MIME_OK);
	check(scan_n(b.data, b.len, 4093, 20, 1000), 2, 1, MIME_OK);
	buf_free(&b);
}

static void
test_deep_nesting(void **state)
{
	struct buf b = { 0 };

	nested(&b, 5000);
	/* stops at the limit */
	check(scan_n(b.data, b.len, 0, 20, 100000), 20, 21, MIME_ERR_DEPTH);
	check(scan_n(b.data, b.len, 1000, 1000, 100000), 1000, 1001,
	    MIME_ERR_DEPTH);
	/* and follows it all when allowed */
	check(scan_n(b.data, b.len, 0, 5000, 5000), 5000, 5000, MIME_OK);
	check(scan_n(b.data, b.len, 0, 5000, 4999), 5000, 5000, MIME_ERR_PARTS);
	/* message/rfc822 nested 5000 deep */
	buf_reset(&b);
	{
		size_t i;

		for (i = 0; i < 5000; i++)
			assert_int_not_equal(buf_appends(&b,
			    "Content-Type: message/rfc822\r\n\r\n"), -1);
	}
	check(scan_n(b.data, b.len, 0, 20, 1000), 0, 21, MIME_ERR_DEPTH);
	check(scan_n(b.data, b.len, 0, 5000, 1000), 0, 5000, MIME_OK);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_alternative),
		cmocka_unit_test(test_forwarded),
		cmocka_unit_test(test_quoted),
		cmocka_unit_test(test_bare_lf),
		cmocka_unit_test(test_digest),
		cmocka_unit_test(test_delimiters),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_parts_limit),
		cmocka_unit_test(test_stops),
		cmocka_unit_test(test_no_boundary),
		cmocka_unit_test(test_long_boundary),
		cmocka_unit_test(test_unterminated),
		cmocka_unit_test(test_nul),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_deep_nesting),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
