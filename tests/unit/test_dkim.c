/*
 * Tests for auth/dkim*.c: the tag-list parser, the RFC 6376 3.4.5
 * canonicalization examples, the RFC 8463 Appendix A message, the dkimpy
 * test data, sign-then-verify, and the ways a signature must not pass.
 * Content is fed in small random chunks; keys come from a table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "auth/dkim.h"
#include "auth/dkim_int.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define CONF "../shared/conformance/"
#define RFC8463 CONF "rfc8463-dkim-ed25519/"
#define DKIMPY CONF "dkimpy-testdata/"
#define NOW 1600000000LL

/* ---- helpers ---- */

struct key_rec {
	const char *name;
	const char *txt;	/* NULL: the status below */
	enum dns_status status;
};

static struct key_rec keys[16];
static size_t nkeys;

static void
key_add(const char *name, const char *txt, enum dns_status st)
{
	keys[nkeys].name = name;
	keys[nkeys].txt = txt;
	keys[nkeys].status = st;
	nkeys++;
}

static void
answer(struct dkim_verify *v, const char *name)
{
	struct dns_rr rr[4];
	struct dns_answer a = { 0 };
	size_t i;

	memset(rr, 0, sizeof(rr));
	a.status = DNS_NXDOMAIN;
	a.type = DNS_T_TXT;
	a.name = name;
	a.rr = rr;
	for (i = 0; i < nkeys; i++) {
		if (strcasecmp(keys[i].name, name) != 0)
			continue;
		if (keys[i].txt == NULL) {
			a.status = keys[i].status;
			break;
		}
		a.status = DNS_OK;
		rr[a.n].text = (char *)keys[i].txt;
		rr[a.n].len = strlen(keys[i].txt);
		a.n++;
	}
	dkim_verify_answer(v, name, &a);
}

static struct dkim_verify *
run(const char *msg, size_t len, size_t maxsig)
{
	struct dkim_verify_params p = { NOW, maxsig };
	struct dkim_verify *v;
	const char *name;
	size_t off = 0, n;

	v = dkim_verify_new(&p);
	assert_non_null(v);
	while (off < len) {
		n = 1 + (size_t)rand() % 23;
		if (n > len - off)
			n = len - off;
		assert_int_equal(dkim_verify_feed(v, msg + off, n), 0);
		off += n;
		/* keys asked and answered while the content streams */
		while ((name = dkim_verify_next_query(v)) != NULL)
			answer(v, name);
	}
	assert_int_equal(dkim_verify_end(v), 0);
	while ((name = dkim_verify_next_query(v)) != NULL)
		answer(v, name);
	assert_true(dkim_verify_done(v));
	return v;
}

static enum dkim_result
result1(const char *msg, const struct dkim_sig_result **r)
{
	static struct dkim_verify *last;
	enum dkim_result res;

	dkim_verify_free(last);
	last = NULL;
	if (msg == NULL)
		return DKIM_NONE;
	last = run(msg, strlen(msg), 0);
	assert_true(dkim_verify_count(last) >= 1);
	*r = dkim_verify_result(last, 0);
	res = (*r)->result;
	return res;
}

/* A file, LF line ends made CRLF; NULL when absent. */
static char *
slurp(const char *path, size_t *len_r)
{
	struct buf b = { 0 };
	FILE *fp;
	int c, prev = 0;

	if ((fp = fopen(path, "rb")) == NULL)
		return NULL;
	while ((c = getc(fp)) != EOF) {
		if (c == '\n' && prev != '\r')
			buf_appendc(&b, '\r');
		buf_appendc(&b, (char)c);
		prev = c;
	}
	fclose(fp);
	*len_r = b.len;
	return buf_steal(&b);
}

/* Key records of a "<name> <txt>" file into the table (kept). */
static char *texts[64];
static size_t nt;

static void
free_records(void)
{
	while (nt > 0)
		free(texts[--nt]);
}

static int
load_records(const char *path)
{
	char line[4096], *sp;
	FILE *fp;

	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL && nkeys < NELEM(keys)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '#' || (sp = strchr(line, ' ')) == NULL)
			continue;
		*sp++ = '\0';
		if (nt + 2 > NELEM(texts))
			break;
		texts[nt] = strdup(line);
		texts[nt + 1] = strdup(sp);
		key_add(texts[nt], texts[nt + 1], DNS_OK);
		nt += 2;
	}
	fclose(fp);
	return 0;
}

static int
setup_keys(void **state)
{
	nkeys = 0;
	return 0;
}

/* ---- tag-list parser (RFC 6376 3.2) ---- */

static const struct {
	const char *in;
	int ok;
	size_t n;
	const char *tag, *value;	/* one tag to look at */
} tagcases[] = {
	{ "v=1", 1, 1, "v", "1" },
	{ "v=1;", 1, 1, "v", "1" },
	{ "  v = 1 ; a=rsa-sha256 ;", 1, 2, "a", "rsa-sha256" },
	{ "v=1;\r\n\tb=ab cd\r\n ef ;c=x", 1, 3, "b", "ab cd\r\n ef" },
	{ "h=from : to", 1, 1, "h", "from : to" },
	{ "p=", 1, 1, "p", "" },
	{ "p= ;k=rsa", 1, 2, "p", "" },
	{ "x_1=y", 1, 1, "x_1", "y" },
	{ "v=DKIM1:", 1, 1, "v", "DKIM1:" },
	{ "", 0, 0, NULL, NULL },
	{ ";", 0, 0, NULL, NULL },
	{ "v=1;;a=b", 0, 0, NULL, NULL },
	{ "=1", 0, 0, NULL, NULL },
	{ "1v=1", 0, 0, NULL, NULL },
	{ "v 1", 0, 0, NULL, NULL },
	{ "v=1; v=2", 0, 0, NULL, NULL },
	{ "v=a\x01", 0, 0, NULL, NULL },
	{ "v=\xc3\xa9", 0, 0, NULL, NULL },
	{ "v=1\r\nb=2", 0, 0, NULL, NULL },
	{ "a-b=1", 0, 0, NULL, NULL },
};

static void
test_tags(void **state)
{
	struct dkim_taglist tl;
	const struct dkim_tag *t;
	const char *err;
	size_t i;

	for (i = 0; i < NELEM(tagcases); i++) {
		int r = dkim_tags_parse(tagcases[i].in, strlen(tagcases[i].in),
		    &tl, &err);

		if (!tagcases[i].ok) {
			if (r != -1)
				fail_msg("accepted: %s", tagcases[i].in);
			continue;
		}
		if (r != 0)
			fail_msg("refused: %s (%s)", tagcases[i].in, err);
		assert_int_equal(tl.n, tagcases[i].n);
		t = dkim_tags_find(&tl, tagcases[i].tag);
		assert_non_null(t);
		assert_int_equal(t->value_len, strlen(tagcases[i].value));
		assert_memory_equal(t->value, tagcases[i].value, t->value_len);
	}
	/* tag names are case-sensitive */
	assert_int_equal(dkim_tags_parse("V=1", 3, &tl, &err), 0);
	assert_null(dkim_tags_find(&tl, "v"));
}

static void
test_base64(void **state)
{
	unsigned char *out;
	size_t len;

	assert_int_equal(dkim_b64_decode("Zm9v YmFy", 9, &out, &len), 0);
	assert_int_equal(len, 6);
	assert_memory_equal(out, "foobar", 6);
	free(out);
	assert_int_equal(dkim_b64_decode("Zm8=\r\n ", 7, &out, &len), 0);
	assert_int_equal(len, 2);
	free(out);
	assert_int_equal(dkim_b64_decode("Zg==", 4, &out, &len), 0);
	assert_int_equal(len, 1);
	free(out);
	assert_int_equal(dkim_b64_decode("Zm9", 3, &out, &len), 0);
	free(out);
	assert_int_equal(dkim_b64_decode("Z", 1, &out, &len), -1);
	assert_int_equal(dkim_b64_decode("Zg=a", 4, &out, &len), -1);
	assert_int_equal(dkim_b64_decode("Zm9v=", 5, &out, &len), -1);
	assert_int_equal(dkim_b64_decode("Zm!v", 4, &out, &len), -1);
}

/* ---- canonicalization (RFC 6376 3.4.5) ---- */

static void
body_hash_of(const char *in, int relaxed, long long l, const char *want)
{
	unsigned char got[DKIM_HASH_LEN], exp[DKIM_HASH_LEN];
	unsigned long long total;
	struct dkim_body *b;
	size_t i, n = strlen(in);
	unsigned dl;

	/* byte by byte and whole must agree with the expected text */
	b = dkim_body_new(relaxed, l);
	for (i = 0; i < n; i++)
		assert_int_equal(dkim_body_update(b, in + i, 1), 0);
	assert_int_equal(dkim_body_final(b, got, &total), 0);
	dkim_body_free(b);
	assert_int_equal(total, strlen(want));
	EVP_Digest(want, l >= 0 && (size_t)l < strlen(want) ? (size_t)l :
	    strlen(want), exp, &dl, EVP_sha256(), NULL);
	assert_memory_equal(got, exp, DKIM_HASH_LEN);
}

static void
test_canon(void **state)
{
	struct buf b = { 0 };

	dkim_canon_header(&b, "A: X", 4, 1, 1);
	dkim_canon_header(&b, "B : Y\t\r\n\tZ  ", 12, 1, 1);
	assert_string_equal(b.data, "a:X\r\nb:Y Z\r\n");
	buf_reset(&b);
	dkim_canon_header(&b, "B : Y\t\r\n\tZ  ", 12, 0, 1);
	assert_string_equal(b.data, "B : Y\t\r\n\tZ  \r\n");
	buf_reset(&b);
	dkim_canon_header(&b, "Subject:a:  b", 13, 1, 0);
	assert_string_equal(b.data, "subject:a: b");
	buf_free(&b);

	body_hash_of(" C \r\nD \t E\r\n\r\n\r\n", 1, -1, " C\r\nD E\r\n");
	body_hash_of(" C \r\nD \t E\r\n\r\n\r\n", 0, -1, " C \r\nD \t E\r\n");
	/* RFC 6376 3.4.3/3.4.4 and errata 3133: empty bodies */
	body_hash_of("", 0, -1, "\r\n");
	body_hash_of("\r\n\r\n", 0, -1, "\r\n");
	body_hash_of("", 1, -1, "");
	body_hash_of(" \r\n\t\r\n", 1, -1, "");
	/* a last line without CRLF gets one; bare CR is content */
	body_hash_of("x", 0, -1, "x\r\n");
	body_hash_of("a\rb  \r\n", 1, -1, "a\rb\r\n");
	body_hash_of("a\r", 0, -1, "a\r\r\n");
	/* l= hashes a prefix, total counts everything */
	body_hash_of("abc\r\ndef\r\n", 0, 5, "abc\r\ndef\r\n");
}

/* A plain reading of RFC 6376 3.4.3 / 3.4.4 on a whole buffer, to hold
 * the streaming canonicalizer (which works on runs) against. */
static void
ref_canon_body(const char *in, size_t n, int relaxed, struct buf *out)
{
	struct buf line = { 0 };
	size_t i = 0, keep = 0;

	buf_reset(out);
	while (i < n) {
		size_t e = i;

		while (e < n && !(in[e] == '\r' && e + 1 < n && in[e + 1] == '\n'))
			e++;
		buf_reset(&line);
		if (relaxed) {
			size_t k;
			int sp = 0;

			for (k = i; k < e; k++) {
				if (in[k] == ' ' || in[k] == '\t') {
					sp = 1;
					continue;
				}
				if (sp)
					buf_appendc(&line, ' ');
				sp = 0;
				buf_appendc(&line, in[k]);
			}
		} else
			buf_append(&line, in + i, e - i);
		buf_append(out, line.data ? line.data : "", line.len);
		buf_append(out, "\r\n", 2);
		if (line.len > 0)
			keep = out->len;	/* up to the last non-empty line */
		i = e < n ? e + 2 : e;
	}
	out->len = keep;
	if (out->data)
		out->data[keep] = '\0';
	if (keep == 0 && !relaxed)
		buf_append(out, "\r\n", 2);
	buf_free(&line);
}

/* The run-based canonicalizer equals the reference on random bodies of
 * CR, LF, SP, HTAB and text, whatever the chunking. */
static void
test_canon_random(void **state)
{
	static const char alpha[] = "ab \t\r\n\r\n";
	char in[300];
	struct buf ref = { 0 };
	unsigned seed = 12345;
	int iter, relaxed;

	for (iter = 0; iter < 3000; iter++) {
		size_t n, i;

		seed = seed * 1103515245u + 12345u;
		n = (seed >> 8) % sizeof(in);
		for (i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			in[i] = alpha[(seed >> 16) % (sizeof(alpha) - 1)];
		}
		for (relaxed = 0; relaxed <= 1; relaxed++) {
			unsigned char got[DKIM_HASH_LEN], exp[DKIM_HASH_LEN];
			unsigned long long total;
			struct dkim_body *b = dkim_body_new(relaxed, -1);
			unsigned dl;

			for (i = 0; i < n;) {
				size_t k;

				seed = seed * 1103515245u + 12345u;
				k = 1 + (seed >> 16) % 40;
				if (k > n - i)
					k = n - i;
				assert_int_equal(dkim_body_update(b, in + i, k), 0);
				i += k;
			}
			assert_int_equal(dkim_body_final(b, got, &total), 0);
			dkim_body_free(b);
			ref_canon_body(in, n, relaxed, &ref);
			EVP_Digest(ref.data ? ref.data : "", ref.len, exp, &dl,
			    EVP_sha256(), NULL);
			if (total != ref.len || memcmp(got, exp, DKIM_HASH_LEN) != 0)
				fail_msg("iteration %d relaxed=%d: %zu octets in, "
				    "%llu out, reference %zu", iter, relaxed, n,
				    total, ref.len);
		}
	}
	buf_free(&ref);
}

/* The decoded-key cache: hits by type and data, a reference per caller,
 * least recently used entries evicted past its size. */
static void
test_keycache(void **state)
{
	unsigned char raw[32];
	EVP_PKEY *k[140], *got;
	int i;

	dkim_keycache_clear();
	for (i = 0; i < 140; i++) {
		memset(raw, 0, sizeof(raw));
		raw[0] = (unsigned char)i;
		raw[1] = 0x5a;
		assert_non_null(k[i] = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519,
		    NULL, raw, sizeof(raw)));
		dkim_keycache_put(1, raw, sizeof(raw), k[i]);
		if (i == 0) {
			/* same data, other type: a miss */
			assert_null(dkim_keycache_get(0, raw, sizeof(raw)));
			assert_ptr_equal(got = dkim_keycache_get(1, raw, sizeof(raw)), k[0]);
			EVP_PKEY_free(got);
		}
		/* keep key 0 recently used: it must survive eviction */
		memset(raw, 0, sizeof(raw));
		raw[1] = 0x5a;
		if ((got = dkim_keycache_get(1, raw, sizeof(raw))) != NULL)
			EVP_PKEY_free(got);
		else
			fail_msg("key 0 evicted at %d", i);
	}
	memset(raw, 0, sizeof(raw));
	raw[0] = 1;
	raw[1] = 0x5a;
	assert_null(dkim_keycache_get(1, raw, sizeof(raw)));	/* evicted */
	raw[0] = 139;
	assert_ptr_equal(got = dkim_keycache_get(1, raw, sizeof(raw)), k[139]);
	EVP_PKEY_free(got);
	/* the cache holds its own references: ours can go */
	for (i = 0; i < 140; i++)
		EVP_PKEY_free(k[i]);
	assert_non_null(got = dkim_keycache_get(1, raw, sizeof(raw)));
	EVP_PKEY_free(got);
	dkim_keycache_clear();
	assert_null(dkim_keycache_get(1, raw, sizeof(raw)));
}

/* ---- RFC 8463 Appendix A ---- */

static void
test_rfc8463(void **state)
{
	struct dkim_verify *v;
	char *msg, *m2;
	size_t len, i;

	if ((msg = slurp(RFC8463 "rfc8463-A3-signed.eml", &len)) == NULL ||
	    load_records(RFC8463 "dns-records.txt") == -1)
		skip();	/* conformance data absent */
	for (i = 0; i < 5; i++) {
		v = run(msg, len, 0);
		assert_int_equal(dkim_verify_count(v), 2);
		assert_int_equal(dkim_verify_result(v, 0)->result, DKIM_PASS);
		assert_string_equal(dkim_verify_result(v, 0)->algorithm,
		    "ed25519-sha256");
		assert_string_equal(dkim_verify_result(v, 0)->identity,
		    "@football.example.com");
		assert_int_equal(dkim_verify_result(v, 1)->result, DKIM_PASS);
		assert_string_equal(dkim_verify_result(v, 1)->selector, "test");
		assert_false(dkim_verify_result(v, 1)->body_partial);
		dkim_verify_free(v);
	}
	/* h= names From twice: a second From breaks both (5.4.2) */
	m2 = malloc(len + 64);
	strcpy(m2, msg);
	strcpy(strstr(m2, "\r\n\r\n"), "\r\nFrom: evil@example.net\r\n\r\nHi.\r\n");
	v = run(m2, strlen(m2), 0);
	assert_int_equal(dkim_verify_result(v, 0)->result, DKIM_FAIL);
	assert_int_equal(dkim_verify_result(v, 1)->result, DKIM_FAIL);
	assert_string_equal(dkim_verify_result(v, 1)->reason,
	    "body hash mismatch");
	dkim_verify_free(v);
	strcpy(m2, msg);
	*strstr(m2, "Is dinner") = 'i';
	v = run(m2, strlen(m2), 0);
	assert_int_equal(dkim_verify_result(v, 0)->result, DKIM_FAIL);
	assert_string_equal(dkim_verify_result(v, 0)->reason,
	    "signature did not verify");
	dkim_verify_free(v);
	free(m2);
	free(msg);
}

/* ---- dkimpy test data ---- */

static void
test_dkimpy_signed(void **state)
{
	static const char *files[] = {
		"rfc6376.signed.msg", "ed25519test2.msg", "test2.message",
	};
	struct dkim_verify *v;
	char path[256], *msg;
	size_t len, i, j;

	if (load_records(DKIMPY "dns-records.txt") == -1)
		skip();
	for (i = 0; i < NELEM(files); i++) {
		snprintf(path, sizeof(path), DKIMPY "%s", files[i]);
		if ((msg = slurp(path, &len)) == NULL)
			skip();
		v = run(msg, len, 0);
		assert_true(dkim_verify_count(v) >= 1);
		for (j = 0; j < dkim_verify_count(v); j++)
			if (dkim_verify_result(v, j)->result != DKIM_PASS)
				fail_msg("%s #%zu: %s (%s)", files[i], j,
				    dkim_result_name(dkim_verify_result(v, j)->result),
				    dkim_verify_result(v, j)->reason);
		dkim_verify_free(v);
		free(msg);
	}
}

/* Sign msg, put the field on top, verify: the result of signature 0. */
static enum dkim_result
sign_verify(const struct dkim_sign_params *sp, const char *msg, size_t len,
    struct buf *signed_r)
{
	struct dkim_verify *v;
	enum dkim_result r;
	char err[128];

	buf_reset(signed_r);
	if (dkim_sign(sp, msg, len, signed_r, err, sizeof(err)) == -1)
		return DKIM_NONE;
	buf_append(signed_r, msg, len);
	v = run(signed_r->data, signed_r->len, 0);
	r = dkim_verify_result(v, 0)->result;
	dkim_verify_free(v);
	return r;
}

static void
test_dkimpy_roundtrip(void **state)
{
	static const char *files[] = {
		"test.message", "rfc6376.msg", "test_extra.message",
		"message.mbox",
	};
	struct dkim_sign_params sp = { 0 };
	struct dkim_key *rsa, *ed;
	struct buf out = { 0 };
	char path[256], err[128], *msg;
	size_t len, i;

	if (load_records(DKIMPY "dns-records.txt") == -1)
		skip();
	if ((rsa = dkim_key_load(DKIMPY "test.private", err, sizeof(err))) == NULL ||
	    (ed = dkim_key_load(DKIMPY "rfc8032_7_1.key", err, sizeof(err))) == NULL)
		skip();
	assert_string_equal(dkim_key_algorithm(ed), "ed25519-sha256");
	for (i = 0; i < NELEM(files); i++) {
		snprintf(path, sizeof(path), DKIMPY "%s", files[i]);
		if ((msg = slurp(path, &len)) == NULL)
			skip();
		sp.domain = "example.com";
		sp.selector = "test";
		sp.key = rsa;
		sp.t = NOW;
		sp.oversign = i & 1;
		assert_int_equal(sign_verify(&sp, msg, len, &out), DKIM_PASS);
		sp.domain = "football.example.com";
		sp.selector = "brisbane";
		sp.key = ed;
		sp.x = NOW + 3600;
		sp.t = NOW;
		assert_int_equal(sign_verify(&sp, msg, len, &out), DKIM_PASS);
		sp.x = 0;
		free(msg);
	}
	/* no From: refused */
	if ((msg = slurp(DKIMPY "test_nofrom.message", &len)) != NULL) {
		sp.key = rsa;
		assert_int_equal(dkim_sign(&sp, msg, len, &out, err,
		    sizeof(err)), -1);
		free(msg);
	}
	/* a header list without From: refused */
	sp.headers = "to:subject";
	assert_int_equal(dkim_sign(&sp, "From: a\r\n\r\n", 11, &out, err,
	    sizeof(err)), -1);
	sp.headers = "from : subject";
	sp.key = ed;
	assert_int_equal(sign_verify(&sp, "From: a\r\n\r\n", 11, &out), DKIM_PASS);
	dkim_key_free(rsa);
	dkim_key_free(ed);
	buf_free(&out);
}

/* ---- what must not pass ---- */

static EVP_PKEY *test_rsa;

static EVP_PKEY *
rsa_key(void)
{
	BIO *bio;

	if (test_rsa == NULL) {
		bio = BIO_new_file(DKIMPY "test.private", "r");
		if (bio == NULL)
			return NULL;
		test_rsa = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
		BIO_free(bio);
	}
	return test_rsa;
}

static const char base_msg[] =
    "From: Joe <joe@example.com>\r\n"
    "To: Suzie <suzie@example.net>\r\n"
    "Subject: dinner\r\n"
    "\r\n"
    "Hi.\r\n"
    "\r\n"
    "We  lost\r\n";

/*
 * A signature with the given tags (without bh= and b=) over msg with the
 * given key; the DKIM-Signature field on top of msg, malloc'd.
 */
static char *
mksig(EVP_PKEY *pk, const char *tags, const char *msg, int hrel, int brel,
    long long l, const char *const *h, size_t nh)
{
	struct msg_parser *mp;
	const struct msg_field *f[32];
	struct dkim_body *b;
	struct buf s = { 0 }, out = { 0 };
	unsigned char bh[DKIM_HASH_LEN], dig[DKIM_HASH_LEN], *sig;
	unsigned long long total;
	const char *body;
	size_t siglen, i, nf;

	body = strstr(msg, "\r\n\r\n") + 4;
	b = dkim_body_new(brel, l);
	dkim_body_update(b, body, strlen(body));
	dkim_body_final(b, bh, &total);
	dkim_body_free(b);
	buf_appendf(&s, "DKIM-Signature: %s; bh=", tags);
	dkim_b64_encode(bh, sizeof(bh), &s);
	buf_appends(&s, "; b=");
	mp = msg_parser_new(65536, 32, NULL, NULL, NULL);
	msg_parser_feed(mp, msg, strlen(msg));
	msg_parser_end(mp);
	nf = msg_parser_count(mp);
	for (i = 0; i < nf; i++)
		f[i] = msg_parser_field(mp, i);
	assert_int_equal(dkim_header_hash(f, nf, (char *const *)h, nh, hrel,
	    s.data, s.len, dig), 0);
	msg_parser_free(mp);
	assert_int_equal(dkim_pkey_sign(pk, dig, &sig, &siglen), 0);
	dkim_b64_encode(sig, siglen, &s);
	free(sig);
	buf_appends(&s, "\r\n");
	buf_append(&out, s.data, s.len);
	buf_appends(&out, msg);
	buf_free(&s);
	return buf_steal(&out);
}

static const char *const h3[] = { "from", "to", "subject" };
static const char *const h_nofrom[] = { "to", "subject" };

static const char *
rsa_txt(EVP_PKEY *pk, const char *prefix)
{
	static char txt[8][2048];
	static int slot;
	unsigned char *der = NULL;
	struct buf b = { 0 };
	int n;

	n = i2d_PUBKEY(pk, &der);
	buf_appends(&b, prefix);
	dkim_b64_encode(der, n, &b);
	OPENSSL_free(der);
	slot = (slot + 1) % 8;
	snprintf(txt[slot], sizeof(txt[slot]), "%s", b.data);
	buf_free(&b);
	return txt[slot];
}

static void
expect(const char *msg, enum dkim_result want, const char *reason)
{
	const struct dkim_sig_result *r;
	enum dkim_result got = result1(msg, &r);

	if (got != want || (reason != NULL && strcmp(r->reason, reason) != 0))
		fail_msg("got %s (%s), want %s (%s)", dkim_result_name(got),
		    r->reason, dkim_result_name(want), reason ? reason : "");
}

static char *
with_body(const char *signed_msg, const char *find, const char *repl)
{
	struct buf b = { 0 };
	const char *p = strstr(signed_msg, find);

	assert_non_null(p);
	buf_append(&b, signed_msg, p - signed_msg);
	buf_appends(&b, repl);
	buf_appends(&b, p + strlen(find));
	return buf_steal(&b);
}

static void
test_tampering(void **state)
{
	EVP_PKEY *pk = rsa_key(), *small;
	const struct dkim_sig_result *r;
	char *m, *t;
	const char *ok = "v=1; a=rsa-sha256; d=example.com; s=test; "
	    "h=from:to:subject";

	if (pk == NULL)
		skip();
	key_add("test._domainkey.example.com", rsa_txt(pk, "v=DKIM1; k=rsa; p="),
	    DNS_OK);
	key_add("strict._domainkey.example.com",
	    rsa_txt(pk, "v=DKIM1; t=s; p="), DNS_OK);
	key_add("revoked._domainkey.example.com", "v=DKIM1; k=rsa; p=", DNS_OK);
	key_add("tls._domainkey.example.com", rsa_txt(pk, "s=tlsrpt; p="),
	    DNS_OK);
	key_add("sha1._domainkey.example.com", rsa_txt(pk, "h=sha1; p="),
	    DNS_OK);
	key_add("ver._domainkey.example.com", rsa_txt(pk, "v=DKIM1:; p="),
	    DNS_OK);
	key_add("fail._domainkey.example.com", NULL, DNS_SERVFAIL);
	key_add("slow._domainkey.example.com", NULL, DNS_TIMEOUT);
	key_add("nodata._domainkey.example.com", NULL, DNS_NODATA);

	/* simple/simple: the signed message passes, changes do not */
	m = mksig(pk, ok, base_msg, 0, 0, -1, h3, 3);
	expect(m, DKIM_PASS, "");
	t = with_body(m, "Subject: dinner", "Subject: Dinner");
	expect(t, DKIM_FAIL, "signature did not verify");
	free(t);
	t = with_body(m, "Hi.", "Hi!");
	expect(t, DKIM_FAIL, "body hash mismatch");
	free(t);
	t = with_body(m, "We  lost", "We lost");
	expect(t, DKIM_FAIL, "body hash mismatch");
	free(t);
	t = with_body(m, "Subject: dinner", "Subject:  dinner");
	expect(t, DKIM_FAIL, NULL);
	free(t);
	/* unsigned fields may be added; signed ones may not (over-signing
	 * aside, a new To above the signed one is not picked) */
	t = with_body(m, "Subject: dinner\r\n", "Subject: dinner\r\nX-A: 1\r\n");
	expect(t, DKIM_PASS, NULL);
	free(t);
	t = with_body(m, "Subject: dinner\r\n", "Subject: dinner\r\nTo: x\r\n");
	expect(t, DKIM_FAIL, NULL);
	free(t);
	/* trailing empty lines do not count */
	t = with_body(m, "We  lost\r\n", "We  lost\r\n\r\n\r\n");
	expect(t, DKIM_PASS, NULL);
	free(t);
	free(m);

	/* relaxed/relaxed: whitespace changes are tolerated */
	m = mksig(pk, "v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; "
	    "s=test; h=from:to:subject", base_msg, 1, 1, -1, h3, 3);
	t = with_body(m, "We  lost", "We \t lost ");
	expect(t, DKIM_PASS, NULL);
	free(t);
	t = with_body(m, "Subject: dinner", "subject :\r\n dinner ");
	expect(t, DKIM_PASS, NULL);
	free(t);
	free(m);

	/* l=: a line added past it passes, partial */
	m = mksig(pk, "v=1; a=rsa-sha256; c=simple/simple; d=example.com; "
	    "s=test; l=17; h=from:to:subject", base_msg, 0, 0, 17, h3, 3);
	assert_int_equal(result1(m, &r), DKIM_PASS);
	assert_false(r->body_partial);
	t = with_body(m, "We  lost\r\n", "We  lost\r\nBuy now!\r\n");
	assert_int_equal(result1(t, &r), DKIM_PASS);
	assert_true(r->body_partial);
	free(t);
	t = with_body(m, "Hi.", "Hi!");
	expect(t, DKIM_FAIL, "body hash mismatch");
	free(t);
	free(m);
	m = mksig(pk, "v=1; a=rsa-sha256; d=example.com; s=test; l=1000; "
	    "h=from:to:subject", base_msg, 0, 0, 1000, h3, 3);
	expect(m, DKIM_FAIL, "l= longer than the body");
	free(m);

	/* keys */
	m = mksig(pk, "v=1; a=rsa-sha256; d=example.com; s=revoked; "
	    "h=from:to:subject", base_msg, 0, 0, -1, h3, 3);
	expect(m, DKIM_PERMERROR, "key revoked");
	free(m);
	m = mksig(pk, "v=1; a=rsa-sha256; d=example.com; s=tls; "
	    "h=from:to:subject", base_msg, 0, 0, -1, h3, 3);
	expect(m, DKIM_PERMERROR, "key not for email (s=)");
	free(m);
	m = mksig(pk, "v=1; a=rsa-sha256; d=example.com; s=sha1; "
	    "h=from:to:subject", base_msg, 0, 0, -1, h3, 3);
	expect(m, DKIM_PERMERROR, "key h= excludes sha256");
	free(m);
	m = mksig(pk, "v=1; a=rsa-sha256; d=example.com; s=ver; "
	    "h=from:to:subject", base_msg, 0, 0, -1, h3, 3);
	expect(m, DKIM_PERMERROR, "bad key record version");
	free(m);
	m = mksig(pk, "v=1; a=rsa-sha256; d=example.com; s=missing; "
	    "h=from:to:subject", base_msg, 0, 0, -1, h3, 3);
	expect(m, DKIM_PERMERROR, "no key");
	free(m);
	m = mksig(pk, "v=1; a=rsa-sha256; d=example.com; s=nodata; "
	    "h=from:to:subject", base_msg, 0, 0, -1, h3, 3);
	expect(m, DKIM_PERMERROR, "no key");
	free(m);
	m = mksig(pk, "v=1; a=rsa-sha256; d=example.com; s=fail; "
	    "h=from:to:subject", base_msg, 0, 0, -1, h3, 3);
	expect(m, DKIM_TEMPERROR, NULL);
	free(m);
	m = mksig(pk, "v=1; a=rsa-sha256; d=example.com; s=slow; "
	    "h=from:to:subject", base_msg, 0, 0, -1, h3, 3);
	expect(m, DKIM_TEMPERROR, NULL);
	free(m);
	m = mksig(pk, "v=1; a=ed25519-sha256; d=example.com; s=test; "
	    "h=from:to:subject", base_msg, 0, 0, -1, h3, 3);
	expect(m, DKIM_PERMERROR, "key type does not match a=");
	free(m);

	/* t=s: i= must be d= itself */
	m = mksig(pk, "v=1; a=rsa-sha256; d=example.com; s=strict; "
	    "i=joe@example.com; h=from:to:subject", base_msg, 0, 0, -1, h3, 3);
	expect(m, DKIM_PASS, NULL);
	free(m);
	m = mksig(pk, "v=1; a=rsa-sha256; d=example.com; s=strict; "
	    "i=joe@sub.example.com; h=from:to:subject", base_msg, 0, 0, -1, h3, 3);
	expect(m, DKIM_PERMERROR, "key t=s: i= subdomain of d=");
	free(m);
	m = mksig(pk, "v=1; a=rsa-sha256; d=example.com; s=test; "
	    "i=@sub.example.com; h=from:to:subject", base_msg, 0, 0, -1, h3, 3);
	expect(m, DKIM_PASS, NULL);
	free(m);
	m = mksig(pk, "v=1; a=rsa-sha256; d=example.com; s=test; "
	    "i=joe@example.net; h=from:to:subject", base_msg, 0, 0, -1, h3, 3);
	expect(m, DKIM_PERMERROR, "i= not within d=");
	free(m);
	m = mksig(pk, "v=1; a=rsa-sha256; d=example.com; s=test; "
	    "i=joe@badexample.com; h=from:to:subject", base_msg, 0, 0, -1, h3, 3);
	expect(m, DKIM_PERMERROR, "i= not within d=");
	free(m);

	/* From must be signed */
	m = mksig(pk, "v=1; a=rsa-sha256; d=example.com; s=test; "
	    "h=to:subject", base_msg, 0, 0, -1, h_nofrom, 2);
	expect(m, DKIM_POLICY, "From not signed");
	free(m);

	/* times */
	m = mksig(pk, "v=1; a=rsa-sha256; d=example.com; s=test; t=1500000000; "
	    "x=1500000100; h=from:to:subject", base_msg, 0, 0, -1, h3, 3);
	expect(m, DKIM_PERMERROR, "signature expired");
	free(m);
	m = mksig(pk, "v=1; a=rsa-sha256; d=example.com; s=test; t=1600000100; "
	    "x=1600000050; h=from:to:subject", base_msg, 0, 0, -1, h3, 3);
	expect(m, DKIM_PERMERROR, "x= before t=");
	free(m);
	m = mksig(pk, "v=1; a=rsa-sha256; d=example.com; s=test; t=1600000100; "
	    "x=1700000000; h=from:to:subject", base_msg, 0, 0, -1, h3, 3);
	expect(m, DKIM_PASS, NULL);	/* within the clock skew */
	free(m);
	m = mksig(pk, "v=1; a=rsa-sha256; d=example.com; s=test; t=1700000000; "
	    "h=from:to:subject", base_msg, 0, 0, -1, h3, 3);
	expect(m, DKIM_PERMERROR, "t= in the future");
	free(m);

	/* rsa-sha1 never passes (RFC 8301) */
	m = mksig(pk, "v=1; a=rsa-sha1; d=example.com; s=test; "
	    "h=from:to:subject", base_msg, 0, 0, -1, h3, 3);
	assert_int_not_equal(result1(m, &r), DKIM_PASS);
	assert_int_equal(r->result, DKIM_NEUTRAL);
	free(m);

	/* a 512-bit key never passes (RFC 8301 3.2) */
	small = EVP_RSA_gen(512);
	assert_non_null(small);
	key_add("small._domainkey.example.com",
	    rsa_txt(small, "v=DKIM1; k=rsa; p="), DNS_OK);
	m = mksig(small, "v=1; a=rsa-sha256; d=example.com; s=small; "
	    "h=from:to:subject", base_msg, 0, 0, -1, h3, 3);
	expect(m, DKIM_POLICY, "RSA key shorter than 1024 bits");
	free(m);
	EVP_PKEY_free(small);
	result1(NULL, &r);
}

/* Syntax errors in the signature field: permerror each. */
static void
test_sig_syntax(void **state)
{
	static const char *bad[] = {
		"v=1; a=rsa-sha256; d=example.com; s=test; h=from; bh=AAAA",
		"v=2; a=rsa-sha256; d=example.com; s=test; h=from; bh=x; b=x",
		"v=1; a=rsa-sha512; d=example.com; s=test; h=from; "
		    "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA",
		"v=1; a=rsa-sha256; c=fancy; d=example.com; s=test; h=from; "
		    "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA",
		"v=1; a=rsa-sha256; c=simple/; d=example.com; s=test; h=from; "
		    "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA",
		"v=1; a=rsa-sha256; q=http; d=example.com; s=test; h=from; "
		    "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA",
		"v=1; a=rsa-sha256; d=exa mple.com; s=test; h=from; "
		    "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA",
		"v=1; a=rsa-sha256; d=example.com; s=test; h=from; l=12a; "
		    "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA",
		"v=1; a=rsa-sha256; d=example.com; s=test; h=from; t=-1; "
		    "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA",
		"v=1; a=rsa-sha256; d=example.com; s=test; h=from; x=9999999999999999999; "
		    "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA",
		"v=1; a=rsa-sha256; d=example.com; s=test; h=from; "
		    "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSu; b=AAAA",
		"v=1; a=rsa-sha256; d=example.com; s=test; h=from; "
		    "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=A!AA",
		"v=1; a=rsa-sha256; d=example.com; s=test; h=from::to; "
		    "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA",
		"v=1; a=rsa-sha256; d=example.com; s=test; h=from; h=to; "
		    "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA",
		"v=1; a=rsa-sha256; d=example.com; s=test; i=joe; h=from; "
		    "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA",
		"v=1 a=rsa-sha256",
	};
	const struct dkim_sig_result *r;
	struct buf m = { 0 };
	size_t i;

	for (i = 0; i < NELEM(bad); i++) {
		buf_reset(&m);
		buf_appendf(&m, "DKIM-Signature: %s\r\nFrom: a@example.com\r\n"
		    "\r\nbody\r\n", bad[i]);
		if (result1(m.data, &r) != DKIM_PERMERROR)
			fail_msg("#%zu: %s (%s)", i, dkim_result_name(r->result),
			    r->reason);
	}
	/* no signature: no results */
	{
		struct dkim_verify *v = run(base_msg, strlen(base_msg), 0);

		assert_int_equal(dkim_verify_count(v), 0);
		assert_null(dkim_verify_next_query(v));
		dkim_verify_free(v);
	}
	result1(NULL, &r);
	buf_free(&m);
}

static void
test_max_signatures(void **state)
{
	EVP_PKEY *pk = rsa_key();
	struct dkim_verify *v;
	struct buf m = { 0 };
	char *one;
	size_t i;
	const char *name;
	struct dkim_verify_params p = { NOW, 3 };

	if (pk == NULL)
		skip();
	key_add("test._domainkey.example.com", rsa_txt(pk, "p="), DNS_OK);
	one = mksig(pk, "v=1; a=rsa-sha256; d=example.com; s=test; "
	    "h=from:to:subject", base_msg, 0, 0, -1, h3, 3);
	/* the same signature five times above the message */
	for (i = 0; i < 5; i++)
		buf_append(&m, one, strstr(one, "From:") - one);
	buf_appends(&m, base_msg);
	v = run(m.data, m.len, 3);
	assert_int_equal(dkim_verify_count(v), 5);
	for (i = 0; i < 3; i++)
		assert_int_equal(dkim_verify_result(v, i)->result, DKIM_PASS);
	for (; i < 5; i++)
		assert_int_equal(dkim_verify_result(v, i)->result, DKIM_NONE);
	dkim_verify_free(v);

	/* the key is asked once, as soon as the field is complete */
	v = dkim_verify_new(&p);
	i = strstr(one, "From:") - one;
	assert_int_equal(dkim_verify_feed(v, one, i), 0);
	assert_null(dkim_verify_next_query(v));
	assert_int_equal(dkim_verify_feed(v, one + i, 1), 0);
	name = dkim_verify_next_query(v);
	assert_non_null(name);
	assert_string_equal(name, "test._domainkey.example.com");
	assert_null(dkim_verify_next_query(v));
	assert_false(dkim_verify_done(v));
	dkim_verify_free(v);
	buf_free(&m);
	free(one);
}

static void
test_keygen(void **state)
{
	static const char *types[] = { "ed25519", "rsa" };
	struct dkim_sign_params sp = { 0 };
	struct buf txt = { 0 }, out = { 0 };
	struct dkim_key *k;
	char path[64], err[128];
	size_t i;

	for (i = 0; i < NELEM(types); i++) {
		snprintf(path, sizeof(path), "/tmp/test_dkim.%d.%zu.pem",
		    (int)getpid(), i);
		buf_reset(&txt);
		assert_int_equal(dkim_keygen(types[i], i ? 1024 : 0, path,
		    &txt, err, sizeof(err)), 0);
		/* never overwrites */
		assert_int_equal(dkim_keygen(types[i], 0, path, &out, err,
		    sizeof(err)), -1);
		k = dkim_key_load(path, err, sizeof(err));
		assert_non_null(k);
		unlink(path);
		nkeys = 0;
		key_add("gen._domainkey.example.org", txt.data, DNS_OK);
		sp.domain = "example.org";
		sp.selector = "gen";
		sp.key = k;
		sp.t = NOW;
		assert_int_equal(sign_verify(&sp, base_msg, strlen(base_msg),
		    &out), DKIM_PASS);
		dkim_key_free(k);
	}
	assert_int_equal(dkim_keygen("rsa", 512, "/tmp/x", &txt, err,
	    sizeof(err)), -1);
	assert_int_equal(dkim_keygen("dsa", 0, "/tmp/x", &txt, err,
	    sizeof(err)), -1);
	/* a 512-bit key file is refused */
	{
		EVP_PKEY *small = EVP_RSA_gen(512);
		FILE *fp;

		snprintf(path, sizeof(path), "/tmp/test_dkim.%d.small",
		    (int)getpid());
		fp = fopen(path, "w");
		PEM_write_PrivateKey(fp, small, NULL, NULL, 0, NULL, NULL);
		fclose(fp);
		assert_null(dkim_key_load(path, err, sizeof(err)));
		unlink(path);
		EVP_PKEY_free(small);
	}
	buf_free(&txt);
	buf_free(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tags),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_canon),
		cmocka_unit_test(test_canon_random),
		cmocka_unit_test(test_keycache),
		cmocka_unit_test_setup(test_rfc8463, setup_keys),
		cmocka_unit_test_setup(test_dkimpy_signed, setup_keys),
		cmocka_unit_test_setup(test_dkimpy_roundtrip, setup_keys),
		cmocka_unit_test_setup(test_tampering, setup_keys),
		cmocka_unit_test_setup(test_sig_syntax, setup_keys),
		cmocka_unit_test_setup(test_max_signatures, setup_keys),
		cmocka_unit_test_setup(test_keygen, setup_keys),
	};
	int r;

	srand(6376);
	r = cmocka_run_group_tests(tests, NULL, NULL);
	EVP_PKEY_free(test_rsa);
	free_records();
	return r;
}
