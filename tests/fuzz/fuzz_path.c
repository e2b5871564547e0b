/*
 * libFuzzer target for smtp/path.c. The first octet picks FROM or TO; the
 * rest, up to a NUL, is the argument. Checks what the header promises of
 * an accepted path.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp/path.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
has_8bit(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

static void
check_accepted(const char *kw, const char *orig, char *arg,
    const struct smtp_path_args *r)
{
	const char *err;
	size_t plen, i;

	CHECK(r->path != NULL);
	plen = strlen(r->path);
	/* results point into the argument */
	CHECK(r->path >= arg && r->path + plen <= arg + strlen(orig));
	/* RFC 5321 4.5.3.1.3: 256 with the brackets */
	CHECK(plen <= SMTP_MAX_PATH - 2);
	CHECK(r->utf8 == has_8bit(r->path));
	if (plen == 0) {
		/* the null path only for the sender */
		CHECK(strcasecmp(kw, "FROM") == 0);
		CHECK(r->domain == NULL);
	} else if (r->domain == NULL) {
		CHECK(strcasecmp(kw, "TO") == 0);
		CHECK(strcasecmp(r->path, "postmaster") == 0);
	} else {
		CHECK(r->domain > r->path && r->domain <= r->path + plen);
		CHECK(r->domain[-1] == '@');
		CHECK(smtp_path_check_domain(r->domain, 1) == 0);
		CHECK(smtp_path_check_mailbox(r->path, 1, &err) == 0);
		if (!r->utf8)
			CHECK(smtp_path_check_mailbox(r->path, 0, &err) == 0);
	}
	CHECK(r->nparams <= SMTP_MAX_PARAMS);
	for (i = 0; i < r->nparams; i++) {
		const char *k = r->params[i].keyword, *v = r->params[i].value;

		CHECK(k != NULL && k[0] != '\0');
		CHECK(strchr(k, ' ') == NULL && strchr(k, '=') == NULL);
		CHECK(v == NULL || (v[0] != '\0' && strchr(v, ' ') == NULL));
		/* lookup finds the first of that keyword */
		CHECK(smtp_path_param(r, k) != NULL);
		CHECK(strcasecmp(smtp_path_param(r, k)->keyword, k) == 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *kws[] = { "FROM", "TO", "from", "To" };
	struct smtp_path_args r, r2;
	const char *kw, *err = NULL, *err2 = NULL;
	enum smtp_path_result res, res2;
	char *arg, *copy, *orig;
	size_t n;
	unsigned sel;

	if (size < 1)
		return 0;
	sel = data[0];
	kw = kws[sel & 3];
	data++;
	size--;
	n = strnlen((const char *)data, size);
	if ((arg = malloc(n + 1)) == NULL)
		return 0;
	memcpy(arg, data, n);
	arg[n] = '\0';
	orig = strdup(arg);
	copy = strdup(arg);
	if (orig == NULL || copy == NULL)
		goto out;

	res = smtp_path_parse(arg, kw, &r, &err);
	CHECK(res >= SMTP_PATH_OK && res <= SMTP_PATH_BADPARAM);
	CHECK(err != NULL);
	if (res == SMTP_PATH_OK)
		check_accepted(kw, orig, arg, &r);

	/* the same input gives the same answer */
	res2 = smtp_path_parse(copy, kw, &r2, &err2);
	CHECK(res == res2);
	if (res == SMTP_PATH_OK) {
		CHECK(strcmp(r.path, r2.path) == 0);
		CHECK(r.nparams == r2.nparams);
	}

	/* the mailbox and domain checks on raw text */
	smtp_path_check_mailbox(orig, (sel >> 2) & 1, &err);
	smtp_path_check_domain(orig, (sel >> 2) & 1);
out:
	free(arg);
	free(orig);
	free(copy);
	return 0;
}
