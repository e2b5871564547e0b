/* placeholder: see smtp/reply.h */
#include "smtp/reply.h"
typedef int smtp_reply_placeholder;
