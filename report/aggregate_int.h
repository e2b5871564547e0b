/*
 * report/aggregate_int: what aggregate.c (the XML) and aggregate_mail.c
 * (gzip, file name, mail) share. Only report/aggregate*.c include it.
 */
#ifndef REPORT_AGGREGATE_INT_H
#define REPORT_AGGREGATE_INT_H

#include <stddef.h>

/* err[errlen] = the formatted message (never longer). */
void aggregate_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* 1 if s is an RFC 9990 ridfmt (dot-atom-text ["@" dot-atom-text]). */
int aggregate_ridfmt(const char *s);

#endif
