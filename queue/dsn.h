/*
 * queue/dsn: delivery status notifications (RFC 3464) about a queued
 * message: bounces (failed), delay warnings (delayed) and success reports
 * (relayed, delivered; RFC 3461 NOTIFY=SUCCESS), built as a whole message
 * ready for the spool. Deciding who gets one (null sender, NOTIFY) and
 * queueing it from the null sender is queue/scheduler's part.
 *
 * The message: From: "Mail Delivery System" <MAILER-DAEMON@hostname>,
 * To: <sender>, Subject by kind, Date, Message-ID, Auto-Submitted:
 * auto-replied (RFC 3834), MIME-Version, and a multipart/report;
 * report-type=delivery-status (RFC 6522) of three parts:
 *   1. text/plain: what happened, for whom, the last result of each
 *   2. message/delivery-status: per message Reporting-MTA, X-Mxgate-Queue-ID,
 *      Original-Envelope-Id (ENVID, decoded), Arrival-Date; per recipient
 *      Final-Recipient, Original-Recipient (ORCPT, decoded), Action, Status,
 *      Remote-MTA and Diagnostic-Code (when a server answered),
 *      Last-Attempt-Date, Will-Retry-Until (delayed)
 *   3. the original: text/rfc822-headers (its header section, at most
 *      DSN_HDRS_MAX octets, cut at a line end), or message/rfc822 (all of
 *      it) when RET=FULL was asked and some recipient failed and the
 *      content is at most full_max octets; larger content falls back to
 *      its headers, and part 1 says so.
 * With smtputf8 (the original used SMTPUTF8) parts 2 and 3 are
 * message/global-delivery-status and message/global(-headers) (RFC 6533)
 * and UTF-8 passes; otherwise every octet outside printable ASCII in the
 * report's own fields becomes '?'. Control characters (CR, LF, NUL ...)
 * in any value we write (addresses, replies, ENVID, ORCPT) never reach
 * the output: a value can never start a header field or a MIME part.
 *
 * Status: the enhanced code (RFC 3463) at the start of the reply when its
 * class fits the action (5 for failed, 4 for delayed, 2 for relayed and
 * delivered), else 5.0.0 / 4.0.0 / 2.0.0; an expired recipient whose last
 * reply was not a 5xx gets 5.4.7.
 * The reply is found in `last` as queue/delivery writes it:
 * "HOST said: REPLY" (HOST "name[ip]:port" or "[ip]:port", anywhere in
 * the text: "expired ...; last: HOST said: REPLY" works too); a `last`
 * without " said: " is a local reason ("X-mxgate;" diagnostic, or "smtp;"
 * when it reads as a reply, "556 5.1.10 ...").
 *
 * Pure: no I/O besides pread() of the content, no clock (times are given).
 */
#ifndef QUEUE_DSN_H
#define QUEUE_DSN_H

#include <stddef.h>
#include <sys/types.h>

#include "lib/buf.h"

#define DSN_HDRS_MAX (64 * 1024)	/* header section returned, at most */
#define DSN_FULL_MAX (256 * 1024)	/* RET=FULL up to this content size */

enum dsn_action {
	DSN_FAILED,
	DSN_DELAYED,
	DSN_DELIVERED,
	DSN_RELAYED,
};

struct dsn_rcpt {
	const char *addr;	/* Final-Recipient */
	const char *orcpt;	/* ORCPT "addr-type;xtext", or NULL */
	const char *last;	/* last result (above), or NULL */
	enum dsn_action action;
	int expired;		/* failed when its time in queue had run out */
};

struct dsn_report {
	const char *hostname;	/* Reporting-MTA and MAILER-DAEMON's domain */
	const char *queue_id;	/* the original message's */
	const char *dsn_id;	/* unique, for the Message-ID (the report's
				 * own queue id) */
	const char *sender;	/* the original sender: To: */
	const char *envid;	/* ENVID xtext, or NULL */
	int ret_full;		/* RET=FULL */
	int smtputf8;		/* the original used SMTPUTF8 */
	long long arrival;	/* Arrival-Date */
	long long attempt;	/* Last-Attempt-Date; 0: none */
	long long retry_until;	/* Will-Retry-Until (delayed only); 0: none */
	long long now;		/* Date */
	size_t full_max;	/* 0: DSN_FULL_MAX */
	const struct dsn_rcpt *rcpts;
	size_t nrcpt;
};

/*
 * Appends the whole report (header and body, CRLF lines) to out. The
 * original content is read from fd (size octets, offset 0; fd -1: none,
 * the third part then says so). *eightbit_r is set when the report holds
 * octets above 127 (queue it with BODY=8BITMIME). Returns 0, or -1 on
 * allocation failure or no recipient.
 */
int dsn_build(const struct dsn_report *r, int fd, off_t size,
    struct buf *out, int *eightbit_r);

/* The Status of one recipient ("5.1.1") into out (at least 16 octets). */
void dsn_status(const struct dsn_rcpt *r, char *out, size_t outlen);

#endif
