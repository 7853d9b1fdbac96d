/* producer.c — producers: a new ring or the adoption of one a previous
 * broker handed out, and freeing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "producer.h"
#include "segments.h"
#include "shm.h"
#include "stats.h"
#include "stream.h"

uint32_t producer_default_slots(struct broker *b, const struct schema *s)
{
	uint64_t slot =
	    align_up(sizeof(struct expbus_record_header) + s->data_size, 8);
	uint64_t n = b->cfg.ring_bytes / slot, p = MIN_RING_SLOTS;

	while (p * 2 <= n && p * 2 <= 65536)
		p *= 2;
	return (uint32_t)p;
}

/* Takes over a ring that a previous broker gave this producer: the records
 * it committed and that broker never took are delivered from here. The
 * segment is checked like any received fd, and its header like any counter
 * a peer can write. Returns 0, or -errno with the reason in err. */
static int adopt_ring(struct broker *b, struct stream *s, int fd,
		      struct producer *p, char *err, size_t errlen)
{
	uint64_t slot = align_up(
	    sizeof(struct expbus_record_header) + s->schema.data_size, 8);
	struct producer_ring *seg;
	uint64_t head, tail;
	size_t size;
	void *addr;
	int e;

	e = shm_check(fd, PRODUCER_RING_DATA_OFFSET, b->cfg.max_segment,
		      SHM_SEALS_SHARED, &size);
	if (e < 0) {
		snprintf(err, errlen,
			 "the ring to resume is not a sealed memfd "
			 "of at most %llu bytes",
			 (unsigned long long)b->cfg.max_segment);
		return e;
	}
	e = shm_map(fd, size, 1, &addr);
	if (e < 0) {
		snprintf(err, errlen, "cannot map the ring to resume: %s",
			 strerror(-e));
		return e;
	}
	seg = addr;
	head = atomic_load_explicit(&seg->cons.pos, memory_order_relaxed);
	/* Acquire: the producer's records up to tail are written. */
	tail = atomic_load_explicit(&seg->prod.pos, memory_order_acquire);
	if (seg->seg.magic != MAGIC_PRODUCER_RING ||
	    seg->seg.version != LAYOUT_VERSION || seg->seg.size != size ||
	    seg->capacity < MIN_RING_SLOTS || seg->capacity > MAX_RING_SLOTS ||
	    (seg->capacity & (seg->capacity - 1)) || seg->slot_size != slot ||
	    seg->data_size != s->schema.data_size ||
	    seg->schema_hash != s->schema.hash ||
	    seg->data_offset != PRODUCER_RING_DATA_OFFSET ||
	    PRODUCER_RING_DATA_OFFSET + (uint64_t)seg->capacity * slot > size ||
	    tail - head > seg->capacity) {
		shm_unmap(addr, size);
		snprintf(err, errlen,
			 "the ring to resume does not match its "
			 "stream's schema or layout, or its counters "
			 "are impossible");
		return -EINVAL;
	}
	seg->producer_id = p->id;
	p->seg = seg;
	p->seg_size = size;
	ring_init_consumer(&p->ring, &seg->prod, &seg->cons,
			   (uint8_t *)seg + seg->data_offset, slot,
			   seg->capacity);
	log_info(b,
		 "producer %u resumes a ring with %llu records not yet taken "
		 "(from %llu)",
		 p->id, (unsigned long long)(tail - head),
		 (unsigned long long)head);
	return 0;
}

static void producer_unmap(struct producer *p)
{
	if (p->seg)
		shm_unmap(p->seg, p->seg_size);
	if (p->space_fd >= 0)
		(void)close(p->space_fd);
	free(p);
}

int producer_new(struct broker *b, struct stream *s, uint32_t cap,
		 int resume_fd, struct producer **out, int *ring_fd, char *err,
		 size_t errlen)
{
	struct producer *p = calloc(1, sizeof(*p));
	int e;

	*ring_fd = -1;
	if (!p) {
		snprintf(err, errlen, "broker out of memory");
		return -ENOMEM;
	}
	p->id = ++b->next_producer_id;
	p->stream = s;
	p->space_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->space_fd >= 0 && resume_fd >= 0) {
		e = adopt_ring(b, s, resume_fd, p, err, errlen);
		if (e < 0) {
			producer_unmap(p);
			return e;
		}
		*ring_fd = dup(resume_fd);
		cap = p->seg->capacity;
		e = *ring_fd < 0 ? -errno : 0;
	} else {
		e = p->space_fd < 0
			? -errno
			: segment_producer_ring(b, s, cap, p, ring_fd);
	}
	if (e < 0) {
		snprintf(err, errlen,
			 "cannot create a ring of %u records: %s%s", cap,
			 strerror(-e),
			 e == -EFBIG ? " (larger than --max-segment; "
				       "use fewer ring_slots)"
				     : "");
		if (*ring_fd >= 0)
			(void)close(*ring_fd);
		*ring_fd = -1;
		producer_unmap(p);
		return e;
	}
	*out = p;
	return 0;
}

void producer_free(struct broker *b, struct producer *p)
{
	stream_remove_producer(p->stream, p);
	if (p->st)
		p->st->in_use = 0;
	log_info(b, "producer %u freed after %llu records", p->id,
		 (unsigned long long)p->ring.pos);
	producer_unmap(p);
}
