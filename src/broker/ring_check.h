/* ring_check.h — a producer ring handed over by a resuming producer: its
 * header copied out of shared memory once, field by field, and validated
 * as a pure function of that copy; only the copy is used afterwards. */
#ifndef EXPBUSD_RING_CHECK_H
#define EXPBUSD_RING_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "layout.h"

/* Every shared field of a producer ring's header, as read once. */
struct ring_copy {
	uint32_t magic;
	uint32_t version;
	uint64_t size;
	uint32_t capacity;
	uint32_t slot_size;
	uint32_t data_size;
	uint32_t producer_id; /* the ring's for life (layout 2); never 0 */
	uint64_t schema_hash;
	uint64_t data_offset;
	uint64_t head; /* cons.pos: records the previous broker took */
	uint64_t tail; /* prod.pos: records the producer committed */
};

/* What the ring must be for its stream, and what fstat said of its fd. */
struct ring_expect {
	uint64_t seg_size;
	uint32_t slot_size;
	uint32_t data_size;
	uint64_t schema_hash;
	uint32_t min_slots, max_slots;
};

/* Reads each shared field of seg once into c. The tail is read with
 * acquire (it pairs with the producer's store-release in
 * ring_producer_commit): the records below it are written. */
void ring_copy_read(struct ring_copy *c, const struct producer_ring *seg);

/* Whether c is a ring the broker can take over for want: magic, version,
 * sizes, a power-of-two capacity in bounds whose slots fit the segment,
 * the stream's slot layout and schema hash, and counters no more than a
 * ring apart. Returns 0, or -EINVAL with the first reason in err. Reads
 * nothing but its arguments. */
int ring_copy_check(const struct ring_copy *c, const struct ring_expect *want,
		    char *err, size_t errlen);

#endif
