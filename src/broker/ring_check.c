/* ring_check.c — validating a handed-over producer ring: one read of its
 * shared header into broker memory, then checks on that copy alone. */
#include "ring_check.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>

void ring_copy_read(struct ring_copy *c, const struct producer_ring *seg)
{
	/* Plain fields through volatile: each is read exactly once, here,
	 * whatever the producer writes in the meantime. */
	const volatile struct producer_ring *v = seg;

	c->magic = v->seg.magic;
	c->version = v->seg.version;
	c->size = v->seg.size;
	c->capacity = v->capacity;
	c->slot_size = v->slot_size;
	c->data_size = v->data_size;
	c->schema_hash = v->schema_hash;
	c->data_offset = v->data_offset;
	c->producer_id = v->producer_id;
	/* Relaxed: the head is the broker's own counter (a previous broker's);
	 * nothing is read on the strength of it. */
	c->head = atomic_load_explicit((_Atomic uint64_t *)&seg->cons.pos,
				       memory_order_relaxed);
	/* Acquire: pairs with the producer's store-release of the tail in
	 * ring_producer_commit, so the records below it are written. */
	c->tail = atomic_load_explicit((_Atomic uint64_t *)&seg->prod.pos,
				       memory_order_acquire);
}

int ring_copy_check(const struct ring_copy *c, const struct ring_expect *want,
		    char *err, size_t errlen)
{
	if (c->magic != MAGIC_PRODUCER_RING || c->version != LAYOUT_VERSION) {
		snprintf(err, errlen,
			 "the ring to resume is not a producer ring of layout "
			 "version %u (magic 0x%08x, version %u)",
			 LAYOUT_VERSION, c->magic, c->version);
		return -EINVAL;
	}
	if (c->size != want->seg_size) {
		snprintf(err, errlen,
			 "the ring to resume says %" PRIu64
			 " bytes but its memfd has %" PRIu64,
			 c->size, want->seg_size);
		return -EINVAL;
	}
	if (c->capacity < want->min_slots || c->capacity > want->max_slots ||
	    (c->capacity & (c->capacity - 1))) {
		snprintf(err, errlen,
			 "the ring to resume has %u slots, not a power of two "
			 "from %u to %u",
			 c->capacity, want->min_slots, want->max_slots);
		return -EINVAL;
	}
	if (c->slot_size != want->slot_size ||
	    c->data_size != want->data_size ||
	    c->schema_hash != want->schema_hash) {
		snprintf(err, errlen,
			 "the ring to resume does not match its stream's "
			 "schema (slot %u bytes, data %u, hash %016" PRIx64
			 "; the stream has %u, %u, %016" PRIx64 ")",
			 c->slot_size, c->data_size, c->schema_hash,
			 want->slot_size, want->data_size, want->schema_hash);
		return -EINVAL;
	}
	/* capacity <= 2^24 and slot_size < 2^32: the product fits. */
	if (c->data_offset != PRODUCER_RING_DATA_OFFSET ||
	    PRODUCER_RING_DATA_OFFSET + (uint64_t)c->capacity * c->slot_size >
		want->seg_size) {
		snprintf(err, errlen,
			 "the ring to resume has %u slots of %u bytes from "
			 "offset %" PRIu64 ", which do not fit its %" PRIu64
			 " bytes",
			 c->capacity, c->slot_size, c->data_offset,
			 want->seg_size);
		return -EINVAL;
	}
	if (c->producer_id == 0) {
		snprintf(err, errlen,
			 "the ring to resume has producer id 0, which no "
			 "broker gives");
		return -EINVAL;
	}
	/* Free-running counters: tail - head wraps to a huge value when the
	 * tail is behind, so one comparison catches both ways. */
	if (c->tail - c->head > c->capacity) {
		snprintf(err, errlen,
			 "the ring to resume has impossible counters: tail "
			 "%" PRIu64 ", head %" PRIu64 ", %u slots",
			 c->tail, c->head, c->capacity);
		return -EINVAL;
	}
	return 0;
}
