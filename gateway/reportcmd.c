/*
 * `mxgate report [-c CONFIG] [--store PATH] COMMAND`: DMARC aggregate
 * reports (RFC 9990), both ways.
 *
 *   send [--now]   as the Mail Receiver: build, sign and queue the reports
 *                  that are due (report/send.h; what the daemon runs as a
 *                  child once per period). --now also closes the current
 *                  period, through the current second. Needs [report]
 *                  send = yes. Prints "queued N, skipped N, deferred N,
 *                  failed N".
 *   list [--json]  the reports made so far, newest first: begin, end,
 *                  policy domain, state (pending, queued, skipped,
 *                  failed), Report-ID, and why.
 *   import FILE... as the Domain Owner: reports others sent about our
 *                  domains (XML, .xml.gz, .zip, or the report mail;
 *                  report/import.h), into the store, each once (org_name
 *                  and report_id). One line per report: "FILE: new|
 *                  duplicate ORG ID DOMAIN BEGIN..END records=N
 *                  messages=N"; a file that holds no report, or that is
 *                  refused, gives "FILE: error: WHY" and exit status 1.
 *   summary [--domain D] [--since DATE] [--json] [--no-dns]
 *                  imported reports, per source IP and reporter: messages,
 *                  DMARC/DKIM/SPF pass rates (aligned), dispositions, with
 *                  the IP's reverse DNS name ([dns] servers; --no-dns
 *                  leaves it out). DATE is YYYY-MM-DD (UTC) or unix
 *                  seconds. The view a domain owner needs before moving
 *                  from p=none to quarantine and reject.
 *
 * The store is [report] store of the configuration (default SPOOL/
 * reports.db); --store names another (then import, summary and list need
 * no configuration file). As root the command becomes the spool's owner
 * first, as the other spool tools do.
 * Exit status: 0 done, 1 error, 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "auth/orgdomain.h"
#include "gateway/gateway.h"
#include "lib/dns.h"
#include "lib/log.h"
#include "report/import.h"
#include "report/send.h"
#include "report/store.h"

#define REPORTCMD_CONFIG "/etc/mxgate/mxgate.ini"

static void
reportcmd_usage(FILE *f)
{
	fprintf(f, "usage: mxgate report [-c FILE] [--store PATH] send [--now] | "
	    "list [--json] |\n"
	    "           import FILE... | summary [--domain D] [--since DATE] "
	    "[--json] [--no-dns]\n");
}

/* ---- send ---- */

static int
reportcmd_send(struct config *cfg, const char *store_path, int now_mode)
{
	struct report_store *st = NULL;
	struct spool *sp = NULL;
	struct event_base *base = NULL;
	struct dns_resolver *res = NULL;
	struct orgdomain_psl *psl = NULL;
	struct report_send_config rc;
	struct report_send_stats stats;
	struct dkim_sign_params *keys = NULL;
	const struct config_signer *sg;
	char err[512], *lockpath = NULL;
	int ret = 1, lockfd = -1;

	if (!cfg->report_send) {
		fprintf(stderr, "mxgate: [report] send = no in %s: no reports are "
		    "sent\n", cfg->path);
		return 1;
	}
	/* one run at a time: two would send a pending report twice */
	if (asprintf(&lockpath, "%s.lock", store_path) == -1)
		goto oom;
	if ((lockfd = open(lockpath, O_RDONLY | O_CREAT | O_CLOEXEC, 0600)) == -1) {
		fprintf(stderr, "mxgate: %s: %s\n", lockpath, strerror(errno));
		goto out;
	}
	if (flock(lockfd, LOCK_EX | LOCK_NB) == -1) {
		fprintf(stderr, "mxgate: another `mxgate report send` is running "
		    "(%s is locked)\n", lockpath);
		goto out;
	}
	sg = config_signer_for(cfg, strrchr(cfg->report_email, '@') + 1);
	if ((keys = calloc(sg->nkeys, sizeof(*keys))) == NULL)
		goto oom;
	outbound_sign_params(sg, keys, sg->nkeys, 0);
	if ((sp = spool_open(cfg->spool, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxgate: %s\n", err);
		goto out;
	}
	if ((st = report_store_open(store_path, 0, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxgate: %s\n", err);
		goto out;
	}
	if ((base = event_base_new()) == NULL)
		goto oom;
	if ((res = daemon_resolver(base, cfg, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxgate: resolver: %s\n", err);
		goto out;
	}
	/* RFC 9990 4: organizational domains for external destinations */
	if ((psl = orgdomain_psl_load(cfg->dmarc_psl_file, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "mxgate: public suffix list: %s\n", err);
		goto out;
	}
	memset(&rc, 0, sizeof(rc));
	rc.hostname = cfg->hostname;
	rc.org_name = cfg->report_org_name;
	rc.email = cfg->report_email;
	rc.extra_contact_info = cfg->report_contact;
	rc.keys = keys;
	rc.nkeys = sg->nkeys;
	rc.interval = cfg->report_interval;
	rc.min_interval = cfg->report_min_interval;
	rc.rate = now_mode ? 0 : cfg->report_rate;
	rc.max_rua = (size_t)cfg->report_max_rua;
	rc.retention = cfg->report_retention;
	rc.psl = psl;
	if (report_send_run(&rc, st, sp, base, res, (long long)time(NULL),
	    now_mode, &stats, err, sizeof(err)) == -1) {
		log_error("report send: %s", err);
		fprintf(stderr, "mxgate: report send: %s\n", err);
		goto out;
	}
	printf("queued %u, skipped %u, deferred %u, failed %u\n", stats.queued,
	    stats.skipped, stats.deferred, stats.failed);
	ret = stats.failed ? 1 : 0;
	goto out;
oom:
	fprintf(stderr, "mxgate: out of memory\n");
out:
	if (lockfd != -1)
		close(lockfd);
	free(lockpath);
	free(keys);
	dns_resolver_free(res);
	if (base)
		event_base_free(base);
	orgdomain_psl_free(psl);
	report_store_close(st);
	spool_close(sp);
	return ret;
}

/* ---- list ---- */

struct listctx {
	int json;
	int n;
};

static int
reportcmd_list_cb(const char *domain, long long begin, long long end,
    const char *id, const char *state, const char *why, void *arg)
{
	struct listctx *l = arg;
	char b[40], e[40];

	if (l->json) {
		printf("%s{\"domain\":", l->n ? ",\n " : "[");
		spoolcli_json_str(stdout, domain);
		printf(",\"begin\":%lld,\"end\":%lld,\"id\":", begin, end - 1);
		spoolcli_json_str(stdout, id);
		printf(",\"state\":");
		spoolcli_json_str(stdout, state);
		printf(",\"why\":");
		spoolcli_json_str(stdout, why ? why : "");
		putchar('}');
	} else {
		spoolcli_time(b, sizeof(b), begin);
		spoolcli_time(e, sizeof(e), end - 1);	/* as in the XML */
		printf("%s .. %s ", b, e);
		spoolcli_put(stdout, domain, 0);
		printf(" %s ", state);
		spoolcli_put(stdout, id, 0);
		if (why && *why) {
			putchar(' ');
			spoolcli_put(stdout, why, 1);
		}
		putchar('\n');
	}
	l->n++;
	return 0;
}

static int
reportcmd_list(struct report_store *st, int json)
{
	struct listctx l = { json, 0 };
	char err[512];

	if (report_store_reports(st, 0, reportcmd_list_cb, &l, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "mxgate: %s\n", err);
		return 1;
	}
	if (json)
		printf("%s]\n", l.n ? "" : "[");
	else if (l.n == 0)
		printf("no reports made yet\n");
	return 0;
}

/* ---- import ---- */

struct importctx {
	struct report_store *st;
	const char *file;
	int errors;
};

static int
reportcmd_import_cb(const struct report_parsed *r, void *arg)
{
	struct importctx *k = arg;
	char err[512], b[40], e[40];
	long long msgs = 0;
	size_t i;
	int got;

	for (i = 0; i < r->nrows; i++)
		msgs += r->rows[i].count;
	got = report_store_import(k->st, &r->meta, &r->policy, r->rows,
	    r->nrows, k->file, err, sizeof(err));
	spoolcli_put(stdout, k->file, 1);
	if (got == -1) {
		printf(": error: %s\n", err);
		k->errors++;
		return 0;
	}
	spoolcli_time(b, sizeof(b), r->meta.begin);
	spoolcli_time(e, sizeof(e), r->meta.end);
	printf(": %s ", got ? "new" : "duplicate");
	spoolcli_put(stdout, r->meta.org_name, 0);
	putchar(' ');
	spoolcli_put(stdout, r->meta.report_id, 0);
	putchar(' ');
	spoolcli_put(stdout, r->policy.domain, 0);
	printf(" %s..%s records=%zu messages=%lld format=%s\n", b, e, r->nrows,
	    msgs, r->format);
	return 0;
}

static int
reportcmd_read(const char *path, char **data_r, size_t *len_r, char *err,
    size_t errlen)
{
	struct stat sb;
	char *d;
	size_t n = 0;
	ssize_t r;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 || fstat(fd, &sb) == -1) {
		snprintf(err, errlen, "%s", strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	if (!S_ISREG(sb.st_mode) || sb.st_size > (off_t)REPORT_IMPORT_MAX_INPUT) {
		snprintf(err, errlen, S_ISREG(sb.st_mode) ? "larger than %u MB" :
		    "not a regular file", REPORT_IMPORT_MAX_INPUT >> 20);
		close(fd);
		return -1;
	}
	if ((d = malloc((size_t)sb.st_size + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		close(fd);
		return -1;
	}
	while (n < (size_t)sb.st_size &&
	    (r = read(fd, d + n, (size_t)sb.st_size - n)) != 0) {
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			snprintf(err, errlen, "%s", strerror(errno));
			free(d);
			close(fd);
			return -1;
		}
		n += (size_t)r;
	}
	close(fd);
	*data_r = d;
	*len_r = n;
	return 0;
}

static int
reportcmd_import(struct report_store *st, int argc, char **argv)
{
	struct importctx k;
	char err[512], *data;
	size_t len;
	int i, n;

	memset(&k, 0, sizeof(k));
	k.st = st;
	for (i = 0; i < argc; i++) {
		k.file = argv[i];
		if (reportcmd_read(argv[i], &data, &len, err, sizeof(err)) == -1) {
			spoolcli_put(stdout, argv[i], 1);
			printf(": error: %s\n", err);
			k.errors++;
			continue;
		}
		n = report_import(data, len, argv[i], reportcmd_import_cb, &k, err,
		    sizeof(err));
		free(data);
		if (n <= 0) {
			/* err names the file itself ("FILE: why") */
			size_t fl = strlen(argv[i]);
			const char *why = strncmp(err, argv[i], fl) == 0 &&
			    err[fl] == ':' && err[fl + 1] == ' ' ? err + fl + 2 : err;

			spoolcli_put(stdout, argv[i], 1);
			printf(": error: %s\n", why);
			k.errors++;
		}
	}
	return k.errors ? 1 : 0;
}

/* ---- summary ---- */

struct sumrow {
	struct report_summary_entry e;	/* strings below */
	char *domain, *ip, *reporter;
	char *ptr;			/* reverse DNS, or NULL */
	int ptr_status;
};

struct sumctx {
	struct sumrow *v;
	size_t n, cap;
	int oom;
	int pending;			/* PTR lookups in flight */
	struct event_base *base;
};

static int
reportcmd_sum_cb(const struct report_summary_entry *e, void *arg)
{
	struct sumctx *s = arg;
	struct sumrow *r;

	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 64;
		struct sumrow *v = realloc(s->v, nc * sizeof(*v));

		if (v == NULL)
			return s->oom = 1;
		s->v = v;
		s->cap = nc;
	}
	r = &s->v[s->n];
	memset(r, 0, sizeof(*r));
	r->e = *e;
	r->domain = strdup(e->domain ? e->domain : "");
	r->ip = strdup(e->source_ip ? e->source_ip : "");
	r->reporter = strdup(e->reporter ? e->reporter : "");
	if (r->domain == NULL || r->ip == NULL || r->reporter == NULL) {
		free(r->domain);
		free(r->ip);
		free(r->reporter);
		return s->oom = 1;
	}
	s->n++;
	return 0;
}

struct ptrq {
	struct sumctx *s;
	size_t i;
};

static void
reportcmd_ptr_cb(const struct dns_answer *a, void *arg)
{
	struct ptrq *q = arg;
	struct sumctx *s = q->s;
	size_t j;

	/* every row with this IP gets the name */
	for (j = 0; j < s->n; j++)
		if (strcmp(s->v[j].ip, s->v[q->i].ip) == 0) {
			s->v[j].ptr_status = 1;
			if (a->status == DNS_OK && a->n > 0 && a->rr[0].text)
				s->v[j].ptr = strdup(a->rr[0].text);
		}
	free(q);
	if (--s->pending == 0)
		event_base_loopbreak(s->base);
}

static void
reportcmd_rdns(struct sumctx *s, const struct config *cfg)
{
	struct dns_resolver *res;
	struct dns_config dc;
	char err[256], name[128];
	size_t i, j;

	if ((s->base = event_base_new()) == NULL)
		return;
	if (cfg)
		res = daemon_resolver(s->base, cfg, err, sizeof(err));
	else {
		memset(&dc, 0, sizeof(dc));
		res = dns_resolver_new(s->base, &dc, err, sizeof(err));
	}
	if (res == NULL) {
		fprintf(stderr, "mxgate: no reverse DNS: %s\n", err);
		event_base_free(s->base);
		return;
	}
	for (i = 0; i < s->n; i++) {
		struct ptrq *q;

		for (j = 0; j < i; j++)
			if (strcmp(s->v[j].ip, s->v[i].ip) == 0)
				break;
		if (j < i || dns_reverse_name(s->v[i].ip, name, sizeof(name)) == -1)
			continue;
		if ((q = malloc(sizeof(*q))) == NULL)
			break;
		q->s = s;
		q->i = i;
		if (dns_query(res, name, DNS_T_PTR, reportcmd_ptr_cb, q) == NULL) {
			free(q);
			break;
		}
		s->pending++;
	}
	while (s->pending > 0)
		if (event_base_loop(s->base, EVLOOP_ONCE) == -1)
			break;
	dns_resolver_free(res);
	event_base_free(s->base);
}

static double
pct(long long part, long long whole)
{
	return whole > 0 ? 100.0 * (double)part / (double)whole : 0.0;
}

static void
reportcmd_sum_print(const struct sumctx *s, int json)
{
	long long total = 0, pass = 0;
	size_t i;

	for (i = 0; i < s->n; i++) {
		total += s->v[i].e.messages;
		pass += s->v[i].e.dmarc_pass;
	}
	if (json) {
		printf("{\"messages\":%lld,\"dmarc_pass\":%lld,\"sources\":[", total,
		    pass);
		for (i = 0; i < s->n; i++) {
			const struct sumrow *r = &s->v[i];

			printf("%s\n {\"domain\":", i ? "," : "");
			spoolcli_json_str(stdout, r->domain);
			printf(",\"source_ip\":");
			spoolcli_json_str(stdout, r->ip);
			printf(",\"reverse_dns\":");
			spoolcli_json_str(stdout, r->ptr);
			printf(",\"reporter\":");
			spoolcli_json_str(stdout, r->reporter);
			printf(",\"reports\":%lld,\"messages\":%lld,\"dmarc_pass\":%lld,"
			    "\"dkim_aligned\":%lld,\"spf_aligned\":%lld,"
			    "\"disposition\":{\"none\":%lld,\"pass\":%lld,"
			    "\"quarantine\":%lld,\"reject\":%lld},"
			    "\"first\":%lld,\"last\":%lld}", r->e.reports,
			    r->e.messages, r->e.dmarc_pass, r->e.dkim_aligned,
			    r->e.spf_aligned, r->e.disp_none, r->e.disp_pass,
			    r->e.disp_quarantine, r->e.disp_reject, r->e.first,
			    r->e.last);
		}
		printf("%s]}\n", s->n ? "\n" : "");
		return;
	}
	if (s->n == 0) {
		printf("no imported reports match\n");
		return;
	}
	printf("%lld message(s) reported, DMARC pass %.1f%%\n\n", total,
	    pct(pass, total));
	printf("%-39s %-24s %8s %6s %6s %6s  %s\n", "SOURCE IP", "REPORTER",
	    "MESSAGES", "DMARC%", "DKIM%", "SPF%",
	    "DISPOSITIONS none/pass/quar/reject  DOMAIN  REVERSE DNS");
	for (i = 0; i < s->n; i++) {
		const struct sumrow *r = &s->v[i];

		spoolcli_put(stdout, r->ip, 0);
		printf("%*s ", (int)(strlen(r->ip) < 39 ? 39 - strlen(r->ip) : 0), "");
		spoolcli_put(stdout, r->reporter, 1);
		printf("%*s ", (int)(strlen(r->reporter) < 24 ?
		    24 - strlen(r->reporter) : 0), "");
		printf("%8lld %5.1f%% %5.1f%% %5.1f%%  %lld/%lld/%lld/%lld  ",
		    r->e.messages, pct(r->e.dmarc_pass, r->e.messages),
		    pct(r->e.dkim_aligned, r->e.messages),
		    pct(r->e.spf_aligned, r->e.messages), r->e.disp_none,
		    r->e.disp_pass, r->e.disp_quarantine, r->e.disp_reject);
		spoolcli_put(stdout, r->domain, 0);
		putchar(' ');
		spoolcli_put(stdout, r->ptr ? r->ptr : "-", 0);
		putchar('\n');
	}
}

/* YYYY-MM-DD (UTC) or unix seconds; -1 if neither. */
static long long
reportcmd_date(const char *s)
{
	struct tm tm;
	char *end;
	long long v;

	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%d", &tm);
	if (end && *end == '\0')
		return (long long)timegm(&tm);
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || end == s || v < 0)
		return -1;
	return v;
}

static int
reportcmd_summary(struct report_store *st, const struct config *cfg,
    int argc, char **argv)
{
	struct sumctx s;
	const char *domain = NULL;
	long long since = 0;
	int json = 0, rdns = 1, i;
	char err[512];
	size_t j;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--no-dns") == 0)
			rdns = 0;
		else if (strcmp(argv[i], "--domain") == 0 && i + 1 < argc)
			domain = argv[++i];
		else if (strcmp(argv[i], "--since") == 0 && i + 1 < argc) {
			if ((since = reportcmd_date(argv[++i])) < 0) {
				fprintf(stderr, "mxgate: --since: expected YYYY-MM-DD or "
				    "unix seconds\n");
				return 2;
			}
		} else {
			reportcmd_usage(stderr);
			return 2;
		}
	}
	memset(&s, 0, sizeof(s));
	if (report_store_summary(st, domain, since, reportcmd_sum_cb, &s, err,
	    sizeof(err)) == -1 || s.oom) {
		fprintf(stderr, "mxgate: %s\n", s.oom ? "out of memory" : err);
		return 1;
	}
	if (rdns && s.n > 0)
		reportcmd_rdns(&s, cfg);
	reportcmd_sum_print(&s, json);
	for (j = 0; j < s.n; j++) {
		free(s.v[j].domain);
		free(s.v[j].ip);
		free(s.v[j].reporter);
		free(s.v[j].ptr);
	}
	free(s.v);
	return 0;
}

/* ---- main ---- */

int
reportcmd_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "store", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_path = NULL, *store_path = NULL, *cmd;
	struct config *cfg = NULL;
	struct report_store *st = NULL;
	struct buf errors = { 0 };
	char err[512];
	int ch, ret = 1, json = 0, now_mode = 0, i;

	while ((ch = getopt_long(argc, argv, "+c:", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config_path = optarg;
			break;
		case 's':
			store_path = optarg;
			break;
		default:
			reportcmd_usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		reportcmd_usage(stderr);
		return 2;
	}
	cmd = argv[optind++];
	if (strcmp(cmd, "send") == 0 || strcmp(cmd, "list") == 0) {
		for (i = optind; i < argc; i++)
			if (strcmp(cmd, "send") == 0 && strcmp(argv[i], "--now") == 0)
				now_mode = 1;
			else if (strcmp(cmd, "list") == 0 &&
			    strcmp(argv[i], "--json") == 0)
				json = 1;
			else {
				reportcmd_usage(stderr);
				return 2;
			}
	} else if (strcmp(cmd, "import") == 0) {
		if (optind >= argc) {
			reportcmd_usage(stderr);
			return 2;
		}
	} else if (strcmp(cmd, "summary") != 0) {
		fprintf(stderr, "mxgate: report: unknown command '");
		spoolcli_put(stderr, cmd, 1);
		fprintf(stderr, "'\n");
		reportcmd_usage(stderr);
		return 2;
	}
	/* the configuration: always for send; else unless --store alone */
	if (config_path || store_path == NULL || strcmp(cmd, "send") == 0) {
		if (config_path == NULL)
			config_path = REPORTCMD_CONFIG;
		if ((cfg = config_load(config_path, &errors)) == NULL) {
			fputs(errors.data ? errors.data : "configuration failed\n",
			    stderr);
			buf_free(&errors);
			return 1;
		}
		buf_free(&errors);
		if (strcmp(cmd, "send") == 0 && !cfg->report_send) {
			fprintf(stderr, "mxgate: [report] send = no in %s: no "
			    "reports are sent\n", cfg->path);
			goto out;
		}
		/* as root: the spool's owner, so the spool and the daemon's
		 * store stay the daemon's (a --store of one's own: as is) */
		if ((store_path == NULL || strcmp(cmd, "send") == 0) &&
		    spoolcli_become_owner(cfg->spool) == -1)
			goto out;
		if (store_path == NULL)
			store_path = cfg->report_store;
	}
	log_init("mxgate", cfg ? cfg->log_syslog : 0, LOGL_INFO);
	log_set_json(cfg ? cfg->log_json : 0);
	if (strcmp(cmd, "send") == 0) {
		ret = reportcmd_send(cfg, store_path, now_mode);
		goto out;
	}
	/* reading a store that is not there: say so, do not make one */
	if (strcmp(cmd, "import") != 0 && access(store_path, F_OK) == -1) {
		fprintf(stderr, "mxgate: report store %s: %s\n", store_path,
		    strerror(errno));
		goto out;
	}
	if ((st = report_store_open(store_path, 0, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxgate: %s\n", err);
		goto out;
	}
	if (strcmp(cmd, "list") == 0)
		ret = reportcmd_list(st, json);
	else if (strcmp(cmd, "import") == 0)
		ret = reportcmd_import(st, argc - optind, argv + optind);
	else
		ret = reportcmd_summary(st, cfg, argc - optind, argv + optind);
out:
	report_store_close(st);
	config_free(cfg);
	return ret;
}
