/*
 * libFuzzer target for smtp/message.c. The first octet picks a chunk
 * size; the rest is content. Checks that the fields and body seen are
 * the same whatever the chunking, and what the header promises of them.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "smtp/message.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
on_field(const struct msg_field *f, void *arg)
{
	CHECK(f->raw_len > 0);
	CHECK(f->name == f->raw);
	CHECK(f->value >= f->raw && f->value + f->value_len <= f->raw + f->raw_len);
	CHECK(memchr(f->name, ':', f->name_len) == NULL);
	return 0;
}

static int
on_body(const char *p, size_t n, void *arg)
{
	return buf_append(arg, p, n);
}

static struct msg_parser *
run(const char *p, size_t n, size_t chunk, struct buf *body)
{
	struct msg_parser *mp;
	size_t off;

	mp = msg_parser_new(4096, 64, on_field, on_body, body);
	if (mp == NULL)
		return NULL;
	for (off = 0; off < n; off += chunk)
		if (msg_parser_feed(mp, p + off, n - off < chunk ? n - off : chunk) == -1)
			break;
	msg_parser_end(mp);
	return mp;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf b1 = { 0 }, b2 = { 0 };
	struct msg_parser *p1, *p2;
	size_t chunk, i, total = 0;

	if (size < 1)
		return 0;
	chunk = 1 + data[0] % 17;
	data++;
	size--;
	p1 = run((const char *)data, size, size ? size : 1, &b1);
	p2 = run((const char *)data, size, chunk, &b2);
	if (p1 == NULL || p2 == NULL)
		goto out;
	CHECK(msg_parser_error(p1) == msg_parser_error(p2));
	CHECK(msg_parser_count(p1) == msg_parser_count(p2));
	CHECK(msg_parser_count(p1) <= 64);
	for (i = 0; i < msg_parser_count(p1); i++) {
		const struct msg_field *f1 = msg_parser_field(p1, i);
		const struct msg_field *f2 = msg_parser_field(p2, i);

		CHECK(f1->raw_len == f2->raw_len);
		CHECK(memcmp(f1->raw, f2->raw, f1->raw_len) == 0);
		CHECK(f1->name_len == f2->name_len);
		total += f1->raw_len;
	}
	CHECK(b1.len == b2.len && (b1.len == 0 || memcmp(b1.data, b2.data, b1.len) == 0));
	if (msg_parser_error(p1) == MSG_OK || msg_parser_error(p1) == MSG_ERR_SYNTAX) {
		/* nothing lost: fields, the blank line, then the body */
		CHECK(total <= size);
		CHECK(total + b1.len <= size);
		CHECK(memcmp(data + size - b1.len, b1.data, b1.len) == 0 || b1.len == 0);
	}
out:
	msg_parser_free(p1);
	msg_parser_free(p2);
	buf_free(&b1);
	buf_free(&b2);
	return 0;
}
