/* report/recorder.c: placeholder until written */
#include "report/recorder.h"
