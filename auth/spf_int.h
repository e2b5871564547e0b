/*
 * auth/spf_int.h: what the three SPF files share (private to auth/).
 *
 * spf_record.c parses a record into terms (RFC 7208 4.6, 5, 6, 7.1
 * syntax); spf_macro.c expands macro strings (RFC 7208 7); spf.c runs
 * check_host() over them. Nothing here does I/O.
 */
#ifndef AUTH_SPF_INT_H
#define AUTH_SPF_INT_H

#include <stddef.h>

#include "auth/spf.h"
#include "lib/buf.h"

#define SPF_NAME_MAX		253	/* RFC 7208 7.3: domain length */
#define SPF_LABEL_MAX		63
#define SPF_RECORD_MAX		4096	/* joined TXT text we accept */
#define SPF_EXPAND_MAX		8192	/* one macro expansion */

enum spf_mech {
	SPF_M_ALL,
	SPF_M_INCLUDE,
	SPF_M_A,
	SPF_M_MX,
	SPF_M_PTR,
	SPF_M_IP4,
	SPF_M_IP6,
	SPF_M_EXISTS,
};

struct spf_term {
	enum spf_mech mech;
	char qual;		/* '+' '-' '~' '?' */
	const char *text;	/* the term as written (NUL-terminated) */
	const char *spec;	/* domain-spec inside text, or NULL */
	size_t speclen;
	unsigned cidr4, cidr6;	/* 32 / 128 when absent */
	unsigned char addr[16];	/* ip4 (4 octets) / ip6 network */
};

struct spf_record {
	struct spf_term *terms;
	size_t nterms;
	const char *redirect;	/* domain-spec of redirect=, or NULL */
	const char *exp;	/* domain-spec of exp=, or NULL */
	char *text;		/* owns every string above */
};

/* spf_record_parse, spf_record_free, spf_record_is_spf: auth/spf.h. */

/* RFC 7208 7.1 domain-spec syntax: 0 good, -1 bad. */
int spf_domain_spec_ok(const char *s, size_t len);

/* The values the macro letters stand for (RFC 7208 7.3). */
struct spf_macro_ctx {
	const char *sender;	/* s */
	const char *local;	/* l */
	const char *sdomain;	/* o */
	const char *domain;	/* d */
	const char *ip_i;	/* i: dotted quad or dotted nibbles */
	const char *ip_c;	/* c: readable address */
	const char *ptr;	/* p: validated name, "unknown" if none */
	const char *v;		/* "in-addr" or "ip6" */
	const char *helo;	/* h */
	const char *receiver;	/* r */
	long long now;		/* t */
};

/*
 * Expands src (len octets) into out (appended). exp = 1 allows c r t
 * (RFC 7208 7.3). ctx = NULL checks syntax only. 0, -1 on a syntax
 * error, -2 when the result would pass SPF_EXPAND_MAX or memory ran out.
 */
int spf_macro_expand(const struct spf_macro_ctx *ctx, const char *src,
    size_t len, int exp, struct buf *out);
/* Does src use the p macro (which needs DNS before expanding)? */
int spf_macro_uses_p(const char *src, size_t len);

/* spf.c: what spf_header.c needs of a finished check */
struct spf_facts {
	enum spf_result result;
	enum spf_identity identity;
	const char *receiver;
	const char *ip;			/* "unknown" if unparseable */
	const char *sender;		/* checked sender (postmaster@helo ...) */
	const char *orig_sender;	/* MAIL FROM as given */
	const char *helo;
};
void spf_facts(const struct spf *s, struct spf_facts *f);

#endif
