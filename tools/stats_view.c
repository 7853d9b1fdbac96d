/* stats_view.c — copying the broker's stats segment into plain structs
 * (see stats_view.h for how consistent a copy is) and rates between two
 * copies. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "expbus.h"
#include "stats_view.h"

int stats_source_open(const char *cmd, const char *socket,
		      struct stats_source *src)
{
	int err;

	memset(src, 0, sizeof(*src));
	err = expbus_new(socket, &src->bus);
	if (err < 0) {
		if (cmd)
			fprintf(stderr, "expbus %s: socket path: %s\n", cmd,
				strerror(-err));
		return EXIT_USAGE;
	}
	if (socket)
		snprintf(src->socket, sizeof(src->socket), "%s", socket);
	else if (!expbus_default_socket(src->socket, sizeof(src->socket)))
		snprintf(src->socket, sizeof(src->socket), "(default)");
	err = expbus_stats_map(src->bus, (const void **)&src->seg, &src->size);
	if (err < 0) {
		const char *why = expbus_last_error(src->bus);

		/* The library's message names the socket and suggests --socket.
		 */
		if (cmd)
			fprintf(stderr, "expbus %s: %s\n", cmd,
				why[0] ? why : strerror(-err));
		expbus_free(src->bus);
		src->bus = NULL;
		return EXIT_BROKER;
	}
	return 0;
}

int stats_source_reopen(struct stats_source *src)
{
	const void *seg;
	size_t size;
	int err = expbus_stats_map(src->bus, &seg, &size);

	if (err < 0)
		return err;
	expbus_stats_unmap(src->seg, src->size);
	src->seg = seg;
	src->size = size;
	return 0;
}

void stats_source_close(struct stats_source *src)
{
	if (src->seg)
		expbus_stats_unmap(src->seg, src->size);
	if (src->bus)
		expbus_free(src->bus);
	memset(src, 0, sizeof(*src));
}

static uint64_t ld(const _Atomic uint64_t *c)
{
	/* Acquire: pairs with the broker's store-release of each counter
	 * (src/broker/stats.c), so that seq, loaded after, is at least the
	 * window this value was written in. */
	return atomic_load_explicit(c, memory_order_acquire);
}

/* in_use and the identity fields are plain words the broker writes when
 * it takes or frees an entry: load them whole, once. */
static uint32_t ld32(const uint32_t *w)
{
	return __atomic_load_n(w, __ATOMIC_RELAXED);
}

/* Names come from shared memory: copy at most the field and terminate. */
static void copy_name(char *dst, const char *src, size_t size)
{
	size_t i;

	for (i = 0; i + 1 < size && src[i]; i++)
		dst[i] = src[i];
	dst[i] = '\0';
}

static int cmp_id(const void *a, const void *b)
{
	/* Every view struct starts with its id. */
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int view_alloc(struct stats_view *v)
{
	if (v->streams)
		return 0;
	v->streams = calloc(STATS_MAX_STREAMS, sizeof(*v->streams));
	v->producers = calloc(STATS_MAX_PRODUCERS, sizeof(*v->producers));
	v->subs = calloc(STATS_MAX_SUBS, sizeof(*v->subs));
	if (!v->streams || !v->producers || !v->subs) {
		stats_view_free(v);
		return -ENOMEM;
	}
	return 0;
}

static bool take_producer(const struct stats_producer *p, struct sv_producer *o)
{
	uint32_t state = ld32(&p->in_use), id = ld32(&p->id);

	if (state != SV_ATTACHED && state != SV_DRAINING)
		return false;
	o->id = id;
	o->state = (enum sv_state)state;
	o->stream_id = ld32(&p->stream_id);
	o->pid = ld32(&p->pid);
	o->uid = ld32(&p->uid);
	o->capacity = ld32(&p->capacity);
	o->slot_size = ld32(&p->slot_size);
	/* Head before tail: both only grow, so tail read later is >= the
	 * head read here, unless the entry was reused meanwhile. */
	o->head = ld(&p->head);
	o->tail = ld(&p->tail_seen);
	o->records_in = ld(&p->records_in);
	o->stalls = ld(&p->stalls);
	o->last_game = ld(&p->last_game);
	o->games_seen = ld(&p->games_seen);
	o->occupancy = o->tail > o->head ? o->tail - o->head : 0;
	if (o->occupancy > o->capacity)
		o->occupancy = o->capacity;
	o->fill = o->capacity ? (double)o->occupancy / o->capacity : 0;
	/* Freed or given to another producer while we read: skip it. */
	return ld32(&p->in_use) != 0 && ld32(&p->id) == id;
}

static bool take_sub(const struct stats_sub *s, struct sv_sub *o,
		     uint64_t now_ns)
{
	uint32_t id = ld32(&s->id);
	uint64_t routed;

	if (!ld32(&s->in_use))
		return false;
	o->id = id;
	o->stream_id = ld32(&s->stream_id);
	o->pid = ld32(&s->pid);
	o->uid = ld32(&s->uid);
	o->policy = ld32(&s->policy);
	o->batch_size = ld32(&s->batch_size);
	o->max_delay_us = ld32(&s->max_delay_us);
	o->capacity = ld32(&s->capacity);
	o->min_turn = ld32(&s->min_turn);
	o->n_games = ld32(&s->n_games);
	o->n_players = ld32(&s->n_players);
	copy_name(o->group, s->group, sizeof(o->group));
	/* Released before delivered: delivered only grows, so the lag
	 * computed from them is never too small because of the order. */
	o->released_records = ld(&s->released_records);
	o->released = ld(&s->released);
	o->oldest_unreleased_ns = ld(&s->oldest_unreleased_ns);
	o->delivered = ld(&s->delivered);
	o->open_records = ld(&s->open_records);
	o->delivered_bytes = ld(&s->delivered_bytes);
	o->filtered = ld(&s->filtered);
	for (int r = 0; r < DROP_REASONS; r++)
		o->dropped[r] = ld(&s->dropped[r]);
	for (int r = 0; r < 4; r++)
		o->batches[r] = ld(&s->batches[r]);
	o->published = ld(&s->published);
	o->last_publish_ns = ld(&s->last_publish_ns);
	o->oldest_record_ns = ld(&s->oldest_record_ns);
	routed = o->delivered + o->open_records;
	o->lag_records =
	    routed > o->released_records ? routed - o->released_records : 0;
	o->lag_ns = o->lag_records && o->oldest_unreleased_ns &&
			    now_ns > o->oldest_unreleased_ns
			? now_ns - o->oldest_unreleased_ns
			: 0;
	return ld32(&s->in_use) != 0 && ld32(&s->id) == id;
}

/* One copy of the segment, consistent or not: stats_view_take checks. */
static void take_once(const struct stats_segment *seg, struct stats_view *v)
{
	v->taken_ns = cli_now_ns();
	v->interval_s = 0;
	v->broker_pid = seg->broker_pid;
	v->start_ns = seg->start_ns;
	v->broker_now_ns = ld(&seg->now_ns);
	v->loops = ld(&seg->loops);
	v->sleeps = ld(&seg->sleeps);
	v->unclaimed = ld(&seg->unclaimed);
	v->violations = ld(&seg->violations);
	v->unclaimed_per_s = 0;
	v->n_streams = v->n_producers = v->n_subs = 0;

	for (uint32_t i = 0; i < STATS_MAX_STREAMS; i++) {
		const struct stats_stream *s = &seg->streams[i];
		struct sv_stream *o = &v->streams[v->n_streams];

		/* Streams live as long as the broker: no reuse to guard. */
		if (!ld32(&s->in_use))
			continue;
		memset(o, 0, sizeof(*o));
		o->id = ld32(&s->id);
		copy_name(o->name, s->name, sizeof(o->name));
		copy_name(o->schema, s->schema, sizeof(o->schema));
		o->schema_hash = s->schema_hash;
		o->records_in = ld(&s->records_in);
		o->unclaimed = ld(&s->unclaimed);
		v->n_streams++;
	}
	for (uint32_t i = 0; i < STATS_MAX_PRODUCERS; i++) {
		struct sv_producer *o = &v->producers[v->n_producers];

		memset(o, 0, sizeof(*o));
		if (take_producer(&seg->producers[i], o))
			v->n_producers++;
	}
	for (uint32_t i = 0; i < STATS_MAX_SUBS; i++) {
		struct sv_sub *o = &v->subs[v->n_subs];

		memset(o, 0, sizeof(*o));
		if (take_sub(&seg->subs[i], o, v->taken_ns))
			v->n_subs++;
	}
}

int stats_view_take(const struct stats_segment *seg, struct stats_view *v)
{
	int err = view_alloc(v);

	if (err < 0)
		return err;
	/* The reader half of the segment's seqlock (src/broker/stats.c):
	 * the first load (acquire) pairs with the broker's store-release
	 * that ends a window; the counters' acquire loads keep the second
	 * load of seq after them. A broker that died inside a window leaves
	 * seq odd: after a while, take what is there. */
	for (int tries = 0;; tries++) {
		uint64_t s1 =
		    atomic_load_explicit(&seg->seq, memory_order_acquire);
		take_once(seg, v);
		if ((!(s1 & 1) && atomic_load_explicit(
				      &seg->seq, memory_order_relaxed) == s1) ||
		    tries >= 10000)
			break;
	}
	qsort(v->streams, v->n_streams, sizeof(*v->streams), cmp_id);
	qsort(v->producers, v->n_producers, sizeof(*v->producers), cmp_id);
	qsort(v->subs, v->n_subs, sizeof(*v->subs), cmp_id);
	return 0;
}

void stats_view_free(struct stats_view *v)
{
	free(v->streams);
	free(v->producers);
	free(v->subs);
	memset(v, 0, sizeof(*v));
}

/* Per second growth of a counter; a counter that went backwards (an
 * entry reused under the same id cannot happen, ids only grow, but a
 * restarted broker starts again from 0) counts as no growth. */
static double rate(uint64_t before, uint64_t now, double dt)
{
	return now > before && dt > 0 ? (double)(now - before) / dt : 0;
}

static const void *find_id(const void *base, uint32_t n, size_t size,
			   uint32_t id)
{
	return bsearch(&id, base, n, size, cmp_id);
}

void stats_view_rates(const struct stats_view *prev, struct stats_view *cur)
{
	double dt;

	if (!prev || !prev->streams || cur->taken_ns <= prev->taken_ns ||
	    prev->broker_pid != cur->broker_pid)
		return;
	dt = (double)(cur->taken_ns - prev->taken_ns) / 1e9;
	cur->interval_s = dt;
	cur->unclaimed_per_s = rate(prev->unclaimed, cur->unclaimed, dt);
	for (uint32_t i = 0; i < cur->n_streams; i++) {
		struct sv_stream *s = &cur->streams[i];
		const struct sv_stream *p =
		    find_id(prev->streams, prev->n_streams, sizeof(*s), s->id);
		if (!p)
			continue;
		s->in_per_s = rate(p->records_in, s->records_in, dt);
		s->unclaimed_per_s = rate(p->unclaimed, s->unclaimed, dt);
	}
	for (uint32_t i = 0; i < cur->n_producers; i++) {
		struct sv_producer *s = &cur->producers[i];
		const struct sv_producer *p = find_id(
		    prev->producers, prev->n_producers, sizeof(*s), s->id);
		if (p)
			s->in_per_s = rate(p->records_in, s->records_in, dt);
	}
	for (uint32_t i = 0; i < cur->n_subs; i++) {
		struct sv_sub *s = &cur->subs[i];
		const struct sv_sub *p =
		    find_id(prev->subs, prev->n_subs, sizeof(*s), s->id);
		uint64_t nb = 0, drops = 0, pdrops = 0;

		if (!p)
			continue;
		s->out_per_s = rate(p->delivered, s->delivered, dt);
		s->bytes_per_s =
		    rate(p->delivered_bytes, s->delivered_bytes, dt);
		s->filtered_per_s = rate(p->filtered, s->filtered, dt);
		for (int r = 0; r < DROP_REASONS; r++) {
			drops += s->dropped[r];
			pdrops += p->dropped[r];
		}
		s->drops_per_s = rate(pdrops, drops, dt);
		for (int r = 1; r < 4; r++) {
			s->batches_per_s[r] =
			    rate(p->batches[r], s->batches[r], dt);
			if (s->batches[r] > p->batches[r])
				nb += s->batches[r] - p->batches[r];
		}
		if (nb && s->batch_size && s->delivered > p->delivered)
			s->avg_fill = (double)(s->delivered - p->delivered) /
				      ((double)nb * s->batch_size);
		if (s->avg_fill > 1)
			s->avg_fill = 1;
	}
}

const char *stats_view_stream_name(const struct stats_view *v, uint32_t id)
{
	const struct sv_stream *s =
	    find_id(v->streams, v->n_streams, sizeof(*s), id);

	return s ? s->name : "?";
}

const char *sv_policy_name(uint32_t policy)
{
	return policy == EXPBUS_LOSSY ? "lossy" : "lossless";
}

const char *sv_state_name(enum sv_state state)
{
	return state == SV_ATTACHED ? "attached" : "draining";
}

int stats_view_snapshot(const char *cmd, const char *socket,
			struct stats_view *v)
{
	struct stats_source src;
	int err = stats_source_open(cmd, socket, &src);

	if (err)
		return err;
	err = stats_view_take(src.seg, v);
	stats_source_close(&src);
	if (err < 0) {
		fprintf(stderr, "expbus %s: out of memory\n", cmd);
		return 1;
	}
	return 0;
}
