/*
 * gateway/auth: the on_auth hook of the submission listeners. Passwords
 * are checked against [submission] users (authdb) in worker threads;
 * failures are counted per client IP (IPv6: per /64) and slow the client
 * down: each 535 is delayed (1 s, 2 s, 4 s, then 8 s) and past
 * max_failures within failure_window the client gets 454 without a check.
 * Every attempt is logged (user name escaped, never the password).
 *
 * A reply that arrives after its session has gone is dropped: requests
 * find their session by pointer and session id in the open connections.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/event.h>

#include "gateway/authdb.h"
#include "gateway/gateway.h"
#include "lib/log.h"

#define GW_AUTH_BUCKETS 4096
#define GW_AUTH_MAX_IPS 10000	/* failure records kept; oldest go first */
#define GW_AUTH_THREADS 2
#define GW_AUTH_QUEUE 256	/* checks waiting for a worker */
#define GW_AUTH_DELAY_MAX 8	/* seconds */

struct gw_auth_ip {
	char key[64];
	int failures;
	int inflight;		/* checks not yet answered: count as failures */
	time_t window_start;
	time_t last;
	struct gw_auth_ip *next;
};

struct gw_auth_req {
	struct gw_auth *ga;
	struct smtp_session *s;
	char sid[24];
	char key[64];
	char ip[64];
	char user[256];
	const char *mech;
	struct authdb_check *check;
	struct event *timer;
	struct gw_auth_req *prev, *next;
};

struct gw_auth {
	struct gateway *gw;
	struct authdb_checker *ck;
	struct gw_auth_req *reqs;
	struct gw_auth_ip *buckets[GW_AUTH_BUCKETS];
	size_t nips;
};

/* The throttling key: the address, or its /64 for IPv6 (one subscriber). */
static void
auth_ip_key(const struct sockaddr *sa, const char *ip, char *out, size_t n)
{
	if (sa->sa_family == AF_INET6 &&
	    !IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)sa)->sin6_addr)) {
		struct in6_addr a = ((const struct sockaddr_in6 *)sa)->sin6_addr;
		char buf[INET6_ADDRSTRLEN];

		/* an IPv4-mapped client keeps its own address below */
		memset(&a.s6_addr[8], 0, 8);
		if (inet_ntop(AF_INET6, &a, buf, sizeof(buf))) {
			snprintf(out, n, "%s/64", buf);
			return;
		}
	}
	snprintf(out, n, "%s", ip);
}

static unsigned
auth_hash(const char *k)
{
	unsigned h = 2166136261u;

	while (*k)
		h = (h ^ (unsigned char)*k++) * 16777619u;
	return h % GW_AUTH_BUCKETS;
}

static struct gw_auth_ip *
auth_ip_find(struct gw_auth *ga, const char *key)
{
	struct gw_auth_ip *e;

	for (e = ga->buckets[auth_hash(key)]; e; e = e->next)
		if (strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

static void
auth_ip_remove(struct gw_auth *ga, struct gw_auth_ip *victim)
{
	struct gw_auth_ip **pp = &ga->buckets[auth_hash(victim->key)];

	while (*pp && *pp != victim)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = victim->next;
		free(victim);
		ga->nips--;
	}
}

/* Make room: drop records whose window has passed, else the oldest. */
static void
auth_ip_evict(struct gw_auth *ga, time_t now)
{
	struct gw_auth_ip *e, *next, *oldest = NULL;
	int window = ga->gw->cfg->auth_failure_window;
	size_t i;

	for (i = 0; i < GW_AUTH_BUCKETS; i++)
		for (e = ga->buckets[i]; e; e = next) {
			next = e->next;
			if (e->inflight > 0)
				continue;
			if (now - e->window_start >= window)
				auth_ip_remove(ga, e);
			else if (oldest == NULL || e->last < oldest->last)
				oldest = e;
		}
	if (ga->nips >= GW_AUTH_MAX_IPS && oldest)
		auth_ip_remove(ga, oldest);
}

static struct gw_auth_ip *
auth_ip_get(struct gw_auth *ga, const char *key, time_t now)
{
	struct gw_auth_ip *e = auth_ip_find(ga, key);
	unsigned h;

	if (e == NULL) {
		if (ga->nips >= GW_AUTH_MAX_IPS)
			auth_ip_evict(ga, now);
		if ((e = calloc(1, sizeof(*e))) == NULL)
			return NULL;
		snprintf(e->key, sizeof(e->key), "%s", key);
		e->window_start = e->last = now;
		h = auth_hash(key);
		e->next = ga->buckets[h];
		ga->buckets[h] = e;
		ga->nips++;
	}
	if (now - e->window_start >= ga->gw->cfg->auth_failure_window) {
		e->failures = 0;
		e->window_start = now;
	}
	return e;
}

static struct gw_auth *
auth_get(struct gateway *gw)
{
	struct gw_auth *ga = gw->auth;

	if (ga == NULL) {
		if ((ga = calloc(1, sizeof(*ga))) == NULL)
			return NULL;
		ga->gw = gw;
		gw->auth = ga;
	}
	if (ga->ck == NULL)
		ga->ck = authdb_checker_new(gw->base, GW_AUTH_THREADS, GW_AUTH_QUEUE);
	return ga->ck ? ga : NULL;
}

static void
auth_req_free(struct gw_auth_req *r)
{
	struct gw_auth *ga = r->ga;

	if (r->check)
		authdb_check_cancel(r->check);
	if (r->timer)
		event_free(r->timer);
	if (r->prev)
		r->prev->next = r->next;
	else
		ga->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	explicit_bzero(r->user, sizeof(r->user));
	free(r);
}

/* The request's session if it is still open. */
static struct smtp_session *
auth_session(struct gw_auth_req *r)
{
	struct gw_conn *c;

	for (c = r->ga->gw->conns; c; c = c->next)
		if (c->s == r->s && strcmp(smtp_session_id(c->s), r->sid) == 0)
			return c->s;
	return NULL;
}

static void
auth_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gw_auth_req *r = arg;
	struct smtp_session *s = auth_session(r);

	/* RFC 4954 6 */
	if (s)
		smtp_session_reply(s, 535, "5.7.8 Authentication credentials invalid");
	auth_req_free(r);
}

static void
auth_result_cb(int result, void *arg)
{
	struct gw_auth_req *r = arg;
	struct gw_auth *ga = r->ga;
	const struct config *cfg = ga->gw->cfg;
	struct smtp_session *s = auth_session(r);
	time_t now = time(NULL);
	struct gw_auth_ip *e;
	struct timeval tv = { 0, 0 };
	int f;

	r->check = NULL;
	if ((e = auth_ip_find(ga, r->key)) != NULL && e->inflight > 0)
		e->inflight--;
	if (result == 1) {
		log_info("session=%s client=%s auth mech=%s user=%s result=ok",
		    r->sid, r->ip, r->mech, log_safe(r->user));
		if (s)
			smtp_session_auth_ok(s);
		auth_req_free(r);
		return;
	}
	if (result == -1) {
		log_error("session=%s client=%s auth mech=%s user=%s result=error",
		    r->sid, r->ip, r->mech, log_safe(r->user));
		if (s)
			smtp_session_reply(s, 454, "4.7.0 Temporary authentication failure");
		auth_req_free(r);
		return;
	}
	if ((e = auth_ip_get(ga, r->key, now)) != NULL) {
		e->failures++;
		e->last = now;
		f = e->failures;
	} else
		f = 1;
	/* 1 s, 2 s, 4 s, then 8 s per failure within the window */
	tv.tv_sec = f >= 4 ? GW_AUTH_DELAY_MAX : 1L << (f - 1);
	log_info("session=%s client=%s auth mech=%s user=%s result=fail "
	    "failures=%d delay=%lds", r->sid, r->ip, r->mech, log_safe(r->user),
	    f, (long)tv.tv_sec);
	if (f == cfg->auth_max_failures)
		log_warning("client=%s reached %d failed authentication attempts: "
		    "AUTH refused for up to %ds", r->key, f, cfg->auth_failure_window);
	if (s == NULL || (r->timer = evtimer_new(ga->gw->base, auth_delay_cb,
	    r)) == NULL || evtimer_add(r->timer, &tv) == -1) {
		if (s)
			smtp_session_reply(s, 535, "5.7.8 Authentication credentials invalid");
		auth_req_free(r);
	}
}

void
gw_auth_hook(struct smtp_session *s, const char *mech, const char *user,
    const char *pass, void *arg)
{
	struct gateway *gw = arg;
	const struct config *cfg = gw->cfg;
	struct gw_auth *ga;
	struct gw_auth_req *r;
	struct gw_auth_ip *e;
	char key[64];
	time_t now = time(NULL);

	auth_ip_key(smtp_session_client_addr(s), smtp_session_client_ip(s), key,
	    sizeof(key));
	if (cfg->authdb == NULL || (ga = auth_get(gw)) == NULL ||
	    (e = auth_ip_get(ga, key, now)) == NULL) {
		log_error("session=%s client=%s auth mech=%s user=%s result=error "
		    "(no users file or no memory)", smtp_session_id(s),
		    smtp_session_client_ip(s), mech, log_safe(user));
		smtp_session_reply(s, 454, "4.7.0 Temporary authentication failure");
		return;
	}
	if (e->failures + e->inflight >= cfg->auth_max_failures) {
		log_warning("session=%s client=%s auth mech=%s user=%s "
		    "result=throttled failures=%d", smtp_session_id(s),
		    smtp_session_client_ip(s), mech, log_safe(user), e->failures);
		smtp_session_reply(s, 454, "4.7.0 Too many failed authentication "
		    "attempts, try again later");
		return;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		smtp_session_reply(s, 454, "4.7.0 Temporary authentication failure");
		return;
	}
	r->ga = ga;
	r->s = s;
	r->mech = strcmp(mech, "PLAIN") == 0 ? "PLAIN" : "LOGIN";
	snprintf(r->sid, sizeof(r->sid), "%s", smtp_session_id(s));
	snprintf(r->key, sizeof(r->key), "%s", key);
	snprintf(r->ip, sizeof(r->ip), "%s", smtp_session_client_ip(s));
	snprintf(r->user, sizeof(r->user), "%s", user);
	r->next = ga->reqs;
	if (ga->reqs)
		ga->reqs->prev = r;
	ga->reqs = r;
	if ((r->check = authdb_check_start(ga->ck, cfg->authdb, user, pass,
	    auth_result_cb, r)) == NULL) {
		log_warning("session=%s client=%s auth mech=%s user=%s "
		    "result=busy (password checks queue full)", r->sid, r->ip,
		    r->mech, log_safe(user));
		auth_req_free(r);
		smtp_session_reply(s, 454, "4.7.0 Temporary authentication failure");
		return;
	}
	e->inflight++;
}

/* The users file names the From domains each user may send as. */
int
gw_auth_may_send_as(struct gateway *gw, const char *user, const char *domain)
{
	if (user == NULL || domain == NULL || gw->cfg->authdb == NULL)
		return 0;
	return authdb_may_send(gw->cfg->authdb, user, domain);
}

void
gw_auth_free(struct gateway *gw)
{
	struct gw_auth *ga = gw->auth;
	struct gw_auth_ip *e, *next;
	size_t i;

	if (ga == NULL)
		return;
	/* Workers first: no result can arrive for a freed request. */
	authdb_checker_free(ga->ck);
	ga->ck = NULL;
	while (ga->reqs) {
		ga->reqs->check = NULL;		/* freed with the checker */
		auth_req_free(ga->reqs);
	}
	for (i = 0; i < GW_AUTH_BUCKETS; i++)
		for (e = ga->buckets[i]; e; e = next) {
			next = e->next;
			free(e);
		}
	free(ga);
	gw->auth = NULL;
}
