/* spin.c — looking again at a ring for a short while before sleeping.
 *
 * A producer that finds its ring full would sleep on its eventfd: a poll,
 * an eventfd write by the broker when it frees slots, and the wakeup.
 * On a small VM the wakeup costs tens of µs, and the scheduler tends to
 * run the woken game on the broker's CPU (the CPU that woke it), so the
 * two then share one core while the other waits for the subscriber. The
 * broker frees slots within tens of µs while it keeps up, so looking again
 * for about as long as a wakeup costs, yielding the CPU before each look
 * (a broker or subscriber on the same CPU runs meanwhile), is cheaper, and
 * the game keeps its CPU. The budget bounds what a wait that does not end
 * soon costs: after it, the caller sleeps as before.
 *
 * The caller raises its flag before (ring.c, Dekker's pattern), so that a
 * broker holding records in open batches learns that the game waits, and
 * a broker that frees slots meanwhile writes the eventfd as if we slept:
 * the next sleep then returns at once and looks again, nothing more. */
#include <sched.h>
#include <time.h>

#include "spin.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int ring_spin(struct ring *r, bool producer, uint64_t skip, uint64_t budget_ns)
{
	uint64_t until;
	int n;

	if (!budget_ns)
		return 0;
	until = now_ns() + budget_ns;
	do {
		(void)sched_yield();
		n = producer ? ring_producer_free(r, skip, UINT64_MAX)
			     : ring_consumer_ready(r, skip, UINT64_MAX);
	} while (n == 0 && now_ns() < until);
	return n;
}
