/*
 * dns_cache: a hash table of answers chained per bucket, with a list in
 * use order for LRU eviction.
 */
#include "lib/dns_cache.h"

#include <sys/queue.h>
#include <sys/random.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DNS_CACHE_BUCKETS_MAX	(1U << 16)

struct dns_cache_entry {
	struct dns_cache_entry *hnext;
	TAILQ_ENTRY(dns_cache_entry) lru;	/* head: most recently used */
	uint32_t hash;
	enum dns_type type;
	uint64_t expires_ms;
	size_t bytes;				/* accounted size */
	struct dns_answer *a;			/* a->name is the key */
};

TAILQ_HEAD(dns_cache_lru, dns_cache_entry);

struct dns_cache {
	struct dns_cache_entry **buckets;
	size_t nbuckets;			/* a power of two */
	size_t count;
	size_t max;
	size_t bytes;				/* sum of entry sizes */
	uint32_t seed;				/* hash seed: no chosen collisions */
	struct dns_cache_lru lru;
};

/* Entry sizes count toward DNS_CACHE_BYTES so the cache is bounded in
 * memory, not only in entries; one answer never takes more than
 * DNS_CACHE_ENTRY_BYTES (larger ones are not cached). */
#define DNS_CACHE_BYTES		(32U * 1024 * 1024)
#define DNS_CACHE_ENTRY_BYTES	(64U * 1024)

static size_t
dns_cache_size(const struct dns_answer *a)
{
	size_t i, n = sizeof(*a) + a->n * sizeof(*a->rr) + 64;

	for (i = 0; i < a->n; i++)
		n += a->rr[i].len + 1;
	return n;
}

/* FNV-1a over the key and the type, from a random seed. */
static uint32_t
dns_cache_hash(const struct dns_cache *c, const char *key, enum dns_type type)
{
	uint32_t h = 2166136261U ^ c->seed;

	for (; *key != '\0'; key++)
		h = (h ^ (unsigned char)*key) * 16777619U;
	h = (h ^ (uint32_t)type) * 16777619U;
	return h;
}

struct dns_cache *
dns_cache_new(size_t max)
{
	struct dns_cache *c;
	size_t n = 1;

	while (n < max && n < DNS_CACHE_BUCKETS_MAX)
		n <<= 1;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if ((c->buckets = calloc(n, sizeof(*c->buckets))) == NULL) {
		free(c);
		return NULL;
	}
	c->nbuckets = n;
	c->max = max;
	if (getrandom(&c->seed, sizeof(c->seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(c->seed))
		c->seed = (uint32_t)(uintptr_t)c;
	TAILQ_INIT(&c->lru);
	return c;
}

static struct dns_cache_entry **
dns_cache_slot(struct dns_cache *c, const char *key, enum dns_type type,
    uint32_t hash)
{
	struct dns_cache_entry **pp;

	for (pp = &c->buckets[hash & (c->nbuckets - 1)]; *pp != NULL;
	    pp = &(*pp)->hnext) {
		if ((*pp)->hash == hash && (*pp)->type == type &&
		    strcmp((*pp)->a->name, key) == 0)
			break;
	}
	return pp;
}

static void
dns_cache_remove(struct dns_cache *c, struct dns_cache_entry **pp)
{
	struct dns_cache_entry *e = *pp;

	*pp = e->hnext;
	TAILQ_REMOVE(&c->lru, e, lru);
	c->bytes -= e->bytes;
	dns_answer_free(e->a);
	free(e);
	c->count--;
}

void
dns_cache_free(struct dns_cache *c)
{
	struct dns_cache_entry *e;

	if (c == NULL)
		return;
	while ((e = TAILQ_FIRST(&c->lru)) != NULL) {
		TAILQ_REMOVE(&c->lru, e, lru);
		dns_answer_free(e->a);
		free(e);
	}
	free(c->buckets);
	free(c);
}

struct dns_answer *
dns_cache_get(struct dns_cache *c, const char *key, enum dns_type type,
    const char *name, uint64_t now_ms)
{
	struct dns_cache_entry **pp, *e;
	struct dns_answer *a;
	uint64_t left;

	pp = dns_cache_slot(c, key, type, dns_cache_hash(c, key, type));
	if ((e = *pp) == NULL)
		return NULL;
	if (now_ms >= e->expires_ms) {
		dns_cache_remove(c, pp);
		return NULL;
	}
	if ((a = dns_answer_copy(e->a, name)) == NULL)
		return NULL;
	/* RFC 1035 3.2.1: a cached record's TTL counts down */
	left = (e->expires_ms - now_ms + 999) / 1000;
	a->ttl = left > a->ttl ? a->ttl : (uint32_t)left;
	TAILQ_REMOVE(&c->lru, e, lru);
	TAILQ_INSERT_HEAD(&c->lru, e, lru);
	return a;
}

int
dns_cache_put(struct dns_cache *c, const char *key,
    const struct dns_answer *a, uint32_t ttl, uint64_t now_ms)
{
	struct dns_cache_entry **pp, *e;
	uint32_t hash = dns_cache_hash(c, key, a->type);
	size_t b;

	size_t size = dns_cache_size(a);

	if (ttl == 0 || c->max == 0)
		return 0;
	pp = dns_cache_slot(c, key, a->type, hash);
	if (*pp != NULL)
		dns_cache_remove(c, pp);
	if (size > DNS_CACHE_ENTRY_BYTES)
		return 0;
	while (c->count > 0 && (c->count >= c->max ||
	    c->bytes + size > DNS_CACHE_BYTES)) {
		e = TAILQ_LAST(&c->lru, dns_cache_lru);
		b = e->hash & (c->nbuckets - 1);
		for (pp = &c->buckets[b]; *pp != e; pp = &(*pp)->hnext)
			;
		dns_cache_remove(c, pp);
	}
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return -1;
	if ((e->a = dns_answer_copy(a, key)) == NULL) {
		free(e);
		return -1;
	}
	e->a->ttl = ttl;
	e->bytes = size;
	c->bytes += size;
	e->hash = hash;
	e->type = a->type;
	e->expires_ms = now_ms + (uint64_t)ttl * 1000;
	b = hash & (c->nbuckets - 1);
	e->hnext = c->buckets[b];
	c->buckets[b] = e;
	TAILQ_INSERT_HEAD(&c->lru, e, lru);
	c->count++;
	return 0;
}

size_t
dns_cache_count(const struct dns_cache *c)
{
	return c->count;
}
