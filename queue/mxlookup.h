/*
 * queue/mxlookup: where mail for a recipient domain goes (RFC 5321 5.1),
 * asked of the asynchronous resolver (lib/dns); nothing here blocks.
 *
 *   MX records        sorted by preference, equal preferences in random
 *                     order; each exchange resolved to AAAA and A (both
 *                     families, interleaved, RFC 8305 4)
 *   no MX (NODATA)    the domain's own AAAA/A, as an implicit MX of
 *                     preference 0
 *   null MX           (RFC 7505: one MX, preference 0, exchange ".")
 *                     → permanent: 556 5.1.10
 *   NXDOMAIN          → permanent: 550 5.1.2
 *   SERVFAIL, timeout → temporary
 * An exchange that is an IP literal (invalid, but seen) or the root is
 * skipped; so is one without addresses. When no exchange has an address,
 * the failure is temporary if any of their lookups failed temporarily,
 * permanent otherwise (RFC 5321 5.1: "reported as an error"). At most
 * MX_MAX_HOSTS exchanges and MX_MAX_TARGETS addresses are used.
 */
#ifndef QUEUE_MXLOOKUP_H
#define QUEUE_MXLOOKUP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lib/dns.h"

#define MX_MAX_HOSTS	10
#define MX_MAX_TARGETS	20
#define MX_NAME_MAX	256		/* RFC 1035 2.3.4: 255 octets */

struct mxlookup;

enum mx_status {
	MX_OK,			/* targets holds at least one address */
	MX_TEMP,		/* try again later; text says why */
	MX_PERM,		/* the domain cannot receive mail; text is a
				 * reply ("556 5.1.10 ...") */
};

/* One address to try, in order. */
struct mx_target {
	char name[MX_NAME_MAX];		/* the exchange (or the domain) */
	unsigned pref;
	struct sockaddr_storage addr;	/* port set */
	socklen_t addrlen;
	char spec[MX_NAME_MAX + 64];	/* "mx1.example[192.0.2.1]:25" */
};

struct mx_result {
	enum mx_status status;
	const char *domain;
	const struct mx_target *targets;	/* MX_OK: in the order to try */
	size_t ntargets;
	int code;			/* MX_PERM: 550 or 556; else 0 */
	char text[512];			/* MX_TEMP / MX_PERM: why; for
					 * MX_PERM a reply with that code */
};

/* res and everything it points to are valid only during the call. */
typedef void (*mxlookup_cb)(const struct mx_result *res, void *arg);

/*
 * Starts resolving domain (an ASCII domain, no trailing dot needed);
 * port goes into every target. The callback runs once, from the event
 * loop, never inside this call; the lookup frees itself after it returns.
 * NULL on allocation failure (no callback then).
 */
struct mxlookup *mxlookup_start(struct dns_resolver *r, const char *domain,
    int port, mxlookup_cb cb, void *arg);
/* Stops a lookup in progress: no callback. Not from inside its callback. */
void mxlookup_cancel(struct mxlookup *l);

/*
 * The ordering rule, exposed for tests. rr[0..n) are MX records. Fills
 * order_r (room for max) with the indices of the usable exchanges in the
 * order to try: ascending preference, equal preferences shuffled with
 * rnd(arg, k) (a uniform integer in [0, k); NULL = arc4random_uniform).
 * Returns how many, -1 for a null MX (RFC 7505 3), -2 when out of memory.
 */
typedef uint32_t (*mx_rnd_fn)(void *arg, uint32_t k);
int mx_order(const struct dns_rr *rr, size_t n, size_t *order_r, size_t max,
    mx_rnd_fn rnd, void *arg);

/* Is this exchange name usable (not empty, ".", or an IP literal)? */
int mx_exchange_ok(const char *name);

#endif
