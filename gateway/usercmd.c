/*
 * `mxgate user add|delete|list`: the submission users file. The file is
 * rewritten whole, atomically (temporary file, fsync, rename), mode 0640,
 * keeping the owner and group of the file it replaces (a new file gets
 * the group of [server] user, so that the daemon can read it on reload).
 * Passwords come from standard input, one line, or are asked twice without
 * echo on a terminal; they are hashed with yescrypt and never printed.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <unistd.h>
#include <sys/stat.h>

#include <ini.h>

#include "gateway/authdb.h"
#include "gateway/gateway.h"
#include "lib/buf.h"
#include "lib/fsutil.h"

#define USERCMD_CONFIG "/etc/mxgate/mxgate.ini"
#define USERCMD_PASS_MAX 255	/* what AUTH can carry (smtp/sasl.h) */

struct usercmd_ini {
	char *users;
	char *user;
};

static int
usercmd_ini_cb(void *arg, const char *section, const char *name,
    const char *value)
{
	struct usercmd_ini *ui = arg;
	char **dst = NULL;

	if (strcasecmp(section, "submission") == 0 && strcasecmp(name, "users") == 0)
		dst = &ui->users;
	else if (strcasecmp(section, "server") == 0 && strcasecmp(name, "user") == 0)
		dst = &ui->user;
	if (dst) {
		free(*dst);
		*dst = strdup(value);
	}
	return 1;
}

static void
usercmd_usage(void)
{
	fprintf(stderr,
	    "usage: mxgate user add NAME --domains D1,D2 [-c CONFIG | --file USERS]\n"
	    "       mxgate user delete NAME [-c CONFIG | --file USERS]\n"
	    "       mxgate user list [-c CONFIG | --file USERS]\n"
	    "  add reads the password from standard input (asked twice on a terminal)\n");
}

/* One line from stdin, or twice without echo from a terminal. */
static int
usercmd_password(char *out, size_t outlen)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	struct termios t, quiet;
	int tty = isatty(STDIN_FILENO), i, rc = -1;

	for (i = 0; i < (tty ? 2 : 1); i++) {
		if (tty) {
			fputs(i == 0 ? "Password: " : "Again: ", stderr);
			fflush(stderr);
			tcgetattr(STDIN_FILENO, &t);
			quiet = t;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
		}
		n = getline(&line, &cap, stdin);
		if (tty) {
			tcsetattr(STDIN_FILENO, TCSAFLUSH, &t);
			fputc('\n', stderr);
		}
		if (n <= 0) {
			fprintf(stderr, "mxgate user: no password on standard input\n");
			goto out;
		}
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0 || (size_t)n != strlen(line) || n > USERCMD_PASS_MAX) {
			fprintf(stderr, "mxgate user: the password must be 1 to %d "
			    "octets without NUL\n", USERCMD_PASS_MAX);
			goto out;
		}
		if (i == 0) {
			snprintf(out, outlen, "%s", line);
		} else if (strcmp(out, line) != 0) {
			fprintf(stderr, "mxgate user: the passwords differ\n");
			goto out;
		}
		explicit_bzero(line, cap);
	}
	rc = 0;
out:
	if (line) {
		explicit_bzero(line, cap);
		free(line);
	}
	if (rc == -1)
		explicit_bzero(out, outlen);
	return rc;
}

static int
usercmd_read(const char *path, struct buf *b)
{
	FILE *fp = fopen(path, "re");
	char chunk[4096];
	size_t n;

	if (fp == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		if (buf_append(b, chunk, n) == -1) {
			fclose(fp);
			return -1;
		}
	n = ferror(fp);
	fclose(fp);
	return n ? -1 : 1;
}

/* The lines of old without NAME's; *found_r says if it was there. */
static int
usercmd_filter(const struct buf *old, const char *name, struct buf *out,
    int *found_r)
{
	const char *p = old->data ? old->data : "", *end = p + old->len, *nl;
	size_t nlen = strlen(name);

	*found_r = 0;
	while (p < end) {
		const char *q;

		nl = memchr(p, '\n', (size_t)(end - p));
		nl = nl ? nl + 1 : end;
		for (q = p; q < nl && (*q == ' ' || *q == '\t'); q++)
			;
		if ((size_t)(nl - q) > nlen && q[nlen] == ':' &&
		    strncasecmp(q, name, nlen) == 0)
			*found_r = 1;
		else if (buf_append(out, p, (size_t)(nl - p)) == -1 ||
		    (nl[-1] != '\n' && buf_append(out, "\n", 1) == -1))
			return -1;
		p = nl;
	}
	return 0;
}

static int
usercmd_write(const char *path, const struct buf *b, const char *svc_user)
{
	char *d1 = strdup(path), *d2 = strdup(path);
	struct stat st;
	int had = stat(path, &st) == 0, rc = -1;

	if (d1 == NULL || d2 == NULL)
		goto out;
	if (fs_write_atomic(dirname(d1), basename(d2), b->data ? b->data : "",
	    b->len) == -1) {
		fprintf(stderr, "mxgate user: cannot write %s: %s\n", path,
		    strerror(errno));
		goto out;
	}
	if (chmod(path, 0640) == -1)
		fprintf(stderr, "mxgate user: chmod %s: %s\n", path, strerror(errno));
	if (had) {
		if (chown(path, st.st_uid, st.st_gid) == -1 && geteuid() == 0)
			fprintf(stderr, "mxgate user: chown %s: %s\n", path,
			    strerror(errno));
	} else if (svc_user && *svc_user && geteuid() == 0) {
		struct passwd *pw = getpwnam(svc_user);

		if (pw && chown(path, 0, pw->pw_gid) == -1)
			fprintf(stderr, "mxgate user: chown %s: %s\n", path,
			    strerror(errno));
	}
	rc = 0;
out:
	free(d1);
	free(d2);
	return rc;
}

int
usercmd_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "file", required_argument, NULL, 'f' },
		{ "domains", required_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 },
	};
	struct usercmd_ini ui = { NULL, NULL };
	const char *config = USERCMD_CONFIG, *file = NULL, *verb, *name = NULL;
	char *domains = NULL, err[512], pass[USERCMD_PASS_MAX + 1], hash[512];
	struct buf old = { 0 }, out = { 0 };
	struct authdb *db = NULL;
	int ch, found, exists, rc = 1;
	size_t i;

	if (argc < 2) {
		usercmd_usage();
		return 2;
	}
	verb = argv[1];
	argc--;
	argv++;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:f:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case 'D':
			free(domains);
			domains = strdup(optarg);
			break;
		default:
			usercmd_usage();
			return 2;
		}
	}
	if (strcmp(verb, "list") == 0 ? optind != argc : optind + 1 != argc) {
		usercmd_usage();
		goto done;
	}
	if (optind < argc)
		name = argv[optind];
	if (strcmp(verb, "add") != 0 && strcmp(verb, "delete") != 0 &&
	    strcmp(verb, "list") != 0) {
		usercmd_usage();
		goto done;
	}
	if (name && authdb_valid_name(name) == -1) {
		fprintf(stderr, "mxgate user: bad user name '%s' (1 to %d of "
		    "A-Z a-z 0-9 . _ @ + -)\n", name, AUTHDB_NAME_MAX);
		goto done;
	}
	if (strcmp(verb, "add") == 0) {
		if (domains == NULL) {
			fprintf(stderr, "mxgate user add: --domains is required\n");
			goto done;
		}
		for (i = 0; domains[i]; i++)
			if (domains[i] >= 'A' && domains[i] <= 'Z')
				domains[i] += 'a' - 'A';
		if (authdb_valid_domains(domains, err, sizeof(err)) == -1) {
			fprintf(stderr, "mxgate user add: --domains: %s\n", err);
			goto done;
		}
	}
	if (ini_parse(config, usercmd_ini_cb, &ui) < 0 && file == NULL) {
		fprintf(stderr, "mxgate user: cannot read %s\n", config);
		goto done;
	}
	if (file == NULL && (file = ui.users) == NULL) {
		fprintf(stderr, "mxgate user: %s has no [submission] users; "
		    "give --file\n", config);
		goto done;
	}
	if ((exists = usercmd_read(file, &old)) == -1) {
		fprintf(stderr, "mxgate user: cannot read %s: %s\n", file,
		    strerror(errno));
		goto done;
	}
	/* Never build on a broken file: fix it first. */
	if (exists && (db = authdb_load(file, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxgate user: %s\n", err);
		goto done;
	}
	if (strcmp(verb, "list") == 0) {
		for (i = 0; i < authdb_count(db); i++)
			printf("%s %s\n", authdb_name(db, i),
			    authdb_domains(db, authdb_name(db, i)));
		rc = 0;
		goto done;
	}
	if (usercmd_filter(&old, name, &out, &found) == -1)
		goto done;
	if (strcmp(verb, "delete") == 0) {
		if (!found) {
			fprintf(stderr, "mxgate user delete: no user %s in %s\n",
			    name, file);
			goto done;
		}
	} else {
		if (usercmd_password(pass, sizeof(pass)) == -1)
			goto done;
		i = (size_t)authdb_hash(pass, hash, sizeof(hash));
		explicit_bzero(pass, sizeof(pass));
		if (i != 0) {
			fprintf(stderr, "mxgate user add: hashing failed\n");
			goto done;
		}
		if (buf_appendf(&out, "%s:%s:%s\n", name, hash, domains) == -1)
			goto done;
	}
	if (usercmd_write(file, &out, ui.user) == -1)
		goto done;
	printf("%s %s in %s\n", strcmp(verb, "delete") == 0 ? "deleted" :
	    found ? "updated" : "added", name, file);
	rc = 0;
done:
	authdb_free(db);
	buf_free(&old);
	buf_free(&out);
	free(domains);
	free(ui.users);
	free(ui.user);
	return rc;
}
