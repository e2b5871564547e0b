/*
 * libFuzzer target for smtp/datastream.c.
 *
 * The first octet picks DATA or BDAT (bit 0) and normalising (bit 1), the
 * next four the sizes of the pieces the rest is fed in (as reads from a
 * socket would split it). The result must equal feeding everything at
 * once, and must equal a reference model written from RFC 5321 4.1.1.4 /
 * 4.5.2: the content ends at the first "." CRLF that starts a line (offset
 * 0 or after CRLF), a dot starting any other line is dropped, every other
 * octet passes unchanged -- except, when normalising, a bare CR or bare LF,
 * which becomes CRLF (and never starts a line that could end the content).
 * Normalised output never holds a bare CR or LF, and the decoded total is
 * always the output's length. In DATA mode, what follows the end is
 * decoded as the next message, as a pipelining client would send it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/datastream.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

#define LF SMTP_DATA_BARE_LF
#define CR SMTP_DATA_BARE_CR
#define LONG SMTP_DATA_LONG_LINE
#define NUL SMTP_DATA_NUL
#define EIGHT SMTP_DATA_8BIT
#define NORM SMTP_DATA_NORMALISED

struct result {
	struct buf out;
	size_t consumed;
	int done;
	unsigned flags;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Feed in[0..n) in pieces sized from ctl (0: the rest at once). */
static void
feed(const uint8_t *in, size_t n, int bdat, int norm, const uint8_t ctl[4],
    struct result *r)
{
	struct smtp_data d;
	size_t off = 0, k = 0;

	memset(r, 0, sizeof(*r));
	smtp_data_init(&d, bdat);
	d.normalise = norm;
	do {
		size_t len = n - off, used;

		if (ctl && ctl[k % 4] && len > ctl[k % 4])
			len = ctl[k % 4];
		k++;
		used = smtp_data_feed(&d, (const char *)in + off, len, &r->out,
		    &r->done);
		CHECK(used != (size_t)-1);
		CHECK(used <= len);
		CHECK(r->done == 0 || r->done == 1);
		if (!r->done)
			CHECK(used == len);
		else
			CHECK(!bdat);
		off += used;
		CHECK(d.total == r->out.len);
	} while (!r->done && off < n);
	if (bdat) {
		CHECK(smtp_data_finish(&d, &r->out) == 0);
		CHECK(d.total == r->out.len);
	}
	r->consumed = off;
	r->flags = d.flags;
	CHECK(d.total == r->out.len);
	if (norm)
		CHECK(!(r->flags & (LF | CR)));
	else
		CHECK(!(r->flags & NORM));
}

/* Every CR in out is followed by LF, every LF follows a CR. */
static void
check_crlf_only(const struct buf *out)
{
	size_t j;

	for (j = 0; j < out->len; j++) {
		if (out->data[j] == '\r')
			CHECK(j + 1 < out->len && out->data[j + 1] == '\n');
		if (out->data[j] == '\n')
			CHECK(j > 0 && out->data[j - 1] == '\r');
	}
}

static int
line_start(const uint8_t *in, size_t j)
{
	return j == 0 || (j >= 2 && in[j - 2] == '\r' && in[j - 1] == '\n');
}

/* A CR at j that no LF follows: bare (RFC 5321 2.3.8). At the very end
 * only in BDAT mode (DATA waits for what comes next). */
static int
bare_cr(const uint8_t *in, size_t n, size_t j, int bdat)
{
	return in[j] == '\r' && ((j + 1 < n && in[j + 1] != '\n') ||
	    (bdat && j + 1 == n));
}

static int
bare_lf(const uint8_t *in, size_t j)
{
	return in[j] == '\n' && (j == 0 || in[j - 1] != '\r');
}

static void
model(const uint8_t *in, size_t n, int bdat, int norm, struct result *m)
{
	size_t j, end = n;

	memset(m, 0, sizeof(*m));
	if (!bdat)
		for (j = 0; j + 3 <= n; j++)
			if (line_start(in, j) && memcmp(in + j, ".\r\n", 3) == 0) {
				m->done = 1;
				end = j;
				break;
			}
	m->consumed = m->done ? end + 3 : n;
	buf_reserve(&m->out, 0);
	for (j = 0; j < end; j++) {
		if (!bdat && in[j] == '.' && line_start(in, j))
			continue;
		/* DATA: a CR at the very end still waits for its LF */
		if (!bdat && !m->done && j == n - 1 && in[j] == '\r')
			continue;
		if (norm && (bare_cr(in, n, j, bdat) || bare_lf(in, j)))
			buf_append(&m->out, "\r\n", 2);
		else
			buf_appendc(&m->out, (char)in[j]);
	}
	for (j = 0; j < m->consumed; j++) {
		if (in[j] == '\n' && (j == 0 || in[j - 1] != '\r'))
			m->flags |= LF;
		if (in[j] == '\r' && ((j + 1 < m->consumed && in[j + 1] != '\n') ||
		    (bdat && j + 1 == n)))
			m->flags |= CR;
		if (in[j] == '\0')
			m->flags |= NUL;
		if (in[j] >= 0x80)
			m->flags |= EIGHT;
	}
	if (norm && (m->flags & (LF | CR)))
		m->flags = (m->flags & ~(unsigned)(LF | CR)) | NORM;
}

/*
 * LONG_LINE bounds that hold whatever the exact counting rule: a line
 * (between CRLFs) of at most 998 octets as sent never sets it; one without
 * any CR or LF that is longer than 998 without a stuffed dot always does.
 */
static void
check_long(const uint8_t *in, size_t consumed, int done, int bdat,
    unsigned flags)
{
	size_t j, start = 0, stop = done ? consumed - 3 : consumed;
	int may = 0, must = 0;

	for (j = 0; j <= stop; j++) {
		if (j == stop || (j + 1 < stop && in[j] == '\r' &&
		    in[j + 1] == '\n')) {
			size_t len = j - start, k;
			int clean = 1;

			for (k = start; k < j; k++)
				if (in[k] == '\r' || in[k] == '\n')
					clean = 0;
			if (len > SMTP_DATA_MAX_LINE)
				may = 1;
			if (!bdat && len > 0 && in[start] == '.')
				len--;
			if (clean && len > SMTP_DATA_MAX_LINE)
				must = 1;
			start = j + 2;
			j++;
		}
	}
	if (!may)
		CHECK(!(flags & LONG));
	if (must)
		CHECK(flags & LONG);
}

static int
same(const struct result *a, const struct result *b, unsigned mask)
{
	return a->consumed == b->consumed && a->done == b->done &&
	    (a->flags & mask) == (b->flags & mask) && a->out.len == b->out.len &&
	    (a->out.len == 0 || memcmp(a->out.data, b->out.data, a->out.len) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t ctl[4] = { 0, 0, 0, 0 };
	int bdat, norm;
	size_t off, i;

	if (size < 1)
		return 0;
	bdat = data[0] & 1;
	norm = (data[0] >> 1) & 1;
	for (i = 0; i < 4 && 1 + i < size; i++)
		ctl[i] = data[1 + i];
	off = size < 5 ? size : 5;

	/* each message in turn; in BDAT mode all of it is one */
	while (off <= size) {
		const uint8_t *in = data + off;
		size_t n = size - off;
		struct result whole, pieces, bytes, m;
		static const uint8_t one[4] = { 1, 1, 1, 1 };

		feed(in, n, bdat, norm, NULL, &whole);
		feed(in, n, bdat, norm, ctl, &pieces);
		CHECK(same(&whole, &pieces, ~0u));
		if (n < 512) {
			feed(in, n, bdat, norm, one, &bytes);
			CHECK(same(&whole, &bytes, ~0u));
			buf_free(&bytes.out);
		}
		model(in, n, bdat, norm, &m);
		CHECK(same(&whole, &m, ~(unsigned)LONG));
		if (norm)
			check_crlf_only(&whole.out);
		check_long(in, whole.consumed, whole.done, bdat, whole.flags);
		if (whole.done) {
			/* the end marker is just consumed, not output */
			CHECK(whole.consumed >= 3);
			CHECK(memcmp(in + whole.consumed - 3, ".\r\n", 3) == 0);
			CHECK(whole.consumed == 3 ||
			    memcmp(in + whole.consumed - 5, "\r\n", 2) == 0);
			/* and it ends the content: every flag raised is explained
			 * by the content itself */
			if (smtp_data_refusal(whole.flags) == NULL)
				CHECK((whole.flags & ~(unsigned)(EIGHT | NORM)) == 0);
		}
		buf_free(&whole.out);
		buf_free(&pieces.out);
		buf_free(&m.out);
		if (!whole.done || whole.consumed == 0)
			break;
		off += whole.consumed;
	}
	return 0;
}
