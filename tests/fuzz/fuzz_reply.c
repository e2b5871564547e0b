/*
 * libFuzzer target for smtp/reply.c. The input is what a server sends: it
 * is cut into lines at LF, a CR before the LF dropped (smtp/client does the
 * same), and each line is fed to the parser; the last piece is fed too,
 * with or without its LF. When the first octet is odd, every line is fed
 * 300 times, so that small inputs reach SMTP_REPLY_LINES_MAX. Checks what
 * the header promises after every line.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "smtp/reply.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* NUL-terminated inside its array, nothing for a terminal to act on. */
static void
check_clean(const char *s, size_t size)
{
	size_t n = strnlen(s, size);

	CHECK(n < size);
	for (; *s != '\0'; s++)
		CHECK((unsigned char)*s >= 0x20 && *s != 0x7f);
}

static void
check(const struct smtp_reply *r, int rv, const char *line, size_t len)
{
	check_clean(r->text, sizeof(r->text));
	check_clean(r->line, sizeof(r->line));
	check_clean(r->err, sizeof(r->err));
	CHECK(r->nlines <= SMTP_REPLY_LINES_MAX);
	switch (rv) {
	case SMTP_REPLY_ERROR:
		CHECK(r->err[0] != '\0');
		CHECK(!r->open);
		return;
	case SMTP_REPLY_MORE:
		CHECK(r->open);
		CHECK(len >= 4 && line[3] == '-');
		break;
	case SMTP_REPLY_DONE:
		CHECK(!r->open);
		CHECK(len == 3 || line[3] == ' ');
		break;
	default:
		CHECK(0);
	}
	CHECK(r->err[0] == '\0');
	CHECK(len <= SMTP_REPLY_LINE_MAX);
	CHECK(r->nlines >= 1);
	/* RFC 5321 4.2: every line carries the reply's code, 2yz to 5yz */
	CHECK(r->code >= 200 && r->code <= 599);
	CHECK(memcmp(line, r->text, 3) == 0);
	CHECK(r->text[3] == '\0' || r->text[3] == ' ');
	/* the line's text, made safe */
	CHECK(strlen(r->line) == (len > 3 ? len - 4 : 0));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size, *nl;
	struct smtp_reply r;
	size_t len, i, reps;
	int rv;

	if (size == 0)
		return 0;
	reps = (data[0] & 1) ? 300 : 1;
	smtp_reply_init(&r);
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		len = (nl != NULL ? nl : end) - p;
		if (nl != NULL && len > 0 && p[len - 1] == '\r')
			len--;
		for (i = 0; i < reps; i++) {
			rv = smtp_reply_feed(&r, p, len);
			check(&r, rv, p, len);
			if (rv == SMTP_REPLY_ERROR)
				break;
		}
		p = nl != NULL ? nl + 1 : end;
	}
	return 0;
}
