/*
 * Fuzz the DKIM canonicalizers (RFC 6376 3.4): the body hash must not
 * depend on how the body is split into chunks, and relaxed header
 * canonicalization must be idempotent.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/dkim_int.h"
#include "lib/buf.h"

static void
body_hash(const uint8_t *data, size_t size, int relaxed, long long limit,
    size_t step, unsigned char out[DKIM_HASH_LEN], unsigned long long *total)
{
	struct dkim_body *b = dkim_body_new(relaxed, limit);
	size_t off = 0;

	if (b == NULL)
		abort();
	while (off < size) {
		size_t n = step == 0 || step > size - off ? size - off : step;

		if (dkim_body_update(b, (const char *)data + off, n) == -1)
			abort();
		off += n;
	}
	if (dkim_body_final(b, out, total) == -1)
		abort();
	dkim_body_free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char h1[DKIM_HASH_LEN], h2[DKIM_HASH_LEN];
	unsigned long long t1, t2;
	struct buf a = { 0 }, b = { 0 };
	int relaxed;
	long long limit;
	size_t step;

	if (size < 3)
		return 0;
	relaxed = data[0] & 1;
	limit = (data[0] & 2) ? (long long)data[1] : -1;
	step = (size_t)(data[2] % 17) + 1;
	data += 3;
	size -= 3;

	body_hash(data, size, relaxed, limit, 0, h1, &t1);
	body_hash(data, size, relaxed, limit, step, h2, &t2);
	if (memcmp(h1, h2, sizeof(h1)) != 0 || t1 != t2)
		abort();	/* chunking changed the body hash */

	if (dkim_canon_header(&a, (const char *)data, size, 1, 0) == 0 &&
	    a.len > 0) {
		if (dkim_canon_header(&b, a.data, a.len, 1, 0) != 0)
			abort();
		if (b.len != a.len || memcmp(a.data, b.data, a.len) != 0)
			abort();	/* relaxed header canonicalization not idempotent */
	}
	buf_free(&a);
	buf_free(&b);
	return 0;
}
