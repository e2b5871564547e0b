/*
 * `mxgate dkim sign --domain D --selector S --key FILE [--algorithm A]
 *  [--selector S2 --key FILE2 ...] [FILE]`: prints the message (stdin
 * without FILE; CRLF line ends) with one DKIM-Signature per key prepended
 * (relaxed/relaxed, RFC 6376 5.4 header list, From/To/Subject/Date/
 * Message-ID over-signed). Give --selector/--key (and optionally
 * --algorithm) once per key for dual RSA + Ed25519 signing.
 *
 * `mxgate dkim keygen --domain D --selector S --type rsa|ed25519
 *  [--bits N] --out FILE`: writes the private key (PEM, mode 0600) and
 * prints the TXT record to publish at S._domainkey.D.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/dkim.h"
#include "gateway/gateway.h"
#include "lib/buf.h"

#define DKIMCMD_MAX_KEYS 8

static void
dkimcmd_usage(FILE *f)
{
	fprintf(f, "usage: mxgate dkim sign --domain D --selector S --key FILE "
	    "[--algorithm rsa-sha256|ed25519-sha256] [--selector S2 --key FILE2 ...] [FILE]\n"
	    "       mxgate dkim keygen --domain D --selector S --type rsa|ed25519 "
	    "[--bits N] --out FILE\n");
}

static int
dkimcmd_sign(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "domain", required_argument, NULL, 'd' },
		{ "selector", required_argument, NULL, 's' },
		{ "key", required_argument, NULL, 'k' },
		{ "algorithm", required_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	const char *domain = NULL, *sel[DKIMCMD_MAX_KEYS], *keyf[DKIMCMD_MAX_KEYS],
	    *alg[DKIMCMD_MAX_KEYS];
	struct dkim_key *keys[DKIMCMD_MAX_KEYS];
	struct buf msg = { 0 }, sigs = { 0 };
	size_t nsel = 0, nkey = 0, i;
	char err[256];
	int ch, rc = 1;

	memset(alg, 0, sizeof(alg));
	memset(keys, 0, sizeof(keys));
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			domain = optarg;
			break;
		case 's':
			if (nsel == DKIMCMD_MAX_KEYS)
				goto usage;
			sel[nsel++] = optarg;
			break;
		case 'k':
			if (nkey == DKIMCMD_MAX_KEYS)
				goto usage;
			keyf[nkey++] = optarg;
			break;
		case 'a':
			if (nkey == 0)
				goto usage;
			alg[nkey - 1] = optarg;
			break;
		default:
			goto usage;
		}
	}
	if (domain == NULL || nkey == 0 || nsel != nkey || argc - optind > 1)
		goto usage;
	for (i = 0; i < nkey; i++) {
		if ((keys[i] = dkim_key_load(keyf[i], err, sizeof(err))) == NULL) {
			fprintf(stderr, "mxgate: %s\n", err);
			goto out;
		}
		if (alg[i] && strcmp(alg[i], dkim_key_algorithm(keys[i])) != 0) {
			fprintf(stderr, "mxgate: %s is a %s key, not %s\n", keyf[i],
			    dkim_key_algorithm(keys[i]), alg[i]);
			goto out;
		}
	}
	if (check_read_message(optind < argc ? argv[optind] : NULL, &msg, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "mxgate: %s\n", err);
		goto out;
	}
	for (i = 0; i < nkey; i++) {
		struct dkim_sign_params p;

		memset(&p, 0, sizeof(p));
		p.domain = domain;
		p.selector = sel[i];
		p.key = keys[i];
		p.oversign = 1;
		if (dkim_sign(&p, msg.data ? msg.data : "", msg.len, &sigs, err,
		    sizeof(err)) == -1) {
			fprintf(stderr, "mxgate: signing with %s: %s\n", keyf[i], err);
			goto out;
		}
	}
	fwrite(sigs.data, 1, sigs.len, stdout);
	fwrite(msg.data, 1, msg.len, stdout);
	rc = 0;
out:
	for (i = 0; i < nkey; i++)
		dkim_key_free(keys[i]);
	buf_free(&msg);
	buf_free(&sigs);
	return rc;
usage:
	dkimcmd_usage(stderr);
	return 2;
}

void
dkimcmd_zone_txt(FILE *f, const char *selector, const char *domain,
    const char *txt, size_t len)
{
	size_t i;

	/* Zone-file form, split into 255-octet strings (RFC 1035 3.3.14). */
	fprintf(f, "%s._domainkey.%s. IN TXT (", selector, domain);
	for (i = 0; i < len; i += 255)
		fprintf(f, " \"%.*s\"", (int)(len - i > 255 ? 255 : len - i),
		    txt + i);
	fprintf(f, " )\n");
}

static int
dkimcmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "domain", required_argument, NULL, 'd' },
		{ "selector", required_argument, NULL, 's' },
		{ "type", required_argument, NULL, 't' },
		{ "bits", required_argument, NULL, 'b' },
		{ "out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	const char *domain = NULL, *selector = NULL, *type = NULL, *out = NULL;
	struct buf txt = { 0 };
	char err[256];
	int ch, bits = 0;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'd': domain = optarg; break;
		case 's': selector = optarg; break;
		case 't': type = optarg; break;
		case 'b': bits = atoi(optarg); break;
		case 'o': out = optarg; break;
		default: dkimcmd_usage(stderr); return 2;
		}
	}
	if (!domain || !selector || !type || !out || optind != argc) {
		dkimcmd_usage(stderr);
		return 2;
	}
	if (dkim_keygen(type, bits, out, &txt, err, sizeof(err)) == -1) {
		fprintf(stderr, "mxgate: %s\n", err);
		buf_free(&txt);
		return 1;
	}
	dkimcmd_zone_txt(stdout, selector, domain, txt.data, txt.len);
	fprintf(stderr, "private key written to %s (keep it secret, mode 0600)\n", out);
	buf_free(&txt);
	return 0;
}

int
dkimcmd_main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "sign") == 0)
		return dkimcmd_sign(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "keygen") == 0)
		return dkimcmd_keygen(argc - 1, argv + 1);
	dkimcmd_usage(stderr);
	return 2;
}
