/*
 * CIDR lists: parse "addr[/bits]" with inet_pton, match by prefix.
 */
#include "lib/cidr.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int
cidr_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Clear the host bits past the prefix. */
static void
cidr_mask(unsigned char *a, int bits, int total)
{
	int i;

	for (i = bits; i < total; i++)
		a[i / 8] &= (unsigned char)~(0x80u >> (i % 8));
}

static int
cidr_prefix_eq(const unsigned char *a, const unsigned char *b, int bits)
{
	int full = bits / 8, rest = bits % 8;
	unsigned char m;

	if (memcmp(a, b, (size_t)full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	m = (unsigned char)(0xffu << (8 - rest));
	return (a[full] & m) == (b[full] & m);
}

int
cidr_parse(const char *s, struct cidr *r)
{
	char text[INET6_ADDRSTRLEN + 1];
	const char *end, *slash;
	size_t alen;
	int bits = -1, max;

	if (s == NULL)
		return -1;
	while (cidr_space(*s))
		s++;
	end = s + strlen(s);
	while (end > s && cidr_space(end[-1]))
		end--;
	slash = memchr(s, '/', (size_t)(end - s));
	alen = (size_t)((slash != NULL ? slash : end) - s);
	if (alen == 0 || alen >= sizeof(text))
		return -1;
	memcpy(text, s, alen);
	text[alen] = '\0';

	memset(r, 0, sizeof(*r));
	if (inet_pton(AF_INET, text, r->addr) == 1) {
		r->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, text, r->addr) == 1) {
		r->family = AF_INET6;
		max = 128;
	} else
		return -1;

	if (slash != NULL) {
		const char *p = slash + 1;

		/* 1 to 3 digits, nothing else */
		if (p == end || end - p > 3)
			return -1;
		for (bits = 0; p < end; p++) {
			if (*p < '0' || *p > '9')
				return -1;
			bits = bits * 10 + (*p - '0');
		}
		if (bits > max)
			return -1;
	} else
		bits = max;
	r->bits = bits;
	cidr_mask(r->addr, bits, max);
	return 0;
}

int
cidr_list_add(struct cidr_list *l, const char *s)
{
	struct cidr c, *v;

	if (cidr_parse(s, &c) == -1)
		return -1;
	if (l->n >= SIZE_MAX / sizeof(*v) - 1)
		return -1;
	if ((v = realloc(l->v, (l->n + 1) * sizeof(*v))) == NULL)
		return -1;
	l->v = v;
	l->v[l->n++] = c;
	return 0;
}

void
cidr_list_free(struct cidr_list *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static const unsigned char cidr_v4mapped[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

int
cidr_list_match(const struct cidr_list *l, const char *ip)
{
	struct cidr a;
	unsigned char v4[4], v6[16];
	int has4 = 0, has6 = 0;
	size_t i;

	if (l == NULL || ip == NULL || strchr(ip, '/') != NULL ||
	    cidr_parse(ip, &a) == -1)
		return 0;
	/* The client in both forms: ::ffff:192.0.2.1 is 192.0.2.1. */
	if (a.family == AF_INET) {
		memcpy(v4, a.addr, 4);
		memcpy(v6, cidr_v4mapped, 12);
		memcpy(v6 + 12, a.addr, 4);
		has4 = has6 = 1;
	} else {
		memcpy(v6, a.addr, 16);
		has6 = 1;
		if (memcmp(a.addr, cidr_v4mapped, 12) == 0) {
			memcpy(v4, a.addr + 12, 4);
			has4 = 1;
		}
	}
	for (i = 0; i < l->n; i++) {
		const struct cidr *c = &l->v[i];

		if (c->family == AF_INET && has4 &&
		    cidr_prefix_eq(c->addr, v4, c->bits))
			return 1;
		if (c->family == AF_INET6 && has6 &&
		    cidr_prefix_eq(c->addr, v6, c->bits))
			return 1;
	}
	return 0;
}
