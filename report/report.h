/*
 * report/report: the data of DMARC aggregate reports (RFC 9990, the
 * aggregate-reporting companion of RFC 9989; RFC 7489 Appendix C before
 * it), shared by the store (report/store.h), the writer
 * (report/aggregate.h), the reader (report/import.h) and the sender
 * (report/send.h).
 *
 * Strings are NUL-terminated; "" stands for an element that is absent.
 * Who owns them is said by the call that hands a struct over.
 * Result words are the lower-case words of RFC 8601 2.7.1 / 2.7.2 and
 * RFC 9990's XSD ("pass", "fail", "softfail", "temperror", ...).
 */
#ifndef REPORT_REPORT_H
#define REPORT_REPORT_H

#include <stddef.h>

#define REPORT_MAX_DKIM		8	/* DKIM results kept per message/row */
#define REPORT_MAX_REASONS	4	/* override reasons per row */

/* <auth_results><dkim> */
struct report_dkim {
	const char *domain;		/* d= */
	const char *selector;		/* s= */
	const char *result;		/* "pass" "fail" "neutral" "policy"
					 * "temperror" "permerror" "none" */
	const char *human_result;	/* "" none */
};

/* <policy_evaluated><reason> */
struct report_reason {
	const char *type;		/* "local_policy" "mailing_list"
					 * "trusted_forwarder" "policy_test_mode"
					 * "other" */
	const char *comment;		/* "" none */
};

/*
 * One <record>: messages from one source IP with the same evaluation and
 * the same identifiers. As recorded for one message, count is 1 and time
 * is when it was evaluated; rows read back from the store or a report
 * carry the count (time 0).
 */
struct report_row {
	long long time;
	const char *source_ip;		/* textual IPv4/IPv6 (RFC 5952) */
	long long count;
	/* <policy_evaluated> */
	const char *disposition;	/* "none" "pass" "quarantine" "reject" */
	int dkim_aligned;		/* <dkim> pass(1) / fail(0) */
	int spf_aligned;		/* <spf> pass(1) / fail(0) */
	struct report_reason reasons[REPORT_MAX_REASONS];
	size_t nreasons;
	/* <identifiers> */
	const char *header_from;	/* RFC 5322.From domain */
	const char *envelope_from;	/* RFC 5321.MailFrom domain; "" null */
	const char *envelope_to;	/* RFC 5321.RcptTo domain; "" unknown */
	/* <auth_results> */
	struct report_dkim dkim[REPORT_MAX_DKIM];
	size_t ndkim;
	const char *spf_domain;		/* "" = no SPF result */
	const char *spf_scope;		/* "mfrom" or "helo" ("" unknown) */
	const char *spf_result;
};

/* <policy_published>, plus what the sender needs of the record. */
struct report_policy {
	const char *domain;		/* the DMARC Policy Domain */
	const char *discovery_method;	/* "treewalk" "psl" ("" unknown) */
	const char *p;			/* "none" "quarantine" "reject" */
	const char *sp;			/* "" = absent (p applies) */
	const char *np;			/* "" = absent */
	const char *fo;			/* "" = absent */
	const char *adkim;		/* "r" "s" */
	const char *aspf;		/* "r" "s" */
	const char *testing;		/* "y" "n" */
	const char *rua;		/* raw rua= value, "" none (not in XML) */
	int ri;				/* ri= seconds, 0 absent (not in XML) */
};

/* <report_metadata> */
struct report_meta {
	const char *org_name;
	const char *email;
	const char *extra_contact_info;	/* "" none */
	const char *report_id;		/* RFC 9990 ridfmt, no "<>" */
	long long begin, end;		/* date_range, seconds since epoch */
	const char *errors;		/* "" none; else one <error> per line */
	const char *generator;		/* "" none */
};

#endif
