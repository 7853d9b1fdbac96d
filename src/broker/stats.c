/* stats.c — the stats segment: created at start-up, slots handed to
 * producers and subscriptions, counters published once per pass inside a
 * seqlock window, unmapped at exit.
 *
 * The window (the writer half of a seqlock, as in the perf mmap page, in
 * C11 without fences, which ThreadSanitizer does not take):
 *   store(seq, s + 1, relaxed);           -- odd: writing
 *   counters, each with a store-release;  -- after the odd store
 *   store(seq, s + 2, release);           -- even: done, after them
 * A reader loads seq (acquire: pairs with the final store-release), loads
 * the counters with acquire (if one saw a store of a later window, that
 * store's release carries the window's odd seq to the reader) and loads
 * seq again: unchanged and even, the copy is consistent. */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "segments.h"
#include "shm.h"
#include "stats.h"

int stats_open(struct broker *b)
{
	return segment_stats(b);
}

void stats_close(struct broker *b)
{
	shm_unmap(b->stats, b->stats_size);
	b->stats = NULL;
	if (b->stats_fd >= 0)
		(void)close(b->stats_fd);
	b->stats_fd = -1;
}

struct stats_producer *stats_producer_slot(struct broker *b)
{
	for (int i = 0; i < STATS_MAX_PRODUCERS; i++)
		if (!b->stats->producers[i].in_use)
			return &b->stats->producers[i];
	return NULL;
}

struct stats_sub *stats_sub_slot(struct broker *b)
{
	for (int i = 0; i < STATS_MAX_SUBS; i++)
		if (!b->stats->subs[i].in_use)
			return &b->stats->subs[i];
	return NULL;
}

static void window_open(struct broker *b)
{
	uint64_t s = atomic_load_explicit(&b->stats->seq, memory_order_relaxed);

	/* Relaxed: the counters' store-release orders it before them. */
	atomic_store_explicit(&b->stats->seq, s + 1, memory_order_relaxed);
}

static void window_close(struct broker *b)
{
	uint64_t s = atomic_load_explicit(&b->stats->seq, memory_order_relaxed);

	/* Release: pairs with a reader's acquire load of seq. */
	atomic_store_explicit(&b->stats->seq, s + 1, memory_order_release);
}

/* A counter into the segment, inside a window: store-release (top of
 * file); a plain move on x86. */
static void put(_Atomic uint64_t *dst, uint64_t v)
{
	atomic_store_explicit(dst, v, memory_order_release);
}

/* Copies n counters of ours (only this thread writes them: relaxed loads)
 * into the segment. */
static void copy_counters(_Atomic uint64_t *dst, const _Atomic uint64_t *src,
			  size_t n)
{
	for (size_t i = 0; i < n; i++)
		put(&dst[i],
		    atomic_load_explicit(&src[i], memory_order_relaxed));
}

#define COUNTERS(type, first)                                                  \
	((sizeof(type) - offsetof(type, first)) / sizeof(uint64_t))

static void put_producer(struct producer *p)
{
	/* The identity words (id, pid, ...) first, plainly: readers check
	 * in_use and id around their copy. */
	memcpy(p->pub, &p->mine, offsetof(struct stats_producer, records_in));
	copy_counters(&p->pub->records_in, &p->mine.records_in,
		      COUNTERS(struct stats_producer, records_in));
	p->dirty = false;
}

static void put_sub(struct subscription *sub)
{
	memcpy(sub->pub, &sub->mine, offsetof(struct stats_sub, delivered));
	copy_counters(&sub->pub->delivered, &sub->mine.delivered,
		      COUNTERS(struct stats_sub, delivered));
	sub->dirty = false;
}

static void put_stream(struct stream *s)
{
	if (!s->published) {
		memcpy(s->pub, &s->mine, sizeof(*s->pub));
		s->published = true;
	}
	atomic_store_explicit(
	    &s->pub->records_in,
	    atomic_load_explicit(&s->mine.records_in, memory_order_relaxed),
	    memory_order_relaxed);
	atomic_store_explicit(
	    &s->pub->unclaimed,
	    atomic_load_explicit(&s->mine.unclaimed, memory_order_relaxed),
	    memory_order_relaxed);
	s->dirty = false;
}

void stats_claim_producer(struct broker *b, struct producer *p,
			  struct stats_producer *slot)
{
	p->st = &p->mine;
	p->pub = slot;
	window_open(b);
	put_producer(p);
	window_close(b);
}

void stats_claim_sub(struct broker *b, struct subscription *sub,
		     struct stats_sub *slot)
{
	sub->st = &sub->mine;
	sub->pub = slot;
	window_open(b);
	put_sub(sub);
	window_close(b);
}

void stats_claim_stream(struct broker *b, struct stream *s,
			struct stats_stream *slot)
{
	s->st = &s->mine;
	s->pub = slot;
	window_open(b);
	put_stream(s);
	window_close(b);
}

void stats_forget_producer(struct broker *b, struct producer *p)
{
	if (!p->pub)
		return;
	for (uint32_t i = 0; i < b->n_dirty_producers; i++) {
		if (b->dirty_producers[i] == p) {
			b->dirty_producers[i] =
			    b->dirty_producers[--b->n_dirty_producers];
			break;
		}
	}
	p->mine.in_use = 0;
	window_open(b);
	put_producer(p);
	window_close(b);
	p->pub = NULL;
}

void stats_forget_sub(struct broker *b, struct subscription *sub)
{
	if (!sub->pub)
		return;
	for (uint32_t i = 0; i < b->n_dirty_subs; i++) {
		if (b->dirty_subs[i] == sub) {
			b->dirty_subs[i] = b->dirty_subs[--b->n_dirty_subs];
			break;
		}
	}
	sub->mine.in_use = 0;
	window_open(b);
	put_sub(sub);
	window_close(b);
	sub->pub = NULL;
}

void stats_forget_stream(struct broker *b, struct stream *s)
{
	if (!s->pub)
		return;
	for (uint32_t i = 0; i < b->n_dirty_streams; i++) {
		if (b->dirty_streams[i] == s) {
			b->dirty_streams[i] =
			    b->dirty_streams[--b->n_dirty_streams];
			break;
		}
	}
	/* The whole slot, in_use 0 included: put_stream copies only the
	 * counters once a stream is published. */
	s->mine.in_use = 0;
	window_open(b);
	memcpy(s->pub, &s->mine, sizeof(*s->pub));
	window_close(b);
	s->pub = NULL;
}

void stats_publish(struct broker *b)
{
	struct stats_segment *seg = b->stats;

	window_open(b);
	put(&seg->now_ns, b->now_ns);
	put(&seg->loops, b->count.loops);
	put(&seg->sleeps, b->count.sleeps);
	put(&seg->unclaimed, b->count.unclaimed);
	put(&seg->violations, b->count.violations);
	put(&seg->ring_visits, b->count.ring_visits);
	for (uint32_t i = 0; i < b->n_dirty_producers; i++)
		put_producer(b->dirty_producers[i]);
	for (uint32_t i = 0; i < b->n_dirty_subs; i++)
		put_sub(b->dirty_subs[i]);
	for (uint32_t i = 0; i < b->n_dirty_streams; i++)
		put_stream(b->dirty_streams[i]);
	b->n_dirty_producers = b->n_dirty_subs = b->n_dirty_streams = 0;
	window_close(b);
}
