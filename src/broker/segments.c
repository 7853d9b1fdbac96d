/* segments.c — creating the broker's shared segments and writing their
 * headers: producer rings, batch rings with their release pages, ready
 * sets and the stats segment. Memory itself comes from shm.c. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "clock.h"
#include "segments.h"
#include "shm.h"

/* The broker touches at most this much of a new segment (shm_touch): its
 * loop serves every peer, and one page costs up to ~10 us on a guest with
 * shadow page tables, so a 1 GiB ring would hold every other ring back for
 * seconds. A client's own attach touches all of its ring: that delays only
 * itself. */
#define TOUCH_MAX ((uint64_t)4 << 20)

static uint64_t touch_len(uint64_t len)
{
	return len < TOUCH_MAX ? len : TOUCH_MAX;
}

static void seg_init(struct seg_header *h, uint32_t magic, size_t header,
		     size_t size)
{
	h->magic = magic;
	h->version = LAYOUT_VERSION;
	h->header_size = (uint16_t)(header > 0xffff ? 0xffff : header);
	h->size = size;
}

/* Creates, maps (writable, for the broker) and returns a segment; the seals
 * are added by the caller once the header is written. */
static int segment_new(const char *name, size_t size, void **addr)
{
	int fd = shm_create(name, size), err;

	if (fd < 0)
		return fd;
	err = shm_map(fd, size, 1, addr);
	if (err < 0) {
		(void)close(fd);
		return err;
	}
	return fd;
}

uint64_t segment_producer_ring_size(const struct stream *s, uint32_t capacity)
{
	uint64_t slot = align_up(
	    sizeof(struct expbus_record_header) + s->schema.data_size, 8);

	return align_up(PRODUCER_RING_DATA_OFFSET + capacity * slot, 4096);
}

int segment_producer_ring(struct broker *b, struct stream *s, uint32_t capacity,
			  struct producer *p, int *ring_fd)
{
	uint64_t slot = align_up(
	    sizeof(struct expbus_record_header) + s->schema.data_size, 8);
	uint64_t size = segment_producer_ring_size(s, capacity);
	struct producer_ring *seg;
	void *addr;
	int fd, err;

	if (size > b->cfg.max_segment)
		return -EFBIG;
	fd = segment_new("expbus-producer-ring", size, &addr);
	if (fd < 0)
		return fd;
	seg = addr;
	seg_init(&seg->seg, MAGIC_PRODUCER_RING, PRODUCER_RING_DATA_OFFSET,
		 size);
	seg->capacity = capacity;
	seg->slot_size = (uint32_t)slot;
	seg->data_size = s->schema.data_size;
	seg->producer_id = p->id;
	seg->schema_hash = s->schema.hash;
	seg->data_offset = PRODUCER_RING_DATA_OFFSET;
	/* We only read the records: a read of each page now, not in the
	 * ring's first lap (shm.h). */
	shm_touch((uint8_t *)seg + PRODUCER_RING_DATA_OFFSET,
		  touch_len(size - PRODUCER_RING_DATA_OFFSET), 0);
	err = shm_seal(fd, SHM_SEALS_SHARED);
	if (err < 0) {
		shm_unmap(addr, size);
		(void)close(fd);
		return err;
	}
	p->seg = seg;
	p->seg_size = size;
	ring_init_consumer(&p->ring, &seg->prod, &seg->cons,
			   (uint8_t *)seg + seg->data_offset, slot, capacity);
	*ring_fd = fd;
	return 0;
}

static void column(struct column_desc *d, const char *name,
		   enum expbus_dtype dtype, uint32_t ndim,
		   const uint32_t *shape)
{
	size_t n = expbus_dtype_size(dtype);

	snprintf(d->name, sizeof(d->name), "%s", name);
	d->dtype = dtype;
	d->ndim = ndim;
	for (uint32_t i = 0; i < ndim; i++) {
		d->shape[i] = shape[i];
		n *= shape[i];
	}
	d->elem_size = (uint32_t)n;
}

/* The column table: header columns first, then the schema's fields. */
static uint32_t columns(const struct schema *s, struct column_desc *cols)
{
	static const struct {
		const char *name;
		enum expbus_dtype dtype;
	} header[HEADER_COLUMNS] = {
	    {"seq", EXPBUS_DTYPE_U64},	  {"timestamp", EXPBUS_DTYPE_U64},
	    {"source", EXPBUS_DTYPE_U32}, {"game", EXPBUS_DTYPE_U32},
	    {"player", EXPBUS_DTYPE_U32}, {"turn", EXPBUS_DTYPE_U32},
	    {"flags", EXPBUS_DTYPE_U32},
	};
	uint32_t n = 0;

	for (int i = 0; i < HEADER_COLUMNS; i++)
		column(&cols[n++], header[i].name, header[i].dtype, 0, NULL);
	for (uint32_t i = 0; i < s->nfields; i++) {
		const struct schema_field *f = &s->fields[i];
		column(&cols[n++], f->name, f->dtype, f->ndim, f->shape);
	}
	return n;
}

static int release_page(struct subscription *sub, int *rel_fd)
{
	void *addr;
	int fd, err;

	fd = segment_new("expbus-release-page", RELEASE_PAGE_SIZE, &addr);
	if (fd < 0)
		return fd;
	sub->rel = addr;
	seg_init(&sub->rel->seg, MAGIC_RELEASE_PAGE, sizeof(*sub->rel),
		 RELEASE_PAGE_SIZE);
	err = shm_seal(fd, SHM_SEALS_SHARED);
	if (err < 0) {
		(void)close(fd);
		return err;
	}
	*rel_fd = fd;
	return 0;
}

int segment_batch_ring(struct broker *b, struct subscription *sub,
		       uint32_t capacity, int *batch_fd, int *rel_fd, char *err,
		       size_t errlen)
{
	struct column_desc cols[MAX_COLUMNS];
	uint64_t slot = sizeof(struct expbus_batch), size, data_offset;
	struct batch_ring *seg;
	uint32_t n = columns(&sub->stream->schema, cols);
	void *addr;
	int fd, e;

	for (uint32_t i = 0; i < n; i++) {
		cols[i].offset = slot;
		slot = align_up(
		    slot + (uint64_t)cols[i].elem_size * sub->batch_size, 64);
	}
	data_offset = align_up(sizeof(struct batch_ring), 4096);
	size = data_offset + capacity * slot;
	if (size > b->cfg.max_segment) {
		snprintf(err, errlen,
			 "the batch ring would take %llu MiB (%u batches of %u "
			 "records, %llu bytes each) but the broker allows %llu "
			 "MiB; lower batch_size or batch_slots",
			 (unsigned long long)(size >> 20), capacity,
			 sub->batch_size, (unsigned long long)slot,
			 (unsigned long long)(b->cfg.max_segment >> 20));
		return -EFBIG;
	}
	e = budget_charge(&b->budget, size + RELEASE_PAGE_SIZE,
			  "a batch ring and release page", err, errlen);
	if (e < 0)
		return e;
	sub->budget_bytes = size + RELEASE_PAGE_SIZE; /* subscription_free */
	fd = segment_new("expbus-batch-ring", size, &addr);
	if (fd < 0) {
		snprintf(err, errlen,
			 "cannot allocate %llu bytes of shared memory: %s",
			 (unsigned long long)size, strerror(-fd));
		return fd;
	}
	seg = addr;
	seg_init(&seg->seg, MAGIC_BATCH_RING, data_offset, size);
	seg->capacity = capacity;
	seg->batch_size = sub->batch_size;
	seg->slot_size = slot;
	seg->data_offset = data_offset;
	seg->schema_hash = sub->stream->schema.hash;
	seg->subscription_id = sub->id;
	seg->ncolumns = n;
	memcpy(seg->columns, cols, sizeof(cols[0]) * n);
	/* We write the batches, and nobody else has the ring yet (shm.h). */
	shm_touch((uint8_t *)seg + data_offset, touch_len(size - data_offset),
		  1);
	sub->seg = seg;
	sub->seg_size = size;
	sub->ncolumns = n;
	sub->record_bytes = 0;
	for (uint32_t i = 0; i < n; i++) {
		sub->col_offset[i] = cols[i].offset;
		sub->col_size[i] = cols[i].elem_size;
		sub->record_bytes += cols[i].elem_size;
	}
	sub->n_plan = sub->stream->schema.nfields;
	for (uint32_t f = 0; f < sub->n_plan; f++) {
		sub->plan[f].dst = cols[HEADER_COLUMNS + f].offset;
		sub->plan[f].src = sub->stream->schema.fields[f].offset;
		sub->plan[f].size = cols[HEADER_COLUMNS + f].elem_size;
	}
	/* FUTURE_WRITE after our own writable mmap: we keep writing, every
	 * other holder of the fd can only map it read-only. */
	e = shm_seal(fd, SHM_SEALS_READONLY);
	if (e == 0)
		e = release_page(sub, rel_fd);
	if (e < 0) {
		(void)close(fd);
		snprintf(err, errlen,
			 "cannot create the subscription's segments: %s",
			 strerror(-e));
		return e;
	}
	ring_init_producer(&sub->ring, &seg->prod, &sub->rel->cons,
			   (uint8_t *)seg + data_offset, slot, capacity);
	*batch_fd = fd;
	return 0;
}

int segment_ready_set(struct ready_set **out)
{
	void *addr;
	int fd, err;

	fd = segment_new("expbus-ready-set", READY_SET_SIZE, &addr);
	if (fd < 0)
		return fd;
	seg_init(&((struct ready_set *)addr)->seg, MAGIC_READY_SET,
		 offsetof(struct ready_set, words), READY_SET_SIZE);
	((struct ready_set *)addr)->bits = READY_BITS;
	err = shm_seal(fd, SHM_SEALS_SHARED);
	if (err < 0) {
		shm_unmap(addr, READY_SET_SIZE);
		(void)close(fd);
		return err;
	}
	*out = addr;
	return fd;
}

int segment_stats(struct broker *b)
{
	size_t size = align_up(sizeof(struct stats_segment), 4096);
	void *addr;
	int fd, err;

	fd = segment_new("expbus-stats", size, &addr);
	if (fd < 0)
		return fd;
	b->stats = addr;
	b->stats_size = size;
	b->stats_fd = fd;
	seg_init(&b->stats->seg, MAGIC_STATS, sizeof(struct stats_segment),
		 size);
	b->stats->max_streams = STATS_MAX_STREAMS;
	b->stats->max_producers = STATS_MAX_PRODUCERS;
	b->stats->max_subs = STATS_MAX_SUBS;
	b->stats->broker_pid = (uint32_t)getpid();
	b->stats->start_ns = broker_now();
	err = shm_seal(fd, SHM_SEALS_READONLY);
	return err;
}
