/*
 * DKIM verifications per second (RSA-2048 and Ed25519), body-hash
 * throughput, and dual signing (RSA-2048 + Ed25519, as [dkim sign] does
 * for outbound mail) next to the bare OpenSSL signatures it needs, timed
 * in the same process: a benchmark, not a test. Keys are made fresh; the
 * key "DNS answer" is built in memory so only DKIM work is measured.
 * Usage: bench_dkim DIR [SECONDS]   (tests/bench/dkim.sh runs it)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "auth/dkim.h"
#include "auth/dkim_int.h"
#include "lib/buf.h"
#include "lib/dns.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
make_message(struct buf *m, size_t body)
{
	buf_appends(m, "From: Alice <alice@bench.test>\r\nTo: bob@example.test\r\n"
	    "Subject: bench\r\nDate: Sun, 29 Nov 2026 12:00:00 +0000\r\n"
	    "Message-ID: <b@bench.test>\r\n\r\n");
	while (body > 0) {
		static const char line[] = "Lorem ipsum dolor sit amet, consectetur "
		    "adipiscing elit, sed do eiusmod tempor incididunt ut labore\r\n";
		size_t n = sizeof(line) - 1 < body ? sizeof(line) - 1 : body;

		buf_append(m, line, n);
		body -= n;
	}
	if (m->len < 2 || memcmp(m->data + m->len - 2, "\r\n", 2) != 0)
		buf_appends(m, "\r\n");
}

/* Verify `signed` repeatedly for `secs`; returns verifications per second. */
static double
verify_rate(const struct buf *signed_msg, const char *txt, double secs,
    long *n_r, int *ok_r)
{
	struct dns_rr rr;
	struct dns_answer a;
	double t0 = now(), t;
	long n = 0;

	memset(&rr, 0, sizeof(rr));
	rr.text = (char *)txt;
	rr.len = strlen(txt);
	*ok_r = 1;
	do {
		struct dkim_verify_params p = { 0, 0 };
		struct dkim_verify *v = dkim_verify_new(&p);
		const char *name;

		dkim_verify_feed(v, signed_msg->data, signed_msg->len);
		dkim_verify_end(v);
		while ((name = dkim_verify_next_query(v)) != NULL) {
			memset(&a, 0, sizeof(a));
			a.status = DNS_OK;
			a.type = DNS_T_TXT;
			a.name = name;
			a.rr = &rr;
			a.n = 1;
			a.ttl = 300;
			dkim_verify_answer(v, name, &a);
		}
		if (!dkim_verify_done(v) || dkim_verify_count(v) != 1 ||
		    dkim_verify_result(v, 0)->result != DKIM_PASS)
			*ok_r = 0;
		dkim_verify_free(v);
		n++;
		t = now() - t0;
	} while (t < secs);
	*n_r = n;
	return n / t;
}

static int
bench(const char *dir, const char *type, size_t body, double secs)
{
	struct dkim_sign_params sp;
	struct dkim_key *k;
	struct buf txt = { 0 }, msg = { 0 }, sig = { 0 }, signed_msg = { 0 };
	char path[512], err[256];
	long n;
	int ok;
	double rate;

	snprintf(path, sizeof(path), "%s/%s-%zu.pem", dir, type, body);
	if (dkim_keygen(type, 2048, path, &txt, err, sizeof(err)) == -1 ||
	    (k = dkim_key_load(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s: %s\n", type, err);
		return -1;
	}
	make_message(&msg, body);
	memset(&sp, 0, sizeof(sp));
	sp.domain = "bench.test";
	sp.selector = "s";
	sp.key = k;
	if (dkim_sign(&sp, msg.data, msg.len, &sig, err, sizeof(err)) == -1) {
		fprintf(stderr, "sign: %s\n", err);
		return -1;
	}
	buf_append(&signed_msg, sig.data, sig.len);
	buf_append(&signed_msg, msg.data, msg.len);
	rate = verify_rate(&signed_msg, txt.data, secs, &n, &ok);
	printf("dkim verify %-14s message %8zu octets: %8.0f/s  %7.1f MB/s "
	    "(%ld runs%s)\n", dkim_key_algorithm(k), signed_msg.len, rate,
	    rate * signed_msg.len / 1e6, n, ok ? "" : ", NOT ALL PASSED");
	dkim_key_free(k);
	buf_free(&txt);
	buf_free(&msg);
	buf_free(&sig);
	buf_free(&signed_msg);
	return ok ? 0 : -1;
}

/* One bare signature over a SHA-256 digest with the key's own algorithm
 * (what DKIM needs at the least per signature). */
static int
raw_sign(EVP_PKEY *pk, int ed)
{
	static const unsigned char dig[32] = { 1, 2, 3 };
	unsigned char sig[512];
	size_t len = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok;

	ok = md != NULL &&
	    EVP_DigestSignInit(md, NULL, ed ? NULL : EVP_sha256(), NULL, pk) == 1 &&
	    EVP_DigestSign(md, sig, &len, dig, sizeof(dig)) == 1;
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

/*
 * Dual signing of a message of `body` octets through the signer outbound
 * mail uses (feed, then both keys at the end), against the two bare
 * OpenSSL signatures alone: the ratio is signing throughput within what
 * OpenSSL allows for the key mix (issue 10: at least 0.8).
 */
static int
bench_dual_sign(const char *dir, size_t body, double secs)
{
	struct dkim_sign_params sp[2];
	struct dkim_key *k[2];
	struct buf txt = { 0 }, msg = { 0 }, out = { 0 };
	const char *types[2] = { "rsa", "ed25519" };
	char path[512], err[256];
	double t0, t, ours, bare;
	long n;
	int i;

	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/dual-%s-%zu.pem", dir, types[i], body);
		buf_reset(&txt);
		if (dkim_keygen(types[i], 2048, path, &txt, err, sizeof(err)) == -1 ||
		    (k[i] = dkim_key_load(path, err, sizeof(err))) == NULL) {
			fprintf(stderr, "%s: %s\n", types[i], err);
			return -1;
		}
		memset(&sp[i], 0, sizeof(sp[i]));
		sp[i].domain = "bench.test";
		sp[i].selector = types[i];
		sp[i].key = k[i];
		sp[i].oversign = 1;
	}
	make_message(&msg, body);
	t0 = now();
	n = 0;
	do {
		struct dkim_signer *sg = dkim_signer_new();

		buf_reset(&out);
		if (sg == NULL || dkim_signer_feed(sg, msg.data, msg.len) == -1 ||
		    dkim_signer_end(sg, sp, 2, &out, err, sizeof(err)) == -1) {
			fprintf(stderr, "dual sign: %s\n", err);
			return -1;
		}
		dkim_signer_free(sg);
		n++;
		t = now() - t0;
	} while (t < secs);
	ours = n / t;
	t0 = now();
	n = 0;
	do {
		if (raw_sign(dkim_key_pkey(k[0]), 0) == -1 ||
		    raw_sign(dkim_key_pkey(k[1]), 1) == -1) {
			fprintf(stderr, "openssl sign failed\n");
			return -1;
		}
		n++;
		t = now() - t0;
	} while (t < secs);
	bare = n / t;
	printf("dkim dual sign rsa-sha256+ed25519-sha256 message %8zu octets: "
	    "%8.0f/s; bare OpenSSL signatures for the pair: %8.0f/s; "
	    "ratio %.2f\n", msg.len, ours, bare, ours / bare);
	for (i = 0; i < 2; i++)
		dkim_key_free(k[i]);
	buf_free(&txt);
	buf_free(&msg);
	buf_free(&out);
	return 0;
}

int
main(int argc, char **argv)
{
	double secs = argc > 2 ? atof(argv[2]) : 3;

	if (argc < 2) {
		fprintf(stderr, "usage: bench_dkim DIR [SECONDS]\n");
		return 2;
	}
	if (bench(argv[1], "rsa", 4000, secs) == -1 ||
	    bench(argv[1], "ed25519", 4000, secs) == -1 ||
	    bench(argv[1], "ed25519", 10 * 1024 * 1024, secs) == -1 ||
	    bench_dual_sign(argv[1], 4000, secs) == -1 ||
	    bench_dual_sign(argv[1], 40000, secs) == -1)
		return 1;
	return 0;
}
