/*
 * libFuzzer target for report/import*.c: the bytes as `mxgate report
 * import` reads a file (XML, gzip, zip or a report mail, sniffed).
 * The callback reads every field of every report. Checks: the result is
 * -1 or 0 with an error message naming the input, or the number of
 * reports handed over; strings are present, valid UTF-8 from XML and
 * result words in lower case; the limits of import.h hold; source_ip is
 * an address in the form we print it.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "report/import.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* RFC 3629: valid UTF-8 */
static size_t
touch(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, k, n;

	CHECK(s != NULL);
	n = strlen(s);
	while (i < n) {
		unsigned c = u[i];

		k = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 :
		    c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
		CHECK(k > 0 && i + k <= n);
		if (k > 1) {
			CHECK((u[i + 1] & 0xc0) == 0x80);
			CHECK(!(c == 0xe0 && u[i + 1] < 0xa0));
			CHECK(!(c == 0xed && u[i + 1] > 0x9f));
			CHECK(!(c == 0xf0 && u[i + 1] < 0x90));
			CHECK(!(c == 0xf4 && u[i + 1] > 0x8f));
		}
		if (k > 2)
			CHECK((u[i + 2] & 0xc0) == 0x80);
		if (k > 3)
			CHECK((u[i + 3] & 0xc0) == 0x80);
		i += k;
	}
	return n;
}

/* No ASCII upper case in a word we fold. */
static void
word(const char *s)
{
	touch(s);
	for (; *s != '\0'; s++)
		CHECK(!(*s >= 'A' && *s <= 'Z'));
}

static int
on_report(const struct report_parsed *r, void *arg)
{
	const struct report_meta *m = &r->meta;
	const struct report_policy *p = &r->policy;
	unsigned char a[16];
	char back[INET6_ADDRSTRLEN];
	size_t i, k;
	int *n = arg;

	(*n)++;
	CHECK(strcmp(r->format, "rfc9990") == 0 ||
	    strcmp(r->format, "rfc7489") == 0);
	CHECK(touch(r->container) > 0);
	CHECK(touch(m->org_name) > 0 && touch(m->report_id) > 0);
	touch(m->email);
	touch(m->extra_contact_info);
	touch(m->errors);
	touch(m->generator);
	CHECK(m->begin >= 0 && m->end >= 0);
	CHECK(touch(p->domain) > 0);
	word(p->domain);
	word(p->discovery_method);
	word(p->p);
	word(p->sp);
	word(p->np);
	word(p->fo);
	CHECK(touch(p->adkim) > 0 && touch(p->aspf) > 0);
	word(p->adkim);
	word(p->aspf);
	CHECK(touch(p->testing) > 0);
	word(p->testing);
	CHECK(*p->rua == '\0' && p->ri == 0);
	CHECK(r->nrows <= REPORT_IMPORT_MAX_RECORDS);
	CHECK(r->nrows == 0 || r->rows != NULL);
	for (i = 0; i < r->nrows; i++) {
		const struct report_row *w = &r->rows[i];
		int af = strchr(w->source_ip, ':') ? AF_INET6 : AF_INET;

		CHECK(inet_pton(af, w->source_ip, a) == 1);
		CHECK(inet_ntop(af, a, back, sizeof(back)) != NULL);
		CHECK(strcmp(back, w->source_ip) == 0);
		CHECK(w->count >= 0 && w->time == 0);
		word(w->disposition);
		CHECK(w->dkim_aligned == 0 || w->dkim_aligned == 1);
		CHECK(w->spf_aligned == 0 || w->spf_aligned == 1);
		CHECK(w->nreasons <= REPORT_MAX_REASONS);
		for (k = 0; k < w->nreasons; k++) {
			CHECK(touch(w->reasons[k].type) > 0);
			word(w->reasons[k].type);
			touch(w->reasons[k].comment);
		}
		word(w->header_from);
		word(w->envelope_from);
		word(w->envelope_to);
		CHECK(w->ndkim <= REPORT_MAX_DKIM);
		for (k = 0; k < w->ndkim; k++) {
			word(w->dkim[k].domain);
			touch(w->dkim[k].selector);
			word(w->dkim[k].result);
			touch(w->dkim[k].human_result);
		}
		word(w->spf_domain);
		word(w->spf_scope);
		word(w->spf_result);
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	int n = 0, rc;

	memset(err, 'x', sizeof(err));
	rc = report_import(data, size, "fuzz", on_report, &n, err, sizeof(err));
	CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	if (rc <= 0) {
		CHECK(rc == 0 || rc == -1);
		CHECK(strncmp(err, "fuzz: ", 6) == 0);
	}
	if (rc >= 0)
		CHECK(rc == n);
	CHECK(rc != 0 || n == 0);
	return 0;
}
