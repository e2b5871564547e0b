/*
 * lib/cidr: lists of IPv4/IPv6 networks ("192.0.2.0/24", "2001:db8::/32",
 * a bare address = a host) and matching a client address against them.
 * IPv4-mapped IPv6 addresses (::ffff:192.0.2.1) match IPv4 entries.
 */
#ifndef LIB_CIDR_H
#define LIB_CIDR_H

#include <stddef.h>

struct cidr {
	int family;		/* AF_INET or AF_INET6 */
	unsigned char addr[16];	/* network, host bits cleared */
	int bits;
};

struct cidr_list {
	struct cidr *v;
	size_t n;
};

/* One entry; 0, or -1 when s is not an address or CIDR (bits out of
 * range, junk). Host bits set in the address are cleared, not an error. */
int cidr_parse(const char *s, struct cidr *r);
/* Append one parsed entry; 0 or -1 (bad text or no memory). */
int cidr_list_add(struct cidr_list *l, const char *s);
void cidr_list_free(struct cidr_list *l);
/* 1 if the text address ip is inside any entry, else 0 (also for junk). */
int cidr_list_match(const struct cidr_list *l, const char *ip);

#endif
