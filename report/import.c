/* report/import.c: placeholder until written */
#include "report/import.h"
