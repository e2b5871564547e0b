/* report/aggregate.c: placeholder until written */
#include "report/aggregate.h"
