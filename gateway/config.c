#include "gateway/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <ini.h>

#include "gateway/config_int.h"
#include "smtp/path.h"

#define CONFIG_MAX_LINE 200	/* Debian's libinih INI_MAX_LINE */

void
config_error(struct config_load *ld, int line, const char *section,
    const char *name, const char *fmt, ...)
{
	va_list ap;

	buf_appendf(ld->errors, "%s:%d: ", ld->file, line);
	if (section)
		buf_appendf(ld->errors, "[%s] ", section);
	if (name)
		buf_appendf(ld->errors, "%s: ", name);
	va_start(ap, fmt);
	buf_vappendf(ld->errors, fmt, ap);
	va_end(ap);
	buf_appendc(ld->errors, '\n');
	ld->nerrors++;
	ld->last_error_line = line;
}

static int
config_section_known(const char *name)
{
	static const char *const fixed[] = {
		"server", "limits", "delivery", "tls", "domains", "dns", "spf",
		"dkim", "dmarc", "quarantine", "hybrid", "allow", "submission",
		"outbound", "report", "metrics",
	};
	size_t i;

	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (strcasecmp(name, fixed[i]) == 0)
			return 1;
	if (strncasecmp(name, "listener ", 9) == 0 && name[9] != '\0')
		return 1;
	if (strncasecmp(name, "route ", 6) == 0 && name[6] != '\0')
		return 1;
	if (strncasecmp(name, "dkim sign ", 10) == 0 && name[10] != '\0')
		return 1;
	return 0;
}

/*
 * Line syntax, checked here so every error of a file is reported (inih
 * only returns the first) and so sections without keys, which inih never
 * mentions, are checked too. Returns -1 for a line already reported.
 */
static int
config_check_line(struct config_load *ld, const char *line)
{
	char name[256];
	const char *p = line, *end;
	size_t n;

	/* a UTF-8 byte order mark, as some Windows editors write (inih
	 * skips it too) */
	if (ld->line == 1 && strncmp(p, "\xef\xbb\xbf", 3) == 0)
		p += 3;
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	if (*p == '\0' || *p == ';' || *p == '#')
		return 0;
	if (*p != '[') {
		if (strpbrk(p, "=:") == NULL) {
			config_error(ld, ld->line, NULL, NULL,
			    "syntax error: expected [section] or key = value");
			return -1;
		}
		return 0;
	}
	if ((end = strchr(p, ']')) == NULL) {
		config_error(ld, ld->line, NULL, NULL,
		    "syntax error: section header without ']'");
		return -1;
	}
	p++;
	while (*p == ' ' || *p == '\t')
		p++;
	n = (size_t)(end - p);
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	if (n >= sizeof(name))
		n = sizeof(name) - 1;
	memcpy(name, p, n);
	name[n] = '\0';
	if (!config_section_known(name))
		config_error(ld, ld->line, name, NULL, "unknown section");
	return 0;
}

/* ini_reader that counts lines and refuses silently-split long lines. */
static char *
config_reader(char *str, int num, void *stream)
{
	struct config_load *ld = stream;
	ssize_t n = getline(&ld->linebuf, &ld->linecap, ld->fp);

	if (n < 0)
		return NULL;
	ld->line++;
	if (n >= num - 1 && !(n == num - 1 && ld->linebuf[n - 1] == '\n')) {
		config_error(ld, ld->line, NULL, NULL,
		    "line longer than %d characters", num - 2);
		/* hand inih a comment so it does not misparse a fragment */
		snprintf(str, (size_t)num, ";\n");
		return str;
	}
	memcpy(str, ld->linebuf, (size_t)n + 1);
	if (config_check_line(ld, str) == -1)
		snprintf(str, (size_t)num, ";\n");	/* reported; hide from inih */
	return str;
}

int
config_dup_string(char **field, const char *v)
{
	char *c = strdup(v);

	if (c == NULL)
		return -1;
	free(*field);
	*field = c;
	return 0;
}

/* Split a list on commas and white space; calls fn for each item. */
int
config_list(const char *v, int (*fn)(struct config_load *, const char *,
    const char *, const char *, void *), struct config_load *ld,
    const char *section, const char *name, void *arg)
{
	char *copy = strdup(v), *p, *save = NULL;
	int r = 0;

	if (copy == NULL)
		return -1;
	for (p = strtok_r(copy, ", \t", &save); p; p = strtok_r(NULL, ", \t", &save))
		if (fn(ld, section, name, p, arg) == -1)
			r = -1;
	free(copy);
	return r;
}

static int
config_add_domain(struct config_load *ld, const char *section,
    const char *name, const char *item, void *arg)
{
	struct config *cfg = ld->cfg;
	char **d;
	const char *check = item[0] == '.' ? item + 1 : item;

	if (smtp_path_check_domain(check, 1) == -1 || check[0] == '[') {
		config_error(ld, ld->line, section, name, "not a domain: '%s'", item);
		return -1;
	}
	if ((d = realloc(cfg->domains, (cfg->ndomains + 1) * sizeof(*d))) == NULL)
		return -1;
	cfg->domains = d;
	if ((d[cfg->ndomains] = strdup(item)) == NULL)
		return -1;
	cfg->ndomains++;
	return 0;
}

static struct config_listener *
config_listener(struct config_load *ld, const char *name)
{
	struct config *cfg = ld->cfg;
	struct config_listener *l;
	size_t i;

	for (i = 0; i < cfg->nlisteners; i++)
		if (strcmp(cfg->listeners[i].name, name) == 0)
			return &cfg->listeners[i];
	l = realloc(cfg->listeners, (cfg->nlisteners + 1) * sizeof(*l));
	if (l == NULL)
		return NULL;
	cfg->listeners = l;
	l = &cfg->listeners[cfg->nlisteners];
	memset(l, 0, sizeof(*l));
	if ((l->name = strdup(name)) == NULL)
		return NULL;
	l->profile = PROFILE_INBOUND;
	l->line = ld->line;
	cfg->nlisteners++;
	return l;
}

static struct config_route *
config_route(struct config_load *ld, const char *domain)
{
	struct config *cfg = ld->cfg;
	struct config_route *r;
	size_t i;

	for (i = 0; i < cfg->nroutes; i++)
		if (strcasecmp(cfg->routes[i].domain, domain) == 0)
			return &cfg->routes[i];
	r = realloc(cfg->routes, (cfg->nroutes + 1) * sizeof(*r));
	if (r == NULL)
		return NULL;
	cfg->routes = r;
	r = &cfg->routes[cfg->nroutes];
	memset(r, 0, sizeof(*r));
	if ((r->domain = strdup(domain)) == NULL)
		return NULL;
	r->tls = SMTP_TLS_OPPORTUNISTIC;
	r->line = ld->line;
	cfg->nroutes++;
	return r;
}

/* "host:port[@pref]", "[v6]:port[@pref]"; resolved now. */
static int
config_add_host(struct config_load *ld, const char *section, const char *name,
    const char *item, void *arg)
{
	struct config_route *route = arg;
	struct config_host *h;
	struct addrinfo hints, *res = NULL;
	char host[300], port[16], *at, *colon, spec[300];
	int pref = 0, gai, portnum;
	size_t i;

	if (strlen(item) >= sizeof(spec)) {
		config_error(ld, ld->line, section, name, "host entry too long");
		return -1;
	}
	snprintf(spec, sizeof(spec), "%s", item);
	if ((at = strchr(spec, '@')) != NULL) {
		*at++ = '\0';
		if (config_parse_int(at, 0, 65535, &pref) == -1) {
			config_error(ld, ld->line, section, name,
			    "bad preference in '%s'", item);
			return -1;
		}
	}
	if (spec[0] == '[') {
		char *close = strchr(spec, ']');

		if (close == NULL || close[1] != ':')
			goto bad;
		*close = '\0';
		snprintf(host, sizeof(host), "%s", spec + 1);
		colon = close + 1;
	} else {
		if ((colon = strrchr(spec, ':')) == NULL)
			goto bad;
		*colon = '\0';
		snprintf(host, sizeof(host), "%s", spec);
	}
	if (config_parse_int(colon + 1, 1, 65535, &portnum) == -1 || host[0] == '\0')
		goto bad;
	snprintf(port, sizeof(port), "%d", portnum);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if ((gai = getaddrinfo(host, port, &hints, &res)) != 0) {
		config_error(ld, ld->line, section, name, "cannot resolve '%s': %s",
		    host, gai_strerror(gai));
		return -1;
	}
	h = realloc(route->hosts, (route->nhosts + 1) * sizeof(*h));
	if (h == NULL) {
		freeaddrinfo(res);
		return -1;
	}
	route->hosts = h;
	/* keep sorted by preference, stable for equal ones */
	for (i = route->nhosts; i > 0 && h[i - 1].pref > pref; i--)
		h[i] = h[i - 1];
	memset(&h[i], 0, sizeof(h[i]));
	h[i].pref = pref;
	memcpy(&h[i].addr, res->ai_addr, res->ai_addrlen);
	h[i].addrlen = res->ai_addrlen;
	h[i].spec = strdup(item);
	h[i].name = strdup(host);
	route->nhosts++;
	freeaddrinfo(res);
	return h[i].spec && h[i].name ? 0 : -1;
bad:
	config_error(ld, ld->line, section, name,
	    "expected host:port[@preference], got '%s'", item);
	return -1;
}

static int
config_seen(struct config_load *ld, const char *section, const char *name)
{
	char key[512];
	size_t i;
	struct config_seen *s;

	snprintf(key, sizeof(key), "%s\n%s", section, name);
	for (i = 0; i < ld->nseen; i++)
		if (strcasecmp(ld->seen[i].key, key) == 0) {
			config_error(ld, ld->line, section, name,
			    "duplicate key (first at line %d)", ld->seen[i].line);
			return -1;
		}
	if ((s = realloc(ld->seen, (ld->nseen + 1) * sizeof(*s))) == NULL)
		return -1;
	ld->seen = s;
	s[ld->nseen].key = strdup(key);
	s[ld->nseen].line = ld->line;
	ld->nseen++;
	return 0;
}

#define IS(k) (strcasecmp(name, (k)) == 0)

static int
config_server(struct config_load *ld, const char *section, const char *name,
    const char *v)
{
	struct config *cfg = ld->cfg;

	if (IS("hostname")) {
		if (smtp_path_check_domain(v, 0) == -1 || v[0] == '[') {
			config_error(ld, ld->line, section, name,
			    "not a host name: '%s'", v);
			return 1;
		}
		return config_dup_string(&cfg->hostname, v);
	}
	if (IS("spool")) {
		if (v[0] == '\0') {
			config_error(ld, ld->line, section, name, "must not be empty");
			return 1;
		}
		return config_dup_string(&cfg->spool, v);
	}
	if (IS("user"))
		return config_dup_string(&cfg->user, v);
	if (IS("log")) {
		if (strcasecmp(v, "stderr") == 0)
			cfg->log_syslog = 0;
		else if (strcasecmp(v, "syslog") == 0)
			cfg->log_syslog = 1;
		else
			config_error(ld, ld->line, section, name,
			    "expected stderr or syslog, got '%s'", v);
		return 0;
	}
	if (IS("log_format")) {
		if (strcasecmp(v, "text") == 0)
			cfg->log_json = 0;
		else if (strcasecmp(v, "json") == 0)
			cfg->log_json = 1;
		else
			config_error(ld, ld->line, section, name,
			    "expected text or json, got '%s'", v);
		return 0;
	}
	if (IS("log_level")) {
		if (log_level_parse(v, &cfg->log_level) == -1 ||
		    cfg->log_level == LOGL_FATAL)
			config_error(ld, ld->line, section, name,
			    "expected debug, info, warning or error, got '%s'", v);
		return 0;
	}
	return 2;
}

void
config_bad_value(struct config_load *ld, const char *section, const char *name,
    const char *what, const char *v)
{
	config_error(ld, ld->line, section, name, "%s, got '%s'", what, v);
}

static int
config_limits(struct config_load *ld, const char *section, const char *name,
    const char *v)
{
	struct config *cfg = ld->cfg;
	int n;

	if (IS("message_size")) {
		if (config_parse_size(v, &cfg->max_size) == -1 || cfg->max_size < 1024)
			config_bad_value(ld, section, name,
			    "expected a size of at least 1k (e.g. 50m)", v);
	} else if (IS("recipients")) {
		/* RFC 5321 4.5.3.1.8: at least 100 must be accepted */
		if (config_parse_int(v, 100, 100000, &n) == -1)
			config_bad_value(ld, section, name,
			    "expected a number from 100 (RFC 5321 4.5.3.1.8) to 100000", v);
		else
			cfg->max_rcpts = (size_t)n;
	} else if (IS("connections")) {
		if (config_parse_int(v, 1, 1000000, &cfg->max_conn) == -1)
			config_bad_value(ld, section, name, "expected a number >= 1", v);
	} else if (IS("connections_per_ip")) {
		if (config_parse_int(v, 1, 1000000, &cfg->max_conn_per_ip) == -1)
			config_bad_value(ld, section, name, "expected a number >= 1", v);
	} else if (IS("min_free_space")) {
		if (config_parse_size(v, &cfg->min_free_space) == -1)
			config_bad_value(ld, section, name,
			    "expected a size (e.g. 64m; 0 turns the check off)", v);
	} else if (IS("command_timeout") || IS("data_timeout") ||
	    IS("tls_timeout")) {
		int *t = IS("command_timeout") ? &cfg->command_timeout :
		    IS("data_timeout") ? &cfg->data_timeout : &cfg->tls_timeout;

		if (config_parse_duration(v, t) == -1 || *t < 1)
			config_bad_value(ld, section, name,
			    "expected a duration (e.g. 300, 5m)", v);
	} else if (IS("pregreet_wait") || IS("error_delay")) {
		int *t = IS("pregreet_wait") ? &cfg->pregreet_wait :
		    &cfg->error_delay;

		if (config_parse_duration(v, t) == -1 || *t > 60)
			config_bad_value(ld, section, name,
			    "expected a duration from 0 to 60s", v);
	} else if (IS("min_data_rate")) {
		if (config_parse_int(v, 0, 1000000000, &cfg->min_data_rate) == -1)
			config_bad_value(ld, section, name,
			    "expected octets per second (0 turns it off)", v);
	} else if (IS("soft_error_limit") || IS("hard_error_limit") ||
	    IS("junk_commands")) {
		int *t = IS("soft_error_limit") ? &cfg->soft_error_limit :
		    IS("hard_error_limit") ? &cfg->hard_error_limit :
		    &cfg->junk_limit;

		if (config_parse_int(v, 0, 1000000, t) == -1)
			config_bad_value(ld, section, name,
			    "expected a number from 0 (off) to 1000000", v);
	} else if (IS("header_size")) {
		if (config_parse_size(v, &cfg->header_size) == -1 ||
		    cfg->header_size < 1024 || cfg->header_size > 64 * 1024 * 1024)
			config_bad_value(ld, section, name,
			    "expected a size from 1k to 64m", v);
	} else if (IS("header_fields") || IS("mime_depth") ||
	    IS("mime_parts")) {
		size_t *t = IS("header_fields") ? &cfg->header_fields :
		    IS("mime_depth") ? &cfg->mime_depth : &cfg->mime_parts;

		if (config_parse_int(v, 1, 1000000, &n) == -1)
			config_bad_value(ld, section, name,
			    "expected a number from 1 to 1000000", v);
		else
			*t = (size_t)n;
	} else
		return 2;
	return 0;
}

static int
config_delivery(struct config_load *ld, const char *section, const char *name,
    const char *v)
{
	struct config *cfg = ld->cfg;
	static const struct {
		const char *key;
		size_t off;
	} durations[] = {
		{ "retry_initial", offsetof(struct config, retry_initial) },
		{ "retry_max", offsetof(struct config, retry_max) },
		{ "max_lifetime", offsetof(struct config, max_lifetime) },
		{ "connect_timeout", offsetof(struct config, connect_timeout) },
		{ "command_timeout", offsetof(struct config, delivery_command_timeout) },
		{ "data_timeout", offsetof(struct config, delivery_data_timeout) },
		{ "idle_timeout", offsetof(struct config, idle_timeout) },
	};
	size_t i;

	if (IS("mx_port")) {
		if (config_parse_int(v, 1, 65535, &cfg->mx_port) == -1)
			config_bad_value(ld, section, name,
			    "expected a port from 1 to 65535", v);
		return 0;
	}
	if (IS("destination_concurrency")) {
		if (config_parse_int(v, 1, 10000, &cfg->dest_concurrency) == -1)
			config_bad_value(ld, section, name,
			    "expected a number from 1 to 10000", v);
		return 0;
	}
	if (IS("ca_file")) {
		if (*v != '\0' && access(v, R_OK) == -1)
			config_error(ld, ld->line, section, name,
			    "cannot read %s: %s", v, strerror(errno));
		return config_dup_string(&cfg->ca_file, v);
	}
	if (IS("delay_warning")) {
		/* 0 turns the delay warnings (RFC 3464 "delayed") off */
		if (config_parse_duration(v, &cfg->delay_warning) == -1 ||
		    cfg->delay_warning < 0)
			config_bad_value(ld, section, name,
			    "expected a duration (e.g. 4h), 0 for none", v);
		return 0;
	}
	if (IS("concurrency")) {
		if (config_parse_int(v, 1, 10000, &cfg->delivery_concurrency) == -1)
			config_bad_value(ld, section, name,
			    "expected a number from 1 to 10000", v);
		return 0;
	}
	for (i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
		if (!IS(durations[i].key))
			continue;
		int *t = (int *)((char *)cfg + durations[i].off);

		if (config_parse_duration(v, t) == -1 || *t < 1)
			config_bad_value(ld, section, name,
			    "expected a duration of at least 1s (e.g. 30, 5m, 1h, 5d)", v);
		return 0;
	}
	return 2;
}

static int
config_add_dns_server(struct config_load *ld, const char *section,
    const char *name, const char *item, void *arg)
{
	struct config *cfg = ld->cfg;
	char **d;

	if (strlen(item) > 300 || strchr(item, ',') != NULL) {
		config_error(ld, ld->line, section, name, "bad server '%s'", item);
		return -1;
	}
	if ((d = realloc(cfg->dns_servers, (cfg->ndns_servers + 1) *
	    sizeof(*d))) == NULL)
		return -1;
	cfg->dns_servers = d;
	if ((d[cfg->ndns_servers] = strdup(item)) == NULL)
		return -1;
	cfg->ndns_servers++;
	return 0;
}

static int
config_dns_spf(struct config_load *ld, const char *section, const char *name,
    const char *v)
{
	struct config *cfg = ld->cfg;
	int *flag = NULL;

	if (strcasecmp(section, "dns") == 0) {
		if (IS("servers")) {
			config_list(v, config_add_dns_server, ld, section, name, NULL);
			return 0;
		}
		if (IS("timeout")) {
			int secs;

			if (config_parse_duration(v, &secs) == -1 || secs < 1 ||
			    secs > 60)
				config_bad_value(ld, section, name,
				    "expected a duration from 1s to 60s", v);
			else
				cfg->dns_timeout_ms = secs * 1000;
			return 0;
		}
		if (IS("cache")) {
			if (config_parse_int(v, 0, 10000000, &cfg->dns_cache) == -1)
				config_bad_value(ld, section, name,
				    "expected a number of entries (0 disables)", v);
			return 0;
		}
		return 2;
	}
	if (IS("check_helo"))
		flag = &cfg->spf_helo;
	else if (IS("check_mailfrom"))
		flag = &cfg->spf_mailfrom;
	else if (IS("reject_fail"))
		flag = &cfg->spf_reject_fail;
	else if (IS("defer_temperror"))
		flag = &cfg->spf_defer_temperror;
	else if (IS("time_budget")) {
		if (config_parse_duration(v, &cfg->spf_budget) == -1 ||
		    cfg->spf_budget < 1 || cfg->spf_budget > 300)
			config_bad_value(ld, section, name,
			    "expected a duration from 1s to 5m", v);
		return 0;
	} else
		return 2;
	if (config_parse_bool(v, flag) == -1)
		config_bad_value(ld, section, name, "expected yes or no", v);
	return 0;
}

/* Returns 0 handled, 1 handled with error reported, 2 unknown key, -1 OOM. */
static int
config_key(struct config_load *ld, const char *section, const char *name,
    const char *v)
{
	struct config *cfg = ld->cfg;
	int pr;

	if (strcasecmp(section, "server") == 0)
		return config_server(ld, section, name, v);
	if (strcasecmp(section, "limits") == 0)
		return config_limits(ld, section, name, v);
	if (strcasecmp(section, "delivery") == 0)
		return config_delivery(ld, section, name, v);
	if (strcasecmp(section, "dns") == 0 || strcasecmp(section, "spf") == 0)
		return config_dns_spf(ld, section, name, v);
	if (strcasecmp(section, "dkim") == 0) {
		if (!IS("verify"))
			return 2;
		if (config_parse_bool(v, &cfg->dkim_verify) == -1)
			config_bad_value(ld, section, name, "expected yes or no", v);
		return 0;
	}
	if ((pr = config_policy_key(ld, section, name, v)) != 3)
		return pr;
	if ((pr = config_outbound_key(ld, section, name, v)) != 3)
		return pr;
	if ((pr = config_report_key(ld, section, name, v)) != 3)
		return pr;
	if (strcasecmp(section, "metrics") == 0) {
		if (!IS("listen"))
			return 2;
		/* host:port, IPv6 in brackets; checked where it is bound */
		if (strrchr(v, ':') == NULL || strrchr(v, ':')[1] == '\0') {
			config_bad_value(ld, section, name, "expected host:port", v);
			return 0;
		}
		return config_dup_string(&cfg->metrics_listen, v);
	}
	if (strcasecmp(section, "tls") == 0) {
		if (IS("certificate")) {
			ld->cert_line = ld->line;
			return config_dup_string(&cfg->tls_cert, v);
		}
		if (IS("key")) {
			ld->key_line = ld->line;
			return config_dup_string(&cfg->tls_key, v);
		}
		return 2;
	}
	if (strcasecmp(section, "domains") == 0) {
		if (IS("accept")) {
			ld->accept_line = ld->line;
			config_list(v, config_add_domain, ld, section, name, NULL);
			return 0;
		}
		return 2;
	}
	if (strncasecmp(section, "listener ", 9) == 0) {
		struct config_listener *l = config_listener(ld, section + 9);

		if (l == NULL)
			return -1;
		if (IS("address")) {
			unsigned char a[16];

			if (inet_pton(AF_INET, v, a) != 1 && inet_pton(AF_INET6, v, a) != 1) {
				config_bad_value(ld, section, name,
				    "expected an IPv4 or IPv6 address", v);
				return 1;
			}
			return config_dup_string(&l->address, v);
		}
		if (IS("port")) {
			if (config_parse_int(v, 1, 65535, &l->port) == -1)
				config_bad_value(ld, section, name,
				    "expected a port from 1 to 65535", v);
			return 0;
		}
		if (IS("profile")) {
			if (strcasecmp(v, "inbound") == 0)
				l->profile = PROFILE_INBOUND;
			else if (strcasecmp(v, "submission") == 0)
				l->profile = PROFILE_SUBMISSION;
			else if (strcasecmp(v, "submissions") == 0)
				l->profile = PROFILE_SUBMISSIONS;
			else
				config_bad_value(ld, section, name,
				    "expected inbound, submission or submissions", v);
			return 0;
		}
		return 2;
	}
	if (strncasecmp(section, "route ", 6) == 0) {
		const char *dom = section + 6;
		struct config_route *r;

		const char *check = dom[0] == '.' ? dom + 1 : dom;

		if (strcmp(dom, "*") != 0 &&
		    (smtp_path_check_domain(check, 1) == -1 || check[0] == '[')) {
			config_error(ld, ld->line, section, NULL,
			    "not a domain: '%s'", dom);
			return 1;
		}
		if ((r = config_route(ld, dom)) == NULL)
			return -1;
		if (IS("hosts")) {
			/* hosts = mx: by MX lookup, with this route's tls */
			if (strcasecmp(v, "mx") == 0)
				r->mx = 1;
			else
				config_list(v, config_add_host, ld, section, name, r);
			return 0;
		}
		if (IS("tls")) {
			if (strcasecmp(v, "none") == 0)
				r->tls = SMTP_TLS_NONE;
			else if (strcasecmp(v, "opportunistic") == 0)
				r->tls = SMTP_TLS_OPPORTUNISTIC;
			else if (strcasecmp(v, "required") == 0)
				r->tls = SMTP_TLS_REQUIRED;
			else if (strcasecmp(v, "verify") == 0)
				r->tls = SMTP_TLS_VERIFY;
			else
				config_bad_value(ld, section, name,
				    "expected none, opportunistic, required or verify", v);
			return 0;
		}
		return 2;
	}
	return 1;	/* unknown section: reported by config_check_section */
}

static int
config_handler(void *user, const char *section, const char *name,
    const char *value)
{
	struct config_load *ld = user;
	int r;

	if (section[0] == '\0') {
		config_error(ld, ld->line, NULL, name, "key outside any section");
		return 1;
	}
	if (!config_policy_repeatable(section, name) &&
	    config_seen(ld, section, name) == -1)
		return 1;
	r = config_key(ld, section, name, value);
	if (r == 2)
		config_error(ld, ld->line, section, name, "unknown key");
	else if (r == -1)
		config_error(ld, ld->line, section, name, "out of memory");
	return 1;	/* keep going: report every error */
}

static void
config_validate(struct config_load *ld)
{
	struct config *cfg = ld->cfg;
	size_t i;

	if (cfg->nlisteners == 0)
		config_error(ld, ld->line, NULL, NULL,
		    "no [listener NAME] section: nothing to listen on");
	for (i = 0; i < cfg->nlisteners; i++) {
		struct config_listener *l = &cfg->listeners[i];
		char sec[300];

		snprintf(sec, sizeof(sec), "listener %s", l->name);
		if (l->address == NULL)
			config_error(ld, l->line, sec, "address", "missing");
		if (l->port == 0)
			config_error(ld, l->line, sec, "port", "missing");
	}
	if (cfg->pregreet_wait > 0 && cfg->pregreet_wait >= cfg->command_timeout)
		config_error(ld, ld->line, "limits", "pregreet_wait",
		    "%ds is not below command_timeout (%ds)", cfg->pregreet_wait,
		    cfg->command_timeout);
	if (cfg->hard_error_limit > 0 &&
	    cfg->soft_error_limit > cfg->hard_error_limit)
		config_error(ld, ld->line, "limits", "soft_error_limit",
		    "%d is above hard_error_limit (%d)", cfg->soft_error_limit,
		    cfg->hard_error_limit);
	if (cfg->ndomains == 0)
		config_error(ld, ld->accept_line ? ld->accept_line : ld->line,
		    "domains", "accept", "no accepted domains: the MX would refuse all mail");
	for (i = 0; i < cfg->ndomains; i++) {
		const char *d = cfg->domains[i];
		char sub[300];

		/* a ".example.test" entry needs a route for its subdomains */
		snprintf(sub, sizeof(sub), "%s%s", d[0] == '.' ? "sub" : "", d);
		if (config_route_for(cfg, sub) == NULL)
			config_error(ld, ld->accept_line, "domains", "accept",
			    "no [route %s] and no [route *] for accepted domain", d);
	}
	for (i = 0; i < cfg->nroutes; i++) {
		char sec[300];

		snprintf(sec, sizeof(sec), "route %s", cfg->routes[i].domain);
		if (cfg->routes[i].nhosts == 0 && !cfg->routes[i].mx)
			config_error(ld, cfg->routes[i].line, sec, "hosts", "missing");
	}
	if (cfg->tls_cert && *cfg->tls_cert && !(cfg->tls_key && *cfg->tls_key))
		config_error(ld, ld->cert_line, "tls", "certificate",
		    "given without [tls] key");
	else if (cfg->tls_key && *cfg->tls_key && !(cfg->tls_cert && *cfg->tls_cert))
		config_error(ld, ld->key_line, "tls", "key",
		    "given without [tls] certificate");
	for (i = 0; i < 2; i++) {
		const char *f = i ? cfg->tls_key : cfg->tls_cert;

		if (f && *f && access(f, R_OK) == -1)
			config_error(ld, i ? ld->key_line : ld->cert_line, "tls",
			    i ? "key" : "certificate", "cannot read %s: %s", f,
			    strerror(errno));
	}
	if (cfg->retry_initial > cfg->retry_max)
		config_error(ld, ld->line, "delivery", "retry_initial",
		    "larger than retry_max");
}

struct config *
config_load(const char *path, struct buf *errors)
{
	struct config_load ld;
	struct config *cfg;
	char host[256];
	int r;
	size_t i;

	memset(&ld, 0, sizeof(ld));
	ld.errors = errors;
	ld.file = path;
	if ((cfg = calloc(1, sizeof(*cfg))) == NULL)
		return NULL;
	ld.cfg = cfg;
	cfg->path = strdup(path);
	if (gethostname(host, sizeof(host)) == -1)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	cfg->hostname = strdup(host);
	cfg->spool = strdup("/var/spool/mxgate");
	cfg->log_level = LOGL_INFO;
	cfg->max_size = 50 * 1024 * 1024;
	cfg->max_rcpts = 100;
	cfg->max_conn = 1000;
	cfg->max_conn_per_ip = 50;
	cfg->command_timeout = 300;
	cfg->data_timeout = 180;
	cfg->min_free_space = 64 * 1024 * 1024;
	cfg->min_data_rate = 500;
	cfg->tls_timeout = 60;
	cfg->pregreet_wait = 0;
	cfg->soft_error_limit = 10;
	cfg->hard_error_limit = 20;
	cfg->error_delay = 1;
	cfg->junk_limit = 100;
	cfg->header_size = 256 * 1024;
	cfg->header_fields = 1000;
	cfg->mime_depth = 20;
	cfg->mime_parts = 1000;
	cfg->delivery_concurrency = 20;
	cfg->retry_initial = 300;
	cfg->retry_max = 3600;
	cfg->max_lifetime = 5 * 86400;
	cfg->delay_warning = 4 * 3600;
	cfg->connect_timeout = 30;
	cfg->delivery_command_timeout = 300;
	cfg->delivery_data_timeout = 600;
	cfg->idle_timeout = 10;
	cfg->mx_port = 25;
	cfg->dest_concurrency = 10;
	cfg->dns_timeout_ms = 2000;
	cfg->dns_cache = 10000;
	cfg->spf_helo = 1;
	cfg->spf_mailfrom = 1;
	cfg->spf_budget = 20;
	cfg->dkim_verify = 1;
	config_policy_defaults(cfg);
	config_outbound_defaults(cfg);
	config_report_defaults(cfg);

	if ((ld.fp = fopen(path, "r")) == NULL) {
		buf_appendf(errors, "%s: cannot open: %s\n", path, strerror(errno));
		config_free(cfg);
		return NULL;
	}
	r = ini_parse_stream(config_reader, &ld, config_handler, &ld);
	if (r > 0 && r != ld.last_error_line) {
		/* inih reports its own syntax errors by line only. */
		config_error(&ld, r, NULL, NULL,
		    "syntax error: expected [section] or key = value");
	} else if (r < 0)
		config_error(&ld, ld.line, NULL, NULL, "cannot read file");
	fclose(ld.fp);
	if (ld.nerrors == 0)
		config_validate(&ld);
	if (ld.nerrors == 0)
		config_policy_validate(&ld);
	if (ld.nerrors == 0)
		config_outbound_validate(&ld);
	if (ld.nerrors == 0)
		config_report_validate(&ld);
	free(ld.linebuf);
	for (i = 0; i < ld.nseen; i++)
		free(ld.seen[i].key);
	free(ld.seen);
	if (ld.nerrors > 0) {
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

void
config_free(struct config *cfg)
{
	size_t i, j;

	if (cfg == NULL)
		return;
	for (i = 0; i < cfg->nlisteners; i++) {
		free(cfg->listeners[i].name);
		free(cfg->listeners[i].address);
	}
	free(cfg->listeners);
	for (i = 0; i < cfg->nroutes; i++) {
		for (j = 0; j < cfg->routes[i].nhosts; j++) {
			free(cfg->routes[i].hosts[j].spec);
			free(cfg->routes[i].hosts[j].name);
		}
		free(cfg->routes[i].hosts);
		free(cfg->routes[i].domain);
	}
	free(cfg->routes);
	for (i = 0; i < cfg->ndomains; i++)
		free(cfg->domains[i]);
	free(cfg->domains);
	for (i = 0; i < cfg->ndns_servers; i++)
		free(cfg->dns_servers[i]);
	free(cfg->dns_servers);
	free(cfg->path);
	free(cfg->hostname);
	free(cfg->spool);
	free(cfg->user);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	free(cfg->ca_file);
	free(cfg->metrics_listen);
	config_policy_free(cfg);
	config_outbound_free(cfg);
	config_report_free(cfg);
	free(cfg);
}

int
config_accepts_domain(const struct config *cfg, const char *domain)
{
	size_t i, dl = strlen(domain);

	for (i = 0; i < cfg->ndomains; i++) {
		const char *d = cfg->domains[i];
		size_t l = strlen(d);

		if (d[0] == '.') {
			/* ".example.test" matches any subdomain */
			if (dl > l && strcasecmp(domain + dl - l, d) == 0)
				return 1;
		} else if (strcasecmp(domain, d) == 0)
			return 1;
	}
	return 0;
}

const struct config_route *
config_route_for(const struct config *cfg, const char *domain)
{
	const struct config_route *star = NULL, *sub = NULL;
	size_t i, dl = strlen(domain), best = 0;

	for (i = 0; i < cfg->nroutes; i++) {
		const char *rd = cfg->routes[i].domain;
		size_t l = strlen(rd);

		if (strcmp(rd, "*") == 0)
			star = &cfg->routes[i];
		else if (rd[0] == '.') {
			/* ".example.test": any subdomain; the longest wins */
			if (dl > l && l > best &&
			    strcasecmp(domain + dl - l, rd) == 0) {
				sub = &cfg->routes[i];
				best = l;
			}
		} else if (strcasecmp(rd, domain) == 0)
			return &cfg->routes[i];
	}
	return sub ? sub : star;
}
