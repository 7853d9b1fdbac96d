/* ready_set.h — the ready set (layout.h): a producer whose ring the broker
 * parked with RING_READY marks its bit when it commits; the broker takes
 * the marked bits once a tick and looks only at those rings. */
#ifndef EXPBUS_READY_SET_H
#define EXPBUS_READY_SET_H

#include <stdatomic.h>
#include <stdint.h>

/* Producer: sets mask in *word (ring_producer_commit said
 * RING_WAKE_MARK). */
static inline void ready_mark(_Atomic uint64_t *word, uint64_t mask)
{
	/* Relaxed look first: a producer that commits again before the
	 * broker's tick finds its bit still set and writes nothing, and the
	 * line stays shared. A bit the broker took before it parked the ring
	 * is seen taken: the flag's load-acquire in ring_producer_commit
	 * pairs with its store-release in ring_consumer_prepare_ready. */
	if (atomic_load_explicit(word, memory_order_relaxed) & mask)
		return;
	/* Relaxed: the bit carries no data; the broker load-acquires the
	 * tail before it reads a record (ring_consumer_ready). */
	atomic_fetch_or_explicit(word, mask, memory_order_relaxed);
}

/* Broker: the bits set in *word, cleared. */
static inline uint64_t ready_take(_Atomic uint64_t *word)
{
	/* Relaxed, both: a look that hits the cache while nobody marked,
	 * and an exchange whose bits only say which rings to look at (their
	 * tails are load-acquired then). An exchange, not a store of 0: a
	 * bit set between the two is kept for the next tick, not lost. */
	if (!atomic_load_explicit(word, memory_order_relaxed))
		return 0;
	return atomic_exchange_explicit(word, 0, memory_order_relaxed);
}

#endif
