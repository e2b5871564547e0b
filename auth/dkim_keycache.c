/*
 * A small process-wide cache of decoded DKIM public keys, keyed by the
 * key data (the decoded p= value) and type. With OpenSSL 3, decoding an
 * RSA key (the decoder machinery behind d2i_PUBKEY) costs more than the
 * verification itself, and a busy MX sees the same few hundred keys all
 * day; the DNS answer is still asked every time (its TTL, revocation),
 * only the decoding is saved. Entries hold a reference of their own;
 * callers get another.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "auth/dkim_int.h"

#define KEYCACHE_SIZE 128
#define KEYCACHE_MAX_DER 2048	/* an RSA-8192 SubjectPublicKeyInfo is ~1 KB */

struct keycache_entry {
	unsigned char *der;
	size_t len;
	int ed25519;
	unsigned long long used;	/* for least-recently-used eviction */
	EVP_PKEY *pkey;
};

static struct keycache_entry keycache[KEYCACHE_SIZE];
static unsigned long long keycache_clock;
static pthread_mutex_t keycache_lock = PTHREAD_MUTEX_INITIALIZER;

EVP_PKEY *
dkim_keycache_get(int ed25519, const unsigned char *der, size_t len)
{
	EVP_PKEY *pkey = NULL;
	size_t i;

	pthread_mutex_lock(&keycache_lock);
	for (i = 0; i < KEYCACHE_SIZE; i++) {
		struct keycache_entry *e = &keycache[i];

		if (e->pkey != NULL && e->ed25519 == ed25519 && e->len == len &&
		    memcmp(e->der, der, len) == 0) {
			if (EVP_PKEY_up_ref(e->pkey) == 1) {
				pkey = e->pkey;
				e->used = ++keycache_clock;
			}
			break;
		}
	}
	pthread_mutex_unlock(&keycache_lock);
	return pkey;
}

void
dkim_keycache_put(int ed25519, const unsigned char *der, size_t len,
    EVP_PKEY *pkey)
{
	struct keycache_entry *e = &keycache[0];
	unsigned char *copy;
	size_t i;

	if (len > KEYCACHE_MAX_DER || (copy = malloc(len)) == NULL)
		return;
	memcpy(copy, der, len);
	if (EVP_PKEY_up_ref(pkey) != 1) {
		free(copy);
		return;
	}
	pthread_mutex_lock(&keycache_lock);
	for (i = 0; i < KEYCACHE_SIZE; i++) {
		if (keycache[i].pkey == NULL) {
			e = &keycache[i];
			break;
		}
		if (keycache[i].used < e->used)
			e = &keycache[i];
	}
	EVP_PKEY_free(e->pkey);
	free(e->der);
	e->der = copy;
	e->len = len;
	e->ed25519 = ed25519;
	e->pkey = pkey;
	e->used = ++keycache_clock;
	pthread_mutex_unlock(&keycache_lock);
}

void
dkim_keycache_clear(void)
{
	size_t i;

	pthread_mutex_lock(&keycache_lock);
	for (i = 0; i < KEYCACHE_SIZE; i++) {
		EVP_PKEY_free(keycache[i].pkey);
		free(keycache[i].der);
		memset(&keycache[i], 0, sizeof(keycache[i]));
	}
	pthread_mutex_unlock(&keycache_lock);
}
