/* stats.h — the stats segment: the broker creates it, hands out its slots
 * and is its only writer. */
#ifndef EXPBUSD_STATS_H
#define EXPBUSD_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "broker.h"

/* The broker is the only writer of the stats segment: a relaxed load and
 * store is enough (no read-modify-write needed), and readers only need
 * each counter whole, which 64-bit atomics give. */
static inline void stat_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c,
			      atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline void stat_set(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, v, memory_order_relaxed);
}

/* Creates and seals the stats segment (b->stats, b->stats_fd). */
int stats_open(struct broker *b);
void stats_close(struct broker *b);
/* A free slot for a producer or a subscription, or NULL when all are
 * taken; the caller fills it and sets in_use. */
struct stats_producer *stats_producer_slot(struct broker *b);
struct stats_sub *stats_sub_slot(struct broker *b);

#endif
