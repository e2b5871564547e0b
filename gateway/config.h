/*
 * gateway/config: the INI configuration (etc/mxgate.ini documents every
 * key). Loading never starts anything: it reads, validates and resolves
 * route host names (blocking getaddrinfo: configuration load only, never
 * on the event loop while serving).
 *
 * Errors name file, line and key: "mxgate.ini:12: [limits] recipients:
 * not a number: 'ten'". All errors of a file are collected, one per line.
 */
#ifndef GATEWAY_CONFIG_H
#define GATEWAY_CONFIG_H

#include <stddef.h>
#include <sys/socket.h>

#include "lib/buf.h"
#include "lib/cidr.h"
#include "lib/log.h"
#include "smtp/client.h"

enum config_profile {
	PROFILE_INBOUND,	/* port 25: MX, and relay for relay_clients */
	PROFILE_SUBMISSION,	/* port 587: STARTTLS, then AUTH (RFC 6409) */
	PROFILE_SUBMISSIONS,	/* port 465: implicit TLS, then AUTH (RFC 8314) */
};

/* [dkim sign DOMAIN]: the keys mail From that domain is signed with */
struct config_sign_key {
	char *selector;
	char *file;
	struct dkim_key *key;		/* loaded with the configuration */
};

struct config_signer {
	char *domain;
	struct config_sign_key *keys;
	size_t nkeys;
	char *headers;			/* NULL = RFC 6376 5.4 default list */
	int line;
};

struct config_listener {
	char *name;
	char *address;
	int port;
	enum config_profile profile;
	int line;
};

struct config_host {
	char *spec;			/* as written, for logs */
	char *name;			/* the host part: the name (or literal)
					 * TLS verification checks */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int pref;
};

struct config_route {
	char *domain;			/* "*" = default */
	struct config_host *hosts;	/* sorted by preference, stable */
	size_t nhosts;
	enum smtp_client_tls tls;
	int mx;				/* hosts = mx: by MX lookup */
	int line;
};

struct orgdomain_psl;
struct authdb;
struct dkim_key;

struct config {
	char *path;
	char *hostname;
	char *spool;
	char *user;
	int log_syslog;
	int log_json;			/* log_format = json */
	enum log_level log_level;

	struct config_listener *listeners;
	size_t nlisteners;
	char *tls_cert;
	char *tls_key;
	char **domains;
	size_t ndomains;
	struct config_route *routes;
	size_t nroutes;

	size_t max_size;
	size_t max_rcpts;
	int max_conn;
	int max_conn_per_ip;
	int command_timeout;
	int data_timeout;
	size_t min_free_space;		/* below it MAIL gets 452 4.3.1; 0 = off */
	int min_data_rate;		/* octets/s owed during DATA/BDAT; 0 = off */
	int tls_timeout;		/* whole TLS handshake, seconds */
	int pregreet_wait;		/* seconds watched for talk before 220 */
	int soft_error_limit;		/* errors before replies are delayed */
	int hard_error_limit;		/* errors before 421 and close */
	int error_delay;		/* seconds each reply waits past soft */
	int junk_limit;			/* NOOP/RSET/VRFY/HELP/EXPN per session */
	size_t header_size;		/* header section, octets (552) */
	size_t header_fields;		/* header fields (552) */
	size_t mime_depth;		/* multipart nesting (554) */
	size_t mime_parts;		/* MIME parts in all (554) */

	char **dns_servers;		/* "host[:port]"; none = resolv.conf */
	size_t ndns_servers;
	int dns_timeout_ms;
	int dns_cache;

	int spf_helo;			/* check the HELO identity */
	int spf_mailfrom;		/* check the MAIL FROM identity */
	int spf_reject_fail;		/* 550 5.7.23 at MAIL on fail */
	int spf_defer_temperror;	/* 451 4.4.3 at MAIL on temperror */
	int spf_budget;			/* seconds per check */

	int dkim_verify;		/* verify DKIM on inbound mail */

	/* [dmarc] */
	int dmarc_verify;
	int dmarc_psl_mode;		/* discovery = psl (RFC 7489) */
	char *dmarc_psl_file;
	struct orgdomain_psl *psl;	/* loaded with the file (psl mode) */
	int dmarc_enforce;
	int dmarc_reject_override;
	int dmarc_bad_from_reject;
	int dmarc_temperror_defer;
	int dmarc_partial_body;		/* l= partial DKIM pass aligns */
	int dmarc_budget;		/* seconds */
	/* [quarantine] */
	int quarantine_hold;		/* action = hold (else tag) */
	char *verdict_header;		/* "" = none */
	char *subject_prefix;		/* "" = none */
	int exchange_scl;		/* -1 = none */
	/* [hybrid] */
	int primary_mx;
	struct cidr_list trusted_relays;
	int hybrid_recover;		/* mode = recover (else skip) */
	/* [allow] */
	char **allow_senders;		/* "user@domain" or "domain" */
	size_t nallow_senders;
	struct cidr_list allow_ips;
	struct cidr_list trusted_forwarders;
	struct cidr_list mailing_lists;

	/* [submission] */
	char *users_file;		/* NULL: no AUTH offered anywhere */
	struct authdb *authdb;		/* users_file, loaded with the config */
	int auth_max_failures;		/* per client IP within the window */
	int auth_failure_window;	/* seconds */
	/* [outbound] */
	struct cidr_list relay_clients;	/* may relay anywhere, unauthenticated */
	/* [dkim sign DOMAIN] */
	struct config_signer *signers;
	size_t nsigners;

	int delivery_concurrency;
	int retry_initial;
	int retry_max;
	int max_lifetime;
	int delay_warning;		/* seconds; 0: no delay warnings */
	int connect_timeout;
	int delivery_command_timeout;
	int delivery_data_timeout;
	int idle_timeout;
	int mx_port;			/* port of MX hosts (25) */
	int dest_concurrency;		/* connections per destination */
	char *ca_file;			/* extra CAs for tls = verify, or NULL */

	/* [metrics] */
	char *metrics_listen;		/* "host:port" of the Prometheus
					 * endpoint; NULL: none */

	/* [report] (DMARC aggregate reports, RFC 9990) */
	int report_record;		/* record DMARC evaluations */
	char *report_store;		/* the SQLite store (absolute path) */
	int report_send;		/* send reports to rua= */
	char *report_org_name;
	char *report_email;		/* From: of reports */
	char *report_contact;		/* extra_contact_info, "" none */
	int report_interval;		/* seconds, divides a day */
	int report_min_interval;	/* shortest period for ri= */
	int report_spread;		/* random delay after a period ends */
	int report_rate;		/* reports per minute; 0 no pause */
	int report_max_rua;		/* destinations per report */
	int report_max_failures;	/* before a destination is suppressed */
	int report_suppress;		/* for this long (seconds) */
	int report_retention;		/* reported evaluations kept (seconds) */
};

/* NULL on any error; errors (one per line) are appended to errors. */
struct config *config_load(const char *path, struct buf *errors);
void config_free(struct config *cfg);

/* RFC 5321 2.4: domains compare case-insensitively. */
int config_accepts_domain(const struct config *cfg, const char *domain);
/* Route for a recipient domain: exact match, then the longest
 * ".parent" route, then "*", else NULL. */
const struct config_route *config_route_for(const struct config *cfg,
    const char *domain);

/* The signer for a From domain (exact match, case-insensitive), or NULL. */
const struct config_signer *config_signer_for(const struct config *cfg,
    const char *domain);

/* Value parsers, exposed for tests. 0 ok, -1 bad. */
int config_parse_size(const char *s, size_t *r);
int config_parse_duration(const char *s, int *r);
int config_parse_int(const char *s, int min, int max, int *r);
int config_parse_bool(const char *s, int *r);

#endif
