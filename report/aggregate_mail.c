/*
 * report/aggregate_mail.c: a DMARC aggregate report (RFC 9990) made into
 * a gzip file, its file name, and the mail that carries it (RFC 5322,
 * MIME). The XML is written by aggregate.c.
 */
#include "report/aggregate.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <zlib.h>

#include "lib/log.h"
#include "report/aggregate_int.h"

#define AGG_FOLD	78	/* RFC 5322 2.1.1: SHOULD NOT exceed 78 */
#define AGG_ADDR_MAX	254	/* one address in To: */
#define AGG_FIELD_MAX	900	/* a value, so a line stays under 998 */
#define AGG_B64_IN	57	/* 57 octets make a 76-column line */


static const char *
nz(const char *s)
{
	return s != NULL ? s : "";
}

/* A DNS name of LDH labels (and '_'), 1..63 octets each, at most 253:
 * what Subject's domain-name and the file name's domain take here. */
static int
agg_domain(const char *s)
{
	size_t i, label = 0;

	if (s == NULL || *s == '\0' || strlen(s) > 253)
		return 0;
	for (i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_') {
			if (++label > 63)
				return 0;
		} else
			return 0;
	}
	return label > 0;
}

/* Printable ASCII (space too when spaces), nothing from reject. */
static int
agg_header_text(const char *s, int spaces, const char *reject, size_t max)
{
	size_t n = 0;

	if (s == NULL || *s == '\0')
		return 0;
	for (; *s != '\0'; s++, n++)
		if (!((*s > ' ' && *s < 0x7f) || (spaces && *s == ' ')) ||
		    strchr(reject, *s) != NULL)
			return 0;
	return n <= max;
}

/* ------------------------------------------------------------------- gzip */

int
report_gzip(const void *data, size_t len, const char *name,
    long long mtime, struct buf *out, char *err, size_t errlen)
{
	unsigned char chunk[16384];
	const unsigned char *in = data;
	size_t start = out->len, left = len;
	z_stream z;
	gz_header h;
	int zr;

	if (data == NULL && len > 0) {
		aggregate_err(err, errlen, "gzip: no data");
		return -1;
	}
	memset(&z, 0, sizeof(z));
	memset(&h, 0, sizeof(h));
	/* RFC 1952 2.3.1: FNAME is zero-terminated; MTIME 0 is "none" */
	h.name = (Bytef *)(*nz(name) != '\0' ? name : NULL);
	h.time = mtime > 0 && mtime <= 0xffffffffLL ? (uLong)mtime : 0;
	h.os = 3;	/* Unix */
	if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8,
	    Z_DEFAULT_STRATEGY) != Z_OK) {
		aggregate_err(err, errlen, "gzip: deflateInit2 failed");
		return -1;
	}
	if (deflateSetHeader(&z, &h) != Z_OK)
		goto fail;
	do {
		if (z.avail_in == 0 && left > 0) {
			z.next_in = (Bytef *)in;
			z.avail_in = left > UINT_MAX ? UINT_MAX : (uInt)left;
			in += z.avail_in;
			left -= z.avail_in;
		}
		z.next_out = chunk;
		z.avail_out = sizeof(chunk);
		zr = deflate(&z, left == 0 ? Z_FINISH : Z_NO_FLUSH);
		if (zr == Z_STREAM_ERROR ||
		    buf_append(out, chunk, sizeof(chunk) - z.avail_out) == -1)
			goto fail;
	} while (zr != Z_STREAM_END);
	deflateEnd(&z);
	return 0;
fail:
	deflateEnd(&z);
	out->len = start;
	if (out->data != NULL)
		out->data[start] = '\0';
	aggregate_err(err, errlen, "gzip: deflate failed or out of memory");
	return -1;
}

/* --------------------------------------------------------------- filename */

int
report_filename(const char *receiver, const char *policy_domain,
    long long begin, long long end, const char *unique_id, struct buf *out)
{
	const char *u;

	/* RFC 9990 3.1.1: receiver and policy-domain are domains; refuse
	 * anything that could split the name ('!') or make it a path */
	if (!agg_domain(receiver) || !agg_domain(policy_domain) ||
	    begin < 0 || end < begin)
		return -1;
	/* unique-id = 1*(ALPHA / DIGIT) */
	for (u = nz(unique_id); *u != '\0'; u++)
		if (!((*u >= 'a' && *u <= 'z') || (*u >= 'A' && *u <= 'Z') ||
		    (*u >= '0' && *u <= '9')))
			return -1;
	return buf_appendf(out, "%s!%s!%lld!%lld%s%s.xml.gz", receiver,
	    policy_domain, begin, end, *nz(unique_id) ? "!" : "",
	    nz(unique_id));
}

/* ---------------------------------------------------------------- message */

/*
 * Text split at its spaces into lines of at most AGG_FOLD octets where
 * the words allow, each further line starting with cont (" ": RFC 5322
 * 2.2.3 folding at FWS; "": a body paragraph).
 */
struct agg_fold {
	struct buf *b;
	size_t col;		/* where the next octet goes */
	int first;		/* nothing on the line yet */
	const char *cont;
};

static int
fold_words(struct agg_fold *f, const char *text, size_t n)
{
	size_t i = 0, j;

	for (;;) {
		while (i < n && text[i] == ' ')
			i++;
		for (j = i; j < n && text[j] != ' '; j++)
			;
		if (j == i)
			return 0;
		if (!f->first && f->col + 1 + (j - i) > AGG_FOLD) {
			if (buf_appends(f->b, "\r\n") == -1 ||
			    buf_appends(f->b, f->cont) == -1)
				return -1;
			f->col = strlen(f->cont);
		} else if (!f->first) {
			if (buf_appendc(f->b, ' ') == -1)
				return -1;
			f->col++;
		}
		if (buf_append(f->b, text + i, j - i) == -1)
			return -1;
		f->col += j - i;
		f->first = 0;
		i = j;
	}
}

/* Folds between the groups first: a group that fits on a line of its
 * own is not broken. Ends with CRLF. */
static int
agg_fold_groups(struct buf *b, const char *const *groups, size_t n,
    size_t col, const char *cont)
{
	struct agg_fold f = { b, col, 1, cont };
	size_t i, len;

	for (i = 0; i < n; i++) {
		len = strlen(groups[i]);
		if (!f.first && f.col + 1 + len > AGG_FOLD &&
		    strlen(cont) + len <= AGG_FOLD) {
			if (buf_appends(b, "\r\n") == -1 ||
			    buf_appends(b, cont) == -1)
				return -1;
			f.col = strlen(cont);
			f.first = 1;	/* the fold's WSP is the FWS */
		}
		if (fold_words(&f, groups[i], len) == -1)
			return -1;
	}
	return buf_appends(b, "\r\n");
}

static int
agg_fold(struct buf *b, const char *text, size_t col, const char *cont)
{
	return agg_fold_groups(b, &text, 1, col, cont);
}

static int
agg_field(struct buf *b, const char *name, const char *value)
{
	if (buf_appendf(b, "%s: ", name) == -1)
		return -1;
	return agg_fold(b, value, strlen(name) + 2, " ");
}

/* RFC 5322 3.3 date-time in UTC, without the locale. */
static int
agg_date(long long t, char *out, size_t n)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu",
		"Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May",
		"Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;

	if ((long long)tt != t || gmtime_r(&tt, &tm) == NULL ||
	    tm.tm_year < 0 || tm.tm_year > 9999 - 1900)
		return -1;
	snprintf(out, n, "%s, %02d %s %04d %02d:%02d:%02d +0000",
	    days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return 0;
}

/* "YYYY-MM-DD HH:MM:SS" in UTC. */
static int
agg_stamp(long long t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if ((long long)tt != t || gmtime_r(&tt, &tm) == NULL ||
	    tm.tm_year < 0 || tm.tm_year > 9999 - 1900)
		return -1;
	snprintf(out, n, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return 0;
}

/* base64 (RFC 2045 6.8) in lines of 76. */
static int
agg_base64(struct buf *b, const unsigned char *p, size_t n)
{
	unsigned char line[(AGG_B64_IN / 3) * 4 + 1];
	size_t k;
	int len;

	while (n > 0) {
		k = n < AGG_B64_IN ? n : AGG_B64_IN;
		len = EVP_EncodeBlock(line, p, (int)k);
		if (len < 0 || buf_append(b, line, (size_t)len) == -1 ||
		    buf_appends(b, "\r\n") == -1)
			return -1;
		p += k;
		n -= k;
	}
	return 0;
}

/* RFC 2046 5.1.1: a boundary that occurs in none of the parts. "=_"
 * cannot occur in base64, and the rest is random. */
static int
agg_boundary(char *bnd, size_t n, const struct buf *parts, size_t nparts)
{
	unsigned char rnd[16];
	size_t i, tries;
	int clash;

	for (tries = 0; tries < 8; tries++) {
		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			return -1;
		snprintf(bnd, n, "=_");
		for (i = 0; i < sizeof(rnd); i++)
			snprintf(bnd + 2 + 2 * i, n - 2 - 2 * i, "%02x", rnd[i]);
		clash = 0;
		for (i = 0; i < nparts; i++)
			if (parts[i].len > 0 &&
			    memmem(parts[i].data, parts[i].len, bnd,
			    strlen(bnd)) != NULL)
				clash = 1;
		if (!clash)
			return 0;
	}
	return -1;
}

static int
ck_mail(const struct report_mail *mail, const struct report_meta *m,
    const struct report_policy *p, const void *gz, size_t gzlen,
    char *err, size_t errlen)
{
	size_t i;

	if (mail == NULL || m == NULL || p == NULL || gz == NULL ||
	    gzlen == 0) {
		aggregate_err(err, errlen, "report mail: nothing to send");
		return -1;
	}
	if (!agg_header_text(mail->from, 1, "", AGG_FIELD_MAX)) {
		aggregate_err(err, errlen, "report mail: From %s is not "
		    "printable ASCII", log_safe(nz(mail->from)));
		return -1;
	}
	if (mail->nto == 0 || mail->to == NULL) {
		aggregate_err(err, errlen, "report mail: no recipient");
		return -1;
	}
	for (i = 0; i < mail->nto; i++)
		if (!agg_header_text(mail->to[i], 0, ",;<>()\"",
		    AGG_ADDR_MAX)) {
			aggregate_err(err, errlen, "report mail: To %s is not "
			    "an address", log_safe(nz(mail->to[i])));
			return -1;
		}
	if (!agg_domain(mail->submitter) || !agg_domain(p->domain)) {
		aggregate_err(err, errlen, "report mail: Subject domains %s %s "
		    "are not domain names", log_safe(nz(p->domain)),
		    log_safe(nz(mail->submitter)));
		return -1;
	}
	if (!aggregate_ridfmt(nz(m->report_id))) {
		aggregate_err(err, errlen, "report mail: Report-ID %s is not "
		    "RFC 9990 ridfmt", log_safe(nz(m->report_id)));
		return -1;
	}
	/* a quoted-string parameter value: no quote, backslash or path */
	if (!agg_header_text(mail->filename, 0, "\"\\/", AGG_FIELD_MAX)) {
		aggregate_err(err, errlen, "report mail: file name %s refused",
		    log_safe(nz(mail->filename)));
		return -1;
	}
	return 0;
}

/* The header of the mail, without Content-Type. */
static int
agg_mail_header(struct buf *b, const struct report_mail *mail,
    const struct report_meta *m, const struct report_policy *p,
    const char *date)
{
	struct buf v = { 0 };
	size_t i;
	int r;

	r = agg_field(b, "From", mail->from);
	for (i = 0; r == 0 && i < mail->nto; i++)
		r = buf_appendf(&v, "%s%s", i ? ", " : "", mail->to[i]);
	if (r == 0)
		r = agg_field(b, "To", v.data);
	if (r == 0)
		r = agg_field(b, "Date", date);
	/* RFC 9990: the Report-ID may be part or whole of the Message-ID;
	 * a msg-id needs an "@" (RFC 5322 3.6.4) */
	buf_reset(&v);
	if (r == 0)
		r = buf_appendf(&v, "<%s%s%s>", m->report_id,
		    strchr(m->report_id, '@') ? "" : "@",
		    strchr(m->report_id, '@') ? "" : mail->submitter);
	if (r == 0)
		r = agg_field(b, "Message-ID", v.data);
	/* RFC 9990 3.1.1 dmarc-subject, folded between its three parts
	 * as its example is (the parts NUL-separated in v) */
	buf_reset(&v);
	if (r == 0)
		r = buf_appendf(&v, "Report Domain: %s%cSubmitter: %s%c"
		    "Report-ID: <%s>", p->domain, 0, mail->submitter, 0,
		    m->report_id);
	if (r == 0) {
		const char *g[3];

		g[0] = v.data;
		g[1] = g[0] + strlen(g[0]) + 1;
		g[2] = g[1] + strlen(g[1]) + 1;
		r = buf_appends(b, "Subject: ") == -1 ||
		    agg_fold_groups(b, g, 3, 9, " ") == -1 ? -1 : 0;
	}
	buf_free(&v);
	if (r == 0)
		/* RFC 3834 5: not to be answered automatically */
		r = agg_field(b, "Auto-Submitted", "auto-generated");
	if (r == 0)
		r = agg_field(b, "MIME-Version", "1.0");
	return r;
}

int
report_message(const struct report_mail *mail, const struct report_meta *m,
    const struct report_policy *p, const void *gz, size_t gzlen,
    struct buf *out, char *err, size_t errlen)
{
	struct buf msg = { 0 }, parts[2] = { { 0 }, { 0 } }, v = { 0 };
	char date[64], from[32], to[32], bnd[40];
	int r = -1;

	if (ck_mail(mail, m, p, gz, gzlen, err, errlen) == -1)
		return -1;
	if (agg_date(mail->date, date, sizeof(date)) == -1 ||
	    agg_stamp(m->begin, from, sizeof(from)) == -1 ||
	    agg_stamp(m->end, to, sizeof(to)) == -1) {
		aggregate_err(err, errlen, "report mail: date out of range");
		return -1;
	}
	/* the human-readable annotation (RFC 9990 3.1.1 "MAY") */
	if (buf_appends(&parts[0], "Content-Type: text/plain; "
	    "charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n") ==
	    -1 ||
	    buf_appendf(&v, "This is a DMARC aggregate report for %s from %s "
	    "covering %s to %s (UTC).", p->domain, mail->submitter, from,
	    to) == -1 ||
	    agg_fold(&parts[0], v.data, 0, "") == -1)
		goto nomem;
	buf_reset(&v);
	/* the report: application/gzip (RFC 6713), named as RFC 9990 says */
	if (buf_appendf(&v, "application/gzip; name=\"%s\"",
	    mail->filename) == -1 ||
	    agg_field(&parts[1], "Content-Type", v.data) == -1 ||
	    agg_field(&parts[1], "Content-Transfer-Encoding", "base64") == -1)
		goto nomem;
	buf_reset(&v);
	if (buf_appendf(&v, "attachment; filename=\"%s\"",
	    mail->filename) == -1 ||
	    agg_field(&parts[1], "Content-Disposition", v.data) == -1 ||
	    buf_appends(&parts[1], "\r\n") == -1 ||
	    agg_base64(&parts[1], gz, gzlen) == -1)
		goto nomem;
	if (agg_boundary(bnd, sizeof(bnd), parts, 2) == -1) {
		aggregate_err(err, errlen, "report mail: no boundary "
		    "(RAND_bytes)");
		goto out;
	}
	buf_reset(&v);
	if (agg_mail_header(&msg, mail, m, p, date) == -1 ||
	    buf_appendf(&v, "multipart/mixed; boundary=\"%s\"", bnd) == -1 ||
	    agg_field(&msg, "Content-Type", v.data) == -1 ||
	    buf_appendf(&msg, "\r\n--%s\r\n", bnd) == -1 ||
	    buf_append(&msg, parts[0].data, parts[0].len) == -1 ||
	    buf_appendf(&msg, "\r\n--%s\r\n", bnd) == -1 ||
	    buf_append(&msg, parts[1].data, parts[1].len) == -1 ||
	    buf_appendf(&msg, "\r\n--%s--\r\n", bnd) == -1 ||
	    buf_append(out, msg.data, msg.len) == -1)
		goto nomem;
	r = 0;
	goto out;
nomem:
	aggregate_err(err, errlen, "report mail: out of memory");
out:
	buf_free(&msg);
	buf_free(&parts[0]);
	buf_free(&parts[1]);
	buf_free(&v);
	return r;
}
