/*
 * gateway/authdb: the submission users file and password checks.
 *
 * File format, one user per line ("#" starts a comment line, blank lines
 * are ignored):
 *     name:hash:domain,domain
 * name is [A-Za-z0-9._@+-]{1,64}; hash a crypt(3) string ("$y$..."
 * yescrypt, "$6$..." SHA-512 ...); the domains are the From domains the
 * user may send as (at least one). A malformed line is an error naming
 * file:line; the whole file is refused then.
 *
 * Checking a password costs tens of milliseconds of CPU (that is the
 * point of the hash), so it never runs on the event loop: an
 * authdb_checker owns worker threads that hash, and delivers each result
 * back on the loop. A name that is not in the file costs the same time
 * as one that is (hashed against another user's setting), and the final
 * comparison is constant-time.
 */
#ifndef GATEWAY_AUTHDB_H
#define GATEWAY_AUTHDB_H

#include <stddef.h>

struct authdb;
struct authdb_checker;
struct authdb_check;
struct event_base;

#define AUTHDB_NAME_MAX 64

/* NULL on error: err says "file:line: why" (or why the file is unreadable). */
struct authdb *authdb_load(const char *path, char *err, size_t errlen);
void authdb_free(struct authdb *db);
size_t authdb_count(const struct authdb *db);
/* The i-th user name (sorted, case-insensitively), i < authdb_count. */
const char *authdb_name(const struct authdb *db, size_t i);

/* The user's From domains as written ("a.test,b.test"), or NULL when the
 * user is not in the file. Valid as long as db. */
const char *authdb_domains(const struct authdb *db, const char *user);
/* 1 when domain is one of the user's (case-insensitive, exact), else 0. */
int authdb_may_send(const struct authdb *db, const char *user,
    const char *domain);

/* Syntax checks shared with `mxgate user`: 0 ok, -1 bad. */
int authdb_valid_name(const char *name);
int authdb_valid_domains(const char *list, char *err, size_t errlen);

/* A new salted hash of password: yescrypt ("$y$"), or SHA-512 ("$6$")
 * where libcrypt lacks it. Blocks for the hash time: not on the loop.
 * 0 or -1. */
int authdb_hash(const char *password, char *out, size_t outlen);

/* Synchronous check (tools, tests): 1 match, 0 no match or unknown user. */
int authdb_verify(const struct authdb *db, const char *user,
    const char *password);

/*
 * The asynchronous checker: nthreads workers (1..4), at most max_queue
 * checks waiting. Results arrive on base's loop through a pipe the loop
 * watches, so the loop needs no thread support of its own.
 */
struct authdb_checker *authdb_checker_new(struct event_base *base,
    int nthreads, size_t max_queue);
/* Stops the workers (waits for the hash in progress); callbacks of
 * unfinished checks are not called. */
void authdb_checker_free(struct authdb_checker *ck);

/* result: 1 match, 0 wrong password or unknown user, -1 internal error. */
typedef void (*authdb_check_cb)(int result, void *arg);

/*
 * Start checking user/password against db. db is read during this call
 * only (the hash is copied), password is copied and wiped after hashing.
 * Returns a handle, or NULL when the queue is full or memory is short (the
 * callback is then never called). The callback runs from the loop, once.
 */
struct authdb_check *authdb_check_start(struct authdb_checker *ck,
    const struct authdb *db, const char *user, const char *password,
    authdb_check_cb cb, void *arg);
/* The callback will not be called; the check's memory goes when the
 * worker is done with it. Only before the callback ran. */
void authdb_check_cancel(struct authdb_check *c);

#endif
