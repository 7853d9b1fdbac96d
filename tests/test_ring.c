/* test_ring.c — the SPSC ring: single-thread semantics, wrap-around, full
 * and empty, impossible counters, a two-thread stress with random pauses,
 * and a lost-wakeup stress where both sides sleep on eventfds. Threads over
 * one mapping, so ThreadSanitizer sees every access. */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "ring.h"
#include "ring_stress.h"

struct shared {
	struct ring_side prod;
	struct ring_side cons;
	uint64_t slots[];
};

static struct shared *shared_new(uint64_t capacity)
{
	struct shared *s =
	    aligned_alloc(64, align_up(sizeof(*s) + capacity * 8, 64));

	cr_assert_not_null(s);
	memset(s, 0, sizeof(*s) + capacity * 8);
	return s;
}

static void views(struct shared *s, uint64_t capacity, struct ring *p,
		  struct ring *c)
{
	ring_init_producer(p, &s->prod, &s->cons, s->slots, 8, capacity);
	ring_init_consumer(c, &s->prod, &s->cons, s->slots, 8, capacity);
}

Test(ring, empty_ring_has_nothing_to_read_and_everything_free)
{
	struct shared *s = shared_new(8);
	struct ring p, c;

	views(s, 8, &p, &c);
	cr_assert_eq(ring_consumer_ready(&c, 0, 8), 0);
	cr_assert_eq(ring_producer_free(&p, 0, 100), 8);
	free(s);
}

Test(ring, commit_publishes_in_order_and_release_frees)
{
	struct shared *s = shared_new(8);
	struct ring p, c;

	views(s, 8, &p, &c);
	cr_assert_eq(ring_producer_free(&p, 0, 3), 3);
	for (uint64_t i = 0; i < 3; i++)
		*(uint64_t *)ring_slot(&p, p.pos + i) = 100 + i;
	cr_assert_eq(ring_consumer_ready(&c, 0, 8), 0, "nothing before commit");
	ring_producer_commit(&p, 3);
	cr_assert_eq(ring_consumer_ready(&c, 0, 8), 3);
	for (uint64_t i = 0; i < 3; i++)
		cr_assert_eq(*(uint64_t *)ring_slot(&c, c.pos + i), 100 + i);
	cr_assert_eq(ring_consumer_ready(&c, 1, 8), 2,
		     "skip counts held slots");
	ring_consumer_release(&c, 2);
	cr_assert_eq(ring_consumer_ready(&c, 0, 8), 1);
	cr_assert_eq(atomic_load(&s->cons.pos), 2);
	free(s);
}

Test(ring, full_ring_refuses_until_the_consumer_releases)
{
	struct shared *s = shared_new(4);
	struct ring p, c;

	views(s, 4, &p, &c);
	cr_assert_eq(ring_producer_free(&p, 0, 4), 4);
	ring_producer_commit(&p, 4);
	cr_assert_eq(ring_producer_free(&p, 0, 1), 0);
	cr_assert_eq(ring_consumer_ready(&c, 0, 4), 4);
	ring_consumer_release(&c, 1);
	cr_assert_eq(ring_producer_free(&p, 0, 4), 1);
	free(s);
}

Test(ring, wraps_without_losing_records)
{
	const uint64_t cap = 8;
	struct shared *s = shared_new(cap);
	struct ring p, c;
	uint64_t next_w = 0, next_r = 0;

	views(s, cap, &p, &c);
	srand(7);
	while (next_r < 10000) {
		int n = ring_producer_free(&p, 0, (uint64_t)(rand() % 5 + 1));
		cr_assert_geq(n, 0);
		/* Contiguous: never past the end of the slot array. */
		cr_assert_leq((p.pos & p.mask) + (uint64_t)n, cap);
		for (int i = 0; i < n; i++)
			*(uint64_t *)ring_slot(&p, p.pos + (uint64_t)i) =
			    next_w++;
		ring_producer_commit(&p, (uint64_t)n);
		n = ring_consumer_ready(&c, 0, (uint64_t)(rand() % 5 + 1));
		cr_assert_geq(n, 0);
		cr_assert_leq((c.pos & c.mask) + (uint64_t)n, cap);
		for (int i = 0; i < n; i++)
			cr_assert_eq(
			    *(uint64_t *)ring_slot(&c, c.pos + (uint64_t)i),
			    next_r++);
		ring_consumer_release(&c, (uint64_t)n);
	}
	free(s);
}

Test(ring, consumer_refuses_a_tail_behind_its_head)
{
	struct shared *s = shared_new(8);
	struct ring p, c;

	views(s, 8, &p, &c);
	ring_producer_free(&p, 0, 4);
	ring_producer_commit(&p, 4);
	cr_assert_eq(ring_consumer_ready(&c, 0, 4), 4);
	ring_consumer_release(&c, 4);
	atomic_store(&s->prod.pos, 2); /* a hostile producer rewinds */
	cr_assert_eq(ring_consumer_ready(&c, 0, 1), -EPROTO);
	free(s);
}

Test(ring, consumer_refuses_a_tail_more_than_a_ring_ahead)
{
	struct shared *s = shared_new(8);
	struct ring p, c;

	views(s, 8, &p, &c);
	atomic_store(&s->prod.pos, 9);
	cr_assert_eq(ring_consumer_ready(&c, 0, 1), -EPROTO);
	atomic_store(&s->prod.pos, UINT64_MAX);
	cr_assert_eq(ring_consumer_ready(&c, 0, 1), -EPROTO);
	atomic_store(&s->prod.pos, 8);
	cr_assert_eq(ring_consumer_ready(&c, 0, 1), 1, "a full ring is fine");
	free(s);
}

Test(ring, producer_refuses_a_head_beyond_its_tail_or_going_back)
{
	struct shared *s = shared_new(8);
	struct ring p, c;

	views(s, 8, &p, &c);
	ring_producer_free(&p, 0, 8);
	ring_producer_commit(&p, 8);
	atomic_store(&s->cons.pos, 9); /* released more than was given */
	cr_assert_eq(ring_producer_free(&p, 0, 1), -EPROTO);
	atomic_store(&s->cons.pos, 4);
	cr_assert_eq(ring_producer_free(&p, 0, 1), 1);
	atomic_store(&s->cons.pos, 3); /* going backwards */
	cr_assert_eq(ring_producer_free(&p, 0, 8), -EPROTO);
	free(s);
}

Test(ring, commit_reports_a_sleeping_consumer_and_release_a_sleeping_producer)
{
	struct shared *s = shared_new(4);
	struct ring p, c;

	views(s, 4, &p, &c);
	cr_assert_eq(ring_consumer_prepare_sleep(&c, 0), 0);
	ring_producer_free(&p, 0, 1);
	cr_assert(ring_producer_commit(&p, 1), "consumer sleeps: must wake");
	ring_consumer_sleep_done(&c);
	ring_producer_free(&p, 0, 1);
	cr_assert_not(ring_producer_commit(&p, 1));
	cr_assert_eq(ring_consumer_prepare_sleep(&c, 0), 2, "data: no sleep");
	ring_consumer_sleep_done(&c);
	ring_producer_free(&p, 0, 2);
	ring_producer_commit(&p, 2);
	cr_assert_eq(ring_producer_prepare_sleep(&p, 0), 0);
	ring_consumer_ready(&c, 0, 1);
	cr_assert(ring_consumer_release(&c, 1), "producer sleeps: must wake");
	ring_producer_sleep_done(&p);
	free(s);
}

Test(ring, a_producer_waiting_on_a_full_ring_wakes_a_consumer_that_holds)
{
	struct shared *s = shared_new(8);
	struct ring p, c;

	views(s, 8, &p, &c);
	ring_producer_free(&p, 0, 8);
	ring_producer_commit(&p, 8); /* full */
	cr_assert_eq(ring_producer_prepare_sleep(&p, 0), 0);
	/* Awake, or watching without holding much: its timer comes. */
	cr_assert_not(ring_producer_full_wakes(&p));
	ring_consumer_watch(&c, RING_WATCH_HALF);
	cr_assert_not(ring_producer_full_wakes(&p));
	/* Holding half the ring or more, or parked: it wants to know. */
	ring_consumer_watch(&c, RING_WATCH_HELD);
	cr_assert(ring_producer_full_wakes(&p));
	cr_assert_eq(ring_consumer_prepare_sleep(&c, 8), 0);
	cr_assert(ring_producer_full_wakes(&p));
	/* And the consumer sees the producer's flag. */
	cr_assert(ring_consumer_producer_waits(&c));
	ring_producer_sleep_done(&p);
	cr_assert_not(ring_consumer_producer_waits(&c));
	/* Watching while holding, a commit that crosses half still wakes
	 * it, and one that does not, does not. */
	ring_consumer_watch(&c, RING_WATCH_HELD);
	ring_consumer_ready(&c, 0, 8);
	ring_consumer_release(&c, 8);
	ring_producer_free(&p, 0, 4);
	cr_assert_not(ring_producer_commit(&p, 3));
	cr_assert(ring_producer_commit(&p, 1));
	free(s);
}

/* ---- two threads (ring_stress.c) ---- */

Test(ring_stress, two_threads_with_random_pauses_keep_order_without_loss,
     .timeout = 120)
{
	struct stress st = {
	    .cap = 64, .count = (uint64_t)(2e6 * stress_scale()), .pauses = 1};

	stress_run(&st);
	cr_assert_eq(st.errors, 0, "records lost, duplicated or reordered");
}

Test(ring_stress, a_consumer_parked_on_a_ready_set_misses_no_commit,
     .timeout = 120)
{
	struct stress st = {.cap = 64,
			    .count = (uint64_t)(1e6 * stress_scale()),
			    .pauses = 1,
			    .ready = 1};

	stress_run(&st);
	cr_log_info("%llu marks, %llu consumer parks",
		    (unsigned long long)st.marks,
		    (unsigned long long)st.cons_sleeps);
	cr_assert_eq(st.errors, 0, "records lost, duplicated or reordered");
	cr_assert_eq(st.lost, 0, "%llu marks were lost",
		     (unsigned long long)st.lost);
	cr_assert_gt(st.marks, 100,
		     "only %llu marks: the test did not exercise the ready set",
		     (unsigned long long)st.marks);
}

Test(ring_stress, both_sides_sleep_and_wake_without_losing_a_wakeup,
     .timeout = 120)
{
	struct stress st = {
	    .cap = 2, .count = (uint64_t)(1e6 * stress_scale()), .sleeping = 1};
	uint64_t sleeps;

	stress_run(&st);
	sleeps = st.prod_sleeps + st.cons_sleeps;
	cr_log_info("%llu producer sleeps, %llu consumer sleeps",
		    (unsigned long long)st.prod_sleeps,
		    (unsigned long long)st.cons_sleeps);
	cr_assert_eq(st.errors, 0, "records lost, duplicated or reordered");
	cr_assert_eq(st.lost, 0, "%llu wakeups were lost",
		     (unsigned long long)st.lost);
	cr_assert_gt(sleeps, st.count / 10,
		     "only %llu sleeps: the test did not exercise sleeping",
		     (unsigned long long)sleeps);
}
