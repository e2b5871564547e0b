/*
 * Tests for report/aggregate.c: the RFC 9990 aggregate report as XML
 * (validated in-process against etc/dmarc-aggregate-2.0.xsd and read back
 * with libxml2), the DKIM order, the refusals, gzip, the file name and
 * the mail. Run from the top of the source tree (the schema is found
 * there); conformance samples come from ../shared/conformance/.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlschemas.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "lib/buf.h"
#include "report/aggregate.h"

#define XSD		"etc/dmarc-aggregate-2.0.xsd"
#define SAMPLES		"../shared/conformance/parsedmarc-samples/aggregate/"

/* ------------------------------------------------------------- fixture */

/* Values that need escaping in XML, and UTF-8. */
#define ORG		"Example & Sons <reports> \"quoted\" 'single'"
#define COMMENT		"forwarded by list & <co>; Gr\xc3\xbc\xc3\x9f" \
			"e \xe2\x9c\x93 \xf0\x9f\x93\xa7\tTAB"
#define HUMAN		"key < 1024 bits & \"weak\""

struct fix {
	struct report_meta m;
	struct report_policy p;
	struct report_row rows[3];
	size_t nrows;
};

static void
fix_init(struct fix *f)
{
	struct report_row *r;

	memset(f, 0, sizeof(*f));
	f->m.org_name = ORG;
	f->m.email = "dmarc-reports@receiver.example";
	f->m.extra_contact_info = "https://receiver.example/dmarc?a=1&b=2";
	f->m.report_id = "1700000000.abc123@receiver.example";
	f->m.begin = 1700000000;
	f->m.end = 1700086399;
	f->m.errors = "multiple records at _dmarc.example.com\n"
	    "rua=mailto:x@y.example: not authorized & ignored";
	f->m.generator = "mxgate test";

	f->p.domain = "example.com";
	f->p.discovery_method = "treewalk";
	f->p.p = "reject";
	f->p.sp = "quarantine";
	f->p.np = "";
	f->p.fo = "1";
	f->p.adkim = "r";
	f->p.aspf = "s";
	f->p.testing = "n";
	f->p.rua = "mailto:dmarc@example.com";

	/* IPv4, three DKIM results (given in the wrong order), SPF */
	r = &f->rows[0];
	r->source_ip = "192.0.2.1";
	r->count = 3;
	r->disposition = "none";
	r->dkim_aligned = 1;
	r->spf_aligned = 1;
	r->header_from = "example.com";
	r->envelope_from = "bounce.example.com";
	r->envelope_to = "receiver.example";
	r->dkim[0] = (struct report_dkim){ "other.example", "s1", "fail",
	    HUMAN };
	r->dkim[1] = (struct report_dkim){ "mail.example.com", "s2", "pass",
	    "" };
	r->dkim[2] = (struct report_dkim){ "EXAMPLE.com", "s3", "pass", "" };
	r->ndkim = 3;
	r->spf_domain = "bounce.example.com";
	r->spf_scope = "mfrom";
	r->spf_result = "pass";

	/* IPv6, null sender, reasons, no DKIM, no SPF */
	r = &f->rows[1];
	r->source_ip = "2001:db8::25";
	r->count = 1;
	r->disposition = "none";
	r->reasons[0] = (struct report_reason){ "local_policy", COMMENT };
	r->reasons[1] = (struct report_reason){ "policy_test_mode", "" };
	r->nreasons = 2;
	r->header_from = "example.com";
	r->envelope_from = "";
	r->envelope_to = "";
	r->spf_domain = "";

	/* IPv4-mapped IPv6, rejected, SPF without scope */
	r = &f->rows[2];
	r->source_ip = "::ffff:198.51.100.7";
	r->count = 12;
	r->disposition = "reject";
	r->header_from = "sub.example.com";
	r->envelope_from = "spoof.example.net";
	r->envelope_to = "";
	r->spf_domain = "spoof.example.net";
	r->spf_scope = "";
	r->spf_result = "softfail";
	f->nrows = 3;
}

static void
write_xml(const struct fix *f, struct buf *out)
{
	char err[256] = "";
	int r = report_xml(&f->m, &f->p, f->rows, f->nrows, out, err,
	    sizeof(err));

	if (r != 0)
		fail_msg("report_xml: %s", err);
}

/* ------------------------------------------------------------- schema */

static void
quiet(void *ctx, xmlErrorPtr e)
{
	(void)ctx;
	(void)e;
}

static xmlSchemaPtr
schema_load(void)
{
	xmlSchemaParserCtxtPtr pc;
	xmlSchemaPtr s;

	if (access(XSD, R_OK) != 0)
		fail_msg("%s not found: run the tests from the top of the "
		    "source tree", XSD);
	if ((pc = xmlSchemaNewParserCtxt(XSD)) == NULL)
		fail_msg("xmlSchemaNewParserCtxt(%s) failed", XSD);
	s = xmlSchemaParse(pc);
	xmlSchemaFreeParserCtxt(pc);
	if (s == NULL)
		fail_msg("%s does not compile as XML Schema", XSD);
	return s;
}

/* 0 valid, >0 invalid, <0 could not validate; -2 not well-formed. */
static int
schema_check(xmlSchemaPtr s, const char *xml, size_t len, int verbose)
{
	xmlSchemaValidCtxtPtr vc;
	xmlDocPtr doc;
	int r;

	doc = xmlReadMemory(xml, (int)len, "report.xml", NULL,
	    XML_PARSE_NONET | (verbose ? 0 : XML_PARSE_NOERROR |
	    XML_PARSE_NOWARNING));
	if (doc == NULL)
		return -2;
	vc = xmlSchemaNewValidCtxt(s);
	assert_non_null(vc);
	if (!verbose)
		xmlSchemaSetValidStructuredErrors(vc, quiet, NULL);
	r = xmlSchemaValidateDoc(vc, doc);
	xmlSchemaFreeValidCtxt(vc);
	xmlFreeDoc(doc);
	return r;
}

static void
test_xml_validates(void **state)
{
	struct buf out = { 0 };
	xmlSchemaPtr s = schema_load();
	struct fix f;

	(void)state;
	fix_init(&f);
	write_xml(&f, &out);
	assert_int_equal(schema_check(s, out.data, out.len, 1), 0);

	/* the least the contract allows: one row, every optional absent */
	f.m.extra_contact_info = f.m.errors = f.m.generator = "";
	f.p.discovery_method = f.p.sp = f.p.fo = f.p.adkim = f.p.aspf =
	    f.p.testing = "";
	f.nrows = 1;
	f.rows[0].ndkim = 0;
	f.rows[0].spf_domain = "";
	buf_reset(&out);
	write_xml(&f, &out);
	assert_int_equal(schema_check(s, out.data, out.len, 1), 0);
	assert_null(strstr(out.data, "<sp>"));
	assert_null(strstr(out.data, "<selector>"));	/* no dkim */
	assert_null(strstr(out.data, "<scope>"));	/* no spf */
	buf_free(&out);
	xmlSchemaFree(s);
}

/* Replace the first from by to in xml. */
static char *
edit(const char *xml, const char *from, const char *to)
{
	const char *at = strstr(xml, from);
	char *r;

	if (at == NULL)
		fail_msg("edit: %s not in the report", from);
	r = malloc(strlen(xml) + strlen(to) + 1);
	assert_non_null(r);
	memcpy(r, xml, (size_t)(at - xml));
	strcpy(r + (at - xml), to);
	strcat(r, at + strlen(from));
	return r;
}

/* The schema has teeth: what the RFC forbids does not validate. */
static void
test_schema_rejects(void **state)
{
	static const struct {
		const char *from, *to;
		int valid;
	} cases[] = {
		{ "<disposition>none</disposition>",
		  "<disposition>bogus</disposition>", 0 },
		{ "<source_ip>192.0.2.1</source_ip>",
		  "<source_ip>192.0.2.256</source_ip>", 0 },
		{ "<source_ip>192.0.2.1</source_ip>",
		  "<source_ip>2001:db8::1::2</source_ip>", 0 },
		{ "<source_ip>192.0.2.1</source_ip>",
		  "<source_ip>1:2:3:4:5:6:7:8</source_ip>", 1 },
		{ "<source_ip>192.0.2.1</source_ip>",
		  "<source_ip>fe80::</source_ip>", 1 },
		{ "<scope>mfrom</scope>", "<scope>helo</scope>", 0 },
		{ "<result>softfail</result>", "<result>error</result>", 0 },
		{ "<version>1.0</version>", "<version>2.0</version>", 0 },
		{ "<version>1.0</version>", "", 1 },
		{ "<type>local_policy</type>", "<type>sampled_out</type>", 0 },
		/* order: policy_evaluated is a sequence, identifiers not */
		{ "<dkim>pass</dkim>\n        <spf>pass</spf>",
		  "<spf>pass</spf>\n        <dkim>pass</dkim>", 0 },
		{ "<header_from>example.com</header_from>\n"
		  "      <envelope_from>bounce.example.com</envelope_from>",
		  "<envelope_from>bounce.example.com</envelope_from>"
		  "<header_from>example.com</header_from>", 1 },
		/* record extensions must be namespaced */
		{ "</auth_results>\n  </record>",
		  "</auth_results><ext xmlns=\"urn:x-test\">1</ext></record>",
		  1 },
		{ "</auth_results>\n  </record>",
		  "</auth_results><ext>1</ext></record>", 0 },
		{ "<p>reject</p>", "", 0 },
		{ "<header_from>example.com</header_from>", "", 0 },
	};
	struct buf out = { 0 };
	xmlSchemaPtr s = schema_load();
	struct fix f;
	size_t i;

	(void)state;
	fix_init(&f);
	write_xml(&f, &out);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *x = edit(out.data, cases[i].from, cases[i].to);
		int r = schema_check(s, x, strlen(x), 0);

		if (cases[i].valid ? r != 0 : r <= 0)
			fail_msg("case %zu (%s): validation gave %d", i,
			    cases[i].to, r);
		free(x);
	}
	/* no record at all */
	{
		const char *a = strstr(out.data, "  <record>");
		const char *b = strstr(out.data, "</feedback>");
		struct buf x = { 0 };

		assert_non_null(a);
		assert_non_null(b);
		buf_append(&x, out.data, (size_t)(a - out.data));
		buf_appends(&x, b);
		assert_true(schema_check(s, x.data, x.len, 0) > 0);
		buf_free(&x);
	}
	buf_free(&out);
	xmlSchemaFree(s);
}

/*
 * The RFC 9990 sample report (Appendix B, as parsedmarc carries it)
 * validates. Its element order inside policy_published and dkim differs
 * from the tables, which the RFC allows there (no "MUST appear in the
 * order listed" for those tables; its own schema uses xs:all).
 * rfc9990-example.net!...xml, despite the name, is not an RFC 9990
 * report: no namespace and <version>2.0</version> where the RFC says
 * "MUST have the value 1.0"; it must not validate.
 */
static void
test_conformance_samples(void **state)
{
	static const struct {
		const char *file;
		int valid;
	} cases[] = {
		{ "rfc9990-sample.xml", 1 },
		{ "rfc9990-example.net!example.com!1700000000!1700086399.xml",
		  0 },
		{ "example.net!example.com!1529366400!1529452799.xml", 0 },
	};
	xmlSchemaPtr s;
	size_t i;

	(void)state;
	if (access(SAMPLES, R_OK) != 0) {
		print_message("skipped: %s absent\n", SAMPLES);
		skip();
	}
	s = schema_load();
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[512];
		FILE *fp;
		struct buf x = { 0 };
		char chunk[4096];
		size_t n;
		int r;

		snprintf(path, sizeof(path), "%s%s", SAMPLES, cases[i].file);
		if ((fp = fopen(path, "rb")) == NULL)
			fail_msg("%s: cannot open", path);
		while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
			buf_append(&x, chunk, n);
		fclose(fp);
		r = schema_check(s, x.data, x.len, cases[i].valid);
		if (cases[i].valid ? r != 0 : r <= 0)
			fail_msg("%s: validation gave %d", cases[i].file, r);
		buf_free(&x);
	}
	xmlSchemaFree(s);
}

/* ---------------------------------------------------------- read back */

struct rb {
	xmlDocPtr doc;
	xmlXPathContextPtr xp;
};

static void
rb_open(struct rb *rb, const struct buf *xml)
{
	rb->doc = xmlReadMemory(xml->data, (int)xml->len, "report.xml", NULL,
	    XML_PARSE_NONET);
	assert_non_null(rb->doc);
	rb->xp = xmlXPathNewContext(rb->doc);
	assert_non_null(rb->xp);
	assert_int_equal(xmlXPathRegisterNs(rb->xp, BAD_CAST "d",
	    BAD_CAST REPORT_XMLNS), 0);
}

static void
rb_close(struct rb *rb)
{
	xmlXPathFreeContext(rb->xp);
	xmlFreeDoc(rb->doc);
}

/* The string value of an XPath expression. */
static void
rb_expect(struct rb *rb, const char *expr, const char *want)
{
	xmlXPathObjectPtr o = xmlXPathEvalExpression(BAD_CAST expr, rb->xp);
	xmlChar *s;

	if (o == NULL)
		fail_msg("xpath %s failed", expr);
	s = xmlXPathCastToString(o);
	if (strcmp((const char *)s, want) != 0)
		fail_msg("%s: got \"%s\", want \"%s\"", expr, (char *)s, want);
	xmlFree(s);
	xmlXPathFreeObject(o);
}

static double
rb_count(struct rb *rb, const char *expr)
{
	char q[512];
	xmlXPathObjectPtr o;
	double d;

	snprintf(q, sizeof(q), "count(%s)", expr);
	o = xmlXPathEvalExpression(BAD_CAST q, rb->xp);
	assert_non_null(o);
	d = xmlXPathCastToNumber(o);
	xmlXPathFreeObject(o);
	return d;
}

static void
test_xml_roundtrip(void **state)
{
	struct buf out = { 0 };
	struct rb rb;
	struct fix f;

	(void)state;
	fix_init(&f);
	write_xml(&f, &out);
	/* escaped by the writer, not left raw */
	assert_null(strstr(out.data, "Example & Sons"));
	assert_non_null(strstr(out.data, "Example &amp; Sons &lt;reports&gt;"));
	assert_true(strncmp(out.data, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
	    38) == 0);

	rb_open(&rb, &out);
	rb_expect(&rb, "namespace-uri(/*)", REPORT_XMLNS);
	rb_expect(&rb, "local-name(/*)", "feedback");
	rb_expect(&rb, "/d:feedback/d:version", "1.0");
	rb_expect(&rb, "//d:report_metadata/d:org_name", ORG);
	rb_expect(&rb, "//d:report_metadata/d:email", f.m.email);
	rb_expect(&rb, "//d:report_metadata/d:extra_contact_info",
	    f.m.extra_contact_info);
	rb_expect(&rb, "//d:report_metadata/d:report_id", f.m.report_id);
	rb_expect(&rb, "//d:date_range/d:begin", "1700000000");
	rb_expect(&rb, "//d:date_range/d:end", "1700086399");
	assert_int_equal((int)rb_count(&rb, "//d:report_metadata/d:error"), 2);
	rb_expect(&rb, "//d:report_metadata/d:error[1]",
	    "multiple records at _dmarc.example.com");
	rb_expect(&rb, "//d:report_metadata/d:error[2]",
	    "rua=mailto:x@y.example: not authorized & ignored");
	rb_expect(&rb, "//d:report_metadata/d:generator", "mxgate test");

	rb_expect(&rb, "//d:policy_published/d:domain", "example.com");
	rb_expect(&rb, "//d:policy_published/d:discovery_method", "treewalk");
	rb_expect(&rb, "//d:policy_published/d:p", "reject");
	rb_expect(&rb, "//d:policy_published/d:sp", "quarantine");
	assert_int_equal((int)rb_count(&rb, "//d:policy_published/d:np"), 0);
	rb_expect(&rb, "//d:policy_published/d:fo", "1");
	rb_expect(&rb, "//d:policy_published/d:adkim", "r");
	rb_expect(&rb, "//d:policy_published/d:aspf", "s");
	rb_expect(&rb, "//d:policy_published/d:testing", "n");
	/* rua and ri are not part of the XML */
	assert_null(strstr(out.data, "mailto:dmarc@example.com"));

	assert_int_equal((int)rb_count(&rb, "/d:feedback/d:record"), 3);
	/* record 1 */
	rb_expect(&rb, "/d:feedback/d:record[1]/d:row/d:source_ip", "192.0.2.1");
	rb_expect(&rb, "/d:feedback/d:record[1]/d:row/d:count", "3");
	rb_expect(&rb, "/d:feedback/d:record[1]//d:disposition", "none");
	rb_expect(&rb, "/d:feedback/d:record[1]//d:policy_evaluated/d:dkim",
	    "pass");
	rb_expect(&rb, "/d:feedback/d:record[1]//d:policy_evaluated/d:spf",
	    "pass");
	rb_expect(&rb, "/d:feedback/d:record[1]//d:envelope_from",
	    "bounce.example.com");
	rb_expect(&rb, "/d:feedback/d:record[1]//d:envelope_to",
	    "receiver.example");
	assert_int_equal((int)rb_count(&rb,
	    "/d:feedback/d:record[1]/d:auth_results/d:dkim"), 3);
	rb_expect(&rb, "/d:feedback/d:record[1]//d:dkim[3]/d:human_result",
	    HUMAN);
	rb_expect(&rb, "/d:feedback/d:record[1]//d:spf/d:scope", "mfrom");
	rb_expect(&rb, "/d:feedback/d:record[1]/d:auth_results/d:spf/d:result",
	    "pass");
	/* record 2: IPv6, null sender, reasons, nothing in auth_results */
	rb_expect(&rb, "/d:feedback/d:record[2]/d:row/d:source_ip",
	    "2001:db8::25");
	rb_expect(&rb, "/d:feedback/d:record[2]//d:policy_evaluated/d:dkim",
	    "fail");
	assert_int_equal((int)rb_count(&rb,
	    "/d:feedback/d:record[2]//d:reason"), 2);
	rb_expect(&rb, "/d:feedback/d:record[2]//d:reason[1]/d:type",
	    "local_policy");
	rb_expect(&rb, "/d:feedback/d:record[2]//d:reason[1]/d:comment",
	    COMMENT);
	rb_expect(&rb, "/d:feedback/d:record[2]//d:reason[2]/d:type",
	    "policy_test_mode");
	assert_int_equal((int)rb_count(&rb,
	    "/d:feedback/d:record[2]//d:reason[2]/d:comment"), 0);
	assert_int_equal((int)rb_count(&rb,
	    "/d:feedback/d:record[2]//d:envelope_from"), 1);
	rb_expect(&rb, "/d:feedback/d:record[2]//d:envelope_from", "");
	assert_int_equal((int)rb_count(&rb,
	    "/d:feedback/d:record[2]//d:envelope_to"), 0);
	assert_int_equal((int)rb_count(&rb,
	    "/d:feedback/d:record[2]/d:auth_results/*"), 0);
	/* record 3 */
	rb_expect(&rb, "/d:feedback/d:record[3]/d:row/d:source_ip",
	    "::ffff:198.51.100.7");
	rb_expect(&rb, "/d:feedback/d:record[3]/d:row/d:count", "12");
	rb_expect(&rb, "/d:feedback/d:record[3]//d:header_from",
	    "sub.example.com");
	assert_int_equal((int)rb_count(&rb,
	    "/d:feedback/d:record[3]//d:spf/d:scope"), 0);
	rb_expect(&rb, "/d:feedback/d:record[3]/d:auth_results/d:spf/d:result",
	    "softfail");
	rb_close(&rb);
	buf_free(&out);
}

/* An address in RFC 5952 form comes out the same; others are normalised
 * and still validate. */
static void
test_xml_addresses(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "2001:DB8:0:0:0:0:0:1", "2001:db8::1" },
		{ "::1", "::1" },
		{ "::", "::" },
		{ "0.0.0.0", "0.0.0.0" },
		{ "255.255.255.255", "255.255.255.255" },
		{ "fe80::1:2:3:4:5", "fe80::1:2:3:4:5" },
	};
	xmlSchemaPtr s = schema_load();
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf out = { 0 };
		struct fix f;
		struct rb rb;

		fix_init(&f);
		f.nrows = 1;
		f.rows[0].source_ip = cases[i].in;
		write_xml(&f, &out);
		assert_int_equal(schema_check(s, out.data, out.len, 1), 0);
		rb_open(&rb, &out);
		rb_expect(&rb, "//d:record[1]/d:row/d:source_ip", cases[i].out);
		rb_close(&rb);
		buf_free(&out);
	}
	xmlSchemaFree(s);
}

/* ----------------------------------------------------------- DKIM order */

static void
test_dkim_order_classes(void **state)
{
	/* From domain mail.example.com; the order RFC 9990 prefers is
	 * strict passes, relaxed passes, other passes, the rest */
	static const struct report_dkim d[] = {
		{ "other.example", "a", "fail", "" },		/* 0: rest */
		{ "other.example", "b", "pass", "" },		/* 1: other */
		{ "example.com", "c", "pass", "" },		/* 2: relaxed */
		{ "MAIL.Example.COM", "d", "pass", "" },	/* 3: strict */
		{ "a.mail.example.com", "e", "pass", "" },	/* 4: relaxed */
		{ "xmail.example.com", "f", "pass", "" },	/* 5: other */
		{ "mail.example.com", "g", "neutral", "" },	/* 6: rest */
		{ "ample.com", "h", "pass", "" },		/* 7: other */
	};
	static const size_t want[] = { 3, 2, 4, 1, 5, 7, 0, 6 };
	const size_t n = sizeof(d) / sizeof(d[0]);
	size_t order[sizeof(d) / sizeof(d[0])], i;
	struct buf out = { 0 };
	struct rb rb;
	struct fix f;

	(void)state;
	assert_int_equal(report_dkim_order(d, n, "mail.example.com", order), n);
	for (i = 0; i < n; i++)
		assert_int_equal(order[i], want[i]);

	/* and so in the XML */
	fix_init(&f);
	f.nrows = 1;
	f.rows[0].header_from = "mail.example.com";
	memcpy(f.rows[0].dkim, d, sizeof(d));
	f.rows[0].ndkim = n;
	write_xml(&f, &out);
	rb_open(&rb, &out);
	assert_int_equal((int)rb_count(&rb, "//d:auth_results/d:dkim"), (int)n);
	for (i = 0; i < n; i++) {
		char q[96];

		snprintf(q, sizeof(q), "//d:auth_results/d:dkim[%zu]/d:selector",
		    i + 1);
		rb_expect(&rb, q, d[want[i]].selector);
	}
	rb_close(&rb);
	buf_free(&out);
}

/* 120 results: at most 100, classes in order, stable within a class,
 * the ones dropped from the last class. */
static void
test_dkim_order_cap(void **state)
{
	static const char *const doms[4] = { "example.com", "s.example.com",
		"elsewhere.example", "example.com" };
	static const char *const res[4] = { "pass", "pass", "pass", "fail" };
	struct report_dkim d[120];
	size_t order[120], k, i, seen[4] = { 0 }, total[4] = { 0 };
	unsigned x = 12345;
	int last = 0;
	char sel[120][8];

	(void)state;
	for (i = 0; i < 120; i++) {
		int c;

		x = x * 1103515245u + 12345u;	/* classes in a scrambled order */
		c = (int)((x >> 16) % 4);
		snprintf(sel[i], sizeof(sel[i]), "%d", c);
		d[i] = (struct report_dkim){ doms[c], sel[i], res[c], "" };
		total[c]++;
	}
	k = report_dkim_order(d, 120, "Example.COM", order);
	assert_int_equal(k, REPORT_MAX_DKIM_PER_ROW);
	for (i = 0; i < k; i++) {
		int c = sel[order[i]][0] - '0';

		assert_true(c >= last);		/* classes never go back */
		if (i > 0 && c == last)
			assert_true(order[i] > order[i - 1]);	/* stable */
		last = c;
		seen[c]++;
	}
	/* 120 - 100 dropped, all from the lowest preference first */
	assert_true(total[3] >= 20);
	assert_int_equal(seen[0], total[0]);
	assert_int_equal(seen[1], total[1]);
	assert_int_equal(seen[2], total[2]);
	assert_int_equal(seen[3], total[3] - 20);
	/* fewer than the cap: all of them */
	assert_int_equal(report_dkim_order(d, 7, "example.com", order), 7);
	assert_int_equal(report_dkim_order(d, 0, "example.com", order), 0);
}

/* ----------------------------------------------------------- refusals */

enum field {
	F_DISPOSITION, F_DKIM_RESULT, F_SPF_RESULT, F_SPF_SCOPE, F_REASON,
	F_P, F_SP, F_ADKIM, F_TESTING, F_DISCOVERY, F_ORG, F_COMMENT,
	F_HEADER_FROM, F_HUMAN, F_ENVELOPE_FROM, F_ERRORS, F_IP, F_REPORT_ID,
	F_DKIM_DOMAIN,
};

static void
set_field(struct fix *f, enum field w, const char *v)
{
	switch (w) {
	case F_DISPOSITION: f->rows[1].disposition = v; break;
	case F_DKIM_RESULT: f->rows[0].dkim[1].result = v; break;
	case F_SPF_RESULT: f->rows[2].spf_result = v; break;
	case F_SPF_SCOPE: f->rows[0].spf_scope = v; break;
	case F_REASON: f->rows[1].reasons[1].type = v; break;
	case F_P: f->p.p = v; break;
	case F_SP: f->p.sp = v; break;
	case F_ADKIM: f->p.adkim = v; break;
	case F_TESTING: f->p.testing = v; break;
	case F_DISCOVERY: f->p.discovery_method = v; break;
	case F_ORG: f->m.org_name = v; break;
	case F_COMMENT: f->rows[1].reasons[0].comment = v; break;
	case F_HEADER_FROM: f->rows[2].header_from = v; break;
	case F_HUMAN: f->rows[0].dkim[0].human_result = v; break;
	case F_ENVELOPE_FROM: f->rows[0].envelope_from = v; break;
	case F_ERRORS: f->m.errors = v; break;
	case F_IP: f->rows[1].source_ip = v; break;
	case F_REPORT_ID: f->m.report_id = v; break;
	case F_DKIM_DOMAIN: f->rows[0].dkim[2].domain = v; break;
	}
}

static void
test_xml_refused(void **state)
{
	static const struct {
		enum field w;
		const char *v;
		const char *err;	/* NULL: accepted */
	} cases[] = {
		{ F_DISPOSITION, "bogus", "record[2]/row/policy_evaluated/"
		  "disposition: unknown value bogus" },
		{ F_DISPOSITION, "", "disposition: missing" },
		{ F_DISPOSITION, "None", "unknown value" },
		{ F_DKIM_RESULT, "Pass", "record[1]/auth_results/dkim[2]/"
		  "result: unknown value Pass" },
		{ F_DKIM_RESULT, "softfail", "dkim[2]/result: unknown" },
		{ F_SPF_RESULT, "error", "record[3]/auth_results/spf/result: "
		  "unknown value error" },
		{ F_SPF_RESULT, "", "spf/result: missing" },
		{ F_SPF_SCOPE, "helo", "spf/scope: unknown value helo" },
		{ F_REASON, "forwarded", "reason[2]/type: unknown value" },
		{ F_P, "", "policy_published/p: missing" },
		{ F_P, "pass", "policy_published/p: unknown value pass" },
		{ F_SP, "bogus", "policy_published/sp: unknown" },
		{ F_ADKIM, "relaxed", "policy_published/adkim: unknown" },
		{ F_TESTING, "yes", "policy_published/testing: unknown" },
		{ F_DISCOVERY, "dns", "discovery_method: unknown" },
		{ F_ORG, "", "report_metadata/org_name: missing" },
		{ F_ORG, "a\rb", "report_metadata/org_name: control" },
		{ F_ORG, "a\x7f", "org_name: control character" },
		{ F_ORG, "a\x1b[31m", "org_name: control character" },
		{ F_COMMENT, "a\x01", "reason[1]/comment: control character" },
		{ F_COMMENT, "tab\tand\nnewline", NULL },
		{ F_COMMENT, "\xc2\x85", "comment: control character" },	/* C1 */
		{ F_HEADER_FROM, "\xc3\x28", "record[3]/identifiers/header_from:"
		  " invalid UTF-8" },
		{ F_HEADER_FROM, "\xc0\xaf", "invalid UTF-8" },		/* overlong */
		{ F_HEADER_FROM, "\xe0\x80\xaf", "invalid UTF-8" },	/* overlong */
		{ F_HEADER_FROM, "\xf0\x8f\xbf\xbf", "invalid UTF-8" },	/* overlong */
		{ F_HEADER_FROM, "\xed\xa0\x80", "invalid UTF-8" },	/* surrogate */
		{ F_HEADER_FROM, "\xf4\x90\x80\x80", "invalid UTF-8" },	/* >10FFFF */
		{ F_HEADER_FROM, "ab\xe2\x82", "invalid UTF-8" },	/* truncated */
		{ F_HEADER_FROM, "\xff", "invalid UTF-8" },
		{ F_HEADER_FROM, "\xef\xbf\xbe", "not allowed in XML" },
		{ F_HEADER_FROM, "", "header_from: missing" },
		{ F_HEADER_FROM, "b\xc3\xbc\x63her.example", NULL },
		{ F_HUMAN, "x\x0c", "dkim[1]/human_result: control" },
		{ F_ENVELOPE_FROM, "a\r\nb", "envelope_from: control" },
		{ F_ERRORS, "one\r\ntwo", "report_metadata/error: control" },
		{ F_IP, "192.0.2.256", "record[2]/row/source_ip: 192.0.2.256 is"
		  " not an IPv4 or IPv6 address" },
		{ F_IP, "", "source_ip:" },
		{ F_IP, "192.0.2.1/24", "source_ip:" },
		{ F_IP, "fe80::1%eth0", "source_ip:" },
		{ F_IP, "example.com", "source_ip:" },
		{ F_REPORT_ID, "a b", "report_metadata/report_id: " },
		{ F_REPORT_ID, "<id@example.com>", "ridfmt" },
		{ F_REPORT_ID, "a..b", "ridfmt" },
		{ F_REPORT_ID, "a@b@c", "ridfmt" },
		{ F_REPORT_ID, "", "report_id: missing" },
		{ F_DKIM_DOMAIN, "", "dkim[3]/domain: missing" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf out = { 0 };
		char err[256] = "";
		struct fix f;
		int r;

		buf_appends(&out, "keep");
		fix_init(&f);
		set_field(&f, cases[i].w, cases[i].v);
		r = report_xml(&f.m, &f.p, f.rows, f.nrows, &out, err,
		    sizeof(err));
		if (cases[i].err == NULL) {
			if (r != 0)
				fail_msg("case %zu refused: %s", i, err);
		} else {
			if (r != -1)
				fail_msg("case %zu accepted", i);
			if (strstr(err, cases[i].err) == NULL)
				fail_msg("case %zu: err \"%s\" lacks \"%s\"", i,
				    err, cases[i].err);
			/* out unchanged */
			assert_int_equal(out.len, 4);
			assert_string_equal(out.data, "keep");
		}
		buf_free(&out);
	}
}

static void
test_xml_refused_counts(void **state)
{
	char err[256];
	struct buf out = { 0 };
	struct fix f;

	(void)state;
	fix_init(&f);
	assert_int_equal(report_xml(&f.m, &f.p, f.rows, 0, &out, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "no record"));
	assert_int_equal(report_xml(&f.m, &f.p, NULL, 1, &out, err,
	    sizeof(err)), -1);
	assert_int_equal(report_xml(NULL, &f.p, f.rows, 1, &out, err,
	    sizeof(err)), -1);

	fix_init(&f);
	f.rows[0].ndkim = REPORT_MAX_DKIM + 1;
	assert_int_equal(report_xml(&f.m, &f.p, f.rows, f.nrows, &out, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "record[1]/auth_results/dkim: 9, at most"));

	fix_init(&f);
	f.rows[1].nreasons = REPORT_MAX_REASONS + 1;
	assert_int_equal(report_xml(&f.m, &f.p, f.rows, f.nrows, &out, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "reason: 5, at most"));

	fix_init(&f);
	f.rows[0].dkim_aligned = 2;
	assert_int_equal(report_xml(&f.m, &f.p, f.rows, f.nrows, &out, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "record[1]/row/policy_evaluated/dkim/spf"));

	fix_init(&f);
	f.rows[2].count = -1;
	assert_int_equal(report_xml(&f.m, &f.p, f.rows, f.nrows, &out, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "record[3]/row/count: -1"));

	fix_init(&f);
	f.m.end = f.m.begin - 1;
	assert_int_equal(report_xml(&f.m, &f.p, f.rows, f.nrows, &out, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "date_range"));

	/* NULL strings read as "" (absent) */
	fix_init(&f);
	f.m.generator = NULL;
	f.p.sp = NULL;
	f.rows[1].envelope_from = NULL;
	f.rows[2].spf_domain = NULL;
	assert_int_equal(report_xml(&f.m, &f.p, f.rows, f.nrows, &out, err,
	    sizeof(err)), 0);
	assert_int_equal(out.len > 0, 1);
	buf_free(&out);
}

/* ----------------------------------------------------------------- gzip */

/* Inflates gz; the header's name into name. */
static void
gunzip(const struct buf *gz, struct buf *plain, char *name, size_t namelen,
    unsigned long *mtime)
{
	unsigned char chunk[4096];
	gz_header h;
	z_stream z;
	int r;

	memset(&z, 0, sizeof(z));
	memset(&h, 0, sizeof(h));
	name[0] = '\0';
	h.name = (Bytef *)name;
	h.name_max = (uInt)namelen;
	assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
	assert_int_equal(inflateGetHeader(&z, &h), Z_OK);
	z.next_in = (Bytef *)gz->data;
	z.avail_in = (uInt)gz->len;
	do {
		z.next_out = chunk;
		z.avail_out = sizeof(chunk);
		r = inflate(&z, Z_NO_FLUSH);
		if (r != Z_OK && r != Z_STREAM_END)
			fail_msg("inflate: %d", r);
		buf_append(plain, chunk, sizeof(chunk) - z.avail_out);
	} while (r != Z_STREAM_END);
	assert_int_equal(z.avail_in, 0);	/* nothing after the member */
	assert_int_equal(h.done, 1);
	*mtime = h.time;
	inflateEnd(&z);
}

static void
test_gzip(void **state)
{
	const char *fname = "receiver.example!example.com!1700000000!"
	    "1700086399.xml.gz";
	struct buf xml = { 0 }, gz = { 0 }, plain = { 0 }, big = { 0 };
	char name[256], err[256];
	unsigned long mtime;
	unsigned x = 1;
	struct fix f;
	size_t i;

	(void)state;
	fix_init(&f);
	write_xml(&f, &xml);
	assert_int_equal(report_gzip(xml.data, xml.len, fname, 1700086400,
	    &gz, err, sizeof(err)), 0);
	/* RFC 1952 2.3: ID1 ID2, CM 8, FLG.FNAME, MTIME, XFL 2 (level 9) */
	assert_true(gz.len > 18);
	assert_int_equal((unsigned char)gz.data[0], 0x1f);
	assert_int_equal((unsigned char)gz.data[1], 0x8b);
	assert_int_equal((unsigned char)gz.data[2], 8);
	assert_true(((unsigned char)gz.data[3] & 0x08) != 0);
	assert_int_equal((unsigned char)gz.data[8], 2);
	assert_string_equal(gz.data + 10, fname);
	assert_true(gz.len < xml.len);
	gunzip(&gz, &plain, name, sizeof(name), &mtime);
	assert_string_equal(name, fname);
	assert_int_equal(mtime, 1700086400);
	assert_int_equal(plain.len, xml.len);
	assert_memory_equal(plain.data, xml.data, xml.len);

	/* appended after what out held; empty input; no name, no mtime */
	buf_reset(&gz);
	buf_reset(&plain);
	buf_appends(&gz, "head");
	assert_int_equal(report_gzip("", 0, NULL, -5, &gz, err,
	    sizeof(err)), 0);
	assert_memory_equal(gz.data, "head", 4);
	assert_int_equal((unsigned char)gz.data[4 + 3] & 0x08, 0);
	buf_consume(&gz, 4);
	gunzip(&gz, &plain, name, sizeof(name), &mtime);
	assert_int_equal(plain.len, 0);
	assert_int_equal(mtime, 0);

	/* larger than one output chunk, incompressible */
	for (i = 0; i < 300000; i++) {
		x = x * 1103515245u + 12345u;
		buf_appendc(&big, (char)(x >> 16));
	}
	buf_reset(&gz);
	buf_reset(&plain);
	assert_int_equal(report_gzip(big.data, big.len, "big", 0, &gz, err,
	    sizeof(err)), 0);
	gunzip(&gz, &plain, name, sizeof(name), &mtime);
	assert_string_equal(name, "big");
	assert_int_equal(plain.len, big.len);
	assert_memory_equal(plain.data, big.data, big.len);

	buf_reset(&gz);
	assert_int_equal(report_gzip(NULL, 10, "x", 0, &gz, err,
	    sizeof(err)), -1);
	assert_int_equal(gz.len, 0);
	buf_free(&xml);
	buf_free(&gz);
	buf_free(&plain);
	buf_free(&big);
}

/* ------------------------------------------------------------- filename */

static void
test_filename(void **state)
{
	static const struct {
		const char *rcv, *dom;
		long long b, e;
		const char *uid;
		const char *want;	/* NULL: refused */
	} cases[] = {
		/* RFC 9990's example */
		{ "mail.receiver.example", "example.com", 1013662812,
		  1013749130, NULL,
		  "mail.receiver.example!example.com!1013662812!1013749130"
		  ".xml.gz" },
		{ "mail.receiver.example", "example.com", 1013662812,
		  1013749130, "",
		  "mail.receiver.example!example.com!1013662812!1013749130"
		  ".xml.gz" },
		{ "r.example", "Sub-1.example.com", 0, 0, "abcXYZ019",
		  "r.example!Sub-1.example.com!0!0!abcXYZ019.xml.gz" },
		{ "r.example", "example.com", 1, 2, "ab-c", NULL },
		{ "r.example", "example.com", 1, 2, "ab!c", NULL },
		{ "r.example", "example.com", 1, 2, "ab/c", NULL },
		{ "r.example", "example.com", 1, 2, "ab c", NULL },
		{ "r.example", "example.com", 1, 2, "\xc3\xa9", NULL },
		{ "r!example", "example.com", 1, 2, NULL, NULL },
		{ "r.example", "example.com/../x", 1, 2, NULL, NULL },
		{ "r.example", "..", 1, 2, NULL, NULL },
		{ "r.example", ".example.com", 1, 2, NULL, NULL },
		{ "r.example", "example..com", 1, 2, NULL, NULL },
		{ "", "example.com", 1, 2, NULL, NULL },
		{ NULL, "example.com", 1, 2, NULL, NULL },
		{ "r.example", "exa mple.com", 1, 2, NULL, NULL },
		{ "r.example", "example.com", -1, 2, NULL, NULL },
		{ "r.example", "example.com", 5, 4, NULL, NULL },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf out = { 0 };
		int r;

		buf_appends(&out, "x/");
		r = report_filename(cases[i].rcv, cases[i].dom, cases[i].b,
		    cases[i].e, cases[i].uid, &out);
		if (cases[i].want == NULL) {
			if (r != -1)
				fail_msg("case %zu accepted: %s", i, out.data);
			assert_string_equal(out.data, "x/");
		} else {
			if (r != 0)
				fail_msg("case %zu refused", i);
			assert_string_equal(out.data + 2, cases[i].want);
		}
		buf_free(&out);
	}
}

/* -------------------------------------------------------------- message */

/* The header of msg unfolded: field name -> value, first occurrence. */
static int
header_get(const char *msg, const char *name, struct buf *v)
{
	const char *end = strstr(msg, "\r\n\r\n"), *p = msg;
	size_t n = strlen(name);

	buf_reset(v);
	while (p < end) {
		const char *eol = strstr(p, "\r\n");

		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			p += n + 1;
			while (*p == ' ')
				p++;
			for (;;) {
				eol = strstr(p, "\r\n");
				buf_append(v, p, (size_t)(eol - p));
				if (eol[2] != ' ' && eol[2] != '\t')
					break;
				p = eol + 2;	/* unfold: drop the CRLF */
			}
			return 0;
		}
		p = eol + 2;
	}
	return -1;
}

/* Decodes base64 lines (CRLF separated) from p up to end. */
static void
b64_decode(const char *p, const char *end, struct buf *out)
{
	struct buf clean = { 0 };
	unsigned char *dec;
	int n, pad = 0;

	for (; p < end; p++)
		if (*p != '\r' && *p != '\n')
			buf_appendc(&clean, *p);
	assert_int_equal(clean.len % 4, 0);
	if (clean.len > 0 && clean.data[clean.len - 1] == '=')
		pad++;
	if (clean.len > 1 && clean.data[clean.len - 2] == '=')
		pad++;
	dec = malloc(clean.len);
	assert_non_null(dec);
	n = EVP_DecodeBlock(dec, (unsigned char *)clean.data, (int)clean.len);
	assert_true(n >= pad);
	buf_append(out, dec, (size_t)(n - pad));
	free(dec);
	buf_free(&clean);
}

static size_t
count_str(const char *hay, size_t len, const char *needle)
{
	size_t n = 0, k = strlen(needle);
	const char *p = hay, *end = hay + len;

	while (p < end && (p = memmem(p, (size_t)(end - p), needle, k)) != NULL) {
		n++;
		p += k;
	}
	return n;
}

struct mailfix {
	struct fix f;
	struct report_mail mail;
	const char *to[6];
	struct buf gz;
	struct buf fname;
};

static void
mailfix_init(struct mailfix *mf)
{
	struct buf xml = { 0 };
	char err[256];

	memset(mf, 0, sizeof(*mf));
	fix_init(&mf->f);
	write_xml(&mf->f, &xml);
	assert_int_equal(report_filename("receiver.example", "example.com",
	    mf->f.m.begin, mf->f.m.end, "abc123", &mf->fname), 0);
	assert_int_equal(report_gzip(xml.data, xml.len, mf->fname.data,
	    mf->f.m.end, &mf->gz, err, sizeof(err)), 0);
	buf_free(&xml);
	mf->to[0] = "dmarc-rua@example.com";
	mf->to[1] = "a-rather-long-mailbox-name-for-reports@reports.example.net";
	mf->to[2] = "third-recipient-with-a-long-name@dmarc.analytics.example";
	mf->mail.from = "dmarc-reports@receiver.example";
	mf->mail.to = mf->to;
	mf->mail.nto = 3;
	mf->mail.submitter = "receiver.example";
	mf->mail.filename = mf->fname.data;
	mf->mail.date = 1700090000;
}

static void
mailfix_free(struct mailfix *mf)
{
	buf_free(&mf->gz);
	buf_free(&mf->fname);
}

/* Every line ends in CRLF, none over 998 octets; longest one returned. */
static size_t
check_lines(const struct buf *msg)
{
	size_t i, col = 0, longest = 0;

	assert_true(msg->len >= 2);
	assert_memory_equal(msg->data + msg->len - 2, "\r\n", 2);
	for (i = 0; i < msg->len; i++) {
		if (msg->data[i] == '\r') {
			if (i + 1 >= msg->len || msg->data[i + 1] != '\n')
				fail_msg("bare CR at %zu", i);
			if (col > longest)
				longest = col;
			col = 0;
			i++;
		} else if (msg->data[i] == '\n') {
			fail_msg("bare LF at %zu", i);
		} else {
			col++;
			assert_true(col <= 998);
			/* 7bit: the report goes as base64 */
			assert_true((unsigned char)msg->data[i] < 0x80);
			assert_true(msg->data[i] != '\0');
		}
	}
	return longest;
}

static void
check_message(const struct mailfix *mf, const struct buf *msg,
    const char *want_msgid, int short_words)
{
	static const char subject_re[] =
	    "^Report[ \t]+Domain:[ \t]+([A-Za-z0-9._-]+)[ \t]+"
	    "Submitter:[ \t]+([A-Za-z0-9._-]+)[ \t]+"
	    "Report-ID:[ \t]+<([^<> \t]+)>$";
	static const char date_re[] =
	    "^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
	    "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
	    "[0-9]{2}:[0-9]{2}:[0-9]{2} \\+0000$";
	struct buf v = { 0 }, want = { 0 }, gz = { 0 };
	regmatch_t mt[4];
	regex_t re;
	const char *body, *p, *att, *b64, *close;
	char bnd[128], delim[140], date[64];
	time_t t = (time_t)mf->mail.date;
	struct tm tm;
	size_t i, nd;

	check_lines(msg);
	assert_non_null(body = strstr(msg->data, "\r\n\r\n"));
	body += 4;
	/* header lines: folded to at most 78 when all words are short */
	for (p = msg->data; short_words && p < body - 2;
	    p = strstr(p, "\r\n") + 2)
		assert_true((size_t)(strstr(p, "\r\n") - p) <= 78);

	assert_int_equal(header_get(msg->data, "From", &v), 0);
	assert_string_equal(v.data, mf->mail.from);
	assert_int_equal(header_get(msg->data, "To", &v), 0);
	for (i = 0; i < mf->mail.nto; i++)
		buf_appendf(&want, "%s%s", i ? ", " : "", mf->mail.to[i]);
	assert_string_equal(v.data, want.data);
	assert_int_equal(header_get(msg->data, "Date", &v), 0);
	assert_int_equal(regcomp(&re, date_re, REG_EXTENDED), 0);
	assert_int_equal(regexec(&re, v.data, 0, NULL, 0), 0);
	regfree(&re);
	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	assert_string_equal(v.data, date);
	assert_int_equal(header_get(msg->data, "Message-ID", &v), 0);
	assert_string_equal(v.data, want_msgid);
	assert_int_equal(header_get(msg->data, "Auto-Submitted", &v), 0);
	assert_string_equal(v.data, "auto-generated");
	assert_int_equal(header_get(msg->data, "MIME-Version", &v), 0);
	assert_string_equal(v.data, "1.0");

	/* RFC 9990 3.1.1 dmarc-subject */
	assert_int_equal(header_get(msg->data, "Subject", &v), 0);
	assert_int_equal(regcomp(&re, subject_re, REG_EXTENDED), 0);
	if (regexec(&re, v.data, 4, mt, 0) != 0)
		fail_msg("Subject does not match the ABNF: %s", v.data);
	regfree(&re);
	assert_int_equal(mt[1].rm_eo - mt[1].rm_so, strlen(mf->f.p.domain));
	assert_memory_equal(v.data + mt[1].rm_so, mf->f.p.domain,
	    strlen(mf->f.p.domain));
	assert_memory_equal(v.data + mt[2].rm_so, mf->mail.submitter,
	    strlen(mf->mail.submitter));
	assert_int_equal(mt[3].rm_eo - mt[3].rm_so, strlen(mf->f.m.report_id));
	assert_memory_equal(v.data + mt[3].rm_so, mf->f.m.report_id,
	    strlen(mf->f.m.report_id));

	/* multipart/mixed and its boundary */
	assert_int_equal(header_get(msg->data, "Content-Type", &v), 0);
	assert_int_equal(strncmp(v.data, "multipart/mixed; boundary=\"", 27), 0);
	p = v.data + 27;
	assert_true(strchr(p, '"') != NULL && strchr(p, '"') - p < 71);
	snprintf(bnd, sizeof(bnd), "%.*s", (int)(strchr(p, '"') - p), p);
	assert_true(strlen(bnd) >= 16);
	/* the boundary occurs only as the three delimiter lines */
	nd = count_str(body, msg->len - (size_t)(body - msg->data), bnd);
	assert_int_equal(nd, 3);
	snprintf(delim, sizeof(delim), "\r\n--%s\r\n", bnd);
	assert_int_equal(count_str(msg->data, msg->len, delim), 2);
	snprintf(delim, sizeof(delim), "\r\n--%s--\r\n", bnd);
	assert_non_null(close = strstr(body, delim));
	assert_int_equal(close + strlen(delim), msg->data + msg->len);

	/* the annotation */
	snprintf(delim, sizeof(delim), "--%s\r\n", bnd);
	assert_non_null(p = strstr(msg->data, delim));
	p += strlen(delim);
	assert_int_equal(strncmp(p, "Content-Type: text/plain", 24), 0);
	buf_reset(&v);
	{
		const char *tb = strstr(p, "\r\n\r\n") + 4;
		const char *te = strstr(tb, "\r\n--");

		/* lines joined with a space, as the text was wrapped */
		for (; tb < te; tb++)
			if (*tb != '\n')
				buf_appendc(&v, *tb == '\r' ? ' ' : *tb);
		while (v.len > 0 && v.data[v.len - 1] == ' ')
			v.data[--v.len] = '\0';
	}
	buf_reset(&want);
	buf_appendf(&want, "This is a DMARC aggregate report for %s from %s "
	    "covering 2023-11-14 22:13:20 to 2023-11-15 22:13:19 (UTC).",
	    mf->f.p.domain, mf->mail.submitter);
	/* the dates above are what 1700000000 and 1700086399 are in UTC */
	assert_int_equal(mf->f.m.begin, 1700000000);
	assert_string_equal(v.data, want.data);

	/* the attachment */
	assert_non_null(att = strstr(p, delim));
	att += strlen(delim);
	b64 = strstr(att, "\r\n\r\n");
	assert_non_null(b64);
	{
		struct buf hdr = { 0 };

		buf_append(&hdr, att, (size_t)(b64 - att) + 4);
		assert_int_equal(header_get(hdr.data, "Content-Type", &v), 0);
		buf_reset(&want);
		buf_appendf(&want, "application/gzip; name=\"%s\"",
		    mf->mail.filename);
		assert_string_equal(v.data, want.data);
		assert_int_equal(header_get(hdr.data,
		    "Content-Transfer-Encoding", &v), 0);
		assert_string_equal(v.data, "base64");
		assert_int_equal(header_get(hdr.data, "Content-Disposition",
		    &v), 0);
		buf_reset(&want);
		buf_appendf(&want, "attachment; filename=\"%s\"",
		    mf->mail.filename);
		assert_string_equal(v.data, want.data);
		buf_free(&hdr);
	}
	b64 += 4;
	/* lines of 76 but the last */
	for (p = b64; p < close; p = strstr(p, "\r\n") + 2) {
		size_t n = (size_t)(strstr(p, "\r\n") - p);
		const char *next = strstr(p, "\r\n") + 2;

		assert_true(n <= 76);
		if (next < close)
			assert_int_equal(n, 76);
	}
	b64_decode(b64, close, &gz);
	assert_int_equal(gz.len, mf->gz.len);
	assert_memory_equal(gz.data, mf->gz.data, gz.len);
	buf_free(&v);
	buf_free(&want);
	buf_free(&gz);
}

static void
test_message(void **state)
{
	struct buf msg = { 0 };
	struct mailfix mf;
	char err[256] = "";
	char mid[128];

	(void)state;
	mailfix_init(&mf);
	buf_appends(&msg, "X");
	if (report_message(&mf.mail, &mf.f.m, &mf.f.p, mf.gz.data, mf.gz.len,
	    &msg, err, sizeof(err)) != 0)
		fail_msg("report_message: %s", err);
	assert_int_equal(msg.data[0], 'X');
	buf_consume(&msg, 1);
	snprintf(mid, sizeof(mid), "<%s>", mf.f.m.report_id);
	check_message(&mf, &msg, mid, 1);
	/* two messages, two boundaries */
	{
		struct buf m2 = { 0 }, a = { 0 }, b = { 0 };

		assert_int_equal(report_message(&mf.mail, &mf.f.m, &mf.f.p,
		    mf.gz.data, mf.gz.len, &m2, err, sizeof(err)), 0);
		header_get(msg.data, "Content-Type", &a);
		header_get(m2.data, "Content-Type", &b);
		assert_string_not_equal(a.data, b.data);
		buf_free(&m2);
		buf_free(&a);
		buf_free(&b);
	}
	buf_free(&msg);
	mailfix_free(&mf);
}

/* Long names fold the Subject at FWS; a Report-ID without "@" becomes a
 * msg-id with the submitter; one recipient; a big attachment. */
static void
test_message_long(void **state)
{
	static const char dom[] =
	    "a-very-long-label-of-sixty-three-octets-to-force-the-subject-xx."
	    "example.com";
	static const char sub[] =
	    "another-long-label-of-sixty-three-octets-to-force-a-fold-xxxxxx."
	    "receiver.example";
	struct buf msg = { 0 }, big = { 0 };
	struct mailfix mf;
	char err[256] = "", mid[256];
	unsigned x = 7;
	size_t i;

	(void)state;
	mailfix_init(&mf);
	mf.f.p.domain = dom;
	mf.mail.submitter = sub;
	mf.f.m.report_id = "rid.20231114";
	mf.mail.nto = 1;
	for (i = 0; i < 20000; i++) {
		x = x * 1103515245u + 12345u;
		buf_appendc(&big, (char)(x >> 16));
	}
	buf_free(&mf.gz);
	mf.gz = big;
	assert_int_equal(report_message(&mf.mail, &mf.f.m, &mf.f.p,
	    mf.gz.data, mf.gz.len, &msg, err, sizeof(err)), 0);
	/* folded: more than one line for the Subject */
	assert_non_null(strstr(msg.data, "Subject: Report Domain:"));
	assert_non_null(strstr(msg.data, "\r\n Submitter:"));
	snprintf(mid, sizeof(mid), "<rid.20231114@%s>", sub);
	check_message(&mf, &msg, mid, 0);
	buf_free(&msg);
	mailfix_free(&mf);
}

static void
test_message_refused(void **state)
{
	static const char *const bad_to[] = { "ok@example.com",
		"x@example.com\r\nBcc: evil@example.net" };
	static const char *const comma_to[] = { "a@example.com, b@example.com" };
	struct buf msg = { 0 };
	struct mailfix mf;
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < 12; i++) {
		mailfix_init(&mf);
		switch (i) {
		case 0: mf.mail.nto = 0; break;
		case 1: mf.mail.to = bad_to; mf.mail.nto = 2; break;
		case 2: mf.mail.from = "a@b.example\r\nBcc: x@y.example"; break;
		case 3: mf.mail.from = ""; break;
		case 4: mf.mail.submitter = "recv!example"; break;
		case 5: mf.f.p.domain = "exa mple.com"; break;
		case 6: mf.f.m.report_id = "a b"; break;
		case 7: mf.mail.filename = "a\"b.xml.gz"; break;
		case 8: mf.mail.filename = "../etc/passwd"; break;
		case 9: mf.gz.len = 0; break;
		case 10: mf.mail.to = comma_to; mf.mail.nto = 1; break;
		case 11: mf.mail.from = "caf\xc3\xa9@example.com"; break;
		}
		buf_reset(&msg);
		err[0] = '\0';
		if (report_message(&mf.mail, &mf.f.m, &mf.f.p, mf.gz.data,
		    mf.gz.len, &msg, err, sizeof(err)) != -1)
			fail_msg("case %zu accepted", i);
		assert_int_equal(msg.len, 0);
		assert_true(strlen(err) > 0);
		mailfix_free(&mf);
	}
	buf_free(&msg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xml_validates),
		cmocka_unit_test(test_schema_rejects),
		cmocka_unit_test(test_conformance_samples),
		cmocka_unit_test(test_xml_roundtrip),
		cmocka_unit_test(test_xml_addresses),
		cmocka_unit_test(test_dkim_order_classes),
		cmocka_unit_test(test_dkim_order_cap),
		cmocka_unit_test(test_xml_refused),
		cmocka_unit_test(test_xml_refused_counts),
		cmocka_unit_test(test_gzip),
		cmocka_unit_test(test_filename),
		cmocka_unit_test(test_message),
		cmocka_unit_test(test_message_long),
		cmocka_unit_test(test_message_refused),
	};
	int r;

	xmlInitParser();
	r = cmocka_run_group_tests(tests, NULL, NULL);
	xmlCleanupParser();
	return r;
}
