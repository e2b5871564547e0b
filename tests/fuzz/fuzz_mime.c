/*
 * libFuzzer target for smtp/mime.c. The first octet picks a chunk size,
 * the second the limits; the rest is content. Checks that the counts are
 * the same whatever the chunking, and that the limits hold.
 */
#include <stddef.h>
#include <stdint.h>

#include "smtp/mime.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
	size_t parts, depth;
	enum mime_error err;
	int rc;
};

static int
run(const char *p, size_t n, size_t chunk, size_t max_depth,
    size_t max_parts, struct run *r)
{
	struct mime_scan *m;
	size_t off, k;
	int rc = 0;

	if ((m = mime_scan_new(max_depth, max_parts)) == NULL)
		return -1;
	for (off = 0; off < n; off += k) {
		k = n - off < chunk ? n - off : chunk;
		if (mime_scan_feed(m, p + off, k) == -1)
			rc = -1;
		/* once failed, always failed */
		CHECK(rc == 0 || mime_scan_error(m) != MIME_OK);
	}
	if (mime_scan_end(m) == -1)
		rc = -1;
	r->parts = mime_scan_parts(m);
	r->depth = mime_scan_depth(m);
	r->err = mime_scan_error(m);
	r->rc = rc;
	mime_scan_free(m);
	if (r->err == MIME_ERR_NOMEM)
		return -1;
	CHECK((rc == -1) == (r->err != MIME_OK));
	CHECK(r->parts <= max_parts + 1 && r->depth <= max_depth + 1);
	CHECK(r->err != MIME_OK || (r->parts <= max_parts &&
	    r->depth <= max_depth));
	CHECK(r->err != MIME_ERR_PARTS || r->parts == max_parts + 1);
	CHECK(r->err != MIME_ERR_DEPTH || r->depth == max_depth + 1);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run a, b, c;
	size_t chunk, depth, parts;

	if (size < 2)
		return 0;
	chunk = 1 + data[0] % 23;
	depth = 1 + data[1] % 8;
	parts = 1 + (data[1] >> 3) % 32;
	data += 2;
	size -= 2;
	if (run((const char *)data, size, size ? size : 1, depth, parts, &a) == -1 ||
	    run((const char *)data, size, chunk, depth, parts, &b) == -1 ||
	    run((const char *)data, size, chunk, 20, 1000, &c) == -1)
		return 0;
	CHECK(a.parts == b.parts && a.depth == b.depth && a.err == b.err);
	/* the small limits only cut the same walk short */
	CHECK(a.parts <= c.parts || c.err != MIME_OK);
	CHECK(a.err != MIME_OK || (a.parts == c.parts && a.depth == c.depth));
	return 0;
}
