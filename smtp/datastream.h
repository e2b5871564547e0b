/*
 * smtp/datastream: the message content of DATA and BDAT as it arrives.
 *
 * DATA mode (RFC 5321 4.1.1.4, 4.5.2): the content ends only at
 * CRLF "." CRLF (a "." CRLF as the very first line counts too); leading
 * dots are removed (dot-unstuffing). A bare LF or bare CR never ends a line
 * or the message: it is passed through and flagged, so the session refuses
 * the message once the real end arrives (the SMTP smuggling family:
 * <LF>.<LF>, <LF>.<CR><LF>, <CR>.<CR>, <CR><LF>.<LF> ...).
 *
 * Normalising (for trusted submitters): a bare CR or LF becomes CRLF, so
 * what is stored and DKIM-signed has only CRLF line ends; the line after
 * it is ordinary text (no unstuffing, never an end marker).
 *
 * BDAT mode (RFC 3030): chunks are taken as they are, no end marker and no
 * unstuffing; the same flags are raised so one policy applies to both.
 *
 * Pure computation on bytes: no allocation beyond the output buffer, no I/O.
 */
#ifndef SMTP_DATASTREAM_H
#define SMTP_DATASTREAM_H

#include <stddef.h>

#include "lib/buf.h"

#define SMTP_DATA_MAX_LINE 998		/* RFC 5321 4.5.3.1.6, without CRLF */

enum smtp_data_flag {
	SMTP_DATA_BARE_LF = 1 << 0,
	SMTP_DATA_BARE_CR = 1 << 1,
	SMTP_DATA_LONG_LINE = 1 << 2,
	SMTP_DATA_NUL = 1 << 3,
	SMTP_DATA_8BIT = 1 << 4,	/* octets >= 0x80 seen */
	SMTP_DATA_NORMALISED = 1 << 5,	/* bare CR/LF turned into CRLF */
};

struct smtp_data {
	int bdat;		/* BDAT mode */
	int normalise;		/* set after init: a bare CR or bare LF is
				 * written as CRLF and flagged
				 * SMTP_DATA_NORMALISED instead of BARE_*;
				 * the end of DATA is still only
				 * CRLF "." CRLF */
	int state;		/* private */
	size_t line_len;	/* octets on the current line so far */
	unsigned flags;		/* smtp_data_flag bits seen so far */
	size_t total;		/* decoded octets produced */
};

void smtp_data_init(struct smtp_data *d, int bdat);

/*
 * Feed n octets. Decoded content is appended to out. Returns the number of
 * input octets consumed; in DATA mode this is less than n when the end
 * marker was found inside the input (then *done_r = 1 and the rest of the
 * input belongs to the next command). Returns (size_t)-1 only if out could
 * not grow.
 */
size_t smtp_data_feed(struct smtp_data *d, const char *in, size_t n,
    struct buf *out, int *done_r);

/* BDAT LAST: the content ended; a trailing lone CR is flagged and passed
 * on. Returns -1 if out could not grow. */
int smtp_data_finish(struct smtp_data *d, struct buf *out);

/* Human reason for the first refusing flag, or NULL if none refuses. */
const char *smtp_data_refusal(unsigned flags);

#endif
