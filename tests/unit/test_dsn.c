/*
 * Tests for queue/dsn.c (RFC 3464 reports, read back with a small MIME
 * reader), the RFC 3461 parameters in smtp/path.c (xtext, NOTIFY, RET,
 * ENVID, ORCPT) and their records in queue/envelope.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/buf.h"
#include "queue/dsn.h"
#include "queue/envelope.h"
#include "smtp/path.h"

/* ---------------------------------------------------------------- xtext */

static void
test_xtext(void **state)
{
	static const struct {
		const char *in;
		const char *out;	/* NULL: refused */
	} cases[] = {
		{ "", "" },
		{ "abc", "abc" },
		{ "a+2Bb", "a+b" },
		{ "+3D", "=" },
		{ "a+2bb", "a+b" },		/* lower-case hex accepted */
		{ "rfc822;x", "rfc822;x" },
		{ "+0D+0A", "\r\n" },		/* decodes; reports sanitize */
		{ "!~", "!~" },
		{ "+", NULL },
		{ "+4", NULL },
		{ "a+4", NULL },
		{ "+G0", NULL },
		{ "+0G", NULL },
		{ "+00", NULL },		/* NUL */
		{ "a=b", NULL },
		{ "a b", NULL },
		{ "a\tb", NULL },
		{ "a\x7f", NULL },
		{ "a\x80", NULL },
		{ "caf\xc3\xa9", NULL },
	};
	char out[64];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int n = smtp_xtext_decode(cases[i].in, out, sizeof(out));

		if (cases[i].out == NULL) {
			if (n != -1)
				fail_msg("xtext %s accepted", cases[i].in);
			assert_int_equal(smtp_xtext_check(cases[i].in), -1);
		} else {
			if (n < 0)
				fail_msg("xtext %s refused", cases[i].in);
			assert_string_equal(out, cases[i].out);
			assert_int_equal(n, (int)strlen(cases[i].out));
			assert_int_equal(smtp_xtext_check(cases[i].in), 0);
		}
	}
	/* does not fit: refused, never overflows */
	assert_int_equal(smtp_xtext_decode("abcd", out, 4), -1);
	assert_int_equal(smtp_xtext_decode("abc", out, 4), 3);
	assert_int_equal(smtp_xtext_decode("", out, 0), -1);
}

static void
test_notify(void **state)
{
	static const struct {
		const char *in;
		int mask;		/* -1: refused */
		const char *canon;
	} cases[] = {
		{ "NEVER", SMTP_NOTIFY_NEVER, "NEVER" },
		{ "never", SMTP_NOTIFY_NEVER, "NEVER" },
		{ "SUCCESS", SMTP_NOTIFY_SUCCESS, "SUCCESS" },
		{ "FAILURE", SMTP_NOTIFY_FAILURE, "FAILURE" },
		{ "Delay", SMTP_NOTIFY_DELAY, "DELAY" },
		{ "SUCCESS,FAILURE,DELAY", 7, "SUCCESS,FAILURE,DELAY" },
		{ "DELAY,SUCCESS", 5, "SUCCESS,DELAY" },
		{ "FAILURE,DELAY", 6, "FAILURE,DELAY" },
		{ "FAILURE,FAILURE", 2, "FAILURE" },
		{ "NEVER,SUCCESS", -1, NULL },
		{ "SUCCESS,NEVER", -1, NULL },
		{ "NEVER,NEVER", -1, NULL },
		{ "", -1, NULL },
		{ ",", -1, NULL },
		{ "SUCCESS,", -1, NULL },
		{ ",FAILURE", -1, NULL },
		{ "SUCCESS,,DELAY", -1, NULL },
		{ "SUCCES", -1, NULL },
		{ "SUCCESSX", -1, NULL },
		{ "SUCCESS FAILURE", -1, NULL },
		{ "ALWAYS", -1, NULL },
	};
	char out[32];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int mask = 0, r = smtp_dsn_notify_parse(cases[i].in, &mask);

		if (cases[i].mask == -1) {
			if (r != -1)
				fail_msg("NOTIFY=%s accepted", cases[i].in);
			continue;
		}
		if (r != 0)
			fail_msg("NOTIFY=%s refused", cases[i].in);
		assert_int_equal(mask, cases[i].mask);
		assert_string_equal(smtp_dsn_notify_str(mask, out, sizeof(out)),
		    cases[i].canon);
	}
	assert_string_equal(smtp_dsn_notify_str(0, out, sizeof(out)), "");
}

static void
test_orcpt(void **state)
{
	char big[SMTP_DSN_ORCPT_MAX + 2];

	assert_int_equal(smtp_dsn_orcpt_check("rfc822;a@b.example"), 0);
	assert_int_equal(smtp_dsn_orcpt_check("RFC822;a+2Bt@b.example"), 0);
	assert_int_equal(smtp_dsn_orcpt_check("x400;/c+3Dus/;x"), 0);
	assert_int_equal(smtp_dsn_orcpt_check("utf-8;a@b"), 0);
	assert_int_equal(smtp_dsn_orcpt_check(";a@b"), -1);
	assert_int_equal(smtp_dsn_orcpt_check("rfc822;"), -1);
	assert_int_equal(smtp_dsn_orcpt_check("rfc822"), -1);
	assert_int_equal(smtp_dsn_orcpt_check("rfc(822;a@b"), -1);
	assert_int_equal(smtp_dsn_orcpt_check("rfc=822;a@b"), -1);
	assert_int_equal(smtp_dsn_orcpt_check("rfc822;a=b"), -1);
	assert_int_equal(smtp_dsn_orcpt_check("rfc822;a+2"), -1);
	assert_int_equal(smtp_dsn_orcpt_check("rfc822;a+00"), -1);
	memset(big, 'a', sizeof(big));
	memcpy(big, "rfc822;", 7);
	big[SMTP_DSN_ORCPT_MAX] = '\0';
	assert_int_equal(smtp_dsn_orcpt_check(big), 0);
	big[SMTP_DSN_ORCPT_MAX] = 'a';
	big[SMTP_DSN_ORCPT_MAX + 1] = '\0';
	assert_int_equal(smtp_dsn_orcpt_check(big), -1);
}

/* MAIL and RCPT arguments through smtp_path_parse, then the DSN check. */
static int
mail_dsn(const char *arg, struct smtp_dsn_mail *r, char *copy, size_t n)
{
	struct smtp_path_args a;
	const char *err = NULL;

	snprintf(copy, n, "%s", arg);
	assert_int_equal(smtp_path_parse(copy, "FROM", &a, &err), SMTP_PATH_OK);
	err = NULL;
	if (smtp_path_dsn_mail(&a, r, &err) == -1) {
		assert_non_null(err);
		return -1;
	}
	return 0;
}

static int
rcpt_dsn(const char *arg, struct smtp_dsn_rcpt *r, char *copy, size_t n)
{
	struct smtp_path_args a;
	const char *err = NULL;

	snprintf(copy, n, "%s", arg);
	assert_int_equal(smtp_path_parse(copy, "TO", &a, &err), SMTP_PATH_OK);
	err = NULL;
	if (smtp_path_dsn_rcpt(&a, r, &err) == -1) {
		assert_non_null(err);
		return -1;
	}
	return 0;
}

static void
test_mail_rcpt_params(void **state)
{
	struct smtp_dsn_mail m;
	struct smtp_dsn_rcpt r;
	char copy[1024], envid[SMTP_DSN_ENVID_MAX + 40];

	assert_int_equal(mail_dsn("FROM:<a@b.example> RET=FULL ENVID=QQ314159",
	    &m, copy, sizeof(copy)), 0);
	assert_int_equal(m.ret, SMTP_RET_FULL);
	assert_string_equal(m.envid, "QQ314159");
	assert_int_equal(mail_dsn("FROM:<a@b.example> ret=hdrs SIZE=10", &m,
	    copy, sizeof(copy)), 0);
	assert_int_equal(m.ret, SMTP_RET_HDRS);
	assert_null(m.envid);
	assert_int_equal(mail_dsn("FROM:<> ENVID=a+2Bb", &m, copy, sizeof(copy)), 0);
	assert_int_equal(m.ret, SMTP_RET_UNSET);
	assert_string_equal(m.envid, "a+2Bb");
	assert_int_equal(mail_dsn("FROM:<a@b.example>", &m, copy, sizeof(copy)), 0);
	assert_int_equal(m.ret, SMTP_RET_UNSET);

	assert_int_equal(mail_dsn("FROM:<a@b.example> RET=PARTIAL", &m, copy,
	    sizeof(copy)), -1);
	assert_int_equal(mail_dsn("FROM:<a@b.example> RET", &m, copy,
	    sizeof(copy)), -1);
	assert_int_equal(mail_dsn("FROM:<a@b.example> RET=FULL RET=HDRS", &m,
	    copy, sizeof(copy)), -1);
	assert_int_equal(mail_dsn("FROM:<a@b.example> ENVID=a+2", &m, copy,
	    sizeof(copy)), -1);
	assert_int_equal(mail_dsn("FROM:<a@b.example> ENVID", &m, copy,
	    sizeof(copy)), -1);
	assert_int_equal(mail_dsn("FROM:<a@b.example> ENVID=x ENVID=y", &m, copy,
	    sizeof(copy)), -1);
	/* RFC 3461 4.4: at most 100 characters */
	memset(envid, 'e', sizeof(envid));
	snprintf(copy, sizeof(copy), "FROM:<a@b.example> ENVID=%.*s",
	    SMTP_DSN_ENVID_MAX, envid);
	assert_int_equal(mail_dsn(copy, &m, copy + 512, 512), 0);
	snprintf(copy, sizeof(copy), "FROM:<a@b.example> ENVID=%.*s",
	    SMTP_DSN_ENVID_MAX + 1, envid);
	assert_int_equal(mail_dsn(copy, &m, copy + 512, 512), -1);

	assert_int_equal(rcpt_dsn("TO:<a@b.example> NOTIFY=SUCCESS,DELAY "
	    "ORCPT=rfc822;A+2Bx@b.example", &r, copy, sizeof(copy)), 0);
	assert_int_equal(r.notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_DELAY);
	assert_string_equal(r.orcpt, "rfc822;A+2Bx@b.example");
	assert_int_equal(rcpt_dsn("TO:<a@b.example>", &r, copy, sizeof(copy)), 0);
	assert_int_equal(r.notify, 0);
	assert_null(r.orcpt);
	assert_int_equal(rcpt_dsn("TO:<a@b.example> NOTIFY=NEVER,SUCCESS", &r,
	    copy, sizeof(copy)), -1);
	assert_int_equal(rcpt_dsn("TO:<a@b.example> NOTIFY", &r, copy,
	    sizeof(copy)), -1);
	assert_int_equal(rcpt_dsn("TO:<a@b.example> NOTIFY=NEVER NOTIFY=NEVER",
	    &r, copy, sizeof(copy)), -1);
	assert_int_equal(rcpt_dsn("TO:<a@b.example> ORCPT=rfc822", &r, copy,
	    sizeof(copy)), -1);
	assert_int_equal(rcpt_dsn("TO:<a@b.example> ORCPT=;x", &r, copy,
	    sizeof(copy)), -1);
}

/* ---------------------------------------------------------------- envelope */

static void
test_envelope_records(void **state)
{
	static const char old[] = "V 1\nI 0000000010000ABC\nT 5\ns S1\nC 1.2.3.4\n"
	    "H h\nS a@b\nZ 3\nB 0\nU 0\nA 0\nN 0\nR P c@d\nE\n";
	struct envelope e, p;
	struct buf b = { 0 };
	const char *err;

	/* an envelope from before the DSN records */
	assert_int_equal(envelope_parse(old, strlen(old), &p, &err), 0);
	assert_int_equal(p.dsn_ret, 0);
	assert_null(p.dsn_envid);
	assert_int_equal(p.delay_warned, 0);
	assert_int_equal(p.rcpts[0].notify, 0);
	assert_null(p.rcpts[0].orcpt);
	envelope_free(&p);

	memset(&e, 0, sizeof(e));
	snprintf(e.id, sizeof(e.id), "0000000010000ABC");
	assert_int_equal(envelope_set(&e.sender, "a@b.example"), 0);
	assert_int_equal(envelope_set(&e.dsn_envid, "id+2B1%"), 0);
	e.dsn_ret = 'F';
	e.delay_warned = 1234;
	assert_int_equal(envelope_add_rcpt(&e, "x@y.example"), 0);
	assert_int_equal(envelope_add_rcpt(&e, "z@y.example"), 0);
	e.rcpts[0].notify = SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE;
	assert_int_equal(envelope_set(&e.rcpts[0].orcpt, "rfc822;X@y.example"), 0);
	e.rcpts[1].notify = SMTP_NOTIFY_NEVER;
	assert_int_equal(envelope_serialize(&e, &b), 0);
	assert_non_null(strstr(b.data, "\nK FULL\n"));
	assert_non_null(strstr(b.data, "\nJ id+2B1%25\n"));
	assert_non_null(strstr(b.data, "\nW 1234\n"));
	assert_non_null(strstr(b.data, "\nR P x@y.example\nY SUCCESS,FAILURE\n"
	    "O rfc822;X@y.example\nR P z@y.example\nY NEVER\n"));
	assert_int_equal(envelope_parse(b.data, b.len, &p, &err), 0);
	assert_int_equal(p.dsn_ret, 'F');
	assert_string_equal(p.dsn_envid, "id+2B1%");
	assert_int_equal(p.delay_warned, 1234);
	assert_int_equal(p.rcpts[0].notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE);
	assert_string_equal(p.rcpts[0].orcpt, "rfc822;X@y.example");
	assert_int_equal(p.rcpts[1].notify, SMTP_NOTIFY_NEVER);
	assert_null(p.rcpts[1].orcpt);
	envelope_free(&p);
	envelope_free(&e);
	buf_free(&b);
}

static void
test_envelope_bad_records(void **state)
{
	static const char *bad[] = {
		"K PARTIAL\n",
		"K FULL\nK FULL\n",
		"J a=b\n",
		"J a\nJ b\n",
		"W x\n",
		"Y SUCCESS\nR P c@d\n",		/* before any recipient */
		"R P c@d\nY NEVER,SUCCESS\n",
		"R P c@d\nY ALWAYS\n",
		"R P c@d\nY NEVER\nY NEVER\n",
		"R P c@d\nO rfc822\n",
		"R P c@d\nO rfc822;x\nO rfc822;y\n",
	};
	char text[512];
	struct envelope p;
	const char *err;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "V 1\nI 0000000010000ABC\nS a@b\n"
		    "%sR P e@f\nE\n", bad[i]);
		if (envelope_parse(text, strlen(text), &p, &err) != -1)
			fail_msg("accepted: %s", bad[i]);
	}
	snprintf(text, sizeof(text), "V 1\nI 0000000010000ABC\nS a@b\n"
	    "R P e@f\nY DELAY\nO rfc822;e@f\nE\n");
	assert_int_equal(envelope_parse(text, strlen(text), &p, &err), 0);
	envelope_free(&p);
}

/* ---------------------------------------------------------------- MIME */

struct part {
	char *hdr;		/* header section, unfolded fields, CRLF each */
	char *body;
	size_t blen;
};

struct msg {
	char *hdr;
	struct part parts[8];
	size_t nparts;
	int closed;		/* the close delimiter was found */
};

/* The header section of s[0..n) (up to the empty line) unfolded; *rest_r
 * points after the empty line. */
static char *
unfold(const char *s, size_t n, const char **rest_r)
{
	const char *end = memmem(s, n, "\r\n\r\n", 4);
	char *out;
	size_t i, o = 0, hl;

	if (n >= 2 && memcmp(s, "\r\n", 2) == 0) {
		*rest_r = s + 2;
		return strdup("");
	}
	assert_non_null(end);
	hl = (size_t)(end - s) + 2;
	out = malloc(hl + 1);
	assert_non_null(out);
	for (i = 0; i < hl; i++) {
		if (s[i] == '\r' && i + 2 < hl && s[i + 1] == '\n' &&
		    (s[i + 2] == ' ' || s[i + 2] == '\t')) {
			i++;		/* CRLF WSP: the WSP stays */
			continue;
		}
		out[o++] = s[i];
	}
	out[o] = '\0';
	*rest_r = end + 4;
	return out;
}

/* Value of field name in an unfolded header section, or NULL (static). */
static const char *
field(const char *hdr, const char *name)
{
	static char v[2048];
	size_t nl = strlen(name);
	const char *p = hdr;

	while (p && *p) {
		const char *e = strstr(p, "\r\n");

		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *s = p + nl + 1;

			while (*s == ' ' || *s == '\t')
				s++;
			snprintf(v, sizeof(v), "%.*s", (int)(e - s), s);
			return v;
		}
		p = e ? e + 2 : NULL;
	}
	return NULL;
}

static void
parse_msg(const struct buf *b, struct msg *m)
{
	const char *rest, *ct, *bp, *p, *end = b->data + b->len;
	char boundary[200], delim[210];
	size_t dl;

	memset(m, 0, sizeof(*m));
	m->hdr = unfold(b->data, b->len, &rest);
	ct = field(m->hdr, "Content-Type");
	assert_non_null(ct);
	assert_non_null(strstr(ct, "multipart/report"));
	assert_non_null(strstr(ct, "report-type=delivery-status"));
	bp = strstr(ct, "boundary=\"");
	assert_non_null(bp);
	snprintf(boundary, sizeof(boundary), "%.*s",
	    (int)strcspn(bp + 10, "\""), bp + 10);
	dl = (size_t)snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
	/* the preamble ends at the first delimiter */
	p = memmem(rest, (size_t)(end - rest), delim, dl);
	assert_non_null(p);
	for (;;) {
		const char *start = p + dl, *next, *body;

		if (end - start >= 2 && memcmp(start, "--", 2) == 0) {
			m->closed = 1;
			assert_memory_equal(start + 2, "\r\n", 2);
			assert_true(start + 4 == end);
			break;
		}
		assert_memory_equal(start, "\r\n", 2);
		start += 2;
		next = memmem(start, (size_t)(end - start), delim, dl);
		assert_non_null(next);
		assert_true(m->nparts < 8);
		m->parts[m->nparts].hdr = unfold(start, (size_t)(next - start), &body);
		m->parts[m->nparts].body = strndup(body, (size_t)(next - body));
		m->parts[m->nparts].blen = (size_t)(next - body);
		m->nparts++;
		p = next;
	}
}

static void
free_msg(struct msg *m)
{
	size_t i;

	free(m->hdr);
	for (i = 0; i < m->nparts; i++) {
		free(m->parts[i].hdr);
		free(m->parts[i].body);
	}
}

/* Field of block k of a message/delivery-status body (0: per message). */
static const char *
ds_field(const struct part *p, size_t k, const char *name)
{
	static char block[4096];
	const char *s = p->body, *e;
	size_t i;
	char *u;
	const char *rest, *v;

	for (i = 0; i < k; i++) {
		s = strstr(s, "\r\n\r\n");
		if (s == NULL)
			return NULL;
		s += 4;
	}
	e = strstr(s, "\r\n\r\n");
	snprintf(block, sizeof(block), "%.*s\r\n\r\n",
	    (int)(e ? (size_t)(e - s) : strlen(s)), s);
	u = unfold(block, strlen(block), &rest);
	v = field(u, name);
	free(u);
	return v;
}

/* Every line of the output ends in CRLF, no bare CR or LF, no NUL. */
static void
assert_clean_lines(const struct buf *b)
{
	size_t i;

	for (i = 0; i < b->len; i++) {
		assert_true(b->data[i] != '\0');
		if (b->data[i] == '\r')
			assert_true(i + 1 < b->len && b->data[i + 1] == '\n');
		if (b->data[i] == '\n')
			assert_true(i > 0 && b->data[i - 1] == '\r');
	}
	assert_true(b->len >= 2 && memcmp(b->data + b->len - 2, "\r\n", 2) == 0);
}

/* ---------------------------------------------------------------- reports */

static const char original[] =
    "Received: from client.test\r\n\tby mx.example.test; now\r\n"
    "From: <alice@sender.test>\r\n"
    "To: <bad@example.test>\r\n"
    "Subject: the original\r\n"
    "\r\n"
    "Body line one.\r\n"
    "The body secret.\r\n";

static int
content_fd(const char *data, size_t n)
{
	char path[] = "/tmp/test_dsn.XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd != -1);
	unlink(path);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	return fd;
}

static void
report_defaults(struct dsn_report *r, const struct dsn_rcpt *rc, size_t n)
{
	memset(r, 0, sizeof(*r));
	r->hostname = "mx.example.test";
	r->queue_id = "0000000010000ABC";
	r->dsn_id = "0000000020000DEF";
	r->sender = "alice@sender.test";
	r->arrival = 1700000000;
	r->attempt = 1700000100;
	r->now = 1700000100;
	r->retry_until = 1700000000 + 5 * 86400;
	r->rcpts = rc;
	r->nrcpt = n;
}

static void
build(const struct dsn_report *r, const char *content, struct buf *b,
    struct msg *m, int *eight_r)
{
	int fd = content ? content_fd(content, strlen(content)) : -1, eight;

	assert_int_equal(dsn_build(r, fd, content ? (off_t)strlen(content) : 0,
	    b, &eight), 0);
	if (fd != -1)
		close(fd);
	if (eight_r)
		*eight_r = eight;
	assert_clean_lines(b);
	parse_msg(b, m);
	assert_true(m->closed);
}

static void
test_failure_report(void **state)
{
	struct dsn_rcpt rc[2] = {
		{ "bad@example.test", "rfc822;Bad+2BTag@example.test",
		  "mx.example.test[192.0.2.1]:25 said: 550 5.1.1 <bad@example.test>: "
		  "no such user", DSN_FAILED, 0 },
		{ "worse@example.test", NULL,
		  "[127.0.0.1]:2526 said: 554 5.7.1 spam", DSN_FAILED, 0 },
	};
	struct dsn_report r;
	struct buf b = { 0 };
	struct msg m;
	int eight;

	report_defaults(&r, rc, 2);
	r.envid = "QQ+2B314159";
	build(&r, original, &b, &m, &eight);
	assert_false(eight);
	assert_string_equal(field(m.hdr, "From"),
	    "\"Mail Delivery System\" <MAILER-DAEMON@mx.example.test>");
	assert_string_equal(field(m.hdr, "To"), "<alice@sender.test>");
	assert_string_equal(field(m.hdr, "Subject"),
	    "Undelivered Mail Returned to Sender");
	assert_string_equal(field(m.hdr, "Auto-Submitted"), "auto-replied");
	assert_string_equal(field(m.hdr, "MIME-Version"), "1.0");
	assert_string_equal(field(m.hdr, "Message-ID"),
	    "<0000000020000DEF.dsn@mx.example.test>");
	assert_string_equal(field(m.hdr, "Date"), "Tue, 14 Nov 2023 22:15:00 +0000");

	assert_int_equal(m.nparts, 3);
	assert_non_null(strstr(field(m.parts[0].hdr, "Content-Type"), "text/plain"));
	assert_non_null(strstr(m.parts[0].body, "<bad@example.test>: mx.example.test"
	    "[192.0.2.1]:25 said: 550 5.1.1"));
	assert_non_null(strstr(m.parts[0].body, "<worse@example.test>: "));
	assert_non_null(strstr(m.parts[0].body, "0000000010000ABC"));

	assert_string_equal(field(m.parts[1].hdr, "Content-Type"),
	    "message/delivery-status");
	assert_string_equal(ds_field(&m.parts[1], 0, "Reporting-MTA"),
	    "dns; mx.example.test");
	assert_string_equal(ds_field(&m.parts[1], 0, "Original-Envelope-Id"),
	    "QQ+314159");
	assert_string_equal(ds_field(&m.parts[1], 0, "Arrival-Date"),
	    "Tue, 14 Nov 2023 22:13:20 +0000");
	assert_null(ds_field(&m.parts[1], 0, "Final-Recipient"));
	assert_string_equal(ds_field(&m.parts[1], 1, "Final-Recipient"),
	    "rfc822; bad@example.test");
	assert_string_equal(ds_field(&m.parts[1], 1, "Original-Recipient"),
	    "rfc822;Bad+Tag@example.test");
	assert_string_equal(ds_field(&m.parts[1], 1, "Action"), "failed");
	assert_string_equal(ds_field(&m.parts[1], 1, "Status"), "5.1.1");
	assert_string_equal(ds_field(&m.parts[1], 1, "Remote-MTA"),
	    "dns; mx.example.test");
	assert_string_equal(ds_field(&m.parts[1], 1, "Diagnostic-Code"),
	    "smtp; 550 5.1.1 <bad@example.test>: no such user");
	assert_string_equal(ds_field(&m.parts[1], 1, "Last-Attempt-Date"),
	    "Tue, 14 Nov 2023 22:15:00 +0000");
	assert_null(ds_field(&m.parts[1], 1, "Will-Retry-Until"));
	assert_string_equal(ds_field(&m.parts[1], 2, "Final-Recipient"),
	    "rfc822; worse@example.test");
	assert_null(ds_field(&m.parts[1], 2, "Original-Recipient"));
	assert_string_equal(ds_field(&m.parts[1], 2, "Status"), "5.7.1");
	assert_string_equal(ds_field(&m.parts[1], 2, "Remote-MTA"), "dns; 127.0.0.1");
	assert_null(ds_field(&m.parts[1], 3, "Final-Recipient"));

	/* headers only (no RET): the header section, not the body */
	assert_string_equal(field(m.parts[2].hdr, "Content-Type"),
	    "text/rfc822-headers");
	assert_non_null(strstr(m.parts[2].body, "Subject: the original\r\n"));
	assert_non_null(strstr(m.parts[2].body, "\tby mx.example.test"));
	assert_null(strstr(m.parts[2].body, "secret"));
	assert_null(strstr((char *)b.data, "secret"));
	free_msg(&m);
	buf_free(&b);
}

static void
test_ret_full_and_limits(void **state)
{
	struct dsn_rcpt rc = { "bad@example.test", NULL,
	    "[127.0.0.1]:25 said: 550 5.1.1 no", DSN_FAILED, 0 };
	struct dsn_report r;
	struct buf b = { 0 };
	struct msg m;

	report_defaults(&r, &rc, 1);
	r.ret_full = 1;
	build(&r, original, &b, &m, NULL);
	assert_int_equal(m.nparts, 3);
	assert_string_equal(field(m.parts[2].hdr, "Content-Type"), "message/rfc822");
	assert_int_equal(m.parts[2].blen, strlen(original));
	assert_memory_equal(m.parts[2].body, original, strlen(original));
	free_msg(&m);
	buf_free(&b);

	/* larger than full_max: its headers, and the text says so */
	r.full_max = 20;
	build(&r, original, &b, &m, NULL);
	assert_string_equal(field(m.parts[2].hdr, "Content-Type"),
	    "text/rfc822-headers");
	assert_null(strstr(m.parts[2].body, "secret"));
	assert_non_null(strstr(m.parts[0].body, "too large to return in full"));
	free_msg(&m);
	buf_free(&b);

	/* RET=FULL is for failures: a delay warning carries headers only */
	r.full_max = 0;
	rc.action = DSN_DELAYED;
	build(&r, original, &b, &m, NULL);
	assert_string_equal(field(m.parts[2].hdr, "Content-Type"),
	    "text/rfc822-headers");
	free_msg(&m);
	buf_free(&b);

	/* no content: two parts */
	rc.action = DSN_FAILED;
	build(&r, NULL, &b, &m, NULL);
	assert_int_equal(m.nparts, 2);
	free_msg(&m);
	buf_free(&b);
}

static void
test_huge_headers_cut_at_line_end(void **state)
{
	struct dsn_rcpt rc = { "bad@example.test", NULL, "550 x", DSN_FAILED, 0 };
	struct dsn_report r;
	struct buf c = { 0 }, b = { 0 };
	struct msg m;
	size_t i;

	for (i = 0; c.len < DSN_HDRS_MAX + 5000; i++)
		buf_appendf(&c, "X-Filler-%zu: %s\r\n", i,
		    "0123456789012345678901234567890123456789012345678901234567");
	buf_appends(&c, "\r\nbody\r\n");
	report_defaults(&r, &rc, 1);
	build(&r, c.data, &b, &m, NULL);
	assert_true(m.parts[2].blen <= DSN_HDRS_MAX);
	assert_true(m.parts[2].blen > DSN_HDRS_MAX - 100);
	assert_memory_equal(m.parts[2].body + m.parts[2].blen - 2, "\r\n", 2);
	assert_memory_equal(m.parts[2].body, c.data, m.parts[2].blen);
	free_msg(&m);
	buf_free(&b);

	/* a message that is all header, no body, no final CRLF */
	buf_free(&c);
	buf_appends(&c, "Subject: only\r\nX-A: b");
	build(&r, c.data, &b, &m, NULL);
	assert_string_equal(m.parts[2].body, "Subject: only\r\nX-A: b\r\n");
	free_msg(&m);
	buf_free(&b);
	buf_free(&c);
}

static void
test_status_rules(void **state)
{
	static const struct {
		enum dsn_action action;
		int expired;
		const char *last;
		const char *status;
		const char *remote;	/* NULL: no Remote-MTA */
		const char *diag;	/* NULL: no Diagnostic-Code */
	} cases[] = {
		{ DSN_FAILED, 0, "h[1.2.3.4]:25 said: 550 5.1.1 no", "5.1.1",
		  "dns; h", "smtp; 550 5.1.1 no" },
		{ DSN_FAILED, 0, "h[1.2.3.4]:25 said: 550 no", "5.0.0", "dns; h",
		  "smtp; 550 no" },
		{ DSN_FAILED, 0, "h[1.2.3.4]:25 said: 550 4.1.1 odd", "5.0.0",
		  "dns; h", "smtp; 550 4.1.1 odd" },
		{ DSN_FAILED, 0, "h[1.2.3.4]:25 said: 550 5.1.1x", "5.0.0",
		  "dns; h", "smtp; 550 5.1.1x" },
		{ DSN_FAILED, 0, "556 5.1.10 Recipient address has null MX",
		  "5.1.10", NULL, "smtp; 556 5.1.10 Recipient address has null MX" },
		{ DSN_FAILED, 0, "552 5.3.4 message size 9 exceeds the limit",
		  "5.3.4", NULL, "smtp; 552 5.3.4 message size 9 exceeds the limit" },
		{ DSN_FAILED, 1, "expired after 10s in queue; last: [::1]:26 said: "
		  "451 4.3.0 busy", "5.4.7", "dns; ::1", "smtp; 451 4.3.0 busy" },
		{ DSN_FAILED, 1, "expired after 10s in queue; last: h[1.2.3.4]:25 "
		  "said: 550 5.2.2 full", "5.2.2", "dns; h", "smtp; 550 5.2.2 full" },
		{ DSN_FAILED, 1, "expired after 10s in queue; last: connect: "
		  "Connection refused", "5.4.7", NULL, "X-mxgate; expired after 10s "
		  "in queue; last: connect: Connection refused" },
		{ DSN_FAILED, 0, "connect: Connection refused (127.0.0.1:25)",
		  "5.0.0", NULL, "X-mxgate; connect: Connection refused (127.0.0.1:25)" },
		{ DSN_FAILED, 0, NULL, "5.0.0", NULL, NULL },
		{ DSN_DELAYED, 0, "h[1.2.3.4]:25 said: 451 4.3.0 busy", "4.3.0",
		  "dns; h", "smtp; 451 4.3.0 busy" },
		{ DSN_DELAYED, 0, "h[1.2.3.4]:25 said: 451 busy", "4.0.0", "dns; h",
		  "smtp; 451 busy" },
		{ DSN_RELAYED, 0, "h[1.2.3.4]:25 said: 250 2.0.0 ok 1", "2.0.0",
		  "dns; h", "smtp; 250 2.0.0 ok 1" },
		{ DSN_RELAYED, 0, "h[1.2.3.4]:25 said: 250 2.6.0 queued", "2.6.0",
		  "dns; h", "smtp; 250 2.6.0 queued" },
		/* a reply claiming " said: " itself: the first is ours */
		{ DSN_FAILED, 0, "h[1.2.3.4]:25 said: 550 5.7.1 x said: y", "5.7.1",
		  "dns; h", "smtp; 550 5.7.1 x said: y" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dsn_rcpt rc = { "r@example.test", NULL, cases[i].last,
		    cases[i].action, cases[i].expired };
		struct dsn_report r;
		struct buf b = { 0 };
		struct msg m;
		const char *v;
		char st[16];

		dsn_status(&rc, st, sizeof(st));
		if (strcmp(st, cases[i].status) != 0)
			fail_msg("case %zu: status %s, expected %s", i, st,
			    cases[i].status);
		report_defaults(&r, &rc, 1);
		build(&r, original, &b, &m, NULL);
		assert_string_equal(ds_field(&m.parts[1], 1, "Status"), cases[i].status);
		v = ds_field(&m.parts[1], 1, "Remote-MTA");
		if (cases[i].remote == NULL)
			assert_null(v);
		else
			assert_string_equal(v, cases[i].remote);
		v = ds_field(&m.parts[1], 1, "Diagnostic-Code");
		if (cases[i].diag == NULL)
			assert_null(v);
		else
			assert_string_equal(v, cases[i].diag);
		assert_string_equal(ds_field(&m.parts[1], 1, "Action"),
		    cases[i].action == DSN_FAILED ? "failed" :
		    cases[i].action == DSN_DELAYED ? "delayed" : "relayed");
		free_msg(&m);
		buf_free(&b);
	}
}

static void
test_delay_and_success_reports(void **state)
{
	struct dsn_rcpt rc = { "slow@example.test", NULL,
	    "[127.0.0.1]:25 said: 451 4.3.0 busy", DSN_DELAYED, 0 };
	struct dsn_report r;
	struct buf b = { 0 };
	struct msg m;

	report_defaults(&r, &rc, 1);
	build(&r, original, &b, &m, NULL);
	assert_string_equal(field(m.hdr, "Subject"), "Delayed Mail (still being retried)");
	assert_string_equal(ds_field(&m.parts[1], 1, "Action"), "delayed");
	assert_string_equal(ds_field(&m.parts[1], 1, "Will-Retry-Until"),
	    "Sun, 19 Nov 2023 22:13:20 +0000");
	assert_non_null(strstr(m.parts[0].body, "need not send it again"));
	free_msg(&m);
	buf_free(&b);

	rc.action = DSN_RELAYED;
	rc.last = "[127.0.0.1]:25 said: 250 2.0.0 ok 7";
	build(&r, original, &b, &m, NULL);
	assert_string_equal(field(m.hdr, "Subject"), "Successful Mail Delivery Report");
	assert_string_equal(ds_field(&m.parts[1], 1, "Action"), "relayed");
	assert_string_equal(ds_field(&m.parts[1], 1, "Status"), "2.0.0");
	assert_null(ds_field(&m.parts[1], 1, "Will-Retry-Until"));
	free_msg(&m);
	buf_free(&b);

	/* no recipient: nothing to report */
	r.nrcpt = 0;
	{
		int eight;

		assert_int_equal(dsn_build(&r, -1, 0, &b, &eight), -1);
	}
	buf_free(&b);
}

/* No value we write can start a header field, a report field or a part. */
static void
test_injection(void **state)
{
	struct dsn_rcpt rc = { "evil@example.test\r\nBcc: victim@example.test",
	    "rfc822;x+0D+0AX-Orcpt-Evil:+201",
	    "h[1.2.3.4]:25 said: 550 5.1.1 no\r\nX-Injected: 1\r\n\r\n--=_mxgate_"
	    "0000000020000DEF_0--\r\n\x01\x7f\xff end", DSN_FAILED, 0 };
	struct dsn_report r;
	struct buf b = { 0 };
	struct msg m;
	const char *p;
	int eight;

	report_defaults(&r, &rc, 1);
	r.sender = "alice@sender.test>\r\nSubject: owned";
	r.envid = "+0D+0AX-Envid-Evil:+201";
	build(&r, original, &b, &m, &eight);
	assert_false(eight);	/* \xff became '?' */
	for (p = b.data; p; p = strstr(p, "\r\n")) {
		p += p == b.data ? 0 : 2;
		assert_true(strncasecmp(p, "Bcc:", 4) != 0);
		assert_true(strncasecmp(p, "X-Injected", 10) != 0);
		assert_true(strncasecmp(p, "X-Orcpt-Evil", 12) != 0);
		assert_true(strncasecmp(p, "X-Envid-Evil", 12) != 0);
		assert_true(strncasecmp(p, "Subject: owned", 14) != 0);
		if (*p == '\0')
			break;
	}
	assert_null(strchr(field(m.hdr, "To"), '\r'));
	assert_string_equal(field(m.hdr, "Subject"),
	    "Undelivered Mail Returned to Sender");
	/* the boundary is not the one the reply tried to close */
	assert_null(strstr(field(m.hdr, "Content-Type"), "DEF_0\""));
	assert_int_equal(m.nparts, 3);
	assert_string_equal(ds_field(&m.parts[1], 1, "Final-Recipient"),
	    "rfc822; evil@example.test Bcc: victim@example.test");
	assert_string_equal(ds_field(&m.parts[1], 0, "Original-Envelope-Id"),
	    "X-Envid-Evil: 1");
	assert_non_null(strstr(ds_field(&m.parts[1], 1, "Diagnostic-Code"),
	    "X-Injected: 1"));
	assert_non_null(strstr(ds_field(&m.parts[1], 1, "Diagnostic-Code"),
	    "? end"));
	free_msg(&m);
	buf_free(&b);
}

static void
test_boundary_avoids_content(void **state)
{
	static const char content[] = "Subject: x\r\nX-B: =_mxgate_0000000020000DEF_0"
	    " =_mxgate_0000000020000DEF_1\r\n\r\nbody\r\n";
	struct dsn_rcpt rc = { "bad@example.test", NULL, "550 5.1.1 x", DSN_FAILED, 0 };
	struct dsn_report r;
	struct buf b = { 0 };
	struct msg m;

	report_defaults(&r, &rc, 1);
	build(&r, content, &b, &m, NULL);
	assert_non_null(strstr(field(m.hdr, "Content-Type"),
	    "boundary=\"=_mxgate_0000000020000DEF_2\""));
	assert_int_equal(m.nparts, 3);
	free_msg(&m);
	buf_free(&b);
}

static void
test_long_values_folded(void **state)
{
	char last[700], want[800];
	struct dsn_rcpt rc = { "bad@example.test", NULL, last, DSN_FAILED, 0 };
	struct dsn_report r;
	struct buf b = { 0 };
	struct msg m;
	size_t i, col = 0;
	int n;

	n = snprintf(last, sizeof(last), "h[1.2.3.4]:25 said: 550 5.7.1");
	for (i = 0; i < 40; i++)
		n += snprintf(last + n, sizeof(last) - (size_t)n, " word%zu", i);
	report_defaults(&r, &rc, 1);
	build(&r, original, &b, &m, NULL);
	/* unfolded, the value is whole */
	snprintf(want, sizeof(want), "smtp; %s", strstr(last, "550"));
	assert_string_equal(ds_field(&m.parts[1], 1, "Diagnostic-Code"), want);
	/* the delivery-status part has no line above 78 octets */
	for (i = 0; i < m.parts[1].blen; i++) {
		if (m.parts[1].body[i] == '\n')
			col = 0;
		else
			assert_true(++col <= 79);
	}
	free_msg(&m);
	buf_free(&b);
}

static void
test_smtputf8(void **state)
{
	static const char content[] = "Subject: caf\xc3\xa9\r\n\r\nbody\r\n";
	struct dsn_rcpt rc = { "j\xc3\xb6rg@example.test", NULL,
	    "h[1.2.3.4]:25 said: 550 5.1.1 unknown", DSN_FAILED, 0 };
	struct dsn_report r;
	struct buf b = { 0 };
	struct msg m;
	int eight;

	report_defaults(&r, &rc, 1);
	r.smtputf8 = 1;
	build(&r, content, &b, &m, &eight);
	assert_true(eight);
	assert_string_equal(field(m.hdr, "Content-Transfer-Encoding"), "8bit");
	assert_string_equal(field(m.parts[1].hdr, "Content-Type"),
	    "message/global-delivery-status");
	assert_string_equal(ds_field(&m.parts[1], 1, "Final-Recipient"),
	    "utf-8; j\xc3\xb6rg@example.test");
	assert_string_equal(field(m.parts[2].hdr, "Content-Type"),
	    "message/global-headers");
	free_msg(&m);
	buf_free(&b);

	/* without SMTPUTF8 our own fields stay ASCII */
	r.smtputf8 = 0;
	build(&r, NULL, &b, &m, &eight);
	assert_false(eight);
	assert_string_equal(ds_field(&m.parts[1], 1, "Final-Recipient"),
	    "rfc822; j??rg@example.test");
	free_msg(&m);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xtext),
		cmocka_unit_test(test_notify),
		cmocka_unit_test(test_orcpt),
		cmocka_unit_test(test_mail_rcpt_params),
		cmocka_unit_test(test_envelope_records),
		cmocka_unit_test(test_envelope_bad_records),
		cmocka_unit_test(test_failure_report),
		cmocka_unit_test(test_ret_full_and_limits),
		cmocka_unit_test(test_huge_headers_cut_at_line_end),
		cmocka_unit_test(test_status_rules),
		cmocka_unit_test(test_delay_and_success_reports),
		cmocka_unit_test(test_injection),
		cmocka_unit_test(test_boundary_avoids_content),
		cmocka_unit_test(test_long_values_folded),
		cmocka_unit_test(test_smtputf8),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
