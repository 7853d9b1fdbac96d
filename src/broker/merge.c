/* merge.c — the data path: take records from every producer ring of a
 * stream, filter and route them, copy each once into the batch it belongs
 * to, and publish batches when full or when their delay is up. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "broker.h"

static int release_violation(struct broker *b, struct subscription *sub)
{
	log_warn(b,
		 "subscription %u (pid %d): release counter %llu is beyond "
		 "the %llu batches it was given; disconnecting it",
		 sub->id, sub->conn ? (int)sub->conn->pid : 0,
		 (unsigned long long)atomic_load_explicit(&sub->rel->cons.pos,
							  memory_order_relaxed),
		 (unsigned long long)sub->ring.pos);
	sub->dead = true;
	return -EPROTO;
}

/* Counts the records of the batches released since we last looked and
 * notes when the oldest unreleased record arrived: the lag in the stats.
 * Must run before a released slot is published again, which overwrites
 * its note; ring.cached was validated (<= ring.pos) by whoever moved it. */
static void note_release(struct subscription *sub)
{
	uint64_t n = 0, pos, oldest = 0;

	if (!sub->notes)
		return;
	for (pos = sub->noted; pos != sub->ring.cached; pos++)
		n += sub->notes[pos & sub->ring.mask].count;
	sub->noted = pos;
	if (pos != sub->ring.pos)
		oldest = sub->notes[pos & sub->ring.mask].since_ns;
	else if (sub->open)
		oldest = sub->open_since_ns;
	stat_add(&sub->st->released_records, n);
	stat_set(&sub->st->released, pos);
	stat_set(&sub->st->oldest_unreleased_ns, oldest);
}

int merge_check_release(struct broker *b, struct subscription *sub)
{
	int r = ring_producer_free(&sub->ring, 0, UINT64_MAX);

	if (r < 0)
		return release_violation(b, sub);
	note_release(sub);
	return r;
}

bool merge_has_room(struct broker *b, struct subscription *sub)
{
	int r;

	if (sub->open)
		return true;
	r = ring_producer_free(&sub->ring, 0, 1);
	if (r < 0) {
		release_violation(b, sub);
		return false;
	}
	return r > 0;
}

static uint64_t checksum(const struct subscription *sub, const uint8_t *slot,
			 uint32_t count)
{
	XXH3_state_t st;

	XXH3_64bits_reset(&st);
	for (uint32_t c = 0; c < sub->ncolumns; c++)
		XXH3_64bits_update(&st, slot + sub->col_offset[c],
				   (size_t)sub->col_size[c] * count);
	return XXH3_64bits_digest(&st);
}

void merge_publish(struct broker *b, struct subscription *sub,
		   enum expbus_flush_reason why)
{
	struct expbus_batch *batch = (struct expbus_batch *)sub->open;

	batch->seq = sub->batch_seq++;
	batch->count = sub->open_count;
	batch->flush_reason = why;
	batch->checksum = (sub->flags & EXPBUS_SUBSCRIBE_CHECKSUM)
			      ? checksum(sub, sub->open, sub->open_count)
			      : 0;
	batch->dropped_total = sub->dropped_total;
	batch->publish_ns = broker_now(); /* not the pass's start: later */
	note_release(sub); /* before this slot's note is overwritten */
	if (sub->notes) {
		sub->notes[sub->ring.pos & sub->ring.mask].since_ns =
		    sub->open_since_ns;
		sub->notes[sub->ring.pos & sub->ring.mask].count =
		    sub->open_count;
	}
	sub->open = NULL;
	if (ring_producer_commit(&sub->ring, 1)) {
		uint64_t one = 1;
		/* EAGAIN means the counter is saturated: a wakeup is pending.
		 */
		(void)!write(sub->event_fd, &one, sizeof(one));
	}
	stat_add(&sub->st->delivered, sub->open_count);
	stat_add(&sub->st->delivered_bytes,
		 (uint64_t)sub->record_bytes * sub->open_count);
	stat_add(&sub->st->batches[why], 1);
	stat_set(&sub->st->published, sub->ring.pos);
	stat_set(&sub->st->last_publish_ns, b->now_ns);
	stat_set(&sub->st->oldest_record_ns, 0);
	stat_set(&sub->st->open_records, 0);
	note_release(sub); /* the oldest unreleased may be this batch now */
}

void merge_deliver(struct broker *b, struct subscription *sub,
		   const struct expbus_record_header *hdr, uint64_t seq,
		   uint32_t source, const uint8_t *data)
{
	const struct schema *s = &sub->stream->schema;
	const uint64_t *off = sub->col_offset;
	uint32_t i;
	uint8_t *slot;

	if (!sub->open) {
		sub->open = ring_slot(&sub->ring, sub->ring.pos);
		sub->open_count = 0;
		sub->open_since_ns = b->now_ns;
		stat_set(&sub->st->oldest_record_ns, b->now_ns);
		note_release(sub); /* this may be the oldest unreleased now */
	}
	slot = sub->open;
	i = sub->open_count++;
	((uint64_t *)(slot + off[0]))[i] = seq;
	((uint64_t *)(slot + off[1]))[i] = hdr->timestamp_ns;
	((uint32_t *)(slot + off[2]))[i] = source;
	((uint32_t *)(slot + off[3]))[i] = hdr->game;
	((uint32_t *)(slot + off[4]))[i] = hdr->player;
	((uint32_t *)(slot + off[5]))[i] = hdr->turn;
	((uint32_t *)(slot + off[6]))[i] = hdr->flags;
	for (uint32_t f = 0; f < s->nfields; f++) {
		uint32_t size = sub->col_size[HEADER_COLUMNS + f];
		memcpy(slot + off[HEADER_COLUMNS + f] + (uint64_t)i * size,
		       data + s->fields[f].offset, size);
	}
	if (sub->open_count == sub->batch_size)
		merge_publish(b, sub, EXPBUS_FLUSH_FULL);
}

#define MAX_TARGETS (STATS_MAX_SUBS + 1)

/* Routes one record to every subscription that wants it. Returns false,
 * delivering nothing, when a lossless one has no room: the record stays in
 * its ring and back-pressure builds up behind it. */
static bool route(struct broker *b, struct stream *s, struct producer *p,
		  const struct expbus_record_header *hdr, uint64_t seq,
		  const uint8_t *data)
{
	struct subscription *to[MAX_TARGETS];
	bool room[MAX_TARGETS];
	uint32_t n = 0;

	for (uint32_t i = 0; i < s->n_subs && n < MAX_TARGETS; i++) {
		struct subscription *sub = s->subs[i];
		if (sub->dead)
			continue;
		if (!filter_match(&sub->filter, hdr)) {
			stat_add(&sub->st->filtered, 1);
			continue;
		}
		to[n++] = sub;
	}
	for (uint32_t i = 0; i < s->n_groups && n < MAX_TARGETS; i++) {
		struct subscription *sub = group_route(s->groups[i], hdr->game);
		if (!sub || sub->dead)
			continue;
		if (!filter_match(&sub->filter, hdr)) {
			stat_add(&sub->st->filtered, 1);
			continue;
		}
		to[n++] = sub;
	}
	if (n == 0) {
		stat_add(&s->st->unclaimed, 1);
		stat_add(&b->stats->unclaimed, 1);
		return true;
	}
	for (uint32_t i = 0; i < n; i++) {
		room[i] = merge_has_room(b, to[i]);
		if (!room[i]) {
			if (to[i]->dead)
				return false; /* gone: routed afresh next pass
					       */
			if (to[i]->policy == EXPBUS_LOSSLESS) {
				to[i]->blocked = true;
				return false;
			}
		}
	}
	for (uint32_t i = 0; i < n; i++) {
		if (room[i]) {
			merge_deliver(b, to[i], hdr, seq, p->id, data);
		} else {
			subscription_dropped(to[i]);
		}
	}
	return true;
}

static void producer_violation(struct broker *b, struct producer *p)
{
	log_warn(b,
		 "producer %u (pid %d) on stream '%s': tail %llu is impossible "
		 "for head %llu and a ring of %llu; disconnecting it",
		 p->id, p->conn ? (int)p->conn->pid : 0, p->stream->name,
		 (unsigned long long)atomic_load_explicit(&p->seg->prod.pos,
							  memory_order_relaxed),
		 (unsigned long long)p->ring.pos,
		 (unsigned long long)p->ring.capacity);
	p->broken = true;
	stat_add(&b->stats->violations, 1);
}

/* Takes up to BROKER_CHUNK records from p. Returns how many. */
static uint32_t pump_producer(struct broker *b, struct stream *s,
			      struct producer *p)
{
	int avail = ring_consumer_ready(&p->ring, 0, BROKER_CHUNK);
	uint32_t taken = 0;

	if (avail < 0) {
		producer_violation(b, p);
		return 0;
	}
	p->stalled = false;
	while (taken < (uint32_t)avail) {
		uint64_t seq = p->ring.pos + taken;
		const struct expbus_record_header *rec =
		    ring_slot(&p->ring, seq);
		struct expbus_record_header hdr;

		/* One read of the header into our memory: the producer may
		 * write the slot under us, and then hurts only itself. */
		memcpy(&hdr, rec, sizeof(hdr));
		if (!route(b, s, p, &hdr, seq, (const uint8_t *)(rec + 1))) {
			p->stalled = true;
			stat_add(&p->st->stalls, 1);
			break;
		}
		if (hdr.game != p->last_game) {
			p->last_game = hdr.game;
			stat_add(&p->st->games_seen, 1);
			stat_set(&p->st->last_game, hdr.game);
		}
		taken++;
	}
	/* A producer asleep on a full ring is woken once half of it is free,
	 * not at the first free slot: it then writes many records per
	 * wakeup instead of one. Its flag stays up until then, and the ring
	 * drains to that level unless a lossless subscriber holds it back, in
	 * which case there is nothing to wake it for. */
	if (taken && ring_consumer_release(&p->ring, taken) &&
	    ring_consumer_cached_fill(&p->ring) <= p->ring.capacity / 2) {
		uint64_t one = 1;
		(void)!write(p->space_fd, &one, sizeof(one));
	}
	stat_add(&p->st->records_in, taken);
	stat_add(&s->st->records_in, taken);
	stat_set(&p->st->head, p->ring.pos);
	stat_set(&p->st->tail_seen, p->ring.cached);
	return taken;
}

void merge_refresh_tails(struct broker *b)
{
	for (int i = 0; i < STATS_MAX_STREAMS; i++) {
		struct stream *s = b->streams[i];
		if (!s)
			continue;
		for (uint32_t j = 0; j < s->n_producers; j++) {
			struct producer *p = s->producers[j];
			if (p->broken)
				continue;
			/* Asking for more than a ring forces a fresh, validated
			 * load of the tail; the data path only reloads it when
			 * what it cached runs short. */
			if (ring_consumer_ready(&p->ring, 0, UINT64_MAX) < 0) {
				producer_violation(b, p);
				continue;
			}
			stat_set(&p->st->tail_seen, p->ring.cached);
		}
	}
}

static uint32_t pump_stream(struct broker *b, struct stream *s)
{
	uint32_t work = 0, n = s->n_producers;

	s->stalled = false;
	if (s->hold_until_ns) {
		if ((!s->n_subs && !s->n_groups) &&
		    b->now_ns < s->hold_until_ns) {
			s->stalled = true; /* the loop wakes within 200 ms */
			return 0;
		}
		s->hold_until_ns = 0;
	}
	for (uint32_t i = 0; i < s->n_groups; i++) {
		if (!group_drain_orphans(b, s->groups[i])) {
			s->stalled = true;
			return 0;
		}
	}
	stream_prune_groups(b, s);
	for (uint32_t k = 0; k < n; k++) {
		struct producer *p = s->producers[(s->rr + k) % n];
		if (!p->broken)
			work += pump_producer(b, s, p);
	}
	if (n)
		s->rr = (s->rr + 1) % n;
	return work;
}

int merge_pump(struct broker *b)
{
	uint32_t work = 0;

	for (int i = 0; i < STATS_MAX_STREAMS; i++)
		if (b->streams[i])
			work += pump_stream(b, b->streams[i]);
	return (int)work;
}

struct flush_pass {
	struct broker *b;
	uint64_t now;
	uint64_t next; /* earliest deadline still to come */
	bool all;      /* shutting down: publish every partial batch */
};

static void flush_one(struct subscription *sub, void *arg)
{
	struct flush_pass *f = arg;
	uint64_t due;

	if (!sub->open || sub->dead)
		return;
	due = sub->open_since_ns + sub->max_delay_ns;
	if (f->all || f->now >= due)
		merge_publish(f->b, sub,
			      f->all ? EXPBUS_FLUSH_DRAIN
				     : EXPBUS_FLUSH_TIMEOUT);
	else if (due < f->next)
		f->next = due;
}

uint64_t merge_flush_due(struct broker *b, uint64_t now, bool all)
{
	struct flush_pass f = {
	    .b = b, .now = now, .next = UINT64_MAX, .all = all};

	stream_each_subscription(b, flush_one, &f);
	return f.next;
}
