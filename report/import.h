/*
 * report/import: reads DMARC aggregate reports as real receivers send
 * them, for `mxgate report import` (we are the domain owner).
 *
 * Input, sniffed from the content (never trusted from the name):
 *   - XML: RFC 9990 (namespace urn:ietf:params:xml:ns:dmarc-2.0) and RFC
 *     7489 Appendix C (no namespace, or any other): elements are matched
 *     by local name; unknown elements (extensions) are ignored;
 *   - gzip (RFC 1952), zip (libzip; every member whose content is XML, or
 *     gzip of XML, is read; a member with an empty name is fine);
 *   - an RFC 5322 message (the report mail itself): every MIME part, at
 *     any nesting depth up to REPORT_IMPORT_MAX_DEPTH, with
 *     Content-Transfer-Encoding base64, quoted-printable, 7bit or 8bit,
 *     whose media type or file name says gzip, zip or XML.
 * Hostile input is refused with a clear error, never a crash or a hang:
 *   - input over REPORT_IMPORT_MAX_INPUT octets;
 *   - decompressed data over REPORT_IMPORT_MAX_XML octets per document,
 *     or over REPORT_IMPORT_MAX_RATIO times its compressed size (zip and
 *     gzip bombs; checked while inflating, never trusting declared sizes),
 *     or, all levels together, over REPORT_IMPORT_MAX_RATIO times the
 *     input (a gzip of a gzip); more than REPORT_IMPORT_MAX_MEMBERS zip
 *     members; a multipart without its closing boundary;
 *   - XML with a DOCTYPE (no DTD, no entity of any kind is read: entity
 *     expansion and external entities cannot happen), nesting deeper than
 *     REPORT_IMPORT_MAX_XML_DEPTH, more than REPORT_IMPORT_MAX_RECORDS
 *     records, no network access (XML_PARSE_NONET);
 *   - a document that is not a <feedback> report, or lacks org_name,
 *     report_id, date_range or policy_published/domain; a record without
 *     source_ip or count, or a count that is not a non-negative integer.
 * XML is streamed: one child of <feedback> in memory at a time.
 * Lenient where real reports are sloppy: surrounding whitespace in values,
 * result words and domain names in any case (folded to lower case), float
 * timestamps ("1538204542.0"), a missing <?xml?> declaration, a missing
 * envelope_from (""), an empty <reason> (dropped; a comment alone gets
 * type "other"), invalid UTF-8 (each bad octet becomes U+FFFD), an empty
 * org_name (the domain of <email> instead), <feedback> inside a wrapper
 * element, and a document that is not well-formed if it is at most 4 MB
 * (libxml2 recovers what it can; the result is checked as any other).
 * Absent adkim/aspf are "r"; testing is <testing>, or <t>, or "y" for
 * RFC 7489 pct=0, else "n". A report_id in "<>" loses them; source_ip
 * is given in RFC 5952 form.
 */
#ifndef REPORT_IMPORT_H
#define REPORT_IMPORT_H

#include <stddef.h>

#include "report/report.h"

#define REPORT_IMPORT_MAX_INPUT		(64u << 20)
#define REPORT_IMPORT_MAX_XML		(64u << 20)
#define REPORT_IMPORT_MAX_RATIO		1000
#define REPORT_IMPORT_MAX_MEMBERS	16
#define REPORT_IMPORT_MAX_DEPTH		8	/* MIME nesting */
#define REPORT_IMPORT_MAX_XML_DEPTH	32
#define REPORT_IMPORT_MAX_RECORDS	200000

/* One report parsed; all strings (and rows) valid only during the
 * callback. */
struct report_parsed {
	struct report_meta meta;
	struct report_policy policy;
	const struct report_row *rows;
	size_t nrows;
	const char *format;		/* "rfc9990" (namespace) or "rfc7489" */
	const char *container;		/* "xml" "gzip" "zip" "mail" ... as
					 * found, e.g. "mail/zip" */
};

/*
 * Every report found in data[0..len) goes to cb (a non-zero return stops
 * and is returned). The number of reports found (0 = none found: an
 * error, err says why), or -1 with err filled ("name: zip member 2:
 * decompressed size over 64 MB"). name is for messages only. A report is
 * handed over once its document is read whole; an error in a later zip
 * member or MIME part still returns -1 after it. Does not block on the
 * network; CPU and memory bounded by the limits above.
 */
int report_import(const void *data, size_t len, const char *name,
    int (*cb)(const struct report_parsed *r, void *arg), void *arg,
    char *err, size_t errlen);

#endif
