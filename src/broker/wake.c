/* wake.c — subscribers to wake, at most once per pass.
 *
 * A subscriber faster than the broker reads every batch as it comes and
 * then sleeps, so waking it for each batch costs an eventfd write (and it
 * a wakeup) per batch: with 1 KiB records in batches of 256, 16,000 a
 * second, about a tenth of the samples of a `perf record` of both vCPUs
 * of the 2-vCPU VM (the writes and the subscriber's sleeps). batch.c notes
 * the subscriber instead, and the loop wakes each noted one when the pass
 * that published for it ends (loop.c: after the pass and its flush
 * deadlines, and before the loop sleeps): a batch waits at most the rest
 * of that pass, and a subscriber woken reads every batch the pass
 * published. The subscriber's flag stays raised meanwhile (ring.c: the
 * broker never clears it), so nothing is lost by waiting. */
#include <unistd.h>

#include "wake.h"

void wake_later(struct broker *b, struct subscription *sub)
{
	if (sub->wake_pending)
		return;
	sub->wake_pending = true;
	b->wake_subs[b->n_wake_subs++] = sub;
}

static void wake(struct subscription *sub)
{
	uint64_t one = 1;

	sub->wake_pending = false;
	/* EAGAIN means the counter is saturated: a wakeup is pending. */
	(void)!write(sub->event_fd, &one, sizeof(one));
}

void wake_now(struct broker *b)
{
	for (uint32_t i = 0; i < b->n_wake_subs; i++)
		wake(b->wake_subs[i]);
	b->n_wake_subs = 0;
}

void wake_forget(struct broker *b, struct subscription *sub)
{
	if (!sub->wake_pending)
		return;
	wake(sub);
	for (uint32_t i = 0; i < b->n_wake_subs; i++) {
		if (b->wake_subs[i] == sub) {
			b->wake_subs[i] = b->wake_subs[--b->n_wake_subs];
			break;
		}
	}
}
