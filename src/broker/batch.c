/* batch.c — a subscription's batches: opened by the first record routed
 * to it, filled column by column, published when full or when their delay
 * is up, and the release counter read back to know which slots are free
 * again (and how late the subscriber is, for the stats). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "batch.h"
#include "clock.h"
#include "deadlines.h"
#include "hold.h"
#include "stats.h"
#include "stream.h"
#include "wake.h"

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
	b->reap_pending = true;
	return -EPROTO;
}

/* Counts the records of the batches released since we last looked and
 * notes when the oldest unreleased record arrived: the lag in the stats.
 * Must run before a released slot is published again, which overwrites
 * its note; ring.cached was validated (<= ring.pos) by whoever moved it. */
static void note_release(struct broker *b, struct subscription *sub)
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
	stats_touch_sub(b, sub);
}

int batch_check_release(struct broker *b, struct subscription *sub)
{
	int r = ring_producer_free(&sub->ring, 0, UINT64_MAX);

	if (r < 0)
		return release_violation(b, sub);
	note_release(b, sub);
	return r;
}

bool batch_has_room(struct broker *b, struct subscription *sub)
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

void batch_publish(struct broker *b, struct subscription *sub,
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
	note_release(b, sub); /* before this slot's note is overwritten */
	/* Its records hold their rings' heads no longer; the heads move at
	 * the next hold_release_heads, after the commit below. */
	hold_drop_open(b, sub);
	if (sub->notes) {
		sub->notes[sub->ring.pos & sub->ring.mask].since_ns =
		    sub->open_since_ns;
		sub->notes[sub->ring.pos & sub->ring.mask].count =
		    sub->open_count;
	}
	sub->open = NULL;
	deadline_remove(b, sub);
	/* Whether its subscriber was asleep: the loop's spin budget (loop.c)
	 * follows the last publish. (A subscriber has no ready set: any
	 * flag it raised, RING_READY too, asks for its eventfd.) */
	b->subscriber_asleep =
	    ring_producer_commit(&sub->ring, 1) != RING_WAKE_NONE;
	if (b->subscriber_asleep)
		wake_later(b, sub); /* at the end of this pass */
	stat_add(&sub->st->delivered, sub->open_count);
	stat_add(&sub->st->delivered_bytes,
		 (uint64_t)sub->record_bytes * sub->open_count);
	stat_add(&sub->st->batches[why], 1);
	stat_set(&sub->st->published, sub->ring.pos);
	stat_set(&sub->st->last_publish_ns, b->now_ns);
	stat_set(&sub->st->oldest_record_ns, 0);
	stat_set(&sub->st->open_records, 0);
	note_release(b, sub); /* the oldest unreleased may be this batch now */
}

/* When a batch opened now counts as opened: now, or with coalescing the
 * commit of its first record, which may have waited up to lag_ns in its
 * ring for the broker's tick. The stamp is the producer's (CLOCK_MONOTONIC
 * at commit, like broker_now): kept within [now - lag_ns, now], a stamp
 * from another clock or a lie moves the deadline by lag_ns at most. */
static uint64_t opened_since(const struct broker *b, uint64_t stamp)
{
	uint64_t t = stamp;

	if (!b->lag_ns || t > b->now_ns)
		return b->now_ns;
	if (b->now_ns - t > b->lag_ns)
		return b->now_ns - b->lag_ns;
	return t;
}

/* Opens a batch in sub's next slot; stamp: its first record's commit. */
static void open_batch(struct broker *b, struct subscription *sub,
		       uint64_t stamp)
{
	sub->open = ring_slot(&sub->ring, sub->ring.pos);
	sub->open_count = 0;
	sub->open_since_ns = opened_since(b, stamp);
	deadline_add(b, sub);
	stat_set(&sub->st->oldest_record_ns, b->now_ns);
	note_release(b, sub); /* this may be the oldest unreleased now */
}

void batch_deliver(struct broker *b, struct subscription *sub,
		   const struct expbus_record_header *hdr, uint64_t seq,
		   uint32_t source, struct producer *src, const uint8_t *data)
{
	const uint64_t *off = sub->col_offset;
	uint32_t i;
	uint8_t *slot;

	if (!sub->open)
		open_batch(b, sub, hdr->timestamp_ns);
	slot = sub->open;
	i = sub->open_count++;
	((uint64_t *)(slot + off[0]))[i] = seq;
	((uint64_t *)(slot + off[1]))[i] = hdr->timestamp_ns;
	((uint32_t *)(slot + off[2]))[i] = source;
	((uint32_t *)(slot + off[3]))[i] = hdr->game;
	((uint32_t *)(slot + off[4]))[i] = hdr->player;
	((uint32_t *)(slot + off[5]))[i] = hdr->turn;
	((uint32_t *)(slot + off[6]))[i] = hdr->flags;
	for (uint32_t f = 0; f < sub->n_plan; f++) {
		const struct copy_op *op = &sub->plan[f];
		uint8_t *dst = slot + op->dst + (uint64_t)i * op->size;
		const uint8_t *from = data + op->src;

		/* Constant sizes compile to plain moves; others call memcpy. */
		switch (op->size) {
		case 4:
			memcpy(dst, from, 4);
			break;
		case 8:
			memcpy(dst, from, 8);
			break;
		case 16:
			memcpy(dst, from, 16);
			break;
		case 32:
			memcpy(dst, from, 32);
			break;
		default:
			memcpy(dst, from, op->size);
		}
	}
	hold_take(sub, i, src, seq);
	if (sub->open_count == sub->batch_size)
		batch_publish(b, sub, EXPBUS_FLUSH_FULL);
}

uint32_t batch_room(struct broker *b, struct subscription *sub)
{
	if (sub->open)
		return sub->batch_size - sub->open_count;
	return batch_has_room(b, sub) ? sub->batch_size : 0;
}

/* k elements of size bytes, stride bytes apart in src, packed into dst.
 * Inlined into each case of gather_column with a constant size, where
 * each memcpy compiles to plain moves. */
static inline __attribute__((always_inline)) void
gather_elems(uint8_t *dst, const uint8_t *src, size_t stride, size_t size,
	     uint32_t k)
{
	for (uint32_t j = 0; j < k; j++)
		memcpy(dst + j * size, src + j * stride, size);
}

/* One field of a run of records into its column. */
static void gather_column(uint8_t *dst, const uint8_t *src, size_t stride,
			  uint32_t size, uint32_t k)
{
	switch (size) {
	case 4:
		gather_elems(dst, src, stride, 4, k);
		break;
	case 8:
		gather_elems(dst, src, stride, 8, k);
		break;
	case 16:
		gather_elems(dst, src, stride, 16, k);
		break;
	case 32:
		gather_elems(dst, src, stride, 32, k);
		break;
	case 64:
		gather_elems(dst, src, stride, 64, k);
		break;
	default:
		gather_elems(dst, src, stride, size, k);
	}
}

/* The run from p's ring into slot at index i. The ring's records are
 * contiguous (ring_consumer_ready stops at the end of its memory); the
 * producer may write them under us and then hurts only itself: each
 * header is read once, into our copy, and nothing is decided on the data.
 */
static void copy_from_ring(const struct subscription *sub, uint8_t *slot,
			   uint32_t i, const struct producer *p, uint64_t pos,
			   uint32_t k)
{
	const uint64_t *off = sub->col_offset;
	const uint8_t *rec = ring_slot(&p->ring, pos);
	size_t stride = p->ring.slot_size;
	uint64_t *seq = (uint64_t *)(slot + off[0]) + i;
	uint64_t *ts = (uint64_t *)(slot + off[1]) + i;
	uint32_t *source = (uint32_t *)(slot + off[2]) + i;
	uint32_t *game = (uint32_t *)(slot + off[3]) + i;
	uint32_t *player = (uint32_t *)(slot + off[4]) + i;
	uint32_t *turn = (uint32_t *)(slot + off[5]) + i;
	uint32_t *flags = (uint32_t *)(slot + off[6]) + i;

	for (uint32_t j = 0; j < k; j++) {
		struct expbus_record_header h;

		/* The records were written on another CPU: ask for a few
		 * ahead (within the run) while this one is copied. */
		if (j + 8 < k)
			__builtin_prefetch(rec + (j + 8) * stride);
		memcpy(&h, rec + j * stride, sizeof(h));
		seq[j] = pos + j;
		ts[j] = h.timestamp_ns;
		source[j] = p->id;
		game[j] = h.game;
		player[j] = h.player;
		turn[j] = h.turn;
		flags[j] = h.flags;
	}
	rec += sizeof(struct expbus_record_header);
	for (uint32_t f = 0; f < sub->n_plan; f++) {
		const struct copy_op *op = &sub->plan[f];

		gather_column(slot + op->dst + (uint64_t)i * op->size,
			      rec + op->src, stride, op->size, k);
	}
}

/* The run as another subscription's batch has it: a memcpy per column. */
static void copy_from_batch(const struct subscription *sub, uint8_t *slot,
			    uint32_t i, const struct run_copy *from, uint32_t k)
{
	for (uint32_t c = 0; c < sub->ncolumns; c++) {
		size_t size = sub->col_size[c];

		memcpy(slot + sub->col_offset[c] + i * size,
		       from->slot + from->sub->col_offset[c] + from->at * size,
		       size * k);
	}
}

void batch_take_run(struct broker *b, struct subscription *sub,
		    struct producer *p, uint64_t pos, uint32_t k,
		    struct run_copy *from)
{
	/* The slot the batch is (or will be) open in: filled first, opened
	 * after, with its first record's stamp from our copy. */
	uint8_t *slot =
	    sub->open ? sub->open : ring_slot(&sub->ring, sub->ring.pos);
	uint32_t i = sub->open ? sub->open_count : 0;

	if (from->sub) {
		copy_from_batch(sub, slot, i, from, k);
	} else {
		copy_from_ring(sub, slot, i, p, pos, k);
		*from = (struct run_copy){.sub = sub, .slot = slot, .at = i};
	}
	if (!sub->open)
		open_batch(b, sub,
			   ((const uint64_t *)(slot + sub->col_offset[1]))[0]);
	hold_take_run(sub, i, p, pos, k);
	sub->open_count += k;
	if (sub->open_count == sub->batch_size)
		batch_publish(b, sub, EXPBUS_FLUSH_FULL);
}

void batch_discard(struct broker *b, struct subscription *sub)
{
	hold_drop_open(b, sub);
	sub->open = NULL;
	deadline_remove(b, sub);
}

/* Shutting down: publish every partial batch. */
static void flush_drain(struct subscription *sub, void *arg)
{
	if (sub->open && !sub->dead)
		batch_publish(arg, sub, EXPBUS_FLUSH_DRAIN);
}

uint64_t batch_outstanding(struct broker *b, struct subscription *sub)
{
	uint64_t delivered, released;

	if (batch_check_release(b, sub) < 0)
		return UINT64_MAX;
	/* note_release (just run) counted the released batches' records. */
	delivered =
	    atomic_load_explicit(&sub->st->delivered, memory_order_relaxed);
	released = atomic_load_explicit(&sub->st->released_records,
					memory_order_relaxed);
	return delivered - released + (sub->open ? sub->open_count : 0);
}

void batch_dropped(struct broker *b, struct subscription *sub)
{
	batch_dropped_n(b, sub, 1);
}

void batch_dropped_n(struct broker *b, struct subscription *sub, uint64_t n)
{
	stats_touch_sub(b, sub);
	sub->dropped_total += n;
	stat_add(&sub->st->dropped[DROP_RING_FULL], n);
	/* Relaxed: a counter the subscriber reads on its own. */
	atomic_store_explicit(&sub->seg->dropped, sub->dropped_total,
			      memory_order_relaxed);
}

uint64_t batch_flush_due(struct broker *b, uint64_t now, bool all)
{
	struct subscription *sub;
	uint64_t due = UINT64_MAX;

	if (all) {
		stream_each_subscription(b, flush_drain, b);
		hold_release_heads(b);
		return UINT64_MAX;
	}
	/* Only the batches that are due, earliest first. */
	while ((sub = deadline_first(b, &due)) && due <= now) {
		if (sub->dead || !sub->open)
			deadline_remove(b, sub); /* a group hands it on */
		else
			batch_publish(b, sub, EXPBUS_FLUSH_TIMEOUT);
	}
	hold_release_heads(b);
	return sub ? due : UINT64_MAX;
}
