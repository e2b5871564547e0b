/*
 * report/import_int: what the files of the import share (import.c: the
 * entry point, sniffing, the container walk, gzip, zip; import_xml.c: one
 * XML document; import_mime.c: the MIME entities of a mail). Only
 * report/import*.c include this; everyone else uses report/import.h.
 */
#ifndef REPORT_IMPORT_INT_H
#define REPORT_IMPORT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "report/import.h"

/* Returns of the walk: 0 go on, -1 error (err set), IMP_STOP callback. */
#define IMP_STOP	1

/* What a container's content may be. */
#define IMP_MAIL	0x1	/* an RFC 5322 message (top level, message/rfc822) */
#define IMP_SKIP	0x2	/* unknown content is skipped, not an error */

struct imp {
	const char *name;
	int (*cb)(const struct report_parsed *, void *);
	void *arg;
	char *err;
	size_t errlen;
	int failed;
	int found;
	int cbrc;			/* the callback's non-zero return */
	uint64_t inflated;		/* decompressed so far, all levels */
	uint64_t budget;		/* at most, all levels */
	char where[256];		/* "part 2: zip member 1: " */
	char container[96];		/* "mail/zip" */
	const char *kind;		/* of the input: "mail", "zip" ... */
};

/* import.c */

/* The first error of the walk into imp->err ("name: where: what"); -1. */
int import_fail(struct imp *imp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Append to a path string (imp->where, imp->container); the old length,
 * for import_pop. */
size_t import_push(char *s, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void import_pop(char *s, size_t old);
/* The error of a container nested past REPORT_IMPORT_MAX_DEPTH; -1. */
int import_deep(struct imp *imp);
/*
 * Content at depth, sniffed: gzip, zip, XML, or with IMP_MAIL a mail;
 * with IMP_SKIP anything else is ignored. 0, -1 or IMP_STOP.
 */
int import_blob(struct imp *imp, const char *d, size_t len, int depth,
    int flags);

/* import_xml.c */

/* XML white space (and the trimming of values). */
int import_is_ws(int c);
/* One XML document: its report to the callback. 0, -1 or IMP_STOP. */
int import_xml(struct imp *imp, const char *data, size_t len);

/* import_mime.c */

/* One MIME entity (a message or a body part) at depth: 0, -1 or IMP_STOP. */
int import_mime_entity(struct imp *imp, const char *data, size_t len,
    int depth);

#endif
