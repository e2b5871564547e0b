/*
 * gateway/dnscmd_int.h: what the parts of `mxgate dns` share (private to
 * gateway/dnscmd.c and gateway/dnscmd_spf.c): the command's state, its
 * findings, and its DNS questions, asked one at a time on the command's
 * own event loop (each call waits for its answer).
 */
#ifndef GATEWAY_DNSCMD_INT_H
#define GATEWAY_DNSCMD_INT_H

#include <stddef.h>

#include "lib/dns.h"

struct config;
struct config_signer;
struct event_base;
struct orgdomain_psl;

/* published text in a finding: at most 300 octets, "..." when cut */
#define DNSCMD_CLIP(s)	(strlen(s) > 300 ? 300 : (int)strlen(s))
#define DNSCMD_MORE(s)	(strlen(s) > 300 ? "..." : "")

struct dnscmd {
	struct config *cfg;
	struct orgdomain_psl *psl;	/* NULL: org domains by equality */
	char domain[256];		/* lower case, A-labels, no final dot */
	int accepted;			/* in [domains] accept */
	const struct config_signer *signer;
	/* check */
	struct event_base *base;
	struct dns_resolver *res;
	unsigned errors, warnings;
	int quiet;			/* > 0: findings are not said */
};

/* One finding each: "ok: ...", "warning: ...", "error: ..." on stdout,
 * control octets replaced; warnings and errors counted. */
void dnscmd_ok(struct dnscmd *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void dnscmd_warn(struct dnscmd *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void dnscmd_err(struct dnscmd *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The answer (dns_answer_free), or NULL when memory ran out. Waits. */
struct dns_answer *dnscmd_ask(struct dnscmd *d, const char *name,
    enum dns_type type);
/* A failure, not an answer (NULL too): nothing can be said about what
 * is published. */
int dnscmd_failed(const struct dns_answer *a);
/* Why it failed: "timeout", "servfail", "out of memory" ... */
const char *dnscmd_why(const struct dns_answer *a);

/* dnscmd_spf.c: the SPF findings for d->domain. */
void dnscmd_check_spf(struct dnscmd *d);

#endif
