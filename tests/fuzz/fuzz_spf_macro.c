/*
 * libFuzzer target for auth/spf_macro.c: expands arbitrary macro strings
 * for fixed check parameters (the first octet picks the family, the
 * sender and exp), and checks syntax-only and full expansion agree.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/spf.h"
#include "auth/spf_int.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *senders[] = { "strong-bad@email.example.com", "",
	    "a.b-c+d=e_f/g,h@x.y.z", "@nolocal.example" };
	struct spf_params p = { 0 };
	struct spf *s;
	struct buf b = { 0 };
	char *src, out[SPF_EXPAND_MAX + 1];
	unsigned sel;
	int exp, rc, rc2;
	size_t n;

	if (size < 1)
		return 0;
	sel = data[0];
	data++;
	size--;
	n = strnlen((const char *)data, size);
	if ((src = malloc(n + 1)) == NULL)
		return 0;
	memcpy(src, data, n);
	src[n] = '\0';
	exp = sel & 1;
	p.identity = SPF_ID_MAILFROM;
	p.ip = (sel & 2) ? "2001:db8::cb01" : "192.0.2.3";
	p.sender = senders[(sel >> 2) & 3];
	p.helo = "helo.example.org";
	p.receiver = "mx.example.net";
	p.now = 1234567890;
	if ((s = spf_new(&p)) == NULL)
		goto out;
	rc = spf_expand(s, src, exp, out, sizeof(out));
	rc2 = spf_macro_expand(NULL, src, n, exp, NULL);
	/* syntax-only agrees, except an expansion too long for out */
	CHECK(rc == 0 ? rc2 == 0 : 1);
	if (rc2 == -1)
		CHECK(rc == -1);
	if (rc == 0)
		CHECK(strlen(out) < sizeof(out));
	rc = spf_macro_expand(NULL, src, n, exp, &b);
	CHECK(rc == rc2);
	buf_free(&b);
	(void)spf_domain_spec_ok(src, n);
	(void)spf_macro_uses_p(src, n);
	spf_free(s);
out:
	free(src);
	return 0;
}
