/*
 * `mxgate serve`: start-up in the order that keeps the spool safe and
 * privileges minimal: configuration, logging, spool (created as root,
 * handed to the service user), TLS contexts, listeners (and the metrics
 * endpoint) bound, privileges dropped, crash recovery of the spool, then
 * the event loop.
 *
 * SIGTERM/SIGINT: stop accepting, end every session with 421 (a message
 * not yet acknowledged is discarded; the client will retry), stop
 * delivery attempts (their recipients stay pending in the spool), exit.
 * SIGHUP: reload the configuration without dropping connections. A new
 * configuration that fails to load, or that changes what only a restart
 * can change (listeners, spool, user, [metrics] listen), is refused with
 * the reason logged and the running one kept. Open sessions keep going;
 * they see new limits and domains from their next command on. Delivery
 * attempts in progress finish with the routes they started with: replaced
 * configurations are retired, not freed, until no attempt and no DMARC
 * evaluation (which borrows the configuration's Public Suffix List) is in
 * progress (checked every 30 s). Route host names are resolved again by
 * the reload, blocking the loop for as long as the resolver takes: IP
 * literals avoid that.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "auth/orgdomain.h"
#include "gateway/gateway.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "smtp/tls.h"

struct dns_resolver *
daemon_resolver(struct event_base *base, const struct config *cfg, char *err,
    size_t errlen)
{
	struct dns_config dc;

	memset(&dc, 0, sizeof(dc));
	dc.servers = (const char *const *)cfg->dns_servers;
	dc.nservers = cfg->ndns_servers;
	dc.timeout_ms = cfg->dns_timeout_ms;
	dc.tries = 2;
	dc.cache_entries = (size_t)cfg->dns_cache;
	return dns_resolver_new(base, &dc, err, errlen);
}

static void
daemon_recovered(const char *id, void *arg)
{
	struct gateway *gw = arg;
	struct envelope env;
	const char *err;

	if (spool_load(gw->spool, id, &env, &err) == -1) {
		spool_quarantine_corrupt(gw->spool, id, err);
		return;
	}
	scheduler_add(gw->sched, id, env.next_attempt);
	envelope_free(&env);
}

static const struct delivery_route *
daemon_route_for(const char *domain, void *arg)
{
	struct gateway *gw = arg;
	const struct config_route *r;

	if (*domain == '\0' && gw->cfg->ndomains > 0) {
		/* bare <postmaster>: the first accepted domain's route */
		domain = gw->cfg->domains[0];
		if (*domain == '.')
			domain++;
	}
	if ((r = config_route_for(gw->cfg, domain)) == NULL)
		return NULL;
	return &gw->routes[r - gw->cfg->routes];
}

static int
daemon_build_routes(struct gateway *gw)
{
	const struct config *cfg = gw->cfg;
	size_t i, j, nh = 0, k = 0;

	for (i = 0; i < cfg->nroutes; i++)
		nh += cfg->routes[i].nhosts;
	gw->routes = calloc(cfg->nroutes + 1, sizeof(*gw->routes));
	gw->hosts = calloc(nh + 1, sizeof(*gw->hosts));
	if (gw->routes == NULL || gw->hosts == NULL)
		return -1;
	for (i = 0; i < cfg->nroutes; i++) {
		const struct config_route *cr = &cfg->routes[i];

		gw->routes[i].name = cr->domain;
		gw->routes[i].hosts = &gw->hosts[k];
		gw->routes[i].nhosts = cr->nhosts;
		gw->routes[i].tls = cr->tls;
		gw->routes[i].mx = cr->mx;
		for (j = 0; j < cr->nhosts; j++, k++) {
			gw->hosts[k].spec = cr->hosts[j].spec;
			gw->hosts[k].addr = (const struct sockaddr *)&cr->hosts[j].addr;
			gw->hosts[k].addrlen = cr->hosts[j].addrlen;
			gw->hosts[k].name = cr->hosts[j].name;
		}
	}
	return 0;
}

static int
daemon_chown_tree(const char *dir, uid_t uid, gid_t gid)
{
	DIR *d;
	struct dirent *de;
	char path[4400];
	int r = 0;

	if (chown(dir, uid, gid) == -1)
		return -1;
	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &st) == -1)
			continue;
		if (S_ISDIR(st.st_mode))
			r |= daemon_chown_tree(path, uid, gid);
		else if (S_ISREG(st.st_mode) && chown(path, uid, gid) == -1)
			r = -1;
	}
	closedir(d);
	return r;
}

static int
daemon_drop_privileges(struct gateway *gw)
{
	const char *user = gw->cfg->user;
	struct passwd *pw;

	if (geteuid() != 0) {
		if (user && *user)
			log_info("not started as root: running as uid %ld, "
			    "[server] user ignored", (long)geteuid());
		return 0;
	}
	if (user == NULL || *user == '\0') {
		log_error("started as root without [server] user: refusing to "
		    "run as root");
		return -1;
	}
	if ((pw = getpwnam(user)) == NULL) {
		log_error("[server] user '%s': no such user", user);
		return -1;
	}
	if (pw->pw_uid == 0) {
		log_error("[server] user '%s' is root: refusing", user);
		return -1;
	}
	if (daemon_chown_tree(gw->cfg->spool, pw->pw_uid, pw->pw_gid) == -1) {
		log_error("cannot hand spool %s to %s: %s", gw->cfg->spool, user,
		    strerror(errno));
		return -1;
	}
	if (setgroups(0, NULL) == -1 || setgid(pw->pw_gid) == -1 ||
	    setuid(pw->pw_uid) == -1) {
		log_error("cannot drop privileges to %s: %s", user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		log_error("privileges could be regained after the drop: refusing");
		return -1;
	}
	log_info("dropped privileges to user=%s uid=%ld", user, (long)pw->pw_uid);
	return 0;
}

struct gw_retired {
	struct config *cfg;
	struct delivery_route *routes;
	struct delivery_host *hosts;
	SSL_CTX *server_ssl;
	struct gw_retired *next;
};

static void
daemon_free_retired(struct gateway *gw)
{
	struct gw_retired *r;

	while ((r = gw->retired) != NULL) {
		gw->retired = r->next;
		config_free(r->cfg);
		free(r->routes);
		free(r->hosts);
		if (r->server_ssl)
			SSL_CTX_free(r->server_ssl);
		free(r);
	}
}

static void
daemon_fill_params(struct gateway *gw, struct delivery_params *dp,
    struct scheduler_params *sp)
{
	const struct config *cfg = gw->cfg;

	gw->server_cfg.hostname = cfg->hostname;
	gw->server_cfg.ssl_ctx = gw->server_ssl;
	gw->server_cfg.max_size = cfg->max_size;
	gw->server_cfg.max_rcpts = cfg->max_rcpts;
	gw->server_cfg.command_timeout = cfg->command_timeout;
	gw->server_cfg.data_timeout = cfg->data_timeout;
	gw->server_cfg.tls_timeout = cfg->tls_timeout;
	gw->server_cfg.min_data_rate = cfg->min_data_rate;
	gw->server_cfg.pregreet_wait = cfg->pregreet_wait;
	gw->server_cfg.soft_error_limit = cfg->soft_error_limit;
	gw->server_cfg.hard_error_limit = cfg->hard_error_limit;
	gw->server_cfg.error_delay = cfg->error_delay;
	gw->server_cfg.junk_limit = cfg->junk_limit;
	listener_fill_profiles(gw);
	memset(dp, 0, sizeof(*dp));
	dp->helo = cfg->hostname;
	dp->ssl_ctx = gw->client_ssl;
	dp->connect_timeout = cfg->connect_timeout;
	dp->command_timeout = cfg->delivery_command_timeout;
	dp->data_timeout = cfg->delivery_data_timeout;
	dp->idle_timeout = cfg->idle_timeout;
	dp->route_for = daemon_route_for;
	dp->route_arg = gw;
	dp->domain_ascii = orgdomain_ascii;	/* SMTPUTF8: U-labels */
	dp->resolver = gw->resolver;
	dp->mx_port = cfg->mx_port;
	dp->dest_concurrency = cfg->dest_concurrency;
	memset(sp, 0, sizeof(*sp));
	sp->hostname = cfg->hostname;
	sp->concurrency = cfg->delivery_concurrency;
	sp->retry_initial = cfg->retry_initial;
	sp->retry_max = cfg->retry_max;
	sp->max_lifetime = cfg->max_lifetime;
	sp->delay_warning = cfg->delay_warning;
	sp->on_settled = reporting_settled;
	sp->settled_arg = gw;
}

/* What only a restart can change. */
static const char *
daemon_fixed_change(const struct config *a, const struct config *b)
{
	size_t i;

	if (strcmp(a->spool, b->spool) != 0)
		return "[server] spool";
	if (strcmp(a->user ? a->user : "", b->user ? b->user : "") != 0)
		return "[server] user";
	if (a->log_syslog != b->log_syslog)
		return "[server] log";
	if (a->ndns_servers != b->ndns_servers || a->dns_timeout_ms != b->dns_timeout_ms ||
	    a->dns_cache != b->dns_cache)
		return "[dns]";
	for (i = 0; i < a->ndns_servers; i++)
		if (strcmp(a->dns_servers[i], b->dns_servers[i]) != 0)
			return "[dns]";
	/* loaded into the client TLS context once, at start */
	if (strcmp(a->ca_file ? a->ca_file : "", b->ca_file ? b->ca_file : "") != 0)
		return "[delivery] ca_file";
	if (a->nlisteners != b->nlisteners)
		return "the listeners";
	for (i = 0; i < a->nlisteners; i++)
		if (strcmp(a->listeners[i].address, b->listeners[i].address) != 0 ||
		    a->listeners[i].port != b->listeners[i].port ||
		    a->listeners[i].profile != b->listeners[i].profile)
			return "the listeners";
	/* bound at start, before the privilege drop */
	if (strcmp(a->metrics_listen ? a->metrics_listen : "",
	    b->metrics_listen ? b->metrics_listen : "") != 0)
		return "[metrics] listen";
	return NULL;
}

static void
daemon_reload(struct gateway *gw)
{
	struct buf errors = { 0 };
	struct config *ncfg;
	struct gw_retired *old;
	struct delivery_params dp;
	struct scheduler_params sp;
	SSL_CTX *nssl = NULL;
	const char *fixed;
	char err[512];

	log_info("SIGHUP: reloading %s", gw->cfg->path);
	if ((ncfg = config_load(gw->cfg->path, &errors)) == NULL) {
		char *line, *save = NULL;

		for (line = strtok_r(errors.data, "\n", &save); line;
		    line = strtok_r(NULL, "\n", &save))
			log_error("reload: %s", line);
		log_error("reload refused: keeping the running configuration");
		buf_free(&errors);
		return;
	}
	buf_free(&errors);
	if ((fixed = daemon_fixed_change(gw->cfg, ncfg)) != NULL) {
		log_error("reload refused: %s changed, which needs a restart; "
		    "keeping the running configuration", fixed);
		config_free(ncfg);
		return;
	}
	if (ncfg->tls_cert && *ncfg->tls_cert &&
	    (nssl = tls_server_ctx_new(ncfg->tls_cert, ncfg->tls_key, err,
	    sizeof(err))) == NULL) {
		log_error("reload refused: %s; keeping the running configuration", err);
		config_free(ncfg);
		return;
	}
	if ((old = calloc(1, sizeof(*old))) == NULL) {
		log_error("reload refused: out of memory");
		config_free(ncfg);
		if (nssl)
			SSL_CTX_free(nssl);
		return;
	}
	/* Retire the running configuration; free older retired ones once
	 * no delivery attempt can still point into them. */
	delivery_ctx_drop_idle(gw->dctx);
	if (delivery_ctx_active(gw->dctx) == 0 && gw->dmarc_inflight == 0)
		daemon_free_retired(gw);
	old->cfg = gw->cfg;
	old->routes = gw->routes;
	old->hosts = gw->hosts;
	old->server_ssl = gw->server_ssl;
	old->next = gw->retired;
	gw->retired = old;
	gw->cfg = ncfg;
	gw->server_ssl = nssl;
	gw->routes = NULL;
	gw->hosts = NULL;
	if (daemon_build_routes(gw) == -1)
		log_fatal("reload: out of memory building routes");
	daemon_fill_params(gw, &dp, &sp);
	delivery_ctx_set_params(gw->dctx, &dp);
	scheduler_set_params(gw->sched, &sp);
	reporting_reload(gw);
	log_set_level(ncfg->log_level);
	log_set_json(ncfg->log_json);
	log_info("configuration reloaded: %zu accepted domain(s), %zu route(s)",
	    ncfg->ndomains, ncfg->nroutes);
}

static void
daemon_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gateway *gw = arg;

	if (gw->retired && delivery_ctx_active(gw->dctx) == 0 &&
	    gw->dmarc_inflight == 0)
		daemon_free_retired(gw);
}

/* Each session may hold a socket and a spool file, each delivery the same:
 * make sure the descriptor limit allows what the configuration allows. */
static void
daemon_raise_nofile(const struct config *cfg)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)cfg->max_conn * 2 +
	    (rlim_t)cfg->delivery_concurrency * 2 + 64 +
	    (cfg->metrics_listen ? METRICS_HTTP_MAX_CONNS : 0);

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need && geteuid() == 0)
		rl.rlim_max = need;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		log_warning("file descriptor limit %llu is below the %llu that "
		    "[limits] connections = %d needs; raise it (LimitNOFILE=) or "
		    "lower connections", (unsigned long long)rl.rlim_cur,
		    (unsigned long long)need, cfg->max_conn);
}

static void
daemon_exit_check_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gateway *gw = arg;

	if (gw->nconns == 0)
		event_base_loopbreak(gw->base);
}

static void
daemon_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct gateway *gw = arg;
	struct timeval tv = { 0, 50000 }, grace = { 5, 0 };

	if (sig == SIGHUP) {
		if (!gw->stopping)
			daemon_reload(gw);
		return;
	}
	if (gw->stopping) {
		log_info("second signal: exiting now");
		event_base_loopbreak(gw->base);
		return;
	}
	gw->stopping = 1;
	log_info("signal %d: shutting down (%zu session(s) open, %zu message(s) "
	    "queued)", (int)sig, gw->nconns, scheduler_queued(gw->sched));
	listener_close_all(gw);
	listener_shutdown_sessions(gw);
	/* Sessions finish writing their 421; give them a moment. */
	gw->exit_check = event_new(gw->base, -1, EV_PERSIST, daemon_exit_check_cb, gw);
	if (gw->exit_check)
		event_add(gw->exit_check, &tv);
	event_base_loopexit(gw->base, &grace);
}

int
daemon_serve(const char *config_path, int debug)
{
	struct gateway gw;
	struct buf errors = { 0 };
	struct delivery_params dp;
	struct scheduler_params sp;
	struct event *sigs[4];
	static const int signums[] = { SIGTERM, SIGINT, SIGHUP, 0 };
	struct commit_worker *committer = NULL;
	char err[512];
	int i, n, rc = 1;

	memset(&gw, 0, sizeof(gw));
	memset(sigs, 0, sizeof(sigs));
	if ((gw.cfg = config_load(config_path, &errors)) == NULL) {
		fprintf(stderr, "%s", errors.data ? errors.data : "configuration failed\n");
		buf_free(&errors);
		return 1;
	}
	buf_free(&errors);
	log_init("mxgate", gw.cfg->log_syslog, debug ? LOGL_DEBUG : gw.cfg->log_level);
	log_set_json(gw.cfg->log_json);
	signal(SIGPIPE, SIG_IGN);

	if ((gw.spool = spool_open(gw.cfg->spool, err, sizeof(err))) == NULL) {
		log_error("%s", err);
		goto out;
	}
	if (gw.cfg->tls_cert && *gw.cfg->tls_cert) {
		gw.server_ssl = tls_server_ctx_new(gw.cfg->tls_cert, gw.cfg->tls_key,
		    err, sizeof(err));
		if (gw.server_ssl == NULL) {
			log_error("%s", err);
			goto out;
		}
	}
	if ((gw.client_ssl = tls_client_ctx_new(err, sizeof(err))) == NULL ||
	    smtp_client_ctx_trust(gw.client_ssl, gw.cfg->ca_file, err,
	    sizeof(err)) == -1) {
		log_error("%s", err);
		goto out;
	}
	daemon_raise_nofile(gw.cfg);
	if ((gw.base = event_base_new()) == NULL || daemon_build_routes(&gw) == -1) {
		log_error("out of memory at start-up");
		goto out;
	}
	if ((gw.resolver = daemon_resolver(gw.base, gw.cfg, err, sizeof(err))) == NULL) {
		log_error("resolver: %s", err);
		goto out;
	}
	if (listener_open_all(&gw) == -1 || metrics_http_start(&gw) == -1)
		goto out;
	if (daemon_drop_privileges(&gw) == -1)
		goto out;

	daemon_fill_params(&gw, &dp, &sp);
	if ((gw.dctx = delivery_ctx_new(gw.base, &dp)) == NULL ||
	    (gw.sched = scheduler_new(gw.base, gw.spool, gw.dctx, &sp)) == NULL) {
		log_error("out of memory at start-up");
		goto out;
	}
	if ((n = spool_recover(gw.spool, daemon_recovered, &gw)) == -1) {
		log_error("spool %s: cannot read: %s", gw.cfg->spool, strerror(errno));
		goto out;
	}
	log_info("spool %s: %d message(s) recovered", gw.cfg->spool, n);
	/* the fsyncs behind "250" run on a worker, shared by sessions */
	if ((committer = commit_worker_new(gw.base)) == NULL) {
		log_error("spool %s: cannot start the commit worker: %s",
		    gw.cfg->spool, strerror(errno));
		goto out;
	}
	spool_set_committer(gw.spool, committer);
	if (reporting_start(&gw) == -1)
		goto out;

	for (i = 0; signums[i]; i++) {
		sigs[i] = evsignal_new(gw.base, signums[i], daemon_signal_cb, &gw);
		if (sigs[i])
			evsignal_add(sigs[i], NULL);
	}
	{
		struct timeval sweep = { 30, 0 };

		gw.retired_sweep = event_new(gw.base, -1, EV_PERSIST,
		    daemon_sweep_cb, &gw);
		if (gw.retired_sweep)
			event_add(gw.retired_sweep, &sweep);
	}
	log_info("mxgate ready hostname=%s", gw.cfg->hostname);
	event_base_dispatch(gw.base);
	log_info("mxgate stopped");
	rc = 0;
out:
	for (i = 0; i < 4; i++)
		if (sigs[i])
			event_free(sigs[i]);
	if (gw.exit_check)
		event_free(gw.exit_check);
	if (gw.retired_sweep)
		event_free(gw.retired_sweep);
	listener_close_all(&gw);
	metrics_http_stop(&gw);
	if (gw.conns) {
		/* Sessions still open after the grace period are dropped
		 * (their unacknowledged messages removed by on_txn_end). */
		struct gw_conn *c;

		for (c = gw.conns; c; c = c->next)
			smtp_session_abort(c->s);
		event_base_loop(gw.base, EVLOOP_NONBLOCK);
	}
	/* commits in flight complete (and are queued) before the end */
	commit_worker_free(committer);
	if (gw.spool)
		spool_set_committer(gw.spool, NULL);
	gw_auth_free(&gw);
	scheduler_free(gw.sched);
	reporting_stop(&gw);
	delivery_ctx_free(gw.dctx);
	dns_resolver_free(gw.resolver);
	spool_close(gw.spool);
	if (gw.server_ssl)
		SSL_CTX_free(gw.server_ssl);
	if (gw.client_ssl)
		SSL_CTX_free(gw.client_ssl);
	free(gw.routes);
	free(gw.hosts);
	daemon_free_retired(&gw);
	if (gw.base)
		event_base_free(gw.base);
	config_free(gw.cfg);
	return rc;
}
