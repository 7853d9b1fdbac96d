/* consumer.c — the consumer side of libexpbus: subscribe, then read
 * columnar batches in place from a read-only batch ring and release them
 * through the release page. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "ring.h"
#include "schema.h"
#include "shm.h"

struct expbus_consumer {
	struct expbus *bus;
	int sock;
	int event_fd; /* ours: the broker writes it when we sleep */
	int wake_fd;  /* broker's: written when it waits for our release */
	const struct batch_ring *seg; /* read-only */
	size_t seg_size;
	struct release_page *rel;
	struct ring ring;
	uint64_t held; /* batches handed out past ring.pos, not released */
	uint64_t dropped;
	char schema[SCHEMA_TEXT_MAX];
};

static int bad_segment(struct expbus_consumer *c, const char *what)
{
	return client_fail(c->bus, -EPROTO,
			   "the batch ring from the broker is invalid: %s",
			   what);
}

static int check_columns(struct expbus_consumer *c)
{
	const struct batch_ring *s = c->seg;

	if (s->ncolumns < HEADER_COLUMNS || s->ncolumns > MAX_COLUMNS)
		return bad_segment(c, "column count");
	for (uint32_t i = 0; i < s->ncolumns; i++) {
		const struct column_desc *d = &s->columns[i];
		if (strnlen(d->name, NAME_MAX_LEN) == NAME_MAX_LEN ||
		    !expbus_dtype_size(d->dtype) || d->ndim > EXPBUS_MAX_DIMS ||
		    d->offset % 64 || d->offset < sizeof(struct expbus_batch) ||
		    d->offset + (uint64_t)d->elem_size * s->batch_size >
			s->slot_size)
			return bad_segment(c, "column table");
	}
	return 0;
}

static int map_segments(struct expbus_consumer *c,
			const struct msg_ok_subscribe *ok, int batch_fd,
			int rel_fd)
{
	const struct batch_ring *s;
	void *addr;
	int err;

	err = shm_check(batch_fd, ok->segment_size, ok->segment_size,
			SHM_SEALS_READONLY, NULL);
	if (err == 0)
		err = shm_check(rel_fd, RELEASE_PAGE_SIZE, RELEASE_PAGE_SIZE,
				SHM_SEALS_SHARED, NULL);
	if (err < 0)
		return bad_segment(c,
				   "not a sealed memfd of the announced size");
	err = shm_map(batch_fd, ok->segment_size, 0, &addr);
	if (err < 0)
		return client_fail(c->bus, err, "mapping the batch ring: %s",
				   strerror(-err));
	c->seg = s = addr;
	c->seg_size = ok->segment_size;
	err = shm_map(rel_fd, RELEASE_PAGE_SIZE, 1, &addr);
	if (err < 0)
		return client_fail(c->bus, err, "mapping the release page: %s",
				   strerror(-err));
	c->rel = addr;
	if (s->seg.magic != MAGIC_BATCH_RING ||
	    s->seg.version != LAYOUT_VERSION)
		return client_fail(
		    c->bus, -EPROTO,
		    "batch ring layout version %u is not the %u this "
		    "library reads",
		    s->seg.version, LAYOUT_VERSION);
	if (c->rel->seg.magic != MAGIC_RELEASE_PAGE ||
	    c->rel->seg.version != LAYOUT_VERSION)
		return bad_segment(c, "release page header");
	if (s->seg.size != c->seg_size || s->capacity == 0 ||
	    (s->capacity & (s->capacity - 1)) || s->capacity != ok->capacity ||
	    s->batch_size != ok->batch_size || s->batch_size == 0 ||
	    s->slot_size % 64 || s->data_offset % 4096 ||
	    s->data_offset < sizeof(*s) ||
	    s->data_offset + (uint64_t)s->capacity * s->slot_size > c->seg_size)
		return bad_segment(c, "geometry");
	err = check_columns(c);
	if (err < 0)
		return err;
	/* The ring's producer side is read-only to us: only the consumer
	 * view's loads touch it; the sleeping flag we raise is in rel. */
	ring_init_consumer(&c->ring, (struct ring_side *)&s->prod,
			   &c->rel->cons, (uint8_t *)s + s->data_offset,
			   s->slot_size, s->capacity);
	return 0;
}

static size_t filter_copy(uint32_t *dst, const uint32_t *src, uint32_t n)
{
	if (n)
		memcpy(dst, src, sizeof(*dst) * n);
	return sizeof(*dst) * n;
}

int expbus_subscribe(struct expbus *bus, const char *stream,
		     const struct expbus_subscribe_options *opts,
		     struct expbus_consumer **ret)
{
	static const struct expbus_subscribe_options defaults;
	struct {
		struct msg_subscribe m;
		uint32_t ids[2 * PROTO_MAX_FILTER];
	} req;
	struct {
		struct msg_ok_subscribe m;
		char text[SCHEMA_TEXT_MAX];
	} ok;
	struct expbus_consumer *c;
	int fds[4] = {-1, -1, -1, -1}, err;
	size_t len;
	ssize_t n;

	if (!opts)
		opts = &defaults;
	if (!stream || strlen(stream) >= NAME_MAX_LEN)
		return client_fail(bus, -EINVAL,
				   "stream name must be 1 to %d characters",
				   NAME_MAX_LEN - 1);
	if (opts->group && strlen(opts->group) >= NAME_MAX_LEN)
		return client_fail(
		    bus, -EINVAL,
		    "group name must be shorter than %d characters",
		    NAME_MAX_LEN);
	if (opts->n_games > PROTO_MAX_FILTER ||
	    opts->n_players > PROTO_MAX_FILTER)
		return client_fail(
		    bus, -EINVAL,
		    "a filter may list at most %d game or player ids",
		    PROTO_MAX_FILTER);
	memset(&req.m, 0, sizeof(req.m));
	strcpy(req.m.stream, stream);
	if (opts->group)
		strcpy(req.m.group, opts->group);
	req.m.batch_size = opts->batch_size;
	req.m.max_delay_us = opts->max_delay_us;
	req.m.batch_slots = opts->batch_slots;
	req.m.policy = (uint32_t)opts->policy;
	req.m.min_turn = opts->min_turn;
	req.m.flags = opts->flags;
	req.m.n_games = opts->games ? opts->n_games : 0;
	req.m.n_players = opts->players ? opts->n_players : 0;
	len = sizeof(req.m);
	len += filter_copy(req.ids, opts->games, req.m.n_games);
	len += filter_copy(req.ids + req.m.n_games, opts->players,
			   req.m.n_players);
	proto_header(&req.m.h, MSG_SUBSCRIBE, len);

	c = calloc(1, sizeof(*c));
	if (!c)
		return client_fail(bus, -ENOMEM, "out of memory");
	c->bus = bus;
	c->sock = c->event_fd = c->wake_fd = -1;
	err = c->sock = client_connect(bus);
	if (err < 0)
		goto fail;
	n = client_request(bus, c->sock, &req, len, MSG_OK_SUBSCRIBE, &ok,
			   sizeof(ok), fds, 4);
	if (n < 0) {
		err = (int)n;
		goto fail;
	}
	c->event_fd = fds[2];
	c->wake_fd = fds[3];
	if ((size_t)n != sizeof(ok.m) + ok.m.schema_len ||
	    ok.m.schema_len >= sizeof(c->schema)) {
		err = client_fail(bus, -EPROTO, "malformed subscribe reply");
	} else {
		memcpy(c->schema, ok.text, ok.m.schema_len);
		c->schema[ok.m.schema_len] = '\0';
		err = map_segments(c, &ok.m, fds[0], fds[1]);
	}
	(void)close(fds[0]);
	(void)close(fds[1]);
	if (err < 0)
		goto fail;
	bus->error[0] = '\0';
	*ret = c;
	return 0;
fail:
	expbus_consumer_close(c);
	return err;
}

struct expbus_consumer *expbus_consumer_close(struct expbus_consumer *c)
{
	if (!c)
		return NULL;
	shm_unmap((void *)c->seg, c->seg_size);
	shm_unmap(c->rel, RELEASE_PAGE_SIZE);
	if (c->sock >= 0)
		(void)close(c->sock);
	if (c->event_fd >= 0)
		(void)close(c->event_fd);
	if (c->wake_fd >= 0)
		(void)close(c->wake_fd);
	free(c);
	return NULL;
}

const char *expbus_consumer_schema(const struct expbus_consumer *c)
{
	return c->schema;
}

uint64_t expbus_consumer_dropped(const struct expbus_consumer *c)
{
	/* Relaxed: a counter read on its own, for information only. */
	uint64_t now =
	    atomic_load_explicit(&c->seg->dropped, memory_order_relaxed);

	return now > c->dropped ? now : c->dropped;
}

static int ring_broken(struct expbus_consumer *c)
{
	return client_fail(c->bus, -EPROTO,
			   "the batch ring's tail counter is impossible");
}

/* Waits for a batch (client_ring_sleep; ring.c explains why no wakeup is
 * lost). */
static int wait_for_batch(struct expbus_consumer *c, int timeout_ms)
{
	uint64_t deadline = client_deadline(timeout_ms);

	for (;;) {
		int r = client_ring_sleep(&c->ring, 0, c->held, c->event_fd,
					  c->sock, deadline);
		if (r == 0)
			continue;
		if (r != -EPIPE)
			return r; /* -EINTR too: let the caller see signals */
		/* Batches already published stay readable. */
		r = ring_consumer_ready(&c->ring, c->held, 1);
		if (r != 0)
			return r;
		return client_fail(c->bus, -EPIPE, "the broker has gone away");
	}
}

int expbus_next_batch(struct expbus_consumer *c, int timeout_ms,
		      const struct expbus_batch **batch)
{
	const struct expbus_batch *b;
	int got;

	got = ring_consumer_ready(&c->ring, c->held, 1);
	if (got == 0 && timeout_ms != 0)
		got = wait_for_batch(c, timeout_ms);
	if (got == 0)
		return -EAGAIN;
	if (got == -EPROTO)
		return ring_broken(c);
	if (got < 0)
		return got;
	b = ring_slot(&c->ring, c->ring.pos + c->held);
	if (b->count > c->seg->batch_size)
		return client_fail(c->bus, -EPROTO,
				   "batch %llu claims %u records, more than %u",
				   (unsigned long long)b->seq, b->count,
				   c->seg->batch_size);
	c->held++;
	c->dropped = b->dropped_total;
	*batch = b;
	return 0;
}

int expbus_release(struct expbus_consumer *c, const struct expbus_batch *batch)
{
	uint64_t idx, pos;

	if ((const uint8_t *)batch < c->ring.slots)
		return -EINVAL;
	idx = (uint64_t)((const uint8_t *)batch - c->ring.slots);
	if (idx % c->ring.slot_size ||
	    idx / c->ring.slot_size >= c->ring.capacity)
		return -EINVAL;
	idx /= c->ring.slot_size;
	/* The held batches are ring.pos .. ring.pos + held - 1. */
	for (pos = c->ring.pos; pos < c->ring.pos + c->held; pos++)
		if ((pos & c->ring.mask) == idx)
			break;
	if (pos == c->ring.pos + c->held)
		return client_fail(
		    c->bus, -EINVAL,
		    "that batch is not held (already released?)");
	c->held -= pos - c->ring.pos + 1;
	if (ring_consumer_release(&c->ring, pos - c->ring.pos + 1)) {
		uint64_t one = 1;
		/* Nothing to do on failure: the broker also wakes on a timer.
		 */
		(void)!write(c->wake_fd, &one, sizeof(one));
	}
	return 0;
}

int expbus_consumer_columns(const struct expbus_consumer *c)
{
	return (int)c->seg->ncolumns;
}

const char *expbus_consumer_column_name(const struct expbus_consumer *c, int i)
{
	if (i < 0 || (uint32_t)i >= c->seg->ncolumns)
		return NULL;
	return c->seg->columns[i].name;
}

int expbus_batch_column_at(const struct expbus_consumer *c,
			   const struct expbus_batch *batch, int i,
			   struct expbus_column *col)
{
	const struct column_desc *d;

	if (i < 0 || (uint32_t)i >= c->seg->ncolumns)
		return -ENOENT;
	d = &c->seg->columns[i];
	col->data = (const uint8_t *)batch + d->offset;
	col->dtype = (enum expbus_dtype)d->dtype;
	col->ndim = d->ndim;
	memcpy(col->shape, d->shape, sizeof(col->shape));
	col->elem_size = d->elem_size;
	col->count = batch->count;
	return 0;
}

int expbus_batch_column(const struct expbus_consumer *c,
			const struct expbus_batch *batch, const char *name,
			struct expbus_column *col)
{
	for (uint32_t i = 0; i < c->seg->ncolumns; i++)
		if (strcmp(c->seg->columns[i].name, name) == 0)
			return expbus_batch_column_at(c, batch, (int)i, col);
	return -ENOENT;
}
