/* ring.h — the single-producer single-consumer ring that carries records
 * (producer rings) and batches (batch rings). One process-local view per
 * side; the two counters may live in different segments.
 *
 * Counters are free-running uint64_t: positions only grow, a slot is
 * pos & (capacity - 1), and tail - head is the fill level. At 10^10
 * records a second a counter wraps after 58 years, so "tail - head" is
 * never taken across a wrap in practice, and unsigned subtraction would
 * stay right even then because capacity < 2^63. */
#ifndef EXPBUS_RING_H
#define EXPBUS_RING_H

#include <stdbool.h>
#include <stdint.h>

#include "layout.h"

struct ring {
	struct ring_side *prod; /* tail and producer's sleeping flag */
	struct ring_side *cons; /* head and consumer's sleeping flag */
	uint8_t *slots;
	uint64_t slot_size;
	uint64_t capacity; /* a power of two */
	uint64_t mask;
	uint64_t
	    pos; /* own counter: tail for a producer, head for a consumer */
	uint64_t cached; /* last seen value of the other side's counter */
};

/* Initialises a view; capacity must be a power of two. pos starts at the
 * current value of the own counter and cached at the other's. */
void ring_init_producer(struct ring *r, struct ring_side *prod,
			struct ring_side *cons, void *slots, uint64_t slot_size,
			uint64_t capacity);
void ring_init_consumer(struct ring *r, struct ring_side *prod,
			struct ring_side *cons, void *slots, uint64_t slot_size,
			uint64_t capacity);

static inline void *ring_slot(const struct ring *r, uint64_t pos)
{
	return r->slots + (pos & r->mask) * r->slot_size;
}

/* Producer: slots free to write, contiguous from r->pos + skip (skip:
 * slots already handed out but not yet committed), at most n. Returns the
 * count (0 when full) or -EPROTO when the consumer's counter is impossible
 * (behind what it was, or ahead of the tail). */
int ring_producer_free(struct ring *r, uint64_t skip, uint64_t n);

/* What a commit asks of its producer. */
enum ring_wake {
	RING_WAKE_NONE = 0,
	RING_WAKE_EVENTFD = 1, /* the consumer sleeps: write its eventfd */
	RING_WAKE_MARK = 2,    /* RING_READY: set our bit in the ready set */
};
/* Producer: publishes n more slots (tail += n, store-release). Returns
 * how the consumer must be told: nothing, its eventfd, or (a ring parked
 * with RING_READY, unless the commit fills it past half) the ready set. A
 * producer without a ready set writes the eventfd for RING_WAKE_MARK. */
enum ring_wake ring_producer_commit(struct ring *r, uint64_t n);
/* Producer about to wait on its full ring, its flag up: whether the
 * consumer sleeps (flag 1) or watches holding what it read
 * (RING_WATCH_HELD), and must be woken: it may hold what it read until we
 * write more, and we wait for it (ring.c). */
bool ring_producer_full_wakes(const struct ring *r);

/* Consumer: slots ready to read, contiguous from r->pos + skip (skip:
 * slots already looked at but not yet released), at most n. Returns the
 * count or -EPROTO when the producer's tail is impossible (behind what it
 * was, or more than a ring ahead of the head). */
int ring_consumer_ready(struct ring *r, uint64_t skip, uint64_t n);

/* Consumer: gives back n slots (head += n, store-release). Returns true
 * when the producer sleeps and must be woken. */
bool ring_consumer_release(struct ring *r, uint64_t n);

/* Consumer: fill level as of the cached tail, without touching it. */
static inline uint64_t ring_consumer_cached_fill(const struct ring *r)
{
	return r->cached - r->pos;
}

/* Sleeping (see ring.c for the protocol): raise the own flag, fence, and
 * look again. Returns what ring_*_ready/free would (> 0: do not sleep, and
 * call *_sleep_done). */
int ring_consumer_prepare_sleep(struct ring *r, uint64_t skip);
void ring_consumer_sleep_done(struct ring *r);

/* Consumer that comes back on its own timer: asks the producer to wake it
 * only when a commit fills the ring past half (RING_WATCH_HALF), and with
 * RING_WATCH_HELD also when the producer waits on its full ring (the
 * consumer holds much of what it read: ring.c). Any other nonzero flag
 * means: wake on every commit. */
#define RING_WATCH_HALF 2u
#define RING_WATCH_HELD 3u
void ring_consumer_watch(struct ring *r, uint32_t how);
/* Consumer that looks at a ready set once a tick (ready_set.h): parks the
 * ring with RING_READY, so that a commit marks the producer's bit in the
 * set, and rings the eventfd only when it fills the ring past half or the
 * producer waits on it full. Flag up (store-release), fence, look again:
 * returns what ring_consumer_ready would (> 0: do not park; call
 * ring_consumer_sleep_done). Only for a producer that has a ready set. */
#define RING_READY 4u
int ring_consumer_prepare_ready(struct ring *r, uint64_t skip);
/* Consumer: whether the producer has raised its flag to wait for free
 * slots (a hint: it may be about to find some). */
bool ring_consumer_producer_waits(const struct ring *r);
int ring_producer_prepare_sleep(struct ring *r, uint64_t skip);
void ring_producer_sleep_done(struct ring *r);

#endif
