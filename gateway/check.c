/*
 * `mxgate check spf --ip IP --sender ADDRESS --helo NAME [--dns HOST:PORT]
 * [--receiver NAME]`: one SPF check against live DNS (or the given
 * server), printed for a person: the result on the first line as
 * spf=RESULT, then the explanation, the Received-SPF header, and the
 * trace of the terms evaluated. Exit 0 whenever a result was computed,
 * 2 on bad usage, 1 when the check could not run.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "auth/spf.h"
#include "auth/spf_query.h"
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
	    "[--dns HOST:PORT] [--receiver NAME] [--helo-identity]\n");
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
	struct dns_config dc;
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
	memset(&dc, 0, sizeof(dc));
	if (server) {
		dc.servers = &server;
		dc.nservers = 1;
	}
	dc.timeout_ms = 2000;
	dc.tries = 2;
	if ((base = event_base_new()) == NULL)
		return 1;
	if ((r = dns_resolver_new(base, &dc, err, sizeof(err))) == NULL) {
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

int
check_main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "spf") == 0)
		return check_spf(argc - 1, argv + 1);
	check_usage(stderr);
	return 2;
}
