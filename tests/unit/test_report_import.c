/*
 * Tests for report/import.c: real reports from ../shared/conformance/
 * (parsedmarc's samples, Mail::DMARC's fixtures), every container (XML,
 * gzip, zip, mail), lenient value handling, and hostile input (bombs,
 * DTDs, nesting, truncation, limits), each refused with a clear error.
 *
 * A report is compared through a dump: one "key=value" line per field,
 * rows as "rowN.field", so expectations are data.
 *
 * Decided outcomes for parsedmarc's malformed samples:
 *   - invalid_xml.xml is recovered (libxml2 recovery after the strict
 *     parse fails): values as recovered, header_from "bad";
 *   - invalid_utf_8.xml is recovered too; the bad octet becomes U+FFFD;
 *   - empty.xml is an error ("empty input").
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zip.h>
#include <zlib.h>

#include "lib/buf.h"
#include "report/import.h"

#define CONF		"../shared/conformance/"
#define PD		CONF "parsedmarc-samples/"
#define AGG		PD "aggregate/"
#define PERL		CONF "mail-dmarc-perl/"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define MAXREP	20

struct got {
	int n;				/* callbacks */
	int stop_at;			/* return 7 from this callback (1-based) */
	char *dump[MAXREP];
	char container[MAXREP][32];
};

static void
got_free(struct got *g)
{
	int i;

	for (i = 0; i < MAXREP; i++)
		free(g->dump[i]);
	memset(g, 0, sizeof(*g));
}

/* Every field, in a fixed order; the container apart (not compared). */
static int
dump_cb(const struct report_parsed *r, void *arg)
{
	struct got *g = arg;
	const struct report_meta *m = &r->meta;
	const struct report_policy *p = &r->policy;
	struct buf b = { 0 };
	long long sum = 0;
	size_t i, k;

	for (i = 0; i < r->nrows; i++)
		sum += r->rows[i].count;
	buf_appendf(&b, "\nformat=%s\nmeta.org_name=%s\nmeta.email=%s\n"
	    "meta.extra_contact_info=%s\nmeta.report_id=%s\nmeta.begin=%lld\n"
	    "meta.end=%lld\nmeta.errors=%s\nmeta.generator=%s\n",
	    r->format, m->org_name, m->email, m->extra_contact_info,
	    m->report_id, m->begin, m->end, m->errors, m->generator);
	buf_appendf(&b, "policy.domain=%s\npolicy.discovery_method=%s\n"
	    "policy.p=%s\npolicy.sp=%s\npolicy.np=%s\npolicy.fo=%s\n"
	    "policy.adkim=%s\npolicy.aspf=%s\npolicy.testing=%s\n"
	    "policy.rua=%s\npolicy.ri=%d\nnrows=%zu\nsum=%lld\n",
	    p->domain, p->discovery_method, p->p, p->sp, p->np, p->fo,
	    p->adkim, p->aspf, p->testing, p->rua, p->ri, r->nrows, sum);
	for (i = 0; i < r->nrows; i++) {
		const struct report_row *w = &r->rows[i];

		buf_appendf(&b, "row%zu.time=%lld\nrow%zu.source_ip=%s\n"
		    "row%zu.count=%lld\nrow%zu.disposition=%s\n"
		    "row%zu.dkim_aligned=%d\nrow%zu.spf_aligned=%d\n"
		    "row%zu.nreasons=%zu\n", i, w->time, i, w->source_ip, i,
		    w->count, i, w->disposition, i, w->dkim_aligned, i,
		    w->spf_aligned, i, w->nreasons);
		for (k = 0; k < w->nreasons; k++)
			buf_appendf(&b, "row%zu.reason%zu=%s/%s\n", i, k,
			    w->reasons[k].type, w->reasons[k].comment);
		buf_appendf(&b, "row%zu.header_from=%s\nrow%zu.envelope_from=%s\n"
		    "row%zu.envelope_to=%s\nrow%zu.ndkim=%zu\n", i,
		    w->header_from, i, w->envelope_from, i, w->envelope_to, i,
		    w->ndkim);
		for (k = 0; k < w->ndkim; k++)
			buf_appendf(&b, "row%zu.dkim%zu=%s/%s/%s/%s\n", i, k,
			    w->dkim[k].domain, w->dkim[k].selector,
			    w->dkim[k].result, w->dkim[k].human_result);
		buf_appendf(&b, "row%zu.spf=%s/%s/%s\n", i, w->spf_domain,
		    w->spf_scope, w->spf_result);
	}
	if (g->n < MAXREP) {
		g->dump[g->n] = buf_steal(&b);
		snprintf(g->container[g->n], sizeof(g->container[0]), "%s",
		    r->container);
	}
	buf_free(&b);
	g->n++;
	return g->stop_at == g->n ? 7 : 0;
}

/* "key=value" is a whole line of the dump. */
static int
has(const char *dump, const char *line)
{
	char pat[512];

	snprintf(pat, sizeof(pat), "\n%s\n", line);
	return dump != NULL && strstr(dump, pat) != NULL;
}

static void
assert_has(const char *dump, const char *line)
{
	if (!has(dump, line)) {
		fprintf(stderr, "missing \"%s\" in:%s\n", line,
		    dump ? dump : "(none)");
		fail();
	}
}

static int
run(const void *d, size_t n, struct got *g, char *err, size_t errlen)
{
	got_free(g);
	return report_import(d, n, "t", dump_cb, g, err, errlen);
}

/* The import fails, and its message holds want. */
static void
expect_error(const void *d, size_t n, const char *want)
{
	struct got g = { 0 };
	char err[512];
	int rc = run(d, n, &g, err, sizeof(err));

	if (rc != -1 || strstr(err, want) == NULL) {
		fprintf(stderr, "want error \"%s\", got rc %d \"%s\"\n", want,
		    rc, err);
		fail();
	}
	assert_int_equal(g.n, 0);
	assert_true(strncmp(err, "t: ", 3) == 0);
	got_free(&g);
}

static void
expect_error_s(const char *s, const char *want)
{
	expect_error(s, strlen(s), want);
}

static char *
slurp(const char *path, size_t *len_r)
{
	FILE *fp = fopen(path, "rb");
	struct buf b = { 0 };
	char chunk[65536];
	size_t n;

	if (fp == NULL)
		return NULL;
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		assert_int_equal(buf_append(&b, chunk, n), 0);
	fclose(fp);
	*len_r = b.len;
	if (b.data == NULL)
		return calloc(1, 1);
	return buf_steal(&b);
}

static int
conformance(void)
{
	if (access(AGG, R_OK) == 0 && access(PERL, R_OK) == 0)
		return 1;
	printf("skipped: %s absent\n", CONF);
	return 0;
}

static int
import_file(const char *path, struct got *g, char *err, size_t errlen)
{
	size_t len;
	char *d = slurp(path, &len);
	int rc;

	if (d == NULL) {
		fprintf(stderr, "cannot read %s\n", path);
		fail();
	}
	got_free(g);
	rc = report_import(d, len, path, dump_cb, g, err, errlen);
	free(d);
	return rc;
}

/* ------------------------------------------------------- test builders */

/* A report: meta, policy and the given records (XML text). */
static char *
report_xml(const char *policy_extra, const char *records)
{
	struct buf b = { 0 };

	buf_appendf(&b, "<?xml version=\"1.0\"?>\n<feedback>\n"
	    "<report_metadata><org_name>Org</org_name>"
	    "<email>r@org.example</email><report_id>id-1</report_id>"
	    "<date_range><begin>1700000000</begin><end>1700086399</end>"
	    "</date_range></report_metadata>\n"
	    "<policy_published><domain>example.com</domain><p>none</p>%s"
	    "</policy_published>\n%s</feedback>\n", policy_extra, records);
	return buf_steal(&b);
}

static const char *ok_record =
    "<record><row><source_ip>192.0.2.1</source_ip><count>3</count>"
    "<policy_evaluated><disposition>none</disposition><dkim>pass</dkim>"
    "<spf>fail</spf></policy_evaluated></row>"
    "<identifiers><header_from>example.com</header_from></identifiers>"
    "<auth_results><spf><domain>example.com</domain><result>fail</result>"
    "</spf></auth_results></record>\n";

/* gzip (RFC 1952) of n octets of d, or of n zeros when d is NULL,
 * compressed from a small buffer: a bomb never exists at full size. */
static char *
gzip_of(const void *d, size_t n, size_t *len_r)
{
	static const char zeros[65536];
	struct buf out = { 0 };
	unsigned char chunk[65536];
	z_stream zs;
	size_t done = 0, step;
	int flush, zrc;

	memset(&zs, 0, sizeof(zs));
	assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 9,
	    Z_DEFAULT_STRATEGY), Z_OK);
	do {
		step = n - done > sizeof(zeros) ? sizeof(zeros) : n - done;
		zs.next_in = (Bytef *)(uintptr_t)(d != NULL ?
		    (const char *)d + done : zeros);
		zs.avail_in = (uInt)step;
		done += step;
		flush = done == n ? Z_FINISH : Z_NO_FLUSH;
		do {
			zs.next_out = chunk;
			zs.avail_out = sizeof(chunk);
			zrc = deflate(&zs, flush);
			assert_true(zrc != Z_STREAM_ERROR);
			assert_int_equal(buf_append(&out, chunk,
			    sizeof(chunk) - zs.avail_out), 0);
		} while (zs.avail_out == 0);
	} while (flush != Z_FINISH);
	deflateEnd(&zs);
	*len_r = out.len;
	return buf_steal(&out);
}

/* A zip, in memory, of n members. */
static char *
zip_of(int n, const char *const *names, const void *const *data,
    const size_t *lens, size_t *len_r)
{
	zip_error_t ze;
	zip_source_t *src, *s;
	zip_stat_t st;
	zip_t *za;
	char *out;
	int i;

	zip_error_init(&ze);
	assert_non_null(src = zip_source_buffer_create(NULL, 0, 0, &ze));
	assert_non_null(za = zip_open_from_source(src, ZIP_TRUNCATE, &ze));
	zip_source_keep(src);
	for (i = 0; i < n; i++) {
		assert_non_null(s = zip_source_buffer(za, data[i], lens[i], 0));
		assert_true(zip_file_add(za, names[i], s, ZIP_FL_ENC_UTF_8) >= 0);
	}
	assert_int_equal(zip_close(za), 0);
	assert_int_equal(zip_source_stat(src, &st), 0);
	assert_int_equal(zip_source_open(src), 0);
	assert_non_null(out = malloc(st.size));
	assert_true(zip_source_read(src, out, st.size) == (zip_int64_t)st.size);
	zip_source_close(src);
	zip_source_free(src);
	zip_error_fini(&ze);
	*len_r = st.size;
	return out;
}

static char *
zip1(const char *name, const void *d, size_t n, size_t *len_r)
{
	return zip_of(1, &name, &d, &n, len_r);
}

/* A mail around a body: headers given, body as is. */
static char *
mail_of(const char *headers, const char *body)
{
	struct buf b = { 0 };

	buf_appendf(&b, "From: r@org.example\r\nTo: d@example.com\r\n"
	    "Subject: Report\r\nMIME-Version: 1.0\r\n%s\r\n%s", headers, body);
	return buf_steal(&b);
}

/* RFC 2045 base64 in lines of 76 (or a given width). */
static char *
b64_of(const void *d, size_t n, int width)
{
	static const char a[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *s = d;
	struct buf b = { 0 };
	size_t i;
	int col = 0;

	for (i = 0; i < n; i += 3) {
		unsigned v = s[i] << 16 | (i + 1 < n ? s[i + 1] << 8 : 0) |
		    (i + 2 < n ? s[i + 2] : 0);
		char q[4] = { a[v >> 18], a[(v >> 12) & 63],
		    i + 1 < n ? a[(v >> 6) & 63] : '=', i + 2 < n ? a[v & 63] : '=' };

		buf_append(&b, q, 4);
		if ((col += 4) >= width) {
			buf_appends(&b, "\r\n");
			col = 0;
		}
	}
	buf_appends(&b, "\r\n");
	return buf_steal(&b);
}

/* ------------------------------------------------- conformance samples */

/* Every aggregate sample: one report each. */
static void
test_samples_all(void **state)
{
	struct got g = { 0 };
	struct dirent *de;
	char path[512], err[512];
	int files = 0, rc;
	DIR *dir;

	if (!conformance())
		skip();
	assert_non_null(dir = opendir(AGG));
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.' && (de->d_name[1] == '\0' ||
		    strcmp(de->d_name, "..") == 0))
			continue;
		snprintf(path, sizeof(path), AGG "%s", de->d_name);
		rc = import_file(path, &g, err, sizeof(err));
		if (rc != 1) {
			fprintf(stderr, "%s: rc %d: %s\n", de->d_name, rc, err);
			fail();
		}
		assert_int_equal(g.n, 1);
		files++;
	}
	closedir(dir);
	assert_int_equal(files, 19);
	got_free(&g);
}

static const struct {
	const char *file;
	const char *container;
	const char *want[16];
} samples[] = {
	{ AGG "veeam.com!example.com!1530133200!1530219600.xml", "xml", {
	    "format=rfc7489", "meta.org_name=veeam.com",
	    "meta.report_id=sonexushealth.com:1530233361",
	    "meta.begin=1530133200", "meta.end=1530219600",
	    "policy.domain=example.com", "policy.sp=none", "nrows=1", "sum=1",
	    "row0.source_ip=199.230.200.36", "row0.disposition=none",
	    "row0.dkim_aligned=0", "row0.spf_aligned=0", "row0.spf=//none",
	    "row0.envelope_from=" } },
	/* an empty org_name: the domain of <email> */
	{ AGG "!large-example.com!1711897200!1711983600.xml", "xml", {
	    "meta.org_name=accurateplastics.com",
	    "meta.report_id=example.com:1711897200", "policy.sp=reject",
	    "nrows=2286", "sum=2286", "row0.source_ip=12.20.121.1",
	    "row2285.source_ip=12.20.129.254", "row2285.header_from=example.com",
	    "policy.testing=n" } },
	{ AGG "rfc9990-sample.xml", "xml", {
	    "format=rfc9990", "meta.org_name=Sample Reporter",
	    "meta.generator=Example DMARC Aggregate Reporter v1.2",
	    "meta.begin=302832000", "meta.end=302918399", "policy.np=none",
	    "policy.testing=n", "policy.discovery_method=treewalk",
	    "policy.adkim=r", "policy.aspf=r", "row0.count=123",
	    "row0.disposition=pass", "row0.dkim0=example.com/abc123/pass/",
	    "row0.spf=example.com//fail", "row0.dkim_aligned=1",
	    "row0.spf_aligned=0" } },
	/* version 2.0 content without the namespace is still RFC 7489 */
	{ AGG "rfc9990-example.net!example.com!1700000000!1700086399.xml",
	    "xml", {
	    "format=rfc7489", "policy.testing=y", "policy.adkim=s",
	    "policy.np=reject", "policy.fo=1", "nrows=2", "sum=7",
	    "row1.source_ip=203.0.113.10", "row1.disposition=reject",
	    "row1.nreasons=1", "row1.reason0=other/sender not authorized",
	    "row1.spf=spoofed.example.com/mfrom/fail", "row1.ndkim=0" } },
	/* an empty <reason> is dropped */
	{ AGG "empty_reason.xml", "xml", {
	    "meta.extra_contact_info=https://support.example.org/dmarc",
	    "row0.nreasons=0", "row0.envelope_to=example.net",
	    "row0.envelope_from=example.edu",
	    "row0.dkim0=example.com/example/pass/2048-bit key",
	    "row0.spf=example.edu/mfrom/pass", "sum=2" } },
	/* an unclosed <xs:schema> wrapper around the report */
	{ AGG "ikea.com!example.de!1538690400!1538776800.xml", "xml", {
	    "meta.org_name=ikea.com", "policy.domain=example.de",
	    "row0.source_ip=234.234.234.234", "row0.dkim0=example.de//pass/",
	    "row0.spf=mailrelay.com/helo/none",
	    "row0.envelope_from=example.de" } },
	{ AGG "old_draft_from_wiki.xml", "xml", {
	    "meta.org_name=acme.com", "sum=2", "row0.spf_aligned=1",
	    "row0.dkim0=example.com//fail/", "row0.spf=example.com//pass" } },
	{ AGG "protection.outlook.com!example.com!1711756800!1711843200.xml",
	    "xml", { "meta.org_name=Outlook.com",
	    "row0.envelope_to=hotmail.com", "row0.spf=example.com/mfrom/fail",
	    "row0.source_ip=100.24.188.149" } },
	{ AGG "fastmail.com!example.com!1516060800!1516147199!102675056.xml.gz",
	    "gzip", { "meta.org_name=FastMail Pty Ltd",
	    "meta.report_id=102675056", "policy.domain=indemed.com",
	    "row0.source_ip=104.195.80.20", "row0.envelope_to=fastmail.fm",
	    "row0.spf=example.com/mfrom/softfail", "policy.adkim=r" } },
	{ AGG "estadocuenta1.infonacot.gob.mx!example.com!1536853302!1536939702"
	    "!2940.xml.zip", "zip", { "meta.org_name=XYZ Corporation",
	    "meta.report_id=2940", "policy.sp=", "policy.p=none",
	    "row0.source_ip=148.243.137.254",
	    "row0.envelope_to=estadocuenta1.infonacot.gob.mx", "row0.spf=//" } },
	{ AGG "Report domain- borschow.com Submitter- google.com Report-ID- "
	    "949348866075514174.eml", "mail/zip", { "meta.org_name=google.com",
	    "meta.report_id=949348866075514174", "policy.domain=borschow.com",
	    "meta.begin=1549929600", "nrows=1", "row0.source_ip=92.53.116.102",
	    "row0.disposition=reject", "row0.spf=borschow.com//fail" } },
	{ AGG "twilight.eml", "mail/zip", {
	    "meta.report_id=1627703331531660819", "policy.domain=twlnet.com",
	    "policy.adkim=s", "row0.source_ip=87.106.127.28",
	    "row0.dkim0=twlnet.com/201810/pass/", "row0.dkim_aligned=1" } },
	/* base64 of a gzip followed by CRLF */
	{ AGG "mimecast-weird-gzip.eml", "mail/gzip", {
	    "meta.org_name=Mimecast", "policy.domain=ab.id.au",
	    "row0.source_ip=40.93.199.22",
	    "row0.dkim0=ab.id.au/selector1/pass/", "row0.spf=ab.id.au//pass" } },
	/* recovered: the strict parse fails */
	{ AGG "invalid_xml.xml", "xml", {
	    "meta.org_name=veeam.com", "meta.email=@bad-xml.net>",
	    "row0.header_from=bad", "row0.source_ip=199.230.200.36" } },
	{ AGG "invalid_utf_8.xml", "xml", {
	    "meta.org_name=accurateplastics.com",
	    "row0.header_from=bad_byte\xef\xbf\xbd",
	    "row0.source_ip=12.20.127.122" } },
	/* mixed case words folded, whitespace trimmed */
	{ PD "aggregate_invalid/report_with_upper_cased_pass.xml", "xml", {
	    "meta.org_name=example.com", "row0.disposition=none",
	    "row0.dkim_aligned=1", "row0.spf_aligned=1",
	    "row0.dkim0=example.com//pass/verify result: all signatures verified",
	    "row0.spf=example.com//pass", "policy.p=reject" } },
	{ PERL "test_dmarc.xml.zip", "zip", {
	    "meta.org_name=Test Sender", "meta.report_id=1234567890",
	    "meta.begin=1609459200", "meta.end=1609545600",
	    "row0.source_ip=1.2.3.4", "row0.dkim0=example.com/default/pass/",
	    "row0.spf=example.com/mfrom/pass" } },
};

static void
test_samples_values(void **state)
{
	struct got g = { 0 };
	char err[512];
	size_t i, k;

	if (!conformance())
		skip();
	for (i = 0; i < NELEM(samples); i++) {
		if (import_file(samples[i].file, &g, err, sizeof(err)) != 1) {
			fprintf(stderr, "%s: %s\n", samples[i].file, err);
			fail();
		}
		assert_string_equal(g.container[0], samples[i].container);
		for (k = 0; k < NELEM(samples[i].want) &&
		    samples[i].want[k] != NULL; k++)
			assert_has(g.dump[0], samples[i].want[k]);
	}
	got_free(&g);
}

/* The same report as XML, gzip and zip reads the same. */
static void
test_samples_same(void **state)
{
	static const char *const sets[][3] = {
		{ PD "extract_report/nice-input.xml",
		  PD "extract_report/nice-input.xml.gz",
		  PD "extract_report/nice-input.xml.zip" },
		{ PERL "test_dmarc.xml", PERL "test_dmarc.xml.gz",
		  PERL "test_dmarc.xml.zip" },
	};
	static const char *const cont[] = { "xml", "gzip", "zip" };
	struct got g = { 0 };
	char *first = NULL, err[512];
	size_t i, k;

	if (!conformance())
		skip();
	for (i = 0; i < NELEM(sets); i++) {
		for (k = 0; k < 3; k++) {
			assert_int_equal(import_file(sets[i][k], &g, err,
			    sizeof(err)), 1);
			assert_string_equal(g.container[0], cont[k]);
			if (k == 0) {
				first = g.dump[0];
				g.dump[0] = NULL;
			} else
				assert_string_equal(g.dump[0], first);
		}
		if (i == 0) {
			assert_has(first, "nrows=20");
			assert_has(first, "sum=3047");
			assert_has(first, "meta.report_id=11038226378739404135");
			assert_has(first, "row0.source_ip=209.85.220.69");
			assert_has(first, "row19.source_ip=209.85.220.41");
			assert_has(first, "policy.np=none");
			/* changed-input.xml differs (its org_name) */
			assert_int_equal(import_file(PD
			    "extract_report/changed-input.xml", &g, err,
			    sizeof(err)), 1);
			assert_string_not_equal(g.dump[0], first);
			assert_has(g.dump[0], "meta.org_name=fred.com");
		}
		free(first);
	}
	got_free(&g);
}

static void
test_samples_empty(void **state)
{
	struct got g = { 0 };
	char err[512];

	if (!conformance())
		skip();
	assert_int_equal(import_file(PD "empty.xml", &g, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "empty input"));
	assert_int_equal(g.n, 0);
}

/* ----------------------------------------------------- values, lenient */

static void
test_values(void **state)
{
	struct got g = { 0 };
	char *x, err[512];

	/* whitespace, case, float times, <t>, "<id>", IPv6 in RFC 5952 */
	x = strdup("<feedback xmlns=\"urn:ietf:params:xml:ns:dmarc-2.0\">"
	    "<report_metadata><org_name>  Org\n</org_name>"
	    "<email>r@org.example</email><report_id> &lt;abc@x&gt; </report_id>"
	    "<date_range><begin> 1538204542.0 </begin><end>1538290942.25</end>"
	    "</date_range><error>one</error><error> two </error>"
	    "</report_metadata><policy_published><domain>Example.COM</domain>"
	    "<p>REJECT</p><t>Y</t><adkim>S</adkim></policy_published>"
	    "<record><row><source_ip> 2001:DB8:0:0:0:0:0:1 </source_ip>"
	    "<count> 0 </count><policy_evaluated><disposition>Quarantine"
	    "</disposition><dkim>PASS</dkim><spf>Pass</spf><reason><comment>"
	    "c</comment></reason></policy_evaluated></row><identifiers>"
	    "<header_from>Example.com</header_from></identifiers>"
	    "<auth_results><spf><domain>a.example</domain><scope>HELO</scope>"
	    "<result>SoftFail</result></spf><spf><domain>b.example</domain>"
	    "<result>pass</result></spf></auth_results><ext:x xmlns:ext=\"u\">"
	    "1</ext:x></record></feedback>");
	assert_int_equal(run(x, strlen(x), &g, err, sizeof(err)), 1);
	assert_has(g.dump[0], "format=rfc9990");
	assert_has(g.dump[0], "meta.org_name=Org");
	assert_has(g.dump[0], "meta.report_id=abc@x");
	assert_has(g.dump[0], "meta.begin=1538204542");
	assert_has(g.dump[0], "meta.end=1538290942");
	assert_has(g.dump[0], "meta.errors=one\ntwo");
	assert_has(g.dump[0], "policy.domain=example.com");
	assert_has(g.dump[0], "policy.p=reject");
	assert_has(g.dump[0], "policy.testing=y");
	assert_has(g.dump[0], "policy.adkim=s");
	assert_has(g.dump[0], "policy.aspf=r");
	assert_has(g.dump[0], "row0.source_ip=2001:db8::1");
	assert_has(g.dump[0], "row0.count=0");
	assert_has(g.dump[0], "row0.disposition=quarantine");
	assert_has(g.dump[0], "row0.dkim_aligned=1");
	assert_has(g.dump[0], "row0.reason0=other/c");
	assert_has(g.dump[0], "row0.header_from=example.com");
	assert_has(g.dump[0], "row0.envelope_from=");
	assert_has(g.dump[0], "row0.spf=a.example/helo/softfail");
	assert_has(g.dump[0], "row0.time=0");
	free(x);

	/* pct=0 is testing; REPORT_MAX_DKIM results kept; a record alone */
	{
		struct buf r = { 0 };
		int i;

		buf_appends(&r, "<record><row><source_ip>192.0.2.9</source_ip>"
		    "<count>1</count></row><auth_results>");
		for (i = 0; i < REPORT_MAX_DKIM + 3; i++)
			buf_appendf(&r, "<dkim><domain>d%d.example</domain>"
			    "<result>pass</result></dkim>", i);
		buf_appends(&r, "</auth_results></record>");
		x = report_xml("<pct>0</pct>", r.data);
		buf_free(&r);
	}
	assert_int_equal(run(x, strlen(x), &g, err, sizeof(err)), 1);
	assert_has(g.dump[0], "policy.testing=y");
	assert_has(g.dump[0], "format=rfc7489");
	assert_has(g.dump[0], "row0.ndkim=8");
	assert_has(g.dump[0], "row0.dkim7=d7.example//pass/");
	assert_has(g.dump[0], "row0.disposition=");
	assert_has(g.dump[0], "row0.spf=//");
	free(x);

	x = report_xml("<pct>100</pct>", "");
	assert_int_equal(run(x, strlen(x), &g, err, sizeof(err)), 1);
	assert_has(g.dump[0], "policy.testing=n");
	assert_has(g.dump[0], "nrows=0");
	free(x);
	got_free(&g);
}

/* Streamed: <feedback> may be wrapped, its children in any order. */
static void
test_stream(void **state)
{
	static const char meta[] = "<report_metadata><org_name>O</org_name>"
	    "<report_id>i</report_id><date_range><begin>1</begin><end>2</end>"
	    "</date_range></report_metadata>";
	static const char pol[] = "<policy_published><domain>d.example"
	    "</domain></policy_published>";
	static const char rec[] = "<record><row><source_ip>192.0.2.1"
	    "</source_ip><count>1</count></row></record>\n";
	struct buf b = { 0 };
	struct got g = { 0 };
	char err[512], *big;
	size_t i, n;

	buf_appendf(&b, "<w:wrap xmlns:w=\"urn:x\"><x/><feedback>%s<version>1"
	    "</version>%s%s<report_metadata><org_name>second</org_name>"
	    "</report_metadata></feedback><feedback>%s</feedback></w:wrap>",
	    rec, pol, meta, rec);
	assert_int_equal(run(b.data, b.len, &g, err, sizeof(err)), 1);
	assert_has(g.dump[0], "meta.org_name=O");
	assert_has(g.dump[0], "policy.domain=d.example");
	assert_has(g.dump[0], "nrows=1");
	buf_reset(&b);
	/* deeper than a wrapper's child: not found */
	buf_appendf(&b, "<a><b><feedback>%s%s</feedback></b></a>", meta, pol);
	expect_error(b.data, b.len, "(root element <a>)");

	/* not well-formed at the end: recovered when small ... */
	buf_reset(&b);
	buf_appendf(&b, "<feedback>%s%s", meta, pol);
	n = 0;
	while (b.len < (4u << 20) - 100) {
		buf_append(&b, rec, sizeof(rec) - 1);
		n++;
	}
	buf_appends(&b, "</feedback><oops");
	assert_int_equal(run(b.data, b.len, &g, err, sizeof(err)), 1);
	{
		char want[64];

		snprintf(want, sizeof(want), "nrows=%zu", n);
		assert_has(g.dump[0], want);
	}
	/* ... refused when large: no tree of a big document is built */
	assert_non_null(big = malloc(b.len + 200));
	i = strlen("<feedback>");
	memcpy(big, b.data, i);
	memset(big + i, ' ', 200);
	memcpy(big + i + 200, b.data + i, b.len - i);
	expect_error(big, b.len + 200, "XML: line ");
	free(big);
	buf_free(&b);
	got_free(&g);
}

/* ---------------------------------------------------------- bad reports */

static void
test_bad_reports(void **state)
{
	static const struct {
		const char *policy;
		const char *records;
		const char *err;
	} cases[] = {
		{ "", "<record><row><count>1</count></row></record>",
		  "record 2: no source_ip" },
		{ "", "<record><row><source_ip>999.1.1.1</source_ip><count>1"
		  "</count></row></record>", "is not an IP address" },
		{ "", "<record><row><source_ip>192.0.2.1</source_ip></row>"
		  "</record>", "record 2: no count" },
		{ "", "<record><row><source_ip>192.0.2.1</source_ip><count>-1"
		  "</count></row></record>", "\"-1\" is not a non-negative" },
		{ "", "<record><row><source_ip>192.0.2.1</source_ip><count>abc"
		  "</count></row></record>", "\"abc\" is not a non-negative" },
		{ "", "<record><row><source_ip>192.0.2.1</source_ip><count>1.5"
		  "</count></row></record>", "is not a non-negative" },
		{ "", "<record><row><source_ip>192.0.2.1</source_ip><count>"
		  "</count></row></record>", "\"\" is not a non-negative" },
		{ "", "<record><row><source_ip>192.0.2.1</source_ip><count>"
		  "99999999999999999999</count></row></record>",
		  "is not a non-negative" },
	};
	size_t i;
	char *x;

	for (i = 0; i < NELEM(cases); i++) {
		char rec[512];

		/* a good record first: the second one fails */
		snprintf(rec, sizeof(rec), "%s%s", ok_record, cases[i].records);
		x = report_xml(cases[i].policy, rec);
		expect_error_s(x, cases[i].err);
		free(x);
	}
	x = report_xml("", ok_record);
	assert_non_null(strstr(x, "<count>3</count>"));
	free(x);
}

static void
test_bad_documents(void **state)
{
	static const struct {
		const char *xml;
		const char *err;
	} cases[] = {
		{ "<html><body>hi</body></html>",
		  "not a DMARC aggregate report (root element <html>)" },
		{ "<feedback><policy_published><domain>e.example</domain>"
		  "</policy_published></feedback>", "no report_metadata" },
		{ "<feedback><report_metadata><report_id>1</report_id>"
		  "</report_metadata></feedback>", "no report_metadata/org_name" },
		{ "<feedback><report_metadata><org_name/><email>x</email>"
		  "</report_metadata></feedback>",
		  "report_metadata/org_name is empty" },
		{ "<feedback><report_metadata><org_name>o</org_name>"
		  "</report_metadata></feedback>", "no report_metadata/report_id" },
		{ "<feedback><report_metadata><org_name>o</org_name><report_id>"
		  "<![CDATA[  ]]></report_id></report_metadata></feedback>",
		  "no report_metadata/report_id" },
		{ "<feedback><report_metadata><org_name>o</org_name><report_id>"
		  "1</report_id></report_metadata></feedback>",
		  "no report_metadata/date_range" },
		{ "<feedback><report_metadata><org_name>o</org_name><report_id>"
		  "1</report_id><date_range><begin>x</begin><end>1</end>"
		  "</date_range></report_metadata></feedback>",
		  "date_range/begin \"x\" is not a time" },
		{ "<feedback><report_metadata><org_name>o</org_name><report_id>"
		  "1</report_id><date_range><begin>1</begin><end>1e9</end>"
		  "</date_range></report_metadata></feedback>",
		  "date_range/end \"1e9\" is not a time" },
		{ "<feedback><report_metadata><org_name>o</org_name><report_id>"
		  "1</report_id><date_range><begin>1</begin><end>2</end>"
		  "</date_range></report_metadata></feedback>",
		  "no policy_published" },
		{ "<feedback><report_metadata><org_name>o</org_name><report_id>"
		  "1</report_id><date_range><begin>1</begin><end>2</end>"
		  "</date_range></report_metadata><policy_published><p>none</p>"
		  "</policy_published></feedback>", "no policy_published/domain" },
		/* not recoverable into anything */
		{ "<", "XML: line 1:" },
		{ "   \n", "neither XML, gzip, zip nor a mail" },
		{ "hello world", "neither XML, gzip, zip nor a mail" },
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++)
		expect_error_s(cases[i].xml, cases[i].err);
}

/* ---------------------------------------------------------- hostile XML */

static void
test_dtd_refused(void **state)
{
	static const char *const cases[] = {
		/* billion laughs */
		"<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n"
		"<!ENTITY lol \"lol\">\n"
		"<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
		"<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
		"<!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
		"]>\n<feedback><report_metadata><org_name>&lol4;</org_name>"
		"</report_metadata></feedback>",
		/* an external entity */
		"<?xml version=\"1.0\"?>\n<!DOCTYPE feedback [\n"
		"<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n"
		"<feedback><report_metadata><org_name>&xxe;</org_name>"
		"</report_metadata></feedback>",
		/* an external DTD */
		"<!DOCTYPE feedback SYSTEM \"http://192.0.2.1/x.dtd\"><feedback/>",
		/* whatever the case, wherever */
		"<feedback><!doctype x></feedback>",
		"<feedback><!ENTITY x \"y\"></feedback>",
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++)
		expect_error_s(cases[i], "DOCTYPE or ENTITY declaration refused");
}

/* A report whose records hold an extension nested to depth levels. */
static char *
nested_xml(int depth)
{
	struct buf r = { 0 };
	char *x;
	int i;

	/* feedback, record: 2 levels */
	buf_appends(&r, "<record><row><source_ip>192.0.2.1</source_ip>"
	    "<count>1</count></row>");
	for (i = 0; i < depth - 2; i++)
		buf_appends(&r, "<x>");
	for (i = 0; i < depth - 2; i++)
		buf_appends(&r, "</x>");
	buf_appends(&r, "</record>");
	x = report_xml("", r.data);
	buf_free(&r);
	return x;
}

static void
test_nesting(void **state)
{
	struct got g = { 0 };
	char *x, err[512];

	x = nested_xml(REPORT_IMPORT_MAX_XML_DEPTH);
	assert_int_equal(run(x, strlen(x), &g, err, sizeof(err)), 1);
	free(x);
	x = nested_xml(REPORT_IMPORT_MAX_XML_DEPTH + 1);
	expect_error_s(x, "XML nested deeper than 32 levels");
	free(x);
	x = nested_xml(100);
	expect_error_s(x, "XML nested deeper than 32 levels");
	free(x);
	/* past libxml2's own limit (256): recovery stops, we refuse */
	x = nested_xml(5000);
	expect_error_s(x, "XML nested deeper than 32 levels");
	free(x);
	got_free(&g);
}

static void
test_nul(void **state)
{
	char *x = report_xml("", ok_record);
	size_t n = strlen(x);
	char *mid = strstr(x, "</org_name>");

	*mid = '\0';
	expect_error(x, n, "NUL octet in XML at offset");
	*mid = '<';
	/* after the root element too */
	x[n - 1] = '\0';
	expect_error(x, n, "NUL octet in XML");
	free(x);
}

static void
test_too_many_records(void **state)
{
	static const char rec[] = "<record><row><source_ip>192.0.2.1"
	    "</source_ip><count>1</count></row></record>\n";
	struct buf r = { 0 };
	struct got g = { 0 };
	char *x, err[512];
	int i;

	assert_int_equal(buf_reserve(&r, REPORT_IMPORT_MAX_RECORDS *
	    sizeof(rec)), 0);
	for (i = 0; i < REPORT_IMPORT_MAX_RECORDS; i++)
		buf_append(&r, rec, sizeof(rec) - 1);
	x = report_xml("", r.data);
	assert_int_equal(run(x, strlen(x), &g, err, sizeof(err)), 1);
	assert_has(g.dump[0], "nrows=200000");
	assert_has(g.dump[0], "sum=200000");
	free(x);
	buf_append(&r, rec, sizeof(rec) - 1);
	x = report_xml("", r.data);
	expect_error_s(x, "more than 200000 records");
	free(x);
	buf_free(&r);
	got_free(&g);
}

/* ------------------------------------------------------------------ gzip */

static void
test_gzip(void **state)
{
	struct got g = { 0 };
	char *x = report_xml("", ok_record), *z, *z2, err[512];
	size_t n = strlen(x), zl, zl2;
	struct buf b = { 0 };

	z = gzip_of(x, n, &zl);
	assert_int_equal(run(z, zl, &g, err, sizeof(err)), 1);
	assert_string_equal(g.container[0], "gzip");

	/* trailing garbage is ignored (mimecast) */
	buf_append(&b, z, zl);
	buf_appends(&b, "\r\n");
	assert_int_equal(run(b.data, b.len, &g, err, sizeof(err)), 1);
	buf_reset(&b);

	/* members one after the other (RFC 1952 2.2) */
	z2 = gzip_of(x + 100, n - 100, &zl2);
	free(z);
	z = gzip_of(x, 100, &zl);
	buf_append(&b, z, zl);
	buf_append(&b, z2, zl2);
	assert_int_equal(run(b.data, b.len, &g, err, sizeof(err)), 1);
	assert_has(g.dump[0], "row0.count=3");

	/* truncated: in the data, in the trailer */
	expect_error(b.data, zl + zl2 / 2, "gzip: truncated");
	expect_error(b.data, zl + zl2 - 4, "gzip: truncated");
	expect_error(z, zl / 2, "gzip: truncated");
	expect_error(z, 2, "gzip: truncated");
	/* corrupt */
	z[zl / 2] ^= 0x55;
	z[zl / 2 + 1] ^= 0x55;
	expect_error(z, zl, "gzip");
	buf_free(&b);
	free(z);
	free(z2);

	/* gzip of something else */
	z = gzip_of("hello", 5, &zl);
	expect_error(z, zl, "neither XML, gzip, zip");
	free(z);
	z = gzip_of("", 0, &zl);
	expect_error(z, zl, "empty");
	free(z);
	free(x);
	got_free(&g);
}

static void
test_gzip_bomb(void **state)
{
	char *z;
	size_t zl;

	/* 200 MB of zeros: cut at 64 MB, never held whole */
	z = gzip_of(NULL, (size_t)200 << 20, &zl);
	assert_true(zl < (2u << 20));
	expect_error(z, zl, "t: gzip: decompressed size over 64 MB");
	free(z);
	/* 10 MB of zeros: over 1000 times its size */
	z = gzip_of(NULL, (size_t)10 << 20, &zl);
	assert_true((uint64_t)zl * REPORT_IMPORT_MAX_RATIO < (10u << 20));
	expect_error(z, zl, "decompressed size over 1000 times the compressed");
	free(z);
}

/* ------------------------------------------------------------------- zip */

static void
test_zip(void **state)
{
	struct got g = { 0 };
	char *x = report_xml("", ok_record), *z, *gz, err[512];
	size_t n = strlen(x), zl, gzl;

	/* a member with an empty name */
	z = zip1("", x, n, &zl);
	assert_int_equal(run(z, zl, &g, err, sizeof(err)), 1);
	assert_string_equal(g.container[0], "zip");
	/* truncated: no central directory; a damaged member */
	expect_error(z, zl / 2, "not a valid zip");
	expect_error(z, zl - 1, "not a valid zip");
	free(z);

	/* members: a directory, a text, a gzip of XML, XML */
	gz = gzip_of(x, n, &gzl);
	{
		const char *names[] = { "dir/", "README.txt", "r.xml.gz", "r.xml" };
		const void *data[] = { "", "just text", gz, x };
		size_t lens[] = { 0, 9, gzl, n };

		z = zip_of(4, names, data, lens, &zl);
	}
	assert_int_equal(run(z, zl, &g, err, sizeof(err)), 2);
	assert_string_equal(g.container[0], "zip/gzip");
	assert_string_equal(g.container[1], "zip");
	assert_string_equal(g.dump[0], g.dump[1]);
	free(z);

	/* a zip in a zip in a gzip */
	z = zip1("r.xml", x, n, &zl);
	{
		char *z2, *z3;
		size_t zl2, zl3;

		z2 = zip1("inner.zip", z, zl, &zl2);
		z3 = gzip_of(z2, zl2, &zl3);
		assert_int_equal(run(z3, zl3, &g, err, sizeof(err)), 1);
		assert_string_equal(g.container[0], "gzip/zip/zip");
		free(z2);
		free(z3);
	}
	free(z);

	/* a member that is XML but not a report */
	z = zip1("x.xml", "<html/>", 7, &zl);
	expect_error(z, zl, "zip member 1: not a DMARC aggregate report");
	free(z);
	/* nothing to read */
	z = zip1("a.txt", "text", 4, &zl);
	assert_int_equal(run(z, zl, &g, err, sizeof(err)), 0);
	assert_string_equal(err, "t: no DMARC report found in the zip");
	free(z);
	free(gz);
	free(x);
	got_free(&g);
}

static void
test_zip_members(void **state)
{
	struct got g = { 0 };
	const char *names[REPORT_IMPORT_MAX_MEMBERS + 1];
	const void *data[REPORT_IMPORT_MAX_MEMBERS + 1];
	size_t lens[REPORT_IMPORT_MAX_MEMBERS + 1], zl;
	char nm[REPORT_IMPORT_MAX_MEMBERS + 1][24], err[512];
	char *x = report_xml("", ok_record), *z;
	int i;

	for (i = 0; i <= REPORT_IMPORT_MAX_MEMBERS; i++) {
		snprintf(nm[i], sizeof(nm[i]), "r%d.xml", i);
		names[i] = nm[i];
		data[i] = x;
		lens[i] = strlen(x);
	}
	z = zip_of(REPORT_IMPORT_MAX_MEMBERS, names, data, lens, &zl);
	assert_int_equal(run(z, zl, &g, err, sizeof(err)),
	    REPORT_IMPORT_MAX_MEMBERS);
	free(z);
	z = zip_of(REPORT_IMPORT_MAX_MEMBERS + 1, names, data, lens, &zl);
	expect_error(z, zl, "zip with more than 16 members");
	free(z);

	/* the callback stops the walk; its value is returned */
	z = zip_of(3, names, data, lens, &zl);
	got_free(&g);
	g.stop_at = 2;
	assert_int_equal(report_import(z, zl, "t", dump_cb, &g, err,
	    sizeof(err)), 7);
	assert_int_equal(g.n, 2);
	free(z);
	free(x);
	got_free(&g);
}

static void
test_zip_bomb(void **state)
{
	size_t n = (size_t)100 << 20, zl;
	char *zeros, *z;

	/* calloc: zero pages, never written */
	assert_non_null(zeros = calloc(1, n));
	z = zip1("bomb.xml", zeros, n, &zl);
	free(zeros);
	assert_true(zl < (1u << 20));
	expect_error(z, zl, "t: zip member 1: decompressed size over 64 MB");
	free(z);

	/* over 1000 times the archive */
	assert_non_null(zeros = calloc(1, (size_t)10 << 20));
	z = zip1("bomb.xml", zeros, (size_t)10 << 20, &zl);
	free(zeros);
	expect_error(z, zl, "decompressed size over 1000 times");
	free(z);
}

static void
test_zip_damaged(void **state)
{
	char *x = report_xml("", ok_record), *z, *p;
	size_t zl;

	/* member data damaged, directory intact: a CRC or inflate error */
	z = zip1("r.xml", x, strlen(x), &zl);
	p = z + 30 + 5 + 40;	/* local header, name, into the data */
	*p ^= 0xff;
	p[1] ^= 0xff;
	expect_error(z, zl, "zip member 1: cannot read");
	free(z);
	free(x);
}

/* Nested containers share one budget: 1000 times the input in all. */
static void
test_budget(void **state)
{
	size_t n = (size_t)5 << 20, i, l1, l2;
	char *d, *z1, *z2;

	/* zeros with a byte now and then: under 1000:1 at each level */
	assert_non_null(d = calloc(1, n));
	for (i = 0; i < n; i += 8192)
		d[i] = (char)(1 + i / 8192 % 250);
	z1 = gzip_of(d, n, &l1);
	z2 = gzip_of(z1, l1, &l2);
	free(d);
	assert_true((uint64_t)l1 * REPORT_IMPORT_MAX_RATIO > n);
	assert_true((uint64_t)l2 * REPORT_IMPORT_MAX_RATIO > l1);
	/* but over it in all */
	assert_true((uint64_t)l2 * REPORT_IMPORT_MAX_RATIO < n + l1);
	expect_error(z2, l2, "t: gzip: gzip: more than ");
	expect_error(z2, l2, "decompressed in all");
	/* alone, the inner one is read (and holds nothing) */
	expect_error(z1, l1, "gzip: neither XML, gzip, zip");
	free(z1);
	free(z2);
}

/* ----------------------------------------------------------------- size */

static void
test_input_limit(void **state)
{
	char *big;

	assert_non_null(big = calloc(1, (size_t)REPORT_IMPORT_MAX_INPUT + 1));
	expect_error(big, (size_t)REPORT_IMPORT_MAX_INPUT + 1,
	    "input over 64 MB");
	/* at the limit the content is looked at (and is nothing) */
	expect_error(big, REPORT_IMPORT_MAX_INPUT, "neither XML, gzip, zip");
	free(big);
	expect_error("", 0, "empty input");
}

/* ----------------------------------------------------------------- MIME */

static void
test_mail(void **state)
{
	struct got g = { 0 };
	char *x = report_xml("", ok_record), *z, *b64, *m, err[512];
	size_t zl;
	struct buf body = { 0 };

	/* multipart, quoted boundary, zip in base64 of odd widths */
	z = zip1("r.xml", x, strlen(x), &zl);
	b64 = b64_of(z, zl, 60);
	buf_appendf(&body, "preamble\r\n--b1\r\nContent-Type: text/plain\r\n\r\n"
	    "This is a report.\r\n--b1\r\nContent-Type: application/zip;\r\n"
	    " name=\"r.zip\"\r\nContent-Transfer-Encoding: BASE64\r\n\r\n%s"
	    "\r\n--b1--\r\nepilogue\r\n", b64);
	m = mail_of("Content-Type: multipart/mixed;\r\n\tboundary=\"b1\"\r\n",
	    body.data);
	assert_int_equal(run(m, strlen(m), &g, err, sizeof(err)), 1);
	assert_string_equal(g.container[0], "mail/zip");
	free(m);

	/* the same with bare LF line ends and an unquoted boundary */
	{
		struct buf lf = { 0 };
		const char *p;

		m = mail_of("Content-Type: multipart/mixed; boundary=b1\r\n",
		    body.data);
		for (p = m; *p != '\0'; p++)
			if (*p != '\r')
				buf_appendc(&lf, *p);
		assert_int_equal(run(lf.data, lf.len, &g, err, sizeof(err)), 1);
		buf_free(&lf);
		free(m);
	}

	/* unterminated: no closing delimiter */
	buf_reset(&body);
	buf_appendf(&body, "--b1\r\nContent-Type: application/zip\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--b1\r\n"
	    "Content-Type: text/plain\r\n\r\nx\r\n", b64);
	m = mail_of("Content-Type: multipart/mixed; boundary=\"b1\"\r\n",
	    body.data);
	expect_error_s(m, "multipart/mixed: unterminated");
	free(m);
	/* no boundary at all */
	m = mail_of("Content-Type: multipart/mixed; boundary=\"b1\"\r\n",
	    "no parts here\r\n");
	expect_error_s(m, "multipart/mixed: no boundary line");
	free(m);
	m = mail_of("Content-Type: multipart/mixed\r\n", "--b1--\r\n");
	expect_error_s(m, "without a usable boundary");
	free(m);

	/* a single-part mail: XML in quoted-printable, mbox From_ line */
	{
		struct buf qp = { 0 };
		const char *p;
		int col = 0;

		buf_appends(&qp, "From r@org.example Mon Jan  1 00:00:00 2024\n");
		buf_appends(&qp, "From: r@org.example\nContent-Type: text/xml\n"
		    "Content-Transfer-Encoding: quoted-printable\n\n");
		for (p = x; *p != '\0'; p++) {
			if (*p == '=' || *p == '<')
				col += buf_appendf(&qp, "=%02X",
				    (unsigned char)*p) == 0 ? 3 : 0;
			else if (*p == '\n') {
				buf_appends(&qp, "   \n");	/* dropped */
				col = 0;
				continue;
			} else {
				buf_appendc(&qp, *p);
				col++;
			}
			if (col > 70) {
				buf_appends(&qp, "=\n");
				col = 0;
			}
		}
		assert_int_equal(run(qp.data, qp.len, &g, err, sizeof(err)), 1);
		assert_string_equal(g.container[0], "mail");
		assert_has(g.dump[0], "row0.source_ip=192.0.2.1");
		buf_free(&qp);
	}

	/* a mail without a report */
	m = mail_of("Content-Type: text/plain\r\n", "hello\r\n");
	assert_int_equal(run(m, strlen(m), &g, err, sizeof(err)), 0);
	assert_string_equal(err, "t: no DMARC report found in the mail");
	free(m);
	/* a gzip by its file name; a forwarded report (message/rfc822) */
	{
		char *gz, *g64, *inner;
		size_t gzl;

		gz = gzip_of(x, strlen(x), &gzl);
		g64 = b64_of(gz, gzl, 76);
		inner = mail_of("Content-Type: application/octet-stream\r\n"
		    "Content-Disposition: attachment; filename*=utf-8''r.xml.gz"
		    "\r\nContent-Transfer-Encoding: base64\r\n", g64);
		buf_reset(&body);
		buf_appendf(&body, "--=_x\r\nContent-Type: message/rfc822\r\n"
		    "\r\n%s\r\n--=_x--\r\n", inner);
		m = mail_of("Content-Type: multipart/mixed; boundary=\"=_x\"\r\n",
		    body.data);
		assert_int_equal(run(m, strlen(m), &g, err, sizeof(err)), 1);
		assert_string_equal(g.container[0], "mail/mail/gzip");
		free(m);
		free(inner);
		free(g64);
		free(gz);
	}
	/* a part claiming a zip that is not one */
	m = mail_of("Content-Type: application/zip\r\n"
	    "Content-Transfer-Encoding: base64\r\n", "aGVsbG8=\r\n");
	expect_error_s(m, "neither XML, gzip, zip");
	free(m);
	m = mail_of("Content-Type: application/zip\r\n"
	    "Content-Transfer-Encoding: x-uuencode\r\n", "begin 644 r.zip\r\n");
	expect_error_s(m, "unknown Content-Transfer-Encoding");
	free(m);
	buf_free(&body);
	free(b64);
	free(z);
	free(x);
	got_free(&g);
}

/* multipart in multipart, depth levels, the report at the bottom */
static char *
nested_mail(int depth, const char *xml)
{
	struct buf b = { 0 }, t = { 0 };
	int i;

	buf_appendf(&b, "Content-Type: text/xml\r\n\r\n%s", xml);
	for (i = 0; i < depth; i++) {
		buf_reset(&t);
		buf_appendf(&t, "Content-Type: multipart/mixed; boundary=\"l%d\""
		    "\r\n\r\n--l%d\r\n%s\r\n--l%d--\r\n", i, i, b.data, i);
		buf_reset(&b);
		buf_append(&b, t.data, t.len);
	}
	buf_free(&t);
	buf_reset(&t);
	buf_appendf(&t, "From: r@org.example\r\n%s", b.data);
	buf_free(&b);
	return buf_steal(&t);
}

static void
test_mail_nesting(void **state)
{
	struct got g = { 0 };
	char *x = report_xml("", ok_record), *m, err[512];

	m = nested_mail(REPORT_IMPORT_MAX_DEPTH, x);
	assert_int_equal(run(m, strlen(m), &g, err, sizeof(err)), 1);
	free(m);
	m = nested_mail(REPORT_IMPORT_MAX_DEPTH + 1, x);
	expect_error_s(m, "nested deeper than 8 levels");
	free(m);
	m = nested_mail(20, x);
	expect_error_s(m, "nested deeper than 8 levels");
	free(m);
	free(x);
	got_free(&g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_samples_all),
		cmocka_unit_test(test_samples_values),
		cmocka_unit_test(test_samples_same),
		cmocka_unit_test(test_samples_empty),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_stream),
		cmocka_unit_test(test_bad_reports),
		cmocka_unit_test(test_bad_documents),
		cmocka_unit_test(test_dtd_refused),
		cmocka_unit_test(test_nesting),
		cmocka_unit_test(test_nul),
		cmocka_unit_test(test_too_many_records),
		cmocka_unit_test(test_gzip),
		cmocka_unit_test(test_gzip_bomb),
		cmocka_unit_test(test_zip),
		cmocka_unit_test(test_zip_members),
		cmocka_unit_test(test_zip_bomb),
		cmocka_unit_test(test_zip_damaged),
		cmocka_unit_test(test_budget),
		cmocka_unit_test(test_input_limit),
		cmocka_unit_test(test_mail),
		cmocka_unit_test(test_mail_nesting),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
