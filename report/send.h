/*
 * report/send: turns the evaluations in the store into RFC 9990 aggregate
 * reports and queues them for delivery (we are the Mail Receiver). One
 * run (report_send_run), blocking, for `mxgate report send` (the daemon
 * starts that command as a child process once per period, so no report
 * work ever runs in the process that answers SMTP):
 *
 *  1. Reports recorded as "pending" (a crash after step 3 below) are
 *     built again with the same Report-ID and file name (RFC 9990 3.1.1:
 *     a re-sent report "MUST use the same filename").
 *  2. For each policy domain with evaluations not yet reported, the
 *     period: interval (default one UTC day) or, when the domain's
 *     record asks for less with ri=, the longest of 1, 2, 3, 4, 6, 8 or
 *     12 hours not over ri (and not under min_interval), aligned to UTC
 *     midnight; never starting before the domain's last report ended. A
 *     period is due once it has ended (flush_now: the current one too,
 *     ending now).
 *  3. Due period: recorded "pending" with a new Report-ID
 *     ("<hex>.<begin>.<policy-domain>@<hostname>"), rows aggregated
 *     (report/store.h), the policy of the last evaluation; XML, gzip and
 *     mail (report/aggregate.h); DKIM-signed with every key of the
 *     reporting address's domain (RFC 9990 3.1.1: reports "MUST conform
 *     to the DMARC mechanism": the signature aligns with From).
 *  4. Destinations (RFC 9990 3): the rua= URIs in order, at most max_rua;
 *     only mailto: (others are skipped and logged). A URI whose host's
 *     organizational domain (PSL) differs from the policy domain's needs
 *     the authorising record: TXT at
 *     "<policy-domain>._report._dmarc.<host>" starting "v=DMARC1"; if it
 *     has its own rua=, that replaces the URI, but only with URIs on the
 *     same host, else neither is used (RFC 9990 4). A temporary DNS error
 *     leaves the report pending for the next run when no destination
 *     could be used. A size limit ("!10m") smaller than the signed
 *     message skips that URI. A destination suppressed after repeated
 *     delivery failures (report_store_dest_suppressed) is skipped.
 *  5. Queued: one message to all usable destinations, from the null
 *     reverse-path (so no delivery status notification ever goes out
 *     about a report, and none comes back as mail), session "dmarc-report"
 *     in the envelope (the daemon notes each destination's final result
 *     in the store), then spool_notify for a running daemon. State
 *     "queued", or "skipped" with the reason (no rua, none usable, too
 *     large for every destination).
 *  6. Between two queued reports the run sleeps 60/rate seconds (rate
 *     reports per minute), so reports go out spread over time.
 *  7. Evaluations older than retention and already reported are deleted.
 */
#ifndef REPORT_SEND_H
#define REPORT_SEND_H

#include <stddef.h>

#include "auth/dkim.h"

struct event_base;
struct dns_resolver;
struct orgdomain_psl;
struct report_store;
struct spool;

struct report_send_config {
	const char *hostname;		/* receiver/submitter domain */
	const char *org_name;
	const char *email;		/* From: of the reports */
	const char *extra_contact_info;	/* "" none */
	const struct dkim_sign_params *keys;	/* signing keys for email's domain */
	size_t nkeys;
	int interval;			/* seconds, divides 86400 */
	int min_interval;
	int rate;			/* reports per minute; 0: no pause */
	size_t max_rua;
	int retention;			/* seconds evaluations are kept */
	const struct orgdomain_psl *psl;
};

struct report_send_stats {
	unsigned queued, skipped, deferred, failed;
};

/* 0 (stats filled), -1 with err on a store or spool error that stopped
 * the run. now: the time taken as now (tests). */
int report_send_run(const struct report_send_config *c,
    struct report_store *st, struct spool *sp, struct event_base *base,
    struct dns_resolver *res, long long now, int flush_now,
    struct report_send_stats *stats, char *err, size_t errlen);

/* ---- exposed for tests ---- */

#define REPORT_RUA_MAX	8

struct report_rua {
	char uri[512];			/* as written, for logs */
	char addr[320];			/* mailto: address, percent-decoded */
	char host[256];			/* its domain, lower case */
	unsigned long long max_size;	/* "!10m" -> 10485760; 0 = none */
};

/* rua= value (RFC 9989 4.7: comma-separated URIs, each with an optional
 * "!" size suffix k/m/g/t, RFC 9990 3) into out[max]: the number parsed
 * (non-mailto URIs and malformed ones are left out and counted in
 * *bad_r when not NULL). */
size_t report_rua_parse(const char *rua, struct report_rua *out, size_t max,
    size_t *bad_r);

/* The reporting period in seconds for a domain asking ri seconds (0:
 * absent), per step 2 above. */
int report_period(int ri, int interval, int min_interval);

#endif
