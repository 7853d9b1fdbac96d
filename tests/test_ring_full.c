/* test_ring_full.c — a game whose ring is full of records the broker holds
 * in open batches is not left waiting for those batches' delay: the broker
 * publishes them early when they hold more than half of the ring (a batch
 * bigger than the ring would never fill), and a broker that watches the
 * ring on a timer is woken when the game waits on its full ring.
 *
 * Each delay here is a minute, while all the records arrive in well under
 * a second: a test that fails waits for those delays (or for the broker's
 * 200 ms timer, which the second test measures), and its deadline (20 s)
 * is many times what it needs. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "expbus.h"
#include "helpers.h"

#define SCHEMA	 "obs f32[8]; action i32; reward f32"
#define DELAY_US 60000000u /* the longest max_delay_us */

static struct test_broker tb;
static struct expbus *bus;

static void start(const char *const *extra)
{
	broker_start(&tb, extra);
	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
}

static void stop(void)
{
	expbus_free(bus);
	broker_stop(&tb);
}

TestSuite(ring_full, .fini = stop, .timeout = 120);

struct writer {
	struct expbus_producer *p;
	uint32_t count;
	uint32_t slots;
	uint64_t longest_ms; /* the longest write: a wait on the full ring */
	/* 50 us between records, and a pause after a little more than half
	 * of each ring's worth. */
	bool halt;
	int rc;
};

static void *write_all(void *arg)
{
	struct writer *w = arg;
	uint8_t data[40] = {0};

	for (uint32_t i = 0; i < w->count && w->rc == 0; i++) {
		struct expbus_record_header h = {.game = 1, .turn = i};
		uint64_t t0 = now_ms(), took;

		memcpy(data, &i, sizeof(i));
		w->rc = expbus_write(w->p, &h, data, sizeof(data), 30000);
		took = now_ms() - t0;
		if (took > w->longest_ms)
			w->longest_ms = took;
		/* The commit that filled half the ring woke the broker; the
		 * pause lets it take those records and go back to sleep.
		 * The rest of the ring then fills with no commit that
		 * crosses half of it (the head has not moved). */
		if (w->halt)
			usleep(i % w->slots == w->slots / 2 ? 20000 : 50);
	}
	return NULL;
}

/* Writes n records and then a ring more through a ring of slots slots to
 * one lossless subscription of batch_size, and reads the first n (in
 * order) within 20 s. The last ring's worth may rightly wait for its
 * batch's delay: that producer does not wait for it. Returns the batches
 * published early (flush reason timeout); *longest_ms: the longest write,
 * that is the longest wait on the full ring. */
static uint32_t deliver(const char *stream, uint32_t slots, uint32_t batch_size,
			uint32_t n, bool halt, uint64_t *longest_ms)
{
	struct expbus_producer_options po = {.ring_slots = slots};
	struct expbus_subscribe_options so = {.batch_size = batch_size,
					      .batch_slots = 4,
					      .max_delay_us = DELAY_US,
					      .policy = EXPBUS_LOSSLESS};
	struct expbus_consumer *c;
	const struct expbus_batch *b;
	struct writer w = {.count = n + slots, .slots = slots, .halt = halt};
	uint32_t got = 0, early = 0;
	pthread_t t;
	uint64_t end;

	cr_assert_eq(expbus_producer_attach(bus, stream, SCHEMA, &po, &w.p), 0,
		     "%s", expbus_last_error(bus));
	cr_assert_eq(expbus_subscribe(bus, stream, &so, &c), 0, "%s",
		     expbus_last_error(bus));
	cr_assert_eq(pthread_create(&t, NULL, write_all, &w), 0);
	end = now_ms() + 20000;
	while (got < n && now_ms() < end) {
		struct expbus_column turn;

		if (expbus_next_batch(c, 100, &b) != 0)
			continue;
		cr_assert_eq(expbus_batch_column(c, b, "turn", &turn), 0);
		for (uint32_t r = 0; r < b->count; r++, got++)
			cr_assert_eq(((const uint32_t *)turn.data)[r], got,
				     "record %u where %u was due",
				     ((const uint32_t *)turn.data)[r], got);
		if (b->flush_reason == EXPBUS_FLUSH_TIMEOUT)
			early++;
		expbus_release(c, b);
	}
	cr_assert_eq(got, n,
		     "%u of %u records in 20 s through a ring of %u slots to "
		     "batches of %u: the game waited for a batch's delay",
		     got, n, slots, batch_size);
	pthread_join(t, NULL);
	cr_assert_eq(w.rc, 0, "write: %s", strerror(-w.rc));
	*longest_ms = w.longest_ms;
	expbus_consumer_close(c);
	expbus_producer_close(w.p);
	return early;
}

Test(ring_full, a_batch_bigger_than_the_ring_is_published_early)
{
	/* Coalescing off: the broker wakes for every commit, so only the
	 * early publish can free the ring. */
	static const char *const extra[] = {"--coalesce-min-delay-us", "0",
					    NULL};
	uint64_t longest;

	start(extra);
	/* Batches of 64 from a ring of 16: each is published when the ring
	 * is full of its records, 16 at a time. */
	cr_expect_geq(deliver("big", 16, 64, 2000, false, &longest),
		      2000 / 16 - 1);
}

Test(ring_full, a_watching_broker_hears_of_a_full_ring)
{
	enum { ROUNDS = 12 };
	uint64_t longest;

	/* Coalescing on (the defaults, and a record every 50 us): the
	 * broker sleeps on its timer and the game wakes it when a commit
	 * fills half the ring. The second half fills while the broker holds
	 * the first in the open batch (its head does not move), with no
	 * commit that crosses half: only the game waiting on its full ring
	 * tells it. Without that, the broker, asleep since the pause (20
	 * ms) began, wakes at its timer (200 ms, MAX_SLEEP_NS in loop.c):
	 * the game waits about 160 ms each round. With it, a wakeup (about
	 * 1 ms here). */
	start(NULL);
	/* Batches as big as the ring: each fills exactly, none early. */
	cr_expect_eq(deliver("watch", 256, 256, 256 * ROUNDS, true, &longest),
		     0);
	printf("longest wait on the full ring: %llu ms\n",
	       (unsigned long long)longest);
	cr_expect_lt(longest, 100,
		     "the game waited %llu ms on its full ring: the broker "
		     "did not hear of it",
		     (unsigned long long)longest);
}

Test(ring_full, a_game_that_sleeps_at_once_is_heard_as_well)
{
	enum { ROUNDS = 12 };
	uint64_t longest;

	/* As above, with the game's look-again budget off
	 * (expbus_set_spin_us 0): it raises its flag and sleeps at once,
	 * and the broker still hears of the full ring. */
	start(NULL);
	cr_assert_eq(expbus_set_spin_us(bus, 0), 0);
	cr_expect_eq(deliver("nospin", 256, 256, 256 * ROUNDS, true, &longest),
		     0);
	cr_expect_lt(longest, 100,
		     "the game waited %llu ms on its full ring: the broker "
		     "did not hear of it",
		     (unsigned long long)longest);
}

Test(ring_full, a_spin_longer_than_10_ms_is_refused_with_the_limit)
{
	start(NULL);
	cr_assert_eq(expbus_set_spin_us(bus, 10000), 0);
	cr_assert_eq(expbus_set_spin_us(bus, 10001), -EINVAL);
	cr_assert_not_null(strstr(expbus_last_error(bus), "10000 us"),
			   "the message does not name the limit: %s",
			   expbus_last_error(bus));
}
