/* placeholder */
#include "report/send.h"
