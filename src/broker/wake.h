/* wake.h — subscribers to wake: a subscriber asleep on its eventfd when a
 * batch is published for it is woken once at the end of the loop's pass,
 * however many batches the pass published for it. */
#ifndef EXPBUSD_WAKE_H
#define EXPBUSD_WAKE_H

#include "broker.h"

/* Notes that sub's subscriber sleeps and has a batch to read. */
void wake_later(struct broker *b, struct subscription *sub);
/* Writes the eventfd of every subscriber noted since the last call. */
void wake_now(struct broker *b);
/* sub goes away: woken now if it was noted, and forgotten. */
void wake_forget(struct broker *b, struct subscription *sub);

#endif
