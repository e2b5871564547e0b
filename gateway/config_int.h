/*
 * gateway/config_int: what the configuration files (config.c,
 * config_policy.c) share while loading. Only gateway/config*.c include it.
 */
#ifndef GATEWAY_CONFIG_INT_H
#define GATEWAY_CONFIG_INT_H

#include <stdio.h>

#include "gateway/config.h"

struct config_seen {
	char *key;		/* "section\nname" */
	int line;
};

struct config_load {
	struct config *cfg;
	struct buf *errors;
	const char *file;
	FILE *fp;
	int line;
	int nerrors;
	int last_error_line;
	char *linebuf;
	size_t linecap;
	struct config_seen *seen;
	size_t nseen;
	int accept_line;
	int cert_line;
	int key_line;
	int psl_line;
	int users_line;		/* [submission] users */
	int report_line;	/* [report] send */
};

/* "file:line: [section] name: message" into the error list. */
void config_error(struct config_load *ld, int line, const char *section,
    const char *name, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
void config_bad_value(struct config_load *ld, const char *section,
    const char *name, const char *what, const char *v);
/* *field = a copy of v (the old value freed). 0, or -1 out of memory. */
int config_dup_string(char **field, const char *v);
/* Split a list on commas and white space; calls fn for each item. */
int config_list(const char *v, int (*fn)(struct config_load *, const char *,
    const char *, const char *, void *), struct config_load *ld,
    const char *section, const char *name, void *arg);

/* config_policy.c: [dmarc] [quarantine] [hybrid] [allow].
 * config_policy_key returns like config_key (0 handled, 1 error reported,
 * 2 unknown key, -1 out of memory), or 3 for a section it does not own. */
void config_policy_defaults(struct config *cfg);
int config_policy_key(struct config_load *ld, const char *section,
    const char *name, const char *v);
/* 1 for keys that may be repeated (lists longer than one line). */
int config_policy_repeatable(const char *section, const char *name);
void config_policy_validate(struct config_load *ld);
void config_policy_free(struct config *cfg);

/* config_outbound.c: [submission] [outbound] [dkim sign DOMAIN], same
 * conventions as config_policy_key. */
void config_outbound_defaults(struct config *cfg);
int config_outbound_key(struct config_load *ld, const char *section,
    const char *name, const char *v);
void config_outbound_validate(struct config_load *ld);
void config_outbound_free(struct config *cfg);

/* config_report.c: [report], same conventions as config_policy_key. */
void config_report_defaults(struct config *cfg);
int config_report_key(struct config_load *ld, const char *section,
    const char *name, const char *v);
void config_report_validate(struct config_load *ld);
void config_report_free(struct config *cfg);

#endif
