/*
 * report/aggregate: writes one DMARC aggregate report (RFC 9990) and the
 * mail that carries it. No I/O, no DNS: data in, bytes out.
 *
 * report_xml: the XML document (UTF-8, libxml2's xmlTextWriter), root
 *   <feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0">, <version>1.0,
 *   then report_metadata (org_name, email, extra_contact_info, report_id,
 *   date_range, error per line of meta->errors, generator),
 *   policy_published (domain, discovery_method, p, sp, np, fo, adkim,
 *   aspf, testing; absent ones left out), one record per row (row:
 *   source_ip, count, policy_evaluated: disposition, dkim, spf, reason*;
 *   identifiers: header_from, envelope_from (present, maybe empty, for
 *   the null sender: RFC 9990 2.1.12), envelope_to when known;
 *   auth_results: dkim* (RFC 9990 "DKIM Signatures in Aggregate
 *   Reports": at most 100, strictly aligned passes first, then relaxed
 *   aligned passes, other passes, the rest), spf when known). It
 *   validates against etc/dmarc-aggregate-2.0.xsd (the RFC's schema,
 *   written out). Values outside the schema's vocabulary (a result word
 *   it does not know; an SPF scope other than "mfrom", RFC 9990 allowing
 *   no other) are a -1 with err, never written; so are strings that are
 *   not UTF-8 or carry control characters other than TAB and LF, and
 *   more than REPORT_MAX_DKIM / REPORT_MAX_REASONS entries. At least one
 *   row.
 * report_dkim_order: the order the DKIM results of one row are written
 *   in (the RFC 9990 preference above, stable within each class):
 *   fills order_r (room for n) with indices into dkim, at most
 *   REPORT_MAX_DKIM_PER_ROW of them, and returns how many.
 * report_gzip: RFC 1952 gzip of data (file name and mtime in the header).
 * report_filename: "receiver!policy-domain!begin!end!unique-id.xml.gz"
 *   (RFC 9990 3.1.1 ABNF); unique_id is 1*(ALPHA / DIGIT), or NULL / ""
 *   for none (the ABNF's optional part). Domains are LDH labels (and
 *   '_'), so never '!' or '/'. Returns -1, out unchanged, when refused.
 * report_message: the RFC 5322 / MIME message (CRLF lines, no DKIM
 *   signature: the caller signs it): From: m->email, To: the rua
 *   addresses, Date, Message-ID <report_id> (RFC 9990: "the same ridtxt
 *   ... as the Message-Id"; "@submitter" is added to a report_id without
 *   "@", a msg-id needing one), Subject: "Report Domain: D Submitter: S
 *   Report-ID: <ID>" (RFC 9990 3.1.1 ABNF, folded), Auto-Submitted:
 *   auto-generated (RFC 3834), MIME-Version, multipart/mixed with a short
 *   text/plain part and the report as application/gzip, base64 (76-column
 *   lines), Content-Disposition: attachment; filename=report_filename.
 *
 * All append to out (lib/buf) and return 0, or -1 with err filled and
 * out unchanged.
 */
#ifndef REPORT_AGGREGATE_H
#define REPORT_AGGREGATE_H

#include <stddef.h>

#include "lib/buf.h"
#include "report/report.h"

#define REPORT_XMLNS	"urn:ietf:params:xml:ns:dmarc-2.0"
#define REPORT_MAX_DKIM_PER_ROW	100	/* RFC 9990 */

int report_xml(const struct report_meta *m, const struct report_policy *p,
    const struct report_row *rows, size_t nrows, struct buf *out,
    char *err, size_t errlen);
size_t report_dkim_order(const struct report_dkim *dkim, size_t n,
    const char *header_from, size_t *order_r);
int report_gzip(const void *data, size_t len, const char *name,
    long long mtime, struct buf *out, char *err, size_t errlen);
int report_filename(const char *receiver, const char *policy_domain,
    long long begin, long long end, const char *unique_id, struct buf *out);

struct report_mail {
	const char *from;		/* header From: address (m->email) */
	const char *const *to;		/* rua addresses (mailto: stripped) */
	size_t nto;
	const char *submitter;		/* our domain, for Subject */
	const char *filename;		/* report_filename() */
	long long date;			/* Date:, unix seconds */
};
int report_message(const struct report_mail *mail, const struct report_meta *m,
    const struct report_policy *p, const void *gz, size_t gzlen,
    struct buf *out, char *err, size_t errlen);

#endif
