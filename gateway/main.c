/* mxgate: the command-line entry point. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/config.h"
#include "gateway/gateway.h"

#define MXGATE_VERSION "0.1.0"
#define DEFAULT_CONFIG "/etc/mxgate/mxgate.ini"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: mxgate serve [-c FILE] [-d]    run the gateway in the foreground\n"
	    "       mxgate config check [-c FILE]  validate a configuration\n"
	    "       mxgate check spf --ip IP --sender ADDRESS --helo NAME [--dns HOST:PORT]\n"
	    "       mxgate check message --ip IP --sender ADDRESS --helo NAME [--dns HOST:PORT] [FILE]\n"
	    "       mxgate dkim sign --domain D --selector S --key FILE [--algorithm A] [FILE]\n"
	    "       mxgate dkim keygen --domain D --selector S --type rsa|ed25519 [--bits N] --out FILE\n"
	    "       mxgate dns records DOMAIN [-c FILE]\n"
	    "       mxgate dns check DOMAIN [-c FILE] [--dns HOST:PORT]\n"
	    "       mxgate quarantine [-c FILE] list | show ID | release ID | delete ID\n"
	    "       mxgate queue [-c FILE] list [--json] | show ID [--body] | flush [ID] |\n"
	    "                    delete ID | hold ID | release ID | stats [--json]\n"
	    "       mxgate report [-c FILE] [--store PATH] send [--now] | list [--json] |\n"
	    "                    import FILE... | summary [--domain D] [--since DATE] [--json] [--no-dns]\n"
	    "       mxgate user add NAME --domains D1,D2 | delete NAME | list  [-c FILE | --file USERS]\n"
	    "       mxgate version\n"
	    "  -c FILE  configuration (default " DEFAULT_CONFIG ")\n"
	    "  -d       log at debug level\n");
}

static int
config_check(const char *path)
{
	struct buf errors = { 0 };
	struct config *cfg = config_load(path, &errors);

	if (cfg == NULL) {
		fputs(errors.data ? errors.data : "configuration failed\n", stderr);
		buf_free(&errors);
		return 1;
	}
	printf("%s: ok (%zu listener(s), %zu accepted domain(s), %zu route(s))\n",
	    path, cfg->nlisteners, cfg->ndomains, cfg->nroutes);
	config_free(cfg);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *path = DEFAULT_CONFIG;
	int debug = 0, ch, cmd_args;
	enum { CMD_SERVE, CMD_CHECK } cmd;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "serve") == 0) {
		cmd = CMD_SERVE;
		cmd_args = 1;
	} else if (strcmp(argv[1], "config") == 0 && argc > 2 &&
	    strcmp(argv[2], "check") == 0) {
		cmd = CMD_CHECK;
		cmd_args = 2;
	} else if (strcmp(argv[1], "check") == 0) {
		return check_main(argc - 1, argv + 1);
	} else if (strcmp(argv[1], "dkim") == 0) {
		return dkimcmd_main(argc - 1, argv + 1);
	} else if (strcmp(argv[1], "dns") == 0) {
		return dnscmd_main(argc - 1, argv + 1);
	} else if (strcmp(argv[1], "quarantine") == 0) {
		return quarantine_main(argc - 1, argv + 1);
	} else if (strcmp(argv[1], "queue") == 0) {
		return queuecmd_main(argc - 1, argv + 1);
	} else if (strcmp(argv[1], "report") == 0) {
		return reportcmd_main(argc - 1, argv + 1);
	} else if (strcmp(argv[1], "user") == 0) {
		return usercmd_main(argc - 1, argv + 1);
	} else if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("mxgate %s\n", MXGATE_VERSION);
		return 0;
	} else if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	} else {
		fprintf(stderr, "mxgate: unknown command '%s'\n", argv[1]);
		usage(stderr);
		return 2;
	}
	argc -= cmd_args;
	argv += cmd_args;
	optind = 1;
	while ((ch = getopt(argc, argv, "c:d")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'd':
			debug = 1;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (cmd == CMD_CHECK)
		return config_check(path);
	return daemon_serve(path, debug);
}
