/*
 * Listening sockets (IPv4 and IPv6, bound before privileges are dropped)
 * and admission: total and per-client-IP connection limits, checked
 * before any session state is allocated, in constant time whatever the
 * number of sessions open.
 */
#include <errno.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "gateway/gateway.h"
#include "lib/log.h"
#include "lib/metrics.h"

/*
 * Open connections per client address, for [limits] connections_per_ip:
 * a hash table, so that admission costs the same with 10 or 50,000
 * sessions open (walking every session on each accept cost about 100 us
 * with 5,000 open, all of it spent before a flood is refused). An entry
 * goes when its count drops to zero; the buckets double when entries
 * outnumber them and go with the last entry. The seed keeps clients from
 * choosing addresses that share a bucket.
 *
 * One table per process, like the connection list it mirrors (struct
 * gateway has no field for it). Counted when a connection is admitted,
 * released by listener_conn_closed when its session ends.
 */
struct listener_ip {
	struct listener_ip *next;	/* same bucket */
	uint32_t hash;
	size_t n;			/* open connections */
	char ip[64];
};

static struct listener_ip **ip_tab;
static size_t ip_buckets;		/* 0 or a power of two */
static size_t ip_entries;
static uint32_t ip_seed;

/* A flood of refused connections must not become a flood of log lines
 * (a disk filled at the rate of accept): at most REFUSE_LOG_BURST a
 * second, then one line a second later that counts the rest. The
 * metrics count every one. */
#define REFUSE_LOG_BURST 10
static struct event *refuse_ev;
static time_t refuse_second;
static unsigned refuse_logged;
static unsigned long refuse_quiet;
static char refuse_last[64];

static uint32_t
listener_ip_hash(const char *ip)
{
	uint32_t h = 2166136261U ^ ip_seed;	/* FNV-1a */

	for (; *ip != '\0'; ip++)
		h = (h ^ (unsigned char)*ip) * 16777619U;
	return h;
}

/* Where ip's entry is, or would go; NULL while the table is empty. */
static struct listener_ip **
listener_ip_slot(const char *ip, uint32_t h)
{
	struct listener_ip **pp;

	if (ip_buckets == 0)
		return NULL;
	for (pp = &ip_tab[h & (ip_buckets - 1)]; *pp != NULL;
	    pp = &(*pp)->next)
		if ((*pp)->hash == h && strcmp((*pp)->ip, ip) == 0)
			break;
	return pp;
}

static size_t
listener_ip_count(const char *ip)
{
	struct listener_ip **pp = listener_ip_slot(ip, listener_ip_hash(ip));

	return pp != NULL && *pp != NULL ? (*pp)->n : 0;
}

static int
listener_ip_grow(void)
{
	size_t n = ip_buckets ? ip_buckets * 2 : 64, i;
	struct listener_ip **t, *e, *next;

	if ((t = calloc(n, sizeof(*t))) == NULL)
		return -1;
	/* a new seed whenever the table starts empty */
	if (ip_buckets == 0 && getrandom(&ip_seed, sizeof(ip_seed),
	    GRND_NONBLOCK) != (ssize_t)sizeof(ip_seed))
		ip_seed = (uint32_t)(uintptr_t)t ^ (uint32_t)time(NULL);
	for (i = 0; i < ip_buckets; i++)
		for (e = ip_tab[i]; e != NULL; e = next) {
			next = e->next;
			e->next = t[e->hash & (n - 1)];
			t[e->hash & (n - 1)] = e;
		}
	free(ip_tab);
	ip_tab = t;
	ip_buckets = n;
	return 0;
}

/* One more connection from ip: 0, or -1 when out of memory. */
static int
listener_ip_add(const char *ip)
{
	struct listener_ip **pp, *e;
	uint32_t h;

	if (ip_entries >= ip_buckets && listener_ip_grow() == -1)
		return -1;
	h = listener_ip_hash(ip);
	pp = listener_ip_slot(ip, h);
	if (*pp != NULL) {
		(*pp)->n++;
		return 0;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return -1;
	e->hash = h;
	e->n = 1;
	snprintf(e->ip, sizeof(e->ip), "%s", ip);
	*pp = e;
	ip_entries++;
	return 0;
}

static void
listener_ip_release(const char *ip)
{
	struct listener_ip **pp, *e;

	pp = listener_ip_slot(ip, listener_ip_hash(ip));
	log_assert(pp != NULL && *pp != NULL);
	e = *pp;
	if (--e->n > 0)
		return;
	*pp = e->next;
	free(e);
	if (--ip_entries == 0) {
		free(ip_tab);
		ip_tab = NULL;
		ip_buckets = 0;
	}
}

void
listener_conn_closed(struct gateway *gw, const struct gw_conn *c)
{
	listener_ip_release(c->ip);
}

static void
listener_refuse_flush(evutil_socket_t fd, short what, void *arg)
{
	if (refuse_quiet > 0)
		log_warning("connection refused: %lu more not logged one by one "
		    "(last client=%s)", refuse_quiet, refuse_last);
	refuse_quiet = 0;
}

static void
listener_refuse(struct gateway *gw, int fd, const char *ip, const char *why)
{
	static const char msg[] = "421 4.7.0 Too many connections, try again later\r\n";
	struct timeval tv = { 1, 0 };
	time_t now = time(NULL);
	ssize_t r;

	if (now != refuse_second) {
		refuse_second = now;
		refuse_logged = 0;
	}
	if (refuse_logged < REFUSE_LOG_BURST) {
		refuse_logged++;
		log_warning("connection refused client=%s reason=%s", ip, why);
	} else {
		if (refuse_quiet++ == 0) {
			if (refuse_ev == NULL)
				refuse_ev = evtimer_new(gw->base,
				    listener_refuse_flush, NULL);
			if (refuse_ev != NULL)
				evtimer_add(refuse_ev, &tv);
		}
		snprintf(refuse_last, sizeof(refuse_last), "%s", ip);
	}
	/* Best effort on a fresh socket: the reply fits in its buffer. */
	r = send(fd, msg, sizeof(msg) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)r;
	close(fd);
}

static void
listener_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct gateway *gw = arg;
	enum config_profile profile = PROFILE_INBOUND;
	struct gw_conn *c;
	char ip[64];
	size_t i;

	if (getnameinfo(sa, (socklen_t)salen, ip, sizeof(ip), NULL, 0,
	    NI_NUMERICHOST) != 0)
		snprintf(ip, sizeof(ip), "unknown");
	if (gw->stopping) {
		close(fd);
		return;
	}
	if (gw->nconns >= (size_t)gw->cfg->max_conn) {
		metrics_inc("mxgate_connections_refused_total", "reason",
		    "limit_total");
		listener_refuse(gw, fd, ip, "connections");
		return;
	}
	if (listener_ip_count(ip) >= (size_t)gw->cfg->max_conn_per_ip) {
		metrics_inc("mxgate_connections_refused_total", "reason",
		    "limit_per_ip");
		listener_refuse(gw, fd, ip, "connections_per_ip");
		return;
	}
	if (listener_ip_add(ip) == -1) {
		close(fd);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		listener_ip_release(ip);
		close(fd);
		return;
	}
	c->gw = gw;
	snprintf(c->ip, sizeof(c->ip), "%s", ip);
	/* Listeners are opened in configuration order, and a reload cannot
	 * change them (daemon.c). */
	for (i = 0; i < gw->nlisteners; i++)
		if (gw->listeners[i] == l)
			profile = gw->cfg->listeners[i].profile;
	c->s = smtp_session_new(gw->base, fd, sa, (socklen_t)salen,
	    &gw->profile_cfg[profile], &inbound_hooks, gw);
	if (c->s == NULL) {
		listener_ip_release(ip);
		free(c);
		return;
	}
	smtp_session_set_udata(c->s, c);
	c->next = gw->conns;
	if (gw->conns)
		gw->conns->prev = c;
	gw->conns = c;
	gw->nconns++;
	metrics_inc("mxgate_connections_total");
}

static void
listener_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gateway *gw = arg;
	size_t i;

	if (gw->stopping)
		return;
	for (i = 0; i < gw->nlisteners; i++)
		evconnlistener_enable(gw->listeners[i]);
}

static void
listener_error_cb(struct evconnlistener *l, void *arg)
{
	struct gateway *gw = arg;
	struct timeval tv = { 1, 0 };
	int e = EVUTIL_SOCKET_ERROR();
	size_t i;

	/* EMFILE, ENFILE, ENOBUFS: the pending connection stays in the
	 * backlog and the socket stays readable. Pause accepting for a
	 * second instead of spinning; keep serving the sessions we have. */
	log_error("accept failed: %s; pausing new connections for 1s "
	    "(%zu open)", evutil_socket_error_to_string(e), gw->nconns);
	for (i = 0; i < gw->nlisteners; i++)
		evconnlistener_disable(gw->listeners[i]);
	if (gw->accept_pause == NULL)
		gw->accept_pause = evtimer_new(gw->base, listener_resume_cb, gw);
	if (gw->accept_pause == NULL || evtimer_add(gw->accept_pause, &tv) == -1)
		listener_resume_cb(-1, 0, gw);
}

static int
listener_bind(const struct config_listener *cl)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, on = 1;

	memset(&ss, 0, sizeof(ss));
	if (strchr(cl->address, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((unsigned short)cl->port);
		inet_pton(AF_INET6, cl->address, &s6->sin6_addr);
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((unsigned short)cl->port);
		inet_pton(AF_INET, cl->address, &s4->sin_addr);
		len = sizeof(*s4);
	}
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, (struct sockaddr *)&ss, len) == -1 || listen(fd, 511) == -1) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int
listener_open_all(struct gateway *gw)
{
	size_t i;

	gw->listeners = calloc(gw->cfg->nlisteners, sizeof(*gw->listeners));
	if (gw->listeners == NULL)
		return -1;
	for (i = 0; i < gw->cfg->nlisteners; i++) {
		const struct config_listener *cl = &gw->cfg->listeners[i];
		struct evconnlistener *l;
		int fd;

		if ((fd = listener_bind(cl)) == -1) {
			log_error("listener %s: cannot listen on %s port %d: %s",
			    cl->name, cl->address, cl->port, strerror(errno));
			return -1;
		}
		l = evconnlistener_new(gw->base, listener_accept_cb, gw,
		    LEV_OPT_CLOSE_ON_FREE, -1, fd);
		if (l == NULL) {
			close(fd);
			return -1;
		}
		evconnlistener_set_error_cb(l, listener_error_cb);
		gw->listeners[gw->nlisteners++] = l;
		log_info("listener %s: listening on %s port %d profile=%s",
		    cl->name, cl->address, cl->port,
		    cl->profile == PROFILE_SUBMISSION ? "submission" :
		    cl->profile == PROFILE_SUBMISSIONS ? "submissions" : "inbound");
	}
	return 0;
}

/*
 * What each profile offers. inbound: the MX (STARTTLS when configured, no
 * AUTH). submission (RFC 6409): STARTTLS, then AUTH, required before MAIL.
 * submissions (RFC 8314 3.3): the same, TLS from the first octet.
 */
void
listener_fill_profiles(struct gateway *gw)
{
	struct smtp_server_config *p = gw->profile_cfg;
	int users = gw->cfg->users_file != NULL && *gw->cfg->users_file;

	p[PROFILE_INBOUND] = gw->server_cfg;
	p[PROFILE_INBOUND].implicit_tls = 0;
	p[PROFILE_INBOUND].auth = 0;
	p[PROFILE_INBOUND].auth_required = 0;
	p[PROFILE_SUBMISSION] = p[PROFILE_INBOUND];
	p[PROFILE_SUBMISSION].auth = users;
	p[PROFILE_SUBMISSION].auth_required = 1;
	p[PROFILE_SUBMISSIONS] = p[PROFILE_SUBMISSION];
	p[PROFILE_SUBMISSIONS].implicit_tls = 1;
}

void
listener_close_all(struct gateway *gw)
{
	size_t i;

	if (gw->accept_pause) {
		event_free(gw->accept_pause);
		gw->accept_pause = NULL;
	}
	if (refuse_ev) {
		listener_refuse_flush(-1, 0, NULL);
		event_free(refuse_ev);
		refuse_ev = NULL;
	}
	for (i = 0; i < gw->nlisteners; i++)
		evconnlistener_free(gw->listeners[i]);
	free(gw->listeners);
	gw->listeners = NULL;
	gw->nlisteners = 0;
}

size_t
listener_shutdown_sessions(struct gateway *gw)
{
	struct gw_conn *c;
	size_t n = 0;

	for (c = gw->conns; c; c = c->next, n++)
		smtp_session_shutdown(c->s, "4.3.2 Service shutting down, try again later");
	return n;
}
