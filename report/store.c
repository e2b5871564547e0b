/* report/store.c: placeholder until written */
#include "report/store.h"
