/*
 * libFuzzer target for smtp/address.c: the input is a From field value,
 * parsed with and without SMTPUTF8. Checks what the header promises of
 * an accepted address, and that SMTPUTF8 only ever accepts more.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "smtp/address.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct res {
	enum addr_from_status st;
	char local[512], domain[256];
	size_t naddr;
};

static void
run(const uint8_t *data, size_t size, int utf8, struct res *r)
{
	r->st = addr_from_parse((const char *)data, size, utf8, r->local,
	    sizeof(r->local), r->domain, sizeof(r->domain), &r->naddr);
	CHECK(r->st >= ADDR_FROM_OK && r->st <= ADDR_FROM_NODOMAIN);
	CHECK(strcmp(addr_from_status_name(r->st), "unknown") != 0);
	switch (r->st) {
	case ADDR_FROM_OK:
	case ADDR_FROM_NODOMAIN:
		CHECK(r->naddr == 1);
		break;
	case ADDR_FROM_EMPTY:
		CHECK(r->naddr == 0);
		break;
	case ADDR_FROM_MULTIPLE:
		CHECK(r->naddr >= 2);
		break;
	case ADDR_FROM_BAD:
		break;
	}
	if (r->st != ADDR_FROM_OK) {
		CHECK(r->local[0] == '\0' && r->domain[0] == '\0');
		return;
	}
	CHECK(memchr(data, '\0', size) == NULL);
	CHECK(strlen(r->local) < sizeof(r->local));
	CHECK(strchr(r->local, '\r') == NULL && strchr(r->local, '\n') == NULL);
	CHECK(r->domain[0] != '\0' && r->domain[0] != '.');
	CHECK(r->domain[strlen(r->domain) - 1] != '.');
	CHECK(strstr(r->domain, "..") == NULL);
	CHECK(strlen(r->domain) <= 253);
	for (const char *p = r->domain; *p; p++) {
		unsigned char c = (unsigned char)*p;

		CHECK(!(c >= 'A' && c <= 'Z'));
		CHECK(c > ' ' && c != 0x7f);
		CHECK(c >= 0x80 ? utf8 : (c == '.' || c == '-' || c == '_' ||
		    (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')));
	}
	if (!utf8)
		for (const char *p = r->local; *p; p++)
			CHECK((unsigned char)*p < 0x80);
}

/* A local part that needs no quoting (RFC 5322 dot-atom). */
static int
dot_atom(const char *s)
{
	const char *p;

	if (*s == '\0' || *s == '.' || s[strlen(s) - 1] == '.' ||
	    strstr(s, "..") != NULL)
		return 0;
	for (p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') ||
		    strchr(".!#$%&'*+-/=?^_`{|}~", *p) != NULL))
			return 0;
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct res a, b, c;
	char again[800];
	int n;

	run(data, size, 0, &a);
	run(data, size, 1, &b);
	/* SMTPUTF8 relaxes only: what is accepted without stays the same */
	if (a.st == ADDR_FROM_OK) {
		CHECK(b.st == ADDR_FROM_OK);
		CHECK(strcmp(a.local, b.local) == 0);
		CHECK(strcmp(a.domain, b.domain) == 0);
	}
	if (a.st != ADDR_FROM_BAD)
		CHECK(a.st == b.st && a.naddr == b.naddr);
	/* the same input, the same answer */
	run(data, size, 1, &c);
	CHECK(c.st == b.st && c.naddr == b.naddr);
	CHECK(strcmp(c.local, b.local) == 0 && strcmp(c.domain, b.domain) == 0);
	/* an accepted address written plainly reads back the same */
	if (b.st == ADDR_FROM_OK && dot_atom(b.local)) {
		n = snprintf(again, sizeof(again), "Name <%s@%s>", b.local,
		    b.domain);
		CHECK(n > 0 && (size_t)n < sizeof(again));
		run((const uint8_t *)again, (size_t)n, 1, &c);
		CHECK(c.st == ADDR_FROM_OK);
		CHECK(strcmp(c.local, b.local) == 0);
		CHECK(strcmp(c.domain, b.domain) == 0);
	}
	return 0;
}
