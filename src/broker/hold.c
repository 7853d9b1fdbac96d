/* hold.c — what open batches hold in producer rings, and the heads that
 * move past the rest: the broker reads a ring ahead of its head (taken),
 * and the shared head is the oldest record taken that an open batch still
 * holds, or all that was taken. Each record counts the open batches that
 * hold it (one counter per ring slot), so taking, publishing and moving a
 * head cost O(records), never O(rings x subscriptions). */
#include <errno.h>
#include <stdlib.h>
#include <poll.h>
#include <unistd.h>

#include "hold.h"
#include "stats.h"

int hold_init(struct producer *p)
{
	p->holds = calloc(p->ring.capacity, sizeof(*p->holds));
	return p->holds ? 0 : -ENOMEM;
}

void hold_take(struct subscription *sub, uint32_t i, struct producer *p,
	       uint64_t pos)
{
	sub->open_src[i] = p;
	if (!p)
		return;
	/* At most two holders per subscription and record (a dead group
	 * member's open batch and the member its records go to), so a
	 * uint16_t does not overflow with STATS_MAX_SUBS subscriptions. */
	p->holds[pos & p->ring.mask]++;
	p->n_held++;
}

void hold_take_run(struct subscription *sub, uint32_t i, struct producer *p,
		   uint64_t pos, uint32_t k)
{
	for (uint32_t j = 0; j < k; j++) {
		sub->open_src[i + j] = p;
		p->holds[(pos + j) & p->ring.mask]++;
	}
	p->n_held += k;
}

struct producer *hold_of(const struct subscription *sub, uint32_t i)
{
	return sub->open ? sub->open_src[i] : NULL;
}

void hold_queue(struct broker *b, struct producer *p)
{
	if (p->queued)
		return;
	p->queued = true;
	b->moved[b->n_moved++] = p;
}

void hold_drop_open(struct broker *b, struct subscription *sub)
{
	const uint64_t *seq;
	struct producer *last = NULL;

	if (!sub->open)
		return;
	/* The positions are the batch's own seq column: the broker wrote it
	 * and is its only writer (the batch ring is sealed against the
	 * subscriber's writes). */
	seq = (const uint64_t *)(sub->open + sub->col_offset[0]);
	for (uint32_t i = 0; i < sub->open_count; i++) {
		struct producer *p = sub->open_src[i];

		if (!p)
			continue;
		p->holds[seq[i] & p->ring.mask]--;
		p->n_held--;
		if (p != last)
			hold_queue(b, p);
		last = p;
		sub->open_src[i] = NULL;
	}
}

/* The oldest position from the head on that an open batch holds; p->taken
 * when none. */
static uint64_t first_held(const struct producer *p)
{
	uint64_t pos = p->ring.pos;

	if (!p->n_held)
		return p->taken;
	while (pos != p->taken && !p->holds[pos & p->ring.mask])
		pos++;
	return pos;
}

uint64_t hold_span(const struct producer *p)
{
	return p->taken - first_held(p);
}

bool hold_blocks_producer(const struct producer *p)
{
	return p->n_held && p->ring.cached == p->taken &&
	       ring_consumer_producer_waits(&p->ring) &&
	       2 * hold_span(p) > p->ring.capacity;
}

bool hold_has(const struct subscription *sub, const struct producer *p)
{
	if (!sub->open)
		return false;
	for (uint32_t i = 0; i < sub->open_count; i++)
		if (sub->open_src[i] == p)
			return true;
	return false;
}

/* The ring's fill as of its tail now: the tail we cached may be far
 * behind a producer that filled its ring and went to sleep, and judged by
 * it, every head we move would wake the producer for a few slots. An
 * impossible tail counts as full: no wakeup for a producer that wrote one
 * (pump_refresh_tails, in the housekeeping, disconnects it). */
static uint64_t fill_now(struct producer *p)
{
	if (ring_consumer_ready(&p->ring, 0, UINT64_MAX) < 0)
		return p->ring.capacity;
	return ring_consumer_cached_fill(&p->ring);
}

/* Whether a wakeup written to eventfd fd is still unread. Then its
 * sleeper's next wait returns at once and it looks at the ring again,
 * after reading the eventfd: it sees every head we moved before this look
 * (ring_consumer_release's fence published it). Its flag stays up until
 * it runs; without this, every pass in between would write again, and on
 * a small machine a woken producer may wait a while for a CPU. */
static bool wake_pending(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};

	return poll(&pfd, 1, 0) == 1;
}

static void release_head(struct broker *b, struct producer *p)
{
	/* Each position is passed once: O(records) overall. */
	uint64_t head = first_held(p);

	if (head == p->ring.pos)
		return;
	/* A producer asleep on a full ring is woken once half of it is free,
	 * not at the first free slot: it then writes many records per
	 * wakeup instead of one. Its flag stays up until then; the head
	 * moves again at the next publish or pass. */
	if (ring_consumer_release(&p->ring, head - p->ring.pos) &&
	    fill_now(p) <= p->ring.capacity / 2 && !wake_pending(p->space_fd)) {
		uint64_t one = 1;
		(void)!write(p->space_fd, &one, sizeof(one));
	}
	stat_set(&p->st->head, p->ring.pos);
	stats_touch_producer(b, p);
}

void hold_release_heads(struct broker *b)
{
	for (uint32_t i = 0; i < b->n_moved; i++) {
		struct producer *p = b->moved[i];

		p->queued = false;
		if (!p->broken)
			release_head(b, p);
	}
	b->n_moved = 0;
}

static void forget_in(struct subscription *sub, const struct producer *p)
{
	if (!sub->open)
		return;
	for (uint32_t i = 0; i < sub->open_count; i++)
		if (sub->open_src[i] == p)
			sub->open_src[i] = NULL;
}

void hold_forget_producer(struct broker *b, struct producer *p)
{
	struct stream *s = p->stream;

	if (p->queued) {
		for (uint32_t i = 0; i < b->n_moved; i++) {
			if (b->moved[i] == p) {
				b->moved[i] = b->moved[--b->n_moved];
				break;
			}
		}
		p->queued = false;
	}
	if (!p->n_held)
		return;
	/* Rare (a producer freed while open batches hold its records: it
	 * broke the protocol), so a walk over its stream is fine. */
	for (uint32_t i = 0; i < s->n_subs; i++)
		forget_in(s->subs[i], p);
	for (uint32_t g = 0; g < s->n_groups; g++) {
		struct consumer_group *grp = s->groups[g];

		for (uint32_t i = 0; i < grp->n_members; i++)
			forget_in(grp->members[i], p);
		for (uint32_t i = 0; i < grp->n_orphans; i++)
			forget_in(grp->orphans[i], p);
	}
	p->n_held = 0;
}
