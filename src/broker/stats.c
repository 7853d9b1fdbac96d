/* stats.c — the stats segment: created at start-up, slots handed to
 * producers and subscriptions, unmapped at exit. */
#include <errno.h>
#include <unistd.h>

#include "segments.h"
#include "shm.h"
#include "stats.h"

int stats_open(struct broker *b)
{
	return segment_stats(b);
}

void stats_close(struct broker *b)
{
	shm_unmap(b->stats, b->stats_size);
	b->stats = NULL;
	if (b->stats_fd >= 0)
		(void)close(b->stats_fd);
	b->stats_fd = -1;
}

struct stats_producer *stats_producer_slot(struct broker *b)
{
	for (int i = 0; i < STATS_MAX_PRODUCERS; i++)
		if (!b->stats->producers[i].in_use)
			return &b->stats->producers[i];
	return NULL;
}

struct stats_sub *stats_sub_slot(struct broker *b)
{
	for (int i = 0; i < STATS_MAX_SUBS; i++)
		if (!b->stats->subs[i].in_use)
			return &b->stats->subs[i];
	return NULL;
}
