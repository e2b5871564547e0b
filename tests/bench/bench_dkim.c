/*
 * DKIM verifications per second (RSA-2048 and Ed25519) and body-hash
 * throughput: a benchmark, not a test. Keys are made fresh; the key
 * "DNS answer" is built in memory so only DKIM work is measured.
 * Usage: bench_dkim DIR [SECONDS]   (tests/bench/dkim.sh runs it)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/dkim.h"
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
	    bench(argv[1], "ed25519", 10 * 1024 * 1024, secs) == -1)
		return 1;
	return 0;
}
