#include "lib/id.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>

void
id_new(char out[ID_LEN + 1])
{
	static unsigned seq;
	unsigned r = 0;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (unsigned)getpid() * 2654435761u;
	r = (r + ++seq * 40503u) & 0xfffffff;
	snprintf(out, ID_LEN + 1, "%09llX%07X",
	    (unsigned long long)time(NULL) & 0xfffffffffULL, r);
}

int
id_valid(const char *s)
{
	size_t i;

	if (strlen(s) != ID_LEN)
		return 0;
	for (i = 0; i < ID_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
			return 0;
	return 1;
}
