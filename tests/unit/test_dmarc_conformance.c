/*
 * Third-party vectors for auth/orgdomain.c and auth/dmarc_record.c:
 *   - the Public Suffix List's own tests (tests.txt) through
 *     orgdomain_psl() with the list in the same folder: every active case
 *     must pass (U-labels compared as A-labels, as SOURCE.md says);
 *   - OpenDMARC's unit-test tables (opendmarc-unit-vectors.yml): record
 *     parsing, alignment and organizational domains. Where mxgate follows
 *     RFC 9989 and OpenDMARC does not, the test asserts mxgate's
 *     documented answer; each such record is listed in `differs` with the
 *     reason, and every entry there must be met in the file.
 * The from_header_domain list belongs to the address parser
 * (smtp/address.c) and is not run here.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "auth/dmarc.h"
#include "auth/orgdomain.h"

#define PSL_DIR		"../shared/conformance/publicsuffix-list/"
#define ODMARC_DIR	"../shared/conformance/opendmarc-testfiles/"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static struct orgdomain_psl *psl;

static int
setup(void **state)
{
	char err[256];

	if (access(PSL_DIR "public_suffix_list.dat", R_OK) != 0)
		return 0;	/* the tests skip */
	if ((psl = orgdomain_psl_load(PSL_DIR "public_suffix_list.dat", err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	orgdomain_psl_free(psl);
	return 0;
}

/* ---- publicsuffix-list/tests.txt ---- */

static void
test_psl_vectors(void **state)
{
	char line[512], in[256], want[256], wa[300], got[300];
	int ran = 0, failed = 0, rc;
	FILE *fp;

	if (psl == NULL || (fp = fopen(PSL_DIR "tests.txt", "r")) == NULL) {
		printf("skipped: %s absent\n", PSL_DIR);
		skip();
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (strncmp(line, "//", 2) == 0 ||
		    sscanf(line, "%255s %255s", in, want) != 2)
			continue;
		ran++;
		/* "null" input is no input */
		rc = orgdomain_psl(psl, strcmp(in, "null") == 0 ? NULL : in,
		    got, sizeof(got));
		if (strcmp(want, "null") == 0) {
			if (rc != -1) {
				failed++;
				printf("FAIL psl %s: got %s, expected none\n", in,
				    got);
			}
			continue;
		}
		/* the expected answer in A-labels, lower case */
		assert_int_equal(orgdomain_ascii(want, wa, sizeof(wa)), 0);
		if (rc != 0 || strcmp(got, wa) != 0) {
			failed++;
			printf("FAIL psl %s: got %s, expected %s\n", in,
			    rc == 0 ? got : "none", wa);
		}
	}
	fclose(fp);
	printf("psl: %d ran, %d passed, %d failed\n", ran, ran - failed, failed);
	/* 78 active cases in the 2016 file */
	assert_true(ran >= 78);
	assert_int_equal(failed, 0);
}

/* ---- opendmarc-unit-vectors.yml ---- */

static yaml_node_t *
map_get(yaml_document_t *d, yaml_node_t *map, const char *key)
{
	yaml_node_pair_t *p;

	if (map == NULL || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (p = map->data.mapping.pairs.start;
	    p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(d, p->key);

		if (k != NULL && k->type == YAML_SCALAR_NODE &&
		    strcmp((char *)k->data.scalar.value, key) == 0)
			return yaml_document_get_node(d, p->value);
	}
	return NULL;
}

static const char *
scalar(yaml_node_t *n)
{
	if (n == NULL || n->type != YAML_SCALAR_NODE)
		return NULL;
	return (const char *)n->data.scalar.value;
}

/*
 * Records where mxgate's answer is not OpenDMARC's (its `expect`), and
 * ours: 0 usable, -2 a DMARC record that is unusable.
 */
static struct {
	const char *record;
	int ours;
	const char *why;
	int seen;
} differs[] = {
	{ "v=DMARC1; p=n;", -2,
	    "OpenDMARC matches p= by prefix; RFC 9989 4.8 dmarc-request is the "
	    "whole word, and a bad p= without rua= is unusable (4.10.1)", 0 },
	{ "v=DMARC1; p=none; adkim=bob;", 0,
	    "RFC 9989 4.8: a bad value falls back to the default (r)", 0 },
	{ "v=DMARC1; p=none; aspf=bob;", 0,
	    "RFC 9989 4.8: a bad value falls back to the default (r)", 0 },
	{ "v=DMARC1; p=none; rf=bob;", 0,
	    "rf= is gone from RFC 9989 (C.5.2); its value is kept raw", 0 },
	{ "v=DMARC1; p=none; rf=000000000000000000000000000000000", 0,
	    "rf= is gone from RFC 9989 (C.5.2); its value is kept raw", 0 },
	{ "v=DMARC1; p=none; ri=bob;", 0,
	    "ri= is gone from RFC 9989 (C.5.2); a bad value is ignored", 0 },
	{ "v=DMARC1; p=none; pct=500;", 0,
	    "pct= is gone from RFC 9989 (A.6); out of 0..100 it is ignored", 0 },
	{ "v=DMARC1; pct=100;", 0,
	    "RFC 9989 4.7 p: a record without p= is p=none (RFC 7489 needed "
	    "p= or a valid rua=)", 0 },
};

static void
record_vector(const char *rec, const char *expect, int *failed)
{
	struct dmarc_record r;
	char buf[DMARC_RECORD_MAX + 4];
	int rc = dmarc_record_parse(rec, strlen(rec), &r, buf, sizeof(buf));
	int want = strcmp(expect, "ok") == 0 ? 0 : 1;	/* 1: any error */
	size_t i;

	for (i = 0; i < NELEM(differs); i++)
		if (strcmp(differs[i].record, rec) == 0) {
			differs[i].seen = 1;
			if (rc != differs[i].ours) {
				(*failed)++;
				printf("FAIL record \"%s\": rc %d, mxgate documents "
				    "%d (%s)\n", rec, rc, differs[i].ours,
				    differs[i].why);
			}
			return;
		}
	if ((rc == 0) != (want == 0)) {
		(*failed)++;
		printf("FAIL record \"%s\": rc %d, OpenDMARC says %s\n", rec, rc,
		    expect);
	}
	/* where both accept, the policy must be what was written */
	if (rc == 0 && strstr(rec, "p=reject") != NULL)
		assert_int_equal(r.p, DMARC_P_REJECT);
}

static void
align_vector(const char *a, const char *b, const char *mode,
    const char *aligned, int *failed)
{
	char oa[256], ob[256];
	int ga, gb, got;

	/* the Organizational Domains by the PSL (RFC 7489 3.2) */
	ga = orgdomain_psl(psl, a, oa, sizeof(oa));
	gb = orgdomain_psl(psl, b, ob, sizeof(ob));
	got = dmarc_aligned(a, b, ga == 0 ? oa : NULL, gb == 0 ? ob : NULL,
	    strcmp(mode, "strict") == 0 ? DMARC_ALIGN_STRICT :
	    DMARC_ALIGN_RELAXED);
	if (got != (strcmp(aligned, "true") == 0)) {
		(*failed)++;
		printf("FAIL align %s / %s (%s): got %d, expected %s\n", a, b,
		    mode, got, aligned);
	}
}

static void
org_vector(const char *domain, const char *org, int *failed)
{
	char got[256];

	if (orgdomain_psl(psl, domain, got, sizeof(got)) != 0 ||
	    strcmp(got, org) != 0) {
		(*failed)++;
		printf("FAIL org %s: expected %s\n", domain, org);
	}
}

static int
each(yaml_document_t *d, yaml_node_t *root, const char *list,
    void (*fn)(yaml_document_t *, yaml_node_t *, int *), int *failed)
{
	yaml_node_t *seq = map_get(d, root, list);
	yaml_node_item_t *it;
	int n = 0;

	assert_non_null(seq);
	assert_int_equal(seq->type, YAML_SEQUENCE_NODE);
	for (it = seq->data.sequence.items.start;
	    it < seq->data.sequence.items.top; it++, n++)
		fn(d, yaml_document_get_node(d, *it), failed);
	return n;
}

static void
rec_item(yaml_document_t *d, yaml_node_t *m, int *failed)
{
	const char *rec = scalar(map_get(d, m, "record"));
	const char *exp = scalar(map_get(d, m, "expect"));

	assert_non_null(rec);
	assert_non_null(exp);
	record_vector(rec, exp, failed);
}

static void
align_item(yaml_document_t *d, yaml_node_t *m, int *failed)
{
	const char *a = scalar(map_get(d, m, "a")), *b = scalar(map_get(d, m,
	    "b")), *mode = scalar(map_get(d, m, "mode")),
	    *al = scalar(map_get(d, m, "aligned"));

	assert_true(a != NULL && b != NULL && mode != NULL && al != NULL);
	align_vector(a, b, mode, al, failed);
}

static void
org_item(yaml_document_t *d, yaml_node_t *m, int *failed)
{
	const char *dom = scalar(map_get(d, m, "domain")),
	    *org = scalar(map_get(d, m, "org"));

	assert_true(dom != NULL && org != NULL);
	org_vector(dom, org, failed);
}

static void
test_opendmarc_vectors(void **state)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root;
	int failed = 0, nrec, nal, norg;
	size_t i;
	FILE *fp;

	if (psl == NULL || (fp = fopen(ODMARC_DIR "opendmarc-unit-vectors.yml",
	    "rb")) == NULL) {
		printf("skipped: %s or %s absent\n", ODMARC_DIR, PSL_DIR);
		skip();
	}
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, fp);
	if (!yaml_parser_load(&parser, &doc))
		fail_msg("YAML error: %s", parser.problem ? parser.problem : "?");
	root = yaml_document_get_root_node(&doc);
	assert_non_null(root);
	nrec = each(&doc, root, "dmarc_record_parse", rec_item, &failed);
	nal = each(&doc, root, "alignment", align_item, &failed);
	norg = each(&doc, root, "org_domain", org_item, &failed);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	fclose(fp);
	printf("opendmarc: %d ran, %d passed, %d failed (%d records, %d "
	    "alignments, %d org domains)\n", nrec + nal + norg,
	    nrec + nal + norg - failed, failed, nrec, nal, norg);
	for (i = 0; i < NELEM(differs); i++)
		if (!differs[i].seen)
			fail_msg("difference not met in the file: \"%s\"",
			    differs[i].record);
	assert_true(nrec > 0 && nal > 0 && norg > 0);
	assert_int_equal(failed, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_psl_vectors),
		cmocka_unit_test(test_opendmarc_vectors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
