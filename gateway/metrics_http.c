/* gateway/metrics_http.c: placeholder until written */
#include "gateway/gateway.h"
