/* Tests for lib/buf.c: growth, formatting, consume, steal, free. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"

#ifdef __SANITIZE_ADDRESS__
/* Let a huge malloc fail with NULL, as it would without ASan, so the
 * allocation-failure path can be tested. */
const char *__asan_default_options(void);

const char *
__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}
#endif

/* Every buffer that holds data keeps a NUL just past len, inside cap. */
static void
assert_buf_sane(const struct buf *b)
{
	if (b->data == NULL) {
		assert_int_equal(b->len, 0);
		return;
	}
	assert_true(b->len < b->cap);
	assert_int_equal(b->data[b->len], '\0');
}

static void
test_zeroed_is_empty(void **state)
{
	struct buf b = { 0 };

	assert_null(b.data);
	buf_reset(&b);
	buf_consume(&b, 0);
	buf_consume(&b, 10);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	buf_free(&b);
	assert_null(b.data);
}

static void
test_append_grows(void **state)
{
	struct buf b = { 0 };
	char expect[10000];
	size_t i;

	for (i = 0; i < sizeof(expect); i++) {
		expect[i] = (char)('a' + i % 26);
		assert_int_equal(buf_appendc(&b, expect[i]), 0);
		assert_int_equal(b.len, i + 1);
		assert_buf_sane(&b);
	}
	assert_memory_equal(b.data, expect, sizeof(expect));
	buf_free(&b);

	/* one large append, then more on top */
	assert_int_equal(buf_append(&b, expect, sizeof(expect)), 0);
	assert_int_equal(buf_append(&b, expect, sizeof(expect)), 0);
	assert_int_equal(b.len, 2 * sizeof(expect));
	assert_memory_equal(b.data, expect, sizeof(expect));
	assert_memory_equal(b.data + sizeof(expect), expect, sizeof(expect));
	assert_buf_sane(&b);
	buf_free(&b);
}

static void
test_append_binary(void **state)
{
	struct buf b = { 0 };
	static const char bin[] = { 'a', '\0', 'b', '\0', '\xff' };

	assert_int_equal(buf_append(&b, bin, sizeof(bin)), 0);
	assert_int_equal(b.len, sizeof(bin));
	assert_memory_equal(b.data, bin, sizeof(bin));
	assert_buf_sane(&b);
	assert_int_equal(buf_appends(&b, "xyz"), 0);
	assert_int_equal(b.len, sizeof(bin) + 3);
	assert_memory_equal(b.data + sizeof(bin), "xyz", 4);
	buf_free(&b);
}

static void
test_append_empty(void **state)
{
	struct buf b = { 0 };

	/* Appending nothing still yields a readable empty C string. */
	assert_int_equal(buf_appends(&b, ""), 0);
	assert_non_null(b.data);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	assert_int_equal(buf_append(&b, NULL, 0), 0);
	assert_int_equal(b.len, 0);
	assert_buf_sane(&b);
	buf_free(&b);
}

static void
test_reserve(void **state)
{
	struct buf b = { 0 };
	char *before;

	assert_int_equal(buf_reserve(&b, 100), 0);
	assert_true(b.cap >= 101);
	assert_int_equal(b.len, 0);
	assert_int_equal(buf_appends(&b, "hello"), 0);
	before = b.data;
	/* room is there: no reallocation */
	assert_int_equal(buf_reserve(&b, 50), 0);
	assert_ptr_equal(b.data, before);
	assert_string_equal(b.data, "hello");
	buf_free(&b);
}

static void
test_reserve_overflow(void **state)
{
	struct buf b = { 0 };
	struct buf saved;

	assert_int_equal(buf_appends(&b, "keep"), 0);
	saved = b;
	assert_int_equal(buf_reserve(&b, SIZE_MAX), -1);
	assert_int_equal(buf_reserve(&b, SIZE_MAX - 4), -1);
	/* no arithmetic overflow, but no memory either */
	assert_int_equal(buf_reserve(&b, SIZE_MAX - 5), -1);
	assert_int_equal(buf_reserve(&b, SIZE_MAX / 2), -1);
	assert_int_equal(buf_append(&b, "x", SIZE_MAX), -1);
	/* the buffer is unchanged after a failure */
	assert_ptr_equal(b.data, saved.data);
	assert_int_equal(b.len, saved.len);
	assert_int_equal(b.cap, saved.cap);
	assert_string_equal(b.data, "keep");
	buf_free(&b);
}

static void
test_appendf(void **state)
{
	struct buf b = { 0 };
	char big[300];

	assert_int_equal(buf_appendf(&b, "%s=%d", "size", 10), 0);
	assert_string_equal(b.data, "size=10");
	assert_int_equal(b.len, 7);
	assert_int_equal(buf_appendf(&b, " %c%05u", 'x', 42u), 0);
	assert_string_equal(b.data, "size=10 x00042");
	assert_int_equal(b.len, 14);
	assert_buf_sane(&b);

	/* longer than the first allocation */
	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(buf_appendf(&b, "[%s]", big), 0);
	assert_int_equal(b.len, 14 + 2 + sizeof(big) - 1);
	assert_int_equal(b.data[14], '[');
	assert_int_equal(b.data[b.len - 1], ']');
	assert_buf_sane(&b);
	buf_free(&b);

	/* an empty format still allocates a C string */
	assert_int_equal(buf_appendf(&b, "%s", ""), 0);
	assert_non_null(b.data);
	assert_string_equal(b.data, "");
	buf_free(&b);
}

static void
test_consume(void **state)
{
	static const struct {
		const char *in;
		size_t n;
		const char *out;
	} cases[] = {
		{ "abcdef", 0, "abcdef" },
		{ "abcdef", 1, "bcdef" },
		{ "abcdef", 5, "f" },
		{ "abcdef", 6, "" },
		{ "abcdef", 7, "" },
		{ "abcdef", SIZE_MAX, "" },
		{ "", 0, "" },
		{ "", 3, "" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b = { 0 };

		assert_int_equal(buf_appends(&b, cases[i].in), 0);
		buf_consume(&b, cases[i].n);
		assert_int_equal(b.len, strlen(cases[i].out));
		assert_string_equal(b.data, cases[i].out);
		assert_buf_sane(&b);
		buf_free(&b);
	}
}

static void
test_consume_then_append(void **state)
{
	struct buf b = { 0 };
	int i;

	/* the pattern of a line reader: append, take a line, repeat */
	for (i = 0; i < 1000; i++) {
		assert_int_equal(buf_appends(&b, "line\r\n"), 0);
		buf_consume(&b, 4);
		assert_string_equal(b.data, "\r\n");
		buf_consume(&b, 2);
		assert_int_equal(b.len, 0);
	}
	assert_buf_sane(&b);
	buf_free(&b);
}

static void
test_reset(void **state)
{
	struct buf b = { 0 };

	assert_int_equal(buf_appends(&b, "text"), 0);
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_non_null(b.data);
	assert_string_equal(b.data, "");
	assert_int_equal(buf_appends(&b, "new"), 0);
	assert_string_equal(b.data, "new");
	buf_free(&b);
}

static void
test_steal(void **state)
{
	struct buf b = { 0 };
	char *p;

	assert_int_equal(buf_appends(&b, "mine now"), 0);
	p = buf_steal(&b);
	assert_string_equal(p, "mine now");
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	/* the buffer is reusable and independent of the stolen memory */
	assert_int_equal(buf_appends(&b, "other"), 0);
	assert_string_equal(p, "mine now");
	assert_string_equal(b.data, "other");
	free(p);
	buf_free(&b);
}

static void
test_steal_empty(void **state)
{
	struct buf b = { 0 };
	char *p;

	/* an empty buffer still hands over a C string the caller frees */
	p = buf_steal(&b);
	assert_non_null(p);
	assert_string_equal(p, "");
	assert_null(b.data);
	free(p);
}

static void
test_free_clears(void **state)
{
	struct buf b = { 0 };

	assert_int_equal(buf_appends(&b, "abc"), 0);
	buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	/* a second free is harmless */
	buf_free(&b);
	assert_null(b.data);
	/* and the buffer can be used again */
	assert_int_equal(buf_appends(&b, "again"), 0);
	assert_string_equal(b.data, "again");
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zeroed_is_empty),
		cmocka_unit_test(test_append_grows),
		cmocka_unit_test(test_append_binary),
		cmocka_unit_test(test_append_empty),
		cmocka_unit_test(test_reserve),
		cmocka_unit_test(test_reserve_overflow),
		cmocka_unit_test(test_appendf),
		cmocka_unit_test(test_consume),
		cmocka_unit_test(test_consume_then_append),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_steal),
		cmocka_unit_test(test_steal_empty),
		cmocka_unit_test(test_free_clears),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
