/*
 * report/import: DMARC aggregate reports as receivers send them (RFC 9990;
 * RFC 7489 Appendix C), read from XML, gzip, zip or the report mail.
 *
 * The input is walked as a tree of containers (mail, MIME part, zip,
 * gzip), each sniffed from its content, down to XML documents. Every limit
 * of import.h is checked while the data is produced: decompression stops
 * at the cap, never trusting a declared size. The first error ends the
 * walk; reports already handed to the callback stay handed.
 *
 * This file: the entry point, the sniffing, the walk's errors and paths,
 * gzip and zip. import_xml.c reads one XML document, import_mime.c the
 * MIME entities of a mail; import_int.h is what the three share.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <zip.h>
#include <zlib.h>

#include "report/import_int.h"

/*
 * Work decompressed over the whole input, all levels together: nested
 * containers (a zip of zips) could otherwise multiply the per-document
 * caps into hours of inflating.
 */
#define IMP_MAX_TOTAL	((uint64_t)REPORT_IMPORT_MAX_MEMBERS * REPORT_IMPORT_MAX_XML)

/* ------------------------------------------------------------ errors */

int
import_fail(struct imp *imp, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (imp->failed)
		return -1;
	imp->failed = 1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (imp->err != NULL && imp->errlen > 0)
		snprintf(imp->err, imp->errlen, "%s: %s%s", imp->name,
		    imp->where, msg);
	return -1;
}

/* Append to a path string; the old length, for import_pop. */
size_t
import_push(char *s, size_t size, const char *fmt, ...)
{
	size_t old = strlen(s);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s + old, size - old, fmt, ap);
	va_end(ap);
	return old;
}

void
import_pop(char *s, size_t old)
{
	s[old] = '\0';
}

/* A container (mail, part, zip, gzip) in too many others; XML is a leaf. */
int
import_deep(struct imp *imp)
{
	return import_fail(imp, "nested deeper than %d levels",
	    REPORT_IMPORT_MAX_DEPTH);
}

/* --------------------------------------------------------------- gzip */

/*
 * At most how much the content of a container of len octets may grow to:
 * one document's cap, the ratio, and what remains of the total; *why_r
 * says which, for imp_over.
 */
enum cap { CAP_SIZE, CAP_RATIO, CAP_TOTAL };

static uint64_t
imp_cap(struct imp *imp, size_t len, enum cap *why_r)
{
	uint64_t cap = REPORT_IMPORT_MAX_XML;

	*why_r = CAP_SIZE;
	if ((uint64_t)len * REPORT_IMPORT_MAX_RATIO < cap) {
		cap = (uint64_t)len * REPORT_IMPORT_MAX_RATIO;
		*why_r = CAP_RATIO;
	}
	if (imp->budget - imp->inflated < cap) {
		cap = imp->budget - imp->inflated;
		*why_r = CAP_TOTAL;
	}
	return cap;
}

static int
imp_over(struct imp *imp, size_t len, enum cap why)
{
	if (why == CAP_TOTAL)
		return import_fail(imp, "more than %llu octets decompressed in "
		    "all", (unsigned long long)imp->budget);
	if (why == CAP_RATIO)
		return import_fail(imp, "decompressed size over %d times the "
		    "compressed size (%zu octets)", REPORT_IMPORT_MAX_RATIO, len);
	return import_fail(imp, "decompressed size over %u MB",
	    REPORT_IMPORT_MAX_XML >> 20);
}

/*
 * Grow *out, up to cap + 1 octets: one past the cap shows the cap was
 * passed (the callers check len > cap after each step, so a full buffer
 * here is always below cap + 1).
 */
static int
imp_grow(char **out, size_t *size, uint64_t cap)
{
	size_t n = *size < 65536 ? 65536 : *size * 2;
	char *p;

	if (n > cap + 1)
		n = (size_t)cap + 1;
	if ((p = realloc(*out, n)) == NULL)
		return -1;
	*out = p;
	*size = n;
	return 0;
}

/* RFC 1952, members one after the other (2.2); trailing garbage ignored. */
static int
imp_gzip(struct imp *imp, const char *data, size_t len, int depth)
{
	enum cap why;
	uint64_t cap = imp_cap(imp, len, &why);
	z_stream zs;
	char *out = NULL;
	size_t size = 0, olen = 0, wpos;
	int zrc, rc = -1;

	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, 15 + 32) != Z_OK)
		return import_fail(imp, "out of memory");
	zs.next_in = (Bytef *)(uintptr_t)data;
	zs.avail_in = (uInt)len;	/* len <= REPORT_IMPORT_MAX_XML */
	for (;;) {
		if (olen == size && imp_grow(&out, &size, cap) == -1) {
			import_fail(imp, "out of memory");
			goto out;
		}
		zs.next_out = (Bytef *)out + olen;
		zs.avail_out = (uInt)(size - olen);
		wpos = olen;
		zrc = inflate(&zs, Z_NO_FLUSH);
		olen = size - zs.avail_out;
		imp->inflated += olen - wpos;
		if (olen > cap) {
			imp_over(imp, len, why);
			goto out;
		}
		if (zrc == Z_STREAM_END) {
			/* another member follows, or the rest is ignored */
			if (zs.avail_in >= 2 && zs.next_in[0] == 0x1f &&
			    zs.next_in[1] == 0x8b) {
				if (inflateReset(&zs) != Z_OK) {
					import_fail(imp, "reset failed");
					goto out;
				}
				continue;
			}
			break;
		}
		/* room was left for output: no progress means no input */
		if ((zrc == Z_OK || zrc == Z_BUF_ERROR) && zs.avail_in == 0 &&
		    zs.avail_out > 0) {
			import_fail(imp, "truncated");
			goto out;
		}
		if (zrc != Z_OK) {
			import_fail(imp, "corrupt (%s)",
			    zs.msg != NULL ? zs.msg : "inflate failed");
			goto out;
		}
	}
	rc = import_blob(imp, out, olen, depth + 1, 0);
out:
	inflateEnd(&zs);
	free(out);
	return rc;
}

/* ---------------------------------------------------------------- zip */

static int
zip_member(struct imp *imp, zip_t *za, zip_uint64_t i, size_t zlen,
    int depth)
{
	enum cap why;
	uint64_t cap = imp_cap(imp, zlen, &why);
	zip_file_t *zf;
	char *out = NULL;
	size_t size = 0, olen = 0;
	zip_int64_t n;
	int rc = -1;

	if ((zf = zip_fopen_index(za, i, 0)) == NULL)
		return import_fail(imp, "cannot open: %s", zip_strerror(za));
	for (;;) {
		if (olen == size && imp_grow(&out, &size, cap) == -1) {
			import_fail(imp, "out of memory");
			goto out;
		}
		n = zip_fread(zf, out + olen, size - olen);
		if (n < 0) {
			import_fail(imp, "cannot read: %s",
			    zip_file_strerror(zf));
			goto out;
		}
		if (n == 0)
			break;
		olen += (size_t)n;
		imp->inflated += (uint64_t)n;
		if (olen > cap) {
			imp_over(imp, zlen, why);
			goto out;
		}
	}
	rc = import_blob(imp, out, olen, depth + 1, IMP_SKIP);
out:
	zip_fclose(zf);
	free(out);
	return rc;
}

static int
imp_zip(struct imp *imp, const char *data, size_t len, int depth)
{
	zip_error_t ze;
	zip_source_t *src;
	zip_t *za;
	zip_int64_t n, i;
	const char *mname;
	size_t old;
	int rc = 0;

	zip_error_init(&ze);
	if ((src = zip_source_buffer_create(data, len, 0, &ze)) == NULL) {
		rc = import_fail(imp, "zip: %s", zip_error_strerror(&ze));
		zip_error_fini(&ze);
		return rc;
	}
	if ((za = zip_open_from_source(src, ZIP_RDONLY, &ze)) == NULL) {
		rc = import_fail(imp, "not a valid zip: %s",
		    zip_error_strerror(&ze));
		zip_source_free(src);
		zip_error_fini(&ze);
		return rc;
	}
	zip_error_fini(&ze);
	n = zip_get_num_entries(za, 0);
	if (n > REPORT_IMPORT_MAX_MEMBERS) {
		rc = import_fail(imp, "zip with more than %d members",
		    REPORT_IMPORT_MAX_MEMBERS);
		goto out;
	}
	for (i = 0; i < n && rc == 0; i++) {
		/* a directory holds nothing; an empty name is a file */
		mname = zip_get_name(za, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
		if (mname != NULL && *mname != '\0' &&
		    mname[strlen(mname) - 1] == '/')
			continue;
		old = import_push(imp->where, sizeof(imp->where),
		    "zip member %lld: ", (long long)i + 1);
		rc = zip_member(imp, za, (zip_uint64_t)i, len, depth);
		if (rc != -1)
			import_pop(imp->where, old);
	}
out:
	zip_discard(za);	/* frees the source too */
	return rc;
}

/* ------------------------------------------------------------ sniffing */

/* RFC 5322 2.2: the first line is a header field ("Name:"). */
static int
looks_like_mail(const char *d, size_t len)
{
	size_t i;

	for (i = 0; i < len && i < 1000; i++) {
		unsigned char c = (unsigned char)d[i];

		if (c == ':')
			return i > 0;
		if (c < 33 || c > 126)
			break;
	}
	/* obs-optional: WSP before the colon (RFC 5322 4.5.8) */
	while (i > 0 && i < len && (d[i] == ' ' || d[i] == '\t'))
		i++;
	return i > 0 && i < len && d[i] == ':';
}

int
import_blob(struct imp *imp, const char *d, size_t len, int depth, int flags)
{
	size_t i = 0, old, wold;
	int rc;

	if (len == 0)
		return (flags & IMP_SKIP) ? 0 : import_fail(imp, "empty");
	if (len >= 2 && (unsigned char)d[0] == 0x1f &&
	    (unsigned char)d[1] == 0x8b) {
		if (depth > REPORT_IMPORT_MAX_DEPTH)
			return import_deep(imp);
		if (depth == 0)
			imp->kind = "gzip";
		old = import_push(imp->container, sizeof(imp->container),
		    "%s%s", imp->container[0] ? "/" : "", "gzip");
		wold = import_push(imp->where, sizeof(imp->where), "gzip: ");
		if ((rc = imp_gzip(imp, d, len, depth)) != -1)
			import_pop(imp->where, wold);
		import_pop(imp->container, old);
		return rc;
	}
	if (len >= 4 && d[0] == 'P' && d[1] == 'K' &&
	    ((d[2] == 3 && d[3] == 4) || (d[2] == 5 && d[3] == 6))) {
		if (depth > REPORT_IMPORT_MAX_DEPTH)
			return import_deep(imp);
		if (depth == 0)
			imp->kind = "zip";
		old = import_push(imp->container, sizeof(imp->container),
		    "%s%s", imp->container[0] ? "/" : "", "zip");
		rc = imp_zip(imp, d, len, depth);
		import_pop(imp->container, old);
		return rc;
	}
	/* XML: after a UTF-8 byte order mark and white space, a tag */
	if (len >= 3 && memcmp(d, "\xef\xbb\xbf", 3) == 0)
		i = 3;
	while (i < len && import_is_ws((unsigned char)d[i]))
		i++;
	if (i < len && d[i] == '<')
		return import_xml(imp, d, len);
	if (flags & IMP_MAIL) {
		/* an mbox "From " line first */
		if (len >= 5 && memcmp(d, "From ", 5) == 0) {
			const char *nl = memchr(d, '\n', len);

			i = nl != NULL ? (size_t)(nl - d) + 1 : len;
			d += i;
			len -= i;
		}
		if (looks_like_mail(d, len)) {
			if (depth == 0)
				imp->kind = "mail";
			old = import_push(imp->container,
			    sizeof(imp->container), "%s%s",
			    imp->container[0] ? "/" : "", "mail");
			rc = import_mime_entity(imp, d, len, depth);
			import_pop(imp->container, old);
			return rc;
		}
	}
	if (flags & IMP_SKIP)
		return 0;
	return import_fail(imp, "neither XML, gzip, zip%s",
	    (flags & IMP_MAIL) ? " nor a mail" : "");
}

int
report_import(const void *data, size_t len, const char *name,
    int (*cb)(const struct report_parsed *r, void *arg), void *arg,
    char *err, size_t errlen)
{
	struct imp imp;
	int rc;

	memset(&imp, 0, sizeof(imp));
	imp.name = name != NULL ? name : "input";
	imp.cb = cb;
	imp.arg = arg;
	imp.err = err;
	imp.errlen = errlen;
	imp.kind = "XML";
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (len > REPORT_IMPORT_MAX_INPUT)
		return import_fail(&imp, "input over %u MB",
		    REPORT_IMPORT_MAX_INPUT >> 20);
	if (len == 0 || data == NULL)
		return import_fail(&imp, "empty input");
	imp.budget = (uint64_t)len * REPORT_IMPORT_MAX_RATIO;
	if (imp.budget > IMP_MAX_TOTAL)
		imp.budget = IMP_MAX_TOTAL;
	xmlInitParser();
	rc = import_blob(&imp, data, len, 0, IMP_MAIL);
	if (rc == -1)
		return -1;
	if (rc == IMP_STOP) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s: stopped by the caller",
			    imp.name);
		return imp.cbrc;
	}
	if (imp.found == 0) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "%s: no DMARC report found in "
			    "the %s", imp.name, imp.kind);
		return 0;
	}
	return imp.found;
}
