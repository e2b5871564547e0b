/*
 * libFuzzer target for smtp/sasl.c. The first octet picks the decoder
 * (PLAIN, LOGIN, raw base64); the rest is the client's line. Checks what
 * the header promises: fields NUL-free, non-empty, at most SASL_FIELD_MAX
 * octets, nothing left in the buffers of a refused response, and that
 * decoding inverts encoding.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/sasl.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_field(const char *f)
{
	size_t n = strnlen(f, SASL_FIELD_MAX + 1);

	CHECK(n >= 1 && n <= SASL_FIELD_MAX);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char user[SASL_FIELD_MAX + 1], pass[SASL_FIELD_MAX + 1];
	char *line, *enc;
	unsigned char *dec;
	enum sasl_result r;
	long n;

	if (size < 1 || size > SASL_LINE_MAX)
		return 0;
	/* exact-size copies so that ASan sees any overread */
	if ((line = malloc(size - 1 ? size - 1 : 1)) == NULL)
		return 0;
	memcpy(line, data + 1, size - 1);
	memset(user, 'U', sizeof(user));
	memset(pass, 'P', sizeof(pass));
	switch (data[0] % 3) {
	case 0:
		r = sasl_plain_decode(line, size - 1, user, pass);
		if (r == SASL_OK) {
			check_field(user);
			check_field(pass);
		} else {
			CHECK(user[0] == '\0' && pass[0] == '\0');
		}
		break;
	case 1:
		r = sasl_login_decode(line, size - 1, user);
		if (r == SASL_OK)
			check_field(user);
		else
			CHECK(user[0] == '\0');
		break;
	default:
		dec = malloc(size);
		enc = malloc(size / 3 * 4 + 8);
		if (dec && enc) {
			n = sasl_b64_decode(line, size - 1, dec, size - 1);
			CHECK(n >= -2 && n <= (long)(size - 1));
			if (n >= 0) {
				/* canonical input re-encodes to itself when its
				 * padding bits are zero; always to a valid form */
				CHECK(sasl_b64_encode(dec, (size_t)n, enc,
				    size / 3 * 4 + 8) == 0);
				CHECK(sasl_b64_decode(enc, strlen(enc), dec,
				    size - 1) == n);
			}
			/* encoding the input decodes back to it */
			if (sasl_b64_encode((const unsigned char *)line, size - 1,
			    enc, size / 3 * 4 + 8) == 0) {
				CHECK(sasl_b64_decode(enc, strlen(enc), dec, size) ==
				    (long)(size - 1));
				CHECK(memcmp(dec, line, size - 1) == 0);
			}
		}
		free(dec);
		free(enc);
		break;
	}
	free(line);
	return 0;
}
