/* deadlines.h — when open batches are due: a min-heap of the subscriptions
 * with an open batch, ordered by open_since_ns + max_delay_ns, so finding
 * what to flush costs O(log n) per batch, not a walk over every
 * subscription. */
#ifndef EXPBUSD_DEADLINES_H
#define EXPBUSD_DEADLINES_H

#include <stdint.h>

#include "broker.h"

/* Room for one more subscription: call when one is created, so that
 * deadline_add never fails. Returns 0 or -ENOMEM. */
int deadlines_reserve(struct broker *b);
void deadlines_release(struct broker *b);
/* sub's batch opened: it is due at sub->open_since_ns + max_delay_ns. */
void deadline_add(struct broker *b, struct subscription *sub);
/* sub's batch was published or sub is gone; nothing if not queued. */
void deadline_remove(struct broker *b, struct subscription *sub);
/* The subscription due first, or NULL; its due time in *due. */
struct subscription *deadline_first(const struct broker *b, uint64_t *due);
/* Frees the heap (shutdown). */
void deadlines_free(struct broker *b);

#endif
