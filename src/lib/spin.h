/* spin.h — looking again at a ring for a short while before sleeping. */
#ifndef EXPBUS_SPIN_H
#define EXPBUS_SPIN_H

#include <stdbool.h>
#include <stdint.h>

#include "ring.h"

/* A producer's default budget (expbus_set_spin_us). */
#define SPIN_DEFAULT_NS (50u * 1000u)
/* The most expbus_set_spin_us takes: a wait longer than this is better
 * spent asleep. */
#define SPIN_MAX_NS (10u * 1000u * 1000u)

/* Looks at r again and again, yielding the CPU before each look, until
 * slots are free (producer) or ready (consumer) beyond skip, or budget_ns
 * has passed. Returns what ring_producer_free or ring_consumer_ready
 * returned last: > 0 slots, 0 none within the budget (at once when
 * budget_ns is 0), or a negative errno (-EPROTO). */
int ring_spin(struct ring *r, bool producer, uint64_t skip, uint64_t budget_ns);

#endif
