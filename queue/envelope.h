/*
 * queue/envelope: what the spool knows about a message besides its
 * content, and its on-disk form.
 *
 * On disk an envelope is a text file of typed records, one per line, a
 * one-letter type, a space, a value, LF. Values are percent-escaped (%XX
 * for '%', control octets and DEL) so no value can span lines. The file
 * ends with the record "E" and nothing else: a file without it is
 * incomplete and is never trusted.
 *
 *   V 1                 format version
 *   I <queue id>
 *   T <arrival, unix seconds>
 *   s <session id>      receiving session, for logs
 *   C <client ip>
 *   H <helo name>
 *   S <sender>          "" for the null sender
 *   Z <content size>
 *   B 1                 BODY=8BITMIME was declared
 *   U 1                 SMTPUTF8 was declared
 *   A <attempts>        delivery attempts so far
 *   N <unix seconds>    next attempt
 *   P <text>            header fields to prepend on delivery (CRLF lines)
 *   Q <text>            why the message was held (quarantine), optional
 *   X <unix seconds>    when it was held, optional
 *   K <FULL|HDRS>       RFC 3461 RET=, optional
 *   J <xtext>           RFC 3461 ENVID= as received, optional
 *   W <unix seconds>    when the delay warning was sent, optional
 *   R <P|D|F> <addr>    recipient: pending, delivered, failed
 *   L <text>            last result for the recipient just above
 *   Y <notify>          RFC 3461 NOTIFY= of the recipient above: NEVER, or
 *                       SUCCESS,FAILURE,DELAY (those given), optional
 *   O <type;xtext>      RFC 3461 ORCPT= of the recipient above, optional
 *   E
 *
 * Optional records are written only when set (Q when hold_reason is not
 * NULL, X when hold_time is not 0; K, J, W, Y, O when set), so an envelope of a message that was
 * never held has none, and envelopes written before a record existed still
 * parse. Whether a message is held is said by the spool area it lives in
 * (queue/spool.h), never by these records: a released message keeps them
 * as history.
 */
#ifndef QUEUE_ENVELOPE_H
#define QUEUE_ENVELOPE_H

#include <stddef.h>

#include "lib/buf.h"
#include "lib/id.h"

enum env_rcpt_state {
	ENV_PENDING = 'P',
	ENV_DELIVERED = 'D',
	ENV_FAILED = 'F',
};

struct env_rcpt {
	char *addr;
	char state;		/* enum env_rcpt_state */
	char *last;		/* last delivery result, or NULL */
	int notify;		/* SMTP_NOTIFY_* (smtp/path.h); 0: not given */
	char *orcpt;		/* ORCPT "addr-type;xtext", or NULL */
	int dsn_passed;		/* not stored: this attempt delivered to a
				 * next hop that took NOTIFY (RFC 3461 5.2.2:
				 * it reports success, not us) */
};

struct envelope {
	char id[ID_LEN + 1];
	long long arrival;
	char *session;
	char *client_ip;
	char *helo;
	char *sender;
	size_t size;
	int body_8bit;
	int smtputf8;
	int attempts;
	long long next_attempt;
	char *prepend;		/* header fields added after the content was
				 * stored (Authentication-Results), or NULL */
	char *hold_reason;	/* why it was held, or NULL */
	long long hold_time;	/* when it was held, 0 if never */
	char dsn_ret;		/* RET: 'F' FULL, 'H' HDRS, 0 not given */
	char *dsn_envid;	/* ENVID as xtext, or NULL */
	long long delay_warned;	/* when the delay warning went, 0 if not */
	struct env_rcpt *rcpts;
	size_t nrcpt;
};

/* Strings are copied. Return 0, or -1 on allocation failure. */
int envelope_set(char **field, const char *value);
int envelope_add_rcpt(struct envelope *e, const char *addr);
int envelope_set_last(struct env_rcpt *r, const char *text);
/* Number of recipients still pending. */
size_t envelope_pending(const struct envelope *e);

int envelope_serialize(const struct envelope *e, struct buf *out);
/* Parses data[0..n); on failure returns -1 with err_r naming the problem
 * and leaves e empty. */
int envelope_parse(const char *data, size_t n, struct envelope *e,
    const char **err_r);
void envelope_free(struct envelope *e);

#endif
