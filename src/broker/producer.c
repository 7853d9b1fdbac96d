/* producer.c — producers: a new ring or the adoption of one a previous
 * broker handed out, freeing, and the states of a ring for the data path:
 * active (visited every pass), parked on the ready set (RING_READY: its
 * bit tells), parked (flag 1: its doorbell tells). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "doorbell.h"
#include "hold.h"
#include "producer.h"
#include "ready.h"
#include "ring_check.h"
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

/* The producer whose ring is the memfd (dev, ino), or NULL: a ring has
 * one producer, and one still draining counts. */
static struct producer *ring_owner(struct broker *b, dev_t dev, ino_t ino)
{
	for (int i = 0; i < STATS_MAX_STREAMS; i++) {
		struct stream *s = b->streams[i];

		for (uint32_t j = 0; s && j < s->n_producers; j++)
			if (s->producers[j]->ring_ino == ino &&
			    s->producers[j]->ring_dev == dev)
				return s->producers[j];
	}
	return NULL;
}

/* Whether a producer of this broker has id (one still draining counts). */
static bool id_live(struct broker *b, uint32_t id)
{
	for (int i = 0; i < STATS_MAX_STREAMS; i++) {
		struct stream *s = b->streams[i];

		for (uint32_t j = 0; s && j < s->n_producers; j++)
			if (s->producers[j]->id == id)
				return true;
	}
	return false;
}

/* The id of a new ring: the low 32 bits of its memfd's inode number. The
 * kernel numbers shmem inodes (memfds, SysV shm, shared anonymous maps)
 * from one counter that only grows, so the id differs from that of every
 * ring still alive - a ring whose game waits to hand it to a broker that
 * is not there yet included - and from every id readers have seen, until
 * that counter has gone 2^32 further (docs/protocol.md, Recovery). A live
 * id (only after such a wrap, or from a ring of an older broker) or 0
 * moves on to the next free id. */
static uint32_t fresh_id(struct broker *b, ino_t ino)
{
	uint32_t id = (uint32_t)ino;

	while (id == 0 || id_live(b, id))
		id++;
	return id;
}

/* Takes over a ring that a previous broker gave this producer: the records
 * it committed and that broker never took are delivered from here. The
 * segment is checked like any received fd; its header is read once into
 * broker memory (ring_copy_read), checked (ring_copy_check), and only that
 * copy is used, since the producer may change the header at any moment.
 * Returns 0, or -errno with the reason in err. */
static int adopt_ring(struct broker *b, struct stream *s, int fd,
		      struct producer *p, char *err, size_t errlen)
{
	struct ring_expect want = {
	    .slot_size = (uint32_t)align_up(
		sizeof(struct expbus_record_header) + s->schema.data_size, 8),
	    .data_size = s->schema.data_size,
	    .schema_hash = s->schema.hash,
	    .min_slots = MIN_RING_SLOTS,
	    .max_slots = MAX_RING_SLOTS,
	};
	struct producer *owner;
	struct producer_ring *seg;
	struct ring_copy copy;
	struct stat st;
	uint32_t subs;
	size_t size;
	void *addr;
	int e;

	e = shm_check(fd, PRODUCER_RING_DATA_OFFSET, b->cfg.max_segment,
		      SHM_SEALS_SHARED, &size);
	if (e < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen,
			 "the ring to resume is not a sealed memfd "
			 "of at most %llu bytes",
			 (unsigned long long)b->cfg.max_segment);
		return e < 0 ? e : -EBADF;
	}
	owner = ring_owner(b, st.st_dev, st.st_ino);
	if (owner) {
		snprintf(err, errlen,
			 "the ring to resume is already the live ring of "
			 "producer %u%s: a ring has one producer",
			 owner->id, owner->dead ? " (still draining)" : "");
		return -EBUSY;
	}
	e = budget_charge(&b->budget, size, "the ring to resume", err, errlen);
	if (e < 0)
		return e;
	p->budget_bytes = size;
	e = shm_map(fd, size, 1, &addr);
	if (e < 0) {
		snprintf(err, errlen, "cannot map the ring to resume: %s",
			 strerror(-e));
		return e;
	}
	seg = addr;
	want.seg_size = size;
	ring_copy_read(&copy, seg);
	e = ring_copy_check(&copy, &want, err, errlen);
	if (e < 0) {
		shm_unmap(addr, size);
		return e;
	}
	/* The ring keeps its producer id across brokers (issue 9): readers
	 * drop the (id, seq) they already delivered. So an id that is live
	 * here is refused: its records would pass for the other's. */
	if (id_live(b, copy.producer_id)) {
		snprintf(err, errlen,
			 "the ring to resume names producer id %u, which is "
			 "another live producer's",
			 copy.producer_id);
		shm_unmap(addr, size);
		return -EBUSY;
	}
	p->id = copy.producer_id;
	/* The subscriptions its stream had with the broker that wrote
	 * this: the stream waits for them (stream.c). Read once and
	 * clamped; anyone with the ring can write it, which only makes the
	 * wait longer, up to --resume-hold-ms. Relaxed: no data hangs on it
	 * (stream_note_subscriptions stores it). */
	subs = atomic_load_explicit(&seg->subscriptions, memory_order_relaxed);
	if (subs > STATS_MAX_SUBS)
		subs = STATS_MAX_SUBS;
	if (subs > s->subs_before)
		s->subs_before = subs;
	p->seg = seg;
	p->seg_size = size;
	p->ring_dev = st.st_dev;
	p->ring_ino = st.st_ino;
	/* Every parameter from the checked copy: the slots at the layout's
	 * offset, the stream's slot size, the copied capacity, and the
	 * copied counters rather than a second read of shared memory. */
	ring_init_consumer(&p->ring, &seg->prod, &seg->cons,
			   (uint8_t *)seg + PRODUCER_RING_DATA_OFFSET,
			   want.slot_size, copy.capacity);
	p->ring.pos = copy.head;
	p->ring.cached = copy.tail;
	log_info(b,
		 "producer %u resumes a ring with %llu records not yet taken "
		 "(from %llu)",
		 p->id, (unsigned long long)(copy.tail - copy.head),
		 (unsigned long long)copy.head);
	return 0;
}

/* Why a ring of cap slots is larger than --max-segment, in words that say
 * what to change: fewer slots only helps above the minimum. */
static void ring_too_big(struct broker *b, const struct stream *s, uint32_t cap,
			 char *err, size_t errlen)
{
	uint64_t slot = align_up(
	    sizeof(struct expbus_record_header) + s->schema.data_size, 8);
	uint64_t min = segment_producer_ring_size(s, MIN_RING_SLOTS);

	if (min > b->cfg.max_segment)
		snprintf(err, errlen,
			 "a record of %llu bytes is too large: even the "
			 "smallest ring (%u slots) takes %llu MiB, more than "
			 "the largest segment the broker allows (%llu MiB, "
			 "expbusd --max-segment); make the record smaller",
			 (unsigned long long)slot, MIN_RING_SLOTS,
			 (unsigned long long)(min >> 20),
			 (unsigned long long)(b->cfg.max_segment >> 20));
	else
		snprintf(err, errlen,
			 "a ring of %u slots of %llu bytes is larger than the "
			 "largest segment the broker allows (%llu MiB, expbusd "
			 "--max-segment); ask for fewer ring_slots (%u at "
			 "least)",
			 cap, (unsigned long long)slot,
			 (unsigned long long)(b->cfg.max_segment >> 20),
			 MIN_RING_SLOTS);
}

/* A new ring of cap slots for p, counted against the budget. */
static int new_ring(struct broker *b, struct stream *s, uint32_t cap,
		    struct producer *p, int *ring_fd, char *err, size_t errlen)
{
	uint64_t size = segment_producer_ring_size(s, cap);
	struct stat st;
	int e;

	if (size > b->cfg.max_segment) {
		ring_too_big(b, s, cap, err, errlen);
		return -EFBIG;
	}
	e = budget_charge(&b->budget, size, "a producer ring", err, errlen);
	if (e < 0)
		return e;
	p->budget_bytes = size;
	e = segment_producer_ring(b, s, cap, p, ring_fd);
	if (e < 0) {
		snprintf(err, errlen, "cannot create a ring of %u records: %s",
			 cap, strerror(-e));
		return e;
	}
	if (fstat(*ring_fd, &st) < 0) {
		e = -errno;
		snprintf(err, errlen, "fstat of a new ring: %s", strerror(-e));
		return e;
	}
	p->ring_dev = st.st_dev;
	p->ring_ino = st.st_ino;
	/* The header is the broker's to write until the reply hands the
	 * ring out: no one else has its fd yet. */
	p->id = fresh_id(b, st.st_ino);
	p->seg->producer_id = p->id;
	return 0;
}

static void producer_unmap(struct broker *b, struct producer *p)
{
	doorbell_close(b, p->doorbell);
	if (p->seg)
		shm_unmap(p->seg, p->seg_size);
	if (p->space_fd >= 0)
		(void)close(p->space_fd);
	budget_refund(&b->budget, p->budget_bytes);
	free(p->holds);
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
	p->stream = s; /* p->id: the ring's (adopt_ring, new_ring) */
	p->active_at = NOT_ACTIVE;
	p->space_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	/* Room in the active set for every producer: activating never
	 * fails. */
	if (b->cap_active <= b->n_producers) {
		uint32_t more = b->cap_active ? b->cap_active * 2 : 64;
		struct producer **a = realloc(b->active, sizeof(*a) * more);
		struct producer **m;

		if (a)
			b->active = a;
		m = a ? realloc(b->moved, sizeof(*m) * more) : NULL;
		if (!m) {
			snprintf(err, errlen, "broker out of memory");
			producer_unmap(b, p);
			return -ENOMEM;
		}
		b->moved = m;
		b->cap_active = more;
	}
	p->doorbell = doorbell_new(b, DOORBELL_PRODUCER, p);
	if (!p->doorbell || p->space_fd < 0) {
		e = -errno;
		snprintf(err, errlen, "eventfd: %s", strerror(-e));
	} else if (resume_fd >= 0) {
		e = adopt_ring(b, s, resume_fd, p, err, errlen);
		if (e == 0 && (*ring_fd = dup(resume_fd)) < 0) {
			e = -errno;
			snprintf(err, errlen, "dup: %s", strerror(-e));
		}
	} else {
		e = new_ring(b, s, cap, p, ring_fd, err, errlen);
	}
	if (e == 0 && hold_init(p) < 0) {
		snprintf(err, errlen, "broker out of memory");
		e = -ENOMEM;
	}
	if (e < 0) {
		if (*ring_fd >= 0)
			(void)close(*ring_fd);
		*ring_fd = -1;
		producer_unmap(b, p);
		return e;
	}
	p->taken = p->ring.pos;
	b->n_producers++;
	*out = p;
	return 0;
}

static void unlink_ready_parked(struct broker *b, struct producer *p)
{
	if (!p->ready_parked)
		return;
	if (p->parked_prev)
		p->parked_prev->parked_next = p->parked_next;
	else
		b->ready_parked_head = p->parked_next;
	if (p->parked_next)
		p->parked_next->parked_prev = p->parked_prev;
	else
		b->ready_parked_tail = p->parked_prev;
	p->parked_prev = p->parked_next = NULL;
	p->ready_parked = false;
}

void producer_free(struct broker *b, struct producer *p)
{
	producer_deactivate(b, p);
	unlink_ready_parked(b, p);
	ready_leave(b, p);
	hold_forget_producer(b, p);
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
	unlink_ready_parked(b, p);
	/* Its flag down first: while it is active the producer need not
	 * ring (the broker looks at its ring every pass). */
	ring_consumer_sleep_done(&p->ring);
	p->watching = 0;
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

/* The sleeper half of ring.c's protocol, per ring: flag up (1, or
 * RING_READY), fence, a last look at the tail (past what was taken).
 * Returns true when the ring may be parked: a commit after that look sees
 * the flag and rings the doorbell (or marks the ready set). With news
 * after all (or an impossible tail, which the data path reports), or a
 * producer waiting for batches we hold (its flag, looked at after ours:
 * ring.c), lowers the flag again and returns false. */
static bool flag_up(struct producer *p, uint32_t how)
{
	uint64_t skip = p->taken - p->ring.pos;
	int news = how == RING_READY
		       ? ring_consumer_prepare_ready(&p->ring, skip)
		       : ring_consumer_prepare_sleep(&p->ring, skip);

	p->watching = 0; /* its flag is `how` now, or 0 below */
	if (news != 0 || hold_blocks_producer(p)) {
		ring_consumer_sleep_done(&p->ring);
		return false;
	}
	return true;
}

bool producer_park(struct broker *b, struct producer *p)
{
	if (!flag_up(p, 1))
		return false;
	producer_deactivate(b, p);
	return true;
}

bool producer_ready_park(struct broker *b, struct producer *p)
{
	/* A commit after our look marks its bit in the ready set, which the
	 * next pass takes. */
	if (!flag_up(p, RING_READY))
		return false;
	producer_deactivate(b, p);
	p->ready_parked = true;
	p->parked_ns = b->now_ns;
	p->parked_prev = b->ready_parked_tail;
	p->parked_next = NULL;
	if (b->ready_parked_tail)
		b->ready_parked_tail->parked_next = p;
	else
		b->ready_parked_head = p;
	b->ready_parked_tail = p;
	return true;
}

void producer_ready_expire(struct broker *b, uint64_t before)
{
	struct producer *p;

	/* Oldest first: the list is in the order they were parked. */
	while ((p = b->ready_parked_head) && p->parked_ns < before) {
		unlink_ready_parked(b, p);
		/* Parked for good, unless it has news after all. */
		if (!flag_up(p, 1))
			producer_activate(b, p);
	}
}

void producer_ready_rang(struct broker *b, struct producer *p)
{
	/* A bit is a hint: only a ring parked on the ready set needs it (an
	 * active one is looked at anyway; one parked for good rings). */
	if (p->ready_parked)
		producer_activate(b, p);
}
