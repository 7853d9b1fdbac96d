/* producer.c — producers: a new ring or the adoption of one a previous
 * broker handed out, and freeing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "doorbell.h"
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
	uint32_t id;
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
	/* Read once: the producer can write its header. */
	id = *(volatile uint32_t *)&seg->producer_id;
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
	    tail - head > seg->capacity || id == 0) {
		shm_unmap(addr, size);
		snprintf(err, errlen,
			 "the ring to resume does not match its "
			 "stream's schema or layout, or its counters "
			 "are impossible");
		return -EINVAL;
	}
	/* The ring keeps its producer id across brokers (issue 9): readers
	 * drop the (id, seq) they already delivered. */
	p->id = id;
	if (id > b->next_producer_id)
		b->next_producer_id = id;
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

static void producer_unmap(struct broker *b, struct producer *p)
{
	doorbell_close(b, p->doorbell);
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
	p->active_at = NOT_ACTIVE;
	p->space_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	/* Room in the active set for every producer: activating never
	 * fails. */
	if (b->cap_active <= b->n_producers) {
		uint32_t more = b->cap_active ? b->cap_active * 2 : 64;
		struct producer **a = realloc(b->active, sizeof(*a) * more);
		if (!a) {
			snprintf(err, errlen, "broker out of memory");
			producer_unmap(b, p);
			return -ENOMEM;
		}
		b->active = a;
		b->cap_active = more;
	}
	p->doorbell = doorbell_new(b, DOORBELL_PRODUCER, p);
	if (!p->doorbell) {
		e = -errno;
		snprintf(err, errlen, "eventfd: %s", strerror(-e));
		producer_unmap(b, p);
		return e;
	}
	if (p->space_fd >= 0 && resume_fd >= 0) {
		e = adopt_ring(b, s, resume_fd, p, err, errlen);
		if (e < 0) {
			producer_unmap(b, p);
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
		producer_unmap(b, p);
		return e;
	}
	b->n_producers++;
	*out = p;
	return 0;
}

void producer_free(struct broker *b, struct producer *p)
{
	producer_deactivate(b, p);
	b->n_producers--;
	stream_remove_producer(p->stream, p);
	stats_forget_producer(b, p);
	log_info(b, "producer %u freed after %llu records", p->id,
		 (unsigned long long)p->ring.pos);
	producer_unmap(b, p);
}

void producer_activate(struct broker *b, struct producer *p)
{
	if (p->active_at != NOT_ACTIVE)
		return;
	/* Its flag down first: while it is active the producer need not
	 * ring (the broker looks at its ring every pass). */
	ring_consumer_sleep_done(&p->ring);
	p->active_at = b->n_active;
	b->active[b->n_active++] = p;
	p->news_ns = b->now_ns;
}

void producer_deactivate(struct broker *b, struct producer *p)
{
	uint32_t i = p->active_at;

	if (i == NOT_ACTIVE)
		return;
	b->active[i] = b->active[--b->n_active];
	b->active[i]->active_at = i;
	p->active_at = NOT_ACTIVE;
}

bool producer_park(struct broker *b, struct producer *p)
{
	/* The sleeper half of ring.c's protocol, per ring: flag up, fence,
	 * look at the tail once more. A commit after that look sees the flag
	 * and rings the doorbell. */
	if (ring_consumer_prepare_sleep(&p->ring, 0) != 0) {
		/* News after all (or an impossible tail, which the data path
		 * reports): stay active, flag down. */
		ring_consumer_sleep_done(&p->ring);
		return false;
	}
	producer_deactivate(b, p);
	return true;
}
