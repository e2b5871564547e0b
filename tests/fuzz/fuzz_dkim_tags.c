/*
 * libFuzzer target for auth/dkim_tags.c and the verify engine behind it.
 * The input is parsed as a tag-list (checking what the header promises),
 * then used as a DKIM-Signature value over a small message whose key
 * query is answered with the same input as the key record.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/dkim.h"
#include "auth/dkim_int.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data, *err = NULL, *name;
	struct dkim_verify_params vp = { 1600000000, 2 };
	struct dkim_taglist tl;
	struct dkim_verify *v;
	struct dns_answer a = { 0 };
	struct dns_rr rr = { 0 };
	struct buf m = { 0 };
	unsigned char *out;
	size_t i, olen;

	if (dkim_tags_parse(s, size, &tl, &err) == 0) {
		CHECK(tl.n > 0 && tl.n <= DKIM_MAX_TAGS);
		for (i = 0; i < tl.n; i++) {
			const struct dkim_tag *t = &tl.tag[i];

			CHECK(t->name >= s && t->name + t->name_len <= s + size);
			CHECK(t->value >= s + t->val_off);
			CHECK(t->value + t->value_len == s + t->end_off);
			CHECK(t->end_off <= size);
			CHECK(memchr(t->value, ';', t->value_len) == NULL);
			CHECK(dkim_tags_find(&tl, "") == NULL);
		}
	} else
		CHECK(err != NULL);
	if (dkim_b64_decode(s, size, &out, &olen) == 0) {
		CHECK(olen <= size);
		free(out);
	}

	if (memchr(s, '\n', size) != NULL || memchr(s, '\r', size) != NULL)
		return 0;
	buf_appends(&m, "DKIM-Signature: ");
	buf_append(&m, s, size);
	buf_appends(&m, "\r\nFrom: a@example.com\r\n\r\nbody\r\n");
	if ((v = dkim_verify_new(&vp)) == NULL)
		goto out;
	dkim_verify_feed(v, m.data, m.len);
	dkim_verify_end(v);
	rr.text = (char *)s;
	rr.len = size;
	a.status = DNS_OK;
	a.type = DNS_T_TXT;
	a.rr = &rr;
	a.n = 1;
	while ((name = dkim_verify_next_query(v)) != NULL) {
		a.name = name;
		dkim_verify_answer(v, name, &a);
	}
	CHECK(dkim_verify_done(v));
	for (i = 0; i < dkim_verify_count(v); i++)
		CHECK(dkim_verify_result(v, i)->reason != NULL);
	dkim_verify_free(v);
out:
	buf_free(&m);
	return 0;
}
