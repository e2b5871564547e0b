/*
 * dns: the asynchronous resolver every DNS lookup goes through (c-ares
 * driven by the libevent loop: its sockets are events, its timeouts
 * timers; nothing blocks). Nothing else in mxgate calls c-ares.
 *
 * Answers are classified so callers can apply their RFC's rules:
 * DNS_OK (records present), DNS_NODATA (the name exists, no record of the
 * type), DNS_NXDOMAIN, DNS_SERVFAIL (SERVFAIL or REFUSED), DNS_TIMEOUT,
 * DNS_ERROR (anything else: malformed answer, FORMERR, out of memory).
 * A truncated UDP answer is retried over TCP. TXT records have their
 * character-strings joined without separators (RFC 7208 3.3). A/AAAA
 * answers carry addresses, MX carries preference and exchange name,
 * PTR carries names. CNAMEs are followed by the resolver (c-ares), the
 * answer is for the final name's records.
 *
 * A bounded cache keeps answers for their TTL (negative answers for the
 * SOA minimum, capped); DNS_SERVFAIL/TIMEOUT/ERROR are not cached.
 *
 * Callbacks never run inside the call that started the query. After
 * dns_cancel() or dns_resolver_free() no callback runs. An answer passed
 * to a callback is valid only during the call (copy what you keep).
 * A SERVFAIL or REFUSED is final: the next configured server is tried
 * only when one does not answer.
 */
#ifndef LIB_DNS_H
#define LIB_DNS_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct dns_resolver;
struct dns_query;

enum dns_type {
	DNS_T_A = 1,
	DNS_T_PTR = 12,
	DNS_T_MX = 15,
	DNS_T_TXT = 16,
	DNS_T_AAAA = 28,
};

enum dns_status {
	DNS_OK,
	DNS_NODATA,
	DNS_NXDOMAIN,
	DNS_SERVFAIL,
	DNS_TIMEOUT,
	DNS_ERROR,
};

struct dns_rr {
	/* A / AAAA */
	int family;			/* AF_INET or AF_INET6 */
	unsigned char addr[16];		/* 4 or 16 octets, network order */
	/* MX */
	unsigned pref;
	/* MX exchange, PTR name (no trailing dot), TXT text (NUL-terminated;
	 * len octets, may contain NULs) */
	char *text;
	size_t len;
};

struct dns_answer {
	enum dns_status status;
	enum dns_type type;
	const char *name;		/* the name asked */
	struct dns_rr *rr;
	size_t n;
	uint32_t ttl;			/* smallest TTL of the answer */
};

struct dns_config {
	/* "host[:port]" entries (IPv6 as "[::1]:5353"); NULL/0 = the
	 * system's /etc/resolv.conf */
	const char *const *servers;
	size_t nservers;
	int timeout_ms;			/* per try; default 2000 */
	int tries;			/* default 2 */
	size_t cache_entries;		/* default 10000; 0 disables */
	uint32_t max_ttl;		/* cap on cached TTLs; default 86400 */
	uint32_t neg_ttl;		/* cap on negative TTLs; default 900 */
};

typedef void (*dns_cb)(const struct dns_answer *a, void *arg);

struct dns_resolver *dns_resolver_new(struct event_base *base,
    const struct dns_config *cfg, char *err, size_t errlen);
void dns_resolver_free(struct dns_resolver *r);

/*
 * Starts a lookup; NULL only on allocation failure (no callback then).
 * name is absolute (no search domains; one trailing dot allowed); a name
 * over 253 octets, with an empty label or a label over 63 octets is
 * answered DNS_ERROR (from the loop, like every answer). The handle is
 * valid until the callback returns; dns_resolver_free() may be called
 * from a callback.
 */
struct dns_query *dns_query(struct dns_resolver *r, const char *name,
    enum dns_type type, dns_cb cb, void *arg);
/* q NULL is ignored; so is cancelling a query from its own callback. */
void dns_cancel(struct dns_query *q);

/* The PTR question for an IPv4 or IPv6 address ("4.3.2.1.in-addr.arpa",
 * nibbles under ip6.arpa; an IPv4-mapped address as IPv4). 0, or -1 when
 * ip is no address or out[n] is too small (n >= 74 always suffices). */
int dns_reverse_name(const char *ip, char *out, size_t n);

const char *dns_status_name(enum dns_status s);
const char *dns_type_name(enum dns_type t);

/* Deep copy / free of an answer (for callers that keep one). */
struct dns_answer *dns_answer_dup(const struct dns_answer *a);
void dns_answer_free(struct dns_answer *a);

#endif
