/*
 * dkimtool: drives auth/dkim from the command line for the interop tests.
 *
 *   dkimtool verify [--dns HOST:PORT | --keys FILE] [--now T] FILE
 *	one line per signature: "<result> d=<d> s=<s> a=<a> partial=<0|1>
 *	reason=<reason>"; keys from a DNS server (lib/dns) or from a file
 *	of "<name> <TXT value>" lines.
 *   dkimtool sign --key PEM -d DOMAIN -s SELECTOR [--headers H]
 *	[--oversign] [--t T] [--x X] FILE
 *	prints the DKIM-Signature field then the message.
 *   dkimtool keygen rsa|ed25519 BITS OUTFILE   prints the TXT record.
 *
 * Messages with bare LF line ends are read as CRLF.
 * Build: cc -I. -D_GNU_SOURCE -fsanitize=address,undefined -o
 *   build-san/dkimtool tests/tools/dkimtool.c build-san/libmxgate.a
 *   $(pkg-config --cflags --libs libevent openssl libcares libpsl inih)
 *   -lpthread
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "auth/dkim.h"
#include "lib/buf.h"
#include "lib/dns.h"

static int
read_msg(const char *file, struct buf *b)
{
	FILE *fp;
	int c, prev = 0;

	if ((fp = fopen(file, "rb")) == NULL)
		return -1;
	while ((c = getc(fp)) != EOF) {
		if (c == '\n' && prev != '\r' && buf_appendc(b, '\r') == -1)
			return -1;
		if (buf_appendc(b, (char)c) == -1)
			return -1;
		prev = c;
	}
	fclose(fp);
	return 0;
}

struct pending {
	struct dkim_verify *v;
	char *name;
	int *left;
};

static void
on_dns(const struct dns_answer *a, void *arg)
{
	struct pending *p = arg;

	dkim_verify_answer(p->v, p->name, a);
	(*p->left)--;
	free(p->name);
	free(p);
}

static void
answer_from_file(struct dkim_verify *v, const char *keys, const char *name)
{
	struct dns_answer a = { 0 };
	struct dns_rr rr[8];
	char line[8192], *sp;
	FILE *fp;
	size_t n = 0;

	memset(rr, 0, sizeof(rr));
	if ((fp = fopen(keys, "r")) == NULL) {
		a.status = DNS_ERROR;
		dkim_verify_answer(v, name, &a);
		return;
	}
	while (n < 8 && fgets(line, sizeof(line), fp) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '#' || (sp = strchr(line, ' ')) == NULL)
			continue;
		*sp++ = '\0';
		if (strcasecmp(line, name) != 0)
			continue;
		rr[n].text = strdup(sp);
		rr[n].len = strlen(sp);
		n++;
	}
	fclose(fp);
	a.status = n ? DNS_OK : DNS_NXDOMAIN;
	a.type = DNS_T_TXT;
	a.name = name;
	a.rr = rr;
	a.n = n;
	dkim_verify_answer(v, name, &a);
	while (n > 0)
		free(rr[--n].text);
}

static int
cmd_verify(int argc, char **argv)
{
	struct dkim_verify_params vp = { 0 };
	struct dns_config cfg = { 0 };
	struct dkim_verify *v;
	struct dns_resolver *r = NULL;
	struct event_base *base = NULL;
	struct buf msg = { 0 };
	const char *dns = NULL, *keys = NULL, *name, *server[1];
	char err[256];
	size_t i, off;
	int left = 0;

	for (i = 2; i + 1 < (size_t)argc; i += 2) {
		if (strcmp(argv[i], "--dns") == 0)
			dns = argv[i + 1];
		else if (strcmp(argv[i], "--keys") == 0)
			keys = argv[i + 1];
		else if (strcmp(argv[i], "--now") == 0)
			vp.now = atoll(argv[i + 1]);
		else
			break;
	}
	if (i + 1 != (size_t)argc || (dns == NULL) == (keys == NULL) ||
	    read_msg(argv[i], &msg) == -1) {
		fprintf(stderr, "usage: dkimtool verify --dns H:P|--keys F FILE\n");
		return 2;
	}
	if ((v = dkim_verify_new(&vp)) == NULL)
		return 2;
	if (dns != NULL) {
		base = event_base_new();
		server[0] = dns;
		cfg.servers = server;
		cfg.nservers = 1;
		cfg.cache_entries = 0;
		if ((r = dns_resolver_new(base, &cfg, err, sizeof(err))) == NULL) {
			fprintf(stderr, "dns: %s\n", err);
			return 2;
		}
	}
	/* small chunks, asking keys as soon as they are offered */
	for (off = 0; off <= msg.len; off += 7) {
		size_t n = msg.len - off < 7 ? msg.len - off : 7;

		if (n > 0)
			dkim_verify_feed(v, msg.data + off, n);
		if (off + n >= msg.len)
			dkim_verify_end(v);
		while ((name = dkim_verify_next_query(v)) != NULL) {
			if (keys != NULL) {
				answer_from_file(v, keys, name);
				continue;
			}
			struct pending *p = calloc(1, sizeof(*p));

			p->v = v;
			p->name = strdup(name);
			p->left = &left;
			left++;
			dns_query(r, name, DNS_T_TXT, on_dns, p);
		}
		if (off + n >= msg.len)
			break;
	}
	while (left > 0)
		event_base_loop(base, EVLOOP_ONCE);
	if (!dkim_verify_done(v))
		fprintf(stderr, "not done\n");
	for (i = 0; i < dkim_verify_count(v); i++) {
		const struct dkim_sig_result *s = dkim_verify_result(v, i);

		printf("%s d=%s s=%s a=%s partial=%d reason=%s\n",
		    dkim_result_name(s->result), s->domain, s->selector,
		    s->algorithm, s->body_partial, s->reason);
	}
	if (dkim_verify_count(v) == 0)
		printf("none\n");
	dkim_verify_free(v);
	dns_resolver_free(r);
	if (base != NULL)
		event_base_free(base);
	buf_free(&msg);
	return 0;
}

static int
cmd_sign(int argc, char **argv)
{
	struct dkim_sign_params sp = { 0 };
	struct buf msg = { 0 }, out = { 0 };
	const char *keyfile = NULL;
	char err[256];
	int i;

	for (i = 2; i < argc - 1; i++) {
		if (strcmp(argv[i], "--oversign") == 0)
			sp.oversign = 1;
		else if (strcmp(argv[i], "--key") == 0)
			keyfile = argv[++i];
		else if (strcmp(argv[i], "-d") == 0)
			sp.domain = argv[++i];
		else if (strcmp(argv[i], "-s") == 0)
			sp.selector = argv[++i];
		else if (strcmp(argv[i], "--headers") == 0)
			sp.headers = argv[++i];
		else if (strcmp(argv[i], "--t") == 0)
			sp.t = atoll(argv[++i]);
		else if (strcmp(argv[i], "--x") == 0)
			sp.x = atoll(argv[++i]);
		else
			break;
	}
	if (i != argc - 1 || keyfile == NULL || read_msg(argv[i], &msg) == -1) {
		fprintf(stderr, "usage: dkimtool sign --key K -d D -s S FILE\n");
		return 2;
	}
	if ((sp.key = dkim_key_load(keyfile, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		buf_free(&msg);
		return 1;
	}
	if (dkim_sign(&sp, msg.data, msg.len, &out, err, sizeof(err)) == -1)
		fprintf(stderr, "%s\n", err);
	else {
		fwrite(out.data, 1, out.len, stdout);
		fwrite(msg.data, 1, msg.len, stdout);
	}
	dkim_key_free((struct dkim_key *)sp.key);
	buf_free(&msg);
	return out.len ? (buf_free(&out), 0) : 1;
}

int
main(int argc, char **argv)
{
	struct buf txt = { 0 };
	char err[256];

	if (argc > 1 && strcmp(argv[1], "verify") == 0)
		return cmd_verify(argc, argv);
	if (argc > 1 && strcmp(argv[1], "sign") == 0)
		return cmd_sign(argc, argv);
	if (argc == 5 && strcmp(argv[1], "keygen") == 0) {
		if (dkim_keygen(argv[2], atoi(argv[3]), argv[4], &txt, err,
		    sizeof(err)) == -1) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		printf("%s\n", txt.data);
		buf_free(&txt);
		return 0;
	}
	fprintf(stderr, "usage: dkimtool verify|sign|keygen ...\n");
	return 2;
}
