/* test_stats.c — the stats segment is one consistent snapshot for a
 * reader that honours its sequence counter: counters that move together
 * (records delivered and full batches published) are never seen apart. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "expbus.h"
#include "helpers.h"
#include "layout.h"

#define SCHEMA "v i32"
#define BATCH  8

static struct test_broker tb;

static void setup(void)
{
	broker_start(&tb, NULL);
}

static void teardown(void)
{
	broker_stop(&tb);
}

TestSuite(stats, .init = setup, .fini = teardown, .timeout = 120);

static atomic_int stop;

static void *consume(void *arg)
{
	struct expbus_consumer *c = arg;
	const struct expbus_batch *b;

	while (!atomic_load(&stop))
		if (expbus_next_batch(c, 10, &b) == 0)
			expbus_release(c, b);
	return NULL;
}

static void *produce(void *arg)
{
	struct expbus_producer *p = arg;
	int32_t v = 0;

	while (!atomic_load(&stop)) {
		struct expbus_record_header h = {.game = 1};
		(void)expbus_write(p, &h, &v, sizeof(v), 10);
		v++;
	}
	return NULL;
}

/* The reader half of the seqlock (docs/protocol.md, stats segment). */
static int snapshot(const struct stats_segment *seg, struct stats_sub *out)
{
	for (int tries = 0; tries < 100000; tries++) {
		uint64_t s1 =
		    atomic_load_explicit(&seg->seq, memory_order_acquire);
		const struct stats_sub *s = &seg->subs[0];
		out->in_use = s->in_use;
		out->delivered =
		    atomic_load_explicit(&s->delivered, memory_order_relaxed);
		out->published =
		    atomic_load_explicit(&s->published, memory_order_relaxed);
		out->batches[EXPBUS_FLUSH_FULL] = atomic_load_explicit(
		    &s->batches[EXPBUS_FLUSH_FULL], memory_order_relaxed);
		if (!(s1 & 1) &&
		    atomic_load_explicit(&seg->seq, memory_order_relaxed) == s1)
			return 0;
	}
	return -EAGAIN;
}

Test(stats, a_snapshot_never_shows_records_without_their_batch)
{
	struct expbus *bus;
	struct expbus_producer *p;
	struct expbus_consumer *c;
	/* Only full batches: the delay is a minute. */
	struct expbus_subscribe_options o = {.batch_size = BATCH,
					     .max_delay_us = 60000000};
	const void *seg;
	size_t size;
	pthread_t pt, ct;
	uint64_t last = 0, changes = 0;

	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	cr_assert_eq(expbus_producer_attach(bus, "s", SCHEMA, NULL, &p), 0);
	cr_assert_eq(expbus_subscribe(bus, "s", &o, &c), 0);
	cr_assert_eq(expbus_stats_map(bus, &seg, &size), 0);
	pthread_create(&ct, NULL, consume, c);
	pthread_create(&pt, NULL, produce, p);
	for (int i = 0; i < 20000000 && changes < 2000; i++) {
		struct stats_sub s;
		cr_assert_eq(snapshot(seg, &s), 0, "seq stayed odd");
		cr_assert_eq(s.in_use, 1u);
		cr_assert_eq(s.delivered, BATCH * s.batches[EXPBUS_FLUSH_FULL],
			     "delivered %llu with %llu full batches of %d",
			     (unsigned long long)s.delivered,
			     (unsigned long long)s.batches[EXPBUS_FLUSH_FULL],
			     BATCH);
		cr_assert_eq(s.published, s.batches[EXPBUS_FLUSH_FULL]);
		if (s.delivered != last)
			changes++;
		last = s.delivered;
	}
	atomic_store(&stop, 1);
	pthread_join(pt, NULL);
	pthread_join(ct, NULL);
	cr_assert_gt(changes, 10, "the counters hardly moved");
	expbus_stats_unmap(seg, size);
	expbus_consumer_close(c);
	expbus_producer_close(p);
	expbus_free(bus);
}
