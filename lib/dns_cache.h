/*
 * dns_cache: the resolver's bounded answer cache, private to lib/dns.c.
 *
 * Keyed by (key, type), where key is the name lowercased without its
 * trailing dot. An entry lives for the TTL given to dns_cache_put (the
 * caller caps it); past max entries the least recently used one goes.
 * The cache keeps its own copies: dns_cache_get returns a new answer the
 * caller frees with dns_answer_free(). Time is monotonic milliseconds.
 */
#ifndef LIB_DNS_CACHE_H
#define LIB_DNS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/dns.h"

struct dns_cache;

/* max 0 is allowed (nothing is ever stored). NULL on allocation failure. */
struct dns_cache *dns_cache_new(size_t max);
void dns_cache_free(struct dns_cache *c);

/* A copy of the entry with name set to `name` and ttl to the seconds
 * left (at least 1), or NULL when absent or expired. */
struct dns_answer *dns_cache_get(struct dns_cache *c, const char *key,
    enum dns_type type, const char *name, uint64_t now_ms);

/* Stores a copy of a for ttl seconds, replacing an entry of the same key;
 * ttl 0 stores nothing. 0, or -1 on allocation failure. */
int dns_cache_put(struct dns_cache *c, const char *key,
    const struct dns_answer *a, uint32_t ttl, uint64_t now_ms);

size_t dns_cache_count(const struct dns_cache *c);

/* Deep copy of a in one allocation, named `name` (a->name when NULL);
 * defined in lib/dns.c. */
struct dns_answer *dns_answer_copy(const struct dns_answer *a,
    const char *name);

#endif
