/*
 * lib/dns against tests/tools/dnsserver.py over real UDP and TCP on
 * loopback: record types, negative answers, failures, TCP retry on
 * truncation, CNAMEs, the cache (hits, negative entries, expiry,
 * eviction), cancellation and freeing with queries in flight. The
 * server's query log tells which questions reached it and how.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <event2/event.h>

#include "lib/dns.h"
#include "lib/dns_cache.h"
#include "lib/log.h"

#define PYTHON		"/usr/bin/python3"
#define SERVER		"tests/tools/dnsserver.py"
#define WAIT_MS		5000
#define NEG_TTL		60

static const char zone[] =
"{\n"
"\"a.test\": [{\"type\": \"A\", \"value\": \"192.0.2.1\", \"ttl\": 300},\n"
"    {\"type\": \"A\", \"value\": \"192.0.2.2\", \"ttl\": 200}],\n"
"\"aaaa.test\": [{\"type\": \"AAAA\", \"value\": \"2001:db8::1\"}],\n"
"\"mx.test\": [{\"type\": \"MX\", \"pref\": 10, \"value\": \"mx1.test\"},\n"
"    {\"type\": \"MX\", \"pref\": 20, \"value\": \"mx2.test\", \"ttl\": 100}],\n"
"\"txt.test\": [{\"type\": \"TXT\", \"value\": [\"v=spf1 \", "
"\"include:a.test\", \" -all\"]}],\n"
"\"txts.test\": [{\"type\": \"TXT\", \"value\": \"one\"},\n"
"    {\"type\": \"TXT\", \"value\": [\"tw\", \"o\"]},\n"
"    {\"type\": \"TXT\", \"value\": \"three\"}],\n"
"\"1.2.0.192.in-addr.arpa\": [{\"type\": \"PTR\", \"value\": \"host.test\"}],\n"
"\"2.2.0.192.in-addr.arpa\": [{\"type\": \"PTR\", \"value\": \"h1.test\"},\n"
"    {\"type\": \"PTR\", \"value\": \"h2.test\"}],\n"
"\"big.test\": [{\"type\": \"TXT\", \"value\": \"complete over tcp\", "
"\"truncate\": true}],\n"
"\"alias.test\": [{\"type\": \"CNAME\", \"value\": \"alias2.test\"}],\n"
"\"alias2.test\": [{\"type\": \"CNAME\", \"value\": \"a.test\"}],\n"
"\"short.test\": [{\"type\": \"A\", \"value\": \"192.0.2.9\", \"ttl\": 1}],\n"
"\"empty.test\": [],\n"
"\"c1.test\": [{\"type\": \"A\", \"value\": \"192.0.2.11\"}],\n"
"\"c2.test\": [{\"type\": \"A\", \"value\": \"192.0.2.12\"}],\n"
"\"c3.test\": [{\"type\": \"A\", \"value\": \"192.0.2.13\"}],\n"
"\"huge.test\": [\n";

static struct {
	int ok;				/* server running */
	int broken;			/* python3 there, server not */
	pid_t pid;
	int port;
	char dir[64];
	char zonefile[128];
	char logfile[128];
	char server[64];
} srv;

struct result {
	int calls;
	int in_query;			/* a callback ran inside dns_query() */
	struct dns_answer *a;		/* copy of the last answer */
	struct dns_resolver *free_r;	/* free this resolver when called */
};

struct t {
	struct event_base *base;
	struct dns_resolver *r;
};

static int inside_query;

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the server ---- */

static int
write_zone(const char *path)
{
	FILE *f = fopen(path, "w");
	int i;

	if (f == NULL)
		return -1;
	fputs(zone, f);
	/* ten 100-octet TXT records: over 512 octets, so TC on UDP */
	for (i = 0; i < 10; i++)
		fprintf(f, "  {\"type\": \"TXT\", \"value\": \"%02d%098d\"}%s\n",
		    i, 0, i < 9 ? "," : "");
	fputs("]}\n", f);
	return fclose(f);
}

static int
server_start(void)
{
	int fds[2];
	char line[64];
	size_t n = 0;
	struct pollfd pfd;
	uint64_t end;
	ssize_t got;

	if (access(PYTHON, X_OK) == -1 || access(SERVER, R_OK) == -1) {
		printf("test_dns: skip: %s or %s not available (run from the "
		    "repository root)\n", PYTHON, SERVER);
		return 0;
	}
	snprintf(srv.dir, sizeof(srv.dir), "/tmp/mxgate-dns.XXXXXX");
	if (mkdtemp(srv.dir) == NULL)
		return -1;
	snprintf(srv.zonefile, sizeof(srv.zonefile), "%s/zone.json", srv.dir);
	snprintf(srv.logfile, sizeof(srv.logfile), "%s/queries.log", srv.dir);
	if (write_zone(srv.zonefile) == -1 || pipe(fds) == -1)
		return -1;
	if ((srv.pid = fork()) == -1)
		return -1;
	if (srv.pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execl(PYTHON, "python3", SERVER, "--zone", srv.zonefile,
		    "--port", "0", "--log", srv.logfile, "--neg-ttl", "60",
		    (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	pfd.fd = fds[0];
	pfd.events = POLLIN;
	end = now_ms() + 10000;
	while (n < sizeof(line) - 1 && memchr(line, '\n', n) == NULL) {
		if (now_ms() >= end || poll(&pfd, 1, 100) == -1)
			break;
		if ((pfd.revents & (POLLIN | POLLHUP)) == 0)
			continue;
		if ((got = read(fds[0], line + n, sizeof(line) - 1 - n)) <= 0)
			break;
		n += (size_t)got;
	}
	close(fds[0]);
	line[n] = '\0';
	if (sscanf(line, "LISTENING %d", &srv.port) != 1) {
		printf("test_dns: the DNS server did not start: %s\n", line);
		srv.broken = 1;
		return -1;
	}
	snprintf(srv.server, sizeof(srv.server), "127.0.0.1:%d", srv.port);
	srv.ok = 1;
	return 0;
}

static int
group_setup(void **state)
{
	if (server_start() == -1 && srv.pid > 0) {
		kill(srv.pid, SIGKILL);
		waitpid(srv.pid, NULL, 0);
		srv.pid = 0;
	}
	return 0;
}

static int
group_teardown(void **state)
{
	uint64_t end = now_ms() + 3000;

	if (srv.pid > 0) {
		kill(srv.pid, SIGTERM);
		while (waitpid(srv.pid, NULL, WNOHANG) == 0) {
			if (now_ms() >= end) {
				kill(srv.pid, SIGKILL);
				waitpid(srv.pid, NULL, 0);
				break;
			}
			usleep(10000);
		}
	}
	if (srv.dir[0] != '\0') {
		unlink(srv.zonefile);
		unlink(srv.logfile);
		rmdir(srv.dir);
	}
	return 0;
}

/* Queries the server saw for (name, type, transport), from its log. */
static int
count_queries(const char *name, const char *type, const char *transport)
{
	char want_n[300], want_t[32], want_p[32], line[512];
	FILE *f;
	int n = 0;

	snprintf(want_n, sizeof(want_n), "\"name\":\"%s\"", name);
	snprintf(want_t, sizeof(want_t), "\"type\":\"%s\"", type);
	snprintf(want_p, sizeof(want_p), "\"transport\":\"%s\"", transport);
	if ((f = fopen(srv.logfile, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, want_n) && strstr(line, want_t) &&
		    strstr(line, want_p))
			n++;
	fclose(f);
	return n;
}

/* ---- the loop ---- */

static void
on_answer(const struct dns_answer *a, void *arg)
{
	struct result *res = arg;

	res->calls++;
	res->in_query |= inside_query;
	dns_answer_free(res->a);
	res->a = dns_answer_dup(a);
	if (res->free_r != NULL) {
		dns_resolver_free(res->free_r);
		res->free_r = NULL;
	}
}

static struct dns_query *
query(struct t *t, const char *name, enum dns_type type, struct result *res)
{
	struct dns_query *q;

	inside_query = 1;
	q = dns_query(t->r, name, type, on_answer, res);
	inside_query = 0;
	assert_non_null(q);
	return q;
}

static void
run_for(struct t *t, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(t->base, &tv);
	event_base_dispatch(t->base);
}

/* Runs the loop until res has been called back, at most WAIT_MS. */
static void
wait_answer(struct t *t, struct result *res)
{
	uint64_t end = now_ms() + WAIT_MS;

	while (res->calls == 0 && now_ms() < end)
		run_for(t, 10);
	assert_int_equal(res->calls, 1);
	assert_int_equal(res->in_query, 0);
	assert_non_null(res->a);
}

static void
result_clear(struct result *res)
{
	dns_answer_free(res->a);
	memset(res, 0, sizeof(*res));
}

static struct dns_resolver *
resolver(struct t *t, int timeout_ms, int tries, size_t cache)
{
	const char *servers[1] = { srv.server };
	struct dns_config cfg = {
		.servers = servers,
		.nservers = 1,
		.timeout_ms = timeout_ms,
		.tries = tries,
		.cache_entries = cache,
	};
	char err[256] = "";
	struct dns_resolver *r;

	r = dns_resolver_new(t->base, &cfg, err, sizeof(err));
	if (r == NULL)
		fail_msg("dns_resolver_new: %s", err);
	return r;
}

static int
setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));

	*state = t;
	if (t == NULL || (t->base = event_base_new()) == NULL)
		return -1;
	if (srv.ok) {
		if (truncate(srv.logfile, 0) == -1)
			return -1;
		t->r = resolver(t, 1000, 2, 100);
	}
	return 0;
}

static int
teardown(void **state)
{
	struct t *t = *state;

	dns_resolver_free(t->r);
	if (t->base != NULL)
		event_base_free(t->base);
	free(t);
	return 0;
}

#define NEED_SERVER() do {						\
	if (srv.broken)							\
		fail_msg("%s did not start", SERVER);			\
	if (!srv.ok)							\
		skip();							\
} while (0)

/* Looks up name/type and checks the status; the answer stays in res. */
static void
lookup(struct t *t, const char *name, enum dns_type type,
    enum dns_status want, struct result *res)
{
	query(t, name, type, res);
	assert_int_equal(res->calls, 0);
	wait_answer(t, res);
	if (res->a->status != want)
		fail_msg("%s/%s: %s, expected %s", name, dns_type_name(type),
		    dns_status_name(res->a->status), dns_status_name(want));
	assert_int_equal(res->a->type, type);
	assert_string_equal(res->a->name, name);
}

static void
assert_addr4(const struct dns_rr *rr, const char *want)
{
	char s[INET_ADDRSTRLEN];

	assert_int_equal(rr->family, AF_INET);
	assert_non_null(inet_ntop(AF_INET, rr->addr, s, sizeof(s)));
	assert_string_equal(s, want);
}

/* ---- record types ---- */

static void
test_a(void **state)
{
	struct t *t = *state;
	struct result res = { 0 };

	NEED_SERVER();
	lookup(t, "a.test", DNS_T_A, DNS_OK, &res);
	assert_int_equal(res.a->n, 2);
	assert_addr4(&res.a->rr[0], "192.0.2.1");
	assert_addr4(&res.a->rr[1], "192.0.2.2");
	assert_int_equal(res.a->ttl, 200);
	result_clear(&res);
}

static void
test_aaaa(void **state)
{
	struct t *t = *state;
	struct result res = { 0 };
	char s[INET6_ADDRSTRLEN];

	NEED_SERVER();
	lookup(t, "aaaa.test", DNS_T_AAAA, DNS_OK, &res);
	assert_int_equal(res.a->n, 1);
	assert_int_equal(res.a->rr[0].family, AF_INET6);
	inet_ntop(AF_INET6, res.a->rr[0].addr, s, sizeof(s));
	assert_string_equal(s, "2001:db8::1");
	assert_int_equal(res.a->ttl, 300);
	result_clear(&res);
}

static void
test_mx(void **state)
{
	struct t *t = *state;
	struct result res = { 0 };
	size_t i;
	int seen = 0;

	NEED_SERVER();
	lookup(t, "mx.test", DNS_T_MX, DNS_OK, &res);
	assert_int_equal(res.a->n, 2);
	for (i = 0; i < 2; i++) {
		if (res.a->rr[i].pref == 10) {
			assert_string_equal(res.a->rr[i].text, "mx1.test");
			seen |= 1;
		} else {
			assert_int_equal(res.a->rr[i].pref, 20);
			assert_string_equal(res.a->rr[i].text, "mx2.test");
			seen |= 2;
		}
		assert_int_equal(res.a->rr[i].len, 8);
	}
	assert_int_equal(seen, 3);
	assert_int_equal(res.a->ttl, 100);	/* parsed from the message */
	result_clear(&res);
}

static void
test_txt_strings_joined(void **state)
{
	struct t *t = *state;
	struct result res = { 0 };
	const char *want = "v=spf1 include:a.test -all";

	NEED_SERVER();
	lookup(t, "txt.test", DNS_T_TXT, DNS_OK, &res);
	assert_int_equal(res.a->n, 1);
	assert_string_equal(res.a->rr[0].text, want);
	assert_int_equal(res.a->rr[0].len, strlen(want));
	assert_int_equal(res.a->ttl, 300);
	result_clear(&res);
}

static void
test_txt_several_records(void **state)
{
	struct t *t = *state;
	struct result res = { 0 };

	NEED_SERVER();
	lookup(t, "txts.test", DNS_T_TXT, DNS_OK, &res);
	assert_int_equal(res.a->n, 3);
	assert_string_equal(res.a->rr[0].text, "one");
	assert_string_equal(res.a->rr[1].text, "two");
	assert_string_equal(res.a->rr[2].text, "three");
	result_clear(&res);
}

static void
test_ptr(void **state)
{
	struct t *t = *state;
	struct result res = { 0 };

	NEED_SERVER();
	lookup(t, "1.2.0.192.in-addr.arpa", DNS_T_PTR, DNS_OK, &res);
	assert_int_equal(res.a->n, 1);
	assert_string_equal(res.a->rr[0].text, "host.test");
	result_clear(&res);

	lookup(t, "2.2.0.192.in-addr.arpa", DNS_T_PTR, DNS_OK, &res);
	assert_int_equal(res.a->n, 2);
	assert_string_equal(res.a->rr[0].text, "h1.test");
	assert_string_equal(res.a->rr[1].text, "h2.test");
	result_clear(&res);
}

static void
test_cname_followed(void **state)
{
	struct t *t = *state;
	struct result res = { 0 };

	NEED_SERVER();
	lookup(t, "alias.test", DNS_T_A, DNS_OK, &res);
	assert_int_equal(res.a->n, 2);
	assert_addr4(&res.a->rr[0], "192.0.2.1");
	assert_addr4(&res.a->rr[1], "192.0.2.2");
	result_clear(&res);

	/* the final name has no record of the type */
	lookup(t, "alias.test", DNS_T_TXT, DNS_NODATA, &res);
	result_clear(&res);
}

/* ---- negative answers and failures ---- */

static void
test_nodata_nxdomain(void **state)
{
	struct t *t = *state;
	struct result res = { 0 };

	NEED_SERVER();
	lookup(t, "empty.test", DNS_T_A, DNS_NODATA, &res);
	assert_int_equal(res.a->n, 0);
	assert_int_equal(res.a->ttl, NEG_TTL);
	result_clear(&res);
	lookup(t, "a.test", DNS_T_MX, DNS_NODATA, &res);
	result_clear(&res);
	lookup(t, "nx.test", DNS_T_A, DNS_NXDOMAIN, &res);
	assert_int_equal(res.a->n, 0);
	assert_int_equal(res.a->ttl, NEG_TTL);
	result_clear(&res);
	lookup(t, "deeper.nx.test", DNS_T_TXT, DNS_NXDOMAIN, &res);
	result_clear(&res);
}

static void
test_servfail_refused(void **state)
{
	struct t *t = *state;
	struct result res = { 0 };
	int n;

	NEED_SERVER();
	lookup(t, "servfail.test", DNS_T_A, DNS_SERVFAIL, &res);
	result_clear(&res);
	lookup(t, "refused.test", DNS_T_TXT, DNS_SERVFAIL, &res);
	result_clear(&res);

	/* not cached: asked again */
	n = count_queries("servfail.test", "A", "udp");
	assert_true(n >= 1);
	lookup(t, "servfail.test", DNS_T_A, DNS_SERVFAIL, &res);
	assert_true(count_queries("servfail.test", "A", "udp") > n);
	result_clear(&res);
}

static void
test_timeout(void **state)
{
	struct t *t = *state;
	struct result res = { 0 };

	NEED_SERVER();
	dns_resolver_free(t->r);
	t->r = resolver(t, 200, 1, 100);
	lookup(t, "x.timeout", DNS_T_A, DNS_TIMEOUT, &res);
	assert_int_equal(count_queries("x.timeout", "A", "udp"), 1);
	result_clear(&res);

	/* not cached */
	lookup(t, "x.timeout", DNS_T_A, DNS_TIMEOUT, &res);
	assert_int_equal(count_queries("x.timeout", "A", "udp"), 2);
	result_clear(&res);
}

/* RFC 1035 4.2.1: a truncated UDP answer is asked again over TCP. */
static void
test_tcp_retry_on_truncation(void **state)
{
	struct t *t = *state;
	struct result res = { 0 };
	char want[101];
	size_t i;

	NEED_SERVER();
	lookup(t, "big.test", DNS_T_TXT, DNS_OK, &res);
	assert_int_equal(res.a->n, 1);
	assert_string_equal(res.a->rr[0].text, "complete over tcp");
	assert_int_equal(count_queries("big.test", "TXT", "udp"), 1);
	assert_int_equal(count_queries("big.test", "TXT", "tcp"), 1);
	result_clear(&res);

	/* an answer over 512 octets */
	lookup(t, "huge.test", DNS_T_TXT, DNS_OK, &res);
	assert_int_equal(res.a->n, 10);
	for (i = 0; i < 10; i++) {
		snprintf(want, sizeof(want), "%02zu%098d", i, 0);
		assert_string_equal(res.a->rr[i].text, want);
		assert_int_equal(res.a->rr[i].len, 100);
	}
	assert_int_equal(count_queries("huge.test", "TXT", "udp"), 1);
	assert_int_equal(count_queries("huge.test", "TXT", "tcp"), 1);
	result_clear(&res);
}

/* ---- the cache ---- */

static void
test_cache_hit(void **state)
{
	struct t *t = *state;
	struct result res = { 0 };

	NEED_SERVER();
	lookup(t, "a.test", DNS_T_A, DNS_OK, &res);
	result_clear(&res);
	assert_int_equal(count_queries("a.test", "A", "udp"), 1);

	/* from the cache, still from the loop, named as asked */
	lookup(t, "A.Test.", DNS_T_A, DNS_OK, &res);
	assert_int_equal(res.a->n, 2);
	assert_addr4(&res.a->rr[0], "192.0.2.1");
	assert_true(res.a->ttl > 0 && res.a->ttl <= 200);
	result_clear(&res);
	assert_int_equal(count_queries("a.test", "A", "udp"), 1);

	/* another type is another key */
	lookup(t, "a.test", DNS_T_AAAA, DNS_NODATA, &res);
	result_clear(&res);
	assert_int_equal(count_queries("a.test", "AAAA", "udp"), 1);
}

static void
test_negative_cache(void **state)
{
	struct t *t = *state;
	struct result res = { 0 };
	int i;

	NEED_SERVER();
	for (i = 0; i < 3; i++) {
		lookup(t, "nx2.test", DNS_T_A, DNS_NXDOMAIN, &res);
		assert_true(res.a->ttl > 0 && res.a->ttl <= NEG_TTL);
		result_clear(&res);
		lookup(t, "empty.test", DNS_T_TXT, DNS_NODATA, &res);
		result_clear(&res);
	}
	assert_int_equal(count_queries("nx2.test", "A", "udp"), 1);
	assert_int_equal(count_queries("empty.test", "TXT", "udp"), 1);
}

static void
test_ttl_expiry(void **state)
{
	struct t *t = *state;
	struct result res = { 0 };

	NEED_SERVER();
	lookup(t, "short.test", DNS_T_A, DNS_OK, &res);
	assert_int_equal(res.a->ttl, 1);
	result_clear(&res);
	lookup(t, "short.test", DNS_T_A, DNS_OK, &res);
	result_clear(&res);
	assert_int_equal(count_queries("short.test", "A", "udp"), 1);

	run_for(t, 1100);
	lookup(t, "short.test", DNS_T_A, DNS_OK, &res);
	assert_addr4(&res.a->rr[0], "192.0.2.9");
	result_clear(&res);
	assert_int_equal(count_queries("short.test", "A", "udp"), 2);
}

static void
test_cache_disabled(void **state)
{
	struct t *t = *state;
	struct result res = { 0 };

	NEED_SERVER();
	dns_resolver_free(t->r);
	t->r = resolver(t, 1000, 2, 0);
	lookup(t, "c1.test", DNS_T_A, DNS_OK, &res);
	result_clear(&res);
	lookup(t, "c1.test", DNS_T_A, DNS_OK, &res);
	result_clear(&res);
	assert_int_equal(count_queries("c1.test", "A", "udp"), 2);
}

static void
test_cache_eviction(void **state)
{
	struct t *t = *state;
	struct result res = { 0 };

	NEED_SERVER();
	dns_resolver_free(t->r);
	t->r = resolver(t, 1000, 2, 2);
	lookup(t, "c1.test", DNS_T_A, DNS_OK, &res);
	result_clear(&res);
	lookup(t, "c2.test", DNS_T_A, DNS_OK, &res);
	result_clear(&res);
	lookup(t, "c1.test", DNS_T_A, DNS_OK, &res);	/* c1 used: c2 oldest */
	result_clear(&res);
	lookup(t, "c3.test", DNS_T_A, DNS_OK, &res);	/* evicts c2 */
	result_clear(&res);
	lookup(t, "c1.test", DNS_T_A, DNS_OK, &res);
	result_clear(&res);
	lookup(t, "c2.test", DNS_T_A, DNS_OK, &res);
	result_clear(&res);
	assert_int_equal(count_queries("c1.test", "A", "udp"), 1);
	assert_int_equal(count_queries("c2.test", "A", "udp"), 2);
	assert_int_equal(count_queries("c3.test", "A", "udp"), 1);
}

/* The cache alone: expiry, LRU bound, replacement, copies. */
static void
test_cache_unit(void **state)
{
	struct dns_cache *c = dns_cache_new(2);
	struct dns_rr rr = { .text = "x", .len = 1 };
	struct dns_answer a = { .status = DNS_OK, .type = DNS_T_TXT,
	    .name = "k1", .rr = &rr, .n = 1, .ttl = 50 }, *g;

	assert_non_null(c);
	assert_int_equal(dns_cache_put(c, "k1", &a, 10, 1000), 0);
	assert_int_equal(dns_cache_put(c, "k2", &a, 0, 1000), 0);
	assert_int_equal(dns_cache_count(c), 1);
	g = dns_cache_get(c, "k1", DNS_T_TXT, "K1.", 5500);
	assert_non_null(g);
	assert_string_equal(g->name, "K1.");
	assert_string_equal(g->rr[0].text, "x");
	assert_int_equal(g->ttl, 6);		/* 5.5 s left, rounded up */
	dns_answer_free(g);
	assert_null(dns_cache_get(c, "k1", DNS_T_A, "k1", 5500));
	assert_null(dns_cache_get(c, "k1", DNS_T_TXT, "k1", 11000));
	assert_int_equal(dns_cache_count(c), 0);

	assert_int_equal(dns_cache_put(c, "k1", &a, 10, 0), 0);
	assert_int_equal(dns_cache_put(c, "k2", &a, 10, 0), 0);
	assert_int_equal(dns_cache_put(c, "k2", &a, 20, 0), 0);
	assert_int_equal(dns_cache_count(c), 2);
	dns_answer_free(dns_cache_get(c, "k1", DNS_T_TXT, "k1", 1));
	assert_int_equal(dns_cache_put(c, "k3", &a, 10, 0), 0);
	assert_int_equal(dns_cache_count(c), 2);
	assert_null(dns_cache_get(c, "k2", DNS_T_TXT, "k2", 1));
	g = dns_cache_get(c, "k3", DNS_T_TXT, "k3", 1);
	assert_non_null(g);
	dns_answer_free(g);
	dns_cache_free(c);
}

/* ---- cancel and free ---- */

static void
test_cancel(void **state)
{
	struct t *t = *state;
	struct result res[4] = { { 0 } }, done = { 0 };
	struct dns_query *q;

	NEED_SERVER();
	lookup(t, "c1.test", DNS_T_A, DNS_OK, &done);
	result_clear(&done);

	q = query(t, "a.test", DNS_T_A, &res[0]);	/* in flight */
	dns_cancel(q);
	q = query(t, "c1.test", DNS_T_A, &res[1]);	/* cache hit */
	dns_cancel(q);
	q = query(t, "bad..name", DNS_T_A, &res[2]);	/* refused name */
	dns_cancel(q);
	q = query(t, "x.timeout", DNS_T_A, &res[3]);	/* never answered */
	dns_cancel(q);
	dns_cancel(NULL);

	/* a later query is answered; the cancelled ones never */
	lookup(t, "aaaa.test", DNS_T_AAAA, DNS_OK, &done);
	result_clear(&done);
	run_for(t, 200);
	assert_int_equal(res[0].calls + res[1].calls + res[2].calls +
	    res[3].calls, 0);
	assert_int_equal(count_queries("a.test", "A", "udp"), 1);
}

static void
test_free_in_flight(void **state)
{
	struct t *t = *state;
	struct result res[5] = { { 0 } }, done = { 0 };
	int i;

	NEED_SERVER();
	lookup(t, "c1.test", DNS_T_A, DNS_OK, &done);
	result_clear(&done);
	query(t, "a.test", DNS_T_A, &res[0]);
	query(t, "big.test", DNS_T_TXT, &res[1]);
	query(t, "x.timeout", DNS_T_A, &res[2]);
	query(t, "c1.test", DNS_T_A, &res[3]);
	query(t, "", DNS_T_A, &res[4]);
	dns_resolver_free(t->r);
	t->r = NULL;
	run_for(t, 200);
	for (i = 0; i < 5; i++)
		assert_int_equal(res[i].calls, 0);
}

/* Freeing the resolver inside a callback: the others stay silent. */
static void
test_free_from_callback(void **state)
{
	struct t *t = *state;
	struct result res[4] = { { 0 } };

	NEED_SERVER();
	res[0].free_r = t->r;
	query(t, "a.test", DNS_T_A, &res[0]);
	query(t, "x.timeout", DNS_T_A, &res[1]);
	query(t, "big.test", DNS_T_TXT, &res[2]);
	wait_answer(t, &res[0]);
	t->r = NULL;
	run_for(t, 200);
	assert_int_equal(res[1].calls + res[2].calls, 0);
	result_clear(&res[0]);

	/* and from a callback delivered from the loop (refused name) */
	t->r = resolver(t, 1000, 2, 100);
	res[0].free_r = t->r;
	query(t, "a..test", DNS_T_A, &res[0]);
	query(t, "x.timeout", DNS_T_A, &res[1]);
	query(t, "a..test", DNS_T_A, &res[3]);
	wait_answer(t, &res[0]);
	t->r = NULL;
	run_for(t, 200);
	assert_int_equal(res[1].calls + res[3].calls, 0);
	result_clear(&res[0]);
}

/* Cancelling and querying from inside a callback. */
static struct dns_query *victim;
static struct dns_resolver *chain_r;

static void
on_answer_chain(const struct dns_answer *a, void *arg)
{
	struct result *res = arg;

	on_answer(a, &res[0]);
	dns_cancel(victim);
	inside_query = 1;
	dns_query(chain_r, "aaaa.test", DNS_T_AAAA, on_answer, &res[2]);
	inside_query = 0;
}

static void
test_callback_reentry(void **state)
{
	struct t *t = *state;
	struct result res[3] = { { 0 } };

	NEED_SERVER();
	chain_r = t->r;
	inside_query = 1;
	assert_non_null(dns_query(t->r, "a.test", DNS_T_A, on_answer_chain,
	    res));
	inside_query = 0;
	victim = query(t, "x.timeout", DNS_T_A, &res[1]);
	wait_answer(t, &res[0]);
	wait_answer(t, &res[2]);
	assert_int_equal(res[2].a->status, DNS_OK);
	assert_int_equal(res[1].calls, 0);
	result_clear(&res[0]);
	result_clear(&res[2]);
}

/* ---- names ---- */

static void
test_bad_names(void **state)
{
	struct t *t = *state;
	struct result res = { 0 };
	char name[300], label[70];
	const char *bad[] = { "", ".", "..", ".a.test", "a..test",
	    "a.test..", NULL };
	size_t i;

	NEED_SERVER();
	for (i = 0; bad[i] != NULL; i++) {
		lookup(t, bad[i], DNS_T_A, DNS_ERROR, &res);
		assert_int_equal(res.a->n, 0);
		result_clear(&res);
	}
	/* 64-octet label */
	memset(label, 'a', 64);
	label[64] = '\0';
	snprintf(name, sizeof(name), "%s.test", label);
	lookup(t, name, DNS_T_A, DNS_ERROR, &res);
	result_clear(&res);
	/* 63 is fine */
	label[63] = '\0';
	snprintf(name, sizeof(name), "%s.test", label);
	lookup(t, name, DNS_T_A, DNS_NXDOMAIN, &res);
	result_clear(&res);

	/* 253 octets are fine (with or without the root dot), 254 not */
	memset(name, 'b', 253);
	for (i = 63; i < 253; i += 64)
		name[i] = '.';
	name[253] = '\0';
	lookup(t, name, DNS_T_TXT, DNS_NXDOMAIN, &res);
	result_clear(&res);
	name[253] = '.';
	name[254] = '\0';
	lookup(t, name, DNS_T_TXT, DNS_NXDOMAIN, &res);
	result_clear(&res);
	name[253] = 'b';
	lookup(t, name, DNS_T_TXT, DNS_ERROR, &res);
	result_clear(&res);

	/* a backslash is an octet of the name, not an escape */
	lookup(t, "a\\.test", DNS_T_A, DNS_NXDOMAIN, &res);
	result_clear(&res);

	/* a type the resolver does not know */
	lookup(t, "a.test", (enum dns_type)99, DNS_ERROR, &res);
	result_clear(&res);
}

static void
test_answer_dup(void **state)
{
	struct dns_rr rr[2] = {
		{ .family = AF_INET, .addr = { 192, 0, 2, 1 } },
		{ .pref = 5, .text = "a\0b", .len = 3 },
	};
	struct dns_answer a = { .status = DNS_OK, .type = DNS_T_MX,
	    .name = "n.test", .rr = rr, .n = 2, .ttl = 7 }, *c;
	struct dns_answer empty = { .status = DNS_NXDOMAIN,
	    .type = DNS_T_A, .name = "x" };

	c = dns_answer_dup(&a);
	assert_non_null(c);
	assert_string_equal(c->name, "n.test");
	assert_int_equal(c->n, 2);
	assert_null(c->rr[0].text);
	assert_memory_equal(c->rr[0].addr, rr[0].addr, 4);
	assert_int_equal(c->rr[1].len, 3);
	assert_memory_equal(c->rr[1].text, "a\0b", 4);
	assert_ptr_not_equal(c->rr[1].text, rr[1].text);
	assert_int_equal(c->ttl, 7);
	dns_answer_free(c);
	c = dns_answer_dup(&empty);
	assert_non_null(c);
	assert_null(c->rr);
	assert_int_equal(c->status, DNS_NXDOMAIN);
	dns_answer_free(c);
	dns_answer_free(NULL);

	assert_string_equal(dns_status_name(DNS_SERVFAIL), "servfail");
	assert_string_equal(dns_type_name(DNS_T_AAAA), "AAAA");
}

static void
test_bad_config(void **state)
{
	struct t *t = *state;
	const char *servers[2] = { "127.0.0.1:53", "bad,host" };
	const char *servers6[1] = { "[::1]:5353" };
	struct dns_config cfg = { .servers = servers, .nservers = 2 };
	char err[256] = "";
	struct dns_resolver *r;

	assert_null(dns_resolver_new(t->base, &cfg, err, sizeof(err)));
	assert_non_null(strstr(err, "bad,host"));
	servers[1] = "not an address";
	assert_null(dns_resolver_new(t->base, &cfg, err, sizeof(err)));
	cfg.servers = servers6;
	cfg.nservers = 1;
	r = dns_resolver_new(t->base, &cfg, err, sizeof(err));
	assert_non_null(r);
	dns_resolver_free(r);
	/* the system's resolv.conf */
	r = dns_resolver_new(t->base, NULL, err, sizeof(err));
	assert_non_null(r);
	dns_resolver_free(r);
	dns_resolver_free(NULL);
}

int
main(void)
{
	log_init("test_dns", 0, getenv("DNS_DEBUG") ? LOGL_DEBUG : LOGL_WARNING);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_a, setup, teardown),
		cmocka_unit_test_setup_teardown(test_aaaa, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_txt_strings_joined,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_txt_several_records,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_ptr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cname_followed, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_nodata_nxdomain, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_servfail_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_retry_on_truncation,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_hit, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_negative_cache, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_ttl_expiry, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cache_disabled, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cache_eviction, setup,
		    teardown),
		cmocka_unit_test(test_cache_unit),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_in_flight, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_free_from_callback, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_callback_reentry, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_names, setup,
		    teardown),
		cmocka_unit_test(test_answer_dup),
		cmocka_unit_test_setup_teardown(test_bad_config, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
