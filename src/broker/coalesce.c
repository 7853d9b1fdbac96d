/* coalesce.c — the broker's timer when it may coalesce wakeups.
 *
 * A record waiting in its ring is no later than a record waiting in an
 * open batch as long as it is published within its subscription's
 * max_delay. So when every subscription allows some delay and takes more
 * than one record per batch, a quiet broker need not wake for each commit:
 * it looks at its active rings every tick and batch.c counts the tick
 * against each batch's deadline (broker.lag_ns). A subscription that wants
 * each record at once (batch_size 1) or allows little delay turns this off
 * for everyone: the broker then wakes on every commit, as before. */
#include "coalesce.h"
#include "stream.h"

struct scan {
	uint64_t min_delay_ns;
	uint64_t floor_ns;
	bool eager; /* a subscription that wants every record at once */
	bool any;
};

static void look(struct subscription *sub, void *arg)
{
	struct scan *sc = arg;

	if (sub->dead)
		return;
	sc->any = true;
	if (sub->batch_size <= 1 || sub->max_delay_ns < sc->floor_ns)
		sc->eager = true;
	if (sub->max_delay_ns < sc->min_delay_ns)
		sc->min_delay_ns = sub->max_delay_ns;
}

uint64_t coalesce_tick(struct broker *b)
{
	struct scan sc = {.min_delay_ns = UINT64_MAX,
			  .floor_ns = b->cfg.coalesce_min_ns};

	if (!b->cfg.coalesce_min_ns)
		return 0;
	stream_each_subscription(b, look, &sc);
	if (!sc.any || sc.eager)
		return 0;
	return sc.min_delay_ns / 4;
}
