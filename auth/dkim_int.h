/*
 * auth/dkim_int.h: what the DKIM files share (private to auth/ and the
 * unit tests).
 *
 * dkim_tags.c parses tag-lists (RFC 6376 3.2); dkim_canon.c does the
 * canonicalizations (RFC 6376 3.4) and the header hash (3.7, 5.4.2);
 * dkim_key.c loads keys; dkim.c verifies, dkim_sign.c signs. No I/O
 * except key files.
 */
#ifndef AUTH_DKIM_INT_H
#define AUTH_DKIM_INT_H

#include <stddef.h>

#include <openssl/evp.h>

#include "auth/dkim.h"
#include "lib/buf.h"
#include "smtp/message.h"

#define DKIM_MAX_TAGS		64
#define DKIM_HASH_LEN		32	/* SHA-256 */
#define DKIM_HDR_MAX_BYTES	(1024 * 1024)
#define DKIM_HDR_MAX_FIELDS	10000
#define DKIM_MIN_RSA_BITS	1024	/* RFC 8301 3.2 */

struct dkim_tag {
	const char *name;	/* into the parsed text */
	size_t name_len;
	const char *value;	/* without surrounding FWS; may hold FWS */
	size_t value_len;
	size_t val_off;		/* offset just after '=' */
	size_t end_off;		/* offset just after the value's last octet */
};

struct dkim_taglist {
	struct dkim_tag tag[DKIM_MAX_TAGS];
	size_t n;
};

/*
 * RFC 6376 3.2 tag-list: 0, or -1 with *err_r a static reason (syntax,
 * duplicate tag, too many tags). Tags point into s, which must outlive tl.
 */
int dkim_tags_parse(const char *s, size_t len, struct dkim_taglist *tl,
    const char **err_r);
/* The tag named name (case-sensitive, RFC 6376 3.2), or NULL. */
const struct dkim_tag *dkim_tags_find(const struct dkim_taglist *tl,
    const char *name);
/* The value as a NUL-terminated string with FWS (CR LF SP HT) removed;
 * malloc'd, NULL on allocation failure. */
char *dkim_tag_strip(const struct dkim_tag *t);
/* 1 if the value equals s exactly (after stripping nothing). */
int dkim_tag_is(const struct dkim_tag *t, const char *s);

/* Base64 (RFC 2045 alphabet, '=' padding) ignoring FWS. 0 or -1. */
int dkim_b64_decode(const char *s, size_t n, unsigned char **out_r,
    size_t *len_r);
int dkim_b64_encode(const unsigned char *p, size_t n, struct buf *out);

/* RFC 6376 3.4.1 / 3.4.2: one header field (raw without its final CRLF)
 * canonicalized, then CRLF when crlf. */
int dkim_canon_header(struct buf *out, const char *raw, size_t len,
    int relaxed, int crlf);

/* RFC 6376 3.4.3 / 3.4.4 / 3.5 l=: the body, streamed into SHA-256. */
struct dkim_body;
struct dkim_body *dkim_body_new(int relaxed, long long limit);
int dkim_body_update(struct dkim_body *b, const char *p, size_t n);
/* Ends the body: the hash of the first `limit` canonical octets (all when
 * limit < 0), and the whole canonical length in *total_r. 0 or -1. */
int dkim_body_final(struct dkim_body *b, unsigned char out[DKIM_HASH_LEN],
    unsigned long long *total_r);
void dkim_body_free(struct dkim_body *b);

/*
 * RFC 6376 5.4.2 / 3.7: SHA-256 of the fields named in names[] picked
 * bottom-up (a name without an unused instance left adds nothing), then
 * sigraw (the DKIM-Signature field with b= emptied, no final CRLF).
 */
int dkim_header_hash(const struct msg_field *const *fields, size_t nfields,
    char *const *names, size_t nnames, int relaxed, const char *sigraw,
    size_t siglen, unsigned char out[DKIM_HASH_LEN]);

/* Domain name syntax (RFC 6376 3.5 d=, s=: sub-domain labels). */
int dkim_domain_ok(const char *s, size_t n);

/* Keys (dkim_key.c). */
EVP_PKEY *dkim_key_pkey(const struct dkim_key *k);
/* Wraps pkey (taken over) without the size check: for tests. */
struct dkim_key *dkim_key_from_pkey(EVP_PKEY *pkey);
/* RSA-SHA256 PKCS#1 v1.5 / Ed25519 over the digest (RFC 8463 3). */
int dkim_pkey_sign(EVP_PKEY *pkey, const unsigned char dig[DKIM_HASH_LEN],
    unsigned char **sig_r, size_t *siglen_r);
int dkim_pkey_verify(EVP_PKEY *pkey, const unsigned char dig[DKIM_HASH_LEN],
    const unsigned char *sig, size_t siglen);

/* dkim_keycache.c: decoded public keys by key data; get returns a new
 * reference or NULL, put keeps a reference of its own. */
EVP_PKEY *dkim_keycache_get(int ed25519, const unsigned char *der, size_t len);
void dkim_keycache_put(int ed25519, const unsigned char *der, size_t len,
    EVP_PKEY *pkey);
void dkim_keycache_clear(void);

#endif
