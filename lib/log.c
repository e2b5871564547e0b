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
static enum log_level log_min = LOGL_INFO;

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
	char line[4096];
	struct timeval tv;
	struct tm tm;

	if (level < log_min)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
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

		if (c == '"' || c == '\\') {
			*o++ = '\\';
			*o++ = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
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
