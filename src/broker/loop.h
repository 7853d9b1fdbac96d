/* loop.h — expbusd's event loop: open, run until a signal, close. */
#ifndef EXPBUSD_LOOP_H
#define EXPBUSD_LOOP_H

#include "broker.h"

/* Creates the stats segment, eventfd, signalfd, io_uring and the listening
 * socket from b->cfg. Returns 0 or -errno (logged). */
int broker_open(struct broker *b);
/* Runs until SIGTERM or SIGINT, then drains and flushes. Returns 0. */
int broker_run(struct broker *b);
/* Frees everything broker_open and broker_run made (b->cfg stays). */
void broker_close(struct broker *b);

#endif
