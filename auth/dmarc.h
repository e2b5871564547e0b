/*
 * auth/dmarc: DMARC evaluation (RFC 9989, which obsoletes RFC 7489; RFC
 * 7489 records as still published are understood), as an engine fed DNS
 * answers like auth/spf and auth/dkim: it never does I/O itself.
 *
 *   d = dmarc_new(&params);
 *   while ((name = dmarc_next_query(d, &type)) != NULL)
 *           ... ask; later dmarc_answer(d, name, type, answer)
 *   ... until dmarc_done(d); then dmarc_outcome(d)
 *
 * Several questions may be outstanding at once; each (name, type) is
 * returned once and its answer serves every part of the evaluation.
 * Once done, questions still outstanding no longer matter (cancel them).
 * The engine does, with a bounded number of questions (at most
 * DMARC_MAX_QUESTIONS per evaluation; past that the result is
 * temperror):
 *   - policy discovery for the author domain: RFC 9989 4.10.1 DNS tree
 *     walk (default), or RFC 7489 6.6.3 (the author domain, then its
 *     PSL organizational domain);
 *   - the organizational domain of the author domain and of each
 *     authenticated identifier that could align in relaxed mode (RFC
 *     9989 4.10.2 tree walk, or RFC 7489 3.2 PSL), only when alignment
 *     needs it: never for an identifier equal to the author domain, nor
 *     in strict mode, nor for one outside the author's organizational
 *     domain (an organizational domain is its domain or a parent);
 *   - for np=: whether the author domain exists, asked only when it
 *     matters (result fail, record not at the author domain, np= set and
 *     different from what sp=/p= give): A first, AAAA and MX only if A is
 *     NXDOMAIN; non-existent when all three are NXDOMAIN (RFC 9091 3.4's
 *     test; RFC 9989 3.2.13 would accept one NXDOMAIN, RFC 8020).
 *
 * Records: several records at one name, or none starting "v=DMARC1",
 * mean no policy at that name (RFC 9989 4.10 step 2). Unknown tags are
 * ignored. A missing p= is p=none (RFC 9989 4.7). A bad p=, sp= or np=
 * makes the record p=none if rua= holds a valid URI, else the record is
 * unusable and no DMARC applies (RFC 9989 4.10.1, RFC 7489 6.6.3).
 * pct= of RFC 7489 records: 0 is t=y, any other value is t=n (RFC 9989
 * A.6 calls t=y/t=n "analogous" to pct=0/pct=100); an explicit t= wins.
 *
 * SPF and DKIM alignment are both evaluated (for reports), each DKIM
 * signature until one aligns. A DNS failure decides the result only
 * when it could change it: temperror, unless something aligned.
 */
#ifndef AUTH_DMARC_H
#define AUTH_DMARC_H

#include <stddef.h>

#include "auth/dkim.h"
#include "auth/spf.h"
#include "lib/dns.h"

#define DMARC_MAX_QUESTIONS	20	/* per evaluation */
#define DMARC_RECORD_MAX	4096	/* longer TXT records are not DMARC */

struct dmarc;
struct orgdomain_psl;

enum dmarc_result {
	DMARC_NONE,		/* no policy record found */
	DMARC_PASS,
	DMARC_FAIL,
	DMARC_TEMPERROR,	/* a lookup failed temporarily */
	DMARC_PERMERROR,	/* the From header leaves no single author
				 * domain (see from_problem), or it is no
				 * domain name */
};

enum dmarc_policy {
	DMARC_P_UNSET,		/* tag absent */
	DMARC_P_NONE,
	DMARC_P_QUARANTINE,
	DMARC_P_REJECT,
};

enum dmarc_align { DMARC_ALIGN_RELAXED, DMARC_ALIGN_STRICT };

enum dmarc_discovery {
	DMARC_DISCOVERY_TREEWALK,	/* RFC 9989 4.10 */
	DMARC_DISCOVERY_PSL,		/* RFC 7489 3.2 + 6.6.3 */
};

struct dmarc_dkim_input {
	const char *domain;	/* d= */
	const char *selector;	/* s= */
	enum dkim_result result;
	int body_partial;	/* l= left part of the body unsigned */
};

struct dmarc_params {
	enum dmarc_discovery discovery;
	const struct orgdomain_psl *psl;	/* PSL mode; read by dmarc_new only */
	/* Author domain, or NULL with from_problem set ("multiple From
	 * fields", "no From field", "multiple addresses in From", ...): then
	 * no question is asked and the result is permerror with that reason. */
	const char *author_domain;
	const char *from_problem;
	/* SPF (RFC 9989 4.4.2): the MAIL FROM domain, or the HELO name when
	 * MAIL FROM was null (and the HELO result then). */
	enum spf_result spf_result;
	const char *spf_domain;		/* NULL/"" = SPF not checked */
	const struct dmarc_dkim_input *dkim;
	size_t ndkim;
	int dkim_partial_counts;	/* a pass with body_partial aligns */
};

/* The parsed record that applied (all strings owned by the engine). */
struct dmarc_record {
	enum dmarc_policy p, sp, np;
	enum dmarc_align adkim, aspf;
	int psd;		/* -1 absent or u, 0 n, 1 y */
	int testing;		/* t=y, or pct=0 in an RFC 7489 record */
	int pct;		/* -1 absent */
	int ri;			/* -1 absent */
	const char *rua;	/* raw tag values, "" when absent */
	const char *ruf;
	const char *fo;
	const char *rf;
};

struct dmarc_outcome {
	enum dmarc_result result;
	const char *reason;	/* why, for the header comment and log */
	const char *author_domain;	/* "" when from_problem; A-labels */
	const char *policy_domain;	/* where the record was found, or "" */
	const char *org_domain;		/* of the author domain; "" when it
					 * was not needed (tree walk) */
	const char *discovery;		/* "treewalk" or "psl" */
	const struct dmarc_record *record;	/* NULL unless a record applied */
	/* The policy requested for this message, p= or sp= or np= as RFC
	 * 9989 4.10.1 picks it (DMARC_P_NONE when no record; on pass and
	 * temperror np= is not considered: the author domain is taken to
	 * exist); and the same after t=y (RFC 9989 4.7 t: "the policy
	 * applied to any failing messages will be one level below the
	 * specified policy": reject -> quarantine, quarantine -> none). */
	enum dmarc_policy requested;
	enum dmarc_policy effective;
	int spf_aligned;		/* SPF pass and aligned */
	int dkim_aligned;		/* some DKIM pass aligned */
	const char *dkim_aligned_domain;	/* its d=, or "" */
	/* 1 when the result is fail but an SPF or DKIM temperror on an
	 * identifier that could have aligned might have made it pass. */
	int uncertain;
};

/* Copies what it needs from p. NULL on allocation failure. */
struct dmarc *dmarc_new(const struct dmarc_params *p);
void dmarc_free(struct dmarc *d);

/* Next question, or NULL when none is waiting to be asked. */
const char *dmarc_next_query(struct dmarc *d, enum dns_type *type_r);
void dmarc_answer(struct dmarc *d, const char *name, enum dns_type type,
    const struct dns_answer *a);
/* Give up (time budget): unanswered questions count as timeouts. */
void dmarc_abort(struct dmarc *d, const char *why);
int dmarc_done(const struct dmarc *d);
/* Valid once done, until dmarc_free. */
const struct dmarc_outcome *dmarc_outcome(const struct dmarc *d);

const char *dmarc_result_name(enum dmarc_result r);	/* "pass" ... */
const char *dmarc_policy_name(enum dmarc_policy p);	/* "none" ... ("" unset) */

/* Record parser, exposed for tests and fuzzing (RFC 9989 4.7, RFC 7489
 * 6.3). 0 with r filled (rua ruf fo rf are copied into strbuf[nstrbuf];
 * len + 4 octets always suffice); -1 if not a DMARC record ("v=DMARC1"
 * not first, over DMARC_RECORD_MAX, a NUL inside) or strbuf too small;
 * -2 if a DMARC record that is unusable (bad p=/sp=/np= and no valid
 * rua=; r is still filled, its psd= counts in a tree walk). */
int dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *r,
    char *strbuf, size_t nstrbuf);

/* Identifier alignment given two org domains already known (NULL:
 * unknown, then relaxed needs a == b); exposed for tests. 1 aligned, 0
 * not. Domains compare case-insensitively, without leading or trailing
 * dots. */
int dmarc_aligned(const char *a, const char *b, const char *org_a,
    const char *org_b, enum dmarc_align mode);

#endif
