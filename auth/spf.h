/*
 * auth/spf: the SPF check_host() function of RFC 7208, as an engine that
 * is fed DNS answers: it never does I/O itself.
 *
 *   s = spf_new(&params);
 *   while (spf_step(s, &name, &type) == SPF_NEED_DNS)
 *           spf_answer(s, answer_for(name, type));     (any time later)
 *   spf_result(s), spf_explanation(s), spf_reason(s), spf_trace(s)
 *   spf_free(s);
 *
 * One DNS question is outstanding at a time; the caller answers it with a
 * struct dns_answer (lib/dns.h), whose status carries NXDOMAIN, NODATA,
 * SERVFAIL and TIMEOUT as RFC 7208 needs them. spf_answer copies what it
 * keeps. The engine enforces every RFC 7208 limit (4.6.4 ten DNS-querying
 * terms, two void lookups, ten MX/PTR names; record size; include and
 * redirect loops end by the term limit) and a total number of DNS
 * questions; the caller enforces wall-clock time (answer with
 * DNS_TIMEOUT, or call spf_abort).
 */
#ifndef AUTH_SPF_H
#define AUTH_SPF_H

#include <stddef.h>
#include <sys/socket.h>

#include "lib/dns.h"

struct spf;

enum spf_result {
	SPF_NONE,
	SPF_NEUTRAL,
	SPF_PASS,
	SPF_FAIL,
	SPF_SOFTFAIL,
	SPF_TEMPERROR,
	SPF_PERMERROR,
};

enum spf_identity {
	SPF_ID_MAILFROM,	/* RFC 7208 2.4 */
	SPF_ID_HELO,		/* RFC 7208 2.3 */
};

struct spf_params {
	enum spf_identity identity;
	const char *ip;		/* client address, IPv4 or IPv6 text */
	const char *sender;	/* MAIL FROM address; "" = null sender
				 * (then postmaster@helo, RFC 7208 2.4) */
	const char *helo;	/* HELO/EHLO name as given */
	const char *receiver;	/* our host name, for %{r} (RFC 7208 7.3) */
	long long now;		/* for %{t}; 0 = time(NULL) */
};

enum spf_step { SPF_DONE, SPF_NEED_DNS };

/* Copies what it needs from p. NULL on allocation failure. */
struct spf *spf_new(const struct spf_params *p);
void spf_free(struct spf *s);

/* Advance. SPF_NEED_DNS: *name_r (valid until the next call) and *type_r
 * say what to look up; answer with spf_answer. */
enum spf_step spf_step(struct spf *s, const char **name_r,
    enum dns_type *type_r);
void spf_answer(struct spf *s, const struct dns_answer *a);
/* Give up (time budget): the result becomes temperror. */
void spf_abort(struct spf *s, const char *why);

enum spf_result spf_result(const struct spf *s);
const char *spf_result_name(enum spf_result r);	/* "pass", "fail", ... */
/* The explanation (RFC 7208 6.2) for fail, expanded; default text if the
 * domain gave none; "" otherwise. */
const char *spf_explanation(const struct spf *s);
/* Why: "matched ip4:192.0.2.0/24", "too many DNS lookups", ... */
const char *spf_reason(const struct spf *s);
/* The domain checked (MAIL FROM domain or HELO name) and the mechanism
 * trace, one line per term evaluated. */
const char *spf_domain(const struct spf *s);
const char *spf_trace(const struct spf *s);

/* Received-SPF header field (RFC 7208 9.1), without trailing CRLF. */
int spf_received_header(const struct spf *s, const char *receiver,
    char *out, size_t n);

/* Macro expansion (RFC 7208 7), exposed for tests and fuzzing: expands
 * src for the check's context; exp = 1 allows %{c} %{r} %{t}. Returns 0,
 * or -1 on a syntax error (permerror). */
int spf_expand(struct spf *s, const char *src, int exp, char *out, size_t n);

/*
 * Records, for tools that judge what a domain publishes (`mxgate dns
 * check`): one record parsed, then its mechanisms read in order. No I/O;
 * nothing is expanded. The strings handed out belong to the record.
 */
struct spf_record;

enum spf_term_kind {
	SPF_TERM_ALL,
	SPF_TERM_INCLUDE,
	SPF_TERM_A,
	SPF_TERM_MX,
	SPF_TERM_PTR,
	SPF_TERM_IP4,
	SPF_TERM_IP6,
	SPF_TERM_EXISTS,
};

struct spf_term_info {
	enum spf_term_kind kind;
	char qual;		/* '+' '-' '~' '?' ('+' when none written) */
	const char *text;	/* the term as written, NUL-terminated */
	const char *spec;	/* its domain-spec (not NUL-terminated), or
				 * NULL: the current domain (a, mx, ptr) or
				 * none (all, ip4, ip6) */
	size_t speclen;
	int macro;		/* spec holds a macro (RFC 7208 7): what it
				 * names is known only when checking a sender */
};

/* RFC 7208 4.5: "v=spf1" (any case) then a space or the end. */
int spf_record_is_spf(const char *text, size_t len);
/*
 * Parses the text of one SPF record (len octets, may hold NULs): 0 and
 * *r set (spf_record_free), or -1 with *err_r a static description (a
 * syntax error is a permerror; also "out of memory").
 */
int spf_record_parse(const char *text, size_t len, struct spf_record **r,
    const char **err_r);
void spf_record_free(struct spf_record *r);
/* The number of mechanisms in r (modifiers are not terms here). */
size_t spf_record_nterms(const struct spf_record *r);
/* Mechanism i of r into *t_r: 0, or -1 when there is no such term. */
int spf_record_term(const struct spf_record *r, size_t i,
    struct spf_term_info *t_r);
/* The domain-spec of redirect= (NUL-terminated), or NULL. */
const char *spf_record_redirect(const struct spf_record *r);

#endif
