/* ring.c — the SPSC ring shared by producer rings and batch rings.
 *
 * Publication: the producer fills slots with plain stores, then advances the
 * tail with a store-release; the consumer loads the tail with load-acquire,
 * so every slot byte written before the release is visible after the
 * acquire. Symmetrically the consumer's head store-release (after it has
 * finished reading the slots) pairs with the producer's head load-acquire
 * (before it overwrites them).
 *
 * Sleeping without lost wakeups (Dekker's pattern):
 *   sleeper:  store(own.sleeping, 1); fence(seq_cst); look at other counter;
 *             if nothing to do, block on the eventfd.
 *   waker:    store-release(own counter); fence(seq_cst); load(peer.sleeping);
 *             if set, write the peer's eventfd.
 * The two seq_cst fences order each side's store before its load, so at
 * least one side sees the other's store: either the sleeper sees the new
 * counter and does not block, or the waker sees the flag and writes the
 * eventfd (whose counter keeps the wakeup even if the sleeper has not
 * blocked yet). The sleeper clears its flag when it wakes.
 *
 * A consumer that comes back on its own timer may instead set its flag to
 * RING_WATCH_HALF: the producer then wakes it only when a commit fills the
 * ring past half (a burst that must not wait for the timer and block the
 * producer). That is a hint, not the protocol above: a wakeup it misses
 * costs the wait for the consumer's timer, nothing more.
 *
 * A consumer that looks at a ready set every tick may park the ring with
 * RING_READY instead of 1: the same Dekker pair, but the waker marks its
 * bit in the ready set (ready_set.h) rather than writing the eventfd, unless
 * the commit fills the ring past half (as with RING_WATCH_HALF). The
 * consumer sees the bit at its next tick, then looks at the ring.
 *
 * A consumer may hold what it read (its head does not move) until more
 * comes. So a producer about to wait on its full ring, its own flag up and
 * fenced, wakes a consumer whose flag is 1 or RING_WATCH_HELD (watching,
 * and holding at least half the ring; ring_producer_full_wakes); a
 * consumer about to sleep, its flag up and fenced, looks at the producer's
 * flag (ring_consumer_producer_waits): Dekker again, and one of them sees
 * the other. A consumer that watches without holding much comes back at
 * its timer for what the producer wrote. */
#include "ring.h"

#include <errno.h>
#include <limits.h>

static void ring_init(struct ring *r, struct ring_side *prod,
		      struct ring_side *cons, void *slots, uint64_t slot_size,
		      uint64_t capacity)
{
	r->prod = prod;
	r->cons = cons;
	r->slots = slots;
	r->slot_size = slot_size;
	r->capacity = capacity;
	r->mask = capacity - 1;
}

void ring_init_producer(struct ring *r, struct ring_side *prod,
			struct ring_side *cons, void *slots, uint64_t slot_size,
			uint64_t capacity)
{
	ring_init(r, prod, cons, slots, slot_size, capacity);
	/* Relaxed: at attach nothing is in flight; the handshake over the
	 * control socket already ordered the segment's creation before us. */
	r->pos = atomic_load_explicit(&prod->pos, memory_order_relaxed);
	r->cached = atomic_load_explicit(&cons->pos, memory_order_acquire);
}

void ring_init_consumer(struct ring *r, struct ring_side *prod,
			struct ring_side *cons, void *slots, uint64_t slot_size,
			uint64_t capacity)
{
	ring_init(r, prod, cons, slots, slot_size, capacity);
	r->pos = atomic_load_explicit(&cons->pos, memory_order_relaxed);
	/* Acquire: pairs with the producer's store-release of the tail. */
	r->cached = atomic_load_explicit(&prod->pos, memory_order_acquire);
}

static int clamp_contiguous(const struct ring *r, uint64_t skip, uint64_t avail,
			    uint64_t n)
{
	uint64_t to_end = r->capacity - ((r->pos + skip) & r->mask);

	if (avail > n)
		avail = n;
	if (avail > to_end)
		avail = to_end;
	if (avail > INT_MAX)
		avail = INT_MAX;
	return (int)avail;
}

static int producer_refresh(struct ring *r)
{
	/* Acquire: pairs with the consumer's store-release of the head in
	 * ring_consumer_release, so it has finished reading the slots we are
	 * about to overwrite. */
	uint64_t head =
	    atomic_load_explicit(&r->cons->pos, memory_order_acquire);

	/* The head is written by the other process: it may only move forward
	 * and never past what we published. */
	if (head - r->cached > r->pos - r->cached)
		return -EPROTO;
	r->cached = head;
	return 0;
}

int ring_producer_free(struct ring *r, uint64_t skip, uint64_t n)
{
	/* pos - cached <= capacity holds: checked on every refresh. */
	uint64_t avail = r->capacity - (r->pos - r->cached);

	if (avail <= skip || avail - skip < n) {
		int err = producer_refresh(r);
		if (err < 0)
			return err;
		avail = r->capacity - (r->pos - r->cached);
	}
	if (avail <= skip)
		return 0;
	return clamp_contiguous(r, skip, avail - skip, n);
}

enum ring_wake ring_producer_commit(struct ring *r, uint64_t n)
{
	uint64_t before = r->pos, head, half = r->capacity / 2;
	uint32_t flag;
	bool crosses_half;

	r->pos += n;
	/* Release: the slot contents written before become visible to a
	 * consumer that load-acquires this tail. */
	atomic_store_explicit(&r->prod->pos, r->pos, memory_order_release);
	/* Seq_cst fence: orders the tail store before the load of the
	 * consumer's sleeping flag (the waker half of Dekker, see top).
	 * Acquire: pairs with the store-release of RING_READY in
	 * ring_consumer_prepare_ready, so that the bits the consumer took
	 * from the ready set before it parked the ring are seen taken
	 * (ready_mark then sets ours again). */
	atomic_thread_fence(memory_order_seq_cst);
	flag = atomic_load_explicit(&r->cons->sleeping, memory_order_acquire);
	if (flag != RING_WATCH_HALF && flag != RING_WATCH_HELD &&
	    flag != RING_READY)
		return flag != 0 ? RING_WAKE_EVENTFD : RING_WAKE_NONE;
	/* Relaxed: only a hint (see top); the head does not move while the
	 * consumer waits for its timer, so this load hits the cache. A head
	 * the consumer made up only moves the wakeup. */
	head = atomic_load_explicit(&r->cons->pos, memory_order_relaxed);
	crosses_half = before - head < half && r->pos - head >= half;
	if (flag == RING_READY)
		return crosses_half ? RING_WAKE_EVENTFD : RING_WAKE_MARK;
	return crosses_half ? RING_WAKE_EVENTFD : RING_WAKE_NONE;
}

bool ring_producer_full_wakes(const struct ring *r)
{
	/* Relaxed, after the seq_cst fence of ring_producer_prepare_sleep:
	 * the sleeper half of Dekker against a consumer that raises its flag,
	 * fences and then looks at ours (ring_consumer_producer_waits), so
	 * one of the two sees the other. A consumer that cleared its flag
	 * since is awake and sees the full ring on its own. */
	uint32_t flag =
	    atomic_load_explicit(&r->cons->sleeping, memory_order_relaxed);

	return flag != 0 && flag != RING_WATCH_HALF;
}

static int consumer_refresh(struct ring *r)
{
	/* Acquire: pairs with the producer's store-release of the tail in
	 * ring_producer_commit; the slots up to it are then fully written. */
	uint64_t tail =
	    atomic_load_explicit(&r->prod->pos, memory_order_acquire);

	/* The tail comes from the other process: it may not go backwards nor
	 * run more than a ring ahead of our head. */
	if (tail - r->cached > r->capacity || tail - r->pos > r->capacity)
		return -EPROTO;
	r->cached = tail;
	return 0;
}

int ring_consumer_ready(struct ring *r, uint64_t skip, uint64_t n)
{
	uint64_t avail = r->cached - r->pos;

	if (avail <= skip || avail - skip < n) {
		int err = consumer_refresh(r);
		if (err < 0)
			return err;
		avail = r->cached - r->pos;
	}
	if (avail <= skip)
		return 0;
	return clamp_contiguous(r, skip, avail - skip, n);
}

bool ring_consumer_release(struct ring *r, uint64_t n)
{
	r->pos += n;
	/* Release: our reads of the slots happen before the producer may
	 * reuse them (it load-acquires this head). */
	atomic_store_explicit(&r->cons->pos, r->pos, memory_order_release);
	/* Seq_cst fence: the waker half of Dekker, see top of file. */
	atomic_thread_fence(memory_order_seq_cst);
	return atomic_load_explicit(&r->prod->sleeping, memory_order_relaxed) !=
	       0;
}

int ring_consumer_prepare_sleep(struct ring *r, uint64_t skip)
{
	/* Relaxed store then seq_cst fence: the sleeper half of Dekker; the
	 * fence keeps the flag store before the tail load that follows. */
	atomic_store_explicit(&r->cons->sleeping, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	return ring_consumer_ready(r, skip, UINT64_MAX);
}

int ring_consumer_prepare_ready(struct ring *r, uint64_t skip)
{
	/* Release: pairs with the producer's load-acquire of the flag in
	 * ring_producer_commit (the ready set's words we cleared before are
	 * seen cleared). Seq_cst fence: the sleeper half of Dekker, as in
	 * ring_consumer_prepare_sleep; a commit we do not see below sees
	 * RING_READY and marks the ready set. */
	atomic_store_explicit(&r->cons->sleeping, RING_READY,
			      memory_order_release);
	atomic_thread_fence(memory_order_seq_cst);
	return ring_consumer_ready(r, skip, UINT64_MAX);
}

void ring_consumer_watch(struct ring *r, uint32_t how)
{
	/* Relaxed, no fence: a hint (see top of file). A commit that misses
	 * it waits for the consumer's timer. */
	atomic_store_explicit(&r->cons->sleeping, how, memory_order_relaxed);
}

bool ring_consumer_producer_waits(const struct ring *r)
{
	/* Relaxed: after our flag store and seq_cst fence (a consumer about
	 * to sleep), Dekker with ring_producer_full_wakes; elsewhere a hint,
	 * since a producer that raises its flag later wakes us (see top). */
	return atomic_load_explicit(&r->prod->sleeping, memory_order_relaxed) !=
	       0;
}

void ring_consumer_sleep_done(struct ring *r)
{
	/* Relaxed: a stale 1 seen by the producer only costs one spare
	 * eventfd write. */
	atomic_store_explicit(&r->cons->sleeping, 0, memory_order_relaxed);
}

int ring_producer_prepare_sleep(struct ring *r, uint64_t skip)
{
	/* Sleeper half of Dekker, as in ring_consumer_prepare_sleep. */
	atomic_store_explicit(&r->prod->sleeping, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	return ring_producer_free(r, skip, UINT64_MAX);
}

void ring_producer_sleep_done(struct ring *r)
{
	/* Relaxed: as in ring_consumer_sleep_done. */
	atomic_store_explicit(&r->prod->sleeping, 0, memory_order_relaxed);
}
