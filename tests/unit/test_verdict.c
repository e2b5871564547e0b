/*
 * Tests for policy/verdict.c: the end-of-data decision from a DMARC
 * outcome, the path the message took and the local configuration, as a
 * table; and the Authentication-Results comment.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "policy/verdict.h"

enum cfgbits {
	C_NOENFORCE = 1 << 0,
	C_OREJECT = 1 << 1,
	C_BADFROM_ACCEPT = 1 << 2,
	C_TEMP_ACCEPT = 1 << 3,
	C_HOLD = 1 << 4,
	C_SECONDARY = 1 << 5,
	C_ALLOW = 1 << 6,	/* lists below filled */
};

struct vcase {
	const char *what;
	enum dmarc_result result;
	enum dmarc_policy effective;
	int uncertain;
	enum verdict_path path;
	int cfg;
	const char *ip;
	const char *sender;
	const char *from;	/* local@domain */
	enum verdict_action action;
	const char *dis;
	const char *ar_action;
	const char *override;
	int code;
};

static const struct vcase cases[] = {
	{ "pass", DMARC_PASS, DMARC_P_REJECT, 0, VERDICT_PATH_DIRECT, 0,
	    "192.0.2.1", "a@s.example", "a@s.example", VERDICT_DELIVER, "none",
	    "none", NULL, 0 },
	{ "no policy", DMARC_NONE, DMARC_P_NONE, 0, VERDICT_PATH_DIRECT, 0,
	    "192.0.2.1", "a@s.example", "a@s.example", VERDICT_DELIVER, "none",
	    "none", NULL, 0 },
	{ "fail p=none", DMARC_FAIL, DMARC_P_NONE, 0, VERDICT_PATH_DIRECT, 0,
	    "192.0.2.1", "a@s.example", "a@s.example", VERDICT_DELIVER, "none",
	    "none", NULL, 0 },
	{ "fail reject", DMARC_FAIL, DMARC_P_REJECT, 0, VERDICT_PATH_DIRECT, 0,
	    "192.0.2.1", "a@s.example", "a@s.example", VERDICT_REJECT, "reject",
	    "reject", NULL, 550 },
	{ "fail quarantine tag", DMARC_FAIL, DMARC_P_QUARANTINE, 0,
	    VERDICT_PATH_DIRECT, 0, "192.0.2.1", "a@s.example", "a@s.example",
	    VERDICT_TAG, "quarantine", "quarantine", NULL, 0 },
	{ "fail quarantine hold", DMARC_FAIL, DMARC_P_QUARANTINE, 0,
	    VERDICT_PATH_DIRECT, C_HOLD, "192.0.2.1", "a@s.example",
	    "a@s.example", VERDICT_HOLD, "quarantine", "quarantine", NULL, 0 },
	{ "reject overridden", DMARC_FAIL, DMARC_P_REJECT, 0,
	    VERDICT_PATH_DIRECT, C_OREJECT, "192.0.2.1", "a@s.example",
	    "a@s.example", VERDICT_TAG, "quarantine", "oreject", NULL, 0 },
	{ "reject overridden, hold", DMARC_FAIL, DMARC_P_REJECT, 0,
	    VERDICT_PATH_DIRECT, C_OREJECT | C_HOLD, "192.0.2.1", "a@s.example",
	    "a@s.example", VERDICT_HOLD, "quarantine", "oreject", NULL, 0 },
	{ "not enforcing", DMARC_FAIL, DMARC_P_REJECT, 0, VERDICT_PATH_DIRECT,
	    C_NOENFORCE, "192.0.2.1", "a@s.example", "a@s.example",
	    VERDICT_DELIVER, "none", "none", "local_policy", 0 },
	{ "relay skip", DMARC_FAIL, DMARC_P_REJECT, 0, VERDICT_PATH_RELAY_SKIP,
	    0, "127.0.0.1", "a@s.example", "a@s.example", VERDICT_DELIVER,
	    "none", "skip", NULL, 0 },
	{ "secondary MX skips", DMARC_FAIL, DMARC_P_REJECT, 0,
	    VERDICT_PATH_DIRECT, C_SECONDARY, "192.0.2.1", "a@s.example",
	    "a@s.example", VERDICT_DELIVER, "none", "skip", NULL, 0 },
	{ "recovered enforces", DMARC_FAIL, DMARC_P_REJECT, 0,
	    VERDICT_PATH_RELAY_RECOVERED, C_SECONDARY, "198.51.100.7",
	    "a@s.example", "a@s.example", VERDICT_REJECT, "reject", "reject",
	    NULL, 550 },
	{ "allowed sender address", DMARC_FAIL, DMARC_P_REJECT, 0,
	    VERDICT_PATH_DIRECT, C_ALLOW, "192.0.2.1", "x@o.example",
	    "boss@partner.example", VERDICT_DELIVER, "none", "none",
	    "local_policy", 0 },
	{ "allowed sender address, other case", DMARC_FAIL, DMARC_P_REJECT, 0,
	    VERDICT_PATH_DIRECT, C_ALLOW, "192.0.2.1", "x@o.example",
	    "Boss@Partner.Example", VERDICT_DELIVER, "none", "none",
	    "local_policy", 0 },
	{ "other address of that domain not allowed", DMARC_FAIL,
	    DMARC_P_REJECT, 0, VERDICT_PATH_DIRECT, C_ALLOW, "192.0.2.1",
	    "x@o.example", "intern@partner.example", VERDICT_REJECT, "reject",
	    "reject", NULL, 550 },
	{ "allowed domain by MAIL FROM", DMARC_FAIL, DMARC_P_QUARANTINE, 0,
	    VERDICT_PATH_DIRECT, C_ALLOW, "192.0.2.1", "bounce@lists.example",
	    "a@s.example", VERDICT_DELIVER, "none", "none", "local_policy", 0 },
	{ "subdomain of an allowed domain is not allowed", DMARC_FAIL,
	    DMARC_P_REJECT, 0, VERDICT_PATH_DIRECT, C_ALLOW, "192.0.2.1",
	    "x@o.example", "a@evil.lists.example", VERDICT_REJECT, "reject",
	    "reject", NULL, 550 },
	{ "allowed ip", DMARC_FAIL, DMARC_P_REJECT, 0, VERDICT_PATH_DIRECT,
	    C_ALLOW, "203.0.113.77", "a@s.example", "a@s.example",
	    VERDICT_DELIVER, "none", "none", "local_policy", 0 },
	{ "trusted forwarder", DMARC_FAIL, DMARC_P_REJECT, 0,
	    VERDICT_PATH_DIRECT, C_ALLOW, "198.51.100.20", "a@s.example",
	    "a@s.example", VERDICT_DELIVER, "none", "none", "trusted_forwarder", 0 },
	{ "mailing list", DMARC_FAIL, DMARC_P_QUARANTINE, 0,
	    VERDICT_PATH_DIRECT, C_ALLOW, "2001:db8::25", "a@s.example",
	    "a@s.example", VERDICT_DELIVER, "none", "none", "mailing_list", 0 },
	{ "unlisted ip", DMARC_FAIL, DMARC_P_REJECT, 0, VERDICT_PATH_DIRECT,
	    C_ALLOW, "203.0.114.1", "a@s.example", "a@s.example",
	    VERDICT_REJECT, "reject", "reject", NULL, 550 },
	{ "temperror defers", DMARC_TEMPERROR, DMARC_P_NONE, 0,
	    VERDICT_PATH_DIRECT, 0, "192.0.2.1", "a@s.example", "a@s.example",
	    VERDICT_DEFER, "none", "defer", NULL, 451 },
	{ "temperror accepted", DMARC_TEMPERROR, DMARC_P_NONE, 0,
	    VERDICT_PATH_DIRECT, C_TEMP_ACCEPT, "192.0.2.1", "a@s.example",
	    "a@s.example", VERDICT_DELIVER, "none", "none", NULL, 0 },
	{ "temperror via relay", DMARC_TEMPERROR, DMARC_P_NONE, 0,
	    VERDICT_PATH_RELAY_SKIP, 0, "127.0.0.1", "a@s.example",
	    "a@s.example", VERDICT_DELIVER, "none", "none", NULL, 0 },
	{ "uncertain failure defers", DMARC_FAIL, DMARC_P_REJECT, 1,
	    VERDICT_PATH_DIRECT, 0, "192.0.2.1", "a@s.example", "a@s.example",
	    VERDICT_DEFER, "none", "defer", NULL, 451 },
	/* etc/mxgate.ini temperror = accept: "deliver"; a DNS failure is
	 * never a rejection */
	{ "uncertain failure, temperror accept", DMARC_FAIL, DMARC_P_REJECT, 1,
	    VERDICT_PATH_DIRECT, C_TEMP_ACCEPT, "192.0.2.1", "a@s.example",
	    "a@s.example", VERDICT_DELIVER, "none", "none", NULL, 0 },
	{ "uncertain quarantine, temperror accept", DMARC_FAIL,
	    DMARC_P_QUARANTINE, 1, VERDICT_PATH_DIRECT, C_TEMP_ACCEPT,
	    "192.0.2.1", "a@s.example", "a@s.example", VERDICT_DELIVER, "none",
	    "none", NULL, 0 },
	{ "uncertain under p=none delivers", DMARC_FAIL, DMARC_P_NONE, 1,
	    VERDICT_PATH_DIRECT, 0, "192.0.2.1", "a@s.example", "a@s.example",
	    VERDICT_DELIVER, "none", "none", NULL, 0 },
	{ "bad From rejected", DMARC_PERMERROR, DMARC_P_NONE, 0,
	    VERDICT_PATH_DIRECT, 0, "192.0.2.1", "a@s.example", NULL,
	    VERDICT_REJECT, "reject", "reject", NULL, 550 },
	{ "bad From accepted", DMARC_PERMERROR, DMARC_P_NONE, 0,
	    VERDICT_PATH_DIRECT, C_BADFROM_ACCEPT, "192.0.2.1", "a@s.example",
	    NULL, VERDICT_DELIVER, "none", "none", NULL, 0 },
	{ "bad From via relay skip", DMARC_PERMERROR, DMARC_P_NONE, 0,
	    VERDICT_PATH_RELAY_SKIP, 0, "127.0.0.1", "a@s.example", NULL,
	    VERDICT_DELIVER, "none", "skip", NULL, 0 },
	{ "bad From from an allowed ip", DMARC_PERMERROR, DMARC_P_NONE, 0,
	    VERDICT_PATH_DIRECT, C_ALLOW, "203.0.113.1", "a@s.example", NULL,
	    VERDICT_DELIVER, "none", "none", "local_policy", 0 },
};

static void
run_case(const struct vcase *c)
{
	static const char *const senders[] = { "boss@partner.example",
	    "lists.example" };
	struct cidr_list ips = { 0 }, fwd = { 0 }, lists = { 0 };
	struct verdict_config vc;
	struct verdict_input in;
	struct dmarc_outcome o;
	struct dmarc_record rec;
	struct verdict v;
	char local[128] = "", *at;

	assert_int_equal(cidr_list_add(&ips, "203.0.113.0/24"), 0);
	assert_int_equal(cidr_list_add(&fwd, "198.51.100.16/28"), 0);
	assert_int_equal(cidr_list_add(&lists, "2001:db8::/64"), 0);
	memset(&vc, 0, sizeof(vc));
	vc.enforce = !(c->cfg & C_NOENFORCE);
	vc.reject_override = !!(c->cfg & C_OREJECT);
	vc.bad_from_reject = !(c->cfg & C_BADFROM_ACCEPT);
	vc.temperror_defer = !(c->cfg & C_TEMP_ACCEPT);
	vc.quarantine_hold = !!(c->cfg & C_HOLD);
	vc.primary_mx = !(c->cfg & C_SECONDARY);
	if (c->cfg & C_ALLOW) {
		vc.allow_ips = &ips;
		vc.trusted_forwarders = &fwd;
		vc.mailing_lists = &lists;
		vc.allow_senders = senders;
		vc.nallow_senders = 2;
	}
	memset(&rec, 0, sizeof(rec));
	rec.p = c->effective;
	memset(&o, 0, sizeof(o));
	o.result = c->result;
	o.reason = "why";
	o.author_domain = "s.example";
	o.record = &rec;
	o.requested = o.effective = c->effective;
	o.uncertain = c->uncertain;
	memset(&in, 0, sizeof(in));
	in.dmarc = &o;
	in.path = c->path;
	in.client_ip = c->ip;
	in.sender = c->sender;
	if (c->from) {
		snprintf(local, sizeof(local), "%s", c->from);
		at = strchr(local, '@');
		*at = '\0';
		in.from_local = local;
		in.from_domain = at + 1;
	}
	verdict_decide(&vc, &in, &v);
	if (v.action != c->action || strcmp(v.disposition, c->dis) != 0 ||
	    strcmp(v.ar_action, c->ar_action) != 0 || v.code != c->code ||
	    (c->override == NULL) != (v.override == NULL) ||
	    (c->override && strcmp(c->override, v.override) != 0))
		fail_msg("%s: got %s dis=%s action=%s override=%s code=%d (%s)",
		    c->what, verdict_action_name(v.action), v.disposition,
		    v.ar_action, v.override ? v.override : "-", v.code, v.why);
	if (v.code) {
		assert_non_null(v.enhanced);
		assert_int_equal(v.enhanced[0], v.code / 100 + '0');
		assert_true(strlen(v.text) > 10);
	}
	cidr_list_free(&ips);
	cidr_list_free(&fwd);
	cidr_list_free(&lists);
}

static void
test_verdict_table(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
}

static void
test_verdict_not_evaluated(void **state)
{
	struct verdict_config vc;
	struct verdict_input in;
	struct verdict v;

	memset(&vc, 0, sizeof(vc));
	vc.enforce = 1;
	memset(&in, 0, sizeof(in));
	verdict_decide(&vc, &in, &v);
	assert_int_equal(v.action, VERDICT_DELIVER);
	assert_null(v.override);
}

static void
test_verdict_reject_text(void **state)
{
	struct verdict_config vc;
	struct verdict_input in;
	struct dmarc_outcome o;
	struct dmarc_record rec;
	struct verdict v;

	memset(&vc, 0, sizeof(vc));
	vc.enforce = vc.primary_mx = 1;
	memset(&rec, 0, sizeof(rec));
	rec.p = DMARC_P_REJECT;
	memset(&o, 0, sizeof(o));
	o.result = DMARC_FAIL;
	o.reason = "no aligned identifier";
	o.author_domain = "bank.example";
	o.record = &rec;
	o.requested = o.effective = DMARC_P_REJECT;
	memset(&in, 0, sizeof(in));
	in.dmarc = &o;
	in.client_ip = "192.0.2.1";
	in.sender = "";
	verdict_decide(&vc, &in, &v);
	assert_int_equal(v.code, 550);
	assert_string_equal(v.enhanced, "5.7.1");
	assert_non_null(strstr(v.text, "DMARC"));
	assert_non_null(strstr(v.text, "bank.example"));
	assert_non_null(strstr(v.text, "no aligned identifier"));
}

static void
test_verdict_comment(void **state)
{
	struct dmarc_outcome o;
	struct dmarc_record rec;
	struct verdict v;
	struct buf b = { 0 };

	memset(&rec, 0, sizeof(rec));
	rec.p = DMARC_P_REJECT;
	rec.sp = DMARC_P_UNSET;
	memset(&o, 0, sizeof(o));
	o.result = DMARC_FAIL;
	o.reason = "no aligned identifier";
	o.author_domain = "bank.example";
	o.record = &rec;
	memset(&v, 0, sizeof(v));
	v.disposition = "quarantine";
	v.override = "mailing_list";
	assert_int_equal(verdict_comment(&o, &v, "hybrid=skip", &b), 0);
	assert_string_equal(b.data, "p=reject sp=reject dis=quarantine "
	    "override=mailing_list hybrid=skip; no aligned identifier");
	buf_free(&b);

	rec.p = DMARC_P_UNSET;
	rec.sp = DMARC_P_QUARANTINE;
	rec.testing = 1;
	o.result = DMARC_PASS;
	v.override = NULL;
	v.disposition = "none";
	assert_int_equal(verdict_comment(&o, &v, NULL, &b), 0);
	assert_string_equal(b.data, "p=none sp=quarantine dis=none testing");
	buf_free(&b);

	o.record = NULL;
	o.result = DMARC_NONE;
	o.reason = "no policy record";
	assert_int_equal(verdict_comment(&o, &v, NULL, &b), 0);
	assert_string_equal(b.data, "no policy record");
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verdict_table),
		cmocka_unit_test(test_verdict_not_evaluated),
		cmocka_unit_test(test_verdict_reject_text),
		cmocka_unit_test(test_verdict_comment),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
