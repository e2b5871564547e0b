/*
 * Tests for gateway/config.c and config_parse.c: value syntax, loading the
 * shipped example, and that every mistake is reported with file, line,
 * section and key. Run from the repository root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "gateway/config.h"

#define EXAMPLE_INI "etc/mxgate.ini"

static char tmpdir[64];
static int nfiles;

static int
setup_tmpdir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/mxgate-test-config-XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown_tmpdir(void **state)
{
	char path[128];
	int i;

	for (i = 0; i < nfiles; i++) {
		snprintf(path, sizeof(path), "%s/%d.ini", tmpdir, i);
		unlink(path);
	}
	return rmdir(tmpdir);
}

/* Writes text to a new file in the temporary directory; path in path_r. */
static void
write_config(const char *text, char *path_r, size_t len)
{
	FILE *fp;

	snprintf(path_r, len, "%s/%d.ini", tmpdir, nfiles++);
	assert_non_null(fp = fopen(path_r, "w"));
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

static void
test_parse_size(void **state)
{
	static const struct {
		const char *s;
		int ok;
		size_t v;
	} cases[] = {
		{ "0", 1, 0 },
		{ "1", 1, 1 },
		{ "1024", 1, 1024 },
		{ "10k", 1, 10240 },
		{ "10K", 1, 10240 },
		{ "50m", 1, 50UL * 1024 * 1024 },
		{ "50M", 1, 50UL * 1024 * 1024 },
		{ "2g", 1, 2UL * 1024 * 1024 * 1024 },
		{ "18446744073709551615", 1, SIZE_MAX },
		{ "17179869183g", 1, 17179869183ULL * 1024 * 1024 * 1024 },
		{ "17179869184g", 0, 0 },	/* 2^64 */
		{ "18014398509481984k", 0, 0 },	/* 2^64 */
		{ "18446744073709551616", 0, 0 },
		{ "99999999999999999999999", 0, 0 },
		{ "", 0, 0 },
		{ "k", 0, 0 },
		{ "-1", 0, 0 },
		{ "+1", 0, 0 },
		{ " 1", 0, 0 },
		{ "1 ", 0, 0 },
		{ "1 k", 0, 0 },
		{ "1kb", 0, 0 },
		{ "1t", 0, 0 },
		{ "1b", 0, 0 },
		{ "1.5m", 0, 0 },
		{ "0x10", 0, 0 },
		{ "ten", 0, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t v = 12345;
		int r = config_parse_size(cases[i].s, &v);

		if ((r == 0) != cases[i].ok || (r == 0 && v != cases[i].v))
			fail_msg("size \"%s\": %d %zu, expected %s %zu", cases[i].s,
			    r, v, cases[i].ok ? "ok" : "error", cases[i].v);
	}
}

static void
test_parse_duration(void **state)
{
	static const struct {
		const char *s;
		int ok;
		int v;
	} cases[] = {
		{ "0", 1, 0 },
		{ "30", 1, 30 },
		{ "30s", 1, 30 },
		{ "30S", 1, 30 },
		{ "5m", 1, 300 },
		{ "1h", 1, 3600 },
		{ "1H", 1, 3600 },
		{ "5d", 1, 432000 },
		{ "2147483647", 1, INT_MAX },
		{ "2147483647s", 1, INT_MAX },
		{ "24855d", 1, 24855 * 86400 },
		{ "2147483648", 0, 0 },
		{ "24856d", 0, 0 },
		{ "35791394m", 1, 35791394 * 60 },
		{ "35791395m", 0, 0 },
		{ "596523h", 1, 596523 * 3600 },
		{ "596524h", 0, 0 },
		{ "99999999999999999999", 0, 0 },
		{ "", 0, 0 },
		{ "s", 0, 0 },
		{ "-1", 0, 0 },
		{ "-5m", 0, 0 },
		{ " 5", 0, 0 },
		{ "5 ", 0, 0 },
		{ "5w", 0, 0 },
		{ "5ms", 0, 0 },
		{ "1.5h", 0, 0 },
		{ "5 m", 0, 0 },
		{ "five", 0, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int v = 12345;
		int r = config_parse_duration(cases[i].s, &v);

		if ((r == 0) != cases[i].ok || (r == 0 && v != cases[i].v))
			fail_msg("duration \"%s\": %d %d, expected %s %d",
			    cases[i].s, r, v, cases[i].ok ? "ok" : "error",
			    cases[i].v);
	}
}

static void
test_parse_int(void **state)
{
	static const struct {
		const char *s;
		int min, max;
		int ok;
		int v;
	} cases[] = {
		{ "5", 1, 10, 1, 5 },
		{ "1", 1, 10, 1, 1 },
		{ "10", 1, 10, 1, 10 },
		{ "0", 1, 10, 0, 0 },
		{ "11", 1, 10, 0, 0 },
		{ "0", 0, 0, 1, 0 },
		{ "65535", 1, 65535, 1, 65535 },
		{ "65536", 1, 65535, 0, 0 },
		{ "2147483647", 0, INT_MAX, 1, INT_MAX },
		{ "2147483648", 0, INT_MAX, 0, 0 },
		{ "4294967297", 0, INT_MAX, 0, 0 },	/* 2^32 + 1 */
		{ "18446744073709551615", 0, INT_MAX, 0, 0 },
		{ "99999999999999999999", 0, INT_MAX, 0, 0 },
		{ "-1", -10, 10, 0, 0 },	/* no negative numbers */
		{ "", 0, 10, 0, 0 },
		{ "1k", 0, 10000, 0, 0 },
		{ "5s", 0, 10, 0, 0 },
		{ " 5", 0, 10, 0, 0 },
		{ "5 ", 0, 10, 0, 0 },
		{ "+5", 0, 10, 0, 0 },
		{ "ten", 0, 100, 0, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int v = 12345;
		int r = config_parse_int(cases[i].s, cases[i].min, cases[i].max,
		    &v);

		if ((r == 0) != cases[i].ok || (r == 0 && v != cases[i].v))
			fail_msg("int \"%s\" [%d,%d]: %d %d, expected %s %d",
			    cases[i].s, cases[i].min, cases[i].max, r, v,
			    cases[i].ok ? "ok" : "error", cases[i].v);
	}
}

static int
sockaddr_port(const struct config_host *h)
{
	if (h->addr.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&h->addr)->sin_port);
	if (h->addr.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&h->addr)->sin6_port);
	return -1;
}

static void
test_load_example(void **state)
{
	struct buf err = { 0 };
	struct config *cfg;
	const struct config_route *r;
	const struct sockaddr_in *sin;

	cfg = config_load(EXAMPLE_INI, &err);
	if (cfg == NULL)
		fail_msg("%s: %s", EXAMPLE_INI, err.data ? err.data : "?");
	assert_int_equal(err.len, 0);
	assert_string_equal(cfg->path, EXAMPLE_INI);
	assert_string_equal(cfg->hostname, "mx.example.test");
	assert_string_equal(cfg->spool, "/tmp/mxgate-demo/spool");
	assert_string_equal(cfg->user, "nobody");
	assert_int_equal(cfg->log_syslog, 0);
	assert_int_equal(cfg->log_level, LOGL_INFO);

	assert_int_equal(cfg->nlisteners, 2);
	assert_string_equal(cfg->listeners[0].name, "mx");
	assert_string_equal(cfg->listeners[0].address, "127.0.0.1");
	assert_int_equal(cfg->listeners[0].port, 2525);
	assert_int_equal(cfg->listeners[0].profile, PROFILE_INBOUND);
	assert_string_equal(cfg->listeners[1].name, "mx6");
	assert_string_equal(cfg->listeners[1].address, "::1");
	assert_int_equal(cfg->listeners[1].port, 2525);

	/* both empty: STARTTLS not offered */
	assert_true(cfg->tls_cert == NULL || cfg->tls_cert[0] == '\0');
	assert_true(cfg->tls_key == NULL || cfg->tls_key[0] == '\0');

	assert_int_equal(cfg->ndomains, 1);
	assert_string_equal(cfg->domains[0], "example.test");
	assert_int_equal(cfg->nroutes, 1);
	r = config_route_for(cfg, "example.test");
	assert_non_null(r);
	assert_string_equal(r->domain, "example.test");
	assert_int_equal(r->tls, SMTP_TLS_OPPORTUNISTIC);
	assert_int_equal(r->nhosts, 1);
	assert_string_equal(r->hosts[0].spec, "127.0.0.1:2526");
	assert_int_equal(r->hosts[0].pref, 0);
	assert_int_equal(r->hosts[0].addr.ss_family, AF_INET);
	assert_int_equal(r->hosts[0].addrlen, sizeof(struct sockaddr_in));
	sin = (const struct sockaddr_in *)&r->hosts[0].addr;
	assert_int_equal(ntohs(sin->sin_port), 2526);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), 0x7f000001);
	assert_null(config_route_for(cfg, "other.example"));
	assert_true(config_accepts_domain(cfg, "EXAMPLE.test"));
	assert_false(config_accepts_domain(cfg, "other.example"));

	assert_int_equal(cfg->max_size, 50 * 1024 * 1024);
	assert_int_equal(cfg->max_rcpts, 100);
	assert_int_equal(cfg->max_conn, 1000);
	assert_int_equal(cfg->max_conn_per_ip, 50);
	assert_int_equal(cfg->command_timeout, 300);
	assert_int_equal(cfg->data_timeout, 180);
	assert_int_equal(cfg->delivery_concurrency, 20);
	assert_int_equal(cfg->retry_initial, 300);
	assert_int_equal(cfg->retry_max, 3600);
	assert_int_equal(cfg->max_lifetime, 5 * 86400);
	assert_int_equal(cfg->connect_timeout, 30);
	assert_int_equal(cfg->delivery_command_timeout, 300);
	assert_int_equal(cfg->delivery_data_timeout, 600);
	assert_int_equal(cfg->idle_timeout, 10);
	/* abuse limits */
	assert_int_equal(cfg->min_data_rate, 500);
	assert_int_equal(cfg->tls_timeout, 60);
	assert_int_equal(cfg->pregreet_wait, 0);
	assert_int_equal(cfg->soft_error_limit, 10);
	assert_int_equal(cfg->hard_error_limit, 20);
	assert_int_equal(cfg->error_delay, 1);
	assert_int_equal(cfg->junk_limit, 100);
	assert_int_equal(cfg->header_size, 256 * 1024);
	assert_int_equal(cfg->header_fields, 1000);
	assert_int_equal(cfg->mime_depth, 20);
	assert_int_equal(cfg->mime_parts, 1000);
	config_free(cfg);
	buf_free(&err);
}

#define BASE_SERVER \
	"[server]\n" \
	"hostname = mx.example.test\n" \
	"spool = /tmp/mxgate-test-spool\n"
#define BASE_LISTENER \
	"[listener mx]\n" \
	"address = 127.0.0.1\n" \
	"port = 2525\n"
#define BASE_DOMAINS \
	"[domains]\n" \
	"accept = example.test\n" \
	"[route example.test]\n" \
	"hosts = 127.0.0.1:2526\n"
/* 10 lines */
#define BASE BASE_SERVER BASE_LISTENER BASE_DOMAINS

static void
test_load_minimal_and_defaults(void **state)
{
	char path[128];
	struct buf err = { 0 };
	struct config *cfg;

	write_config(BASE, path, sizeof(path));
	cfg = config_load(path, &err);
	if (cfg == NULL)
		fail_msg("%s", err.data);
	assert_null(cfg->user);
	assert_int_equal(cfg->max_size, 50 * 1024 * 1024);
	assert_int_equal(cfg->max_rcpts, 100);
	assert_int_equal(cfg->data_timeout, 180);
	assert_int_equal(cfg->retry_initial, 300);
	assert_int_equal(cfg->max_lifetime, 5 * 86400);
	assert_int_equal(cfg->idle_timeout, 10);
	assert_int_equal(cfg->listeners[0].profile, PROFILE_INBOUND);
	assert_int_equal(cfg->routes[0].tls, SMTP_TLS_OPPORTUNISTIC);
	config_free(cfg);
	buf_free(&err);
}

static void
test_load_values(void **state)
{
	char path[128];
	struct buf err = { 0 };
	struct config *cfg;
	const struct config_route *r;

	write_config(
	    "; comment\n"
	    "# another comment\n"
	    "[SERVER]\n"
	    "HostName = mx.example.test\n"
	    "spool = /tmp/mxgate-test-spool\n"
	    "log = syslog\n"
	    "log_level = debug\n"
	    BASE_LISTENER
	    "[domains]\n"
	    "accept = example.test, .sub.example.test  Other.Example\n"
	    "[route example.test]\n"
	    "hosts = 127.0.0.1:2601@20, 127.0.0.1:2602@10 [::1]:2603@10 127.0.0.1:2604\n"
	    "tls = required\n"
	    "[route *]\n"
	    "hosts = 192.0.2.1:25\n"
	    "tls = none\n"
	    "[limits]\n"
	    "message_size = 10k\n"
	    "recipients = 1000\n"
	    "command_timeout = 2m\n"
	    "tls_timeout = 10s\n"
	    "pregreet_wait = 2s\n"
	    "min_data_rate = 0\n"
	    "junk_commands = 0\n"
	    "header_size = 1m\n"
	    "mime_parts = 50\n"
	    "[delivery]\n"
	    "retry_initial = 1m\n"
	    "retry_max = 2h\n"
	    "max_lifetime = 1d\n",
	    path, sizeof(path));
	cfg = config_load(path, &err);
	if (cfg == NULL)
		fail_msg("%s", err.data);
	assert_int_equal(cfg->log_syslog, 1);
	assert_int_equal(cfg->log_level, LOGL_DEBUG);
	assert_int_equal(cfg->ndomains, 3);
	assert_string_equal(cfg->domains[1], ".sub.example.test");
	assert_int_equal(cfg->max_size, 10240);
	assert_int_equal(cfg->max_rcpts, 1000);
	assert_int_equal(cfg->command_timeout, 120);
	assert_int_equal(cfg->tls_timeout, 10);
	assert_int_equal(cfg->pregreet_wait, 2);
	assert_int_equal(cfg->min_data_rate, 0);
	assert_int_equal(cfg->junk_limit, 0);
	assert_int_equal(cfg->header_size, 1024 * 1024);
	assert_int_equal(cfg->mime_parts, 50);
	assert_int_equal(cfg->retry_initial, 60);
	assert_int_equal(cfg->retry_max, 7200);
	assert_int_equal(cfg->max_lifetime, 86400);

	/* sorted by preference, equal preferences in the written order */
	r = config_route_for(cfg, "Example.Test");
	assert_non_null(r);
	assert_int_equal(r->tls, SMTP_TLS_REQUIRED);
	assert_int_equal(r->nhosts, 4);
	assert_string_equal(r->hosts[0].spec, "127.0.0.1:2604");
	assert_int_equal(r->hosts[0].pref, 0);
	assert_string_equal(r->hosts[1].spec, "127.0.0.1:2602@10");
	assert_string_equal(r->hosts[2].spec, "[::1]:2603@10");
	assert_int_equal(r->hosts[2].addr.ss_family, AF_INET6);
	assert_int_equal(sockaddr_port(&r->hosts[2]), 2603);
	assert_string_equal(r->hosts[3].spec, "127.0.0.1:2601@20");
	assert_int_equal(sockaddr_port(&r->hosts[3]), 2601);

	/* other domains fall to [route *] */
	r = config_route_for(cfg, "other.example");
	assert_non_null(r);
	assert_string_equal(r->domain, "*");
	assert_int_equal(r->tls, SMTP_TLS_NONE);
	config_free(cfg);
	buf_free(&err);
}

struct error_case {
	const char *what;
	const char *text;
	int line;		/* 0: any line */
	const char *where;	/* "[section] key: " or similar after "file:line: " */
	const char *needle;	/* in the message */
};

static const struct error_case error_cases[] = {
	{ "dmarc discovery", BASE "[dmarc]\ndiscovery = dns\n", 12,
	    "[dmarc] discovery: ", "expected treewalk or psl, got 'dns'" },
	{ "dmarc temperror", BASE "[dmarc]\ntemperror = retry\n", 12,
	    "[dmarc] temperror: ", "expected accept or defer" },
	{ "dmarc budget", BASE "[dmarc]\ntime_budget = 0s\n", 12,
	    "[dmarc] time_budget: ", "expected a duration" },
	{ "dmarc psl file", BASE "[dmarc]\ndiscovery = psl\n"
	    "psl_file = /nonexistent/psl.dat\n", 13, "[dmarc] psl_file: ", "" },
	{ "quarantine action", BASE "[quarantine]\naction = drop\n", 12,
	    "[quarantine] action: ", "expected tag or hold" },
	{ "quarantine header name", BASE "[quarantine]\nverdict_header = X Bad\n",
	    12, "[quarantine] verdict_header: ", "expected a header field name" },
	{ "quarantine scl", BASE "[quarantine]\nexchange_scl = 10\n", 12,
	    "[quarantine] exchange_scl: ", "expected -1 (none) or a level" },
	{ "hybrid relay", BASE "[hybrid]\ntrusted_relays = 10.0.0.0/33\n", 12,
	    "[hybrid] trusted_relays: ", "not an address or network: '10.0.0.0/33'" },
	{ "hybrid mode", BASE "[hybrid]\nmode = trust\n", 12,
	    "[hybrid] mode: ", "expected skip or recover" },
	{ "allow sender", BASE "[allow]\nsenders = a@b@c.example\n", 12,
	    "[allow] senders: ", "expected an address or a domain" },
	{ "allow ips", BASE "[allow]\nips = example.org\n", 12,
	    "[allow] ips: ", "not an address or network" },
	{ "dmarc unknown", BASE "[dmarc]\npolicy = reject\n", 12,
	    "[dmarc] policy: ", "unknown key" },
	{ "unknown key", BASE "[limits]\nbogus = 1\n", 12,
	    "[limits] bogus: ", "unknown key" },
	{ "unknown key in server", "[server]\nhostnam = x.example\n" BASE_LISTENER
	    BASE_DOMAINS, 2, "[server] hostnam: ", "unknown key" },
	{ "unknown section", BASE "[bogus]\nkey = 1\n", 11,
	    "[bogus] ", "unknown section" },
	{ "unknown listener key", BASE "[listener mx2]\nadress = 127.0.0.1\n", 12,
	    "[listener mx2] adress: ", "unknown key" },
	{ "duplicate key", BASE "[limits]\nrecipients = 100\nrecipients = 200\n",
	    13, "[limits] recipients: ", "duplicate key (first at line 12)" },
	{ "duplicate key, other case", BASE "[limits]\nrecipients = 100\n"
	    "Recipients = 200\n", 13, "[limits] Recipients: ", "duplicate" },
	{ "duplicate key, reopened section", BASE "[limits]\nrecipients = 100\n"
	    "[delivery]\nconcurrency = 2\n[limits]\nrecipients = 200\n", 16,
	    "[limits] recipients: ", "duplicate" },
	{ "soft above hard", BASE "[limits]\nsoft_error_limit = 30\n", 12,
	    "[limits] soft_error_limit: ", "above hard_error_limit (20)" },
	{ "pregreet too long", BASE "[limits]\npregreet_wait = 2m\n", 12,
	    "[limits] pregreet_wait: ", "from 0 to 60s" },
	{ "pregreet past the command timeout", BASE "[limits]\npregreet_wait = "
	    "30s\ncommand_timeout = 20\n", 13, "[limits] pregreet_wait: ",
	    "not below command_timeout (20s)" },
	{ "header size too small", BASE "[limits]\nheader_size = 100\n", 12,
	    "[limits] header_size: ", "from 1k to 64m" },
	{ "mime depth zero", BASE "[limits]\nmime_depth = 0\n", 12,
	    "[limits] mime_depth: ", "from 1 to 1000000" },
	{ "negative data rate", BASE "[limits]\nmin_data_rate = -1\n", 12,
	    "[limits] min_data_rate: ", "octets per second" },
	{ "garbage line", BASE "[limits]\nthis is not a setting\n", 12, "",
	    "syntax error" },
	{ "unclosed section", BASE "[limits\nrecipients = 100\n", 11, "",
	    "syntax error" },
	{ "key outside section", "recipients = 100\n" BASE, 1,
	    "recipients: ", "outside" },
	{ "missing listener", BASE_SERVER BASE_DOMAINS, 0, "",
	    "[listener NAME]" },
	{ "listener without port", BASE_SERVER "[listener mx]\naddress = ::1\n"
	    BASE_DOMAINS, 0, "[listener mx] port: ", "missing" },
	{ "listener without address", BASE_SERVER "[listener mx]\nport = 25\n"
	    BASE_DOMAINS, 0, "[listener mx] address: ", "missing" },
	{ "no accepted domains", BASE_SERVER BASE_LISTENER, 0,
	    "[domains] accept: ", "no accepted domains" },
	{ "accepted domain without route", BASE_SERVER BASE_LISTENER
	    "[domains]\naccept = example.test other.example\n"
	    "[route example.test]\nhosts = 127.0.0.1:2526\n", 8,
	    "[domains] accept: ", "no [route other.example]" },
	{ "route without hosts", BASE "[route other.example]\ntls = none\n", 0,
	    "[route other.example] hosts: ", "missing" },
	{ "route for a bad domain", BASE "[route bad..example]\nhosts = 127.0.0.1:25\n",
	    12, "[route bad..example] ", "not a domain" },
	{ "retry_initial above retry_max", BASE "[delivery]\nretry_initial = 2h\n"
	    "retry_max = 1h\n", 0, "[delivery] retry_initial: ", "retry_max" },
	{ "unreadable certificate", BASE "[tls]\ncertificate = /nonexistent/cert.pem\n"
	    "key = /nonexistent/key.pem\n", 0, "[tls] certificate: ", "cannot read" },

	/* bad values */
	{ "recipients not a number", BASE "[limits]\nrecipients = ten\n", 12,
	    "[limits] recipients: ", "'ten'" },
	{ "recipients below 100", BASE "[limits]\nrecipients = 99\n", 12,
	    "[limits] recipients: ", "'99'" },
	{ "size suffix", BASE "[limits]\nmessage_size = 10x\n", 12,
	    "[limits] message_size: ", "'10x'" },
	{ "size too small", BASE "[limits]\nmessage_size = 100\n", 12,
	    "[limits] message_size: ", "'100'" },
	{ "size overflow", BASE "[limits]\nmessage_size = 99999999999g\n", 12,
	    "[limits] message_size: ", "'99999999999g'" },
	{ "connections zero", BASE "[limits]\nconnections = 0\n", 12,
	    "[limits] connections: ", "'0'" },
	{ "negative timeout", BASE "[limits]\ncommand_timeout = -5\n", 12,
	    "[limits] command_timeout: ", "'-5'" },
	{ "zero timeout", BASE "[limits]\ndata_timeout = 0\n", 12,
	    "[limits] data_timeout: ", "'0'" },
	{ "empty value", BASE "[limits]\nrecipients =\n", 12,
	    "[limits] recipients: ", "''" },
	{ "bad log", BASE "[server]\nlog = file\n", 12, "[server] log: ", "'file'" },
	{ "bad log level", BASE "[server]\nlog_level = fatal\n", 12,
	    "[server] log_level: ", "'fatal'" },
	{ "bad host name", "[server]\nhostname = bad..host\n" BASE_LISTENER
	    BASE_DOMAINS, 2, "[server] hostname: ", "'bad..host'" },
	{ "empty spool", "[server]\nspool =\n" BASE_LISTENER BASE_DOMAINS, 2,
	    "[server] spool: ", "empty" },
	{ "port too large", BASE_SERVER "[listener mx]\naddress = 127.0.0.1\n"
	    "port = 70000\n" BASE_DOMAINS, 6, "[listener mx] port: ", "'70000'" },
	{ "address not numeric", BASE_SERVER "[listener mx]\naddress = localhost\n"
	    "port = 25\n" BASE_DOMAINS, 5, "[listener mx] address: ", "'localhost'" },
	{ "bad profile", BASE "[listener mx2]\naddress = ::1\nport = 26\n"
	    "profile = outbound\n", 14, "[listener mx2] profile: ", "'outbound'" },
	{ "bad route tls", BASE "[route other.example]\nhosts = 127.0.0.1:25\n"
	    "tls = maybe\n", 13, "[route other.example] tls: ", "'maybe'" },
	{ "host without port", BASE "[route other.example]\nhosts = 127.0.0.1\n",
	    12, "[route other.example] hosts: ", "'127.0.0.1'" },
	{ "host port zero", BASE "[route other.example]\nhosts = 127.0.0.1:0\n",
	    12, "[route other.example] hosts: ", "'127.0.0.1:0'" },
	{ "host bad preference", BASE "[route other.example]\n"
	    "hosts = 127.0.0.1:25@x\n", 12, "[route other.example] hosts: ",
	    "'127.0.0.1:25@x'" },
	{ "host bad brackets", BASE "[route other.example]\nhosts = [::1:25\n",
	    12, "[route other.example] hosts: ", "'[::1:25'" },
	{ "bad concurrency", BASE "[delivery]\nconcurrency = 0\n", 12,
	    "[delivery] concurrency: ", "'0'" },
	{ "bad duration", BASE "[delivery]\nretry_initial = 5x\n", 12,
	    "[delivery] retry_initial: ", "'5x'" },
	{ "bad accepted domain", BASE_SERVER BASE_LISTENER "[domains]\n"
	    "accept = bad..example\n[route *]\nhosts = 127.0.0.1:25\n", 8,
	    "[domains] accept: ", "'bad..example'" },
	{ "literal as accepted domain", BASE_SERVER BASE_LISTENER "[domains]\n"
	    "accept = [192.0.2.1]\n[route *]\nhosts = 127.0.0.1:25\n", 8,
	    "[domains] accept: ", "'[192.0.2.1]'" },
};

/* The error text holds "file:line: where" and the needle on that line. */
static int
check_error(const struct error_case *c, const char *path, const char *errors)
{
	char prefix[256];
	const char *hit, *eol;

	if (c->line)
		snprintf(prefix, sizeof(prefix), "%s:%d: %s", path, c->line,
		    c->where);
	else
		snprintf(prefix, sizeof(prefix), "%s:", path);
	for (hit = errors; (hit = strstr(hit, prefix)) != NULL; hit++) {
		if (hit != errors && hit[-1] != '\n')
			continue;
		eol = strchr(hit, '\n');
		if (eol == NULL)
			eol = hit + strlen(hit);
		if (c->line == 0) {
			/* "file:N: where": any line number */
			const char *p = hit + strlen(prefix);

			if (strspn(p, "0123456789") == 0)
				continue;
			p += strspn(p, "0123456789");
			if (strncmp(p, ": ", 2) != 0 ||
			    strncmp(p + 2, c->where, strlen(c->where)) != 0)
				continue;
		}
		if (memmem(hit, (size_t)(eol - hit), c->needle,
		    strlen(c->needle)) != NULL)
			return 0;
	}
	return -1;
}

static void
test_load_errors(void **state)
{
	size_t i;
	int bad = 0;

	for (i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		const struct error_case *c = &error_cases[i];
		char path[128];
		struct buf err = { 0 };
		struct config *cfg;

		write_config(c->text, path, sizeof(path));
		cfg = config_load(path, &err);
		if (cfg != NULL) {
			print_error("%s: loaded without error\n", c->what);
			config_free(cfg);
			bad++;
		} else if (err.len == 0 || err.data[err.len - 1] != '\n') {
			print_error("%s: no error text\n", c->what);
			bad++;
		} else if (check_error(c, path, err.data) == -1) {
			print_error("%s: expected \"%s:%d: %s...%s\", got:\n%s",
			    c->what, path, c->line, c->where, c->needle, err.data);
			bad++;
		}
		buf_free(&err);
	}
	assert_int_equal(bad, 0);
}

/* A UTF-8 byte order mark before the first line is skipped (Windows
 * editors write one); found by fuzz_config. */
static void
test_load_bom(void **state)
{
	char path[128];
	struct buf err = { 0 };
	struct config *cfg;

	write_config("\xef\xbb\xbf" BASE, path, sizeof(path));
	cfg = config_load(path, &err);
	if (cfg == NULL)
		fail_msg("%s", err.data);
	config_free(cfg);
	/* elsewhere it is not a mark but a stray character */
	write_config(BASE "\xef\xbb\xbf[limits]\n", path, sizeof(path));
	assert_null(config_load(path, &err));
	buf_free(&err);
}

/* All errors of a file are reported, one per line. */
static void
test_load_collects_errors(void **state)
{
	char path[128];
	struct buf err = { 0 };
	struct config *cfg;
	const char *p;
	int lines = 0;

	write_config(BASE "[limits]\nrecipients = ten\nbogus = 1\n"
	    "[delivery]\nconcurrency = 0\n", path, sizeof(path));
	cfg = config_load(path, &err);
	assert_null(cfg);
	for (p = err.data; p && *p; p++)
		if (*p == '\n')
			lines++;
	assert_int_equal(lines, 3);
	assert_non_null(strstr(err.data, ":12: [limits] recipients: "));
	assert_non_null(strstr(err.data, ":13: [limits] bogus: "));
	assert_non_null(strstr(err.data, ":15: [delivery] concurrency: "));
	buf_free(&err);
}

static void
test_load_long_line(void **state)
{
	char text[2048], path[128], line[400];
	struct buf err = { 0 };
	struct config *cfg;
	size_t len;

	/* inih reads lines of up to 198 characters: one longer is refused,
	 * never split into a second, made-up line */
	for (len = 190; len <= 260; len += 10) {
		memset(line, 'x', sizeof(line));
		memcpy(line, "hostname = ", 11);
		line[len] = '\0';
		snprintf(text, sizeof(text), BASE "[server]\nuser = %s\n", line);
		write_config(text, path, sizeof(path));
		cfg = config_load(path, &err);
		if (len <= 198 - 7) {
			/* "user = " + len fits */
			if (cfg == NULL)
				fail_msg("line of %zu: %s", len + 7, err.data);
			config_free(cfg);
		} else {
			char want[160];

			assert_null(cfg);
			snprintf(want, sizeof(want), "%s:12: line longer than",
			    path);
			if (strstr(err.data, want) == NULL)
				fail_msg("line of %zu: %s", len + 7, err.data);
		}
		buf_reset(&err);
	}

	/* a long comment is refused too, and the lines after it still count */
	memset(line, 'c', 300);
	line[0] = ';';
	line[300] = '\0';
	snprintf(text, sizeof(text), "%s\n" BASE "[limits]\nbogus = 1\n", line);
	write_config(text, path, sizeof(path));
	assert_null(config_load(path, &err));
	assert_non_null(strstr(err.data, ":1: line longer than"));
	assert_non_null(strstr(err.data, ":13: [limits] bogus: unknown key"));
	buf_free(&err);
}

static void
test_load_boundary_line(void **state)
{
	char text[1024], path[128], comment[256];
	struct buf err = { 0 };
	struct config *cfg;

	/* exactly 198 characters before the newline: accepted */
	memset(comment, 'c', 198);
	comment[0] = ';';
	comment[198] = '\0';
	snprintf(text, sizeof(text), BASE "%s\n", comment);
	write_config(text, path, sizeof(path));
	cfg = config_load(path, &err);
	if (cfg == NULL)
		fail_msg("%s", err.data);
	config_free(cfg);
	/* 199: refused */
	memset(comment, 'c', 199);
	comment[0] = ';';
	comment[199] = '\0';
	snprintf(text, sizeof(text), BASE "%s\n", comment);
	write_config(text, path, sizeof(path));
	assert_null(config_load(path, &err));
	assert_non_null(strstr(err.data, ":11: line longer than"));
	buf_free(&err);
}

static void
test_load_missing_file(void **state)
{
	struct buf err = { 0 };

	assert_null(config_load("/nonexistent/mxgate.ini", &err));
	assert_non_null(strstr(err.data, "/nonexistent/mxgate.ini"));
	assert_non_null(strstr(err.data, "cannot open"));
	buf_free(&err);
}

/* "Unknown sections ... are errors" (etc/mxgate.ini), even empty ones:
 * "[listner mx]" with its keys commented out is still a typo. */
static void
test_load_empty_unknown_section(void **state)
{
	char path[128];
	struct buf err = { 0 };
	struct config *cfg;

	int accepted, found;

	write_config(BASE "[bogus]\n", path, sizeof(path));
	cfg = config_load(path, &err);
	accepted = cfg != NULL;
	config_free(cfg);
	found = err.data != NULL && strstr(err.data, ":11: [bogus] ") != NULL;
	buf_free(&err);
	if (accepted)
		fail_msg("an empty [bogus] section was accepted");
	assert_true(found);
}

/* The certificate without its key: the error points at the line that
 * names the certificate, not at the end of the file. */
static void
test_load_tls_cert_without_key(void **state)
{
	static const struct {
		const char *text;
		int line;
		const char *where;
	} cases[] = {
		{ BASE "[tls]\ncertificate = " EXAMPLE_INI "\n"
		    "[limits]\nrecipients = 100\n", 12, "[tls] certificate: " },
		{ BASE "[tls]\ncertificate = " EXAMPLE_INI "\nkey =\n"
		    "[limits]\nrecipients = 100\n", 12, "[tls] certificate: " },
		{ BASE "[tls]\nkey = " EXAMPLE_INI "\n"
		    "[limits]\nrecipients = 100\n", 12, "[tls] key: " },
	};
	size_t i;
	int bad = 0;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[128], want[200];
		struct buf err = { 0 };
		struct config *cfg;

		write_config(cases[i].text, path, sizeof(path));
		cfg = config_load(path, &err);
		if (cfg != NULL) {
			print_error("tls case %zu: accepted\n", i);
			config_free(cfg);
			buf_free(&err);
			bad++;
			continue;
		}
		snprintf(want, sizeof(want), "%s:%d: %s", path, cases[i].line,
		    cases[i].where);
		if (strstr(err.data, want) == NULL) {
			print_error("tls case %zu: expected \"%s...\", got %s", i,
			    want, err.data);
			bad++;
		}
		buf_free(&err);
	}
	assert_int_equal(bad, 0);
}

static void
test_accepts_domain(void **state)
{
	static char *domains[] = { "example.test", ".sub.example", "Mixed.Example" };
	static const struct {
		const char *domain;
		int accepted;
	} cases[] = {
		{ "example.test", 1 },
		{ "EXAMPLE.TEST", 1 },
		{ "Example.Test", 1 },
		{ "a.example.test", 0 },	/* exact only without a dot */
		{ "xexample.test", 0 },
		{ "example.test.", 0 },
		{ "example", 0 },
		{ "test", 0 },
		{ "", 0 },
		{ "a.sub.example", 1 },		/* leading dot: subdomains */
		{ "A.SUB.EXAMPLE", 1 },
		{ "x.y.sub.example", 1 },
		{ "xsub.example", 0 },
		{ "sub.example.evil", 0 },
		{ "mixed.example", 1 },
		{ "MIXED.EXAMPLE", 1 },
		{ "a.mixed.example", 0 },
	};
	struct config cfg;
	size_t i;

	memset(&cfg, 0, sizeof(cfg));
	cfg.domains = domains;
	cfg.ndomains = sizeof(domains) / sizeof(domains[0]);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (!!config_accepts_domain(&cfg, cases[i].domain) !=
		    cases[i].accepted)
			fail_msg("\"%s\": expected %s", cases[i].domain,
			    cases[i].accepted ? "accepted" : "refused");
	cfg.ndomains = 0;
	assert_false(config_accepts_domain(&cfg, "example.test"));
}

static void
test_route_for(void **state)
{
	struct config_route routes[] = {
		{ .domain = "*" },		/* listed first: exact still wins */
		{ .domain = "example.test" },
		{ .domain = "Other.Example" },
	};
	static const struct {
		const char *domain;
		int route;		/* index, -1 none */
	} cases[] = {
		{ "example.test", 1 },
		{ "EXAMPLE.TEST", 1 },
		{ "other.example", 2 },
		{ "OTHER.EXAMPLE", 2 },
		{ "sub.example.test", 0 },
		{ "unknown.example", 0 },
		{ "*", 0 },
		{ "", 0 },
	};
	struct config cfg;
	size_t i;

	memset(&cfg, 0, sizeof(cfg));
	cfg.routes = routes;
	cfg.nroutes = 3;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (config_route_for(&cfg, cases[i].domain) !=
		    &routes[cases[i].route])
			fail_msg("\"%s\": expected route %d", cases[i].domain,
			    cases[i].route);

	/* without "*": NULL for the others */
	cfg.routes = routes + 1;
	cfg.nroutes = 2;
	assert_ptr_equal(config_route_for(&cfg, "example.test"), &routes[1]);
	assert_null(config_route_for(&cfg, "unknown.example"));
	assert_null(config_route_for(&cfg, "*x"));
	cfg.nroutes = 0;
	assert_null(config_route_for(&cfg, "example.test"));
}

static void
test_route_for_subdomains(void **state)
{
	struct config_route routes[] = {
		{ .domain = ".example.test" },
		{ .domain = ".deep.example.test" },
		{ .domain = "example.test" },
		{ .domain = "*" },
	};
	static const struct {
		const char *domain;
		int route;
	} cases[] = {
		{ "example.test", 2 },		/* exact beats the dotted form */
		{ "a.example.test", 0 },
		{ "A.B.EXAMPLE.TEST", 0 },
		{ "x.deep.example.test", 1 },	/* longest parent wins */
		{ "deep.example.test", 0 },	/* ".deep..." means below it */
		{ "notexample.test", 3 },	/* a label boundary, not a suffix */
		{ "other.test", 3 },
	};
	struct config cfg;
	size_t i;

	memset(&cfg, 0, sizeof(cfg));
	cfg.routes = routes;
	cfg.nroutes = 4;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (config_route_for(&cfg, cases[i].domain) !=
		    &routes[cases[i].route])
			fail_msg("\"%s\": expected route %d", cases[i].domain,
			    cases[i].route);
}

static void
test_load_subdomain_needs_route(void **state)
{
	static const char text[] =
	    "[listener a]\naddress = 127.0.0.1\nport = 2525\n"
	    "[domains]\naccept = example.test .example.test\n"
	    "[route example.test]\nhosts = 127.0.0.1:2526\n";
	char path[128];
	struct buf err = { 0 };
	struct config *cfg;
	FILE *f;

	write_config(text, path, sizeof(path));
	cfg = config_load(path, &err);
	assert_null(cfg);
	assert_non_null(strstr(err.data, ":5: [domains] accept: no [route .example.test]"));
	buf_free(&err);

	assert_non_null(f = fopen(path, "a"));
	fputs("[route .example.test]\nhosts = 127.0.0.1:2527\n", f);
	fclose(f);
	cfg = config_load(path, &err);
	assert_non_null(cfg);
	assert_string_equal(config_route_for(cfg, "mx.example.test")->domain,
	    ".example.test");
	config_free(cfg);
	buf_free(&err);
}

static void
test_load_policy(void **state)
{
	char path[128];
	struct buf err = { 0 };
	struct config *cfg;

	write_config(BASE "[dmarc]\ntemperror = accept\nreject_override = yes\n"
	    "discovery = psl\npsl_file = ../shared/conformance/publicsuffix-list/"
	    "public_suffix_list.dat\n"
	    "[quarantine]\naction = hold\nsubject_prefix = [SPAM]\n"
	    "exchange_scl = 6\nverdict_header = X-Verdict\n"
	    "[hybrid]\nprimary_mx = no\nmode = recover\n"
	    "trusted_relays = 192.0.2.0/24, 2001:db8::1\n"
	    "trusted_relays = 198.51.100.7\n"
	    "[allow]\nsenders = boss@example.org @partner.example\n"
	    "senders = other.example\nips = 203.0.113.0/24\n"
	    "mailing_lists = 203.0.113.9\n", path, sizeof(path));
	cfg = config_load(path, &err);
	if (cfg == NULL && access("../shared/conformance/publicsuffix-list", F_OK) != 0)
		skip();	/* the PSL file comes from ../shared/conformance */
	if (cfg == NULL)
		fail_msg("%s", err.data);
	assert_int_equal(cfg->dmarc_verify, 1);
	assert_int_equal(cfg->dmarc_temperror_defer, 0);
	assert_int_equal(cfg->dmarc_reject_override, 1);
	assert_int_equal(cfg->dmarc_bad_from_reject, 1);
	assert_int_equal(cfg->dmarc_psl_mode, 1);
	assert_non_null(cfg->psl);
	assert_int_equal(cfg->quarantine_hold, 1);
	assert_string_equal(cfg->subject_prefix, "[SPAM]");
	assert_string_equal(cfg->verdict_header, "X-Verdict");
	assert_int_equal(cfg->exchange_scl, 6);
	assert_int_equal(cfg->primary_mx, 0);
	assert_int_equal(cfg->hybrid_recover, 1);
	/* list keys may repeat: lines are short (inih) */
	assert_int_equal(cfg->trusted_relays.n, 3);
	assert_int_equal(cidr_list_match(&cfg->trusted_relays, "192.0.2.77"), 1);
	assert_int_equal(cidr_list_match(&cfg->trusted_relays, "198.51.100.7"), 1);
	assert_int_equal(cidr_list_match(&cfg->trusted_relays, "198.51.100.8"), 0);
	assert_int_equal(cfg->nallow_senders, 3);
	assert_string_equal(cfg->allow_senders[1], "partner.example");
	assert_int_equal(cfg->allow_ips.n, 1);
	assert_int_equal(cfg->mailing_lists.n, 1);
	assert_int_equal(cfg->trusted_forwarders.n, 0);
	config_free(cfg);
	buf_free(&err);

	/* defaults */
	write_config(BASE, path, sizeof(path));
	assert_non_null(cfg = config_load(path, &err));
	assert_int_equal(cfg->dmarc_enforce, 1);
	assert_int_equal(cfg->dmarc_temperror_defer, 1);
	assert_int_equal(cfg->dmarc_partial_body, 0);
	assert_int_equal(cfg->quarantine_hold, 0);
	assert_int_equal(cfg->exchange_scl, -1);
	assert_string_equal(cfg->verdict_header, "X-Mxgate-Verdict");
	assert_string_equal(cfg->subject_prefix, "");
	assert_int_equal(cfg->primary_mx, 1);
	assert_int_equal(cfg->hybrid_recover, 0);
	assert_null(cfg->psl);
	config_free(cfg);
	buf_free(&err);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_parse_int),
		cmocka_unit_test(test_load_example),
		cmocka_unit_test(test_load_minimal_and_defaults),
		cmocka_unit_test(test_load_values),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_load_collects_errors),
		cmocka_unit_test(test_load_bom),
		cmocka_unit_test(test_load_long_line),
		cmocka_unit_test(test_load_boundary_line),
		cmocka_unit_test(test_load_missing_file),
		cmocka_unit_test(test_load_empty_unknown_section),
		cmocka_unit_test(test_load_tls_cert_without_key),
		cmocka_unit_test(test_accepts_domain),
		cmocka_unit_test(test_route_for),
		cmocka_unit_test(test_route_for_subdomains),
		cmocka_unit_test(test_load_subdomain_needs_route),
		cmocka_unit_test(test_load_policy),
	};

	return cmocka_run_group_tests(tests, setup_tmpdir, teardown_tmpdir);
}
