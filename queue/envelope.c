#include "queue/envelope.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/path.h"

int
envelope_set(char **field, const char *value)
{
	char *c = strdup(value ? value : "");

	if (c == NULL)
		return -1;
	free(*field);
	*field = c;
	return 0;
}

int
envelope_add_rcpt(struct envelope *e, const char *addr)
{
	struct env_rcpt *r;

	if ((r = realloc(e->rcpts, (e->nrcpt + 1) * sizeof(*r))) == NULL)
		return -1;
	e->rcpts = r;
	r = &e->rcpts[e->nrcpt];
	memset(r, 0, sizeof(*r));
	if ((r->addr = strdup(addr)) == NULL)
		return -1;
	r->state = ENV_PENDING;
	e->nrcpt++;
	return 0;
}

int
envelope_set_last(struct env_rcpt *r, const char *text)
{
	return envelope_set(&r->last, text);
}

size_t
envelope_pending(const struct envelope *e)
{
	size_t i, n = 0;

	for (i = 0; i < e->nrcpt; i++)
		if (e->rcpts[i].state == ENV_PENDING)
			n++;
	return n;
}

static int
env_put(struct buf *out, char type, const char *v)
{
	static const char hex[] = "0123456789ABCDEF";

	if (buf_appendc(out, type) == -1 || buf_appendc(out, ' ') == -1)
		return -1;
	for (; v && *v; v++) {
		unsigned char c = (unsigned char)*v;

		if (c < 0x20 || c == 0x7f || c == '%') {
			char esc[3] = { '%', hex[c >> 4], hex[c & 15] };

			if (buf_append(out, esc, 3) == -1)
				return -1;
		} else if (buf_appendc(out, (char)c) == -1)
			return -1;
	}
	return buf_appendc(out, '\n');
}

static int
env_putn(struct buf *out, char type, long long v)
{
	return buf_appendf(out, "%c %lld\n", type, v);
}

int
envelope_serialize(const struct envelope *e, struct buf *out)
{
	size_t i;
	char rs[3] = { 0, ' ', 0 };

	if (buf_appends(out, "V 1\n") == -1 ||
	    env_put(out, 'I', e->id) == -1 ||
	    env_putn(out, 'T', e->arrival) == -1 ||
	    env_put(out, 's', e->session) == -1 ||
	    env_put(out, 'C', e->client_ip) == -1 ||
	    env_put(out, 'H', e->helo) == -1 ||
	    env_put(out, 'S', e->sender) == -1 ||
	    env_putn(out, 'Z', (long long)e->size) == -1 ||
	    env_putn(out, 'B', e->body_8bit) == -1 ||
	    env_putn(out, 'U', e->smtputf8) == -1 ||
	    env_putn(out, 'A', e->attempts) == -1 ||
	    env_putn(out, 'N', e->next_attempt) == -1 ||
	    (e->prepend && env_put(out, 'P', e->prepend) == -1) ||
	    (e->hold_reason && env_put(out, 'Q', e->hold_reason) == -1) ||
	    (e->hold_time && env_putn(out, 'X', e->hold_time) == -1) ||
	    (e->dsn_ret && env_put(out, 'K', e->dsn_ret == 'F' ? "FULL" :
	    "HDRS") == -1) ||
	    (e->dsn_envid && env_put(out, 'J', e->dsn_envid) == -1) ||
	    (e->delay_warned && env_putn(out, 'W', e->delay_warned) == -1))
		return -1;
	for (i = 0; i < e->nrcpt; i++) {
		struct buf line = { 0 };
		char notify[32];
		int r;

		rs[0] = e->rcpts[i].state;
		r = buf_appends(&line, rs) == -1 ||
		    buf_appends(&line, e->rcpts[i].addr) == -1 ||
		    env_put(out, 'R', line.data) == -1 ||
		    (e->rcpts[i].last && env_put(out, 'L', e->rcpts[i].last) == -1) ||
		    (e->rcpts[i].notify && env_put(out, 'Y', smtp_dsn_notify_str(
		    e->rcpts[i].notify, notify, sizeof(notify))) == -1) ||
		    (e->rcpts[i].orcpt && env_put(out, 'O', e->rcpts[i].orcpt) == -1);
		buf_free(&line);
		if (r)
			return -1;
	}
	return buf_appends(out, "E\n");
}

static int
env_unescape(char *s)
{
	char *o = s;

	while (*s) {
		if (*s == '%') {
			char h[3] = { s[1], s[1] ? s[2] : 0, 0 };
			char *end;
			long v;

			if (!isxdigit((unsigned char)h[0]) ||
			    !isxdigit((unsigned char)h[1]))
				return -1;
			v = strtol(h, &end, 16);
			if (*end != '\0' || v == 0 || h[0] == '+' || h[0] == '-')
				return -1;	/* no NUL may enter a C string */
			*o++ = (char)v;
			s += 3;
		} else
			*o++ = *s++;
	}
	*o = '\0';
	return 0;
}

static int
env_number(const char *v, long long *r)
{
	char *end;

	if (*v < '0' || *v > '9')
		return -1;	/* digits only: no sign, no space */
	errno = 0;
	*r = strtoll(v, &end, 10);
	return (*end != '\0' || errno) ? -1 : 0;
}

int
envelope_parse(const char *data, size_t n, struct envelope *e,
    const char **err_r)
{
	char *copy, *line, *next;
	int ended = 0, version = 0;
	long long num;

	memset(e, 0, sizeof(*e));
	if (memchr(data, '\0', n) != NULL) {
		*err_r = "NUL octet in envelope";
		return -1;
	}
	if ((copy = malloc(n + 1)) == NULL) {
		*err_r = "out of memory";
		return -1;
	}
	memcpy(copy, data, n);
	copy[n] = '\0';
	*err_r = "malformed record";
	for (line = copy; *line; line = next) {
		char type, *v;

		if ((next = strchr(line, '\n')) == NULL) {
			*err_r = "truncated record";
			goto fail;
		}
		*next++ = '\0';
		if (ended) {
			*err_r = "data after end record";
			goto fail;
		}
		type = line[0];
		if (type == 'E' && line[1] == '\0') {
			ended = 1;
			continue;
		}
		if (type == '\0' || line[1] != ' ')
			goto fail;
		v = line + 2;
		if (env_unescape(v) == -1)
			goto fail;
		switch (type) {
		case 'V':
			if (strcmp(v, "1") != 0) {
				*err_r = "unknown envelope version";
				goto fail;
			}
			version = 1;
			break;
		case 'I':
			if (!id_valid(v))
				goto fail;
			memcpy(e->id, v, ID_LEN + 1);
			break;
		case 's':
			if (envelope_set(&e->session, v) == -1)
				goto fail;
			break;
		case 'C':
			if (envelope_set(&e->client_ip, v) == -1)
				goto fail;
			break;
		case 'H':
			if (envelope_set(&e->helo, v) == -1)
				goto fail;
			break;
		case 'S':
			if (envelope_set(&e->sender, v) == -1)
				goto fail;
			break;
		case 'P':
			if (e->prepend != NULL || envelope_set(&e->prepend, v) == -1)
				goto fail;
			break;
		case 'Q':
			if (e->hold_reason != NULL ||
			    envelope_set(&e->hold_reason, v) == -1)
				goto fail;
			break;
		case 'K':
			if (e->dsn_ret != 0)
				goto fail;
			if (strcmp(v, "FULL") == 0)
				e->dsn_ret = 'F';
			else if (strcmp(v, "HDRS") == 0)
				e->dsn_ret = 'H';
			else
				goto fail;
			break;
		case 'J':
			if (e->dsn_envid != NULL || smtp_xtext_check(v) == -1 ||
			    envelope_set(&e->dsn_envid, v) == -1)
				goto fail;
			break;
		case 'Y':
			if (e->nrcpt == 0 || e->rcpts[e->nrcpt - 1].notify ||
			    smtp_dsn_notify_parse(v,
			    &e->rcpts[e->nrcpt - 1].notify) == -1)
				goto fail;
			break;
		case 'O':
			if (e->nrcpt == 0 || e->rcpts[e->nrcpt - 1].orcpt ||
			    smtp_dsn_orcpt_check(v) == -1 ||
			    envelope_set(&e->rcpts[e->nrcpt - 1].orcpt, v) == -1)
				goto fail;
			break;
		case 'T': case 'Z': case 'B': case 'U': case 'A': case 'N':
		case 'X': case 'W':
			if (env_number(v, &num) == -1 || num < 0)
				goto fail;
			if (type == 'T')
				e->arrival = num;
			else if (type == 'Z')
				e->size = (size_t)num;
			else if (type == 'B')
				e->body_8bit = num != 0;
			else if (type == 'U')
				e->smtputf8 = num != 0;
			else if (type == 'A')
				e->attempts = (int)(num > 1000000 ? 1000000 : num);
			else if (type == 'X')
				e->hold_time = num;
			else if (type == 'W')
				e->delay_warned = num;
			else
				e->next_attempt = num;
			break;
		case 'R':
			if ((v[0] != ENV_PENDING && v[0] != ENV_DELIVERED &&
			    v[0] != ENV_FAILED) || v[1] != ' ' || v[2] == '\0' ||
			    envelope_add_rcpt(e, v + 2) == -1)
				goto fail;
			e->rcpts[e->nrcpt - 1].state = v[0];
			break;
		case 'L':
			if (e->nrcpt == 0 ||
			    envelope_set_last(&e->rcpts[e->nrcpt - 1], v) == -1)
				goto fail;
			break;
		default:
			/* Unknown types are an error: never guess. */
			*err_r = "unknown record type";
			goto fail;
		}
	}
	if (!ended) {
		*err_r = "no end record";
		goto fail;
	}
	if (!version || e->id[0] == '\0' || e->nrcpt == 0 || e->sender == NULL) {
		*err_r = "missing required record";
		goto fail;
	}
	free(copy);
	return 0;
fail:
	free(copy);
	envelope_free(e);
	return -1;
}

void
envelope_free(struct envelope *e)
{
	size_t i;

	for (i = 0; i < e->nrcpt; i++) {
		free(e->rcpts[i].addr);
		free(e->rcpts[i].last);
		free(e->rcpts[i].orcpt);
	}
	free(e->rcpts);
	free(e->session);
	free(e->client_ip);
	free(e->helo);
	free(e->sender);
	free(e->prepend);
	free(e->hold_reason);
	free(e->dsn_envid);
	memset(e, 0, sizeof(*e));
}
