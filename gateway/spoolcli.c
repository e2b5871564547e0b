/*
 * gateway/spoolcli: what the spool's command-line tools (`mxgate
 * quarantine`, `mxgate queue`) share: opening the spool named by the
 * configuration as its owner, id checks, and terminal-safe output.
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

void
spoolcli_put(FILE *f, const char *s, int space)
{
	size_t u;

	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x80 && (u = log_utf8_len((const unsigned char *)s,
		    strlen(s))) > 0) {
			fwrite(s, 1, u, f);	/* printable UTF-8, whole */
			s += u - 1;
		} else if (c < 0x20 || c >= 0x7f || c == '\\' ||
		    (c == ' ' && !space))
			fprintf(f, "\\x%02x", c);
		else
			putc(c, f);
	}
}

void
spoolcli_age(char *out, size_t n, long long secs)
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

void
spoolcli_time(char *out, size_t n, long long t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, n, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(out, n, "-");
}

int
spoolcli_write(char *p, size_t n, int tty)
{
	size_t i;

	for (i = 0; tty && i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f)
			p[i] = '?';
	}
	return fwrite(p, 1, n, stdout) == n ? 0 : -1;
}

int
spoolcli_copy(int fd, int tty)
{
	char chunk[16384];
	ssize_t r;

	while ((r = read(fd, chunk, sizeof(chunk))) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (spoolcli_write(chunk, (size_t)r, tty) == -1)
			return -1;
	}
	return 0;
}

int
spoolcli_check_id(const char *id)
{
	/* never a path: 16 characters of [0-9A-F] (lib/id.h) */
	if (id_valid(id))
		return 0;
	fprintf(stderr, "mxgate: invalid queue id '");
	spoolcli_put(stderr, id, 1);
	fprintf(stderr, "': %d characters 0-9 A-F expected\n", ID_LEN);
	return -1;
}

/*
 * As root, become the spool's owner (the daemon's [server] user) so that
 * no file of the spool ends up owned by root; as anyone else, go on as is
 * (the spool's permissions decide).
 */
int
spoolcli_become_owner(const char *dir)
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

struct spool *
spoolcli_open(const char *config_path)
{
	struct buf errors = { 0 };
	struct config *cfg;
	struct spool *sp = NULL;
	char err[512];

	if ((cfg = config_load(config_path, &errors)) == NULL) {
		fputs(errors.data ? errors.data : "configuration failed\n", stderr);
		buf_free(&errors);
		return NULL;
	}
	buf_free(&errors);
	/* spool errors on stderr; the spool's info lines are not for here */
	log_init("mxgate", 0, LOGL_WARNING);
	if (spoolcli_become_owner(cfg->spool) == 0 &&
	    (sp = spool_open(cfg->spool, err, sizeof(err))) == NULL)
		fprintf(stderr, "mxgate: %s%s\n", err, errno == EACCES ?
		    " (run as root or as the spool's owner)" : "");
	config_free(cfg);
	return sp;
}

/* Length of the valid UTF-8 sequence at p (1-4), 0 if invalid. */
static size_t
spoolcli_utf8(const unsigned char *p)
{
	size_t n, i;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;	/* also stops at the NUL */
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/* A JSON string (RFC 8259 7), or null. */
void
spoolcli_json_str(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;

	if (s == NULL) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	while (*p) {
		if (*p == '"' || *p == '\\') {
			fprintf(f, "\\%c", *p++);
		} else if (*p < 0x20 || *p == 0x7f) {
			fprintf(f, "\\u%04x", *p++);
		} else if ((n = spoolcli_utf8(p)) == 0) {
			fputs("\\ufffd", f);
			p++;
		} else {
			fwrite(p, 1, n, f);
			p += n;
		}
	}
	fputc('"', f);
}
