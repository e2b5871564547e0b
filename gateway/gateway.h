/*
 * gateway: the running daemon's shared state and the functions the
 * gateway files offer each other. Only gateway/ includes this.
 *
 *   daemon.c    start-up, privilege drop, signals, shutdown
 *   listener.c  listening sockets, connection limits, session creation
 *   inbound.c   the SMTP session hooks of the inbound profile: relay
 *               control, Received header, spool commit, summary log line
 *   inbound_dmarc.c  end of data on inbound mail: the From and Received
 *               fields, hybrid recovery, DMARC, the verdict and its stamps
 *   metrics_http.c  the Prometheus endpoint ([metrics] listen)
 *   config*.c   configuration
 */
#ifndef GATEWAY_GATEWAY_H
#define GATEWAY_GATEWAY_H

#include <stddef.h>
#include <stdio.h>
#include <openssl/ssl.h>

#include "auth/dkim.h"
#include "auth/spf.h"
#include "auth/spf_query.h"
#include "auth/dmarc_query.h"
#include "policy/received.h"
#include "policy/verdict.h"
#include "gateway/config.h"
#include "lib/dns.h"
#include "queue/delivery.h"
#include "queue/scheduler.h"
#include "queue/spool.h"
#include "smtp/message.h"
#include "smtp/session.h"

struct event_base;
struct evconnlistener;
struct gw_conn;
struct gw_retired;
struct gw_auth;
struct gw_metrics;

struct gateway {
	struct event_base *base;
	struct config *cfg;
	struct dns_resolver *resolver;
	struct spool *spool;
	struct delivery_ctx *dctx;
	struct scheduler *sched;
	SSL_CTX *server_ssl;
	SSL_CTX *client_ssl;
	struct smtp_server_config server_cfg;
	/* per enum config_profile, derived from server_cfg (listener.c) */
	struct smtp_server_config profile_cfg[3];
	struct gw_auth *auth;		/* auth.c: password checks, failures */
	struct evconnlistener **listeners;
	size_t nlisteners;
	struct delivery_route *routes;	/* built from cfg->routes */
	struct delivery_host *hosts;
	struct gw_conn *conns;		/* open client connections */
	size_t nconns;
	int stopping;
	struct event *exit_check;
	struct gw_retired *retired;	/* replaced by reloads, see daemon.c */
	size_t dmarc_inflight;		/* DMARC evaluations borrowing a config's
					 * PSL: retired configs wait for them */
	struct event *retired_sweep;
	struct event *accept_pause;	/* out of descriptors: accept later */
	/* reporting.c */
	struct report_recorder *recorder;	/* NULL: not recording */
	char *recorder_path;
	struct event *report_timer;
	long long report_next;		/* next `report send` child */
	pid_t report_child;		/* running, or 0 */
	struct gw_metrics *metrics;	/* metrics_http.c; NULL: off */
};

/* listener.c */
int listener_open_all(struct gateway *gw);
void listener_close_all(struct gateway *gw);
/* A connection admitted by the listener ended (inbound.c's on_close):
 * its client's count for connections_per_ip goes down. */
void listener_conn_closed(struct gateway *gw, const struct gw_conn *c);
/* Ask every open session to end with 421; returns how many were open. */
size_t listener_shutdown_sessions(struct gateway *gw);
/* profile_cfg[] from server_cfg: after every change of server_cfg. */
void listener_fill_profiles(struct gateway *gw);

/* auth.c: the on_auth hook (arg: the gateway), and its cleanup at exit */
void gw_auth_hook(struct smtp_session *s, const char *mech, const char *user,
    const char *pass, void *arg);
void gw_auth_free(struct gateway *gw);

/* inbound.c */
extern const struct smtp_hooks inbound_hooks;
/* per-connection record the hooks keep (udata of the session) */
struct inbound_limits;

struct gw_conn {
	struct gateway *gw;
	struct smtp_session *s;
	char ip[64];
	struct spool_msg *msg;		/* content being received */
	struct inbound_pending *pending;	/* its commit in flight (inbound.c) */
	struct inbound_limits *limits;	/* its header/MIME bounds (inbound.c) */
	char id[ID_LEN + 1];
	struct spf_query *spfq;		/* SPF check in flight (HELO or MAIL) */
	enum spf_result helo_spf;	/* -1 when not checked */
	enum spf_result mail_spf;	/* -1 when not checked */
	char *spf_header;		/* Received-SPF for the transaction */
	char *spf_sender;		/* MAIL FROM being checked */
	struct dkim_verify *dkim;	/* DKIM of the content being received */
	struct gw_dkim_query {
		struct gw_conn *c;
		struct dns_query *q;	/* key lookup in flight, or NULL */
	} dkq[8];
	int data_ended;			/* end of data waits for DKIM keys */
	struct msg_parser *hdr;		/* header filter on the way to the spool */
	int hdr_sep;			/* blank line after the header written */
	int hdr_err;			/* spool write failed inside the filter */
	/* inbound_dmarc.c: what the header filter kept for DMARC, and the
	 * end-of-data chain (recovered SPF, then DMARC, then the verdict) */
	size_t nfrom;			/* From fields seen */
	char *from_value;		/* the first one's value (may hold NULs) */
	size_t from_len;
	char *from_local;		/* its address, once parsed */
	char *from_domain;
	struct buf held_fields;		/* Subject held back (subject_prefix) */
	char *received[16];		/* Received values, top first (recover) */
	size_t received_len[16];
	size_t nreceived;
	int received_more;		/* more Received fields than kept */
	int via_relay;			/* the client is a trusted relay */
	size_t hops;			/* Received fields (loop detection) */
	int recovered;			/* its original client was found */
	struct received_from *rec;	/* that client (malloc'd) */
	enum spf_result rec_spf;	/* SPF for it */
	char *relay_note;		/* why recovery failed, for stamps */
	struct spf_query *rspfq;	/* SPF of the recovered client */
	struct dmarc_query *dmq;	/* DMARC lookups in flight */
	int is_report;			/* Subject of a DMARC report */
	/* outbound.c */
	int outbound;			/* this message is outbound mail */
	struct dkim_signer *signer;	/* its signature, computed while it streams */
	char *sign_note;		/* what was signed, for the log */
	/* start of the check in flight (metrics_now), for its duration */
	double spf_t0, dkim_t0, dmarc_t0;
	struct gw_conn *prev, *next;
};

/* The end-of-data outcome inbound_commit carries out (inbound_dmarc.c
 * fills it; all pointers valid during the call only). */
struct gw_outcome {
	const struct dmarc_outcome *dmarc;	/* NULL: not evaluated */
	const struct verdict *verdict;		/* NULL: deliver */
	const char *from_domain;		/* header.from, or NULL */
	const char *dmarc_comment;		/* for Authentication-Results */
	int recovered;				/* hybrid recover succeeded */
	const char *recovered_ip;
	enum spf_result recovered_spf;
	const char *relay_note;			/* hybrid remark, or NULL */
};
void inbound_commit(struct gw_conn *c, const struct gw_outcome *o);

/* inbound_dmarc.c */
/* A header field on its way to the spool: 1 = keep it out of the spool
 * (held back or a forgery of our stamps), 0 = write it, -1 = no memory. */
int inbound_dmarc_field(struct gw_conn *c, const struct msg_field *f);
/* Content complete and DKIM settled: run the chain, then inbound_commit. */
void inbound_dmarc_start(struct gw_conn *c);
/* The SPF result and identity DMARC aligns with (RFC 9989 4.4.2), into
 * p->spf_result / p->spf_domain (left alone when there is none). */
struct dmarc_params;
void inbound_dmarc_spf(struct gw_conn *c, struct dmarc_params *p);
/* Stamps for the prepend text (verdict header, SCL, held fields). */
int inbound_dmarc_stamps(struct gw_conn *c, const struct gw_outcome *o,
    struct buf *out);
/* Per-message DMARC state: freed, lookups cancelled. */
void inbound_dmarc_clear(struct gw_conn *c);

/* outbound.c: relaying and signing for relay clients and AUTH users */
int outbound_may_relay(const struct gw_conn *c);
int outbound_data_start(struct gw_conn *c);
void outbound_feed(struct gw_conn *c, const char *p, size_t n);
int outbound_finish(struct gw_conn *c, struct buf *out, struct verdict *v_r);
void outbound_clear(struct gw_conn *c);
/* Signing parameters for sg's keys (at most max) into p: the count. */
size_t outbound_sign_params(const struct config_signer *sg,
    struct dkim_sign_params *p, size_t max, int oversign);
/* 1 if the authenticated user may send with From domain (auth.c). */
int gw_auth_may_send_as(struct gateway *gw, const char *user,
    const char *domain);

/* reporting.c: DMARC aggregate reports in the daemon: the recorder
 * (report/recorder.h), a `mxgate report send` child once per period, and
 * the final results of report deliveries. */
struct verdict;
int reporting_start(struct gateway *gw);
void reporting_reload(struct gateway *gw);
void reporting_stop(struct gateway *gw);
/* One DMARC evaluation at end of data (before the commit). */
void reporting_record(struct gw_conn *c, const struct dmarc_outcome *o,
    const struct verdict *v);
/* The scheduler's on_settled hook (arg: the gateway). */
struct envelope;
void reporting_settled(const struct envelope *env, size_t rcpt, void *arg);

/* metrics_http.c: the Prometheus endpoint, when [metrics] listen is set
 * (lib/metrics.h counts only then). start: 0, or -1 with the reason
 * logged (naming [metrics] listen); stop: at exit. */
int metrics_http_start(struct gateway *gw);
void metrics_http_stop(struct gateway *gw);

/* daemon.c */
int daemon_serve(const char *config_path, int foreground_debug);
/* The resolver as [dns] configures it (also for the check command). */
struct dns_resolver *daemon_resolver(struct event_base *base,
    const struct config *cfg, char *err, size_t errlen);

/* check.c: `mxgate check spf|message ...` */
int check_main(int argc, char **argv);
/* A message file (or stdin for NULL) with CRLF line ends; 0 or -1. */
int check_read_message(const char *path, struct buf *out, char *err,
    size_t errlen);

/* dkimcmd.c: `mxgate dkim sign|keygen ...` */
int dkimcmd_main(int argc, char **argv);
/* The key record txt[0..len) (dkim_key_record) as the zone-file line
 * for SELECTOR._domainkey.DOMAIN, in 255-octet strings, to f. */
void dkimcmd_zone_txt(FILE *f, const char *selector, const char *domain,
    const char *txt, size_t len);

/* dnscmd.c: `mxgate dns records|check DOMAIN ...` */
int dnscmd_main(int argc, char **argv);

/* quarantine.c: `mxgate quarantine list|show|release|delete ...` */
int quarantine_main(int argc, char **argv);

/* queuecmd.c: `mxgate queue list|show|flush|delete|hold|release|stats` */
int queuecmd_main(int argc, char **argv);

/* spoolcli.c: what the spool's command-line tools share */
/* The spool of the configuration at path, opened as the spool's owner
 * when run as root (uid and gid of the spool directory, no supplementary
 * groups; refused if that fails). NULL with the reason on stderr. */
struct spool *spoolcli_open(const char *config_path);
/* As root, become the owner of dir (the spool); as anyone else go on.
 * 0, or -1 with the reason on stderr. */
int spoolcli_become_owner(const char *dir);
/* 0 for a valid queue id; else "invalid queue id" on stderr and -1. */
int spoolcli_check_id(const char *id);
/* s with control octets, DEL, backslash (and spaces, when space is 0)
 * escaped as \xNN: one terminal-safe field. */
void spoolcli_put(FILE *f, const char *s, int space);
/* A JSON string (RFC 8259 7) to f, or null for NULL; control octets
 * escaped, invalid UTF-8 as U+FFFD. */
void spoolcli_json_str(FILE *f, const char *s);
/* 45s, 12m, 3h, 2d */
void spoolcli_age(char *out, size_t n, long long secs);
/* "YYYY-MM-DD HH:MM:SS UTC", "-" for 0 */
void spoolcli_time(char *out, size_t n, long long t);
/* p[0..n) to stdout (modified in place): on a terminal, control octets
 * other than TAB, CR and LF become '?'. 0 or -1. */
int spoolcli_write(char *p, size_t n, int tty);
/* The rest of fd to stdout, as spoolcli_write. 0 or -1. */
int spoolcli_copy(int fd, int tty);

/* reportcmd.c: `mxgate report send|list|import|summary ...` */
int reportcmd_main(int argc, char **argv);

/* usercmd.c: `mxgate user add|delete|list ...` */
int usercmd_main(int argc, char **argv);

#endif
