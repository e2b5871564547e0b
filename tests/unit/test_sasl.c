/* Tests for smtp/sasl.c: base64, PLAIN (RFC 4616) and LOGIN decoding. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "smtp/sasl.h"

/* Base64 of n octets, for building inputs. */
static const char *
b64(const void *p, size_t n)
{
	static char out[4][16384];
	static int slot;
	char *o = out[slot++ % 4];

	assert_int_equal(sasl_b64_encode(p, n, o, sizeof(out[0])), 0);
	return o;
}

static void
test_b64_roundtrip(void **state)
{
	unsigned char in[300], out[300];
	char enc[512];
	size_t n;
	long r;

	for (n = 0; n < sizeof(in); n++)
		in[n] = (unsigned char)(n * 37 + 11);
	for (n = 0; n <= sizeof(in); n++) {
		assert_int_equal(sasl_b64_encode(in, n, enc, sizeof(enc)), 0);
		r = sasl_b64_decode(enc, strlen(enc), out, sizeof(out));
		assert_int_equal(r, (long)n);
		assert_memory_equal(in, out, n);
	}
}

static void
test_b64_vectors(void **state)
{
	/* RFC 4648 10 */
	static const struct { const char *enc, *dec; } v[] = {
		{ "", "" }, { "Zg==", "f" }, { "Zm8=", "fo" }, { "Zm9v", "foo" },
		{ "Zm9vYg==", "foob" }, { "Zm9vYmE=", "fooba" },
		{ "Zm9vYmFy", "foobar" },
	};
	unsigned char out[16];
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		long r = sasl_b64_decode(v[i].enc, strlen(v[i].enc), out, sizeof(out));

		assert_int_equal(r, (long)strlen(v[i].dec));
		assert_memory_equal(out, v[i].dec, (size_t)r);
	}
}

static void
test_b64_bad(void **state)
{
	static const char *const bad[] = {
		"Zg", "Zg=", "Z===", "====", "Zm9", "Zm 9v", "Zm9v\r\n",
		"Zg==Zg==", "Zm=v", "Zm9v!", "Zm9v=", "\x80xyz", "Zm\0v",
	};
	unsigned char out[16];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = i == 12 ? 4 : strlen(bad[i]);

		if (sasl_b64_decode(bad[i], n, out, sizeof(out)) != -1)
			fail_msg("accepted bad base64 #%zu '%s'", i, bad[i]);
	}
	/* valid, but does not fit */
	assert_int_equal(sasl_b64_decode("Zm9vYmFy", 8, out, 5), -2);
}

static void
test_plain_ok(void **state)
{
	char user[SASL_FIELD_MAX + 1], pass[SASL_FIELD_MAX + 1];
	const char *ir;

	/* RFC 4616 4 example: no authzid */
	ir = b64("\0tim\0tanstaaftanstaaf", 21);
	assert_int_equal(sasl_plain_decode(ir, strlen(ir), user, pass), SASL_OK);
	assert_string_equal(user, "tim");
	assert_string_equal(pass, "tanstaaftanstaaf");
	/* authzid equal to the user */
	ir = b64("tim\0tim\0pw", 10);
	assert_int_equal(sasl_plain_decode(ir, strlen(ir), user, pass), SASL_OK);
	assert_string_equal(user, "tim");
	assert_string_equal(pass, "pw");
	/* UTF-8 and spaces are allowed in passwords */
	ir = b64("\0al@x.test\0p\xc3\xa4ss word",
	    sizeof("\0al@x.test\0p\xc3\xa4ss word") - 1);
	assert_int_equal(sasl_plain_decode(ir, strlen(ir), user, pass), SASL_OK);
	assert_string_equal(user, "al@x.test");
	assert_string_equal(pass, "p\xc3\xa4ss word");
}

static void
test_plain_refused(void **state)
{
	static const struct {
		const char *msg;
		size_t len;
		enum sasl_result want;
	} v[] = {
		{ "Ursel\0Kurt\0xipj3plmq", 20, SASL_AUTHZID },	/* RFC 4616 4 */
		{ "tim\0tom\0pw", 10, SASL_AUTHZID },
		{ "timx\0tim\0pw", 11, SASL_AUTHZID },
		{ "\0tim", 4, SASL_BAD_SYNTAX },		/* one NUL */
		{ "timpw", 5, SASL_BAD_SYNTAX },		/* none */
		{ "\0\0pw", 4, SASL_BAD_SYNTAX },		/* empty user */
		{ "\0tim\0", 5, SASL_BAD_SYNTAX },		/* empty password */
		{ "\0tim\0p\0w", 8, SASL_NUL },			/* NUL in password */
		{ "", 0, SASL_BAD_SYNTAX },
	};
	char user[SASL_FIELD_MAX + 1], pass[SASL_FIELD_MAX + 1];
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		const char *ir = b64(v[i].msg, v[i].len);
		enum sasl_result r = sasl_plain_decode(ir, strlen(ir), user, pass);

		if (r != v[i].want)
			fail_msg("case %zu: got %s, want %s", i, sasl_result_str(r),
			    sasl_result_str(v[i].want));
		/* nothing of a refused exchange is left behind */
		assert_string_equal(user, "");
		assert_string_equal(pass, "");
	}
	assert_int_equal(sasl_plain_decode("=", 1, user, pass), SASL_BAD_SYNTAX);
	assert_int_equal(sasl_plain_decode("AHRpbQB", 7, user, pass),
	    SASL_BAD_BASE64);
	assert_int_equal(sasl_plain_decode("AHRpbQBw dw==", 13, user, pass),
	    SASL_BAD_BASE64);
}

static void
test_plain_lengths(void **state)
{
	char msg[2 + 2 * 300], user[SASL_FIELD_MAX + 1], pass[SASL_FIELD_MAX + 1];
	const char *ir;
	size_t n;

	/* 255 octets each: accepted; 256: refused */
	for (n = 254; n <= 256; n++) {
		msg[0] = '\0';
		memset(msg + 1, 'u', n);
		msg[1 + n] = '\0';
		memset(msg + 2 + n, 'p', n);
		ir = b64(msg, 2 + 2 * n);
		assert_int_equal(sasl_plain_decode(ir, strlen(ir), user, pass),
		    n <= SASL_FIELD_MAX ? SASL_OK : SASL_TOO_LONG);
		if (n <= SASL_FIELD_MAX) {
			assert_int_equal(strlen(user), n);
			assert_int_equal(strlen(pass), n);
		}
	}
	/* a huge response (valid base64) never overflows anything */
	{
		static char big[9000];

		memset(big, 'A', sizeof(big));
		assert_int_equal(sasl_plain_decode(big, sizeof(big), user, pass),
		    SASL_TOO_LONG);
	}
}

static void
test_login(void **state)
{
	char out[SASL_FIELD_MAX + 1], msg[300];
	const char *ir;

	assert_int_equal(sasl_login_decode("dGlt", 4, out), SASL_OK);
	assert_string_equal(out, "tim");
	assert_int_equal(sasl_login_decode("", 0, out), SASL_BAD_SYNTAX);
	assert_int_equal(sasl_login_decode("dGlt=", 5, out), SASL_BAD_BASE64);
	assert_int_equal(sasl_login_decode("dG-t", 4, out), SASL_BAD_BASE64);
	ir = b64("ti\0m", 4);
	assert_int_equal(sasl_login_decode(ir, strlen(ir), out), SASL_NUL);
	memset(msg, 'x', sizeof(msg));
	ir = b64(msg, 255);
	assert_int_equal(sasl_login_decode(ir, strlen(ir), out), SASL_OK);
	assert_int_equal(strlen(out), 255);
	ir = b64(msg, 256);
	assert_int_equal(sasl_login_decode(ir, strlen(ir), out), SASL_TOO_LONG);
	/* the prompts are the base64 the clients expect */
	assert_string_equal(b64("Username:", 9), "VXNlcm5hbWU6");
	assert_string_equal(b64("Password:", 9), "UGFzc3dvcmQ6");
}

static void
test_cancel(void **state)
{
	assert_true(sasl_is_cancel("*", 1));
	assert_false(sasl_is_cancel("**", 2));
	assert_false(sasl_is_cancel("", 0));
	assert_false(sasl_is_cancel("* ", 2));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64_roundtrip),
		cmocka_unit_test(test_b64_vectors),
		cmocka_unit_test(test_b64_bad),
		cmocka_unit_test(test_plain_ok),
		cmocka_unit_test(test_plain_refused),
		cmocka_unit_test(test_plain_lengths),
		cmocka_unit_test(test_login),
		cmocka_unit_test(test_cancel),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
