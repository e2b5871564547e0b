/*
 * auth/dkim: DKIM (RFC 6376) verification and signing, rsa-sha256 and
 * ed25519-sha256 (RFC 8463); rsa-sha1 never passes (RFC 8301).
 *
 * Verification is an engine fed the message content as it streams in and
 * DNS answers for the keys, like auth/spf: it does no I/O.
 *
 *   v = dkim_verify_new(&params);
 *   dkim_verify_feed(v, chunk, n) ...   (content: CRLF lines, as received)
 *   while ((name = dkim_verify_next_query(v)) != NULL)   (any time: key
 *           ... ask TXT for name, later dkim_verify_answer(v, name, a)
 *   dkim_verify_end(v);
 *   ... keep answering queries until dkim_verify_done(v)
 *   for i < dkim_verify_count(v): dkim_verify_result(v, i)
 *
 * Key queries become available as soon as each DKIM-Signature field is
 * parsed, while the body still arrives. Body hashes are computed while
 * the body streams; the header hash at the end. At most max_signatures
 * signatures are evaluated (the rest get "none"/not evaluated).
 * dkim_verify_feed returns -1 once the header section passes 1 MiB or
 * 10000 fields; end still settles every signature (permerror).
 * Several TXT records for one key: the first usable key is taken (as
 * dkimpy; RFC 6376 6.1.2 leaves it to the verifier).
 */
#ifndef AUTH_DKIM_H
#define AUTH_DKIM_H

#include <stddef.h>

#include "lib/buf.h"
#include "lib/dns.h"

struct dkim_verify;
struct dkim_key;

enum dkim_result {
	DKIM_NONE,		/* no signature */
	DKIM_PASS,
	DKIM_FAIL,		/* signature or body hash does not verify */
	DKIM_NEUTRAL,		/* e.g. unsupported algorithm (RFC 8301: rsa-sha1) */
	DKIM_POLICY,		/* e.g. From not signed, key too short */
	DKIM_TEMPERROR,		/* key lookup failed temporarily */
	DKIM_PERMERROR,		/* syntax error, no key, revoked key ... */
};

struct dkim_verify_params {
	long long now;		/* for x= and t=; 0 = time(NULL) */
	size_t max_signatures;	/* 0 = 8 */
};

struct dkim_sig_result {
	enum dkim_result result;
	const char *reason;	/* "", or why: "body hash mismatch" ... */
	const char *domain;	/* d= ("" if unparsed) */
	const char *selector;	/* s= */
	const char *identity;	/* i= (default "@d") */
	const char *algorithm;	/* a= */
	const char *b;		/* b= value without white space */
	int body_partial;	/* l= left part of the body unsigned */
};

struct dkim_verify *dkim_verify_new(const struct dkim_verify_params *p);
void dkim_verify_free(struct dkim_verify *v);
int dkim_verify_feed(struct dkim_verify *v, const char *data, size_t n);
int dkim_verify_end(struct dkim_verify *v);

/* Next key name to look up (TXT), e.g. "sel._domainkey.example.com", or
 * NULL when none is waiting to be asked. Each name is returned once. */
const char *dkim_verify_next_query(struct dkim_verify *v);
/* The answer for a name returned by next_query (copied as needed). */
void dkim_verify_answer(struct dkim_verify *v, const char *name,
    const struct dns_answer *a);
/* 1 when end was called and every key was answered: results final. */
int dkim_verify_done(const struct dkim_verify *v);

size_t dkim_verify_count(const struct dkim_verify *v);
const struct dkim_sig_result *dkim_verify_result(const struct dkim_verify *v,
    size_t i);
const char *dkim_result_name(enum dkim_result r);

/* Signing. Keys are loaded once (RSA of at least 1024 bits, RFC 8301; or
 * Ed25519), never logged, never copied per message. */
/* PEM (PKCS#1 or PKCS#8), or for Ed25519 also the base64 raw 32-octet
 * seed (RFC 8463 / dkimpy key files). */
struct dkim_key *dkim_key_load(const char *pem_file, char *err, size_t errlen);
void dkim_key_free(struct dkim_key *k);
const char *dkim_key_algorithm(const struct dkim_key *k);	/* "rsa-sha256" | "ed25519-sha256" */
/* The key record for k's public half (RFC 6376 3.6.1; RFC 8463 4.2 for
 * Ed25519), "v=DKIM1; k=rsa; p=BASE64", appended to txt: what is
 * published at SELECTOR._domainkey.DOMAIN. 0, or -1 when out of memory
 * (txt as it was). */
int dkim_key_record(const struct dkim_key *k, struct buf *txt);

struct dkim_sign_params {
	const char *domain;
	const char *selector;
	const struct dkim_key *key;
	const char *headers;	/* "from:to:subject"; NULL = RFC 6376 5.4 default list */
	int oversign;		/* sign one extra instance of each listed field */
	long long t;		/* 0 = now */
	long long x;		/* 0 = no expiry */
};

/*
 * Sign the message msg[0..len) (CRLF lines) with relaxed/relaxed
 * canonicalization; the DKIM-Signature field (folded, ending in CRLF) is
 * appended to out. 0, or -1 with err filled.
 */
int dkim_sign(const struct dkim_sign_params *p, const char *msg, size_t len,
    struct buf *out, char *err, size_t errlen);

/*
 * Streaming signing for the daemon: one signer per message, fed the
 * content as it streams (CRLF lines, as received; the body is hashed on
 * the way, never kept). The keys are chosen at the end (they follow the
 * From domain): one DKIM-Signature per key (dual RSA + Ed25519 signing),
 * appended to out. The body hash is shared: every signature is
 * relaxed/relaxed without l=. new: NULL on allocation failure. feed: -1
 * once the header section passes its bounds (end then fails). end: 0, or
 * -1 with err (no key, bad domain/selector, no From field, header too
 * large); params and keys borrowed for the call.
 */
struct dkim_signer;
struct dkim_signer *dkim_signer_new(void);
int dkim_signer_feed(struct dkim_signer *s, const char *data, size_t n);
int dkim_signer_end(struct dkim_signer *s, const struct dkim_sign_params *p,
    size_t np, struct buf *out, char *err, size_t errlen);
void dkim_signer_free(struct dkim_signer *s);

/* New key: writes the PEM private key to out_file (mode 0600; an
 * existing file is never replaced: error) and appends
 * the TXT record text ("v=DKIM1; k=rsa; p=...") to txt. type "rsa" (bits
 * >= 1024, default 2048) or "ed25519". 0, or -1 with err. */
int dkim_keygen(const char *type, int bits, const char *out_file,
    struct buf *txt, char *err, size_t errlen);

#endif
