/*
 * libFuzzer target for policy/received.c (and lib/cidr.c). The first
 * octet picks a trusted set; the rest is split on "\n\n" into Received
 * field values (top first). Each value goes through received_parse_from,
 * the list through received_recover, whose answer must be the one the
 * walk described in received.h gives.
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lib/cidr.h"
#include "policy/received.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)
#define MAXF	16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_from(const struct received_from *r, int rc)
{
	unsigned char a[16];
	size_t i, n;

	if (rc == -1) {
		CHECK(r->ip[0] == '\0' && r->helo[0] == '\0');
		return;
	}
	CHECK(rc == 0);
	if (strchr(r->ip, ':') != NULL) {
		CHECK(inet_pton(AF_INET6, r->ip, a) == 1);
		/* mapped addresses come back as IPv4 */
		CHECK(!(memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0));
	} else
		CHECK(inet_pton(AF_INET, r->ip, a) == 1);
	n = strlen(r->helo);
	CHECK(n < sizeof(r->helo));
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)r->helo[i];

		CHECK(c > ' ' && c != 0x7f && c != '(' && c != ')' && c != ';');
	}
}

static const char *const sets[4][4] = {
	{ NULL },
	{ "10.0.0.0/8", "192.0.2.0/24", NULL },
	{ "2001:db8::/32", "::ffff:198.51.100.0/120", "127.0.0.1", NULL },
	{ "0.0.0.0/0", "::/0", NULL },
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *v[MAXF];
	size_t lens[MAXF], n = 0, i, start;
	struct cidr_list l = { 0 };
	struct received_from r, each[MAXF];
	const char *why = NULL;
	int rc, rcs[MAXF], set;

	if (size < 1)
		return 0;
	set = data[0] & 3;
	for (i = 0; sets[set][i] != NULL; i++)
		CHECK(cidr_list_add(&l, sets[set][i]) == 0);
	data++;
	size--;
	for (start = 0, i = 0; n < MAXF; i++) {
		if (i == size || (i + 1 < size && data[i] == '\n' &&
		    data[i + 1] == '\n')) {
			v[n] = (const char *)data + start;
			lens[n++] = i - start;
			if (i == size)
				break;
			start = i + 2;
			i++;
		}
	}
	for (i = 0; i < n; i++) {
		memset(&each[i], 0x55, sizeof(each[i]));
		rcs[i] = received_parse_from(v[i], lens[i], &each[i]);
		check_from(&each[i], rcs[i]);
		/* the client's address is a valid CIDR host */
		if (rcs[i] == 0) {
			struct cidr c;

			CHECK(cidr_parse(each[i].ip, &c) == 0);
			CHECK(c.bits == (c.family == AF_INET ? 32 : 128));
		}
	}

	memset(&r, 0x55, sizeof(r));
	rc = received_recover(v, lens, n, &l, &r, &why);
	check_from(&r, rc);
	/* the walk of received.h, done again by hand */
	for (i = 0; i < n; i++) {
		if (rcs[i] == -1) {
			CHECK(rc == -1 && why != NULL);
			CHECK(strncmp(why, "unparseable", 11) == 0);
			break;
		}
		if (!cidr_list_match(&l, each[i].ip)) {
			CHECK(rc == 0);
			CHECK(strcmp(r.ip, each[i].ip) == 0);
			CHECK(strcmp(r.helo, each[i].helo) == 0);
			break;
		}
	}
	if (i == n) {
		CHECK(rc == -1 && why != NULL);
		CHECK(strcmp(why, n == 0 ? "no Received field from a trusted relay" :
		    "every hop is a trusted relay") == 0);
	}
	if (set == 3)
		CHECK(rc == -1);
	cidr_list_free(&l);

	/* cidr_parse on raw text: never a crash, bits in range */
	if (size < 200) {
		char text[200];
		struct cidr c;

		memcpy(text, data, size);
		text[size] = '\0';
		if (cidr_parse(text, &c) == 0)
			CHECK(c.bits >= 0 && c.bits <= (c.family == AF_INET ? 32 : 128));
	}
	return 0;
}
