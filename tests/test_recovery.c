/* test_recovery.c — the client side of a broker restart (issue 9): a
 * producer hands its ring over without ever blocking and keeps its id, a
 * consumer subscribes again by itself, keeps held batches valid, hands out
 * each record once, and gives up only after its reconnect window. */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <time.h>

#include "dedup.h"
#include "expbus.h"
#include "helpers.h"
#include "layout.h"

#define SCHEMA "obs f32[4]; action i32"

static struct test_broker tb;

static void setup(void)
{
	broker_start(&tb, NULL);
}

static void teardown(void)
{
	broker_stop(&tb);
}

TestSuite(recovery, .init = setup, .fini = teardown, .timeout = 60);

struct rec {
	float obs[4];
	int32_t action;
};

static void write_n(struct expbus_producer *p, int first, int n)
{
	for (int i = first; i < first + n; i++) {
		struct expbus_record_header h = {.game = 1,
						 .turn = (uint32_t)i};
		struct rec r = {{(float)i, 0, 0, 0}, i};
		cr_assert_eq(expbus_write(p, &h, &r, sizeof(r), 1000), 0);
	}
}

/* Dispatches the producer until it has seen its broker go (the fd turns
 * readable on the hang-up) and a new one serves its ring. */
static void wait_resumed(struct expbus_producer *p)
{
	int lost = 0;

	for (int i = 0; i < 500 && !lost; i++) {
		struct pollfd pfd = {.fd = expbus_producer_fd(p),
				     .events = POLLIN};
		(void)poll(&pfd, 1, 10);
		lost = expbus_producer_dispatch(p) == 0;
	}
	cr_assert(lost, "the producer never saw its broker go");
	for (int i = 0; i < 500; i++) {
		struct pollfd pfd = {.fd = expbus_producer_fd(p),
				     .events = POLLIN};
		(void)poll(&pfd, 1, 10);
		if (expbus_producer_dispatch(p) == 1)
			return;
	}
	cr_assert_fail("the producer never handed its ring over");
}

static uint64_t col_u64(const struct expbus_consumer *c,
			const struct expbus_batch *b, const char *name,
			uint32_t i)
{
	struct expbus_column col;
	uint64_t v = 0;

	cr_assert_eq(expbus_batch_column(c, b, name, &col), 0);
	memcpy(&v, (const uint8_t *)col.data + col.elem_size * i,
	       col.elem_size);
	return v;
}

Test(recovery,
     a_consumer_resubscribes_keeps_held_batches_and_sees_each_record_once)
{
	struct expbus_subscribe_options o = {.batch_size = 8,
					     .max_delay_us = 2000};
	struct expbus_producer *p;
	struct expbus_consumer *c;
	const struct expbus_batch *b, *held;
	struct expbus *bus;
	uint64_t next = 0, source;

	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	cr_assert_eq(expbus_producer_attach(bus, "s", SCHEMA, NULL, &p), 0);
	cr_assert_eq(expbus_subscribe(bus, "s", &o, &c), 0);
	write_n(p, 0, 16); /* two full batches: nothing left open */
	cr_assert_eq(expbus_next_batch(c, 2000, &held), 0);
	source = col_u64(c, held, "source", 0);
	next = held->count;
	broker_crash_and_restart(&tb);
	wait_resumed(p);
	write_n(p, 16, 16);
	while (next < 32) {
		cr_assert_eq(expbus_next_batch(c, 5000, &b), 0, "%s",
			     expbus_last_error(bus));
		for (uint32_t i = 0; i < b->count; i++) {
			cr_assert_eq(col_u64(c, b, "seq", i), next,
				     "each record once, in order");
			cr_assert_eq(col_u64(c, b, "source", i), source,
				     "the producer id survives the restart");
			next++;
		}
	}
	/* The batch held across the restart still reads as it was. */
	cr_assert_eq(col_u64(c, held, "seq", 7), 7);
	cr_assert_eq(expbus_release(c, b), 0);
	cr_assert_eq(expbus_release(c, held), -EINVAL, "released with b");
	cr_assert_eq(expbus_next_batch(c, 0, &b), -EAGAIN);
	expbus_consumer_close(c);
	expbus_producer_close(p);
	expbus_free(bus);
}

Test(recovery, a_consumer_gives_up_with_EPIPE_after_its_reconnect_window)
{
	struct expbus_subscribe_options o = {.reconnect_ms = 300};
	struct expbus_producer *p;
	struct expbus_consumer *c;
	const struct expbus_batch *b;
	struct expbus *bus;
	uint64_t t0;
	pid_t pid = tb.pid;

	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	cr_assert_eq(expbus_producer_attach(bus, "s", SCHEMA, NULL, &p), 0);
	cr_assert_eq(expbus_subscribe(bus, "s", &o, &c), 0);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	t0 = now_ms();
	cr_assert_eq(expbus_next_batch(c, -1, &b), -EPIPE);
	cr_assert_geq(now_ms() - t0, 300, "it tried for the whole window");
	cr_assert_not_null(strstr(expbus_last_error(bus), tb.socket),
			   "the message names the socket: %s",
			   expbus_last_error(bus));
	expbus_consumer_close(c);
	expbus_producer_close(p);
	expbus_free(bus);
	broker_crash_and_restart(&tb); /* for teardown */
}

Test(recovery, a_consumer_that_asked_not_to_resubscribe_gets_EPIPE_at_once)
{
	struct expbus_subscribe_options o = {
	    .flags = EXPBUS_SUBSCRIBE_NO_RESUBSCRIBE};
	struct expbus_consumer *c;
	struct expbus_producer *p;
	const struct expbus_batch *b;
	struct expbus *bus;

	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	cr_assert_eq(expbus_producer_attach(bus, "s", SCHEMA, NULL, &p), 0);
	cr_assert_eq(expbus_subscribe(bus, "s", &o, &c), 0);
	broker_crash_and_restart(&tb);
	cr_assert_eq(expbus_next_batch(c, 5000, &b), -EPIPE);
	expbus_consumer_close(c);
	expbus_producer_close(p);
	expbus_free(bus);
}

Test(recovery, a_producer_without_broker_fills_its_ring_then_gets_EAGAIN)
{
	struct expbus_producer_options po = {.ring_slots = 64};
	struct expbus_producer *p;
	struct expbus_span span;
	struct expbus *bus;
	int n = 0, err;
	pid_t pid = tb.pid;

	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	cr_assert_eq(expbus_producer_attach(bus, "s", SCHEMA, &po, &p), 0);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	/* The fd turns readable on the hang-up; dispatch says not served. */
	struct pollfd pfd = {.fd = expbus_producer_fd(p), .events = POLLIN};
	cr_assert_eq(poll(&pfd, 1, 5000), 1);
	cr_assert_eq(expbus_producer_dispatch(p), 0);
	while ((err = expbus_reserve(p, 1, 0, &span)) == 1) {
		cr_assert_eq(expbus_commit(p, 1), 0);
		n++;
	}
	cr_assert_eq(err, -EAGAIN);
	cr_assert_eq(n, 64, "every slot, and no more");
	/* With a timeout and no broker: -EPIPE once it ends. */
	cr_assert_eq(expbus_reserve(p, 1, 100, &span), -EPIPE);
	expbus_producer_close(p);
	expbus_free(bus);
	broker_crash_and_restart(&tb);
}

/* A raw producer: commits records first..first+n-1 into its ring. */
static void raw_commit(struct producer_ring *seg, int wake_fd, uint64_t first,
		       uint64_t n)
{
	for (uint64_t i = first; i < first + n; i++) {
		struct expbus_record_header *r =
		    (void *)((uint8_t *)seg + seg->data_offset +
			     (i & (seg->capacity - 1)) * seg->slot_size);
		memset(r, 0, seg->slot_size);
		r->seq = i;
		r->game = 1;
	}
	/* Release: the records before the tail that publishes them. */
	atomic_store_explicit(&seg->prod.pos, first + n, memory_order_release);
	uint64_t one = 1;
	cr_assert_eq(write(wake_fd, &one, sizeof(one)), 8);
}

Test(recovery, records_a_restarted_broker_delivers_again_come_once)
{
	struct expbus_subscribe_options o = {.batch_size = 8,
					     .max_delay_us = 2000};
	struct expbus_consumer *c;
	const struct expbus_batch *b;
	struct msg_ok_attach ok;
	struct producer_ring *seg;
	struct expbus *bus;
	int s, fds[3], fds2[3];
	uint64_t next = 0;

	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	s = raw_connect(&tb);
	cr_assert_eq(raw_attach(s, "s", SCHEMA, 64, &ok, fds), MSG_OK_ATTACH);
	seg = mmap(NULL, ok.segment_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   fds[0], 0);
	cr_assert_neq(seg, MAP_FAILED);
	cr_assert_eq(expbus_subscribe(bus, "s", &o, &c), 0);
	raw_commit(seg, fds[1], 0, 16);
	while (next < 16) {
		cr_assert_eq(expbus_next_batch(c, 5000, &b), 0);
		next += b->count;
		expbus_release(c, b);
	}
	broker_crash_and_restart(&tb);
	/* As if that broker had published those batches and died before it
	 * moved the head past them: the new one delivers them again. */
	atomic_store(&seg->cons.pos, 0);
	close(s);
	/* A killed broker's listening socket can outlive it for a moment
	 * (io_uring tears down late): retry as libexpbus does. */
	int type = -1;
	for (int i = 0; i < 200 && type != MSG_OK_ATTACH; i++) {
		s = raw_connect(&tb);
		type =
		    s < 0 ? s : raw_resume(s, "s", SCHEMA, fds[0], &ok, fds2);
		if (type != MSG_OK_ATTACH) {
			if (s >= 0)
				close(s);
			usleep(10000);
		}
	}
	cr_assert_eq(type, MSG_OK_ATTACH, "type %d", type);
	raw_commit(seg, fds2[1], 16, 8);
	while (next < 24) {
		cr_assert_eq(expbus_next_batch(c, 5000, &b), 0, "%s",
			     expbus_last_error(bus));
		for (uint32_t i = 0; i < b->count; i++)
			cr_assert_eq(col_u64(c, b, "seq", i), next++,
				     "records 0-15 come once");
		expbus_release(c, b);
	}
	cr_assert_eq(expbus_next_batch(c, 300, &b), -ETIMEDOUT);
	expbus_consumer_close(c);
	expbus_free(bus);
	munmap(seg, ok.segment_size);
	close(s);
	for (int i = 0; i < 3; i++) {
		close(fds[i]);
		close(fds2[i]);
	}
}

/* Records the broker has taken from producer rings so far (stats). */
static uint64_t records_taken(struct expbus *bus)
{
	const struct stats_segment *st;
	const void *seg;
	size_t size;
	uint64_t n = 0;

	cr_assert_eq(expbus_stats_map(bus, &seg, &size), 0);
	st = seg;
	for (int i = 0; i < STATS_MAX_PRODUCERS; i++)
		if (st->producers[i].in_use)
			n += atomic_load_explicit(&st->producers[i].records_in,
						  memory_order_relaxed);
	expbus_stats_unmap(seg, size);
	return n;
}

/* Issue 9: a record leaves its ring only once a published batch holds it.
 * Three records sit in an open batch (of 64, flushed after 3 s) when the
 * broker is killed: the new broker takes them again from the ring, and the
 * subscriber (which subscribes again by itself) gets seq 0, 1, 2. */
Test(recovery, records_in_an_open_batch_survive_a_broker_killed_with_SIGKILL)
{
	struct expbus_subscribe_options o = {.batch_size = 64,
					     .max_delay_us = 3000000};
	struct expbus_producer *p;
	struct expbus_consumer *c;
	const struct expbus_batch *b;
	struct expbus *bus;
	uint64_t next = 0;
	int i;

	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	cr_assert_eq(expbus_producer_attach(bus, "s", SCHEMA, NULL, &p), 0);
	cr_assert_eq(expbus_subscribe(bus, "s", &o, &c), 0);
	write_n(p, 0, 3);
	for (i = 0; i < 500 && records_taken(bus) < 3; i++)
		usleep(2000);
	cr_assert_eq(records_taken(bus), 3, "the broker took the records");
	cr_assert_eq(expbus_next_batch(c, 0, &b), -EAGAIN,
		     "the batch is still open");
	broker_crash_and_restart(&tb);
	wait_resumed(p);
	while (next < 3) {
		cr_assert_eq(expbus_next_batch(c, 10000, &b), 0, "%s",
			     expbus_last_error(bus));
		for (uint32_t k = 0; k < b->count; k++, next++)
			cr_assert_eq(col_u64(c, b, "seq", k), next,
				     "seq %llu comes first",
				     (unsigned long long)next);
		expbus_release(c, b);
	}
	expbus_consumer_close(c);
	expbus_producer_close(p);
	expbus_free(bus);
}

/* Reads from c until it has seq up to want (exclusive), each once and in
 * order from first. */
static void read_seqs(struct expbus *bus, struct expbus_consumer *c,
		      uint64_t first, uint64_t want)
{
	const struct expbus_batch *b;
	uint64_t next = first;

	while (next < want) {
		cr_assert_eq(expbus_next_batch(c, 10000, &b), 0, "%s",
			     expbus_last_error(bus));
		for (uint32_t k = 0; k < b->count; k++, next++)
			cr_assert_eq(col_u64(c, b, "seq", k), next,
				     "seq %llu comes next",
				     (unsigned long long)next);
		expbus_release(c, b);
	}
}

/* Issue 9: a restarted broker routes nothing before every subscription it
 * had is back. The first comes back at once and gets nothing while the
 * second is not back (--resume-hold-ms is 5 s); then both get every
 * record committed meanwhile. */
Test(recovery, a_restarted_broker_waits_for_every_subscriber_it_had)
{
	struct expbus_subscribe_options o = {.batch_size = 8,
					     .max_delay_us = 2000};
	struct expbus_producer *p;
	struct expbus_consumer *c1, *c2;
	const struct expbus_batch *b;
	struct expbus *bus;

	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	cr_assert_eq(expbus_producer_attach(bus, "s", SCHEMA, NULL, &p), 0);
	cr_assert_eq(expbus_subscribe(bus, "s", &o, &c1), 0);
	cr_assert_eq(expbus_subscribe(bus, "s", &o, &c2), 0);
	write_n(p, 0, 16);
	read_seqs(bus, c1, 0, 16);
	read_seqs(bus, c2, 0, 16);
	broker_crash_and_restart(&tb);
	wait_resumed(p);
	write_n(p, 16, 16);
	/* c1 subscribes again (within this call) and waits for c2. */
	cr_assert_eq(expbus_next_batch(c1, 300, &b), -ETIMEDOUT,
		     "records routed before every subscriber was back");
	read_seqs(bus, c2, 16, 32);
	read_seqs(bus, c1, 16, 32);
	cr_assert(broker_log_has(&tb, "2 of the 2 subscribers", 1000));
	expbus_consumer_close(c1);
	expbus_consumer_close(c2);
	expbus_producer_close(p);
	expbus_free(bus);
}

/* Issue 9: producer ids are the ring's for life, so a restarted broker
 * refuses a ring whose header names the id of a live producer (a game
 * cannot make its records pass for another's). */
Test(recovery, a_ring_naming_a_live_producer_id_is_refused)
{
	struct msg_ok_attach ok1, ok2, ok;
	struct producer_ring *seg2;
	int s1, s2, s, fds1[3], fds2[3], fds[3], type = -1;

	s1 = raw_connect(&tb);
	s2 = raw_connect(&tb);
	cr_assert_eq(raw_attach(s1, "s", SCHEMA, 64, &ok1, fds1),
		     MSG_OK_ATTACH);
	cr_assert_eq(raw_attach(s2, "s", SCHEMA, 64, &ok2, fds2),
		     MSG_OK_ATTACH);
	cr_assert_neq(ok1.producer_id, 0u);
	cr_assert_neq(ok1.producer_id, ok2.producer_id, "fresh ids differ");
	seg2 = mmap(NULL, ok2.segment_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		    fds2[0], 0);
	cr_assert_neq(seg2, MAP_FAILED);
	broker_crash_and_restart(&tb);
	close(s1);
	close(s2);
	/* The first ring comes back with its id (retry: a killed broker's
	 * socket can outlive it for a moment). */
	for (int i = 0; i < 200 && type != MSG_OK_ATTACH; i++) {
		s = raw_connect(&tb);
		type =
		    s < 0 ? s : raw_resume(s, "s", SCHEMA, fds1[0], &ok, fds);
		if (type != MSG_OK_ATTACH) {
			if (s >= 0)
				close(s);
			usleep(10000);
		}
	}
	cr_assert_eq(type, MSG_OK_ATTACH);
	cr_assert_eq(ok.producer_id, ok1.producer_id, "the id survives");
	/* The second names the first's id now. */
	seg2->producer_id = ok1.producer_id;
	s2 = raw_connect(&tb);
	cr_assert_eq(raw_resume(s2, "s", SCHEMA, fds2[0], &ok2, fds2),
		     MSG_ERROR);
	munmap(seg2, ok2.segment_size);
	close(s2);
	close(s);
	for (int i = 0; i < 3; i++) {
		close(fds1[i]);
		close(fds2[i]);
		close(fds[i]);
	}
}

Test(dedup, drops_what_an_earlier_broker_delivered_and_nothing_else)
{
	struct dedup d = {0};

	for (uint64_t s = 0; s < 10; s++)
		cr_assert_eq(dedup_admit(&d, 7, s), 1);
	cr_assert_eq(dedup_admit(&d, 7, 3), 1, "one broker: no judgement");
	dedup_new_broker(&d);
	cr_assert_eq(dedup_admit(&d, 7, 9), 0, "delivered before the restart");
	cr_assert_eq(dedup_admit(&d, 7, 10), 1);
	cr_assert_eq(dedup_admit(&d, 8, 0), 1, "another producer");
	cr_assert_eq(dedup_admit(&d, 0, 0), 1, "no identity: always new");
	for (uint32_t id = 100; id < 1100; id++) /* grows */
		cr_assert_eq(dedup_admit(&d, id, 5), 1);
	dedup_new_broker(&d);
	cr_assert_eq(dedup_admit(&d, 7, 10), 0);
	cr_assert_eq(dedup_admit(&d, 555, 5), 0);
	cr_assert_eq(dedup_admit(&d, 555, 6), 1);
	dedup_free(&d);
}
