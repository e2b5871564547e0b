/* gateway/reportcmd.c: placeholder */
#include "gateway/gateway.h"
