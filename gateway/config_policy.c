/*
 * The policy part of the configuration: [dmarc], [quarantine], [hybrid]
 * and [allow] (etc/mxgate.ini documents every key).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/orgdomain.h"
#include "gateway/config_int.h"
#include "smtp/path.h"

#define IS(k) (strcasecmp(name, (k)) == 0)

void
config_policy_defaults(struct config *cfg)
{
	cfg->dmarc_verify = 1;
	cfg->dmarc_enforce = 1;
	cfg->dmarc_bad_from_reject = 1;
	cfg->dmarc_temperror_defer = 1;
	cfg->dmarc_budget = 10;
	cfg->verdict_header = strdup("X-Mxgate-Verdict");
	cfg->subject_prefix = strdup("");
	cfg->dmarc_psl_file = strdup("");
	cfg->exchange_scl = -1;
	cfg->primary_mx = 1;
}

int
config_policy_repeatable(const char *section, const char *name)
{
	return strcasecmp(section, "allow") == 0 ||
	    (strcasecmp(section, "hybrid") == 0 && IS("trusted_relays")) ||
	    (strcasecmp(section, "outbound") == 0 && IS("relay_clients")) ||
	    (strncasecmp(section, "dkim sign ", 10) == 0 && IS("keys"));
}

static int
config_bool(struct config_load *ld, const char *section, const char *name,
    const char *v, int *flag)
{
	if (config_parse_bool(v, flag) == -1)
		config_bad_value(ld, section, name, "expected yes or no", v);
	return 0;
}

/* Two-word choice: *flag = 0 for a, 1 for b. */
static int
config_choice(struct config_load *ld, const char *section, const char *name,
    const char *v, const char *a, const char *b, int *flag)
{
	char what[128];

	if (strcasecmp(v, a) == 0)
		*flag = 0;
	else if (strcasecmp(v, b) == 0)
		*flag = 1;
	else {
		snprintf(what, sizeof(what), "expected %s or %s", a, b);
		config_bad_value(ld, section, name, what, v);
	}
	return 0;
}

static int
config_add_cidr(struct config_load *ld, const char *section, const char *name,
    const char *item, void *arg)
{
	struct cidr c;

	if (cidr_parse(item, &c) == -1) {
		config_error(ld, ld->line, section, name,
		    "not an address or network: '%s'", item);
		return -1;
	}
	return cidr_list_add(arg, item);
}

/* "user@domain", "@domain" or "domain" */
static int
config_add_sender(struct config_load *ld, const char *section,
    const char *name, const char *item, void *arg)
{
	struct config *cfg = ld->cfg;
	const char *at = strrchr(item, '@');
	const char *dom = at ? at + 1 : item;
	char **v;

	if (smtp_path_check_domain(dom, 1) == -1 || dom[0] == '[' ||
	    (at && at != item && strchr(item, '@') != at)) {
		config_error(ld, ld->line, section, name,
		    "expected an address or a domain, got '%s'", item);
		return -1;
	}
	v = realloc(cfg->allow_senders, (cfg->nallow_senders + 1) * sizeof(*v));
	if (v == NULL)
		return -1;
	cfg->allow_senders = v;
	if ((v[cfg->nallow_senders] = strdup(item[0] == '@' ? item + 1 : item)) == NULL)
		return -1;
	cfg->nallow_senders++;
	return 0;
}

static int
config_dmarc(struct config_load *ld, const char *section, const char *name,
    const char *v)
{
	struct config *cfg = ld->cfg;

	if (IS("verify"))
		return config_bool(ld, section, name, v, &cfg->dmarc_verify);
	if (IS("discovery"))
		return config_choice(ld, section, name, v, "treewalk", "psl",
		    &cfg->dmarc_psl_mode);
	if (IS("psl_file")) {
		ld->psl_line = ld->line;
		return config_dup_string(&cfg->dmarc_psl_file, v);
	}
	if (IS("enforce"))
		return config_bool(ld, section, name, v, &cfg->dmarc_enforce);
	if (IS("reject_override"))
		return config_bool(ld, section, name, v, &cfg->dmarc_reject_override);
	if (IS("bad_from"))
		return config_choice(ld, section, name, v, "accept", "reject",
		    &cfg->dmarc_bad_from_reject);
	if (IS("temperror"))
		return config_choice(ld, section, name, v, "accept", "defer",
		    &cfg->dmarc_temperror_defer);
	if (IS("dkim_partial_body"))
		return config_bool(ld, section, name, v, &cfg->dmarc_partial_body);
	if (IS("time_budget")) {
		if (config_parse_duration(v, &cfg->dmarc_budget) == -1 ||
		    cfg->dmarc_budget < 1 || cfg->dmarc_budget > 300)
			config_bad_value(ld, section, name,
			    "expected a duration from 1s to 5m", v);
		return 0;
	}
	return 2;
}

/* A header field name (RFC 5322 3.6.8 ftext), or "" for none. */
static int
config_field_name(const char *v)
{
	const char *p;

	for (p = v; *p; p++)
		if (*p <= 32 || *p >= 127 || *p == ':')
			return -1;
	return 0;
}

static int
config_quarantine(struct config_load *ld, const char *section,
    const char *name, const char *v)
{
	struct config *cfg = ld->cfg;
	const char *p;

	if (IS("action"))
		return config_choice(ld, section, name, v, "tag", "hold",
		    &cfg->quarantine_hold);
	if (IS("verdict_header")) {
		if (config_field_name(v) == -1 || strlen(v) > 76) {
			config_bad_value(ld, section, name,
			    "expected a header field name", v);
			return 0;
		}
		return config_dup_string(&cfg->verdict_header, v);
	}
	if (IS("subject_prefix")) {
		for (p = v; *p; p++)
			if ((unsigned char)*p < 32 || *p == 127)
				break;
		if (*p || strlen(v) > 64) {
			config_bad_value(ld, section, name,
			    "expected printable text up to 64 characters", v);
			return 0;
		}
		return config_dup_string(&cfg->subject_prefix, v);
	}
	if (IS("exchange_scl")) {
		if (strcmp(v, "-1") == 0)
			cfg->exchange_scl = -1;
		else if (config_parse_int(v, 0, 9, &cfg->exchange_scl) == -1)
			config_bad_value(ld, section, name,
			    "expected -1 (none) or a level from 0 to 9", v);
		return 0;
	}
	return 2;
}

int
config_policy_key(struct config_load *ld, const char *section,
    const char *name, const char *v)
{
	struct config *cfg = ld->cfg;

	if (strcasecmp(section, "dmarc") == 0)
		return config_dmarc(ld, section, name, v);
	if (strcasecmp(section, "quarantine") == 0)
		return config_quarantine(ld, section, name, v);
	if (strcasecmp(section, "hybrid") == 0) {
		if (IS("primary_mx"))
			return config_bool(ld, section, name, v, &cfg->primary_mx);
		if (IS("mode"))
			return config_choice(ld, section, name, v, "skip",
			    "recover", &cfg->hybrid_recover);
		if (IS("trusted_relays")) {
			config_list(v, config_add_cidr, ld, section, name,
			    &cfg->trusted_relays);
			return 0;
		}
		return 2;
	}
	if (strcasecmp(section, "allow") == 0) {
		struct cidr_list *l = NULL;

		if (IS("senders")) {
			config_list(v, config_add_sender, ld, section, name, NULL);
			return 0;
		}
		if (IS("ips"))
			l = &cfg->allow_ips;
		else if (IS("trusted_forwarders"))
			l = &cfg->trusted_forwarders;
		else if (IS("mailing_lists"))
			l = &cfg->mailing_lists;
		else
			return 2;
		config_list(v, config_add_cidr, ld, section, name, l);
		return 0;
	}
	return 3;
}

/* The PSL is loaded with the configuration, like a key: a list that
 * cannot be read is an error at start (or a refused reload). */
void
config_policy_validate(struct config_load *ld)
{
	struct config *cfg = ld->cfg;
	char err[256];

	if (cfg->verdict_header == NULL || cfg->subject_prefix == NULL ||
	    cfg->dmarc_psl_file == NULL) {
		config_error(ld, ld->line, NULL, NULL, "out of memory");
		return;
	}
	if (!cfg->dmarc_verify || !cfg->dmarc_psl_mode)
		return;
	cfg->psl = orgdomain_psl_load(cfg->dmarc_psl_file, err, sizeof(err));
	if (cfg->psl == NULL)
		config_error(ld, ld->psl_line ? ld->psl_line : ld->line, "dmarc",
		    "psl_file", "%s", err);
}

void
config_policy_free(struct config *cfg)
{
	size_t i;

	free(cfg->dmarc_psl_file);
	orgdomain_psl_free(cfg->psl);
	free(cfg->verdict_header);
	free(cfg->subject_prefix);
	cidr_list_free(&cfg->trusted_relays);
	for (i = 0; i < cfg->nallow_senders; i++)
		free(cfg->allow_senders[i]);
	free(cfg->allow_senders);
	cidr_list_free(&cfg->allow_ips);
	cidr_list_free(&cfg->trusted_forwarders);
	cidr_list_free(&cfg->mailing_lists);
}
