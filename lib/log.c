#include "lib/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <sys/time.h>
#include <unistd.h>

static const char *log_ident = "mxgate";
static int log_syslog;
static int log_json;
static enum log_level log_min = LOGL_INFO;

#define LOG_JSON_MAX	4096

static const char *const log_names[] = {
	"debug", "info", "warning", "error", "fatal",
};

void
log_init(const char *ident, int use_syslog, enum log_level min)
{
	log_ident = ident;
	log_syslog = use_syslog;
	log_min = min;
	if (use_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_level(enum log_level min)
{
	log_min = min;
}

void
log_set_json(int json)
{
	log_json = json;
}

/* ---- JSON lines ---- */

struct jout {
	char *p;
	size_t n, len;
	int full;
};

static void
jput(struct jout *o, const char *s, size_t len)
{
	/* keep room for the closing "}" and a NUL */
	if (o->full || o->len + len + 2 > o->n) {
		o->full = 1;
		return;
	}
	memcpy(o->p + o->len, s, len);
	o->len += len;
}

/* Length of the valid UTF-8 sequence at s[0..n) (1-4), 0 if invalid. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	size_t k, i;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		k = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		k = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		k = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (k > n)
		return 0;
	for (i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((k == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (k == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return k;
}

/* A JSON string of s[0..n) (RFC 8259 7), all or nothing. */
static void
jstr(struct jout *o, const char *s, size_t n)
{
	char tmp[LOG_JSON_MAX];
	size_t i, t = 0, k;

	tmp[t++] = '"';
	for (i = 0; i < n && t + 8 < sizeof(tmp); ) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			tmp[t++] = '\\';
			tmp[t++] = (char)c;
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			t += (size_t)snprintf(tmp + t, 7, "\\u%04x", c);
			i++;
		} else if ((k = utf8_len((const unsigned char *)s + i, n - i)) == 0) {
			memcpy(tmp + t, "\\ufffd", 6);
			t += 6;
			i++;
		} else {
			memcpy(tmp + t, s + i, k);
			t += k;
			i += k;
		}
	}
	tmp[t++] = '"';
	jput(o, tmp, t);
}

static int
hexv(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A value at s, as log_safe and the format strings around it write one:
 * bare up to a space, where a "..." section (log_safe's quoting, maybe
 * inside other text as in from=<"a b"@c>) runs to its closing quote with
 * \" \\ \xNN escapes; \xNN is undone outside quotes too. Decoded into
 * val[*vlen]; returns the octets read. */
static size_t
jvalue(const char *s, char *val, size_t vmax, size_t *vlen)
{
	size_t i = 0, o = 0;
	int q = 0;

	while (s[i] && (q || s[i] != ' ')) {
		char c = s[i];

		if (c == '\\' && s[i + 1] == 'x' && hexv(s[i + 2]) >= 0 &&
		    hexv(s[i + 3]) >= 0) {
			c = (char)(hexv(s[i + 2]) * 16 + hexv(s[i + 3]));
			i += 4;
		} else if (c == '\\' && (s[i + 1] == '"' || s[i + 1] == '\\')) {
			c = s[i + 1];
			i += 2;
		} else if (c == '"') {
			q = !q;		/* a quoted section opens or closes */
			i++;
			continue;
		} else
			i++;
		if (o < vmax)
			val[o++] = c;
	}
	*vlen = o;
	return i;
}

/* ",key":value (or without the comma first) into o, all or nothing. */
static void
jmember(struct jout *o, const char *k, size_t kl, const char *v, size_t vl)
{
	char mb[LOG_JSON_MAX * 2 + 16];
	struct jout m = { mb, sizeof(mb), 0, 0 };

	if (o->len > 1)
		jput(&m, ",", 1);
	jstr(&m, k, kl);
	jput(&m, ":", 1);
	jstr(&m, v, vl);
	if (!m.full)
		jput(o, mb, m.len);
}

void
log_json_fields(const char *line, char *out, size_t n)
{
	/* the caller's members, and "msg" (the words of the line) */
	static const char *const reserved[] = { "time", "level", "ident",
	    "pid", "msg" };
	struct jout o = { out, n, 0, 0 };
	char msg[LOG_JSON_MAX], val[LOG_JSON_MAX];
	const char *keys[64];
	size_t klen[64], nk = 0, ml = 0, i, vl, used;
	const char *p = line;

	for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
		keys[nk] = reserved[i];
		klen[nk++] = strlen(reserved[i]);
	}
	jput(&o, "{", 1);
	while (*p) {
		const char *w = p, *eq;
		size_t kl = 0;
		int dup = 0;

		while (*w == ' ')
			w++;
		if (*w == '\0')
			break;
		/* key=value: a key of letters, digits, "_", "-", "." */
		for (eq = w; (*eq >= 'a' && *eq <= 'z') || (*eq >= 'A' &&
		    *eq <= 'Z') || (*eq >= '0' && *eq <= '9') || *eq == '_' ||
		    *eq == '-' || *eq == '.'; eq++)
			kl++;
		if (kl > 0 && *eq == '=') {
			used = jvalue(eq + 1, val, sizeof(val), &vl);
			for (i = 0; i < nk; i++)
				if (klen[i] == kl && memcmp(keys[i], w, kl) == 0)
					dup = 1;
			/* a key seen before (or reserved) keeps its value */
			if (!dup && nk < 64) {
				keys[nk] = w;
				klen[nk++] = kl;
				jmember(&o, w, kl, val, vl);
			}
			p = eq + 1 + used;
			continue;
		}
		/* a word of the message */
		for (p = w; *p && *p != ' '; p++)
			;
		if (ml > 0 && ml < sizeof(msg))
			msg[ml++] = ' ';
		for (; w < p && ml < sizeof(msg); w++)
			msg[ml++] = *w;
	}
	if (ml > 0)
		jmember(&o, "msg", 3, msg, ml);
	out[o.len++] = '}';
	out[o.len] = '\0';
}

int
log_level_parse(const char *s, enum log_level *level_r)
{
	size_t i;

	for (i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (strcasecmp(s, log_names[i]) == 0) {
			*level_r = (enum log_level)i;
			return 0;
		}
	return -1;
}

static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR, LOG_CRIT };
	char line[4096], js[LOG_JSON_MAX * 2];
	struct timeval tv;
	struct tm tm;

	if (level < log_min)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	if (log_json) {
		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		log_json_fields(line, js, sizeof(js));
		/* js is "{...}": time, level, ident and pid go first */
		if (log_syslog) {
			/* syslog stamps the time itself */
			syslog(prio[level], "{\"level\":\"%s\",\"ident\":\"%s\","
			    "\"pid\":%ld%s%s", log_names[level], log_ident,
			    (long)getpid(), js[1] == '}' ? "" : ",", js + 1);
			return;
		}
		fprintf(stderr, "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\","
		    "\"level\":\"%s\",\"ident\":\"%s\",\"pid\":%ld%s%s\n",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, (long)tv.tv_usec / 1000, log_names[level],
		    log_ident, (long)getpid(), js[1] == '}' ? "" : ",", js + 1);
		return;
	}
	if (log_syslog) {
		syslog(prio[level], "%s: %s", log_names[level], line);
		return;
	}
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld] %s: %s\n",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, (long)tv.tv_usec / 1000, log_ident, (long)getpid(),
	    log_names[level], line);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void
log_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOGL_FATAL, fmt, ap);
	va_end(ap);
	exit(1);
}

#define LOG_SAFE_MAX 256

size_t
log_utf8_len(const unsigned char *s, size_t n)
{
	size_t len, i;
	unsigned cp;

	/* RFC 3629 4 */
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp < 0xa0)
		return 0;
	return len;
}

const char *
log_safen(const char *s, size_t n)
{
	static _Thread_local char ring[8][LOG_SAFE_MAX * 4 + 8];
	static _Thread_local unsigned slot;
	static const char hex[] = "0123456789abcdef";
	char *out = ring[slot++ % 8], *o = out;
	int quote = (n == 0);
	size_t i;

	for (i = 0; i < n && i < LOG_SAFE_MAX; i++)
		if (s[i] == ' ')
			quote = 1;
	if (quote)
		*o++ = '"';
	for (i = 0; i < n && i < LOG_SAFE_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		size_t u;

		if (c >= 0x80 && (u = log_utf8_len((const unsigned char *)s + i,
		    (n < LOG_SAFE_MAX ? n : LOG_SAFE_MAX) - i)) > 0) {
			memcpy(o, s + i, u);	/* printable UTF-8, whole */
			o += u;
			i += u - 1;
		} else if (c == '"' || c == '\\') {
			*o++ = '\\';
			*o++ = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			*o++ = '\\';
			*o++ = 'x';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		} else
			*o++ = (char)c;
	}
	if (n > LOG_SAFE_MAX) {
		memcpy(o, "...", 3);
		o += 3;
	}
	if (quote)
		*o++ = '"';
	*o = '\0';
	return out;
}

const char *
log_safe(const char *s)
{
	if (s == NULL)
		return "-";
	return log_safen(s, strlen(s));
}
