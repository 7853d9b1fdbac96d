/* pump.h — the data path: take records from producer rings and route each
 * to the batches of the subscriptions that want it. */
#ifndef EXPBUSD_PUMP_H
#define EXPBUSD_PUMP_H

#include <stdbool.h>

#include "broker.h"

/* One pass over every stream. Returns how many records moved. */
int pump_all(struct broker *b);
/* Refreshes what the stats segment shows of every producer ring's tail,
 * even a ring the broker is not taking from (stalled): housekeeping. */
void pump_refresh_tails(struct broker *b);
/* Raises the sleeping flag on every ring that could give the broker work
 * and looks at each once more. Returns false when there is work after all;
 * pump_sleep_done lowers the flags either way. With coalesce (a sleep of
 * one tick, coalesce.c), the active rings stay active and are set to
 * watch for a burst instead (RING_WATCH_HALF, or RING_WATCH_HELD while open
 * batches hold half of the ring or more). */
bool pump_prepare_sleep(struct broker *b, bool coalesce);
void pump_sleep_done(struct broker *b);

#endif
