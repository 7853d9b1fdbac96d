/* test_spin.c — a side of a ring looks again for a while before it sleeps
 * (spin.c): it sees slots freed or published within its budget, gives up
 * after the budget, and stops at once on a counter it cannot trust. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ring.h"
#include "spin.h"

#define CAPACITY 8
#define LONG_NS	 (20ull * 1000000000u) /* a budget no test waits out */

struct shared {
	struct ring_side prod;
	struct ring_side cons;
	uint64_t slots[CAPACITY];
};

static struct shared *s;
static struct ring prod, cons;

static void setup(void)
{
	s = aligned_alloc(64, align_up(sizeof(*s), 64));
	cr_assert_not_null(s);
	memset(s, 0, sizeof(*s));
	ring_init_producer(&prod, &s->prod, &s->cons, s->slots, 8, CAPACITY);
	ring_init_consumer(&cons, &s->prod, &s->cons, s->slots, 8, CAPACITY);
}

static void teardown(void)
{
	free(s);
}

TestSuite(spin, .init = setup, .fini = teardown, .timeout = 60);

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void fill(void)
{
	cr_assert_eq(ring_producer_free(&prod, 0, CAPACITY), CAPACITY);
	ring_producer_commit(&prod, CAPACITY);
	cr_assert_eq(ring_producer_free(&prod, 0, 1), 0);
}

/* The other side, 20 ms later: the consumer frees 3 slots, or the
 * producer commits 3 records. What it found is asserted by the test's own
 * thread. */
struct other {
	bool release;
	int got;
};

static void *later(void *arg)
{
	struct other *o = arg;

	usleep(20000);
	if (o->release) {
		o->got = ring_consumer_ready(&cons, 0, 3);
		if (o->got == 3)
			ring_consumer_release(&cons, 3);
	} else {
		o->got = ring_producer_free(&prod, 0, 3);
		if (o->got == 3)
			ring_producer_commit(&prod, 3);
	}
	return NULL;
}

Test(spin, a_producer_on_a_full_ring_sees_the_slots_freed_within_its_budget)
{
	struct other o = {.release = true};
	pthread_t t;
	uint64_t t0;
	int n;

	fill();
	cr_assert_eq(pthread_create(&t, NULL, later, &o), 0);
	t0 = now_ns();
	n = ring_spin(&prod, true, 0, LONG_NS);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(o.got, 3);
	cr_assert_eq(n, 3, "ring_spin returned %d, not the 3 slots freed", n);
	cr_assert_lt(now_ns() - t0, LONG_NS / 2,
		     "it looked on long after the slots were freed");
}

Test(spin, a_consumer_sees_records_committed_within_its_budget)
{
	struct other o = {.release = false};
	pthread_t t;
	int n;

	cr_assert_eq(ring_consumer_ready(&cons, 0, 1), 0);
	cr_assert_eq(pthread_create(&t, NULL, later, &o), 0);
	n = ring_spin(&cons, false, 0, LONG_NS);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(o.got, 3);
	cr_assert_eq(n, 3, "ring_spin returned %d, not the 3 records", n);
}

Test(spin, a_ring_that_stays_full_costs_the_budget_and_no_more)
{
	uint64_t t0, took;

	fill();
	t0 = now_ns();
	cr_assert_eq(ring_spin(&prod, true, 0, 5000000u), 0);
	took = now_ns() - t0;
	cr_assert_geq(took, 5000000u, "gave up after %llu ns of 5 ms",
		      (unsigned long long)took);
	/* A bound for a noisy machine: the budget is what matters. */
	cr_assert_lt(took, 2000000000u, "looked for %llu ns on a 5 ms budget",
		     (unsigned long long)took);
	cr_assert_eq(ring_spin(&prod, true, 0, 0), 0, "no budget, no look");
}

Test(spin, reserved_slots_do_not_count_as_free)
{
	cr_assert_eq(ring_producer_free(&prod, 0, CAPACITY), CAPACITY);
	ring_producer_commit(&prod, 6);
	/* 2 free, both reserved by the caller (skip 2): nothing more. */
	cr_assert_eq(ring_spin(&prod, true, 2, 1000000u), 0);
	cr_assert_eq(ring_spin(&prod, true, 1, 1000000u), 1);
}

Test(spin, a_head_the_consumer_made_up_ends_the_look_at_once)
{
	uint64_t t0;

	fill();
	/* A head past the tail: impossible, so the ring is broken. */
	atomic_store(&s->cons.pos, CAPACITY + 5);
	t0 = now_ns();
	cr_assert_eq(ring_spin(&prod, true, 0, LONG_NS), -EPROTO);
	cr_assert_lt(now_ns() - t0, LONG_NS / 2);
}
