/*
 * queue/mxlookup: the MX query, then AAAA and A for every exchange kept,
 * all in flight at once; the answer is put together when the last one is
 * in.
 */
#include "queue/mxlookup.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"

struct mx_slot;

struct mx_ask {
	struct mx_slot *slot;
	int v6;
	struct dns_query *q;
};

struct mx_slot {
	struct mxlookup *l;
	char name[MX_NAME_MAX];
	unsigned pref;
	struct mx_ask ask[2];			/* [0] AAAA, [1] A */
	unsigned char addr[2][MX_MAX_TARGETS][16];
	size_t naddr[2];
	int temp;				/* a lookup failed for now */
	enum dns_status status[2];
};

struct mxlookup {
	struct dns_resolver *r;
	char domain[MX_NAME_MAX];
	int port;
	mxlookup_cb cb;
	void *arg;
	struct dns_query *mxq;
	struct mx_slot slots[MX_MAX_HOSTS];
	size_t nslots;
	size_t pending;
	int implicit;				/* no MX: the domain itself */
};

int
mx_exchange_ok(const char *name)
{
	unsigned char a[16];
	const char *p;

	if (name == NULL || *name == '\0' || strcmp(name, ".") == 0 ||
	    strlen(name) >= MX_NAME_MAX)
		return 0;
	/* RFC 5321 5.1 wants a name; literals are seen in the wild. */
	if (name[0] == '[' || inet_pton(AF_INET, name, a) == 1 ||
	    inet_pton(AF_INET6, name, a) == 1)
		return 0;
	for (p = name; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
		    *p == '_'))
			return 0;
	return 1;
}

static uint32_t
mx_rnd_default(void *arg, uint32_t k)
{
	return arc4random_uniform(k);
}

int
mx_order(const struct dns_rr *rr, size_t n, size_t *order_r, size_t max,
    mx_rnd_fn rnd, void *arg)
{
	size_t i, j, k, run, cnt = 0;

	/* RFC 7505 3: a single MX, preference 0, exchange "." (which the
	 * resolver may give as ""). */
	if (n == 1 && rr[0].pref == 0 && rr[0].text != NULL &&
	    (rr[0].text[0] == '\0' || strcmp(rr[0].text, ".") == 0))
		return -1;
	if (rnd == NULL)
		rnd = mx_rnd_default;
	/* Collect usable exchanges, sorted by preference (insertion sort:
	 * n is small and the sort is stable). */
	{
		size_t *tmp = calloc(n + 1, sizeof(*tmp));

		if (tmp == NULL)
			return -2;
		for (i = 0; i < n; i++) {
			if (!mx_exchange_ok(rr[i].text))
				continue;
			for (j = cnt; j > 0 && rr[tmp[j - 1]].pref > rr[i].pref; j--)
				tmp[j] = tmp[j - 1];
			tmp[j] = i;
			cnt++;
		}
		/* RFC 5321 5.1: equal preferences in random order
		 * (Fisher-Yates within each run). */
		for (i = 0; i < cnt; i = j) {
			for (j = i + 1; j < cnt && rr[tmp[j]].pref == rr[tmp[i]].pref; j++)
				;
			for (run = j - i; run > 1; run--) {
				size_t t;

				k = i + rnd(arg, (uint32_t)run);
				t = tmp[i + run - 1];
				tmp[i + run - 1] = tmp[k];
				tmp[k] = t;
			}
		}
		if (cnt > max)
			cnt = max;
		memcpy(order_r, tmp, cnt * sizeof(*tmp));
		free(tmp);
	}
	return (int)cnt;
}

static int
mx_temporary(enum dns_status st)
{
	return st == DNS_SERVFAIL || st == DNS_TIMEOUT || st == DNS_ERROR;
}

static void
mx_free(struct mxlookup *l)
{
	size_t i;

	dns_cancel(l->mxq);
	for (i = 0; i < l->nslots; i++) {
		dns_cancel(l->slots[i].ask[0].q);
		dns_cancel(l->slots[i].ask[1].q);
	}
	free(l);
}

void
mxlookup_cancel(struct mxlookup *l)
{
	if (l != NULL)
		mx_free(l);
}

static void
mx_done(struct mxlookup *l, struct mx_result *res)
{
	res->domain = l->domain;
	l->cb(res, l->arg);
	free(l);
}

static void
mx_fail(struct mxlookup *l, enum mx_status st, int code, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));

static void
mx_fail(struct mxlookup *l, enum mx_status st, int code, const char *fmt, ...)
{
	struct mx_result res;
	va_list ap;

	memset(&res, 0, sizeof(res));
	res.status = st;
	res.code = code;
	va_start(ap, fmt);
	vsnprintf(res.text, sizeof(res.text), fmt, ap);
	va_end(ap);
	mx_done(l, &res);
}

static int
mx_seen(const struct mx_target *t, size_t n, const struct mx_target *x)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (t[i].addrlen == x->addrlen &&
		    memcmp(&t[i].addr, &x->addr, x->addrlen) == 0)
			return 1;
	return 0;
}

static void
mx_target_fill(struct mx_target *t, const struct mx_slot *s, int v6,
    const unsigned char *a, int port)
{
	char ip[INET6_ADDRSTRLEN];

	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", s->name);
	t->pref = s->pref;
	if (v6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&t->addr;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		memcpy(&sin6->sin6_addr, a, 16);
		t->addrlen = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&t->addr;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		memcpy(&sin->sin_addr, a, 4);
		t->addrlen = sizeof(*sin);
	}
	inet_ntop(v6 ? AF_INET6 : AF_INET, a, ip, sizeof(ip));
	snprintf(t->spec, sizeof(t->spec), "%s[%s]:%d", s->name, ip, port);
}

/* Every answer is in: the targets in order, or why there are none. */
static void
mx_finish(struct mxlookup *l)
{
	struct mx_target *t = calloc(MX_MAX_TARGETS, sizeof(*t));
	struct mx_result res;
	size_t i, k, n = 0;
	int temp = 0;
	const char *why = NULL;

	if (t == NULL) {
		mx_fail(l, MX_TEMP, 0, "local error: out of memory");
		return;
	}
	for (i = 0; i < l->nslots && n < MX_MAX_TARGETS; i++) {
		struct mx_slot *s = &l->slots[i];

		if (s->naddr[0] + s->naddr[1] == 0) {
			temp |= s->temp;
			if (s->temp)
				why = dns_status_name(mx_temporary(s->status[0]) ?
				    s->status[0] : s->status[1]);
			log_debug("mx domain=%s host=%s pref=%u skipped: no address",
			    l->domain, s->name, s->pref);
			continue;
		}
		/* RFC 8305 4: both families, interleaved, IPv6 first. */
		for (k = 0; k < MX_MAX_TARGETS && n < MX_MAX_TARGETS; k++) {
			int v6;

			if (k >= s->naddr[0] && k >= s->naddr[1])
				break;
			for (v6 = 1; v6 >= 0 && n < MX_MAX_TARGETS; v6--) {
				if (k >= s->naddr[v6 ? 0 : 1])
					continue;
				mx_target_fill(&t[n], s, v6,
				    s->addr[v6 ? 0 : 1][k], l->port);
				if (!mx_seen(t, n, &t[n]))
					n++;
			}
		}
	}
	if (n > 0) {
		memset(&res, 0, sizeof(res));
		res.status = MX_OK;
		res.targets = t;
		res.ntargets = n;
		mx_done(l, &res);
	} else if (temp)
		mx_fail(l, MX_TEMP, 0, "address lookup for %s of %s failed: %s",
		    l->implicit ? "the implicit MX" : "the MX hosts", l->domain,
		    why ? why : "temporary failure");
	else if (l->implicit)
		mx_fail(l, MX_PERM, 550, "550 5.4.4 Recipient domain %s has no "
		    "MX and no address record", l->domain);
	else
		mx_fail(l, MX_PERM, 550, "550 5.4.4 No MX host of %s has an "
		    "address", l->domain);
	free(t);
}

static void
mx_on_addr(const struct dns_answer *a, void *arg)
{
	struct mx_ask *ask = arg;
	struct mx_slot *s = ask->slot;
	struct mxlookup *l = s->l;
	int fi = ask->v6 ? 0 : 1;
	size_t i, alen = ask->v6 ? 16 : 4;

	ask->q = NULL;
	s->status[fi] = a->status;
	if (a->status == DNS_OK) {
		for (i = 0; i < a->n && s->naddr[fi] < MX_MAX_TARGETS; i++)
			if (a->rr[i].family == (ask->v6 ? AF_INET6 : AF_INET))
				memcpy(s->addr[fi][s->naddr[fi]++], a->rr[i].addr,
				    alen);
	} else if (mx_temporary(a->status))
		s->temp = 1;
	log_debug("mx domain=%s host=%s %s status=%s addresses=%zu", l->domain,
	    s->name, ask->v6 ? "AAAA" : "A", dns_status_name(a->status),
	    s->naddr[fi]);
	if (--l->pending == 0)
		mx_finish(l);
}

/* Ask AAAA and A for every slot; the answers come from the loop. */
static void
mx_resolve_slots(struct mxlookup *l)
{
	size_t i;
	int f;

	for (i = 0; i < l->nslots; i++)
		for (f = 0; f < 2; f++) {
			struct mx_ask *ask = &l->slots[i].ask[f];

			ask->slot = &l->slots[i];
			ask->v6 = f == 0;
			ask->q = dns_query(l->r, l->slots[i].name,
			    f == 0 ? DNS_T_AAAA : DNS_T_A, mx_on_addr, ask);
			if (ask->q == NULL) {
				l->slots[i].temp = 1;
				l->slots[i].status[f] = DNS_ERROR;
			} else
				l->pending++;
		}
	if (l->pending == 0)
		mx_fail(l, MX_TEMP, 0, "local error: out of memory");
}

static void
mx_on_mx(const struct dns_answer *a, void *arg)
{
	struct mxlookup *l = arg;
	size_t order[MX_MAX_HOSTS], i;
	int n;

	l->mxq = NULL;
	switch (a->status) {
	case DNS_OK:
		n = mx_order(a->rr, a->n, order, MX_MAX_HOSTS, NULL, NULL);
		if (n == -2) {
			mx_fail(l, MX_TEMP, 0, "local error: out of memory");
			return;
		}
		if (n == -1) {
			/* RFC 7505 4.2, RFC 7504 3 */
			mx_fail(l, MX_PERM, 556, "556 5.1.10 Recipient address "
			    "has null MX");
			return;
		}
		if (n == 0) {
			mx_fail(l, MX_PERM, 550, "550 5.4.4 No usable MX host "
			    "for %s", l->domain);
			return;
		}
		for (i = 0; i < (size_t)n; i++) {
			snprintf(l->slots[i].name, sizeof(l->slots[i].name), "%s",
			    a->rr[order[i]].text);
			l->slots[i].pref = a->rr[order[i]].pref;
			l->slots[i].l = l;
		}
		l->nslots = (size_t)n;
		break;
	case DNS_NODATA:
		/* RFC 5321 5.1: no MX, the domain is its own implicit MX. */
		l->implicit = 1;
		snprintf(l->slots[0].name, sizeof(l->slots[0].name), "%s",
		    l->domain);
		l->slots[0].pref = 0;
		l->slots[0].l = l;
		l->nslots = 1;
		break;
	case DNS_NXDOMAIN:
		mx_fail(l, MX_PERM, 550, "550 5.1.2 Recipient domain %s does not "
		    "exist", l->domain);
		return;
	default:
		mx_fail(l, MX_TEMP, 0, "MX lookup for %s failed: %s", l->domain,
		    dns_status_name(a->status));
		return;
	}
	mx_resolve_slots(l);
}

struct mxlookup *
mxlookup_start(struct dns_resolver *r, const char *domain, int port,
    mxlookup_cb cb, void *arg)
{
	struct mxlookup *l;
	size_t len = strlen(domain);

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->r = r;
	l->port = port;
	l->cb = cb;
	l->arg = arg;
	/* A name too long for the buffer is too long for DNS: lib/dns
	 * answers a truncated copy with DNS_ERROR just the same. */
	if (len > 0 && domain[len - 1] == '.')
		len--;
	snprintf(l->domain, sizeof(l->domain), "%.*s", (int)len, domain);
	if ((l->mxq = dns_query(r, l->domain, DNS_T_MX, mx_on_mx, l)) == NULL) {
		free(l);
		return NULL;
	}
	return l;
}
