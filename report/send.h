/* report/send: placeholder, written next */
#ifndef REPORT_SEND_H
#define REPORT_SEND_H
#endif
