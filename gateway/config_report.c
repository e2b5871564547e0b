/*
 * The reporting part of the configuration: [report] (DMARC aggregate
 * reports, RFC 9990; etc/mxgate.ini documents every key).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway/config_int.h"
#include "smtp/path.h"

#define IS(k) (strcasecmp(name, (k)) == 0)

void
config_report_defaults(struct config *cfg)
{
	cfg->report_record = 1;
	cfg->report_store = strdup("");
	cfg->report_org_name = strdup("");
	cfg->report_email = strdup("");
	cfg->report_contact = strdup("");
	cfg->report_interval = 86400;
	cfg->report_min_interval = 3600;
	cfg->report_spread = 1800;
	cfg->report_rate = 30;
	cfg->report_max_rua = 2;
	cfg->report_max_failures = 3;
	cfg->report_suppress = 7 * 86400;
	cfg->report_retention = 7 * 86400;
}

static int
report_duration(struct config_load *ld, const char *section, const char *name,
    const char *v, int min, int max, int *r)
{
	int d;
	char what[96];

	if (config_parse_duration(v, &d) == -1 || d < min || d > max) {
		snprintf(what, sizeof(what), "expected a duration from %ds to %ds",
		    min, max);
		config_bad_value(ld, section, name, what, v);
		return 0;
	}
	*r = d;
	return 0;
}

static int
report_int(struct config_load *ld, const char *section, const char *name,
    const char *v, int min, int max, int *r)
{
	char what[96];

	if (config_parse_int(v, min, max, r) == -1) {
		snprintf(what, sizeof(what), "expected a number from %d to %d",
		    min, max);
		config_bad_value(ld, section, name, what, v);
	}
	return 0;
}

int
config_report_key(struct config_load *ld, const char *section,
    const char *name, const char *v)
{
	struct config *cfg = ld->cfg;

	if (strcasecmp(section, "report") != 0)
		return 3;
	if (IS("record")) {
		if (config_parse_bool(v, &cfg->report_record) == -1)
			config_bad_value(ld, section, name, "expected yes or no", v);
		return 0;
	}
	if (IS("send")) {
		ld->report_line = ld->line;
		if (config_parse_bool(v, &cfg->report_send) == -1)
			config_bad_value(ld, section, name, "expected yes or no", v);
		return 0;
	}
	if (IS("store")) {
		if (*v != '/') {
			config_bad_value(ld, section, name, "expected an absolute path", v);
			return 0;
		}
		return config_dup_string(&cfg->report_store, v);
	}
	if (IS("org_name"))
		return config_dup_string(&cfg->report_org_name, v);
	if (IS("email")) {
		/* RFC 5321 4.1.2 Mailbox: it becomes the From: of reports */
		const char *why = NULL;

		if (smtp_path_check_mailbox(v, 0, &why) != 0) {
			config_bad_value(ld, section, name, "expected an address "
			    "user@domain", v);
			return 0;
		}
		return config_dup_string(&cfg->report_email, v);
	}
	if (IS("extra_contact_info"))
		return config_dup_string(&cfg->report_contact, v);
	if (IS("interval")) {
		ld->report_line = ld->line;
		report_duration(ld, section, name, v, 3600, 86400,
		    &cfg->report_interval);
		if (86400 % cfg->report_interval != 0 ||
		    cfg->report_interval % 3600 != 0)
			config_bad_value(ld, section, name, "expected a whole number "
			    "of hours that divides a day", v);
		return 0;
	}
	if (IS("min_interval")) {
		ld->report_line = ld->line;
		report_duration(ld, section, name, v, 3600, 86400,
		    &cfg->report_min_interval);
		if (86400 % cfg->report_min_interval != 0 ||
		    cfg->report_min_interval % 3600 != 0)
			config_bad_value(ld, section, name, "expected a whole number "
			    "of hours that divides a day", v);
		return 0;
	}
	if (IS("spread"))
		return report_duration(ld, section, name, v, 0, 6 * 3600,
		    &cfg->report_spread);
	if (IS("rate"))
		return report_int(ld, section, name, v, 0, 6000, &cfg->report_rate);
	if (IS("max_rua"))
		return report_int(ld, section, name, v, 1, 8, &cfg->report_max_rua);
	if (IS("max_failures"))
		return report_int(ld, section, name, v, 1, 100,
		    &cfg->report_max_failures);
	if (IS("suppress"))
		return report_duration(ld, section, name, v, 0, 365 * 86400,
		    &cfg->report_suppress);
	if (IS("retention"))
		return report_duration(ld, section, name, v, 86400, 365 * 86400,
		    &cfg->report_retention);
	return 2;
}

void
config_report_validate(struct config_load *ld)
{
	struct config *cfg = ld->cfg;
	const char *at;

	if (cfg->report_store == NULL || cfg->report_org_name == NULL ||
	    cfg->report_email == NULL || cfg->report_contact == NULL) {
		config_error(ld, ld->line, NULL, NULL, "out of memory");
		return;
	}
	if (*cfg->report_store == '\0' && cfg->spool) {
		char *s;

		if (asprintf(&s, "%s/reports.db", cfg->spool) == -1) {
			config_error(ld, ld->line, NULL, NULL, "out of memory");
			return;
		}
		free(cfg->report_store);
		cfg->report_store = s;
	}
	if (*cfg->report_org_name == '\0' && cfg->hostname)
		config_dup_string(&cfg->report_org_name, cfg->hostname);
	if (cfg->report_min_interval > cfg->report_interval)
		config_error(ld, ld->report_line, "report", "min_interval",
		    "is longer than interval");
	if (!cfg->report_send)
		return;
	if (!cfg->report_record)
		config_error(ld, ld->report_line, "report", "send",
		    "needs record = yes");
	if (*cfg->report_email == '\0') {
		config_error(ld, ld->report_line, "report", "send",
		    "needs [report] email (the From: address of reports)");
		return;
	}
	/* RFC 9990 3.1.1: reports must pass DMARC: signed for From's domain */
	at = strrchr(cfg->report_email, '@');
	if (at == NULL || config_signer_for(cfg, at + 1) == NULL)
		config_error(ld, ld->report_line, "report", "send",
		    "needs a [dkim sign %s] section: reports are DKIM-signed for "
		    "the domain of [report] email", at ? at + 1 : "?");
}

void
config_report_free(struct config *cfg)
{
	free(cfg->report_store);
	free(cfg->report_org_name);
	free(cfg->report_email);
	free(cfg->report_contact);
}
