/*
 * Tests for smtp/datastream.c: the DATA and BDAT content decoder, with the
 * SMTP smuggling sequences (SEC Consult, Dec 2023) that must never end a
 * message.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/datastream.h"

#define CONFORMANCE_EOD "../shared/conformance/smtp-smuggling/eod-sequences.json"

#define LF SMTP_DATA_BARE_LF
#define CR SMTP_DATA_BARE_CR
#define LONG SMTP_DATA_LONG_LINE
#define NUL SMTP_DATA_NUL
#define EIGHT SMTP_DATA_8BIT

#define S(s) s, sizeof(s) - 1

struct decoded {
	struct buf out;
	size_t consumed;
	int done;
	unsigned flags;
	size_t total;
};

/*
 * Feed in[0..n) in pieces of at most step octets (0: all at once), as a
 * session does: stop at the end marker. BDAT content is finished.
 */
static void
decode_mode(const char *in, size_t n, int bdat, int normalise, size_t step,
    struct decoded *r)
{
	struct smtp_data d;
	size_t off = 0;

	memset(r, 0, sizeof(*r));
	smtp_data_init(&d, bdat);
	d.normalise = normalise;
	do {
		size_t len = n - off, used;

		if (step && len > step)
			len = step;
		used = smtp_data_feed(&d, in + off, len, &r->out, &r->done);
		assert_int_not_equal(used, (size_t)-1);
		assert_true(used <= len);
		if (!r->done)
			assert_int_equal(used, len);
		off += used;
	} while (!r->done && off < n);
	if (bdat)
		assert_int_equal(smtp_data_finish(&d, &r->out), 0);
	r->consumed = off;
	r->flags = d.flags;
	r->total = d.total;
	/* total counts exactly the decoded octets */
	assert_int_equal(r->total, r->out.len);
}

static void
decode(const char *in, size_t n, int bdat, size_t step, struct decoded *r)
{
	decode_mode(in, n, bdat, 0, step, r);
}

static void
decoded_free(struct decoded *r)
{
	buf_free(&r->out);
}

static int
decoded_equal(const struct decoded *a, const struct decoded *b)
{
	return a->consumed == b->consumed && a->done == b->done &&
	    a->flags == b->flags && a->out.len == b->out.len &&
	    (a->out.len == 0 || memcmp(a->out.data, b->out.data, a->out.len) == 0);
}

struct data_case {
	const char *in;
	size_t n;
	const char *out;	/* decoded */
	size_t outlen;
	int done;
	size_t consumed;	/* when done */
	unsigned flags;
};

static const struct data_case data_cases[] = {
	/* RFC 5321 4.1.1.4: the end is CRLF "." CRLF */
	{ S("hello\r\n.\r\n"), S("hello\r\n"), 1, 10, 0 },
	{ S("a\r\nb\r\n.\r\n"), S("a\r\nb\r\n"), 1, 9, 0 },
	{ S(".\r\n"), S(""), 1, 3, 0 },
	{ S("\r\n.\r\n"), S("\r\n"), 1, 5, 0 },
	{ S("\r\n\r\n.\r\n"), S("\r\n\r\n"), 1, 7, 0 },
	/* pipelined commands after the end belong to the next command */
	{ S("hello\r\n.\r\nQUIT\r\n"), S("hello\r\n"), 1, 10, 0 },
	{ S(".\r\nRSET\r\n"), S(""), 1, 3, 0 },
	{ S("a\r\n.\r\n.\r\n"), S("a\r\n"), 1, 6, 0 },
	{ S("a\r\n.\r\n\n.\n"), S("a\r\n"), 1, 6, 0 },
	/* not (yet) an end */
	{ S("hello\r\n"), S("hello\r\n"), 0, 0, 0 },
	{ S("hello"), S("hello"), 0, 0, 0 },
	{ S(""), S(""), 0, 0, 0 },
	{ S("hello\r\n."), S("hello\r\n"), 0, 0, 0 },
	{ S("hello\r\n.\r"), S("hello\r\n"), 0, 0, 0 },
	{ S("hello\r"), S("hello"), 0, 0, 0 },
	{ S("a.\r\n"), S("a.\r\n"), 0, 0, 0 },
	{ S("a\r\n.a\r\n"), S("a\r\na\r\n"), 0, 0, 0 },
	{ S("a\r\n .\r\n"), S("a\r\n .\r\n"), 0, 0, 0 },
	{ S("a\r\n. \r\n"), S("a\r\n \r\n"), 0, 0, 0 },
	{ S("a\r\n.\t\r\n"), S("a\r\n\t\r\n"), 0, 0, 0 },
	/* RFC 5321 4.5.2: dot-unstuffing */
	{ S("..\r\n.\r\n"), S(".\r\n"), 1, 7, 0 },
	{ S("...\r\n.\r\n"), S("..\r\n"), 1, 8, 0 },
	{ S("a\r\n..b\r\n.\r\n"), S("a\r\n.b\r\n"), 1, 11, 0 },
	{ S("..\r\n..\r\n.\r\n"), S(".\r\n.\r\n"), 1, 11, 0 },
	{ S("a..b\r\n.\r\n"), S("a..b\r\n"), 1, 9, 0 },
	{ S(".hidden\r\n.\r\n"), S("hidden\r\n"), 1, 12, 0 },
	/* flags */
	{ S("caf\xc3\xa9\r\n.\r\n"), S("caf\xc3\xa9\r\n"), 1, 10, EIGHT },
	{ S("\x80\r\n.\r\n"), S("\x80\r\n"), 1, 6, EIGHT },
	{ S("a\0b\r\n.\r\n"), S("a\0b\r\n"), 1, 8, NUL },
	{ S("a\nb\r\n.\r\n"), S("a\nb\r\n"), 1, 8, LF },
	{ S("a\rb\r\n.\r\n"), S("a\rb\r\n"), 1, 8, CR },
	{ S("a\r\r\n.\r\n"), S("a\r\r\n"), 1, 7, CR },
	{ S("\n.\r\n"), S("\n.\r\n"), 0, 0, LF },
	{ S("\r.\r\n"), S("\r.\r\n"), 0, 0, CR },
	/* a dot line with a bare CR or LF is content, unstuffed and flagged */
	{ S(".\n"), S("\n"), 0, 0, LF },
	{ S(".\r."), S("\r."), 0, 0, CR },
	{ S("a\r\n.\rX\r\n"), S("a\r\n\rX\r\n"), 0, 0, CR },
	{ S("a\r\n.\r\r\n"), S("a\r\n\r\r\n"), 0, 0, CR },
	{ S("a\r\n.\n.\r\n"), S("a\r\n\n.\r\n"), 0, 0, LF },
};

static void
test_data_table(void **state)
{
	size_t i;
	int bad = 0;

	for (i = 0; i < sizeof(data_cases) / sizeof(data_cases[0]); i++) {
		const struct data_case *c = &data_cases[i];
		struct decoded r;
		size_t consumed = c->done ? c->consumed : c->n;

		decode(c->in, c->n, 0, 0, &r);
		if (r.done != c->done || r.consumed != consumed ||
		    r.flags != c->flags || r.out.len != c->outlen ||
		    (c->outlen && memcmp(r.out.data, c->out, c->outlen) != 0)) {
			print_error("case %zu: done %d consumed %zu flags %#x "
			    "outlen %zu; expected done %d consumed %zu flags %#x "
			    "outlen %zu\n", i, r.done, r.consumed, r.flags,
			    r.out.len, c->done, consumed, c->flags, c->outlen);
			bad++;
		}
		decoded_free(&r);
	}
	assert_int_equal(bad, 0);
}

/* Feeding in pieces gives what feeding at once gives, at every split. */
static void
test_data_split_everywhere(void **state)
{
	size_t i, k, step;
	int bdat;

	for (i = 0; i < sizeof(data_cases) / sizeof(data_cases[0]); i++) {
		const struct data_case *c = &data_cases[i];

		for (bdat = 0; bdat < 2; bdat++) {
			struct decoded whole;

			decode(c->in, c->n, bdat, 0, &whole);
			for (step = 1; step <= c->n; step++) {
				struct decoded part;

				decode(c->in, c->n, bdat, step, &part);
				if (!decoded_equal(&whole, &part))
					fail_msg("case %zu bdat %d step %zu differs",
					    i, bdat, step);
				decoded_free(&part);
			}
			/* two pieces, split at every position */
			for (k = 0; k <= c->n; k++) {
				struct decoded two;
				struct smtp_data d;
				size_t used;

				memset(&two, 0, sizeof(two));
				smtp_data_init(&d, bdat);
				used = smtp_data_feed(&d, c->in, k, &two.out,
				    &two.done);
				if (!two.done)
					used += smtp_data_feed(&d, c->in + k,
					    c->n - k, &two.out, &two.done);
				if (bdat)
					smtp_data_finish(&d, &two.out);
				two.consumed = used;
				two.flags = d.flags;
				if (!decoded_equal(&whole, &two))
					fail_msg("case %zu bdat %d split %zu differs",
					    i, bdat, k);
				decoded_free(&two);
			}
			decoded_free(&whole);
		}
	}
}

/*
 * The smuggling family: each sequence sits in the body between a line
 * and a second, smuggled transaction. Only the real CRLF.CRLF at the very
 * end may finish the message, the smuggled commands stay content, and a
 * flag makes the message refused.
 */
static const struct {
	const char *seq;
	size_t len;
	unsigned flags;		/* at least these */
} smuggle_cases[] = {
	{ S("\n.\n"), LF },			/* <LF>.<LF> */
	{ S("\n.\r\n"), LF },			/* <LF>.<CR><LF> */
	{ S("\r.\r"), CR },			/* <CR>.<CR> */
	{ S("\r.\n"), CR | LF },		/* <CR>.<LF> */
	{ S("\n.\r"), LF | CR },		/* <LF>.<CR> */
	{ S("\r.\r\n"), CR },			/* <CR>.<CR><LF> */
	{ S("\r\n.\n"), LF },			/* <CR><LF>.<LF> */
	{ S("\r\n.\r"), CR },			/* <CR><LF>.<CR> */
	{ S("\r\n.\r\r\n"), CR },
	{ S("\r\r\n.\r\r\n"), CR },
	{ S("\r\n\0.\r\n"), NUL },		/* <CR><LF><NUL>.<CR><LF> */
	{ S("\n\n.\n\n"), LF },
	{ S("\r\r.\r\r"), CR },
	{ S("\r\n.\n\r\n"), LF },
};

static const char smuggle_head[] = "Subject: hi\r\n\r\nfirst message\r\n";
static const char smuggle_tail[] = "mail FROM:<smuggled@evil.example>\r\n"
    "rcpt TO:<victim@example.test>\r\ndata\r\nsmuggled body\r\n.\r\n";

/* head + seq + CRLF + smuggled transaction; "" when seq is too long */
static size_t
smuggle_build(char *msg, size_t cap, const char *seq, size_t len)
{
	size_t hl = sizeof(smuggle_head) - 1, tl = sizeof(smuggle_tail) - 1;

	if (hl + len + 2 + tl > cap)
		return 0;
	memcpy(msg, smuggle_head, hl);
	memcpy(msg + hl, seq, len);
	memcpy(msg + hl + len, "\r\n", 2);
	memcpy(msg + hl + len + 2, smuggle_tail, tl);
	return hl + len + 2 + tl;
}

static int
smuggle_check(const char *seq, size_t len, unsigned want, int bdat,
    const char *what)
{
	char msg[512];
	size_t n = smuggle_build(msg, sizeof(msg), seq, len), step;
	struct decoded whole;
	int bad = 0;

	assert_true(n > 0);
	decode(msg, n, bdat, 0, &whole);
	if (!bdat && (!whole.done || whole.consumed != n)) {
		print_error("%s: ended at %zu of %zu (done %d)\n", what,
		    whole.consumed, n, whole.done);
		bad++;
	}
	if (bdat && (whole.done || whole.consumed != n)) {
		print_error("%s: bdat ended early\n", what);
		bad++;
	}
	if ((whole.flags & want) != want ||
	    smtp_data_refusal(whole.flags) == NULL) {
		print_error("%s: flags %#x, expected at least %#x and a refusal\n",
		    what, whole.flags, want);
		bad++;
	}
	if (whole.out.data == NULL ||
	    memmem(whole.out.data, whole.out.len, "mail FROM:<smuggled", 19) == NULL) {
		print_error("%s: smuggled commands not kept as content\n", what);
		bad++;
	}
	for (step = 1; step < 8; step++) {
		struct decoded part;

		decode(msg, n, bdat, step, &part);
		if (!decoded_equal(&whole, &part)) {
			print_error("%s: differs when fed %zu at a time\n", what,
			    step);
			bad++;
		}
		decoded_free(&part);
	}
	decoded_free(&whole);
	return bad;
}

static void
test_data_smuggling(void **state)
{
	size_t i;
	int bad = 0, bdat;

	for (i = 0; i < sizeof(smuggle_cases) / sizeof(smuggle_cases[0]); i++) {
		for (bdat = 0; bdat < 2; bdat++) {
			char what[64];

			snprintf(what, sizeof(what), "sequence %zu %s", i,
			    bdat ? "BDAT" : "DATA");
			bad += smuggle_check(smuggle_cases[i].seq,
			    smuggle_cases[i].len, smuggle_cases[i].flags, bdat,
			    what);
		}
	}
	assert_int_equal(bad, 0);
}

/* The legitimate end in the same position does end the message there. */
static void
test_data_smuggling_control(void **state)
{
	char msg[512];
	size_t n = smuggle_build(msg, sizeof(msg), "\r\n.", 3);
	struct decoded r;

	decode(msg, n, 0, 0, &r);
	assert_true(r.done);
	assert_int_equal(r.consumed, sizeof(smuggle_head) - 1 + 5);
	assert_int_equal(r.flags, 0);
	assert_int_equal(r.out.len, sizeof(smuggle_head) - 1 + 2);
	decoded_free(&r);
}

/*
 * A tiny JSON reader for eod-sequences.json: collects the string elements
 * of the array following "key". Returns the count, -1 on a syntax it does
 * not understand.
 */
static int
json_strings(const char *json, const char *key, struct buf *items, size_t max)
{
	char quoted[128];
	const char *p;
	size_t n = 0;

	snprintf(quoted, sizeof(quoted), "\"%s\"", key);
	if ((p = strstr(json, quoted)) == NULL)
		return 0;
	p += strlen(quoted);
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || *p == ':')
		p++;
	if (*p++ != '[')
		return -1;
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' ||
		    *p == ',')
			p++;
		if (*p == ']')
			return (int)n;
		if (*p++ != '"' || n == max)
			return -1;
		for (; *p != '"'; p++) {
			unsigned long u;
			char hex[5], c;

			if (*p == '\0')
				return -1;
			if (*p != '\\') {
				buf_appendc(&items[n], *p);
				continue;
			}
			switch (*++p) {
			case 'r': c = '\r'; break;
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case '"': case '\\': case '/': c = *p; break;
			case 'u':
				/* strncpy stops at the string's end */
				strncpy(hex, p + 1, 4);
				hex[4] = '\0';
				if (strspn(hex, "0123456789abcdefABCDEF") != 4)
					return -1;
				u = strtoul(hex, NULL, 16);
				if (u > 0x7f)	/* not needed for this file */
					return -1;
				c = (char)u;
				p += 4;
				break;
			default:
				return -1;
			}
			buf_append(&items[n], &c, 1);
		}
		p++;
		/* items are never NULL so an empty one reads as "" */
		buf_append(&items[n], "", 0);
		n++;
	}
}

static void
test_data_conformance_eod(void **state)
{
	static const char *keys[] = { "inbound_eod_sequences",
	    "outbound_eod_sequences" };
	struct buf json = { 0 }, items[32];
	char chunk[4096];
	FILE *fp;
	size_t k, r, total = 0;
	int bad = 0, bdat;

	if ((fp = fopen(CONFORMANCE_EOD, "r")) == NULL) {
		printf("skipped: conformance folder absent (%s)\n",
		    CONFORMANCE_EOD);
		skip();
	}
	while ((r = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		assert_int_equal(buf_append(&json, chunk, r), 0);
	fclose(fp);
	assert_non_null(json.data);
	for (k = 0; k < 2; k++) {
		int n, i;

		memset(items, 0, sizeof(items));
		n = json_strings(json.data, keys[k], items, 32);
		if (n < 0)
			fail_msg("%s: cannot read %s", CONFORMANCE_EOD, keys[k]);
		for (i = 0; i < n; i++) {
			for (bdat = 0; bdat < 2; bdat++) {
				char what[128];

				snprintf(what, sizeof(what), "%s[%d] %s", keys[k],
				    i, bdat ? "BDAT" : "DATA");
				/* no particular flag: any refusing one */
				bad += smuggle_check(items[i].data, items[i].len,
				    0, bdat, what);
			}
			buf_free(&items[i]);
			total++;
		}
	}
	buf_free(&json);
	if (total == 0)
		fail_msg("%s: no sequences found", CONFORMANCE_EOD);
	assert_int_equal(bad, 0);
}

struct line_case {
	size_t lead_dots;	/* dots at the line start, as sent */
	size_t len;		/* then this many 'x' */
	int long_line;
};

static int
line_length_check(const struct line_case *cases, size_t ncases)
{
	static char line[6000];
	size_t i;
	int bad = 0;

	for (i = 0; i < ncases; i++) {
		struct decoded r;
		size_t n, dots = cases[i].lead_dots;

		memcpy(line, "first\r\n", 7);
		n = 7;
		memset(line + n, '.', dots);
		n += dots;
		memset(line + n, 'x', cases[i].len);
		n += cases[i].len;
		memcpy(line + n, "\r\nshort\r\n.\r\n", 12);
		n += 12;
		decode(line, n, 0, 0, &r);
		assert_true(r.done);
		if (!!(r.flags & LONG) != cases[i].long_line) {
			print_error("%zu dot(s) + %zu octets: LONG_LINE %s\n",
			    dots, cases[i].len, (r.flags & LONG) ? "set" : "unset");
			bad++;
		}
		decoded_free(&r);
	}
	return bad;
}

static void
test_data_line_length(void **state)
{
	static const struct line_case cases[] = {
		{ 0, 997, 0 },
		{ 0, 998, 0 },
		{ 0, 999, 1 },
		{ 0, 5000, 1 },
	};

	assert_int_equal(line_length_check(cases,
	    sizeof(cases) / sizeof(cases[0])), 0);
}

/* RFC 5321 4.5.3.1.6: at most 1000 octets with CRLF "(not counting the
 * leading dot duplicated for transparency)". */
static void
test_data_line_length_stuffed_dot(void **state)
{
	static const struct line_case cases[] = {
		{ 1, 998, 0 },		/* ".xxx" on the wire: 998 octets */
		{ 1, 999, 1 },
		{ 2, 997, 0 },		/* "..xxx": the line ".xxx", 998 */
		{ 2, 998, 1 },		/* the line ".xxx", 999 */
	};

	assert_int_equal(line_length_check(cases,
	    sizeof(cases) / sizeof(cases[0])), 0);
}

/* A bare CR is an octet of the line it sits on (the decoder counts it):
 * 998 octets and a bare CR make a line of 999. */
static void
test_data_line_length_bare_cr(void **state)
{
	static char msg[1100];
	struct decoded r;

	memset(msg, 'a', 998);
	memcpy(msg + 998, "\r\r\n.\r\n", 6);
	decode(msg, 1004, 0, 0, &r);
	decoded_free(&r);
	assert_true(r.done);
	assert_true(r.flags & CR);
	if (!(r.flags & LONG))
		fail_msg("999-octet line ending in a bare CR: LONG_LINE unset");
}

static void
test_data_line_length_resets(void **state)
{
	static char msg[3000];
	struct decoded r;
	size_t n;

	/* two lines of 998 are two lines, not one of 1996 (DATA, BDAT) */
	memset(msg, 'y', 998);
	memcpy(msg + 998, "\r\n", 2);
	memset(msg + 1000, 'z', 998);
	memcpy(msg + 1998, "\r\n.\r\n", 5);
	n = 2003;
	decode(msg, n, 0, 0, &r);
	assert_true(r.done);
	assert_int_equal(r.flags, 0);
	decoded_free(&r);
	decode(msg, 2000, 1, 0, &r);
	assert_int_equal(r.flags, 0);
	decoded_free(&r);

	/* a line of 999 in BDAT */
	memset(msg, 'y', 999);
	decode(msg, 999, 1, 0, &r);
	assert_int_equal(r.flags, LONG);
	decoded_free(&r);
}

static void
test_bdat(void **state)
{
	static const struct {
		const char *in;
		size_t n;
		unsigned flags;
	} cases[] = {
		/* no unstuffing, no end marker */
		{ S("a\r\n.\r\n..b\r\nc"), 0 },
		{ S(".\r\n"), 0 },
		{ S("..\r\n"), 0 },
		{ S(""), 0 },
		{ S("a\nb"), LF },
		{ S("a\rb"), CR },
		{ S("abc\r"), CR },	/* finish: a trailing lone CR */
		{ S("\r"), CR },
		{ S("a\0"), NUL },
		{ S("\xff"), EIGHT },
		{ S("\r\n\r\n"), 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct decoded r;

		decode(cases[i].in, cases[i].n, 1, 0, &r);
		assert_int_equal(r.done, 0);
		assert_int_equal(r.consumed, cases[i].n);
		if (r.flags != cases[i].flags)
			fail_msg("bdat case %zu: flags %#x, expected %#x", i,
			    r.flags, cases[i].flags);
		/* content is passed on unchanged */
		assert_int_equal(r.out.len, cases[i].n);
		if (cases[i].n)
			assert_memory_equal(r.out.data, cases[i].in, cases[i].n);
		decoded_free(&r);
	}
}

static void
test_bdat_chunks(void **state)
{
	struct smtp_data d;
	struct buf out = { 0 };
	int done;

	/* a CRLF split over two BDAT chunks is one CRLF */
	smtp_data_init(&d, 1);
	assert_int_equal(smtp_data_feed(&d, "line\r", 5, &out, &done), 5);
	assert_int_equal(done, 0);
	assert_int_equal(smtp_data_feed(&d, "\nnext\r\n", 7, &out, &done), 7);
	assert_int_equal(smtp_data_finish(&d, &out), 0);
	assert_int_equal(d.flags, 0);
	assert_int_equal(out.len, 12);
	assert_memory_equal(out.data, "line\r\nnext\r\n", 12);
	assert_int_equal(d.total, 12);
	buf_free(&out);

	/* the lone CR is only known at LAST */
	smtp_data_init(&d, 1);
	assert_int_equal(smtp_data_feed(&d, "end\r", 4, &out, &done), 4);
	assert_int_equal(d.flags, 0);
	assert_int_equal(smtp_data_finish(&d, &out), 0);
	assert_int_equal(d.flags, CR);
	assert_int_equal(out.len, 4);
	assert_memory_equal(out.data, "end\r", 4);
	assert_int_equal(d.total, 4);
	buf_free(&out);
}

static void
test_data_empty_feed(void **state)
{
	struct smtp_data d;
	struct buf out = { 0 };
	int done = 1;

	smtp_data_init(&d, 0);
	assert_int_equal(smtp_data_feed(&d, "", 0, &out, &done), 0);
	assert_int_equal(done, 0);
	assert_int_equal(out.len, 0);
	assert_int_equal(smtp_data_feed(&d, ".\r\n", 3, &out, &done), 3);
	assert_int_equal(done, 1);
	assert_int_equal(out.len, 0);
	buf_free(&out);
}

static void
test_data_appends(void **state)
{
	struct smtp_data d;
	struct buf out = { 0 };
	int done;

	/* output is appended after what the caller already holds */
	assert_int_equal(buf_appends(&out, "Received: x\r\n"), 0);
	smtp_data_init(&d, 0);
	assert_int_equal(smtp_data_feed(&d, "body\r\n.\r\n", 9, &out, &done), 9);
	assert_true(done);
	assert_string_equal(out.data, "Received: x\r\nbody\r\n");
	assert_int_equal(d.total, 6);
	buf_free(&out);
}

static void
test_refusal(void **state)
{
	static const struct {
		unsigned flags;
		const char *needle;	/* NULL: no refusal */
	} cases[] = {
		{ 0, NULL },
		{ EIGHT, NULL },
		{ LF, "LF" },
		{ CR, "CR" },
		{ NUL, "NUL" },
		{ LONG, "998" },
		{ LF | CR | NUL | LONG | EIGHT, "LF" },
		{ CR | NUL, "CR" },
		{ NUL | LONG | EIGHT, "NUL" },
		{ LONG | EIGHT, "998" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *why = smtp_data_refusal(cases[i].flags);

		if (cases[i].needle == NULL) {
			if (why != NULL)
				fail_msg("flags %#x: refused \"%s\"", cases[i].flags,
				    why);
		} else if (why == NULL || strstr(why, cases[i].needle) == NULL)
			fail_msg("flags %#x: \"%s\" lacks \"%s\"", cases[i].flags,
			    why ? why : "(null)", cases[i].needle);
	}
}

/*
 * Reference model of DATA decoding, straight from RFC 5321 4.1.1.4 and
 * 4.5.2: a line starts at 0 or after CRLF; the first line that is "."
 * CRLF ends; a dot starting any other line is dropped. A CR still waiting
 * for its LF at the end of the input is not output yet.
 */
static void
model_data(const unsigned char *in, size_t n, struct decoded *m)
{
	size_t j, end = n;

	memset(m, 0, sizeof(*m));
	for (j = 0; j + 3 <= n; j++)
		if ((j == 0 || (j >= 2 && in[j - 2] == '\r' &&
		    in[j - 1] == '\n')) &&
		    memcmp(in + j, ".\r\n", 3) == 0) {
			m->done = 1;
			end = j;
			break;
		}
	m->consumed = m->done ? end + 3 : n;
	for (j = 0; j < end; j++) {
		int line_start = j == 0 || (j >= 2 && in[j - 2] == '\r' &&
		    in[j - 1] == '\n');

		if (in[j] == '.' && line_start)
			continue;
		if (!m->done && j == n - 1 && in[j] == '\r')
			continue;
		buf_appendc(&m->out, (char)in[j]);
	}
	for (j = 0; j < m->consumed; j++) {
		if (in[j] == '\n' && (j == 0 || in[j - 1] != '\r'))
			m->flags |= LF;
		if (in[j] == '\r' && j + 1 < m->consumed && in[j + 1] != '\n')
			m->flags |= CR;
		if (in[j] == '\0')
			m->flags |= NUL;
		if (in[j] >= 0x80)
			m->flags |= EIGHT;
	}
}

/* Every string of up to 8 octets over the interesting alphabet. */
static void
test_data_model_exhaustive(void **state)
{
	static const unsigned char alpha[] = { '\r', '\n', '.', 'a', '\0' };
	const size_t na = sizeof(alpha);
	unsigned char in[8];
	size_t len, count, i, c;
	int bad = 0;

	for (len = 0; len <= 8 && bad < 10; len++) {
		for (count = 1, i = 0; i < len; i++)
			count *= len < 8 ? na : 4;	/* 5^7, 4^8 */
		for (c = 0; c < count && bad < 10; c++) {
			struct decoded r, m;
			size_t v = c, radix = len < 8 ? na : 4;

			for (i = 0; i < len; i++) {
				in[i] = alpha[v % radix];
				v /= radix;
			}
			decode((const char *)in, len, 0, 0, &r);
			model_data(in, len, &m);
			if (!decoded_equal(&r, &m)) {
				char hex[64] = "";

				for (i = 0; i < len; i++)
					snprintf(hex + 3 * i, 4, "%02x ", in[i]);
				print_error("input %s: done %d/%d consumed %zu/%zu "
				    "flags %#x/%#x outlen %zu/%zu (decoder/model)\n",
				    hex, r.done, m.done, r.consumed, m.consumed,
				    r.flags, m.flags, r.out.len, m.out.len);
				bad++;
			}
			decoded_free(&r);
			decoded_free(&m);
		}
	}
	assert_int_equal(bad, 0);
}

/* Normalising (trusted submitters): bare CR and LF become CRLF, in one
 * feed or split at every offset, DATA and BDAT; the end of DATA is still
 * only CRLF "." CRLF. */
static void
test_data_normalise(void **state)
{
	static const struct {
		const char *in;
		size_t n;
		int bdat;
		const char *want;
		size_t want_n;
		int done;
	} cases[] = {
		{ S("a\nb\r\n.\r\n"), 0, S("a\r\nb\r\n"), 1 },
		{ S("a\rb\r\n.\r\n"), 0, S("a\r\nb\r\n"), 1 },
		{ S("a\r\rb\r\n.\r\n"), 0, S("a\r\n\r\nb\r\n"), 1 },
		/* the smuggling sequences do not end the message */
		{ S("a\n.\nb\r\n.\r\n"), 0, S("a\r\n.\r\nb\r\n"), 1 },
		{ S("a\r\n.\nb\r\n.\r\n"), 0, S("a\r\n\r\nb\r\n"), 1 },
		{ S("a\r\n.\rb\r\n.\r\n"), 0, S("a\r\n\r\nb\r\n"), 1 },
		{ S("a\n.\r\nb\r\n.\r\n"), 0, S("a\r\n.\r\nb\r\n"), 1 },
		{ S("x\ny\rz\r"), 1, S("x\r\ny\r\nz\r\n"), 0 },
	};
	size_t i, step;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (step = 0; step <= cases[i].n; step++) {
			struct smtp_data d;
			struct buf out = { 0 };
			size_t off = 0;
			int done = 0;

			smtp_data_init(&d, cases[i].bdat);
			d.normalise = 1;
			while (!done && off < cases[i].n) {
				size_t len = cases[i].n - off, used;

				if (step && len > step)
					len = step;
				used = smtp_data_feed(&d, cases[i].in + off, len,
				    &out, &done);
				assert_int_not_equal(used, (size_t)-1);
				off += used;
			}
			if (cases[i].bdat)
				assert_int_equal(smtp_data_finish(&d, &out), 0);
			assert_int_equal(done, cases[i].done);
			assert_int_equal(out.len, cases[i].want_n);
			assert_memory_equal(out.data, cases[i].want, out.len);
			assert_int_equal(d.total, out.len);
			assert_true(d.flags & SMTP_DATA_NORMALISED);
			assert_null(smtp_data_refusal(d.flags));
			buf_free(&out);
		}
}

/* A CR not followed by LF, or an LF not after CR, in decoded content. */
static int
has_bare_newline(const struct buf *b)
{
	size_t i;

	for (i = 0; i < b->len; i++)
		if ((b->data[i] == '\r' && (i + 1 == b->len ||
		    b->data[i + 1] != '\n')) ||
		    (b->data[i] == '\n' && (i == 0 || b->data[i - 1] != '\r')))
			return 1;
	return 0;
}

/*
 * Normalising, every string of up to 8 octets over CR LF "." "a": DATA
 * ends exactly where it ends without normalising (only at CRLF "." CRLF:
 * a trusted client's <LF>.<LF> never ends it); what is stored has no bare
 * CR or LF, so the queue's dot-stuffing makes it safe to relay; the result
 * does not depend on how the input was split.
 */
static void
test_data_normalise_exhaustive(void **state)
{
	static const unsigned char alpha[] = { '\r', '\n', '.', 'a' };
	static const size_t steps[] = { 0, 1, 2, 3 };
	unsigned char in[8];
	size_t len, count, i, c, k;
	int bad = 0, bdat;

	(void)state;
	for (len = 0; len <= 8 && bad < 10; len++) {
		for (count = 1, i = 0; i < len; i++)
			count *= 4;
		for (c = 0; c < count && bad < 10; c++)
			for (bdat = 0; bdat < 2; bdat++) {
				struct decoded r, m, w;
				size_t v = c;
				int ok;

				for (i = 0; i < len; i++) {
					in[i] = alpha[v % 4];
					v /= 4;
				}
				decode_mode((const char *)in, len, bdat, 1, 0, &w);
				if (bdat)
					memset(&m, 0, sizeof(m));
				else
					model_data(in, len, &m);
				ok = w.done == m.done &&
				    (!w.done || w.consumed == m.consumed) &&
				    !has_bare_newline(&w.out) &&
				    !(w.flags & (SMTP_DATA_BARE_CR |
				    SMTP_DATA_BARE_LF));
				for (k = 1; ok && k < sizeof(steps) /
				    sizeof(steps[0]); k++) {
					decode_mode((const char *)in, len, bdat,
					    1, steps[k], &r);
					ok = decoded_equal(&r, &w);
					decoded_free(&r);
				}
				if (!ok) {
					char hex[64] = "";

					for (i = 0; i < len; i++)
						snprintf(hex + 3 * i, 4, "%02x ",
						    in[i]);
					print_error("normalise bdat=%d input %s: "
					    "done %d/%d consumed %zu/%zu\n",
					    bdat, hex, w.done, m.done,
					    w.consumed, m.consumed);
					bad++;
				}
				decoded_free(&w);
				decoded_free(&m);
			}
	}
	assert_int_equal(bad, 0);
}

/* Normalising: a line ends at the new CRLF, so 998 octets then a bare LF
 * or CR, twice, is within the limit; 999 octets is not. */
static void
test_data_normalise_line_length(void **state)
{
	static const char ends[] = { '\n', '\r' };
	size_t e;

	(void)state;
	for (e = 0; e < sizeof(ends); e++) {
		struct buf in = { 0 };
		struct decoded r;
		size_t i;

		for (i = 0; i < 2 * 998 + 1; i++)
			buf_appendc(&in, i == 998 ? ends[e] : 'x');
		buf_append(&in, "\r\n.\r\n", 5);
		decode_mode(in.data, in.len, 0, 1, 0, &r);
		assert_true(r.done);
		assert_int_equal(r.out.len, 2 * 998 + 4);
		assert_false(r.flags & SMTP_DATA_LONG_LINE);
		assert_true(r.flags & SMTP_DATA_NORMALISED);
		decoded_free(&r);
		/* one more octet before the bare line end */
		buf_reset(&in);
		for (i = 0; i < 999; i++)
			buf_appendc(&in, 'x');
		buf_appendc(&in, ends[e]);
		buf_append(&in, "y\r\n.\r\n", 6);
		decode_mode(in.data, in.len, 0, 1, 0, &r);
		assert_true(r.flags & SMTP_DATA_LONG_LINE);
		assert_non_null(smtp_data_refusal(r.flags));
		decoded_free(&r);
		buf_free(&in);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_data_table),
		cmocka_unit_test(test_data_normalise),
		cmocka_unit_test(test_data_normalise_exhaustive),
		cmocka_unit_test(test_data_normalise_line_length),
		cmocka_unit_test(test_data_split_everywhere),
		cmocka_unit_test(test_data_smuggling),
		cmocka_unit_test(test_data_smuggling_control),
		cmocka_unit_test(test_data_conformance_eod),
		cmocka_unit_test(test_data_line_length),
		cmocka_unit_test(test_data_line_length_stuffed_dot),
		cmocka_unit_test(test_data_line_length_bare_cr),
		cmocka_unit_test(test_data_line_length_resets),
		cmocka_unit_test(test_bdat),
		cmocka_unit_test(test_bdat_chunks),
		cmocka_unit_test(test_data_empty_feed),
		cmocka_unit_test(test_data_appends),
		cmocka_unit_test(test_refusal),
		cmocka_unit_test(test_data_model_exhaustive),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
