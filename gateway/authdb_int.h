/*
 * gateway/authdb_int: what authdb.c and authdb_check.c share.
 */
#ifndef GATEWAY_AUTHDB_INT_H
#define GATEWAY_AUTHDB_INT_H

#include <crypt.h>

#include "gateway/authdb.h"

struct authdb_user {
	char *name;
	char *hash;
	char *domains;		/* lower case, comma-separated */
};

struct authdb {
	struct authdb_user *users;	/* sorted by name, case-insensitive */
	size_t n;
	char dummy[CRYPT_OUTPUT_SIZE];	/* setting hashed for unknown users */
};

const struct authdb_user *authdb_find(const struct authdb *db,
    const char *user);
/* crypt_rn(password, hash) == hash, compared in constant time; cd is
 * scratch space, wiped. */
int authdb_crypt_match(const char *password, const char *hash,
    struct crypt_data *cd);

#endif
