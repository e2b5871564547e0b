/*
 * auth/orgdomain: the RFC 7489 3.2 Organizational Domain by the Public
 * Suffix List (libpsl), the "psl" discovery mode of auth/dmarc. (The
 * RFC 9989 DNS tree walk, the default, lives in auth/dmarc: it needs DNS.)
 * Also the U-label to A-label conversion both modes need (RFC 9989
 * 5.3.1).
 */
#ifndef AUTH_ORGDOMAIN_H
#define AUTH_ORGDOMAIN_H

#include <stddef.h>

struct orgdomain_psl;

/* path = a PSL file (public_suffix_list.dat text or libpsl's DAFSA); NULL
 * or "" = the system's list (libpsl's psl_latest). NULL with err filled
 * when it cannot be loaded. Loaded once, shared read-only. */
struct orgdomain_psl *orgdomain_psl_load(const char *path, char *err,
    size_t errlen);
void orgdomain_psl_free(struct orgdomain_psl *p);

/*
 * The registrable domain (public suffix plus one label; ICANN and
 * PRIVATE sections both in force) of domain, lower case, into out[n].
 * 0; -1 when there is none (domain is itself a public suffix, empty,
 * starts with a dot, or does not fit). U-labels are converted to
 * A-labels first.
 */
int orgdomain_psl(const struct orgdomain_psl *p, const char *domain,
    char *out, size_t n);

/*
 * domain in lower case with every U-label turned into an A-label
 * ("xn--" + RFC 3492 Punycode, RFC 5890 2.3.2.1), U+3002, U+FF0E and
 * U+FF61 taken as dots (RFC 3490 3.1), one trailing dot dropped, into
 * out[n]. 0; -1 when it is empty, not UTF-8, has an empty
 * label, a label over 63 octets, an octet other than letters, digits,
 * '-' and '_' in an ASCII label, is over 253 octets, or does not fit.
 * Lower-casing of non-ASCII is libpsl's (psl_str_to_utf8lower); there is
 * no further IDNA2008 mapping or NFC normalisation: input is taken as
 * already normalised. No I/O, no PSL needed.
 */
int orgdomain_ascii(const char *domain, char *out, size_t n);

#endif
