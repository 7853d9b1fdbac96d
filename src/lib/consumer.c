/* consumer.c — the consumer side of libexpbus: subscribe, then read
 * columnar batches in place from a read-only batch ring and release them
 * through the release page. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "dedup.h"
#include "ring.h"
#include "schema.h"
#include "shm.h"

/* One subscription as one broker gave it: its segments, kept mapped while
 * the trainer holds batches of it, even after that broker is gone. */
struct generation {
	int sock;
	int event_fd; /* ours: the broker writes it when we sleep */
	int wake_fd;  /* broker's: written when it waits for our release */
	const struct batch_ring *seg; /* read-only */
	size_t seg_size;
	struct release_page *rel;
	struct ring ring;
	uint64_t held; /* batches handed out past ring.pos, not released */
	bool gone;     /* its broker hung up: read what it published, no more */
	int col_seq, col_source;
	uint8_t *keep; /* scratch: records of a batch not delivered before */
	void **copies; /* per slot: the deduplicated copy handed out, or NULL */
};

struct expbus_consumer {
	struct expbus *bus;
	struct generation *cur;	 /* NULL while resubscribing */
	struct generation *last; /* cur, or the last one while resubscribing */
	struct generation *
	    *old; /* gone, with batches still held, oldest first */
	uint32_t n_old;
	uint64_t dropped;      /* as of the last batch, over all generations */
	uint64_t dropped_base; /* dropped by the brokers before the current */
	uint64_t gone_since;   /* when the broker went away; 0: served */
	uint32_t reconnect_ms;
	uint64_t hup_checked_ns; /* a poll that found nothing last looked */
	bool resubscribe;
	struct dedup seen;
	size_t req_len;
	struct {
		struct msg_subscribe m;
		uint32_t ids[2 * PROTO_MAX_FILTER];
	} req;
	char schema[SCHEMA_TEXT_MAX];
};

#define DEFAULT_RECONNECT_MS 30000u
#define RESUBSCRIBE_RETRY_MS 5u
#define HUP_CHECK_NS	     (1000u * 1000u)

static int bad_segment(struct expbus_consumer *c, const char *what)
{
	return client_fail(c->bus, -EPROTO,
			   "the batch ring from the broker is invalid: %s",
			   what);
}

static int find_column(const struct batch_ring *s, const char *name)
{
	for (uint32_t i = 0; i < s->ncolumns; i++)
		if (strcmp(s->columns[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int check_columns(struct expbus_consumer *c, struct generation *g)
{
	const struct batch_ring *s = g->seg;

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
	g->col_seq = find_column(s, "seq");
	g->col_source = find_column(s, "source");
	if (g->col_seq < 0 || g->col_source < 0 ||
	    s->columns[g->col_seq].elem_size != 8 ||
	    s->columns[g->col_source].elem_size != 4)
		return bad_segment(c, "no seq (u64) and source (u32) columns");
	return 0;
}

static int map_segments(struct expbus_consumer *c, struct generation *g,
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
	g->seg = s = addr;
	g->seg_size = ok->segment_size;
	err = shm_map(rel_fd, RELEASE_PAGE_SIZE, 1, &addr);
	if (err < 0)
		return client_fail(c->bus, err, "mapping the release page: %s",
				   strerror(-err));
	g->rel = addr;
	if (s->seg.magic != MAGIC_BATCH_RING ||
	    s->seg.version != LAYOUT_VERSION)
		return client_fail(
		    c->bus, -EPROTO,
		    "batch ring layout version %u is not the %u this "
		    "library reads",
		    s->seg.version, LAYOUT_VERSION);
	if (g->rel->seg.magic != MAGIC_RELEASE_PAGE ||
	    g->rel->seg.version != LAYOUT_VERSION)
		return bad_segment(c, "release page header");
	if (s->seg.size != g->seg_size || s->capacity == 0 ||
	    (s->capacity & (s->capacity - 1)) || s->capacity != ok->capacity ||
	    s->batch_size != ok->batch_size || s->batch_size == 0 ||
	    s->slot_size % 64 || s->data_offset % 4096 ||
	    s->data_offset < sizeof(*s) ||
	    s->data_offset + (uint64_t)s->capacity * s->slot_size > g->seg_size)
		return bad_segment(c, "geometry");
	err = check_columns(c, g);
	if (err < 0)
		return err;
	/* Read-only: a read of each page now, not in the first lap of
	 * batches (shm.h); the size is the one we checked. */
	shm_touch((void *)s, g->seg_size, 0);
	g->keep = malloc(s->batch_size);
	g->copies = calloc(s->capacity, sizeof(*g->copies));
	if (!g->keep || !g->copies)
		return client_fail(c->bus, -ENOMEM, "out of memory");
	/* The ring's producer side is read-only to us: only the consumer
	 * view's loads touch it; the sleeping flag we raise is in rel. */
	ring_init_consumer(&g->ring, (struct ring_side *)&s->prod,
			   &g->rel->cons, (uint8_t *)s + s->data_offset,
			   s->slot_size, s->capacity);
	return 0;
}

static struct generation *generation_free(struct generation *g)
{
	if (!g)
		return NULL;
	if (g->copies)
		for (uint64_t i = 0; i < g->ring.capacity; i++)
			free(g->copies[i]);
	free(g->copies);
	free(g->keep);
	shm_unmap((void *)g->seg, g->seg_size);
	shm_unmap(g->rel, RELEASE_PAGE_SIZE);
	if (g->sock >= 0)
		(void)close(g->sock);
	if (g->event_fd >= 0)
		(void)close(g->event_fd);
	if (g->wake_fd >= 0)
		(void)close(g->wake_fd);
	free(g);
	return NULL;
}

static size_t filter_copy(uint32_t *dst, const uint32_t *src, uint32_t n)
{
	if (n)
		memcpy(dst, src, sizeof(*dst) * n);
	return sizeof(*dst) * n;
}

/* One subscribe exchange with whichever broker listens now, with the
 * request the consumer was made with. Returns the new generation's
 * segments mapped, or NULL with the reason on the context. */
static int subscribe_once(struct expbus_consumer *c, struct generation **ret)
{
	struct {
		struct msg_ok_subscribe m;
		char text[SCHEMA_TEXT_MAX];
	} ok;
	struct generation *g;
	int fds[4] = {-1, -1, -1, -1}, err;
	ssize_t n;

	g = calloc(1, sizeof(*g));
	if (!g)
		return client_fail(c->bus, -ENOMEM, "out of memory");
	g->sock = g->event_fd = g->wake_fd = -1;
	err = g->sock = client_connect(c->bus);
	if (err < 0)
		goto fail;
	n = client_request(c->bus, g->sock, &c->req, c->req_len,
			   MSG_OK_SUBSCRIBE, &ok, sizeof(ok), fds, 4);
	if (n < 0) {
		err = (int)n;
		goto fail;
	}
	g->event_fd = fds[2];
	g->wake_fd = fds[3];
	if ((size_t)n != sizeof(ok.m) + ok.m.schema_len ||
	    ok.m.schema_len >= sizeof(c->schema)) {
		err = client_fail(c->bus, -EPROTO, "malformed subscribe reply");
	} else if (c->schema[0] &&
		   (strlen(c->schema) != ok.m.schema_len ||
		    memcmp(c->schema, ok.text, ok.m.schema_len))) {
		err =
		    client_fail(c->bus, -EPROTO,
				"the restarted broker serves stream '%s' "
				"with another schema: %.*s",
				c->req.m.stream, (int)ok.m.schema_len, ok.text);
	} else {
		memcpy(c->schema, ok.text, ok.m.schema_len);
		c->schema[ok.m.schema_len] = '\0';
		err = map_segments(c, g, &ok.m, fds[0], fds[1]);
	}
	(void)close(fds[0]);
	(void)close(fds[1]);
	if (err < 0)
		goto fail;
	*ret = g;
	return 0;
fail:
	generation_free(g);
	return err;
}

int expbus_subscribe(struct expbus *bus, const char *stream,
		     const struct expbus_subscribe_options *opts,
		     struct expbus_consumer **ret)
{
	static const struct expbus_subscribe_options defaults;
	struct expbus_consumer *c;
	size_t len;
	int err;

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
	c = calloc(1, sizeof(*c));
	if (!c)
		return client_fail(bus, -ENOMEM, "out of memory");
	c->bus = bus;
	c->resubscribe = !(opts->flags & EXPBUS_SUBSCRIBE_NO_RESUBSCRIBE);
	c->reconnect_ms =
	    opts->reconnect_ms ? opts->reconnect_ms : DEFAULT_RECONNECT_MS;
	strcpy(c->req.m.stream, stream);
	if (opts->group)
		strcpy(c->req.m.group, opts->group);
	c->req.m.batch_size = opts->batch_size;
	c->req.m.max_delay_us = opts->max_delay_us;
	c->req.m.batch_slots = opts->batch_slots;
	c->req.m.policy = (uint32_t)opts->policy;
	c->req.m.min_turn = opts->min_turn;
	/* Client-side flags stay here; the broker refuses what it does not
	 * know. */
	c->req.m.flags = opts->flags & ~EXPBUS_SUBSCRIBE_NO_RESUBSCRIBE;
	c->req.m.n_games = opts->games ? opts->n_games : 0;
	c->req.m.n_players = opts->players ? opts->n_players : 0;
	len = sizeof(c->req.m);
	len += filter_copy(c->req.ids, opts->games, c->req.m.n_games);
	len += filter_copy(c->req.ids + c->req.m.n_games, opts->players,
			   c->req.m.n_players);
	proto_header(&c->req.m.h, MSG_SUBSCRIBE, len);
	c->req_len = len;
	err = subscribe_once(c, &c->cur);
	if (err < 0) {
		expbus_consumer_close(c);
		return err;
	}
	c->last = c->cur;
	bus->error[0] = '\0';
	*ret = c;
	return 0;
}

struct expbus_consumer *expbus_consumer_close(struct expbus_consumer *c)
{
	if (!c)
		return NULL;
	for (uint32_t i = 0; i < c->n_old; i++)
		generation_free(c->old[i]);
	free(c->old);
	generation_free(c->last);
	dedup_free(&c->seen);
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
	uint64_t now = c->dropped_base +
		       (c->cur ? atomic_load_explicit(&c->cur->seg->dropped,
						      memory_order_relaxed)
			       : 0);

	return now > c->dropped ? now : c->dropped;
}

static int ring_broken(struct expbus_consumer *c)
{
	return client_fail(c->bus, -EPROTO,
			   "the batch ring's tail counter is impossible");
}

static bool hung_up(int sock)
{
	struct pollfd pfd = {.fd = sock, .events = POLLRDHUP};

	return poll(&pfd, 1, 0) > 0 &&
	       (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* A poll (timeout 0) that found nothing: whether the broker hung up,
 * looked at once a millisecond, so that a busy poller makes no syscall
 * per call. (Yielding the CPU here was measured: on 2 vCPUs it cut the
 * busy poller's p90 from 2.2 to 1.5 ms but raised its median from 9 to
 * 12 us; the tail is the scheduler's tick, not something a yield fixes.)
 */
static bool poll_found_nothing(struct expbus_consumer *c,
			       const struct generation *g)
{
	uint64_t now = client_now_ns();

	if (now - c->hup_checked_ns < HUP_CHECK_NS)
		return false;
	c->hup_checked_ns = now;
	return hung_up(g->sock);
}

/* Gives back the oldest n held batches of g (head += n), dropping the
 * deduplicated copies handed out for them. */
static void generation_release(struct generation *g, uint64_t n)
{
	for (uint64_t k = 0; k < n; k++) {
		uint64_t i = (g->ring.pos + k) & g->ring.mask;
		free(g->copies[i]);
		g->copies[i] = NULL;
	}
	g->held -= n;
	if (ring_consumer_release(&g->ring, n) && !g->gone) {
		uint64_t one = 1;
		/* Nothing to do on failure: the broker also wakes on a timer.
		 */
		(void)!write(g->wake_fd, &one, sizeof(one));
	}
}

/* The broker of the current generation went away and everything it
 * published was handed out: keep it while batches of it are held. */
static int retire(struct expbus_consumer *c)
{
	struct generation *g = c->cur, **old;

	c->cur = NULL;
	c->gone_since = client_now_ns();
	c->dropped_base +=
	    atomic_load_explicit(&g->seg->dropped, memory_order_relaxed);
	if (g->held == 0)
		return 0; /* c->last keeps it until a new one comes */
	old = realloc(c->old, sizeof(*old) * (c->n_old + 1));
	if (!old)
		return client_fail(c->bus, -ENOMEM, "out of memory");
	c->old = old;
	c->old[c->n_old++] = g;
	c->last = NULL;
	return 0;
}

/* Subscribes again with the same request; returns 0 when served again. */
static int resubscribe(struct expbus_consumer *c)
{
	struct generation *g;
	int err;

	/* The restarted broker holds the stream for as many subscribers
	 * as the last one had: this is one of them. */
	c->req.m.flags |= SUBSCRIBE_RESUMING;
	err = subscribe_once(c, &g);
	if (err < 0)
		return err;
	dedup_new_broker(&c->seen);
	if (c->last && c->last->held == 0)
		generation_free(c->last);
	c->cur = c->last = g;
	c->gone_since = 0;
	return 0;
}

/* Decides which records of batch b are new (each record (source, seq) is
 * delivered once, docs/protocol.md, Recovery). Returns b itself when all
 * are, a private copy holding only the new ones, or NULL when none is. */
static const struct expbus_batch *deduplicate(struct expbus_consumer *c,
					      struct generation *g,
					      const struct expbus_batch *b,
					      uint32_t count, int *err)
{
	const struct column_desc *cs = &g->seg->columns[g->col_seq];
	const struct column_desc *cp = &g->seg->columns[g->col_source];
	const uint8_t *base = (const uint8_t *)b;
	struct expbus_batch *copy;
	uint32_t kept = 0, j = 0;

	for (uint32_t i = 0; i < count; i++) {
		uint64_t seq;
		uint32_t src;
		memcpy(&seq, base + cs->offset + 8 * (size_t)i, 8);
		memcpy(&src, base + cp->offset + 4 * (size_t)i, 4);
		g->keep[i] = dedup_admit(&c->seen, src, seq) != 0;
		kept += g->keep[i];
	}
	if (kept == count)
		return b;
	if (kept == 0)
		return NULL;
	copy = aligned_alloc(64, g->seg->slot_size);
	if (!copy) {
		*err = client_fail(c->bus, -ENOMEM, "out of memory");
		return NULL;
	}
	memcpy(copy, b, sizeof(*copy));
	copy->count = kept;
	for (uint32_t k = 0; k < g->seg->ncolumns; k++) {
		const struct column_desc *d = &g->seg->columns[k];
		j = 0;
		for (uint32_t i = 0; i < count; i++)
			if (g->keep[i])
				memcpy((uint8_t *)copy + d->offset +
					   (size_t)j++ * d->elem_size,
				       base + d->offset +
					   (size_t)i * d->elem_size,
				       d->elem_size);
	}
	return copy;
}

/* Hands out the next published batch of g: 1 with *batch set, 0 when it
 * held only records delivered already (skipped), or a negative errno. */
static int take(struct expbus_consumer *c, struct generation *g,
		const struct expbus_batch **batch)
{
	uint64_t idx = (g->ring.pos + g->held) & g->ring.mask;
	const struct expbus_batch *b =
	    ring_slot(&g->ring, g->ring.pos + g->held);
	const struct expbus_batch *out;
	/* Read once: the broker wrote it, and a protocol-breaking broker
	 * could change it under us. */
	uint32_t count = *(const volatile uint32_t *)&b->count;
	int err = 0;

	if (count > g->seg->batch_size)
		return client_fail(c->bus, -EPROTO,
				   "batch %llu claims %u records, more than %u",
				   (unsigned long long)b->seq, count,
				   g->seg->batch_size);
	g->held++;
	out = deduplicate(c, g, b, count, &err);
	if (err < 0) {
		g->held--;
		return err;
	}
	if (!out) {
		/* Nothing new: give it back now if nothing before it is
		 * held, else with the next release. */
		if (g->held == 1)
			generation_release(g, 1);
		return 0;
	}
	if (out != b)
		g->copies[idx] = (void *)out;
	c->dropped = c->dropped_base + b->dropped_total;
	*batch = out;
	return 1;
}

int expbus_next_batch(struct expbus_consumer *c, int timeout_ms,
		      const struct expbus_batch **batch)
{
	uint64_t deadline = client_deadline(timeout_ms), now, end;
	int r;

	for (;;) {
		struct generation *g = c->cur;

		if (g) {
			r = ring_consumer_ready(&g->ring, g->held, 1);
			if (r > 0) {
				r = take(c, g, batch);
				if (r == 0)
					continue;
				return r < 0 ? r : 0;
			}
			if (r < 0)
				return ring_broken(c);
			if (!g->gone) {
				if (timeout_ms == 0 &&
				    !poll_found_nothing(c, g))
					return -EAGAIN;
				r = timeout_ms == 0
					? -EPIPE
					: client_ring_sleep(
					      &g->ring, 0, g->held, g->event_fd,
					      -1, g->sock, deadline, 0);
				if (r >= 0)
					continue;
				if (r != -EPIPE)
					return r; /* -EINTR, -ETIMEDOUT */
				/* Batches already published stay readable:
				 * look once more before moving on. */
				g->gone = true;
				continue;
			}
			if (!c->resubscribe)
				return client_fail(c->bus, -EPIPE,
						   "the broker at %s has gone "
						   "away",
						   c->bus->socket_path);
			r = retire(c);
			if (r < 0)
				return r;
		}
		r = resubscribe(c);
		if (r == 0)
			continue;
		if (r != -ENOENT && r != -ECONNREFUSED && r != -EPIPE &&
		    r != -ECONNRESET && r != -ETIMEDOUT && r != -EAGAIN)
			return r; /* refused for good: the message says why */
		now = client_now_ns();
		end = c->gone_since + (uint64_t)c->reconnect_ms * 1000000u;
		if (now >= end)
			return client_fail(
			    c->bus, -EPIPE,
			    "the broker at %s has gone away and none took "
			    "the subscription back within %u ms (last try: "
			    "%s)",
			    c->bus->socket_path, c->reconnect_ms, strerror(-r));
		if (timeout_ms == 0)
			return -EAGAIN;
		if (deadline && now >= deadline)
			return -ETIMEDOUT;
		if (deadline && deadline < end)
			end = deadline;
		if (end > now + RESUBSCRIBE_RETRY_MS * 1000000u)
			end = now + RESUBSCRIBE_RETRY_MS * 1000000u;
		if (poll(NULL, 0, (int)((end - now + 999999) / 1000000)) < 0 &&
		    errno == EINTR)
			return -EINTR;
	}
}

/* The generation that handed out batch (in its ring or as a copy), and
 * the ring slot it stands for. */
static struct generation *generation_of(const struct expbus_consumer *c,
					const struct expbus_batch *batch,
					uint64_t *slot, uint32_t *index)
{
	for (uint32_t k = 0; k <= c->n_old; k++) {
		struct generation *g = k < c->n_old ? c->old[k] : c->last;
		const uint8_t *p = (const uint8_t *)batch;
		if (!g)
			continue;
		if (p >= g->ring.slots &&
		    p < g->ring.slots + g->ring.capacity * g->ring.slot_size) {
			uint64_t off = (uint64_t)(p - g->ring.slots);
			if (off % g->ring.slot_size)
				return NULL;
			*slot = off / g->ring.slot_size;
			*index = k;
			return g;
		}
		for (uint64_t i = 0; i < g->ring.capacity; i++)
			if (g->copies[i] == batch) {
				*slot = i;
				*index = k;
				return g;
			}
	}
	return NULL;
}

int expbus_release(struct expbus_consumer *c, const struct expbus_batch *batch)
{
	struct generation *g;
	uint64_t idx, pos;
	uint32_t k;

	g = generation_of(c, batch, &idx, &k);
	if (!g)
		return -EINVAL;
	/* The held batches are ring.pos .. ring.pos + held - 1. */
	for (pos = g->ring.pos; pos < g->ring.pos + g->held; pos++)
		if ((pos & g->ring.mask) == idx)
			break;
	if (pos == g->ring.pos + g->held)
		return client_fail(
		    c->bus, -EINVAL,
		    "that batch is not held (already released?)");
	/* Every batch received before it goes too: older generations whole
	 * (old[0..k) came before g; k <= n_old by generation_of). */
	for (uint32_t i = 0; i < k; i++)
		generation_free(c->old[i]);
	if (k > 0) {
		memmove(c->old, c->old + k, sizeof(*c->old) * (c->n_old - k));
		c->n_old -= k;
	}
	generation_release(g, pos - g->ring.pos + 1);
	if (g->gone && g->held == 0 && g != c->last) {
		/* The oldest (now first) generation is done with. */
		generation_free(g);
		memmove(c->old, c->old + 1, sizeof(*c->old) * (c->n_old - 1));
		c->n_old--;
	}
	return 0;
}

int expbus_consumer_columns(const struct expbus_consumer *c)
{
	const struct generation *g = c->last ? c->last : c->old[c->n_old - 1];

	return (int)g->seg->ncolumns;
}

const char *expbus_consumer_column_name(const struct expbus_consumer *c, int i)
{
	const struct generation *g = c->last ? c->last : c->old[c->n_old - 1];

	if (i < 0 || (uint32_t)i >= g->seg->ncolumns)
		return NULL;
	return g->seg->columns[i].name;
}

int expbus_consumer_column_at(const struct expbus_consumer *c, int i,
			      struct expbus_column *col)
{
	const struct generation *g = c->last ? c->last : c->old[c->n_old - 1];
	const struct column_desc *d;

	if (i < 0 || (uint32_t)i >= g->seg->ncolumns)
		return -ENOENT;
	d = &g->seg->columns[i];
	col->data = NULL;
	col->dtype = (enum expbus_dtype)d->dtype;
	col->ndim = d->ndim;
	memcpy(col->shape, d->shape, sizeof(col->shape));
	col->elem_size = d->elem_size;
	col->count = 0;
	return 0;
}

int expbus_batch_column_at(const struct expbus_consumer *c,
			   const struct expbus_batch *batch, int i,
			   struct expbus_column *col)
{
	const struct column_desc *d;
	const struct generation *g;
	uint64_t slot;
	uint32_t k;

	g = generation_of(c, batch, &slot, &k);
	if (!g || i < 0 || (uint32_t)i >= g->seg->ncolumns)
		return -ENOENT;
	d = &g->seg->columns[i];
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
	uint64_t slot;
	uint32_t k;
	const struct generation *g = generation_of(c, batch, &slot, &k);

	if (!g)
		return -ENOENT;
	for (uint32_t i = 0; i < g->seg->ncolumns; i++)
		if (strcmp(g->seg->columns[i].name, name) == 0)
			return expbus_batch_column_at(c, batch, (int)i, col);
	return -ENOENT;
}
