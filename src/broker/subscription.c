/* subscription.c — subscriptions: created from a checked request with
 * their filter and segments, freed with their segments and fds. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "deadlines.h"
#include "doorbell.h"
#include "hold.h"
#include "segments.h"
#include "shm.h"
#include "stats.h"
#include "subscription.h"
#include "wake.h"

#define DEFAULT_BATCH_SLOTS 8

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static uint32_t *sorted_ids(const uint32_t *ids, uint32_t n)
{
	uint32_t *out;

	if (n == 0)
		return NULL;
	out = malloc(sizeof(*out) * n);
	if (!out)
		return NULL;
	memcpy(out, ids, sizeof(*out) * n);
	qsort(out, n, sizeof(*out), cmp_u32);
	return out;
}

int subscription_new(struct broker *b, struct stream *s,
		     const struct msg_subscribe *m, struct subscription **out,
		     int *batch_fd, int *rel_fd, char *err, size_t errlen)
{
	const uint32_t *ids = (const uint32_t *)(m + 1);
	struct subscription *sub;
	uint32_t cap;
	int e;

	*batch_fd = *rel_fd = -1;
	sub = calloc(1, sizeof(*sub));
	if (!sub) {
		snprintf(err, errlen, "broker out of memory");
		return -ENOMEM;
	}
	sub->heap_at = NOT_QUEUED;
	if (deadlines_reserve(b) < 0) {
		free(sub);
		snprintf(err, errlen, "broker out of memory");
		return -ENOMEM;
	}
	sub->reserved = true;
	sub->id = ++b->next_sub_id;
	sub->stream = s;
	sub->event_fd = -1;
	sub->batch_size = m->batch_size ? m->batch_size : b->cfg.default_batch;
	sub->max_delay_ns =
	    1000ull *
	    (m->max_delay_us ? m->max_delay_us : b->cfg.default_delay_us);
	sub->policy = (enum expbus_policy)m->policy;
	sub->flags = m->flags;
	sub->filter.min_turn = m->min_turn;
	sub->filter.n_games = m->n_games;
	sub->filter.n_players = m->n_players;
	sub->filter.games = sorted_ids(ids, m->n_games);
	sub->filter.players = sorted_ids(ids + m->n_games, m->n_players);
	if ((m->n_games && !sub->filter.games) ||
	    (m->n_players && !sub->filter.players)) {
		snprintf(err, errlen, "broker out of memory");
		e = -ENOMEM;
		goto fail;
	}
	cap = m->batch_slots ? m->batch_slots : DEFAULT_BATCH_SLOTS;
	sub->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sub->event_fd < 0) {
		e = -errno;
		snprintf(err, errlen, "eventfd: %s", strerror(-e));
		goto fail;
	}
	sub->doorbell = doorbell_new(b, DOORBELL_SUBSCRIPTION, sub);
	if (!sub->doorbell) {
		e = -errno;
		snprintf(err, errlen, "eventfd: %s", strerror(-e));
		goto fail;
	}
	e = segment_batch_ring(b, sub, cap, batch_fd, rel_fd, err, errlen);
	if (e < 0)
		goto fail;
	sub->notes = calloc(sub->ring.capacity, sizeof(*sub->notes));
	if (!sub->notes) {
		snprintf(err, errlen, "broker out of memory");
		e = -ENOMEM;
		goto fail;
	}
	sub->noted = sub->ring.cached;
	sub->open_src = calloc(sub->batch_size, sizeof(*sub->open_src));
	if (!sub->open_src) {
		snprintf(err, errlen, "broker out of memory");
		e = -ENOMEM;
		goto fail;
	}
	*out = sub;
	return 0;
fail:
	if (*batch_fd >= 0)
		(void)close(*batch_fd);
	if (*rel_fd >= 0)
		(void)close(*rel_fd);
	*batch_fd = *rel_fd = -1;
	subscription_free(b, sub);
	return e;
}

void subscription_free(struct broker *b, struct subscription *sub)
{
	if (!sub)
		return;
	wake_forget(b, sub);
	budget_refund(&b->budget, sub->budget_bytes);
	deadline_remove(b, sub);
	if (sub->reserved)
		deadlines_release(b);
	doorbell_close(b, sub->doorbell);
	if (sub->open_src)
		hold_drop_open(b, sub);
	if (sub->open && sub->open_count) {
		sub->dropped_total += sub->open_count;
		if (sub->st)
			stat_add(&sub->st->dropped[DROP_SUBSCRIBER_GONE],
				 sub->open_count);
	}
	stats_forget_sub(b, sub);
	shm_unmap(sub->seg, sub->seg_size);
	shm_unmap(sub->rel, RELEASE_PAGE_SIZE);
	if (sub->event_fd >= 0)
		(void)close(sub->event_fd);
	free(sub->filter.games);
	free(sub->filter.players);
	free(sub->notes);
	free(sub->open_src);
	free(sub);
}
