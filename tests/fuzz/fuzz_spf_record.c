/*
 * libFuzzer target for auth/spf_record.c and the engine of auth/spf.c.
 * The first octet holds flags; the rest is record text. The text is
 * parsed, then a whole check runs with it as the domain's TXT record and
 * every other question answered from the flags and the data (the record
 * again, NXDOMAIN, timeouts, addresses, names). Checks that the check
 * ends within its bounds and that nothing unsafe reaches the outputs.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "auth/spf.h"
#include "auth/spf_int.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_printable(const char *s, int nl_ok)
{
	for (; *s != '\0'; s++)
		CHECK(((unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f) ||
		    (nl_ok && *s == '\n'));
}

static void
answer(struct spf *s, const char *name, enum dns_type type,
    const uint8_t *data, size_t size, const char *text, size_t len,
    unsigned flags, unsigned q)
{
	static char names[3][32] = { "example.com", "mail.example.com",
	    "x.example.org" };
	struct dns_rr rr[12];
	struct dns_answer a = { 0 };
	uint8_t b = size > 0 ? data[q % size] : 0;
	size_t i;

	memset(rr, 0, sizeof(rr));
	a.name = name;
	a.type = type;
	a.rr = rr;
	if ((flags & 1) || (b & 7) == 0) {
		a.status = (b & 8) ? DNS_NXDOMAIN : DNS_NODATA;
	} else if ((b & 7) == 1) {
		a.status = (b & 8) ? DNS_TIMEOUT : DNS_SERVFAIL;
	} else {
		a.status = DNS_OK;
		switch (type) {
		case DNS_T_TXT:
			rr[0].text = (char *)text;
			rr[0].len = len;
			a.n = 1;
			break;
		case DNS_T_A:
		case DNS_T_AAAA:
			a.n = (size_t)(b >> 4) % 4 + 1;
			for (i = 0; i < a.n; i++) {
				rr[i].family = type == DNS_T_A ? AF_INET :
				    AF_INET6;
				memcpy(rr[i].addr, "\xc0\x00\x02\x01\x20\x01"
				    "\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x01",
				    16);
				rr[i].addr[i % 16] ^= data[(q + i) % size];
			}
			break;
		default:
			a.n = (size_t)(b >> 4) % 12;
			for (i = 0; i < a.n; i++) {
				rr[i].text = names[i % 3];
				rr[i].len = strlen(names[i % 3]);
			}
			break;
		}
	}
	spf_answer(s, &a);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spf_params p = { 0 };
	struct spf_record *r = NULL;
	struct spf *s;
	const char *err, *name;
	enum dns_type type;
	char *text, hdr[4096];
	unsigned flags, q = 0;
	size_t len;

	if (size < 1)
		return 0;
	flags = data[0];
	data++;
	size--;
	/* half the inputs get the version for free */
	len = size + ((flags & 2) ? 7 : 0);
	if ((text = malloc(len + 1)) == NULL)
		return 0;
	if (flags & 2)
		memcpy(text, "v=spf1 ", 7);
	memcpy(text + len - size, data, size);
	text[len] = '\0';

	if (spf_record_parse(text, len, &r, &err) == 0) {
		size_t i;

		CHECK(r->nterms <= len);
		for (i = 0; i < r->nterms; i++) {
			CHECK(r->terms[i].cidr4 <= 32);
			CHECK(r->terms[i].cidr6 <= 128);
			CHECK(strchr("+-~?", r->terms[i].qual) != NULL);
		}
		spf_record_free(r);
	} else {
		CHECK(err != NULL && r == NULL);
	}

	p.identity = (flags & 4) ? SPF_ID_HELO : SPF_ID_MAILFROM;
	p.ip = (flags & 8) ? "2001:db8::1" : "192.0.2.1";
	p.sender = (flags & 16) ? "" : "user@example.com";
	p.helo = "mail.example.com";
	p.receiver = "mx.receiver.example";
	p.now = 1;
	if ((s = spf_new(&p)) == NULL)
		goto out;
	while (spf_step(s, &name, &type) == SPF_NEED_DNS) {
		/* the engine's own bound on questions */
		CHECK(++q <= 150);
		CHECK(strlen(name) <= 253);
		if ((flags & 32) && q == 40) {
			spf_abort(s, "budget");
			continue;
		}
		answer(s, name, type, data, size, text, len,
		    q > 1 ? flags & 1 : 0, q);
	}
	CHECK(spf_result(s) <= SPF_PERMERROR);
	CHECK((spf_explanation(s)[0] != '\0') == (spf_result(s) == SPF_FAIL));
	check_printable(spf_explanation(s), 0);
	check_printable(spf_reason(s), 0);
	check_printable(spf_trace(s), 1);
	if (spf_received_header(s, NULL, hdr, sizeof(hdr)) == 0)
		check_printable(hdr, 0);
	spf_free(s);
out:
	free(text);
	return 0;
}
