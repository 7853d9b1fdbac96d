/* test_coalesce.c — a quiet broker whose subscriptions all allow some delay
 * looks at its rings on a timer instead of waking for every record; a
 * burst still wakes it (the half-full doorbell), and a subscription that
 * wants every record at once turns coalescing off (stats: loops). */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "expbus.h"
#include "helpers.h"
#include "layout.h"

#define SCHEMA "v i32"
#define N_PROD 8

static struct test_broker tb;
static struct expbus *bus;
static struct expbus_producer *prod[N_PROD];
static const struct stats_segment *st;
static size_t st_size;

static void setup(void)
{
	broker_start(&tb, NULL);
	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
}

static void teardown(void)
{
	if (st)
		expbus_stats_unmap(st, st_size);
	st = NULL;
	for (int i = 0; i < N_PROD; i++) {
		if (prod[i])
			expbus_producer_close(prod[i]);
		prod[i] = NULL;
	}
	expbus_free(bus);
	broker_stop(&tb);
}

TestSuite(coalesce, .init = setup, .fini = teardown, .timeout = 120);

static void attach(int n, uint32_t ring_slots)
{
	struct expbus_producer_options po = {.ring_slots = ring_slots};
	const void *seg;

	for (int i = 0; i < n; i++)
		cr_assert_eq(
		    expbus_producer_attach(bus, "s", SCHEMA, &po, &prod[i]), 0,
		    "attach %d: %s", i, expbus_last_error(bus));
	cr_assert_eq(expbus_stats_map(bus, &seg, &st_size), 0);
	st = seg;
}

static uint64_t loops(void)
{
	return atomic_load_explicit(&st->loops, memory_order_relaxed);
}

static void write_one(struct expbus_producer *p, int32_t v)
{
	struct expbus_record_header h = {.game = 1, .turn = (uint32_t)v};
	int rc = expbus_write(p, &h, &v, sizeof(v), 10000);
	cr_assert_eq(rc, 0, "write: %s", strerror(-rc));
}

/* Takes what has been published; returns the record count. */
static uint32_t take(struct expbus_consumer *c, int timeout_ms)
{
	const struct expbus_batch *b;
	uint32_t got = 0;

	while (expbus_next_batch(c, timeout_ms, &b) == 0) {
		got += b->count;
		expbus_release(c, b);
		timeout_ms = 0;
	}
	return got;
}

Test(coalesce, a_trickle_from_many_rings_costs_a_pass_per_tick_not_per_record)
{
	/* 8 rings, a record every 2 ms each (4,000 records/s); max delay
	 * 40 ms: a tick of 10 ms, so about 100 ticks in the second. Waking
	 * per record would be 4,000 passes at least. */
	struct expbus_subscribe_options o = {.batch_size = 1024,
					     .max_delay_us = 40000};
	struct expbus_consumer *c;
	const int rounds = 500;
	uint32_t got = 0;
	uint64_t l0, l1, end;

	attach(N_PROD, 1024);
	cr_assert_eq(expbus_subscribe(bus, "s", &o, &c), 0);
	usleep(100000);
	l0 = loops();
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < N_PROD; i++)
			write_one(prod[i], r);
		usleep(2000);
		got += take(c, 0);
	}
	end = now_ms() + 5000;
	while (got < (uint32_t)(rounds * N_PROD) && now_ms() < end)
		got += take(c, 100);
	l1 = loops();
	cr_assert_eq(got, (uint32_t)(rounds * N_PROD));
	cr_log_info("%llu passes for %d records", (unsigned long long)(l1 - l0),
		    rounds * N_PROD);
	cr_assert_lt(l1 - l0, (uint64_t)rounds,
		     "%llu broker passes for %d records in %d rounds: it woke "
		     "for every round, not on its tick",
		     (unsigned long long)(l1 - l0), rounds * N_PROD, rounds);
	expbus_consumer_close(c);
}

struct reader {
	struct expbus_consumer *c;
	uint32_t want;
	_Atomic uint32_t got;
};

static void *read_all(void *arg)
{
	struct reader *r = arg;
	uint64_t end = now_ms() + 60000;

	while (atomic_load(&r->got) < r->want && now_ms() < end)
		atomic_fetch_add(&r->got, take(r->c, 100));
	return NULL;
}

Test(coalesce, a_burst_that_fills_half_a_ring_wakes_the_broker_before_its_tick)
{
	/* max delay 8 s: a tick of 2 s, which the broker's longest sleep
	 * (200 ms) cuts. A ring of 64 slots, batches of 16 (a ring's head
	 * moves when the batches holding its records are published); 6,400
	 * records written as fast as the ring lets: a hundred ring-fulls,
	 * read as they come. Waiting for the broker's timer at each would
	 * take 20 s; the half-full doorbell keeps the producer going. */
	struct expbus_subscribe_options o = {.batch_size = 16,
					     .max_delay_us = 8000000};
	struct reader r = {.want = 64 * 100};
	uint64_t t0, took;
	pthread_t t;

	attach(1, 64);
	cr_assert_eq(expbus_subscribe(bus, "s", &o, &r.c), 0);
	cr_assert_eq(pthread_create(&t, NULL, read_all, &r), 0);
	usleep(100000);
	t0 = now_ms();
	for (uint32_t i = 0; i < r.want; i++)
		write_one(prod[0], (int32_t)i);
	took = now_ms() - t0;
	pthread_join(t, NULL);
	cr_log_info("%u records into a 64-slot ring in %llu ms", r.want,
		    (unsigned long long)took);
	cr_assert_lt(took, 8000u,
		     "writing %u records through a 64-slot ring took %llu ms: "
		     "the producer waited for the broker's tick",
		     r.want, (unsigned long long)took);
	cr_assert_eq(atomic_load(&r.got), r.want);
	expbus_consumer_close(r.c);
}

Test(coalesce, a_subscription_that_wants_each_record_at_once_turns_it_off)
{
	/* Beside a patient subscription, one with batch_size 1 and a delay
	 * of 8 s: coalescing would make each record wait for the broker's
	 * timer (a 2 s tick, cut to its longest sleep, 200 ms): 8 s for 40
	 * records written 5 ms apart. */
	struct expbus_subscribe_options patient = {.batch_size = 1024,
						   .max_delay_us = 8000000};
	struct expbus_subscribe_options eager = {.batch_size = 1,
						 .max_delay_us = 8000000};
	struct expbus_consumer *cp, *ce;
	uint64_t t0, took;

	attach(1, 1024);
	cr_assert_eq(expbus_subscribe(bus, "s", &patient, &cp), 0);
	cr_assert_eq(expbus_subscribe(bus, "s", &eager, &ce), 0);
	usleep(100000);
	t0 = now_ms();
	for (int i = 0; i < 40; i++) {
		usleep(5000); /* the broker goes back to sleep */
		write_one(prod[0], i);
		cr_assert_eq(take(ce, 5000), 1u, "record %d never came", i);
	}
	took = now_ms() - t0;
	cr_assert_lt(took, 3000u,
		     "40 records one by one took %llu ms: each waited for a "
		     "tick",
		     (unsigned long long)took);
	expbus_consumer_close(ce);
	expbus_consumer_close(cp);
}

Test(coalesce, off_by_option)
{
	/* --coalesce-min-delay-us 0: every record wakes the broker. */
	static const char *const args[] = {"--coalesce-min-delay-us", "0",
					   NULL};
	struct expbus_subscribe_options o = {.batch_size = 1024,
					     .max_delay_us = 40000};
	struct expbus_consumer *c;
	uint64_t l0, l1;
	const int rounds = 100;
	uint32_t got = 0;

	expbus_free(bus);
	broker_stop(&tb);
	broker_start(&tb, args);
	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	attach(1, 1024);
	cr_assert_eq(expbus_subscribe(bus, "s", &o, &c), 0);
	usleep(100000);
	l0 = loops();
	for (int r = 0; r < rounds; r++) {
		write_one(prod[0], r);
		usleep(2000);
		got += take(c, 0);
	}
	while (got < (uint32_t)rounds)
		got += take(c, 1000);
	l1 = loops();
	cr_assert_geq(l1 - l0, (uint64_t)rounds,
		      "%llu passes for %d records written 2 ms apart",
		      (unsigned long long)(l1 - l0), rounds);
	expbus_consumer_close(c);
}
