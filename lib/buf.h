/*
 * buf: the one growable byte buffer.
 *
 * A zeroed struct buf is an empty buffer. data is always NUL-terminated
 * once anything was appended, so text can be read as a C string; binary
 * content may contain NULs (len is authoritative). Growth is checked for
 * overflow. buf_free() releases the memory and leaves an empty buffer.
 * Functions returning int give 0 on success, -1 on allocation failure
 * (the buffer is then unchanged).
 */
#ifndef LIB_BUF_H
#define LIB_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
};

int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_appends(struct buf *b, const char *s);
int buf_appendc(struct buf *b, char c);
int buf_appendf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int buf_vappendf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Remove the first n bytes. */
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);
void buf_free(struct buf *b);
/* Hand the data to the caller (who frees it); b becomes empty. */
char *buf_steal(struct buf *b);

#endif
