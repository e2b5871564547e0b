/*
 * The outbound part of the configuration: [submission] (AUTH), [outbound]
 * (clients that may relay) and [dkim sign DOMAIN] (signing keys, loaded
 * with the configuration so that a missing key is an error at start or a
 * refused reload, never a failure at the first message).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/dkim.h"
#include "gateway/authdb.h"
#include "gateway/config_int.h"
#include "smtp/path.h"

#define IS(k) (strcasecmp(name, (k)) == 0)

void
config_outbound_defaults(struct config *cfg)
{
	cfg->auth_max_failures = 10;
	cfg->auth_failure_window = 15 * 60;
}

static int
config_add_relay_client(struct config_load *ld, const char *section,
    const char *name, const char *item, void *arg)
{
	struct cidr c;

	if (cidr_parse(item, &c) == -1) {
		config_error(ld, ld->line, section, name,
		    "not an address or network: '%s'", item);
		return -1;
	}
	return cidr_list_add(&ld->cfg->relay_clients, item);
}

static struct config_signer *
config_signer(struct config_load *ld, const char *domain)
{
	struct config *cfg = ld->cfg;
	struct config_signer *s;
	size_t i;

	for (i = 0; i < cfg->nsigners; i++)
		if (strcasecmp(cfg->signers[i].domain, domain) == 0)
			return &cfg->signers[i];
	s = realloc(cfg->signers, (cfg->nsigners + 1) * sizeof(*s));
	if (s == NULL)
		return NULL;
	cfg->signers = s;
	s = &cfg->signers[cfg->nsigners];
	memset(s, 0, sizeof(*s));
	if ((s->domain = strdup(domain)) == NULL)
		return NULL;
	s->line = ld->line;
	cfg->nsigners++;
	return s;
}

/* "selector:/path/to/key.pem" */
static int
config_add_sign_key(struct config_load *ld, const char *section,
    const char *name, const char *item, void *arg)
{
	struct config_signer *s = arg;
	struct config_sign_key *k;
	const char *colon = strchr(item, ':');
	char err[256];
	size_t i;

	if (colon == NULL || colon == item || colon[1] == '\0') {
		config_error(ld, ld->line, section, name,
		    "expected selector:keyfile, got '%s'", item);
		return -1;
	}
	for (i = 0; item + i < colon; i++) {
		char c = item[i];

		/* RFC 6376 3.1: a selector is a sub-domain (labels) */
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_')) {
			config_error(ld, ld->line, section, name,
			    "not a selector: '%.*s'", (int)(colon - item), item);
			return -1;
		}
	}
	k = realloc(s->keys, (s->nkeys + 1) * sizeof(*k));
	if (k == NULL)
		return -1;
	s->keys = k;
	k = &s->keys[s->nkeys];
	memset(k, 0, sizeof(*k));
	k->selector = strndup(item, (size_t)(colon - item));
	k->file = strdup(colon + 1);
	if (k->selector == NULL || k->file == NULL) {
		free(k->selector);
		free(k->file);
		return -1;
	}
	s->nkeys++;
	/* RFC 8301 / 8463: RSA of at least 1024 bits, or Ed25519 */
	if ((k->key = dkim_key_load(k->file, err, sizeof(err))) == NULL) {
		config_error(ld, ld->line, section, name, "%s", err);
		return -1;
	}
	return 0;
}

int
config_outbound_key(struct config_load *ld, const char *section,
    const char *name, const char *v)
{
	struct config *cfg = ld->cfg;

	if (strcasecmp(section, "submission") == 0) {
		if (IS("users")) {
			char *c = strdup(v);

			if (c == NULL)
				return -1;
			free(cfg->users_file);
			cfg->users_file = c;
			ld->users_line = ld->line;
			return 0;
		}
		if (IS("max_failures")) {
			if (config_parse_int(v, 1, 1000, &cfg->auth_max_failures) == -1)
				config_bad_value(ld, section, name,
				    "expected a number from 1 to 1000", v);
			return 0;
		}
		if (IS("failure_window")) {
			if (config_parse_duration(v, &cfg->auth_failure_window) == -1 ||
			    cfg->auth_failure_window < 1)
				config_bad_value(ld, section, name,
				    "expected a duration", v);
			return 0;
		}
		return 2;
	}
	if (strcasecmp(section, "outbound") == 0) {
		if (IS("relay_clients")) {
			config_list(v, config_add_relay_client, ld, section, name, NULL);
			return 0;
		}
		return 2;
	}
	if (strncasecmp(section, "dkim sign ", 10) == 0) {
		const char *dom = section + 10;
		struct config_signer *s;

		if (smtp_path_check_domain(dom, 1) == -1 || dom[0] == '[') {
			config_error(ld, ld->line, section, NULL,
			    "not a domain: '%s'", dom);
			return 1;
		}
		if ((s = config_signer(ld, dom)) == NULL)
			return -1;
		if (IS("keys")) {
			config_list(v, config_add_sign_key, ld, section, name, s);
			return 0;
		}
		if (IS("headers")) {
			char *c = strdup(v);

			if (c == NULL)
				return -1;
			free(s->headers);
			s->headers = c;
			return 0;
		}
		return 2;
	}
	return 3;
}

void
config_outbound_validate(struct config_load *ld)
{
	struct config *cfg = ld->cfg;
	size_t i;

	for (i = 0; i < cfg->nsigners; i++)
		if (cfg->signers[i].nkeys == 0)
			config_error(ld, cfg->signers[i].line, NULL, NULL,
			    "[dkim sign %s] has no keys", cfg->signers[i].domain);
	for (i = 0; i < cfg->nlisteners; i++) {
		const char *pn = cfg->listeners[i].profile == PROFILE_SUBMISSION ?
		    "submission" : "submissions";

		if (cfg->listeners[i].profile == PROFILE_INBOUND)
			continue;
		if (cfg->users_file == NULL)
			config_error(ld, cfg->listeners[i].line, NULL, NULL,
			    "[listener %s] profile %s needs [submission] users",
			    cfg->listeners[i].name, pn);
		/* RFC 4954 4, RFC 8314: passwords only under TLS */
		if (cfg->tls_cert == NULL || *cfg->tls_cert == '\0')
			config_error(ld, cfg->listeners[i].line, NULL, NULL,
			    "[listener %s] profile %s needs a [tls] certificate",
			    cfg->listeners[i].name, pn);
	}
	/* The users file loads with the configuration: a bad file fails
	 * the start, `config check` and a reload, naming file:line. */
	if (cfg->users_file && *cfg->users_file) {
		char err[512];

		if ((cfg->authdb = authdb_load(cfg->users_file, err,
		    sizeof(err))) == NULL)
			config_error(ld, ld->users_line, "submission",
			    "users", "%s", err);
	}
}

const struct config_signer *
config_signer_for(const struct config *cfg, const char *domain)
{
	size_t i;

	for (i = 0; i < cfg->nsigners; i++)
		if (strcasecmp(cfg->signers[i].domain, domain) == 0)
			return &cfg->signers[i];
	return NULL;
}

void
config_outbound_free(struct config *cfg)
{
	size_t i, j;

	free(cfg->users_file);
	authdb_free(cfg->authdb);
	cidr_list_free(&cfg->relay_clients);
	for (i = 0; i < cfg->nsigners; i++) {
		for (j = 0; j < cfg->signers[i].nkeys; j++) {
			free(cfg->signers[i].keys[j].selector);
			free(cfg->signers[i].keys[j].file);
			dkim_key_free(cfg->signers[i].keys[j].key);
		}
		free(cfg->signers[i].keys);
		free(cfg->signers[i].domain);
		free(cfg->signers[i].headers);
	}
	free(cfg->signers);
}
