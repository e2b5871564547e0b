/* gateway/dnscmd.c: placeholder until written */
#include "gateway/gateway.h"
