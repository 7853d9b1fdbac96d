/* coalesce.h — how long a quiet broker may leave records in their rings:
 * the tick of its timer when every subscription allows it (coalesce.c). */
#ifndef EXPBUS_BROKER_COALESCE_H
#define EXPBUS_BROKER_COALESCE_H

#include "broker.h"

/* A ring that stays empty this many ticks is parked (its next commit
 * rings its doorbell) instead of being looked at every tick. */
#define COALESCE_PARK_TICKS 64u

/* The tick: a quarter of the smallest max_delay of the subscriptions, or
 * 0 (wake on every commit) when coalescing is off, a subscription takes
 * batches of one record or allows less than cfg.coalesce_min_ns, or there
 * is no subscription. */
uint64_t coalesce_tick(struct broker *b);

#endif
