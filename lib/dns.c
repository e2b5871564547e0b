/*
 * dns: c-ares on libevent. c-ares tells us which sockets it wants watched
 * (ARES_OPT_SOCK_STATE_CB) and when its next timeout is (ares_timeout());
 * we turn those into events and hand readiness back with ares_process_fd().
 *
 * A query record lives until c-ares has called back for it, even when
 * cancelled: c-ares keeps our pointer until then. Answers that do not come
 * from c-ares (cache hits, refused names) and answers c-ares gives while a
 * query is being started are delivered from the loop through the query's
 * own event, so no callback ever runs inside dns_query().
 */
#include "lib/dns.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ares.h>
#include <event2/event.h>

#include "lib/dns_cache.h"
#include "lib/log.h"
#include "lib/metrics.h"

#define DNS_NAME_MAX		253	/* RFC 1035 2.3.4, without the root dot */
#define DNS_LABEL_MAX		63
#define DNS_HDR_LEN		12
#define DNS_T_CNAME_		5
#define DNS_T_SOA_		6

struct dns_sock {
	LIST_ENTRY(dns_sock) entry;
	ares_socket_t fd;
	short what;
	struct event *ev;
};

struct dns_query {
	TAILQ_ENTRY(dns_query) entry;
	struct dns_resolver *r;
	char *name;			/* as asked */
	char *key;			/* lowercased, no trailing dot */
	enum dns_type type;
	dns_cb cb;
	void *arg;
	struct event *ready_ev;		/* delivery from the loop */
	struct dns_answer *ready;	/* NULL: empty answer of ready_status */
	enum dns_status ready_status;
	unsigned in_ares:1;		/* c-ares will call back */
	unsigned delivering:1;		/* the user callback is running */
	unsigned cancelled:1;
};

struct dns_resolver {
	struct event_base *base;
	ares_channel channel;
	int have_channel;
	int lib_init;
	struct event *timer;
	LIST_HEAD(, dns_sock) socks;
	TAILQ_HEAD(, dns_query) queries;
	struct dns_cache *cache;
	uint32_t max_ttl;
	uint32_t neg_ttl;
	int busy;			/* inside our handlers: defer freeing */
	int starting;			/* inside ares_query(): defer callbacks */
	int dying;
};

static void dns_update_timer(struct dns_resolver *);
static void dns_destroy(struct dns_resolver *);

static uint64_t
dns_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const char *
dns_status_name(enum dns_status s)
{
	switch (s) {
	case DNS_OK:		return "ok";
	case DNS_NODATA:	return "nodata";
	case DNS_NXDOMAIN:	return "nxdomain";
	case DNS_SERVFAIL:	return "servfail";
	case DNS_TIMEOUT:	return "timeout";
	case DNS_ERROR:		return "error";
	}
	return "unknown";
}

const char *
dns_type_name(enum dns_type t)
{
	switch (t) {
	case DNS_T_A:		return "A";
	case DNS_T_PTR:		return "PTR";
	case DNS_T_MX:		return "MX";
	case DNS_T_TXT:		return "TXT";
	case DNS_T_AAAA:	return "AAAA";
	}
	return "unknown";
}

/* ---- answers ---- */

struct dns_answer *
dns_answer_copy(const struct dns_answer *a, const char *name)
{
	struct dns_answer *c;
	struct dns_rr *rr;
	size_t size, nl, i;
	char *p;

	if (name == NULL)
		name = a->name != NULL ? a->name : "";
	nl = strlen(name) + 1;
	if (a->n > (SIZE_MAX / 2 - sizeof(*c) - nl) / sizeof(*rr))
		return NULL;
	size = sizeof(*c) + a->n * sizeof(*rr) + nl;
	for (i = 0; i < a->n; i++) {
		if (a->rr[i].text == NULL)
			continue;
		if (a->rr[i].len >= SIZE_MAX / 2 - size)
			return NULL;
		size += a->rr[i].len + 1;
	}
	/* one block: the answer, its records, then the strings */
	if ((c = malloc(size)) == NULL)
		return NULL;
	*c = *a;
	rr = (struct dns_rr *)(c + 1);
	p = (char *)(rr + a->n);
	memcpy(p, name, nl);
	c->name = p;
	p += nl;
	c->rr = a->n > 0 ? rr : NULL;
	for (i = 0; i < a->n; i++) {
		rr[i] = a->rr[i];
		if (a->rr[i].text == NULL)
			continue;
		memcpy(p, a->rr[i].text, a->rr[i].len);
		p[a->rr[i].len] = '\0';
		rr[i].text = p;
		p += a->rr[i].len + 1;
	}
	return c;
}

struct dns_answer *
dns_answer_dup(const struct dns_answer *a)
{
	return dns_answer_copy(a, NULL);
}

void
dns_answer_free(struct dns_answer *a)
{
	free(a);
}

/* A parsed answer before it is copied: records and texts on the heap. */
static void
dns_answer_clear(struct dns_answer *a)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		free(a->rr[i].text);
	free(a->rr);
	a->rr = NULL;
	a->n = 0;
}

/*
 * c-ares 1.18 has no TTL for MX, TXT or PTR and none for negative
 * answers, so walk the raw message (RFC 1035 4.1) for them: the smallest
 * TTL of the answer section, and the negative TTL of the SOA in the
 * authority section, min(SOA TTL, SOA MINIMUM) (RFC 2308 5).
 */
static int
dns_skip_name(const unsigned char *m, size_t len, size_t *off)
{
	size_t o = *off;

	while (o < len) {
		if (m[o] == 0) {
			*off = o + 1;
			return 0;
		}
		if ((m[o] & 0xc0) == 0xc0) {
			if (o + 2 > len)
				return -1;
			*off = o + 2;
			return 0;
		}
		if (m[o] & 0xc0)
			return -1;
		o += 1 + m[o];
	}
	return -1;
}

static uint32_t
dns_get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static unsigned
dns_get16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

/* 0 and the TTLs found (have_* set), or -1 on a malformed message. */
static int
dns_walk_ttls(const unsigned char *m, int mlen, uint32_t *an_ttl_r,
    int *have_an_r, uint32_t *neg_ttl_r, int *have_neg_r)
{
	size_t len = mlen > 0 ? (size_t)mlen : 0, off = DNS_HDR_LEN, rdoff;
	unsigned qd, an, ns, i, type, rdlen;
	uint32_t ttl, min;

	*have_an_r = *have_neg_r = 0;
	if (m == NULL || len < DNS_HDR_LEN)
		return -1;
	qd = dns_get16(m + 4);
	an = dns_get16(m + 6);
	ns = dns_get16(m + 8);
	for (i = 0; i < qd; i++) {
		if (dns_skip_name(m, len, &off) == -1 || off + 4 > len)
			return -1;
		off += 4;
	}
	for (i = 0; i < an + ns; i++) {
		if (dns_skip_name(m, len, &off) == -1 || off + 10 > len)
			return -1;
		type = dns_get16(m + off);
		ttl = dns_get32(m + off + 4);
		if (ttl > INT32_MAX)		/* RFC 2181 8 */
			ttl = 0;
		rdlen = dns_get16(m + off + 8);
		rdoff = off + 10;
		if (rdoff + rdlen > len)
			return -1;
		off = rdoff + rdlen;
		if (i < an) {
			if (!*have_an_r || ttl < *an_ttl_r)
				*an_ttl_r = ttl;
			*have_an_r = 1;
		} else if (type == DNS_T_SOA_ && !*have_neg_r) {
			if (dns_skip_name(m, off, &rdoff) == -1 ||
			    dns_skip_name(m, off, &rdoff) == -1 ||
			    rdoff + 20 > off)
				return -1;
			min = dns_get32(m + rdoff + 16);
			*neg_ttl_r = min < ttl ? min : ttl;
			*have_neg_r = 1;
		}
	}
	return 0;
}

static int
dns_rr_add(struct dns_answer *a, size_t *cap)
{
	struct dns_rr *rr;
	size_t ncap;

	if (a->n == *cap) {
		ncap = *cap ? *cap * 2 : 4;
		if ((rr = reallocarray(a->rr, ncap, sizeof(*rr))) == NULL)
			return -1;
		a->rr = rr;
		*cap = ncap;
	}
	memset(&a->rr[a->n], 0, sizeof(a->rr[0]));
	a->n++;
	return 0;
}

static int
dns_rr_text(struct dns_rr *rr, const void *p, size_t len)
{
	char *t;

	if ((t = realloc(rr->text, rr->len + len + 1)) == NULL)
		return -1;
	memcpy(t + rr->len, p, len);
	rr->len += len;
	t[rr->len] = '\0';
	rr->text = t;
	return 0;
}

/* The answer count of the header: room for the addrttls. */
#define DNS_MAX_RECORDS 256

static int
dns_ancount(const unsigned char *m, int len)
{
	int n = len >= DNS_HDR_LEN ? (int)dns_get16(m + 6) : 0;

	return n > 0 ? n : 1;
}

static int
dns_parse_addrs(struct dns_answer *a, const unsigned char *m, int len)
{
	struct ares_addrttl *t4 = NULL;
	struct ares_addr6ttl *t6 = NULL;
	size_t cap = 0;
	int n = dns_ancount(m, len), i, ttl = 0, st;

	if (a->type == DNS_T_A) {
		if ((t4 = calloc(n, sizeof(*t4))) == NULL)
			return ARES_ENOMEM;
		st = ares_parse_a_reply(m, len, NULL, t4, &n);
	} else {
		if ((t6 = calloc(n, sizeof(*t6))) == NULL)
			return ARES_ENOMEM;
		st = ares_parse_aaaa_reply(m, len, NULL, t6, &n);
	}
	for (i = 0; st == ARES_SUCCESS && i < n; i++) {
		if (dns_rr_add(a, &cap) == -1) {
			st = ARES_ENOMEM;
			break;
		}
		if (t4 != NULL) {
			a->rr[a->n - 1].family = AF_INET;
			memcpy(a->rr[a->n - 1].addr, &t4[i].ipaddr, 4);
			ttl = t4[i].ttl;
		} else {
			a->rr[a->n - 1].family = AF_INET6;
			memcpy(a->rr[a->n - 1].addr, &t6[i].ip6addr, 16);
			ttl = t6[i].ttl;
		}
		if (ttl < 0)
			ttl = 0;
		if (i == 0 || (uint32_t)ttl < a->ttl)
			a->ttl = (uint32_t)ttl;
	}
	free(t4);
	free(t6);
	return st;
}

static int
dns_parse_mx(struct dns_answer *a, const unsigned char *m, int len)
{
	struct ares_mx_reply *mx, *p;
	size_t cap = 0;
	int st;

	if ((st = ares_parse_mx_reply(m, len, &mx)) != ARES_SUCCESS)
		return st;
	for (p = mx; p != NULL; p = p->next) {
		if (dns_rr_add(a, &cap) == -1 ||
		    dns_rr_text(&a->rr[a->n - 1], p->host,
		    strlen(p->host)) == -1) {
			st = ARES_ENOMEM;
			break;
		}
		a->rr[a->n - 1].pref = p->priority;
	}
	ares_free_data(mx);
	return st;
}

/* RFC 7208 3.3: the character-strings of one TXT record are joined
 * without separator; record_start marks the first string of a record. */
static int
dns_parse_txt(struct dns_answer *a, const unsigned char *m, int len)
{
	struct ares_txt_ext *txt, *p;
	size_t cap = 0;
	int st;

	if ((st = ares_parse_txt_reply_ext(m, len, &txt)) != ARES_SUCCESS)
		return st;
	for (p = txt; p != NULL; p = p->next) {
		if ((p->record_start || a->n == 0) &&
		    dns_rr_add(a, &cap) == -1) {
			st = ARES_ENOMEM;
			break;
		}
		if (dns_rr_text(&a->rr[a->n - 1], p->txt, p->length) == -1) {
			st = ARES_ENOMEM;
			break;
		}
	}
	ares_free_data(txt);
	return st;
}

static int
dns_parse_ptr(struct dns_answer *a, const unsigned char *m, int len)
{
	/* the address only fills the hostent; any will do */
	static const unsigned char any[4];
	struct hostent *he;
	size_t cap = 0;
	char **al;
	int st;

	if ((st = ares_parse_ptr_reply(m, len, any, sizeof(any), AF_INET,
	    &he)) != ARES_SUCCESS)
		return st;
	/* c-ares 1.18 lists every PTR name in h_aliases (h_name is one) */
	al = he->h_aliases;
	if (al == NULL || al[0] == NULL) {
		st = dns_rr_add(a, &cap) == -1 || dns_rr_text(&a->rr[0],
		    he->h_name, strlen(he->h_name)) == -1 ?
		    ARES_ENOMEM : ARES_SUCCESS;
	}
	for (; al != NULL && *al != NULL; al++) {
		if (dns_rr_add(a, &cap) == -1 ||
		    dns_rr_text(&a->rr[a->n - 1], *al, strlen(*al)) == -1) {
			st = ARES_ENOMEM;
			break;
		}
	}
	ares_free_hostent(he);
	return st;
}

/*
 * Fills a from c-ares' status and message; returns the TTL to cache it
 * for (0: not cached).
 */
static uint32_t
dns_classify(struct dns_resolver *r, struct dns_answer *a, int status,
    const unsigned char *m, int len)
{
	uint32_t an_ttl = 0, neg_ttl = 0;
	int have_an = 0, have_neg = 0, st;

	if (status == ARES_SUCCESS || status == ARES_ENODATA ||
	    status == ARES_ENOTFOUND)
		(void)dns_walk_ttls(m, len, &an_ttl, &have_an, &neg_ttl,
		    &have_neg);
	/* Parsing cost in c-ares grows with the square of the record count;
	 * no legitimate answer needs hundreds of records. A hostile zone
	 * must not buy our loop's time with them. */
	if (status == ARES_SUCCESS && len >= DNS_HDR_LEN &&
	    dns_get16(m + 6) > DNS_MAX_RECORDS) {
		log_warning("dns: name=%s type=%s answer with %u records refused "
		    "(more than %d)", log_safe(a->name), dns_type_name(a->type),
		    dns_get16(m + 6), DNS_MAX_RECORDS);
		a->status = DNS_ERROR;
		return 0;
	}
	switch (status) {
	case ARES_SUCCESS:
		switch (a->type) {
		case DNS_T_A:
		case DNS_T_AAAA:
			st = dns_parse_addrs(a, m, len);
			break;
		case DNS_T_MX:
			st = dns_parse_mx(a, m, len);
			break;
		case DNS_T_TXT:
			st = dns_parse_txt(a, m, len);
			break;
		case DNS_T_PTR:
			st = dns_parse_ptr(a, m, len);
			break;
		default:
			st = ARES_ENOTIMP;
			break;
		}
		if (st == ARES_SUCCESS && a->n > 0) {
			a->status = DNS_OK;
			if (a->type != DNS_T_A && a->type != DNS_T_AAAA)
				a->ttl = have_an ? an_ttl : 0;
			return a->ttl < r->max_ttl ? a->ttl : r->max_ttl;
		}
		dns_answer_clear(a);
		if (st != ARES_ENODATA && st != ARES_SUCCESS) {
			/* malformed, or out of memory */
			a->status = DNS_ERROR;
			return 0;
		}
		/* only CNAMEs (to a name the server did not resolve): the
		 * final name has no such record; no SOA, so not cached */
		a->status = DNS_NODATA;
		return 0;
	case ARES_ENODATA:
	case ARES_ENOTFOUND:
		a->status = status == ARES_ENODATA ? DNS_NODATA : DNS_NXDOMAIN;
		/* RFC 2308 5: without an SOA a negative answer is not
		 * cached; with one, for its TTL capped by neg_ttl */
		if (!have_neg)
			return 0;
		a->ttl = neg_ttl;
		return neg_ttl < r->neg_ttl ? neg_ttl : r->neg_ttl;
	case ARES_ESERVFAIL:
	case ARES_EREFUSED:
		a->status = DNS_SERVFAIL;
		return 0;
	case ARES_ETIMEOUT:
		a->status = DNS_TIMEOUT;
		return 0;
	default:
		log_debug("dns: c-ares: %s", ares_strerror(status));
		a->status = DNS_ERROR;
		return 0;
	}
}

/* ---- queries ---- */

static void
dns_query_free(struct dns_query *q)
{
	TAILQ_REMOVE(&q->r->queries, q, entry);
	if (q->ready_ev != NULL)
		event_free(q->ready_ev);
	dns_answer_free(q->ready);
	free(q->name);
	free(q->key);
	free(q);
}

/* Leaves a handler: frees a resolver whose free was deferred. */
static void
dns_release(struct dns_resolver *r)
{
	if (--r->busy == 0 && r->dying)
		dns_destroy(r);
	else if (!r->dying)
		dns_update_timer(r);
}

static void
dns_deliver(struct dns_query *q, const struct dns_answer *a)
{
	q->delivering = 1;
	if (!q->cancelled)
		q->cb(a, q->arg);
	dns_query_free(q);
}

static void
dns_on_ready(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;
	struct dns_resolver *r = q->r;
	struct dns_answer empty;

	r->busy++;
	if (q->ready != NULL)
		dns_deliver(q, q->ready);
	else {
		memset(&empty, 0, sizeof(empty));
		empty.status = q->ready_status;
		empty.type = q->type;
		empty.name = q->name;
		dns_deliver(q, &empty);
	}
	dns_release(r);
}

/* Delivers from the loop: a (copied, may be NULL) or an empty answer of
 * status st when a is NULL or cannot be copied. */
static void
dns_deliver_later(struct dns_query *q, const struct dns_answer *a,
    enum dns_status st)
{
	q->ready_status = a != NULL ? DNS_ERROR : st;
	if (a != NULL)
		q->ready = dns_answer_copy(a, q->name);
	event_active(q->ready_ev, EV_TIMEOUT, 0);
}

static void
dns_on_ares(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_query *q = arg;
	struct dns_resolver *r = q->r;
	struct dns_answer a;
	uint32_t ttl;

	q->in_ares = 0;
	/* ares_destroy() (ours, in dns_destroy) or ares_cancel() */
	if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
		dns_query_free(q);
		return;
	}
	memset(&a, 0, sizeof(a));
	a.name = q->name;
	a.type = q->type;
	ttl = dns_classify(r, &a, status, abuf, alen);
	/* every answer from the servers, also for a query cancelled since */
	metrics_inc("mxgate_dns_queries_total", "type", dns_type_name(q->type),
	    "outcome", dns_status_name(a.status));
	if (ttl > 0 && r->cache != NULL &&
	    dns_cache_put(r->cache, q->key, &a, ttl, dns_now_ms()) == -1)
		log_warning("dns: cannot cache name=%s: out of memory",
		    log_safe(q->name));
	if (q->cancelled)
		dns_query_free(q);
	else if (r->starting)
		dns_deliver_later(q, &a, a.status);
	else
		dns_deliver(q, &a);
	dns_answer_clear(&a);
}

/* RFC 1035 2.3.4: names of at most 253 octets (255 on the wire), labels
 * of 1 to 63. One trailing dot is allowed. NULL if refused. */
static char *
dns_name_key(const char *name)
{
	size_t len = strlen(name), i, label = 0;
	char *key;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_NAME_MAX)
		return NULL;
	for (i = 0; i < len; i++) {
		if (name[i] == '.') {
			if (label == 0)
				return NULL;
			label = 0;
		} else if (++label > DNS_LABEL_MAX)
			return NULL;
	}
	if (label == 0 || (key = malloc(len + 1)) == NULL)
		return NULL;
	for (i = 0; i < len; i++)
		key[i] = name[i] >= 'A' && name[i] <= 'Z' ?
		    name[i] - 'A' + 'a' : name[i];
	key[len] = '\0';
	return key;
}

/* c-ares reads a backslash as an escape: pass one as "\\". */
static char *
dns_ares_name(const char *key)
{
	size_t i, j, n = strlen(key), extra = 0;
	char *s;

	for (i = 0; i < n; i++)
		extra += key[i] == '\\';
	if ((s = malloc(n + extra + 1)) == NULL)
		return NULL;
	for (i = j = 0; i < n; i++) {
		if (key[i] == '\\')
			s[j++] = '\\';
		s[j++] = key[i];
	}
	s[j] = '\0';
	return s;
}

struct dns_query *
dns_query(struct dns_resolver *r, const char *name, enum dns_type type,
    dns_cb cb, void *arg)
{
	struct dns_query *q;
	struct dns_answer *hit;
	char *aname;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->r = r;
	q->type = type;
	q->cb = cb;
	q->arg = arg;
	TAILQ_INSERT_TAIL(&r->queries, q, entry);
	if ((q->name = strdup(name)) == NULL ||
	    (q->ready_ev = event_new(r->base, -1, 0, dns_on_ready, q)) ==
	    NULL) {
		dns_query_free(q);
		return NULL;
	}
	if ((q->key = dns_name_key(name)) == NULL) {
		log_debug("dns: refused name=%s", log_safe(name));
		metrics_inc("mxgate_dns_queries_total", "type",
		    dns_type_name(type), "outcome", "error");
		dns_deliver_later(q, NULL, DNS_ERROR);
		return q;
	}
	if (type != DNS_T_A && type != DNS_T_AAAA && type != DNS_T_MX &&
	    type != DNS_T_TXT && type != DNS_T_PTR) {
		metrics_inc("mxgate_dns_queries_total", "type",
		    dns_type_name(type), "outcome", "error");
		dns_deliver_later(q, NULL, DNS_ERROR);
		return q;
	}
	if (r->cache != NULL && (hit = dns_cache_get(r->cache, q->key, type,
	    name, dns_now_ms())) != NULL) {
		metrics_inc("mxgate_dns_cache_hits_total", "type",
		    dns_type_name(type));
		q->ready = hit;
		event_active(q->ready_ev, EV_TIMEOUT, 0);
		return q;
	}
	if ((aname = dns_ares_name(q->key)) == NULL) {
		dns_query_free(q);
		return NULL;
	}
	q->in_ares = 1;
	r->starting++;
	/* not ares_search: names are absolute, no search domains */
	ares_query(r->channel, aname, 1 /* C_IN */, (int)type, dns_on_ares,
	    q);
	r->starting--;
	free(aname);
	dns_update_timer(r);
	return q;
}

void
dns_cancel(struct dns_query *q)
{
	if (q == NULL || q->cancelled)
		return;
	q->cancelled = 1;
	q->cb = NULL;
	/* c-ares (or our own caller, for a running callback) frees it */
	if (q->in_ares || q->delivering)
		return;
	dns_query_free(q);
}

/* ---- c-ares on libevent ---- */

static void
dns_on_sock(evutil_socket_t fd, short what, void *arg)
{
	struct dns_resolver *r = arg;

	r->busy++;
	ares_process_fd(r->channel,
	    what & EV_READ ? (ares_socket_t)fd : ARES_SOCKET_BAD,
	    what & EV_WRITE ? (ares_socket_t)fd : ARES_SOCKET_BAD);
	dns_release(r);
}

static void
dns_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct dns_resolver *r = arg;

	r->busy++;
	/* no socket: c-ares only looks at its timeouts */
	ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_release(r);
}

static void
dns_update_timer(struct dns_resolver *r)
{
	struct timeval tv, *tvp;

	if ((tvp = ares_timeout(r->channel, NULL, &tv)) == NULL)
		evtimer_del(r->timer);
	else
		evtimer_add(r->timer, tvp);
}

static void
dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_resolver *r = data;
	struct dns_sock *s;
	short what = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);

	LIST_FOREACH(s, &r->socks, entry)
		if (s->fd == fd)
			break;
	if (s != NULL && (what == 0 || what != s->what)) {
		LIST_REMOVE(s, entry);
		event_free(s->ev);
		free(s);
		s = NULL;
	}
	if (what == 0 || s != NULL)
		return;
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->ev = event_new(r->base, fd, what | EV_PERSIST, dns_on_sock,
	    r)) == NULL || event_add(s->ev, NULL) == -1) {
		/* the query times out through the timer */
		log_error("dns: cannot watch a resolver socket");
		if (s != NULL && s->ev != NULL)
			event_free(s->ev);
		free(s);
		return;
	}
	s->fd = fd;
	s->what = what;
	LIST_INSERT_HEAD(&r->socks, s, entry);
}

static int
dns_set_servers(struct dns_resolver *r, const struct dns_config *cfg,
    char *err, size_t errlen)
{
	size_t i, len = 0;
	char *csv;
	int st;

	for (i = 0; i < cfg->nservers; i++) {
		if (cfg->servers[i] == NULL || cfg->servers[i][0] == '\0' ||
		    strpbrk(cfg->servers[i], ", \t") != NULL) {
			snprintf(err, errlen, "bad DNS server \"%s\"",
			    cfg->servers[i] ? cfg->servers[i] : "");
			return -1;
		}
		len += strlen(cfg->servers[i]) + 1;
	}
	if ((csv = malloc(len)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	csv[0] = '\0';
	for (i = 0; i < cfg->nservers; i++) {
		if (i > 0)
			strcat(csv, ",");
		strcat(csv, cfg->servers[i]);
	}
	st = ares_set_servers_ports_csv(r->channel, csv);
	free(csv);
	if (st != ARES_SUCCESS) {
		snprintf(err, errlen, "bad DNS server list: %s",
		    ares_strerror(st));
		return -1;
	}
	return 0;
}

struct dns_resolver *
dns_resolver_new(struct event_base *base, const struct dns_config *cfg,
    char *err, size_t errlen)
{
	static const struct dns_config defaults = {
		.cache_entries = 10000,
	};
	struct dns_resolver *r;
	struct ares_options o;
	int st;

	if (cfg == NULL)
		cfg = &defaults;
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->base = base;
	LIST_INIT(&r->socks);
	TAILQ_INIT(&r->queries);
	r->max_ttl = cfg->max_ttl > 0 ? cfg->max_ttl : 86400;
	r->neg_ttl = cfg->neg_ttl > 0 ? cfg->neg_ttl : 900;
	if ((st = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(st));
		goto fail;
	}
	r->lib_init = 1;
	if ((r->timer = evtimer_new(base, dns_on_timer, r)) == NULL ||
	    (cfg->cache_entries > 0 &&
	    (r->cache = dns_cache_new(cfg->cache_entries)) == NULL)) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	memset(&o, 0, sizeof(o));
	o.timeout = cfg->timeout_ms > 0 ? cfg->timeout_ms : 2000;
	o.tries = cfg->tries > 0 ? cfg->tries : 2;
	o.sock_state_cb = dns_sock_state;
	o.sock_state_cb_data = r;
	/*
	 * ARES_FLAG_NOCHECKRESP: c-ares 1.18 otherwise takes SERVFAIL and
	 * REFUSED as a broken server, tries the next one, and in the end
	 * reports ARES_ECONNREFUSED, which cannot be told from a server
	 * that cannot be reached. ARES_FLAG_IGNTC is not set: a truncated
	 * UDP answer is asked again over TCP (RFC 1035 4.2.1).
	 */
	o.flags = ARES_FLAG_NOCHECKRESP;
	if ((st = ares_init_options(&r->channel, &o, ARES_OPT_FLAGS |
	    ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB)) !=
	    ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(st));
		goto fail;
	}
	r->have_channel = 1;
	if (cfg->nservers > 0 && dns_set_servers(r, cfg, err, errlen) == -1)
		goto fail;
	return r;
fail:
	dns_destroy(r);
	return NULL;
}

static void
dns_destroy(struct dns_resolver *r)
{
	struct dns_query *q, *tq;
	struct dns_sock *s;

	r->dying = 1;
	for (q = TAILQ_FIRST(&r->queries); q != NULL; q = tq) {
		tq = TAILQ_NEXT(q, entry);
		q->cancelled = 1;
		if (!q->in_ares)
			dns_query_free(q);
	}
	/* calls back every query in flight with ARES_EDESTRUCTION */
	if (r->have_channel)
		ares_destroy(r->channel);
	while ((s = LIST_FIRST(&r->socks)) != NULL) {
		LIST_REMOVE(s, entry);
		event_free(s->ev);
		free(s);
	}
	if (r->timer != NULL)
		event_free(r->timer);
	dns_cache_free(r->cache);
	if (r->lib_init)
		ares_library_cleanup();
	free(r);
}

void
dns_resolver_free(struct dns_resolver *r)
{
	struct dns_query *q, *tq;

	if (r == NULL)
		return;
	if (r->busy == 0) {
		dns_destroy(r);
		return;
	}
	/* called from one of our callbacks: finish when it returns */
	r->dying = 1;
	for (q = TAILQ_FIRST(&r->queries); q != NULL; q = tq) {
		tq = TAILQ_NEXT(q, entry);
		dns_cancel(q);
	}
}

int
dns_reverse_name(const char *ip, char *out, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char a[16];
	size_t o = 0;
	int i;

	if (inet_pton(AF_INET, ip, a) == 1 ||
	    (inet_pton(AF_INET6, ip, a) == 1 &&
	    IN6_IS_ADDR_V4MAPPED((struct in6_addr *)a) &&
	    memmove(a, a + 12, 4) != NULL)) {
		if ((size_t)snprintf(out, n, "%u.%u.%u.%u.in-addr.arpa", a[3],
		    a[2], a[1], a[0]) >= n)
			return -1;
		return 0;
	}
	if (inet_pton(AF_INET6, ip, a) != 1 || n < 74)
		return -1;
	for (i = 15; i >= 0; i--) {
		out[o++] = hex[a[i] & 15];
		out[o++] = '.';
		out[o++] = hex[a[i] >> 4];
		out[o++] = '.';
	}
	memcpy(out + o, "ip6.arpa", 9);
	return 0;
}
