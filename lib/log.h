/*
 * log: one line per event, to stderr or syslog, in key=value form.
 *
 * Levels mean: debug (tracing), info (normal events: one line per message
 * and per delivery attempt), warning (something unusual we recovered from),
 * error (an operation failed), fatal (the environment is unusable: logs and
 * exits 1). log_assert is for our own bugs.
 *
 * Untrusted text (HELO names, addresses, peer replies) must pass through
 * log_safe() before it reaches a format string argument: it escapes control
 * bytes, quotes, backslashes and spaces so a line stays one parseable line.
 */
#ifndef LIB_LOG_H
#define LIB_LOG_H

#include <stddef.h>

enum log_level { LOGL_DEBUG, LOGL_INFO, LOGL_WARNING, LOGL_ERROR, LOGL_FATAL };

/* ident is kept by pointer. use_syslog selects syslog(3) (facility mail). */
void log_init(const char *ident, int use_syslog, enum log_level min);
void log_set_level(enum log_level min);
/*
 * json = 1: each line becomes one JSON object (RFC 8259) instead of text:
 * {"time":"2026-11-29T12:00:00.123Z","level":"info","ident":"mxgate",
 * "pid":42,"msg":"words that are not key=value", "KEY":"VALUE", ...}:
 * every key=value field of the line becomes a member (values as strings,
 * log_safe's quoting and \xNN escapes undone, then JSON-escaped; a key
 * seen twice keeps its first value; invalid UTF-8 becomes U+FFFD). To
 * syslog the object is the message. 0: the text form (the default).
 */
void log_set_json(int json);
/* The JSON object for one text line (without time, level, ident, pid:
 * those are added by the caller) into out[n], always NUL-terminated, cut
 * short but still valid JSON when out is too small (n >= 64). Exposed for
 * tests. */
void log_json_fields(const char *line, char *out, size_t n);
int log_level_parse(const char *s, enum log_level *level_r);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

#define log_debug(...) log_msg(LOGL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOGL_INFO, __VA_ARGS__)
#define log_warning(...) log_msg(LOGL_WARNING, __VA_ARGS__)
#define log_error(...) log_msg(LOGL_ERROR, __VA_ARGS__)
#define log_assert(x) do { if (!(x)) log_fatal("assertion failed: %s at %s:%d", \
	#x, __FILE__, __LINE__); } while (0)

/*
 * Escape s for a key=value log field: the result is quoted when it holds a
 * space or is empty, with \" \\ and \xNN escapes (control characters, C1
 * controls and octets that are not valid UTF-8), and cut at 256 bytes (an
 * ellipsis marks the cut). The returned pointer is valid until the 8th
 * further call in the same thread.
 */
const char *log_safe(const char *s);
const char *log_safen(const char *s, size_t n);

/* Octets of the printable UTF-8 character at s[0..n) (2 to 4: well
 * formed, not overlong, no surrogate, not a C1 control U+0080..U+009F),
 * or 0 when s[0] does not start one. For s[0] >= 0x80. */
size_t log_utf8_len(const unsigned char *s, size_t n);

#endif
