/*
 * `mxgate quarantine [-c CONFIG] list | show ID | release ID | delete ID`:
 * the held messages of the spool (queue/spool.h, hold/).
 *
 *   list     one line per held message, oldest first, under a header:
 *            ID AGE SIZE SENDER RECIPIENTS REASON. ID is 16 characters,
 *            AGE since arrival (45s, 12m, 3h, 2d), SIZE in octets, SENDER
 *            <address> (<> for the null sender), RECIPIENTS <a>,<b> (one
 *            field, pending and done alike), REASON the rest of the line
 *            ("-" when none). Control octets and spaces inside a field are
 *            escaped (\xNN) so a line always splits into those columns.
 *            "quarantine is empty" when there is none.
 *   show     the envelope as "key: value" lines under "*** envelope ***",
 *            then under "*** message ***" the message as it would be
 *            delivered: the envelope's prepend text (Authentication-Results
 *            and other stamps) then the stored content. On a terminal,
 *            control octets of the content other than TAB, CR and LF print
 *            as '?'; redirected, the content is copied exactly.
 *   release  back to queue/, and a pickup hint so that the running daemon
 *            delivers it now (or at its next start): "released ID".
 *   delete   removed for good: "deleted ID".
 *
 * Run as root while the spool belongs to another user (the daemon runs as
 * [server] user and owns the spool), the command becomes that user (uid
 * and gid of the spool directory, no supplementary groups) before it
 * touches the spool, so every file keeps the daemon's ownership; it
 * refuses to go on if it cannot.
 *
 * Exit status: 0 done, 1 error (unknown or invalid id, unreadable spool),
 * 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gateway/gateway.h"
#include "lib/id.h"
#include "queue/spool.h"

#define QUARANTINE_CONFIG "/etc/mxgate/mxgate.ini"

static void
quarantine_usage(FILE *f)
{
	fprintf(f, "usage: mxgate quarantine [-c FILE] list | show ID | "
	    "release ID | delete ID\n");
}

struct quarantine_list {
	struct spool *sp;
	int lines;
	int errors;
};

static int
quarantine_list_one(const char *id, void *arg)
{
	struct quarantine_list *l = arg;
	struct envelope env;
	const char *err;
	char age[32];
	size_t i;

	if (spool_load_held(l->sp, id, &env, &err) == -1) {
		/* gone meanwhile (released, deleted): skip; damaged: say so */
		if (errno != ENOENT) {
			fprintf(stderr, "mxgate: %s: unreadable envelope: %s\n",
			    id, err);
			l->errors++;
		}
		return 0;
	}
	if (l->lines++ == 0)
		printf("%-16s %5s %9s %s %s %s\n", "ID", "AGE", "SIZE",
		    "SENDER", "RECIPIENTS", "REASON");
	spoolcli_age(age, sizeof(age), (long long)time(NULL) - env.arrival);
	printf("%-16s %5s %9zu <", env.id, age, env.size);
	spoolcli_put(stdout, env.sender, 0);
	printf("> ");
	for (i = 0; i < env.nrcpt; i++) {
		printf("%s<", i ? "," : "");
		spoolcli_put(stdout, env.rcpts[i].addr, 0);
		putchar('>');
	}
	putchar(' ');
	if (env.hold_reason && *env.hold_reason)
		spoolcli_put(stdout, env.hold_reason, 1);
	else
		putchar('-');
	putchar('\n');
	envelope_free(&env);
	return 0;
}

static int
quarantine_list(struct spool *sp)
{
	struct quarantine_list l = { sp, 0, 0 };

	if (spool_list(sp, 1, quarantine_list_one, &l) == -1) {
		fprintf(stderr, "mxgate: spool %s: cannot list hold/: %s\n",
		    spool_dir(sp), strerror(errno));
		return 1;
	}
	if (l.lines == 0 && l.errors == 0)
		printf("quarantine is empty\n");
	return l.errors ? 1 : 0;
}

static void
quarantine_field(const char *key, const char *value)
{
	printf("%s: ", key);
	spoolcli_put(stdout, value ? value : "-", 1);
	putchar('\n');
}

/* Says why id cannot be acted on: not held (queued or unknown). */
static void
quarantine_not_held(struct spool *sp, const char *id, int e, const char *err)
{
	struct envelope env;
	const char *qerr;

	if (e == ENOENT && spool_load(sp, id, &env, &qerr) == 0) {
		envelope_free(&env);
		fprintf(stderr, "mxgate: %s is not held: it is in the delivery "
		    "queue\n", id);
	} else if (e == ENOENT)
		fprintf(stderr, "mxgate: %s: no such held message\n", id);
	else
		fprintf(stderr, "mxgate: %s: %s\n", id, err ? err : strerror(e));
}

static int
quarantine_show(struct spool *sp, const char *id)
{
	struct envelope env;
	const char *err;
	char when[64], age[32], num[32];
	size_t i;
	off_t size;
	int fd, tty = isatty(STDOUT_FILENO), rc = 0;

	if (spool_load_held(sp, id, &env, &err) == -1) {
		quarantine_not_held(sp, id, errno, err);
		return 1;
	}
	if ((fd = spool_open_held_content(sp, id, &size)) == -1) {
		fprintf(stderr, "mxgate: %s: content unreadable: %s\n", id,
		    strerror(errno));
		envelope_free(&env);
		return 1;
	}
	printf("*** envelope ***\n");
	quarantine_field("id", env.id);
	spoolcli_time(when, sizeof(when), env.arrival);
	spoolcli_age(age, sizeof(age), (long long)time(NULL) - env.arrival);
	printf("arrival: %s (%s ago)\n", when, age);
	spoolcli_time(when, sizeof(when), env.hold_time);
	printf("held: %s\n", when);
	quarantine_field("reason", env.hold_reason);
	quarantine_field("client", env.client_ip);
	quarantine_field("helo", env.helo);
	quarantine_field("session", env.session);
	printf("sender: <");
	spoolcli_put(stdout, env.sender, 1);
	printf(">\n");
	for (i = 0; i < env.nrcpt; i++) {
		printf("recipient: <");
		spoolcli_put(stdout, env.rcpts[i].addr, 1);
		printf("> %s\n", env.rcpts[i].state == ENV_DELIVERED ? "delivered" :
		    env.rcpts[i].state == ENV_FAILED ? "failed" : "pending");
	}
	snprintf(num, sizeof(num), "%lld", (long long)size);
	quarantine_field("size", num);
	printf("body: %s%s\n", env.body_8bit ? "8bitmime" : "7bit",
	    env.smtputf8 ? " smtputf8" : "");
	printf("*** message ***\n");
	fflush(stdout);
	if ((env.prepend &&
	    spoolcli_write(env.prepend, strlen(env.prepend), tty) == -1) ||
	    spoolcli_copy(fd, tty) == -1 || fflush(stdout) == EOF) {
		fprintf(stderr, "mxgate: %s: %s\n", id, strerror(errno));
		rc = 1;
	}
	close(fd);
	envelope_free(&env);
	return rc;
}

static int
quarantine_release(struct spool *sp, const char *id)
{
	if (spool_release(sp, id) == -1) {
		quarantine_not_held(sp, id, errno, NULL);
		return 1;
	}
	printf("released %s\n", id);
	if (spool_notify(sp, id) == -1)
		fprintf(stderr, "mxgate: %s: the running daemon was not told (%s): "
		    "it is delivered after the daemon's next start\n", id,
		    strerror(errno));
	return 0;
}

static int
quarantine_delete(struct spool *sp, const char *id)
{
	if (spool_remove_held(sp, id) == -1) {
		quarantine_not_held(sp, id, errno, NULL);
		return 1;
	}
	printf("deleted %s\n", id);
	return 0;
}

int
quarantine_main(int argc, char **argv)
{
	const char *path = QUARANTINE_CONFIG, *cmd, *id = NULL;
	struct spool *sp;
	int ch, rc;

	optind = 1;
	while ((ch = getopt(argc, argv, "c:")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		default:
			quarantine_usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		quarantine_usage(stderr);
		return 2;
	}
	cmd = argv[optind++];
	if (strcmp(cmd, "list") == 0) {
		if (optind != argc) {
			quarantine_usage(stderr);
			return 2;
		}
	} else if (strcmp(cmd, "show") == 0 || strcmp(cmd, "release") == 0 ||
	    strcmp(cmd, "delete") == 0) {
		if (optind + 1 != argc) {
			quarantine_usage(stderr);
			return 2;
		}
		id = argv[optind];
		if (spoolcli_check_id(id) == -1)
			return 1;
	} else {
		fprintf(stderr, "mxgate: quarantine: unknown command '");
		spoolcli_put(stderr, cmd, 1);
		fprintf(stderr, "'\n");
		quarantine_usage(stderr);
		return 2;
	}

	if ((sp = spoolcli_open(path)) == NULL)
		return 1;
	if (strcmp(cmd, "list") == 0)
		rc = quarantine_list(sp);
	else if (strcmp(cmd, "show") == 0)
		rc = quarantine_show(sp, id);
	else if (strcmp(cmd, "release") == 0)
		rc = quarantine_release(sp, id);
	else
		rc = quarantine_delete(sp, id);
	spool_close(sp);
	return rc;
}
