/*
 * auth/dkim_key.c: private keys for signing (loaded once, RFC 8301 size
 * rule), key generation, and the two signature primitives.
 */
#include "auth/dkim_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

struct dkim_key {
	EVP_PKEY *pkey;
};

EVP_PKEY *
dkim_key_pkey(const struct dkim_key *k)
{
	return k->pkey;
}

struct dkim_key *
dkim_key_from_pkey(EVP_PKEY *pkey)
{
	struct dkim_key *k;

	if ((k = calloc(1, sizeof(*k))) == NULL)
		return NULL;
	k->pkey = pkey;
	return k;
}

/* RFC 8463 4: an Ed25519 key may be kept as the base64 32-octet seed. */
static EVP_PKEY *
key_seed(const char *file)
{
	unsigned char *raw = NULL;
	EVP_PKEY *pkey = NULL;
	char text[256];
	size_t n, rlen;
	FILE *fp;

	if ((fp = fopen(file, "r")) == NULL)
		return NULL;
	n = fread(text, 1, sizeof(text) - 1, fp);
	fclose(fp);
	text[n] = '\0';
	if (dkim_b64_decode(text, n, &raw, &rlen) == 0 && rlen == 32)
		pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL,
		    raw, rlen);
	if (raw != NULL)
		OPENSSL_cleanse(raw, rlen);
	OPENSSL_cleanse(text, sizeof(text));
	free(raw);
	return pkey;
}

struct dkim_key *
dkim_key_load(const char *pem_file, char *err, size_t errlen)
{
	struct dkim_key *k = NULL;
	EVP_PKEY *pkey = NULL;
	BIO *bio;

	if ((bio = BIO_new_file(pem_file, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", pem_file, strerror(errno));
		return NULL;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (pkey == NULL)
		pkey = key_seed(pem_file);
	ERR_clear_error();
	if (pkey == NULL) {
		snprintf(err, errlen, "%s: not a PEM private key", pem_file);
		return NULL;
	}
	if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA) {
		/* RFC 8301 3.2: at least 1024 bits */
		if (EVP_PKEY_get_bits(pkey) < DKIM_MIN_RSA_BITS) {
			snprintf(err, errlen, "%s: RSA key of %d bits, "
			    "at least %d needed", pem_file,
			    EVP_PKEY_get_bits(pkey), DKIM_MIN_RSA_BITS);
			goto fail;
		}
	} else if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519) {
		snprintf(err, errlen, "%s: neither an RSA nor an Ed25519 key",
		    pem_file);
		goto fail;
	}
	if ((k = dkim_key_from_pkey(pkey)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return k;
fail:
	EVP_PKEY_free(pkey);
	return NULL;
}

void
dkim_key_free(struct dkim_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

const char *
dkim_key_algorithm(const struct dkim_key *k)
{
	return EVP_PKEY_get_base_id(k->pkey) == EVP_PKEY_ED25519 ?
	    "ed25519-sha256" : "rsa-sha256";
}

int
dkim_pkey_sign(EVP_PKEY *pkey, const unsigned char dig[DKIM_HASH_LEN],
    unsigned char **sig_r, size_t *siglen_r)
{
	EVP_PKEY_CTX *pctx = NULL;
	EVP_MD_CTX *md = NULL;
	unsigned char *sig = NULL;
	size_t len = 0;
	int ret = -1;

	if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_ED25519) {
		/* RFC 8463 3: PureEdDSA over the SHA-256 of the headers */
		if ((md = EVP_MD_CTX_new()) == NULL ||
		    EVP_DigestSignInit(md, NULL, NULL, NULL, pkey) != 1 ||
		    EVP_DigestSign(md, NULL, &len, dig, DKIM_HASH_LEN) != 1 ||
		    (sig = malloc(len)) == NULL ||
		    EVP_DigestSign(md, sig, &len, dig, DKIM_HASH_LEN) != 1)
			goto fail;
	} else {
		/* RFC 6376 3.3.1: RSASSA-PKCS1-v1_5 with SHA-256 */
		if ((pctx = EVP_PKEY_CTX_new(pkey, NULL)) == NULL ||
		    EVP_PKEY_sign_init(pctx) != 1 ||
		    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1 ||
		    EVP_PKEY_CTX_set_signature_md(pctx, EVP_sha256()) != 1 ||
		    EVP_PKEY_sign(pctx, NULL, &len, dig, DKIM_HASH_LEN) != 1 ||
		    (sig = malloc(len)) == NULL ||
		    EVP_PKEY_sign(pctx, sig, &len, dig, DKIM_HASH_LEN) != 1)
			goto fail;
	}
	*sig_r = sig;
	*siglen_r = len;
	sig = NULL;
	ret = 0;
fail:
	ERR_clear_error();
	free(sig);
	EVP_MD_CTX_free(md);
	EVP_PKEY_CTX_free(pctx);
	return ret;
}

/* 1 verified, 0 not. */
int
dkim_pkey_verify(EVP_PKEY *pkey, const unsigned char dig[DKIM_HASH_LEN],
    const unsigned char *sig, size_t siglen)
{
	EVP_PKEY_CTX *pctx = NULL;
	EVP_MD_CTX *md = NULL;
	int ok = 0;

	if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_ED25519) {
		if ((md = EVP_MD_CTX_new()) != NULL &&
		    EVP_DigestVerifyInit(md, NULL, NULL, NULL, pkey) == 1 &&
		    EVP_DigestVerify(md, sig, siglen, dig, DKIM_HASH_LEN) == 1)
			ok = 1;
	} else {
		if ((pctx = EVP_PKEY_CTX_new(pkey, NULL)) != NULL &&
		    EVP_PKEY_verify_init(pctx) == 1 &&
		    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1 &&
		    EVP_PKEY_CTX_set_signature_md(pctx, EVP_sha256()) == 1 &&
		    EVP_PKEY_verify(pctx, sig, siglen, dig, DKIM_HASH_LEN) == 1)
			ok = 1;
	}
	ERR_clear_error();
	EVP_MD_CTX_free(md);
	EVP_PKEY_CTX_free(pctx);
	return ok;
}

int
dkim_key_record(const struct dkim_key *k, struct buf *txt)
{
	unsigned char *der = NULL, raw[32];
	size_t rlen = sizeof(raw), start = txt->len;
	int len, ed, ret = -1;

	ed = EVP_PKEY_get_base_id(k->pkey) == EVP_PKEY_ED25519;
	/* RFC 6376 3.6.1 p=; RFC 8463 4.2: raw 32 octets for ed25519 */
	if (buf_appendf(txt, "v=DKIM1; k=%s; p=", ed ? "ed25519" : "rsa") == -1)
		goto out;
	if (ed) {
		if (EVP_PKEY_get_raw_public_key(k->pkey, raw, &rlen) != 1 ||
		    dkim_b64_encode(raw, rlen, txt) == -1)
			goto out;
	} else {
		if ((len = i2d_PUBKEY(k->pkey, &der)) <= 0 ||
		    dkim_b64_encode(der, (size_t)len, txt) == -1)
			goto out;
	}
	ret = 0;
out:
	if (ret == -1 && txt->data != NULL) {
		txt->len = start;
		txt->data[start] = '\0';
	}
	ERR_clear_error();
	OPENSSL_free(der);
	return ret;
}

int
dkim_keygen(const char *type, int bits, const char *out_file,
    struct buf *txt, char *err, size_t errlen)
{
	struct dkim_key tmp;
	EVP_PKEY *pkey = NULL;
	FILE *fp = NULL;
	int fd = -1, ret = -1, ed;

	ed = strcmp(type, "ed25519") == 0;
	if (!ed && strcmp(type, "rsa") != 0) {
		snprintf(err, errlen, "key type %s: rsa or ed25519", type);
		return -1;
	}
	if (!ed && bits == 0)
		bits = 2048;
	if (!ed && (bits < DKIM_MIN_RSA_BITS || bits > 16384)) {
		snprintf(err, errlen, "RSA keys of %d to 16384 bits (RFC 8301)",
		    DKIM_MIN_RSA_BITS);
		return -1;
	}
	pkey = ed ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519") :
	    EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	if (pkey == NULL) {
		snprintf(err, errlen, "key generation failed");
		goto fail;
	}
	/* never replace an existing key */
	if ((fd = open(out_file, O_WRONLY | O_CREAT | O_EXCL, 0600)) == -1) {
		snprintf(err, errlen, "%s: %s", out_file, strerror(errno));
		goto fail;
	}
	if ((fp = fdopen(fd, "w")) == NULL) {
		snprintf(err, errlen, "%s: %s", out_file, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (PEM_write_PrivateKey(fp, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
	    fflush(fp) != 0 || fsync(fileno(fp)) != 0) {
		snprintf(err, errlen, "%s: write failed", out_file);
		goto fail;
	}
	tmp.pkey = pkey;
	if (dkim_key_record(&tmp, txt) == -1)
		goto nomem;
	ret = 0;
	goto done;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	if (fp != NULL || fd != -1)
		unlink(out_file);
done:
	if (fp != NULL)
		fclose(fp);
	if (fd != -1)
		close(fd);
	ERR_clear_error();
	EVP_PKEY_free(pkey);
	return ret;
}
