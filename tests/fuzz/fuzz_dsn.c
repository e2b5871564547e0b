/*
 * libFuzzer target for the RFC 3461 parameters (smtp/path.c: xtext,
 * NOTIFY, ORCPT) and the RFC 3464 reports built from them (queue/dsn.c).
 * The input is split at NUL octets into: sender, recipient, last result,
 * ORCPT, ENVID, NOTIFY, the original content (the rest, NULs included).
 * Checks: the parsers agree with themselves; outside the returned message
 * a report never holds a bare CR or LF, a NUL, a line over 998 octets, or
 * a line that a value could have started (a header field we do not write,
 * a boundary); without SMTPUTF8 it is ASCII there.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/buf.h"
#include "queue/dsn.h"
#include "smtp/path.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_params(const char *s)
{
	char *out = malloc(strlen(s) + 1), canon[32];
	int n, mask, mask2;

	if (out == NULL)
		return;
	n = smtp_xtext_decode(s, out, strlen(s) + 1);
	CHECK((n >= 0) == (smtp_xtext_check(s) == 0));
	if (n >= 0)
		CHECK((size_t)n == strlen(out) && (size_t)n <= strlen(s));
	free(out);
	if (smtp_dsn_notify_parse(s, &mask) == 0) {
		CHECK(mask != 0 && (mask & ~15) == 0);
		CHECK(!(mask & SMTP_NOTIFY_NEVER) || mask == SMTP_NOTIFY_NEVER);
		smtp_dsn_notify_str(mask, canon, sizeof(canon));
		CHECK(smtp_dsn_notify_parse(canon, &mask2) == 0 && mask2 == mask);
	}
	if (smtp_dsn_orcpt_check(s) == 0) {
		CHECK(strlen(s) <= SMTP_DSN_ORCPT_MAX && strchr(s, ';') != NULL);
		CHECK(strpbrk(s, " \r\n=") == NULL);
	}
}

static const char *fields[] = {
	"From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding",
	"Content-Description", "Reporting-MTA", "X-Mxgate-Queue-ID",
	"Original-Envelope-Id", "Arrival-Date", "Original-Recipient",
	"Final-Recipient", "Action", "Status", "Remote-MTA", "Diagnostic-Code",
	"Last-Attempt-Date", "Will-Retry-Until",
};

/* Lines of our own parts (up to own_end): CRLF only, at most 998 octets,
 * no NUL; a line that looks like a header field is one we write; a line
 * that starts with "--" is our boundary. Values can start neither. */
static void
check_report(const struct buf *b, const char *own_end)
{
	const char *p = b->data, *eol, *bnd;
	char delim[160];
	size_t i, dl, k;

	bnd = strstr(b->data, "\r\nContent-Type: multipart/report; "
	    "report-type=delivery-status;\r\n\tboundary=\"");
	CHECK(bnd != NULL);
	bnd = strchr(bnd, '"') + 1;
	dl = (size_t)snprintf(delim, sizeof(delim), "--%.*s",
	    (int)strcspn(bnd, "\""), bnd);
	CHECK(memchr(b->data, '\0', (size_t)(own_end - b->data)) == NULL);
	while (p < own_end) {
		eol = memchr(p, '\n', (size_t)(b->data + b->len - p));
		CHECK(eol != NULL && eol > p && eol[-1] == '\r');
		CHECK(memchr(p, '\r', (size_t)(eol - 1 - p)) == NULL);
		CHECK(eol + 1 - p <= 1000);
		if (p[0] == '-' && p[1] == '-') {
			CHECK((size_t)(eol - 1 - p) >= dl && memcmp(p, delim, dl) == 0);
			CHECK(eol - 1 - p == (ptrdiff_t)dl ||
			    (eol - 1 - p == (ptrdiff_t)dl + 2 && p[dl] == '-'));
		}
		for (k = 0; p + k < eol && p[k] > ' ' && p[k] < 0x7f &&
		    p[k] != ':'; k++)
			;
		/* "<addr>: reason" lines of the text part are ours too */
		if (k > 0 && p[k] == ':' && p[0] != '<') {
			for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
				if (strlen(fields[i]) == k &&
				    memcmp(fields[i], p, k) == 0)
					break;
			CHECK(i < sizeof(fields) / sizeof(fields[0]));
		}
		p = eol + 1;
	}
}

static char *
next_field(const uint8_t **d, size_t *n)
{
	const uint8_t *z = memchr(*d, '\0', *n);
	size_t len = z ? (size_t)(z - *d) : *n;
	char *s = strndup((const char *)*d, len);

	*d += z ? len + 1 : len;
	*n -= z ? len + 1 : len;
	return s;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *f[6] = { NULL };
	struct dsn_rcpt rc;
	struct dsn_report r;
	struct buf b = { 0 };
	char path[] = "/tmp/fuzz_dsn.XXXXXX", st[16];
	int fd, eight, i;
	const char *mark, *mark2;

	if (size > 8192)
		return 0;
	for (i = 0; i < 6; i++)
		if ((f[i] = next_field(&data, &size)) == NULL)
			goto out;
	for (i = 0; i < 6; i++)
		check_params(f[i]);

	memset(&rc, 0, sizeof(rc));
	rc.addr = f[1];
	rc.last = f[2];
	rc.orcpt = smtp_dsn_orcpt_check(f[3]) == 0 ? f[3] : NULL;
	rc.action = (enum dsn_action)(f[5][0] & 3);
	rc.expired = f[5][0] & 4;
	dsn_status(&rc, st, sizeof(st));
	CHECK(st[0] == (rc.action == DSN_FAILED ? '5' : rc.action == DSN_DELAYED ?
	    '4' : '2') && st[1] == '.');

	memset(&r, 0, sizeof(r));
	r.hostname = "mx.example.test";
	r.queue_id = "0000000010000ABC";
	r.dsn_id = "0000000020000DEF";
	r.sender = f[0];
	r.envid = smtp_xtext_check(f[4]) == 0 ? f[4] : NULL;
	r.ret_full = f[5][0] & 8;
	r.smtputf8 = f[5][0] & 16;
	r.full_max = 1024;
	r.rcpts = &rc;
	r.nrcpt = 1;
	r.arrival = 1700000000;
	r.now = r.attempt = 1700000100;
	r.retry_until = 1700400000;
	if ((fd = mkstemp(path)) == -1)
		goto out;
	unlink(path);
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		goto out;
	}
	CHECK(dsn_build(&r, fd, (off_t)size, &b, &eight) == 0);
	close(fd);
	/* our parts end where the third part's body starts */
	mark = strstr(b.data, "\r\nContent-Description: Headers of the message\r\n");
	mark2 = strstr(b.data, "\r\nContent-Description: The message\r\n");
	if (mark == NULL || (mark2 != NULL && mark2 < mark))
		mark = mark2;	/* the first: the content may hold either */
	if (mark)
		mark = strstr(mark, "\r\n\r\n");
	check_report(&b, mark ? mark + 4 : b.data + b.len);
	if (!r.smtputf8 && mark) {
		const char *p;

		for (p = b.data; p < mark; p++)
			CHECK((unsigned char)*p < 0x80);
	}
	buf_free(&b);
out:
	for (i = 0; i < 6; i++)
		free(f[i]);
	return 0;
}
