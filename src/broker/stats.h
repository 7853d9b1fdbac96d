/* stats.h — the stats segment: the broker creates it, hands out its slots
 * and is its only writer. Counters are kept in broker memory (each
 * object's `mine`, the broker's `count`) and published once per pass,
 * under the segment's sequence counter, for the objects marked dirty. */
#ifndef EXPBUSD_STATS_H
#define EXPBUSD_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "broker.h"

/* Counters in broker memory: only the broker thread touches them; the
 * relaxed atomics (their type is the segment's) compile to plain loads and
 * stores. */
static inline void stat_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c,
			      atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline void stat_set(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, v, memory_order_relaxed);
}

/* Marks an object's counters for the next stats_publish. */
static inline void stats_touch_producer(struct broker *b, struct producer *p)
{
	if (!p->dirty && p->pub) {
		p->dirty = true;
		b->dirty_producers[b->n_dirty_producers++] = p;
	}
}

static inline void stats_touch_sub(struct broker *b, struct subscription *sub)
{
	if (!sub->dirty && sub->pub) {
		sub->dirty = true;
		b->dirty_subs[b->n_dirty_subs++] = sub;
	}
}

static inline void stats_touch_stream(struct broker *b, struct stream *s)
{
	if (!s->dirty && s->pub) {
		s->dirty = true;
		b->dirty_streams[b->n_dirty_streams++] = s;
	}
}

/* Creates and seals the stats segment (b->stats, b->stats_fd). */
int stats_open(struct broker *b);
void stats_close(struct broker *b);
/* A free slot for a producer or a subscription, or NULL when all are
 * taken. The caller fills its `mine` and calls stats_claim_*. */
struct stats_producer *stats_producer_slot(struct broker *b);
struct stats_sub *stats_sub_slot(struct broker *b);
void stats_claim_producer(struct broker *b, struct producer *p,
			  struct stats_producer *slot);
void stats_claim_sub(struct broker *b, struct subscription *sub,
		     struct stats_sub *slot);
void stats_claim_stream(struct broker *b, struct stream *s,
			struct stats_stream *slot);
/* Publishes the object's last counters with in_use 0 and forgets it (it
 * is being freed). */
void stats_forget_producer(struct broker *b, struct producer *p);
void stats_forget_sub(struct broker *b, struct subscription *sub);
/* The same for a stream freed after its linger (stream.c). */
void stats_forget_stream(struct broker *b, struct stream *s);
/* One window of the sequence counter: the broker's counters and every
 * dirty object's. */
void stats_publish(struct broker *b);

#endif
