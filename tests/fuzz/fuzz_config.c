/*
 * libFuzzer target for gateway/config*.c (with inih): the input is a whole
 * configuration file, loaded with config_load and freed. It must never
 * crash or leak, and the answer must be consistent: a configuration, or
 * NULL with at least one "file:line: ..." error, never both.
 *
 * The file is a memfd, read back through /proc/self/fd/N. Loading reads
 * other files (DKIM keys, the users file, the public suffix list) and
 * resolves route hosts, so:
 *   - "@DIR@" in the input stands for a private directory made at start
 *     with a usable ed25519.key (base64 seed), rsa.pem (RSA-1024),
 *     users, psl.dat, cert.pem and key.pem; the seeds name them so;
 *   - getaddrinfo is limited to numeric hosts (no DNS from a fuzzer);
 *   - inputs naming device, /proc or /sys paths are skipped (a read of
 *     /dev/zero or a FIFO would never end; not a bug of the parser).
 */
#include <crypt.h>
#include <dlfcn.h>
#include <netdb.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "gateway/config.h"
#include "lib/buf.h"
#include "lib/log.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

#define TOKEN "@DIR@"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd = -1;
static char memfd_path[64];
static char dir[] = "/tmp/mxgate-fuzz-config.XXXXXX";
static const char *const files[] = {
	"ed25519.key", "rsa.pem", "users", "psl.dat", "cert.pem", "key.pem",
};

/* Numeric hosts only: the loader resolves [route] hosts at load time. */
int
getaddrinfo(const char *node, const char *service,
    const struct addrinfo *hints, struct addrinfo **res)
{
	static int (*real)(const char *, const char *,
	    const struct addrinfo *, struct addrinfo **);
	struct addrinfo h;

	if (real == NULL)
		CHECK((*(void **)&real = dlsym(RTLD_NEXT, "getaddrinfo")) != NULL);
	memset(&h, 0, sizeof(h));
	if (hints != NULL)
		h = *hints;
	h.ai_flags |= AI_NUMERICHOST;
	return real(node, service, &h, res);
}

static void
write_file(const char *name, const char *text)
{
	char path[sizeof(dir) + 32];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	CHECK((fp = fopen(path, "w")) != NULL);
	CHECK(fputs(text, fp) >= 0);
	CHECK(fclose(fp) == 0);
}

static void
write_rsa(void)
{
	char path[sizeof(dir) + 32];
	EVP_PKEY *pkey;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/rsa.pem", dir);
	CHECK((pkey = EVP_RSA_gen(1024)) != NULL);
	CHECK((fp = fopen(path, "w")) != NULL);
	CHECK(PEM_write_PrivateKey(fp, pkey, NULL, NULL, 0, NULL, NULL) == 1);
	CHECK(fclose(fp) == 0);
	EVP_PKEY_free(pkey);
}

static void
cleanup(void)
{
	char path[sizeof(dir) + 32];
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char line[256];
	const char *hash;

	log_init("fuzz_config", 0, LOGL_ERROR);
	CHECK(mkdtemp(dir) != NULL);
	atexit(cleanup);
	/* RFC 8463 4: an Ed25519 key as the base64 of its 32-octet seed */
	write_file("ed25519.key",
	    "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n");
	write_rsa();
	CHECK((hash = crypt("secret", "$6$fuzzsalt$")) != NULL);
	snprintf(line, sizeof(line), "# users\nalice:%s:example.test,b.test\n"
	    "bob@example.test:%s:example.test\n", hash, hash);
	write_file("users", line);
	write_file("psl.dat", "// test list\ntest\nco.test\n*.wild.test\n");
	write_file("cert.pem", "not checked at load\n");
	write_file("key.pem", "not checked at load\n");
	CHECK((memfd = memfd_create("fuzz_config.ini", 0)) != -1);
	snprintf(memfd_path, sizeof(memfd_path), "/proc/self/fd/%d", memfd);
	return 0;
}

/* Paths whose reading may never end, or depends on the machine. */
static int
unsafe(const uint8_t *data, size_t size)
{
	static const char *const bad[] = { "dev/", "proc/", "sys/", "run/",
	    "fd/" };
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (memmem(data, size, bad[i], strlen(bad[i])) != NULL)
			return 1;
	return 0;
}

/* The input into the memfd, TOKEN replaced by the directory. */
static void
fill(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size, *t;
	size_t tl = strlen(TOKEN);

	CHECK(ftruncate(memfd, 0) == 0);
	CHECK(lseek(memfd, 0, SEEK_SET) == 0);
	while (p < end) {
		size_t n;

		t = memmem(p, (size_t)(end - p), TOKEN, tl);
		n = t ? (size_t)(t - p) : (size_t)(end - p);
		CHECK(write(memfd, p, n) == (ssize_t)n);
		if (t == NULL)
			break;
		CHECK(write(memfd, dir, strlen(dir)) == (ssize_t)strlen(dir));
		p = t + tl;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf errors = { 0 };
	struct config *cfg;
	size_t i;

	if (unsafe(data, size))
		return -1;	/* not added to the corpus */
	fill(data, size);
	cfg = config_load(memfd_path, &errors);
	if (cfg == NULL) {
		/* every error names the file and a line */
		CHECK(errors.len > 0 && errors.data[errors.len - 1] == '\n');
		CHECK(strncmp(errors.data, memfd_path, strlen(memfd_path)) == 0);
	} else {
		CHECK(errors.len == 0);
		/* what validation promises */
		CHECK(cfg->nlisteners > 0 && cfg->ndomains > 0);
		for (i = 0; i < cfg->nlisteners; i++)
			CHECK(cfg->listeners[i].address != NULL &&
			    cfg->listeners[i].port > 0);
		for (i = 0; i < cfg->ndomains; i++)
			CHECK(config_route_for(cfg, cfg->domains[i][0] == '.' ?
			    cfg->domains[i] + 1 : cfg->domains[i]) != NULL ||
			    cfg->domains[i][0] == '.');
		for (i = 0; i < cfg->nsigners; i++)
			CHECK(cfg->signers[i].nkeys > 0 &&
			    config_signer_for(cfg, cfg->signers[i].domain) != NULL);
		CHECK(cfg->soft_error_limit <= cfg->hard_error_limit);
		CHECK(cfg->retry_initial <= cfg->retry_max);
	}
	config_free(cfg);
	buf_free(&errors);
	return 0;
}
