/*
 * id: queue ids. 16 characters of [0-9A-F]: 9 hex digits of seconds since
 * the epoch (sorts by arrival) then 7 of randomness/sequence. Unique
 * within a spool in practice; the spool still creates files with O_EXCL.
 */
#ifndef LIB_ID_H
#define LIB_ID_H

#define ID_LEN 16

void id_new(char out[ID_LEN + 1]);
/* 1 if s has the shape of a queue id (safe to use in a file name). */
int id_valid(const char *s);

#endif
