#include "smtp/datastream.h"

#include <string.h>

enum {
	DS_LINE_START,	/* at the start of a line */
	DS_TEXT,	/* inside a line */
	DS_CR,		/* after CR inside a line */
	DS_DOT,		/* after a leading "." */
	DS_DOT_CR,	/* after a leading "." CR */
};

void
smtp_data_init(struct smtp_data *d, int bdat)
{
	memset(d, 0, sizeof(*d));
	d->bdat = bdat;
	d->state = DS_LINE_START;
}

static void
ds_count(struct smtp_data *d)
{
	if (++d->line_len > SMTP_DATA_MAX_LINE)
		d->flags |= SMTP_DATA_LONG_LINE;
}

/* Normalising: a bare CR or LF is written as CRLF (RFC 5321 2.3.8). */
static int
ds_newline(struct smtp_data *d, struct buf *out)
{
	d->flags |= SMTP_DATA_NORMALISED;
	d->line_len = 0;
	d->total += 2;
	return buf_append(out, "\r\n", 2);
}

/* A bare CR (not followed by LF): kept and flagged, or normalised. */
static int
ds_bare_cr(struct smtp_data *d, struct buf *out)
{
	if (d->normalise)
		return ds_newline(d, out);
	d->flags |= SMTP_DATA_BARE_CR;
	d->total++;
	ds_count(d);
	return buf_appendc(out, '\r');
}

/* One octet of line text (not CR, LF handled here too). */
static int
ds_text(struct smtp_data *d, unsigned char c, struct buf *out)
{
	if (c == '\r') {
		d->state = DS_CR;
		return 0;
	}
	if (c == '\n') {
		/* RFC 5321 2.3.8: a bare LF is not a line ending. It must not
		 * let a following "." end the message; flag and keep going. */
		d->line_len = 0;
		d->state = DS_TEXT;
		if (d->normalise)
			return ds_newline(d, out);
		d->flags |= SMTP_DATA_BARE_LF;
	} else {
		if (c == '\0')
			d->flags |= SMTP_DATA_NUL;
		else if (c >= 0x80)
			d->flags |= SMTP_DATA_8BIT;
		ds_count(d);
		d->state = DS_TEXT;
	}
	d->total++;
	return buf_appendc(out, (char)c);
}

size_t
smtp_data_feed(struct smtp_data *d, const char *in, size_t n,
    struct buf *out, int *done_r)
{
	size_t i;

	*done_r = 0;
	if (buf_reserve(out, n + 2) == -1)
		return (size_t)-1;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];

		if (d->state == DS_TEXT && c != '\r' && c != '\n' && c != '\0') {
			/* inside a line: the run of ordinary octets up to the
			 * next CR, LF or NUL goes out whole (the common case;
			 * the same as ds_text one octet at a time) */
			size_t j = i, run;
			unsigned char high = 0;

			while (j < n && in[j] != '\r' && in[j] != '\n' &&
			    in[j] != '\0')
				high |= (unsigned char)in[j++];
			run = j - i;
			if (high & 0x80)
				d->flags |= SMTP_DATA_8BIT;
			d->line_len += run;
			if (d->line_len > SMTP_DATA_MAX_LINE)
				d->flags |= SMTP_DATA_LONG_LINE;
			d->total += run;
			if (buf_append(out, in + i, run) == -1)
				return (size_t)-1;
			i = j - 1;
			continue;
		}
		switch (d->state) {
		case DS_LINE_START:
			if (c == '.' && !d->bdat) {
				/* RFC 5321 4.5.3.1.6: the transparency dot is
				 * not counted in the 1000-octet limit. */
				d->line_len = 0;
				d->state = DS_DOT;
				continue;
			}
			d->line_len = 0;
			break;
		case DS_DOT:
			if (c == '\r') {
				d->state = DS_DOT_CR;
				continue;
			}
			/* RFC 5321 4.5.2: drop the leading dot. */
			break;
		case DS_DOT_CR:
			if (c == '\n') {
				*done_r = 1;
				return i + 1;
			}
			/* "." CR x: bare CR on a dot line. */
			if (ds_bare_cr(d, out) == -1)
				return (size_t)-1;
			d->state = DS_TEXT;
			break;
		case DS_CR:
			if (c == '\n') {
				if (buf_append(out, "\r\n", 2) == -1)
					return (size_t)-1;
				d->total += 2;
				d->line_len = 0;
				d->state = DS_LINE_START;
				continue;
			}
			if (ds_bare_cr(d, out) == -1)
				return (size_t)-1;
			d->state = DS_TEXT;
			break;
		default:
			break;
		}
		if (ds_text(d, c, out) == -1)
			return (size_t)-1;
	}
	return n;
}

int
smtp_data_finish(struct smtp_data *d, struct buf *out)
{
	if (d->state == DS_CR) {
		d->state = DS_TEXT;
		return ds_bare_cr(d, out);
	}
	return 0;
}

const char *
smtp_data_refusal(unsigned flags)
{
	if (flags & SMTP_DATA_BARE_LF)
		return "bare LF in message content (RFC 5321 2.3.8)";
	if (flags & SMTP_DATA_BARE_CR)
		return "bare CR in message content (RFC 5321 2.3.8)";
	if (flags & SMTP_DATA_NUL)
		return "NUL octet in message content";
	if (flags & SMTP_DATA_LONG_LINE)
		return "line longer than 998 octets (RFC 5321 4.5.3.1.6)";
	return NULL;
}
