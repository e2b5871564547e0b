/*
 * libFuzzer target for queue/envelope.c's parser: the spool reads these
 * files back after a crash, from a disk that may hold anything. An
 * accepted envelope is complete, and serializing it gives text that parses
 * to the same envelope and serializes to the same text.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/id.h"
#include "queue/envelope.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_empty(const struct envelope *e)
{
	CHECK(e->id[0] == '\0' && e->rcpts == NULL && e->nrcpt == 0);
	CHECK(e->sender == NULL && e->helo == NULL && e->session == NULL &&
	    e->client_ip == NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct envelope e, e2;
	struct buf s1 = { 0 }, s2 = { 0 };
	const char *err = NULL;
	size_t i;

	if (envelope_parse((const char *)data, size, &e, &err) == -1) {
		CHECK(err != NULL && err[0] != '\0');
		check_empty(&e);
		return 0;
	}
	/* required records present */
	CHECK(id_valid(e.id));
	CHECK(e.sender != NULL);
	CHECK(e.nrcpt > 0);
	CHECK(envelope_pending(&e) <= e.nrcpt);
	for (i = 0; i < e.nrcpt; i++) {
		CHECK(e.rcpts[i].addr != NULL && e.rcpts[i].addr[0] != '\0');
		CHECK(e.rcpts[i].state == ENV_PENDING ||
		    e.rcpts[i].state == ENV_DELIVERED ||
		    e.rcpts[i].state == ENV_FAILED);
	}

	CHECK(envelope_serialize(&e, &s1) == 0);
	CHECK(s1.len >= 2 && memcmp(s1.data + s1.len - 2, "E\n", 2) == 0);
	CHECK(memchr(s1.data, '\0', s1.len) == NULL);
	err = NULL;
	if (envelope_parse(s1.data, s1.len, &e2, &err) == -1)
		__builtin_trap();
	CHECK(strcmp(e.id, e2.id) == 0);
	CHECK(strcmp(e.sender, e2.sender) == 0);
	CHECK(e.nrcpt == e2.nrcpt);
	CHECK(e.size == e2.size && e.arrival == e2.arrival);
	for (i = 0; i < e.nrcpt; i++) {
		CHECK(strcmp(e.rcpts[i].addr, e2.rcpts[i].addr) == 0);
		CHECK(e.rcpts[i].state == e2.rcpts[i].state);
		CHECK((e.rcpts[i].last == NULL) == (e2.rcpts[i].last == NULL));
	}
	CHECK(envelope_serialize(&e2, &s2) == 0);
	CHECK(s1.len == s2.len && memcmp(s1.data, s2.data, s1.len) == 0);
	buf_free(&s1);
	buf_free(&s2);
	envelope_free(&e);
	envelope_free(&e2);
	check_empty(&e);
	return 0;
}
