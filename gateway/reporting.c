/*
 * DMARC aggregate reports (RFC 9990) in the daemon:
 *   - every DMARC evaluation of inbound mail whose policy asks for
 *     aggregate reports (rua=) is recorded through report/recorder.h (a
 *     worker thread: the event loop never waits for SQLite); a message
 *     that is itself an aggregate report (its Subject, and it passes
 *     DMARC) is not recorded (no report about a report), nor one deferred
 *     with 4xx (its retry will be), nor one through a trusted relay whose
 *     original client could not be recovered (hybrid skip: the relay's
 *     address says nothing about the sender);
 *   - with [report] send = yes, once per min_interval (on the UTC hour
 *     grid, plus a random delay of up to [report] spread so reporters do
 *     not all send at once) and once shortly after start, the daemon runs
 *     `mxgate report send` as a child process: building, signing and
 *     queueing reports (report/send.h) never runs in the process that
 *     answers SMTP, and a fault there cannot take the MX down;
 *   - the final delivery result of each report (envelope session
 *     "dmarc-report") is noted per destination, so a destination that
 *     keeps failing is suppressed ([report] max_failures, suppress).
 */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "gateway/gateway.h"
#include "lib/log.h"
#include "report/recorder.h"

#define REPORT_FIRST_RUN	10	/* seconds after start */

extern char **environ;

/* ---- recording ---- */

static const char *
policy_word(enum dmarc_policy p)
{
	switch (p) {
	case DMARC_P_NONE: return "none";
	case DMARC_P_QUARANTINE: return "quarantine";
	case DMARC_P_REJECT: return "reject";
	default: return "";
	}
}

static const char *
dkim_word(enum dkim_result r)
{
	switch (r) {
	case DKIM_PASS: return "pass";
	case DKIM_FAIL: return "fail";
	case DKIM_NEUTRAL: return "neutral";
	case DKIM_POLICY: return "policy";
	case DKIM_TEMPERROR: return "temperror";
	case DKIM_PERMERROR: return "permerror";
	default: return "none";
	}
}

static const char *
rcpt_domain(struct gw_conn *c)
{
	const char *r, *at;

	if (smtp_session_rcpt_count(c->s) == 0 ||
	    (r = smtp_session_rcpt(c->s, 0)) == NULL ||
	    (at = strrchr(r, '@')) == NULL)
		return "";
	return at + 1;
}

void
reporting_record(struct gw_conn *c, const struct dmarc_outcome *o,
    const struct verdict *v)
{
	struct gateway *gw = c->gw;
	const struct dmarc_record *rec = o->record;
	struct report_policy p;
	struct report_row r;
	struct dmarc_params sp;
	const char *sender, *at;
	size_t i, n;
	int pass;

	if (gw->recorder == NULL || rec == NULL || *o->policy_domain == '\0' ||
	    rec->rua == NULL || *rec->rua == '\0')
		return;
	/* No report about a report; a genuine one passes DMARC (RFC 9990
	 * 3.1.1), so a spoofer cannot hide behind the Subject. */
	if (c->is_report && o->result == DMARC_PASS) {
		log_debug("session=%s id=%s an aggregate report: not recorded for "
		    "reports", smtp_session_id(c->s), c->id);
		return;
	}
	/* A deferred message is counted when it comes again. Mail through a
	 * trusted relay that could not be traced back (hybrid skip) has no
	 * source IP worth reporting: the relay's own is internal. */
	if (v->action == VERDICT_DEFER || (c->via_relay && !c->recovered))
		return;
	memset(&p, 0, sizeof(p));
	p.domain = o->policy_domain;
	p.discovery_method = o->discovery ? o->discovery : "";
	p.p = policy_word(rec->p);
	if (*p.p == '\0')
		p.p = "none";	/* RFC 9989 4.7: p= absent is none */
	p.sp = policy_word(rec->sp);
	p.np = policy_word(rec->np);
	p.fo = rec->fo ? rec->fo : "";
	p.adkim = rec->adkim == DMARC_ALIGN_STRICT ? "s" : "r";
	p.aspf = rec->aspf == DMARC_ALIGN_STRICT ? "s" : "r";
	p.testing = rec->testing ? "y" : "n";
	p.rua = rec->rua;
	p.ri = rec->ri > 0 ? rec->ri : 0;

	memset(&r, 0, sizeof(r));
	r.source_ip = c->recovered ? c->rec->ip : c->ip;
	r.count = 1;
	/* RFC 9990 2.1: "pass" is no action on a passing message under an
	 * enforcing policy */
	if (o->result == DMARC_PASS && rec->p != DMARC_P_NONE &&
	    rec->p != DMARC_P_UNSET)
		r.disposition = "pass";
	else
		r.disposition = v->disposition ? v->disposition : "none";
	r.dkim_aligned = o->dkim_aligned;
	r.spf_aligned = o->spf_aligned;
	if (v->override) {
		r.reasons[r.nreasons].type = v->override;
		r.reasons[r.nreasons++].comment = "";
	}
	if (rec->testing && o->result == DMARC_FAIL &&
	    o->effective != o->requested) {
		r.reasons[r.nreasons].type = "policy_test_mode";
		r.reasons[r.nreasons++].comment = "";
	}
	r.header_from = o->author_domain;
	sender = smtp_session_sender(c->s);
	at = strrchr(sender, '@');
	r.envelope_from = *sender && at ? at + 1 : "";
	r.envelope_to = rcpt_domain(c);
	/* RFC 9990 "DKIM Signatures in Aggregate Reports": the kept ones by
	 * priority: passes for the author domain, other passes, the rest (so
	 * bogus signatures placed first cannot crowd out the aligned one) */
	n = c->dkim ? dkim_verify_count(c->dkim) : 0;
	for (pass = 0; pass < 3; pass++)
		for (i = 0; i < n && r.ndkim < REPORT_MAX_DKIM; i++) {
			const struct dkim_sig_result *d =
			    dkim_verify_result(c->dkim, i);
			int rank;

			if (d->domain == NULL || *d->domain == '\0')
				continue;
			rank = d->result != DKIM_PASS ? 2 :
			    strcasecmp(d->domain, o->author_domain) == 0 ? 0 : 1;
			if (rank != pass)
				continue;
			r.dkim[r.ndkim].domain = d->domain;
			r.dkim[r.ndkim].selector = d->selector ? d->selector : "";
			r.dkim[r.ndkim].result = dkim_word(d->result);
			r.dkim[r.ndkim].human_result = d->reason ? d->reason : "";
			r.ndkim++;
		}
	memset(&sp, 0, sizeof(sp));
	sp.spf_result = (enum spf_result)-1;
	inbound_dmarc_spf(c, &sp);
	if (sp.spf_domain && *sp.spf_domain &&
	    (int)sp.spf_result != -1) {
		r.spf_domain = sp.spf_domain;
		/* RFC 9990 2.1: scope "MUST contain mfrom"; for the null
		 * sender the MAIL FROM identity is postmaster@HELO (RFC 7208
		 * 2.4), so mfrom still */
		r.spf_scope = "mfrom";
		r.spf_result = spf_result_name(sp.spf_result);
	} else {
		r.spf_domain = r.spf_scope = r.spf_result = "";
	}
	if (report_recorder_add(gw->recorder, &p, &r) == -1)
		log_debug("session=%s id=%s report record dropped (queue full)",
		    smtp_session_id(c->s), c->id);
}

/* ---- delivery results of reports ---- */

void
reporting_settled(const struct envelope *env, size_t i, void *arg)
{
	struct gateway *gw = arg;
	const struct env_rcpt *r = &env->rcpts[i];

	if (gw->recorder == NULL || env->session == NULL ||
	    strcmp(env->session, "dmarc-report") != 0)
		return;
	report_recorder_dest_result(gw->recorder, r->addr,
	    r->state == ENV_DELIVERED, r->last ? r->last : "",
	    gw->cfg->report_max_failures, gw->cfg->report_suppress);
	if (r->state != ENV_DELIVERED)
		log_info("id=%s report to <%s> failed: %s", env->id,
		    log_safe(r->addr), r->last ? log_safe(r->last) : "");
}

/* ---- the periodic `mxgate report send` ---- */

static long long
reporting_next(const struct config *cfg, long long now)
{
	long long step = cfg->report_min_interval, next;
	unsigned int rnd = 0;

	next = now - now % step + step;
	if (cfg->report_spread > 0) {
		RAND_bytes((unsigned char *)&rnd, sizeof(rnd));
		next += rnd % (unsigned)cfg->report_spread;
	}
	return next;
}

static void
reporting_reap(struct gateway *gw)
{
	int status;
	pid_t p;

	if (gw->report_child == 0)
		return;
	p = waitpid(gw->report_child, &status, WNOHANG);
	if (p == 0)
		return;
	if (p == gw->report_child) {
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			log_debug("report send (pid %ld) finished",
			    (long)gw->report_child);
		else
			log_warning("report send (pid %ld) ended with %s %d",
			    (long)gw->report_child, WIFEXITED(status) ?
			    "status" : "signal", WIFEXITED(status) ?
			    WEXITSTATUS(status) : WTERMSIG(status));
	}
	gw->report_child = 0;
}

static void
reporting_spawn(struct gateway *gw)
{
	char *argv[] = { "mxgate", "report", "-c", gw->cfg->path, "send",
	    NULL };
	pid_t pid;
	int e;

	posix_spawn_file_actions_t fa;

	/* only stdin, stdout, stderr: never a client's socket, whose close
	 * would otherwise wait for the child */
	if ((e = posix_spawn_file_actions_init(&fa)) != 0 ||
	    (e = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) != 0) {
		log_error("report send: cannot start: %s", strerror(e));
		return;
	}
	e = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (e != 0) {
		log_error("report send: cannot start /proc/self/exe: %s",
		    strerror(e));
		return;
	}
	gw->report_child = pid;
	log_info("report send started (pid %ld)", (long)pid);
}

static void
reporting_tick(evutil_socket_t fd, short what, void *arg)
{
	struct gateway *gw = arg;
	long long now = time(NULL);

	reporting_reap(gw);
	if (!gw->cfg->report_send || gw->stopping)
		return;
	if (now >= gw->report_next && gw->report_child == 0) {
		reporting_spawn(gw);
		gw->report_next = reporting_next(gw->cfg, now);
	}
}

static int
reporting_open(struct gateway *gw)
{
	const struct config *cfg = gw->cfg;
	char err[512];

	if (!cfg->report_record || !cfg->dmarc_verify)
		return 0;
	gw->recorder = report_recorder_new(cfg->report_store, err, sizeof(err));
	if (gw->recorder == NULL) {
		log_error("[report] store: %s", err);
		return -1;
	}
	if ((gw->recorder_path = strdup(cfg->report_store)) == NULL) {
		report_recorder_free(gw->recorder);
		gw->recorder = NULL;
		return -1;
	}
	report_recorder_set_retention(gw->recorder, cfg->report_retention);
	log_info("report store %s: recording DMARC evaluations", cfg->report_store);
	return 0;
}

static void
reporting_close(struct gateway *gw)
{
	if (gw->recorder) {
		report_recorder_free(gw->recorder);
		gw->recorder = NULL;
	}
	free(gw->recorder_path);
	gw->recorder_path = NULL;
}

int
reporting_start(struct gateway *gw)
{
	struct timeval tick = { 5, 0 };

	if (reporting_open(gw) == -1)
		return -1;
	gw->report_next = (long long)time(NULL) + REPORT_FIRST_RUN;
	gw->report_timer = event_new(gw->base, -1, EV_PERSIST, reporting_tick, gw);
	if (gw->report_timer == NULL || event_add(gw->report_timer, &tick) == -1)
		return -1;
	return 0;
}

void
reporting_reload(struct gateway *gw)
{
	const struct config *cfg = gw->cfg;
	int want = cfg->report_record && cfg->dmarc_verify;

	if (gw->recorder && (!want || strcmp(gw->recorder_path,
	    cfg->report_store) != 0))
		reporting_close(gw);
	if (want && gw->recorder == NULL)
		reporting_open(gw);	/* failure logged; mail goes on */
	if (gw->recorder)
		report_recorder_set_retention(gw->recorder,
		    cfg->report_retention);
	if (cfg->report_send && gw->report_next == 0)
		gw->report_next = (long long)time(NULL) + REPORT_FIRST_RUN;
}

void
reporting_stop(struct gateway *gw)
{
	if (gw->report_timer) {
		event_free(gw->report_timer);
		gw->report_timer = NULL;
	}
	if (gw->report_child) {
		/* a report cut short is left pending and sent again */
		kill(gw->report_child, SIGTERM);
		waitpid(gw->report_child, NULL, 0);
		gw->report_child = 0;
	}
	reporting_close(gw);
}
