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
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "gateway/gateway.h"
#include "lib/id.h"
#include "lib/log.h"
#include "queue/spool.h"

#define QUARANTINE_CONFIG "/etc/mxgate/mxgate.ini"

static void
quarantine_usage(FILE *f)
{
	fprintf(f, "usage: mxgate quarantine [-c FILE] list | show ID | "
	    "release ID | delete ID\n");
}

/* s with control octets, DEL, backslash (and spaces, when space is 0)
 * escaped as \xNN: one terminal-safe field. */
static void
quarantine_put(FILE *f, const char *s, int space)
{
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f || c == '\\' || (c == ' ' && !space))
			fprintf(f, "\\x%02x", c);
		else
			putc(c, f);
	}
}

static void
quarantine_age(char *out, size_t n, long long secs)
{
	if (secs < 0)
		secs = 0;
	if (secs < 120)
		snprintf(out, n, "%llds", secs);
	else if (secs < 120 * 60)
		snprintf(out, n, "%lldm", secs / 60);
	else if (secs < 48 * 3600)
		snprintf(out, n, "%lldh", secs / 3600);
	else
		snprintf(out, n, "%lldd", secs / 86400);
}

static void
quarantine_time(char *out, size_t n, long long t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, n, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(out, n, "-");
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
	quarantine_age(age, sizeof(age), (long long)time(NULL) - env.arrival);
	printf("%-16s %5s %9zu <", env.id, age, env.size);
	quarantine_put(stdout, env.sender, 0);
	printf("> ");
	for (i = 0; i < env.nrcpt; i++) {
		printf("%s<", i ? "," : "");
		quarantine_put(stdout, env.rcpts[i].addr, 0);
		putchar('>');
	}
	putchar(' ');
	if (env.hold_reason && *env.hold_reason)
		quarantine_put(stdout, env.hold_reason, 1);
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
	quarantine_put(stdout, value ? value : "-", 1);
	putchar('\n');
}

/* Writes p[0..n) (modified in place); on a terminal, control octets other
 * than TAB, CR and LF become '?' so a hostile message cannot drive it. */
static int
quarantine_write(char *p, size_t n, int tty)
{
	size_t i;

	for (i = 0; tty && i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f)
			p[i] = '?';
	}
	return fwrite(p, 1, n, stdout) == n ? 0 : -1;
}

static int
quarantine_copy(int fd, int tty)
{
	char chunk[16384];
	ssize_t r;

	while ((r = read(fd, chunk, sizeof(chunk))) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (quarantine_write(chunk, (size_t)r, tty) == -1)
			return -1;
	}
	return 0;
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
	quarantine_time(when, sizeof(when), env.arrival);
	quarantine_age(age, sizeof(age), (long long)time(NULL) - env.arrival);
	printf("arrival: %s (%s ago)\n", when, age);
	quarantine_time(when, sizeof(when), env.hold_time);
	printf("held: %s\n", when);
	quarantine_field("reason", env.hold_reason);
	quarantine_field("client", env.client_ip);
	quarantine_field("helo", env.helo);
	quarantine_field("session", env.session);
	printf("sender: <");
	quarantine_put(stdout, env.sender, 1);
	printf(">\n");
	for (i = 0; i < env.nrcpt; i++) {
		printf("recipient: <");
		quarantine_put(stdout, env.rcpts[i].addr, 1);
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
	    quarantine_write(env.prepend, strlen(env.prepend), tty) == -1) ||
	    quarantine_copy(fd, tty) == -1 || fflush(stdout) == EOF) {
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

/*
 * As root, become the spool's owner (the daemon's [server] user) so that
 * no file of the spool ends up owned by root; as anyone else, go on as is
 * (the spool's permissions decide).
 */
static int
quarantine_become_owner(const char *dir)
{
	struct stat st;

	if (stat(dir, &st) == -1) {
		fprintf(stderr, "mxgate: spool %s: %s\n", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "mxgate: spool %s: not a directory\n", dir);
		return -1;
	}
	if (geteuid() != 0 || st.st_uid == 0)
		return 0;
	if (setgroups(0, NULL) == -1 || setgid(st.st_gid) == -1 ||
	    setuid(st.st_uid) == -1) {
		fprintf(stderr, "mxgate: cannot become the spool's owner (uid %ld "
		    "gid %ld): %s; refusing to touch the spool as root\n",
		    (long)st.st_uid, (long)st.st_gid, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		fprintf(stderr, "mxgate: root privileges could be regained after "
		    "becoming uid %ld: refusing\n", (long)st.st_uid);
		return -1;
	}
	return 0;
}

int
quarantine_main(int argc, char **argv)
{
	const char *path = QUARANTINE_CONFIG, *cmd, *id = NULL;
	struct buf errors = { 0 };
	struct config *cfg;
	struct spool *sp;
	char err[512];
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
		/* never a path: 16 characters of [0-9A-F] (lib/id.h) */
		if (!id_valid(id)) {
			fprintf(stderr, "mxgate: invalid queue id '");
			quarantine_put(stderr, id, 1);
			fprintf(stderr, "': %d characters 0-9 A-F expected\n",
			    ID_LEN);
			return 1;
		}
	} else {
		fprintf(stderr, "mxgate: quarantine: unknown command '");
		quarantine_put(stderr, cmd, 1);
		fprintf(stderr, "'\n");
		quarantine_usage(stderr);
		return 2;
	}

	if ((cfg = config_load(path, &errors)) == NULL) {
		fputs(errors.data ? errors.data : "configuration failed\n", stderr);
		buf_free(&errors);
		return 1;
	}
	buf_free(&errors);
	/* spool errors on stderr; the spool's info lines are not for here */
	log_init("mxgate", 0, LOGL_WARNING);
	if (quarantine_become_owner(cfg->spool) == -1) {
		config_free(cfg);
		return 1;
	}
	if ((sp = spool_open(cfg->spool, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxgate: %s%s\n", err, errno == EACCES ?
		    " (run as root or as the spool's owner)" : "");
		config_free(cfg);
		return 1;
	}
	if (strcmp(cmd, "list") == 0)
		rc = quarantine_list(sp);
	else if (strcmp(cmd, "show") == 0)
		rc = quarantine_show(sp, id);
	else if (strcmp(cmd, "release") == 0)
		rc = quarantine_release(sp, id);
	else
		rc = quarantine_delete(sp, id);
	spool_close(sp);
	config_free(cfg);
	return rc;
}
