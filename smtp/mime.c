/* placeholder: see smtp/mime.h */
#include "smtp/mime.h"
typedef int smtp_mime_placeholder;
