/*
 * queue/mxlookup: the ordering rule on its own (preference order, random
 * order among equals, null MX, unusable exchanges, bounds), then whole
 * lookups against tests/tools/dnsserver.py over real UDP on loopback:
 * MX order with both address families, the implicit MX (NODATA),
 * NXDOMAIN, null MX, SERVFAIL and timeouts (temporary), exchanges
 * without addresses skipped, the bounds, cancellation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <event2/event.h>

#include "lib/dns.h"
#include "queue/mxlookup.h"

#define PYTHON		"/usr/bin/python3"
#define SERVER		"tests/tools/dnsserver.py"
#define WAIT_MS		8000

/* ---- the ordering rule ---- */

static struct dns_rr
mx(unsigned pref, const char *name)
{
	struct dns_rr r;

	memset(&r, 0, sizeof(r));
	r.pref = pref;
	r.text = (char *)name;
	r.len = strlen(name);
	return r;
}

static void
test_order_by_preference(void **state)
{
	struct dns_rr rr[] = { mx(20, "b.test"), mx(10, "a.test"),
	    mx(30, "c.test"), mx(0, "z.test") };
	size_t order[10];

	assert_int_equal(mx_order(rr, 4, order, 10, NULL, NULL), 4);
	assert_string_equal(rr[order[0]].text, "z.test");
	assert_string_equal(rr[order[1]].text, "a.test");
	assert_string_equal(rr[order[2]].text, "b.test");
	assert_string_equal(rr[order[3]].text, "c.test");
}

/* Lower preference always first; both orders of two equals seen. */
static void
test_order_equal_random(void **state)
{
	struct dns_rr rr[] = { mx(20, "last.test"), mx(10, "x.test"),
	    mx(10, "y.test"), mx(5, "first.test") };
	size_t order[10];
	int i, xfirst = 0, yfirst = 0;

	for (i = 0; i < 400; i++) {
		assert_int_equal(mx_order(rr, 4, order, 10, NULL, NULL), 4);
		assert_string_equal(rr[order[0]].text, "first.test");
		assert_string_equal(rr[order[3]].text, "last.test");
		if (strcmp(rr[order[1]].text, "x.test") == 0) {
			assert_string_equal(rr[order[2]].text, "y.test");
			xfirst++;
		} else {
			assert_string_equal(rr[order[1]].text, "y.test");
			assert_string_equal(rr[order[2]].text, "x.test");
			yfirst++;
		}
	}
	/* P(one order never appears in 400 fair draws) = 2^-399 */
	assert_true(xfirst > 0);
	assert_true(yfirst > 0);
}

/* Every permutation of three equals appears: the shuffle is uniform
 * enough to reach all of them (a swap-once bug would not). */
static void
test_order_three_equal_all_permutations(void **state)
{
	struct dns_rr rr[] = { mx(10, "a.test"), mx(10, "b.test"),
	    mx(10, "c.test") };
	size_t order[3];
	int seen[3][3][3], i, n = 0;

	memset(seen, 0, sizeof(seen));
	for (i = 0; i < 600; i++) {
		assert_int_equal(mx_order(rr, 3, order, 3, NULL, NULL), 3);
		assert_true(order[0] != order[1] && order[1] != order[2] &&
		    order[0] != order[2]);
		seen[order[0]][order[1]][order[2]]++;
	}
	for (i = 0; i < 27; i++)
		n += ((int *)seen)[i] > 0;
	assert_int_equal(n, 6);
}

static uint32_t
rnd_zero(void *arg, uint32_t k)
{
	(*(int *)arg)++;
	assert_true(k >= 2);
	return 0;
}

/* The random source is asked only inside runs of equal preference. */
static void
test_order_rnd_only_for_equals(void **state)
{
	struct dns_rr rr[] = { mx(30, "c.test"), mx(10, "a.test"),
	    mx(20, "b.test") };
	struct dns_rr eq[] = { mx(10, "a.test"), mx(10, "b.test") };
	size_t order[3];
	int calls = 0;

	assert_int_equal(mx_order(rr, 3, order, 3, rnd_zero, &calls), 3);
	assert_int_equal(calls, 0);
	assert_int_equal(mx_order(eq, 2, order, 3, rnd_zero, &calls), 2);
	assert_int_equal(calls, 1);
	/* k = 0 for the last slot of two: swapped */
	assert_string_equal(eq[order[0]].text, "b.test");
	assert_string_equal(eq[order[1]].text, "a.test");
}

static void
test_null_mx(void **state)
{
	struct dns_rr root[] = { mx(0, "") };
	struct dns_rr dot[] = { mx(0, ".") };
	struct dns_rr pref10[] = { mx(10, "") };
	struct dns_rr mixed[] = { mx(0, ""), mx(10, "mx.test") };
	size_t order[4];

	/* RFC 7505 3 */
	assert_int_equal(mx_order(root, 1, order, 4, NULL, NULL), -1);
	assert_int_equal(mx_order(dot, 1, order, 4, NULL, NULL), -1);
	/* not a null MX, but no usable host either */
	assert_int_equal(mx_order(pref10, 1, order, 4, NULL, NULL), 0);
	/* "." among others is just skipped */
	assert_int_equal(mx_order(mixed, 2, order, 4, NULL, NULL), 1);
	assert_string_equal(mixed[order[0]].text, "mx.test");
}

static void
test_unusable_exchanges_skipped(void **state)
{
	struct dns_rr rr[] = { mx(1, "192.0.2.1"), mx(2, "[192.0.2.2]"),
	    mx(3, "2001:db8::1"), mx(4, "ok.test"), mx(5, "bad name.test"),
	    mx(6, "ctl\001.test"), mx(7, "") };
	size_t order[8];

	assert_int_equal(mx_order(rr, 7, order, 8, NULL, NULL), 1);
	assert_string_equal(rr[order[0]].text, "ok.test");
}

static void
test_order_bounded(void **state)
{
	struct dns_rr rr[15];
	char names[15][16];
	size_t order[MX_MAX_HOSTS], i;

	/* preferences 14 .. 0: the ten lowest kept, in order */
	for (i = 0; i < 15; i++) {
		snprintf(names[i], sizeof(names[i]), "h%zu.test", i);
		rr[i] = mx((unsigned)(14 - i), names[i]);
	}
	assert_int_equal(mx_order(rr, 15, order, MX_MAX_HOSTS, NULL, NULL),
	    MX_MAX_HOSTS);
	for (i = 0; i < MX_MAX_HOSTS; i++)
		assert_int_equal(rr[order[i]].pref, i);
}

static void
test_exchange_ok(void **state)
{
	char big[300];

	assert_true(mx_exchange_ok("mx.example.test"));
	assert_true(mx_exchange_ok("MX-1.Example.TEST"));
	assert_true(mx_exchange_ok("_x.test"));
	assert_false(mx_exchange_ok(NULL));
	assert_false(mx_exchange_ok(""));
	assert_false(mx_exchange_ok("."));
	assert_false(mx_exchange_ok("127.0.0.1"));
	assert_false(mx_exchange_ok("::1"));
	assert_false(mx_exchange_ok("[127.0.0.1]"));
	assert_false(mx_exchange_ok("a\rb.test"));
	assert_false(mx_exchange_ok("a\nb.test"));
	assert_false(mx_exchange_ok("a/b.test"));
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_false(mx_exchange_ok(big));
}

/* ---- against a DNS server ---- */

static const char zone[] =
"{\n"
"\"pref.test\": [{\"type\": \"MX\", \"pref\": 20, \"value\": \"mx-b.pref.test\"},\n"
"    {\"type\": \"MX\", \"pref\": 10, \"value\": \"mx-a.pref.test\"}],\n"
"\"mx-a.pref.test\": [{\"type\": \"A\", \"value\": \"192.0.2.1\"},\n"
"    {\"type\": \"A\", \"value\": \"192.0.2.11\"},\n"
"    {\"type\": \"AAAA\", \"value\": \"2001:db8::1\"}],\n"
"\"mx-b.pref.test\": [{\"type\": \"A\", \"value\": \"192.0.2.2\"}],\n"
"\"nomx.test\": [{\"type\": \"A\", \"value\": \"192.0.2.9\"},\n"
"    {\"type\": \"AAAA\", \"value\": \"2001:db8::9\"}],\n"
"\"nullmx.test\": [{\"type\": \"MX\", \"pref\": 0, \"value\": \".\"}],\n"
"\"empty.test\": [],\n"
"\"noaddr.test\": [{\"type\": \"MX\", \"pref\": 10, \"value\": \"gone.noaddr.test\"}],\n"
"\"literal.test\": [{\"type\": \"MX\", \"pref\": 10, \"value\": \"192.0.2.50\"}],\n"
"\"skip.test\": [{\"type\": \"MX\", \"pref\": 5, \"value\": \"gone.skip.test\"},\n"
"    {\"type\": \"MX\", \"pref\": 10, \"value\": \"192.0.2.77\"},\n"
"    {\"type\": \"MX\", \"pref\": 20, \"value\": \"real.skip.test\"}],\n"
"\"real.skip.test\": [{\"type\": \"A\", \"value\": \"192.0.2.20\"}],\n"
"\"tempaddr.test\": [{\"type\": \"MX\", \"pref\": 10, \"value\": \"servfail.tempaddr.test\"}],\n"
"\"partial.test\": [{\"type\": \"MX\", \"pref\": 10, \"value\": \"servfail.partial.test\"},\n"
"    {\"type\": \"MX\", \"pref\": 20, \"value\": \"ok.partial.test\"}],\n"
"\"ok.partial.test\": [{\"type\": \"A\", \"value\": \"192.0.2.30\"}],\n"
"\"dup.test\": [{\"type\": \"MX\", \"pref\": 10, \"value\": \"one.dup.test\"},\n"
"    {\"type\": \"MX\", \"pref\": 20, \"value\": \"two.dup.test\"}],\n"
"\"one.dup.test\": [{\"type\": \"A\", \"value\": \"192.0.2.40\"}],\n"
"\"two.dup.test\": [{\"type\": \"A\", \"value\": \"192.0.2.40\"}],\n"
"\"tmo.test\": [{\"type\": \"MX\", \"pref\": 10, \"value\": \"timeout.tmo.test\"}],\n"
"\"many.test\": [\n";

static struct {
	int ok;
	int broken;
	pid_t pid;
	char dir[64];
	char zonefile[128];
	char server[64];
} srv;

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int
write_zone(const char *path)
{
	FILE *f = fopen(path, "w");
	int i;

	if (f == NULL)
		return -1;
	fputs(zone, f);
	/* 12 MX hosts of equal preference, two addresses each */
	for (i = 0; i < 12; i++)
		fprintf(f, "  {\"type\": \"MX\", \"pref\": 10, \"value\": "
		    "\"h%d.many.test\"}%s\n", i, i < 11 ? "," : "],");
	for (i = 0; i < 12; i++)
		fprintf(f, "\"h%d.many.test\": [{\"type\": \"A\", \"value\": "
		    "\"198.51.100.%d\"}, {\"type\": \"A\", \"value\": "
		    "\"198.51.100.%d\"}]%s\n", i, i + 1, i + 101,
		    i < 11 ? "," : "");
	fputs("}\n", f);
	return fclose(f);
}

static int
server_start(void)
{
	int fds[2], port;
	char line[64];
	size_t n = 0;
	struct pollfd pfd;
	uint64_t end;
	ssize_t got;

	if (access(PYTHON, X_OK) == -1 || access(SERVER, R_OK) == -1) {
		printf("test_mxlookup: skip: %s or %s not available (run from "
		    "the repository root)\n", PYTHON, SERVER);
		return 0;
	}
	snprintf(srv.dir, sizeof(srv.dir), "/tmp/mxgate-mx.XXXXXX");
	if (mkdtemp(srv.dir) == NULL)
		return -1;
	snprintf(srv.zonefile, sizeof(srv.zonefile), "%s/zone.json", srv.dir);
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
		    "--port", "0", (char *)NULL);
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
	if (sscanf(line, "LISTENING %d", &port) != 1) {
		printf("test_mxlookup: the DNS server did not start: %s\n", line);
		srv.broken = 1;
		return -1;
	}
	snprintf(srv.server, sizeof(srv.server), "127.0.0.1:%d", port);
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
		rmdir(srv.dir);
	}
	return 0;
}

struct t {
	struct event_base *base;
	struct dns_resolver *r;
};

/* A copy of what the callback saw. */
struct got {
	int calls;
	enum mx_status status;
	int code;
	char text[512];
	char domain[MX_NAME_MAX];
	struct mx_target targets[MX_MAX_TARGETS];
	size_t n;
};

static int
setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	const char *servers[1];
	struct dns_config cfg;
	char err[256] = "";

	*state = t;
	if (t == NULL || (t->base = event_base_new()) == NULL)
		return -1;
	if (!srv.ok)
		return 0;
	servers[0] = srv.server;
	memset(&cfg, 0, sizeof(cfg));
	cfg.servers = servers;
	cfg.nservers = 1;
	cfg.timeout_ms = 300;
	cfg.tries = 1;
	cfg.cache_entries = 0;
	if ((t->r = dns_resolver_new(t->base, &cfg, err, sizeof(err))) == NULL) {
		printf("dns_resolver_new: %s\n", err);
		return -1;
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

static void
on_result(const struct mx_result *res, void *arg)
{
	struct got *g = arg;

	g->calls++;
	g->status = res->status;
	g->code = res->code;
	snprintf(g->text, sizeof(g->text), "%s", res->text);
	snprintf(g->domain, sizeof(g->domain), "%s", res->domain);
	assert_true(res->ntargets <= MX_MAX_TARGETS);
	g->n = res->ntargets;
	if (res->ntargets > 0)
		memcpy(g->targets, res->targets,
		    res->ntargets * sizeof(*res->targets));
}

static void
run_for(struct t *t, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(t->base, &tv);
	event_base_dispatch(t->base);
}

static void
resolve(struct t *t, const char *domain, struct got *g)
{
	struct mxlookup *l;
	uint64_t end = now_ms() + WAIT_MS;

	memset(g, 0, sizeof(*g));
	l = mxlookup_start(t->r, domain, 2525, on_result, g);
	assert_non_null(l);
	assert_int_equal(g->calls, 0);		/* never from inside start */
	while (g->calls == 0 && now_ms() < end)
		run_for(t, 10);
	assert_int_equal(g->calls, 1);
	/* the name as given, less a trailing dot */
	assert_int_equal(strncmp(g->domain, domain, strlen(g->domain)), 0);
	assert_true(strcmp(domain + strlen(g->domain), "") == 0 ||
	    strcmp(domain + strlen(g->domain), ".") == 0);
}

/* "192.0.2.1" from a target, with its port checked. */
static const char *
target_ip(const struct mx_target *tg, char *buf, size_t n)
{
	if (tg->addr.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)&tg->addr;

		assert_int_equal(ntohs(s6->sin6_port), 2525);
		assert_int_equal(tg->addrlen, sizeof(*s6));
		return inet_ntop(AF_INET6, &s6->sin6_addr, buf, (socklen_t)n);
	} else {
		const struct sockaddr_in *s4 = (const void *)&tg->addr;

		assert_int_equal(tg->addr.ss_family, AF_INET);
		assert_int_equal(ntohs(s4->sin_port), 2525);
		assert_int_equal(tg->addrlen, sizeof(*s4));
		return inet_ntop(AF_INET, &s4->sin_addr, buf, (socklen_t)n);
	}
}

static void
test_lookup_preference_both_families(void **state)
{
	struct t *t = *state;
	struct got g;
	char ip[64];

	NEED_SERVER();
	resolve(t, "pref.test", &g);
	assert_int_equal(g.status, MX_OK);
	assert_int_equal(g.n, 4);
	/* mx-a (10): IPv6 and IPv4 interleaved, then mx-b (20) */
	assert_string_equal(g.targets[0].name, "mx-a.pref.test");
	assert_string_equal(target_ip(&g.targets[0], ip, sizeof(ip)), "2001:db8::1");
	assert_string_equal(g.targets[0].spec, "mx-a.pref.test[2001:db8::1]:2525");
	assert_string_equal(g.targets[1].name, "mx-a.pref.test");
	assert_string_equal(target_ip(&g.targets[1], ip, sizeof(ip)), "192.0.2.1");
	assert_string_equal(g.targets[2].name, "mx-a.pref.test");
	assert_string_equal(target_ip(&g.targets[2], ip, sizeof(ip)), "192.0.2.11");
	assert_string_equal(g.targets[3].name, "mx-b.pref.test");
	assert_int_equal(g.targets[3].pref, 20);
	assert_string_equal(target_ip(&g.targets[3], ip, sizeof(ip)), "192.0.2.2");
	assert_string_equal(g.targets[3].spec, "mx-b.pref.test[192.0.2.2]:2525");
}

static void
test_lookup_nodata_implicit_mx(void **state)
{
	struct t *t = *state;
	struct got g;
	char ip[64];

	NEED_SERVER();
	resolve(t, "nomx.test", &g);
	assert_int_equal(g.status, MX_OK);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.targets[0].name, "nomx.test");
	assert_int_equal(g.targets[0].pref, 0);
	assert_string_equal(target_ip(&g.targets[0], ip, sizeof(ip)), "2001:db8::9");
	assert_string_equal(target_ip(&g.targets[1], ip, sizeof(ip)), "192.0.2.9");
}

static void
test_lookup_null_mx(void **state)
{
	struct t *t = *state;
	struct got g;

	NEED_SERVER();
	resolve(t, "nullmx.test", &g);
	assert_int_equal(g.status, MX_PERM);
	assert_int_equal(g.code, 556);
	assert_string_equal(g.text, "556 5.1.10 Recipient address has null MX");
	assert_int_equal(g.n, 0);
}

static void
test_lookup_nxdomain(void **state)
{
	struct t *t = *state;
	struct got g;

	NEED_SERVER();
	resolve(t, "nx.test", &g);
	assert_int_equal(g.status, MX_PERM);
	assert_int_equal(g.code, 550);
	assert_non_null(strstr(g.text, "550 5.1.2 "));
	assert_non_null(strstr(g.text, "nx.test does not exist"));
}

static void
test_lookup_servfail_temporary(void **state)
{
	struct t *t = *state;
	struct got g;

	NEED_SERVER();
	resolve(t, "servfail.example", &g);
	assert_int_equal(g.status, MX_TEMP);
	assert_int_equal(g.code, 0);
	assert_non_null(strstr(g.text, "failed: servfail"));
}

static void
test_lookup_timeout_temporary(void **state)
{
	struct t *t = *state;
	struct got g;

	NEED_SERVER();
	resolve(t, "x.timeout", &g);
	assert_int_equal(g.status, MX_TEMP);
	assert_non_null(strstr(g.text, "failed: timeout"));
}

static void
test_lookup_no_mx_no_address(void **state)
{
	struct t *t = *state;
	struct got g;

	NEED_SERVER();
	resolve(t, "empty.test", &g);
	assert_int_equal(g.status, MX_PERM);
	assert_int_equal(g.code, 550);
	assert_non_null(strstr(g.text, "550 5.4.4 "));
}

static void
test_lookup_mx_without_address(void **state)
{
	struct t *t = *state;
	struct got g;

	NEED_SERVER();
	resolve(t, "noaddr.test", &g);
	assert_int_equal(g.status, MX_PERM);
	assert_non_null(strstr(g.text, "550 5.4.4 No MX host"));
	/* only an IP literal: nothing usable */
	resolve(t, "literal.test", &g);
	assert_int_equal(g.status, MX_PERM);
	assert_non_null(strstr(g.text, "No usable MX host"));
}

static void
test_lookup_skips_unusable(void **state)
{
	struct t *t = *state;
	struct got g;
	char ip[64];

	NEED_SERVER();
	resolve(t, "skip.test", &g);
	assert_int_equal(g.status, MX_OK);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.targets[0].name, "real.skip.test");
	assert_string_equal(target_ip(&g.targets[0], ip, sizeof(ip)), "192.0.2.20");
}

static void
test_lookup_address_failure(void **state)
{
	struct t *t = *state;
	struct got g;

	NEED_SERVER();
	/* the only MX host cannot be resolved for now: temporary */
	resolve(t, "tempaddr.test", &g);
	assert_int_equal(g.status, MX_TEMP);
	assert_non_null(strstr(g.text, "failed: servfail"));
	/* a failing host is passed over when another resolves */
	resolve(t, "partial.test", &g);
	assert_int_equal(g.status, MX_OK);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.targets[0].name, "ok.partial.test");
}

static void
test_lookup_duplicates_once(void **state)
{
	struct t *t = *state;
	struct got g;

	NEED_SERVER();
	resolve(t, "dup.test", &g);
	assert_int_equal(g.status, MX_OK);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.targets[0].name, "one.dup.test");
}

static void
test_lookup_bounded(void **state)
{
	struct t *t = *state;
	struct got g;
	char names[MX_MAX_HOSTS][MX_NAME_MAX];
	size_t i, j, nnames = 0;

	NEED_SERVER();
	resolve(t, "Many.Test.", &g);
	assert_int_equal(g.status, MX_OK);
	assert_int_equal(g.n, MX_MAX_TARGETS);
	/* ten hosts, two addresses each, each host's together */
	for (i = 0; i < g.n; i++) {
		for (j = 0; j < nnames; j++)
			if (strcmp(names[j], g.targets[i].name) == 0)
				break;
		if (j == nnames) {
			assert_true(nnames < MX_MAX_HOSTS);
			snprintf(names[nnames++], MX_NAME_MAX, "%s",
			    g.targets[i].name);
		}
		if (i % 2 == 1)
			assert_string_equal(g.targets[i].name,
			    g.targets[i - 1].name);
	}
	assert_int_equal(nnames, MX_MAX_HOSTS);
}

static void
not_called(const struct mx_result *res, void *arg)
{
	fail_msg("callback after mxlookup_cancel");
}

static void
test_lookup_cancel(void **state)
{
	struct t *t = *state;
	struct mxlookup *l;
	struct got g;

	NEED_SERVER();
	l = mxlookup_start(t->r, "pref.test", 25, not_called, NULL);
	assert_non_null(l);
	mxlookup_cancel(l);
	/* cancel while the address lookups are in flight (the MX host's
	 * are never answered): let the MX answer come, then cancel */
	l = mxlookup_start(t->r, "tmo.test", 25, not_called, NULL);
	assert_non_null(l);
	run_for(t, 50);
	mxlookup_cancel(l);
	mxlookup_cancel(NULL);
	run_for(t, 400);
	/* the resolver still works afterwards */
	resolve(t, "skip.test", &g);
	assert_int_equal(g.status, MX_OK);
}

static void
test_lookup_bad_names(void **state)
{
	struct t *t = *state;
	struct got g;
	char big[400];

	NEED_SERVER();
	/* empty label: lib/dns says DNS_ERROR: temporary, never a bounce
	 * for what may be our own mistake */
	resolve(t, "a..test", &g);
	assert_int_equal(g.status, MX_TEMP);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memset(&g, 0, sizeof(g));
	{
		struct mxlookup *l = mxlookup_start(t->r, big, 25, on_result, &g);
		uint64_t end = now_ms() + WAIT_MS;

		assert_non_null(l);
		while (g.calls == 0 && now_ms() < end)
			run_for(t, 10);
		assert_int_equal(g.calls, 1);
		assert_int_equal(g.status, MX_TEMP);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_by_preference),
		cmocka_unit_test(test_order_equal_random),
		cmocka_unit_test(test_order_three_equal_all_permutations),
		cmocka_unit_test(test_order_rnd_only_for_equals),
		cmocka_unit_test(test_null_mx),
		cmocka_unit_test(test_unusable_exchanges_skipped),
		cmocka_unit_test(test_order_bounded),
		cmocka_unit_test(test_exchange_ok),
		cmocka_unit_test_setup_teardown(test_lookup_preference_both_families, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup_nodata_implicit_mx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup_null_mx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup_nxdomain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup_servfail_temporary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup_timeout_temporary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup_no_mx_no_address, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup_mx_without_address, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup_skips_unusable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup_address_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup_duplicates_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup_bad_names, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
