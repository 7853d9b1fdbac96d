/* atomics.c — acquire loads, release stores and a full fence on shared
 * counters, for readers written in languages without a memory model of
 * their own (the Python reader calls these through ctypes). */
#include <stdatomic.h>

#include "expbus.h"

uint64_t expbus_load_acquire_u64(const uint64_t *p)
{
	/* Acquire: pairs with the store-release of the counter by the other
	 * side (ring.c: ring_producer_commit / ring_consumer_release). */
	return atomic_load_explicit((const _Atomic uint64_t *)p,
				    memory_order_acquire);
}

void expbus_store_release_u64(uint64_t *p, uint64_t v)
{
	/* Release: pairs with the other side's load-acquire of this
	 * counter, after the caller is done with the slots it gives back. */
	atomic_store_explicit((_Atomic uint64_t *)p, v, memory_order_release);
}

void expbus_fence_seq_cst(void)
{
	/* The sleeper's and the waker's fence of ring.c's Dekker pattern. */
	atomic_thread_fence(memory_order_seq_cst);
}
