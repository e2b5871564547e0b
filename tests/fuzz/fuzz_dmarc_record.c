/*
 * libFuzzer target for auth/dmarc_record.c, the engine of auth/dmarc.c
 * and the A-label conversion of auth/orgdomain.c. The first octet holds
 * flags; the rest is text. The text is parsed as a record (checking what
 * the header promises), converted as a domain name, then a whole
 * evaluation runs in which every _dmarc question may be answered with the
 * text, other records, nothing or a failure, chosen by the data; with
 * flag 0x40 the text is the author domain itself. Checks the question
 * bound, termination and the outcome's invariants.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "auth/dmarc.h"
#include "auth/orgdomain.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const authors[] = {
	"example.com", "a.b.example.com", "a.b.c.d.e.f.g.h.i.j.mail.example.com",
	"giant.bank.example", "x.y.z.w.v.u.t.s.example.co.uk",
};
static const char *const others[] = {
	"v=DMARC1; p=reject", "v=DMARC1; p=none; psd=y", "v=DMARC1; psd=n",
	"v=DMARC1; p=quarantine; sp=reject; np=none; adkim=s; aspf=s",
	"v=DMARC1; p=bogus", "v=DMARC1; p=reject; t=y; pct=0",
};
static const char *const idents[] = {
	"example.com", "mail.example.com", "b.example.com", "example.net",
	"giant.bank.example", "mega.bank.example", "a.b.c.d.e.f.g.h.example.com",
};

static struct orgdomain_psl *psl;
static int psl_tried;

static void
check_printable(const char *s)
{
	for (; *s != '\0'; s++)
		CHECK((unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f);
}

static void
check_record(const struct dmarc_record *r, const char *buf, size_t nbuf)
{
	const char *s[4] = { r->rua, r->ruf, r->fo, r->rf };
	size_t i;

	CHECK(r->p <= DMARC_P_REJECT && r->sp <= DMARC_P_REJECT &&
	    r->np <= DMARC_P_REJECT);
	CHECK(r->adkim <= DMARC_ALIGN_STRICT && r->aspf <= DMARC_ALIGN_STRICT);
	CHECK(r->psd >= -1 && r->psd <= 1);
	CHECK(r->testing == 0 || r->testing == 1);
	CHECK(r->pct >= -1 && r->pct <= 100);
	CHECK(r->ri >= -1);
	for (i = 0; i < 4; i++) {
		CHECK(s[i] != NULL);
		if (*s[i] != '\0')
			CHECK(s[i] >= buf && s[i] + strlen(s[i]) < buf + nbuf);
		CHECK(memchr(s[i], ';', strlen(s[i])) == NULL);
	}
}

static void
answer(struct dmarc *d, const char *name, enum dns_type type,
    const char *text, size_t len, uint8_t b)
{
	struct dns_rr rr[3];
	struct dns_answer a = { 0 };

	memset(rr, 0, sizeof(rr));
	a.name = name;
	a.type = type;
	a.rr = rr;
	switch (b & 7) {
	case 0:
		a.status = DNS_NXDOMAIN;
		break;
	case 1:
		a.status = (b & 8) ? DNS_TIMEOUT : DNS_SERVFAIL;
		break;
	case 2:
		a.status = DNS_NODATA;
		break;
	case 3:
	case 4:
		/* the text, alone or with another record */
		a.status = DNS_OK;
		rr[a.n].text = (char *)text;
		rr[a.n++].len = len;
		if (b & 4) {
			rr[a.n].text = (char *)others[(b >> 3) % 6];
			rr[a.n].len = strlen(rr[a.n].text);
			a.n++;
		}
		break;
	default:
		a.status = DNS_OK;
		rr[0].text = (char *)others[(b >> 3) % 6];
		rr[0].len = strlen(rr[0].text);
		rr[0].family = AF_INET;
		a.n = 1;
		break;
	}
	dmarc_answer(d, name, type, &a);
}

static void
evaluate(const uint8_t *data, size_t size, unsigned flags, const char *text,
    size_t len)
{
	struct dmarc_dkim_input dk[4];
	struct dmarc_params p;
	const struct dmarc_outcome *o;
	struct dmarc *d;
	const char *name, *names[DMARC_MAX_QUESTIONS];
	enum dns_type type, types[DMARC_MAX_QUESTIONS];
	size_t i, n, asked = 0, rounds = 0;
	uint8_t b;

	memset(&p, 0, sizeof(p));
	memset(dk, 0, sizeof(dk));
	b = size > 0 ? data[size - 1] : 0;
	p.discovery = (flags & 0x80) && psl != NULL ? DMARC_DISCOVERY_PSL :
	    DMARC_DISCOVERY_TREEWALK;
	p.psl = psl;
	p.author_domain = (flags & 0x40) ? text : authors[b % 5];
	p.from_problem = (flags & 0x3f) == 0x3f ? "no From field" : NULL;
	p.spf_result = (enum spf_result)((b >> 3) % (SPF_PERMERROR + 1));
	p.spf_domain = idents[(b >> 2) % 7];
	for (i = 0; i < 4; i++) {
		uint8_t c = size > i ? data[i] : 0;

		dk[i].domain = (c & 0x80) ? text : idents[c % 7];
		dk[i].result = (enum dkim_result)((c >> 3) % 7);
		dk[i].body_partial = (c >> 6) & 1;
	}
	p.dkim = dk;
	p.ndkim = flags & 3;
	p.dkim_partial_counts = (flags >> 2) & 1;
	if ((d = dmarc_new(&p)) == NULL)
		return;
	while (!dmarc_done(d)) {
		for (n = 0; (name = dmarc_next_query(d, &type)) != NULL; n++) {
			CHECK(++asked <= DMARC_MAX_QUESTIONS);
			CHECK(strlen(name) <= 253);
			names[n] = name;
			types[n] = type;
		}
		/* every question is answered: not done and nothing to ask
		 * would be a stall */
		CHECK(n > 0);
		if ((flags & 0x20) && rounds == 3) {
			dmarc_abort(d, "budget");
			break;
		}
		for (i = 0; i < n; i++)
			answer(d, names[i], types[i], text, len,
			    size > 0 ? data[(asked + i) % size] : 0);
		CHECK(++rounds <= DMARC_MAX_QUESTIONS + 1);
	}
	CHECK(dmarc_done(d));
	CHECK(dmarc_next_query(d, &type) == NULL);
	o = dmarc_outcome(d);
	CHECK(o->result <= DMARC_PERMERROR);
	check_printable(o->reason);
	check_printable(o->author_domain);
	check_printable(o->policy_domain);
	check_printable(o->org_domain);
	CHECK(o->requested >= DMARC_P_NONE && o->requested <= DMARC_P_REJECT);
	CHECK(o->effective >= DMARC_P_NONE && o->effective <= o->requested);
	CHECK(o->result != DMARC_PASS || o->spf_aligned || o->dkim_aligned);
	CHECK(!o->uncertain || o->result == DMARC_FAIL);
	CHECK(o->result != DMARC_NONE || o->record == NULL);
	CHECK((o->result != DMARC_PASS && o->result != DMARC_FAIL) ||
	    o->record != NULL);
	CHECK(o->record == NULL || *o->policy_domain != '\0');
	dmarc_free(d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dmarc_record r;
	char *text, *buf, ascii[256];
	unsigned flags;
	size_t len, nbuf, i;
	int rc;

	if (!psl_tried) {
		char err[128];

		psl_tried = 1;
		psl = orgdomain_psl_load(NULL, err, sizeof(err));
	}
	if (size < 1)
		return 0;
	flags = data[0];
	data++;
	size--;
	/* a third of the inputs get the version for free */
	len = size + ((flags % 3) == 0 ? 10 : 0);
	nbuf = (flags & 0x10) ? len / 2 : len + 4;
	if ((text = malloc(len + 1)) == NULL ||
	    (buf = malloc(nbuf + 1)) == NULL) {
		free(text);
		return 0;
	}
	if ((flags % 3) == 0)
		memcpy(text, "v=DMARC1; ", 10);
	memcpy(text + len - size, data, size);
	text[len] = '\0';

	rc = dmarc_record_parse(text, len, &r, buf, nbuf);
	CHECK(rc == 0 || rc == -1 || rc == -2);
	if (rc != -1)
		check_record(&r, buf, nbuf);
	if (rc == 0 && memchr(text, '\0', len) != NULL)
		__builtin_trap();

	/* the A-label conversion (text up to its first NUL) */
	if (orgdomain_ascii(text, ascii, sizeof(ascii)) == 0) {
		CHECK(ascii[0] != '\0' && strlen(ascii) <= 253);
		CHECK(ascii[0] != '.' && strstr(ascii, "..") == NULL);
		for (i = 0; ascii[i] != '\0'; i++)
			CHECK((ascii[i] >= 'a' && ascii[i] <= 'z') ||
			    (ascii[i] >= '0' && ascii[i] <= '9') ||
			    ascii[i] == '-' || ascii[i] == '_' ||
			    ascii[i] == '.');
		CHECK(dmarc_aligned(text, ascii, NULL, NULL,
		    DMARC_ALIGN_STRICT) == dmarc_aligned(ascii, text, NULL,
		    NULL, DMARC_ALIGN_STRICT));
	}

	evaluate(data, size, flags, text, len);
	free(buf);
	free(text);
	return 0;
}
