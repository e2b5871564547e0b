/*
 * libFuzzer target for the DKIM key record parser (RFC 6376 3.6.1, RFC
 * 8463 4.2: key_parse in auth/dkim.c), driven through the verify engine:
 * a message signed at start-up (ed25519-sha256 with the RFC 8032 7.1
 * TEST 1 key, so a record carrying its public key verifies), or one with
 * an rsa-sha256 signature that cannot verify, has its key query answered
 * with the input as TXT data.
 *
 * First octet: flags. 0x01 the rsa message; 0x02 split the data at '\n'
 * into several TXT records; 0x0c both set: no records, the status is
 * NXDOMAIN or SERVFAIL (0x10). The rest: the TXT data.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "auth/dkim.h"
#include "auth/dkim_int.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW		1600000000LL
#define KEY_NAME	"sel._domainkey.example.com"

/* RFC 8032 7.1 TEST 1 secret key; its public key in base64 is
 * 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo= */
static const unsigned char seed[32] = {
	0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4,
	0x92, 0xec, 0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19,
	0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
};

static const char body[] = "From: a@example.com\r\nTo: b@example.net\r\n"
    "Subject: key fuzz\r\n\r\nHello.\r\n";

static const char rsa_msg[] = "DKIM-Signature: v=1; a=rsa-sha256; "
    "c=relaxed/relaxed; d=example.com; s=sel; t=1599999999; h=from:to; "
    "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; "
    "b=dGhpcyBpcyBub3QgYSBzaWduYXR1cmUgYnV0IGl0IHBhcnNlcyBhcyBiYXNlNjQ=\r\n"
    "From: a@example.com\r\nTo: b@example.net\r\nSubject: key fuzz\r\n"
    "\r\nHello.\r\n";

static struct buf ed_msg;
static int ready;

static void
setup(void)
{
	struct dkim_sign_params sp;
	struct dkim_key *k;
	EVP_PKEY *pk;
	char err[128];

	ready = -1;
	pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed,
	    sizeof(seed));
	if (pk == NULL || (k = dkim_key_from_pkey(pk)) == NULL)
		return;
	memset(&sp, 0, sizeof(sp));
	sp.domain = "example.com";
	sp.selector = "sel";
	sp.key = k;
	sp.headers = "from:to:subject";
	sp.t = NOW - 1;
	if (dkim_sign(&sp, body, sizeof(body) - 1, &ed_msg, err,
	    sizeof(err)) == 0 &&
	    buf_append(&ed_msg, body, sizeof(body) - 1) == 0)
		ready = 1;
	dkim_key_free(k);
}

static void
check_printable(const char *s)
{
	for (; *s != '\0'; s++)
		CHECK((unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dkim_verify_params vp = { NOW, 2 };
	struct dkim_verify *v;
	const struct dkim_sig_result *r;
	struct dns_answer a = { 0 };
	struct dns_rr rr[8];
	const char *name, *p, *end, *nl;
	unsigned flags;
	int rsa;

	if (ready == 0)
		setup();
	if (ready != 1 || size < 1)
		return 0;
	flags = data[0];
	rsa = flags & 1;
	p = (const char *)data + 1;
	end = (const char *)data + size;

	memset(rr, 0, sizeof(rr));
	a.type = DNS_T_TXT;
	a.rr = rr;
	if ((flags & 0x0c) == 0x0c) {
		a.status = (flags & 0x10) ? DNS_SERVFAIL : DNS_NXDOMAIN;
	} else {
		a.status = DNS_OK;
		do {
			nl = (flags & 2) ? memchr(p, '\n', (size_t)(end - p)) :
			    NULL;
			rr[a.n].text = (char *)p;
			rr[a.n].len = (size_t)((nl != NULL ? nl : end) - p);
			a.n++;
			p = nl != NULL ? nl + 1 : end;
		} while (nl != NULL && a.n < 8);
	}

	if ((v = dkim_verify_new(&vp)) == NULL)
		return 0;
	if (rsa)
		dkim_verify_feed(v, rsa_msg, sizeof(rsa_msg) - 1);
	else
		dkim_verify_feed(v, ed_msg.data, ed_msg.len);
	dkim_verify_end(v);
	name = dkim_verify_next_query(v);
	CHECK(name != NULL && strcmp(name, KEY_NAME) == 0);
	CHECK(dkim_verify_next_query(v) == NULL);
	a.name = name;
	dkim_verify_answer(v, name, &a);
	CHECK(dkim_verify_done(v));
	CHECK(dkim_verify_count(v) == 1);
	r = dkim_verify_result(v, 0);
	CHECK(r != NULL && r->result <= DKIM_PERMERROR);
	CHECK(r->result != DKIM_NONE);
	check_printable(r->reason);
	/* no key record: never a pass; a lookup failure: temperror */
	if (a.status != DNS_OK)
		CHECK(r->result == (a.status == DNS_SERVFAIL ? DKIM_TEMPERROR :
		    DKIM_PERMERROR));
	/* the rsa signature is no signature */
	CHECK(!rsa || r->result != DKIM_PASS);
	dkim_verify_free(v);
	return 0;
}
