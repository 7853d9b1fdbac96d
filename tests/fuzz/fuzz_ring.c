/* fuzz_ring.c — the handed-ring validator on any header a resuming
 * producer can forge: the input is a struct ring_copy and the stream's
 * expectations. Property: whatever ring_copy_check accepts is safe to
 * use as the broker uses it (slots inside the segment, counters at most a
 * ring apart, capacity a power of two), and a refusal says why. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "ring_check.h"

_Static_assert(sizeof(struct ring_copy) == 64, "seeds.py packs 64 bytes");
_Static_assert(sizeof(struct ring_expect) == 32, "seeds.py packs 32 bytes");

static void check(int ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ring_copy c;
	struct ring_expect want;
	char err[512];

	if (size < sizeof(c) + sizeof(want))
		return 0;
	memcpy(&c, data, sizeof(c));
	memcpy(&want, data + sizeof(c), sizeof(want));
	/* The broker's own limits, as peers.c passes them. */
	want.min_slots = 16;
	want.max_slots = 1u << 24;
	err[0] = '\0';
	if (ring_copy_check(&c, &want, err, sizeof(err)) < 0) {
		check(err[0] != '\0');
		return 0;
	}
	check(c.capacity >= 16 && (c.capacity & (c.capacity - 1)) == 0);
	check(c.data_offset == PRODUCER_RING_DATA_OFFSET);
	check(c.data_offset + (uint64_t)c.capacity * c.slot_size <=
	      want.seg_size);
	check(c.tail - c.head <= c.capacity);
	/* The last slot the broker may read ends inside the segment. */
	check(c.data_offset +
		  ((c.tail - 1) & (c.capacity - 1)) * (uint64_t)c.slot_size +
		  c.slot_size <=
	      want.seg_size);
	return 0;
}
