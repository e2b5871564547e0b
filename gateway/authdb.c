/*
 * The submission users file: loading, lookups, hashing. The asynchronous
 * checker is in authdb_check.c.
 */
#include "gateway/authdb.h"
#include "gateway/authdb_int.h"

#include <crypt.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "smtp/path.h"

#define AUTHDB_LINE_MAX 4096

int
authdb_valid_name(const char *name)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > AUTHDB_NAME_MAX)
		return -1;
	for (i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr("._@+-", c) != NULL))
			return -1;
	}
	return 0;
}

int
authdb_valid_domains(const char *list, char *err, size_t errlen)
{
	const char *p = list, *e;
	char d[256];
	size_t n = 0;

	while (*p) {
		e = strchr(p, ',');
		if (e == NULL)
			e = p + strlen(p);
		if ((size_t)(e - p) >= sizeof(d) || e == p) {
			snprintf(err, errlen, "bad domain list '%s'", list);
			return -1;
		}
		memcpy(d, p, (size_t)(e - p));
		d[e - p] = '\0';
		if (d[0] == '[' || smtp_path_check_domain(d, 0) != 0) {
			snprintf(err, errlen, "not a domain: '%s'", d);
			return -1;
		}
		n++;
		p = *e ? e + 1 : e;
		if (*e && *p == '\0') {
			snprintf(err, errlen, "bad domain list '%s'", list);
			return -1;
		}
	}
	if (n == 0) {
		snprintf(err, errlen, "no From domains");
		return -1;
	}
	return 0;
}

static int
authdb_valid_hash(const char *h, char *err, size_t errlen)
{
	size_t i;

	/* Only modern, salted methods: "$id$..." (crypt(5)); no DES crypt,
	 * nothing that could be a plain-text password. */
	if (h[0] != '$' || strlen(h) < 13 || strlen(h) >= CRYPT_OUTPUT_SIZE) {
		snprintf(err, errlen, "not a crypt(3) hash (\"$y$...\", "
		    "\"$6$...\"); write it with mxgate user add");
		return -1;
	}
	for (i = 0; h[i]; i++)
		if (!((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= 'A' && h[i] <= 'Z') ||
		    (h[i] >= '0' && h[i] <= '9') || strchr("./$=,", h[i]))) {
			snprintf(err, errlen, "bad character in the hash");
			return -1;
		}
	switch (crypt_checksalt(h)) {
	case CRYPT_SALT_OK:
		return 0;
	case CRYPT_SALT_METHOD_LEGACY:
		snprintf(err, errlen, "legacy hash method (%.4s...): re-hash it "
		    "with mxgate user add", h);
		return -1;
	default:
		snprintf(err, errlen, "hash method not supported by libcrypt");
		return -1;
	}
}

static int
authdb_cmp(const void *a, const void *b)
{
	return strcasecmp(((const struct authdb_user *)a)->name,
	    ((const struct authdb_user *)b)->name);
}

static int
authdb_line(struct authdb *db, char *line, char *why, size_t whylen)
{
	char *name = line, *hash, *doms;
	struct authdb_user *u;
	size_t i;

	if ((hash = strchr(name, ':')) == NULL ||
	    (doms = strchr(hash + 1, ':')) == NULL) {
		snprintf(why, whylen, "expected name:hash:domain,domain");
		return -1;
	}
	*hash++ = '\0';
	*doms++ = '\0';
	if (authdb_valid_name(name) == -1) {
		snprintf(why, whylen, "bad user name (1 to %d of A-Z a-z 0-9 . _ @ + -)",
		    AUTHDB_NAME_MAX);
		return -1;
	}
	if (authdb_valid_hash(hash, why, whylen) == -1 ||
	    authdb_valid_domains(doms, why, whylen) == -1)
		return -1;
	for (i = 0; i < db->n; i++)
		if (strcasecmp(db->users[i].name, name) == 0) {
			snprintf(why, whylen, "user %s listed twice", name);
			return -1;
		}
	if ((u = realloc(db->users, (db->n + 1) * sizeof(*u))) == NULL)
		return -2;
	db->users = u;
	u = &db->users[db->n];
	u->name = strdup(name);
	u->hash = strdup(hash);
	u->domains = strdup(doms);
	if (u->name == NULL || u->hash == NULL || u->domains == NULL) {
		free(u->name);
		free(u->hash);
		free(u->domains);
		return -2;
	}
	for (i = 0; u->domains[i]; i++)
		if (u->domains[i] >= 'A' && u->domains[i] <= 'Z')
			u->domains[i] += 'a' - 'A';
	db->n++;
	return 0;
}

struct authdb *
authdb_load(const char *path, char *err, size_t errlen)
{
	struct authdb *db;
	FILE *fp;
	char *line = NULL, why[256];
	size_t cap = 0;
	ssize_t len;
	int lineno = 0, r;

	if ((fp = fopen(path, "re")) == NULL) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	if ((db = calloc(1, sizeof(*db))) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		fclose(fp);
		return NULL;
	}
	while ((len = getline(&line, &cap, fp)) != -1) {
		char *p = line;

		lineno++;
		if ((size_t)len > AUTHDB_LINE_MAX || memchr(line, '\0', (size_t)len)) {
			snprintf(err, errlen, "%s:%d: line too long or has a NUL",
			    path, lineno);
			goto fail;
		}
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' ||
		    line[len - 1] == ' ' || line[len - 1] == '\t'))
			line[--len] = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0' || *p == '#')
			continue;
		if ((r = authdb_line(db, p, why, sizeof(why))) == -2) {
			snprintf(err, errlen, "%s:%d: out of memory", path, lineno);
			goto fail;
		}
		if (r == -1) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
			goto fail;
		}
	}
	if (ferror(fp)) {
		snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
		goto fail;
	}
	free(line);
	fclose(fp);
	if (db->n > 1)
		qsort(db->users, db->n, sizeof(*db->users), authdb_cmp);
	/* Unknown users are hashed against a real user's setting (the same
	 * cost), or a fresh yescrypt setting when the file is empty. */
	if (db->n > 0)
		snprintf(db->dummy, sizeof(db->dummy), "%s", db->users[0].hash);
	else if (crypt_gensalt_rn("$y$", 0, NULL, 0, db->dummy,
	    (int)sizeof(db->dummy)) == NULL &&
	    crypt_gensalt_rn("$6$", 0, NULL, 0, db->dummy,
	    (int)sizeof(db->dummy)) == NULL)
		snprintf(db->dummy, sizeof(db->dummy), "$6$mxgatedummysalt");
	return db;
fail:
	free(line);
	fclose(fp);
	authdb_free(db);
	return NULL;
}

void
authdb_free(struct authdb *db)
{
	size_t i;

	if (db == NULL)
		return;
	for (i = 0; i < db->n; i++) {
		free(db->users[i].name);
		explicit_bzero(db->users[i].hash, strlen(db->users[i].hash));
		free(db->users[i].hash);
		free(db->users[i].domains);
	}
	free(db->users);
	free(db);
}

size_t
authdb_count(const struct authdb *db)
{
	return db ? db->n : 0;
}

const char *
authdb_name(const struct authdb *db, size_t i)
{
	return db && i < db->n ? db->users[i].name : NULL;
}

const struct authdb_user *
authdb_find(const struct authdb *db, const char *user)
{
	struct authdb_user key;

	if (db == NULL || db->n == 0)
		return NULL;
	key.name = (char *)user;
	return bsearch(&key, db->users, db->n, sizeof(*db->users), authdb_cmp);
}

const char *
authdb_domains(const struct authdb *db, const char *user)
{
	const struct authdb_user *u = authdb_find(db, user);

	return u ? u->domains : NULL;
}

int
authdb_may_send(const struct authdb *db, const char *user, const char *domain)
{
	const char *p = authdb_domains(db, user), *e;
	size_t n = strlen(domain);

	if (p == NULL || n == 0)
		return 0;
	while (*p) {
		e = strchr(p, ',');
		if (e == NULL)
			e = p + strlen(p);
		if ((size_t)(e - p) == n && strncasecmp(p, domain, n) == 0)
			return 1;
		p = *e ? e + 1 : e;
	}
	return 0;
}

int
authdb_crypt_match(const char *password, const char *hash,
    struct crypt_data *cd)
{
	const char *out;
	size_t n = strlen(hash);
	int r;

	memset(cd, 0, sizeof(*cd));
	out = crypt_rn(password, hash, cd, (int)sizeof(*cd));
	/* A failure token starts with "*"; never equal to a valid hash. */
	r = out != NULL && out[0] != '*' && strlen(out) == n &&
	    CRYPTO_memcmp(out, hash, n) == 0;
	explicit_bzero(cd, sizeof(*cd));
	return r;
}

int
authdb_verify(const struct authdb *db, const char *user, const char *password)
{
	const struct authdb_user *u = authdb_find(db, user);
	struct crypt_data *cd;
	int r;

	if ((cd = malloc(sizeof(*cd))) == NULL)
		return 0;
	r = authdb_crypt_match(password, u ? u->hash : db->dummy, cd);
	free(cd);
	return u != NULL && r;
}

int
authdb_hash(const char *password, char *out, size_t outlen)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd;
	const char *h;
	int r = -1;

	if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting, (int)sizeof(setting)) == NULL &&
	    crypt_gensalt_rn("$6$", 0, NULL, 0, setting, (int)sizeof(setting)) == NULL)
		return -1;
	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		return -1;
	h = crypt_rn(password, setting, cd, (int)sizeof(*cd));
	if (h != NULL && h[0] == '$' && strlen(h) < outlen) {
		memcpy(out, h, strlen(h) + 1);
		r = 0;
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return r;
}
