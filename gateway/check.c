/*
 * `mxgate check spf --ip IP --sender ADDRESS --helo NAME [--dns HOST:PORT]
 * [--receiver NAME]`: one SPF check against live DNS (or the given
 * server), printed for a person: the result on the first line as
 * spf=RESULT, then the explanation, the Received-SPF header, and the
 * trace of the terms evaluated. Exit 0 whenever a result was computed,
 * 2 on bad usage, 1 when the check could not run.
 *
 * `mxgate check message --ip IP --sender ADDRESS --helo NAME [--dns
 * HOST:PORT] [--discovery treewalk|psl] [--psl-file FILE] [FILE]`: SPF,
 * DKIM and DMARC for a whole message (stdin without FILE), printed as the
 * Authentication-Results header the gateway would add (with the default
 * policy settings: enforce, tag quarantines, reject bad From), and the
 * verdict on stderr ("verdict: reject 550 5.7.1 ...").
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>

#include "auth/authres.h"
#include "auth/dkim.h"
#include "auth/spf.h"
#include "auth/spf_query.h"
#include "auth/dmarc_query.h"
#include "auth/orgdomain.h"
#include "policy/verdict.h"
#include "smtp/address.h"
#include "smtp/message.h"
#include "gateway/gateway.h"
#include "lib/dns.h"

struct check_out {
	int done;
	char receiver[256];
};

static void
check_spf_done(const struct spf *s, void *arg)
{
	struct check_out *o = arg;
	char hdr[2048];

	printf("spf=%s\n", spf_result_name(spf_result(s)));
	printf("domain: %s\n", spf_domain(s));
	printf("reason: %s\n", spf_reason(s));
	if (spf_result(s) == SPF_FAIL)
		printf("explanation: %s\n", spf_explanation(s));
	if (spf_received_header(s, o->receiver, hdr, sizeof(hdr)) == 0)
		printf("%s\n", hdr);
	printf("trace:\n%s", spf_trace(s));
	if (*spf_trace(s) && spf_trace(s)[strlen(spf_trace(s)) - 1] != '\n')
		printf("\n");
	o->done = 1;
}

static void
check_usage(FILE *f)
{
	fprintf(f, "usage: mxgate check spf --ip IP --sender ADDRESS --helo NAME "
	    "[--dns HOST:PORT] [--receiver NAME] [--helo-identity]\n"
	    "       mxgate check message --ip IP --sender ADDRESS --helo NAME "
	    "[--dns HOST:PORT] [--authserv-id ID]\n"
	    "           [--discovery treewalk|psl] [--psl-file FILE] [FILE]\n");
}

/* The resolver for a check: the given server, or /etc/resolv.conf's. */
static struct dns_resolver *
check_resolver(struct event_base *base, const char *server, char *err,
    size_t errlen)
{
	struct dns_config dc;

	memset(&dc, 0, sizeof(dc));
	if (server) {
		dc.servers = &server;
		dc.nservers = 1;
	}
	dc.timeout_ms = 2000;
	dc.tries = 2;
	return dns_resolver_new(base, &dc, err, errlen);
}

static int
check_spf(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ip", required_argument, NULL, 'i' },
		{ "sender", required_argument, NULL, 's' },
		{ "helo", required_argument, NULL, 'h' },
		{ "dns", required_argument, NULL, 'd' },
		{ "receiver", required_argument, NULL, 'r' },
		{ "helo-identity", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	struct spf_params p;
	struct check_out o;
	struct dns_resolver *r;
	struct spf_query *q;
	struct event_base *base;
	const char *server = NULL;
	char err[256];
	int ch;

	memset(&p, 0, sizeof(p));
	memset(&o, 0, sizeof(o));
	p.identity = SPF_ID_MAILFROM;
	p.sender = "";
	p.helo = "";
	if (gethostname(o.receiver, sizeof(o.receiver)) == -1)
		snprintf(o.receiver, sizeof(o.receiver), "localhost");
	o.receiver[sizeof(o.receiver) - 1] = '\0';
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'i': p.ip = optarg; break;
		case 's': p.sender = optarg; break;
		case 'h': p.helo = optarg; break;
		case 'd': server = optarg; break;
		case 'r': snprintf(o.receiver, sizeof(o.receiver), "%s", optarg); break;
		case 'H': p.identity = SPF_ID_HELO; break;
		default: check_usage(stderr); return 2;
		}
	}
	if (p.ip == NULL || optind != argc ||
	    (p.identity == SPF_ID_HELO && *p.helo == '\0')) {
		check_usage(stderr);
		return 2;
	}
	p.receiver = o.receiver;
	if ((base = event_base_new()) == NULL)
		return 1;
	if ((r = check_resolver(base, server, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxgate: resolver: %s\n", err);
		event_base_free(base);
		return 1;
	}
	if ((q = spf_query_start(base, r, &p, 20000, check_spf_done, &o)) == NULL) {
		fprintf(stderr, "mxgate: out of memory\n");
		dns_resolver_free(r);
		event_base_free(base);
		return 1;
	}
	while (!o.done && event_base_loop(base, EVLOOP_ONCE) == 0)
		;
	dns_resolver_free(r);
	event_base_free(base);
	return o.done ? 0 : 1;
}

/* ---- check message ---- */

#define CHECK_MAX_MESSAGE (64 * 1024 * 1024)

/*
 * Reads a whole message (file or stdin) as an MTA would have received it
 * over SMTP: lines end in CRLF (a bare LF in a file becomes CRLF).
 */
int
check_read_message(const char *path, struct buf *out, char *err, size_t errlen)
{
	FILE *f = path ? fopen(path, "rb") : stdin;
	int c, prev = 0;

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while ((c = getc(f)) != EOF) {
		if (out->len > CHECK_MAX_MESSAGE) {
			snprintf(err, errlen, "message larger than %d octets",
			    CHECK_MAX_MESSAGE);
			if (path)
				fclose(f);
			return -1;
		}
		if (c == '\n' && prev != '\r')
			buf_appendc(out, '\r');
		buf_appendc(out, (char)c);
		prev = c;
	}
	if (out->len > 0 && prev != '\n')
		buf_appends(out, "\r\n");
	if (path)
		fclose(f);
	return 0;
}

struct check_msg {
	struct event_base *base;
	struct dns_resolver *r;
	struct dkim_verify *v;
	int pending;			/* DKIM key queries in flight */
	int spf_done;
	enum spf_result spf;
	char spf_reason[256];
	char spf_identity[600];
	int spf_helo;
	size_t nfrom;			/* From fields */
	struct buf from;		/* the first one's value */
	int dmarc_done;
	enum dmarc_result dmarc;
	struct buf dmarc_comment;
	char author[256];		/* header.from */
	struct verdict verdict;
	char from_local[256], from_domain[256];
};

static int
check_from_field(const struct msg_field *f, void *arg)
{
	struct check_msg *m = arg;
	const char *v;
	size_t n;

	if (addr_field_is_from(f->raw, f->raw_len, &v, &n) && m->nfrom++ == 0)
		return buf_append(&m->from, v, n) == -1 ? -1 : 0;
	return 0;
}

static int
check_body(const char *p, size_t n, void *arg)
{
	return 0;
}

/* RFC 9989 4.4: the one author domain, or why there is none. */
static const char *
check_author(struct check_msg *m, const struct buf *msg)
{
	struct msg_parser *mp = msg_parser_new(1024 * 1024, 10000,
	    check_from_field, check_body, m);
	enum addr_from_status st;

	if (mp == NULL)
		return "out of memory";
	msg_parser_feed(mp, msg->data ? msg->data : "", msg->len);
	msg_parser_end(mp);
	msg_parser_free(mp);
	if (m->nfrom == 0)
		return "no From field";
	if (m->nfrom > 1)
		return "multiple From fields";
	st = addr_from_parse(m->from.data ? m->from.data : "", m->from.len, 1,
	    m->from_local, sizeof(m->from_local), m->from_domain,
	    sizeof(m->from_domain), NULL);
	return st == ADDR_FROM_OK ? NULL : addr_from_status_name(st);
}

static void
check_msg_dmarc_done(const struct dmarc_outcome *o, void *arg)
{
	struct check_msg *m = arg;
	struct verdict_config vc;
	struct verdict_input in;
	memset(&vc, 0, sizeof(vc));
	vc.enforce = vc.bad_from_reject = vc.temperror_defer = vc.primary_mx = 1;
	memset(&in, 0, sizeof(in));
	in.dmarc = o;
	in.from_local = m->from_local[0] ? m->from_local : NULL;
	in.from_domain = m->from_domain[0] ? m->from_domain : NULL;
	verdict_decide(&vc, &in, &m->verdict);
	verdict_comment(o, &m->verdict, NULL, &m->dmarc_comment);
	m->dmarc = o->result;
	snprintf(m->author, sizeof(m->author), "%s", o->author_domain);
	m->dmarc_done = 1;
}

static void check_dkim_ask(struct check_msg *m);

static void
check_dkim_answer(const struct dns_answer *a, void *arg)
{
	struct check_msg *m = arg;

	m->pending--;
	dkim_verify_answer(m->v, a->name, a);
	check_dkim_ask(m);
}

static void
check_dkim_ask(struct check_msg *m)
{
	const char *name;

	while ((name = dkim_verify_next_query(m->v)) != NULL) {
		if (dns_query(m->r, name, DNS_T_TXT, check_dkim_answer, m) == NULL) {
			struct dns_answer a;

			memset(&a, 0, sizeof(a));
			a.status = DNS_ERROR;
			a.type = DNS_T_TXT;
			a.name = name;
			dkim_verify_answer(m->v, name, &a);
			continue;
		}
		m->pending++;
	}
}

static void
check_msg_spf_done(const struct spf *s, void *arg)
{
	struct check_msg *m = arg;

	m->spf = spf_result(s);
	snprintf(m->spf_reason, sizeof(m->spf_reason), "%s", spf_reason(s));
	m->spf_done = 1;
}

static int
check_message(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ip", required_argument, NULL, 'i' },
		{ "sender", required_argument, NULL, 's' },
		{ "helo", required_argument, NULL, 'h' },
		{ "dns", required_argument, NULL, 'd' },
		{ "authserv-id", required_argument, NULL, 'a' },
		{ "discovery", required_argument, NULL, 'D' },
		{ "psl-file", required_argument, NULL, 'P' },
		{ NULL, 0, NULL, 0 },
	};
	struct spf_params p;
	struct check_msg m;
	struct dkim_verify_params vp;
	struct authres ar;
	struct buf msg = { 0 }, out = { 0 };
	const char *server = NULL, *file = NULL, *psl_file = NULL, *problem;
	struct dmarc_params dp;
	struct dmarc_dkim_input dk[16];
	struct orgdomain_psl *psl = NULL;
	int psl_mode = 0;
	char err[256], authserv[256];
	int ch, rc = 1;
	size_t i;

	memset(&p, 0, sizeof(p));
	memset(&m, 0, sizeof(m));
	p.identity = SPF_ID_MAILFROM;
	p.sender = "";
	p.helo = "";
	if (gethostname(authserv, sizeof(authserv)) == -1)
		snprintf(authserv, sizeof(authserv), "localhost");
	authserv[sizeof(authserv) - 1] = '\0';
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'i': p.ip = optarg; break;
		case 's': p.sender = optarg; break;
		case 'h': p.helo = optarg; break;
		case 'd': server = optarg; break;
		case 'a': snprintf(authserv, sizeof(authserv), "%s", optarg); break;
		case 'D':
			if (strcmp(optarg, "psl") != 0 && strcmp(optarg, "treewalk") != 0) {
				check_usage(stderr);
				return 2;
			}
			psl_mode = strcmp(optarg, "psl") == 0;
			break;
		case 'P': psl_file = optarg; break;
		default: check_usage(stderr); return 2;
		}
	}
	if (optind < argc)
		file = argv[optind++];
	if (p.ip == NULL || optind != argc) {
		check_usage(stderr);
		return 2;
	}
	if (check_read_message(file, &msg, err, sizeof(err)) == -1) {
		fprintf(stderr, "mxgate: %s\n", err);
		return 1;
	}
	p.receiver = authserv;
	memset(&vp, 0, sizeof(vp));
	if ((m.base = event_base_new()) == NULL ||
	    (m.r = check_resolver(m.base, server, err, sizeof(err))) == NULL ||
	    (m.v = dkim_verify_new(&vp)) == NULL) {
		fprintf(stderr, "mxgate: cannot start: %s\n", err);
		goto out;
	}
	/* RFC 7208 2.4: the null sender is checked as postmaster@helo */
	m.spf_helo = *p.sender == '\0';
	snprintf(m.spf_identity, sizeof(m.spf_identity), "%s",
	    m.spf_helo ? p.helo : p.sender);
	if (spf_query_start(m.base, m.r, &p, 20000, check_msg_spf_done, &m) == NULL)
		goto out;
	dkim_verify_feed(m.v, msg.data ? msg.data : "", msg.len);
	check_dkim_ask(&m);
	dkim_verify_end(m.v);
	check_dkim_ask(&m);
	while ((!m.spf_done || m.pending > 0) &&
	    event_base_loop(m.base, EVLOOP_ONCE) == 0)
		check_dkim_ask(&m);
	if (psl_mode && (psl = orgdomain_psl_load(psl_file, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxgate: public suffix list: %s\n", err);
		goto out;
	}
	memset(&dp, 0, sizeof(dp));
	dp.discovery = psl_mode ? DMARC_DISCOVERY_PSL : DMARC_DISCOVERY_TREEWALK;
	dp.psl = psl;
	if ((problem = check_author(&m, &msg)) != NULL)
		dp.from_problem = problem;
	else
		dp.author_domain = m.from_domain;
	dp.spf_result = m.spf;
	dp.spf_domain = m.spf_helo ? p.helo : strrchr(p.sender, '@') ?
	    strrchr(p.sender, '@') + 1 : "";
	for (i = 0; i < dkim_verify_count(m.v) && i < 16; i++) {
		const struct dkim_sig_result *r = dkim_verify_result(m.v, i);

		dk[i].domain = r->domain;
		dk[i].selector = r->selector;
		dk[i].result = r->result;
		dk[i].body_partial = r->body_partial;
	}
	dp.dkim = dk;
	dp.ndkim = i;
	if (dmarc_query_start(m.base, m.r, &dp, 20000, check_msg_dmarc_done,
	    &m) == NULL)
		goto out;
	while (!m.dmarc_done && event_base_loop(m.base, EVLOOP_ONCE) == 0)
		;
	authres_begin(&ar, authserv);
	authres_spf(&ar, m.spf, m.spf_reason, m.spf_helo, m.spf_identity);
	if (dkim_verify_count(m.v) == 0)
		authres_dkim_none(&ar);
	for (i = 0; i < dkim_verify_count(m.v); i++)
		authres_dkim(&ar, dkim_verify_result(m.v, i));
	if (m.dmarc_done)
		authres_dmarc(&ar, m.dmarc, m.dmarc_comment.data,
		    m.verdict.ar_action, m.author[0] ? m.author : NULL);
	authres_end(&ar, &out);
	authres_free(&ar);
	fwrite(out.data, 1, out.len, stdout);
	if (m.verdict.action == VERDICT_REJECT || m.verdict.action == VERDICT_DEFER)
		fprintf(stderr, "verdict: %s %d %s %s\n",
		    verdict_action_name(m.verdict.action), m.verdict.code,
		    m.verdict.enhanced, m.verdict.text);
	else
		fprintf(stderr, "verdict: %s (%s)\n",
		    verdict_action_name(m.verdict.action), m.verdict.why);
	rc = 0;
out:
	if (m.v)
		dkim_verify_free(m.v);
	if (m.r)
		dns_resolver_free(m.r);
	if (m.base)
		event_base_free(m.base);
	orgdomain_psl_free(psl);
	buf_free(&m.from);
	buf_free(&m.dmarc_comment);
	buf_free(&msg);
	buf_free(&out);
	return rc;
}

int
check_main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "spf") == 0)
		return check_spf(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "message") == 0)
		return check_message(argc - 1, argv + 1);
	check_usage(stderr);
	return 2;
}
