/* Value syntax for gateway/config: sizes, durations, integers. */
#include "gateway/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <strings.h>

static int
config_number(const char *s, unsigned long long *v_r, char *suffix_r)
{
	char *end;

	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	*v_r = strtoull(s, &end, 10);
	if (errno)
		return -1;
	*suffix_r = (char)tolower((unsigned char)*end);
	if (*end != '\0' && end[1] != '\0')
		return -1;
	return 0;
}

int
config_parse_size(const char *s, size_t *r)
{
	unsigned long long v, mul = 1;
	char suf;

	if (config_number(s, &v, &suf) == -1)
		return -1;
	switch (suf) {
	case '\0': break;
	case 'k': mul = 1024ULL; break;
	case 'm': mul = 1024ULL * 1024; break;
	case 'g': mul = 1024ULL * 1024 * 1024; break;
	default: return -1;
	}
	if (v > SIZE_MAX / mul)
		return -1;
	*r = (size_t)(v * mul);
	return 0;
}

int
config_parse_duration(const char *s, int *r)
{
	unsigned long long v, mul = 1;
	char suf;

	if (config_number(s, &v, &suf) == -1)
		return -1;
	switch (suf) {
	case '\0': case 's': break;
	case 'm': mul = 60; break;
	case 'h': mul = 3600; break;
	case 'd': mul = 86400; break;
	default: return -1;
	}
	if (v > INT_MAX / mul)
		return -1;
	*r = (int)(v * mul);
	return 0;
}

int
config_parse_int(const char *s, int min, int max, int *r)
{
	unsigned long long v;
	char suf;

	if (config_number(s, &v, &suf) == -1 || suf != '\0' ||
	    v > (unsigned long long)max || (long long)v < min)
		return -1;
	*r = (int)v;
	return 0;
}

int
config_parse_bool(const char *s, int *r)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t i;

	for (i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*r = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*r = 0;
			return 0;
		}
	}
	return -1;
}
