/* test_runs.c — records routed in runs (no filter, no group): every
 * subscription gets every record's bytes whatever its batch size, a full
 * lossy one drops whole runs and counts each record it dropped, a
 * producer asleep on its full ring is woken once half of it is free, not
 * for every head the broker moves, and a subscriber asleep is woken once
 * per pass of the broker, not for every batch the pass publishes. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "expbus.h"
#include "helpers.h"
#include "layout.h"

/* Field sizes that take each of the copy's paths: 3 and 40 bytes (any
 * size), 4, 8, 16, 32 (constant sizes). */
#define SCHEMA	"a u8[3]; b f32; c i64; d u8[40]; e u8[16]; f u8[32]"
#define NFIELDS 6
static const char *const field[NFIELDS] = {"a", "b", "c", "d", "e", "f"};

static struct test_broker tb;
static struct expbus *bus;

static void setup(void)
{
	broker_start(&tb, NULL);
	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
}

static void teardown(void)
{
	expbus_free(bus);
	broker_stop(&tb);
}

TestSuite(runs, .init = setup, .fini = teardown, .timeout = 120);

/* Byte k of record i's data. */
static uint8_t pattern(uint32_t i, size_t k)
{
	return (uint8_t)(i * 7u + k * 13u + (i >> 8));
}

struct writer {
	struct expbus_producer *p;
	uint32_t count;
	int rc;
	long nvcsw; /* voluntary context switches while writing */
};

static void *write_all(void *arg)
{
	struct writer *w = arg;
	size_t size = expbus_producer_data_size(w->p);
	uint8_t *data = malloc(size);
	struct rusage r0, r1;

	getrusage(RUSAGE_THREAD, &r0);
	for (uint32_t i = 0; i < w->count && w->rc == 0; i++) {
		struct expbus_record_header h = {.game = i / 100, .turn = i};

		for (size_t k = 0; k < size; k++)
			data[k] = pattern(i, k);
		w->rc = expbus_write(w->p, &h, data, size, 10000);
	}
	getrusage(RUSAGE_THREAD, &r1);
	w->nvcsw = r1.ru_nvcsw - r0.ru_nvcsw;
	free(data);
	return NULL;
}

/* Checks every record of batch b against the pattern; *next: the turn
 * expected first (records come in order). Returns the records checked. */
static uint32_t check_batch(struct expbus_consumer *c,
			    struct expbus_producer *p,
			    const struct expbus_batch *b, uint32_t *next,
			    bool gaps)
{
	struct expbus_column turn;

	cr_assert_eq(expbus_batch_column(c, b, "turn", &turn), 0);
	for (uint32_t r = 0; r < b->count; r++) {
		uint32_t i = ((const uint32_t *)turn.data)[r];

		if (gaps)
			cr_assert_geq(i, *next, "record %u came again", i);
		else
			cr_assert_eq(i, *next, "record %u where %u was due", i,
				     *next);
		*next = i + 1;
		for (int f = 0; f < NFIELDS; f++) {
			struct expbus_column col;
			long off = expbus_producer_field_offset(p, field[f]);
			const uint8_t *v;

			cr_assert_eq(expbus_batch_column(c, b, field[f], &col),
				     0);
			v = (const uint8_t *)col.data + r * col.elem_size;
			for (size_t k = 0; k < col.elem_size; k++)
				cr_assert_eq(v[k], pattern(i, (size_t)off + k),
					     "record %u field %s byte %zu", i,
					     field[f], k);
		}
	}
	return b->count;
}

Test(runs, every_subscription_gets_every_record_whatever_its_batch_size)
{
	enum { N = 6000, SUBS = 3 };
	static const uint32_t sizes[SUBS] = {7, 32, 100};
	struct expbus_producer_options po = {.ring_slots = 256};
	struct expbus_consumer *c[SUBS];
	uint32_t got[SUBS] = {0}, next[SUBS] = {0};
	struct writer w = {.count = N};
	pthread_t t;
	uint64_t end;

	cr_assert_eq(expbus_producer_attach(bus, "r", SCHEMA, &po, &w.p), 0,
		     "%s", expbus_last_error(bus));
	for (int s = 0; s < SUBS; s++) {
		struct expbus_subscribe_options so = {.batch_size = sizes[s],
						      .batch_slots = 4,
						      .max_delay_us = 2000,
						      .policy =
							  EXPBUS_LOSSLESS};
		cr_assert_eq(expbus_subscribe(bus, "r", &so, &c[s]), 0, "%s",
			     expbus_last_error(bus));
	}
	cr_assert_eq(pthread_create(&t, NULL, write_all, &w), 0);
	end = now_ms() + 60000;
	for (bool all = false; !all && now_ms() < end;) {
		all = true;
		for (int s = 0; s < SUBS; s++) {
			const struct expbus_batch *b;

			if (got[s] == N)
				continue;
			all = false;
			if (expbus_next_batch(c[s], 1, &b) != 0)
				continue;
			got[s] += check_batch(c[s], w.p, b, &next[s], false);
			expbus_release(c[s], b);
		}
	}
	pthread_join(t, NULL);
	cr_assert_eq(w.rc, 0, "write: %s", strerror(-w.rc));
	for (int s = 0; s < SUBS; s++) {
		cr_expect_eq(got[s], N, "batch size %u: %u of %u records",
			     sizes[s], got[s], N);
		expbus_consumer_close(c[s]);
	}
	expbus_producer_close(w.p);
}

Test(runs, a_full_lossy_subscription_counts_every_record_it_missed)
{
	enum { N = 5000 };
	struct expbus_producer_options po = {.ring_slots = 256};
	struct expbus_subscribe_options keep = {.batch_size = 64,
						.batch_slots = 4,
						.max_delay_us = 2000,
						.policy = EXPBUS_LOSSLESS};
	struct expbus_subscribe_options drop = {.batch_size = 16,
						.batch_slots = 2,
						.max_delay_us = 1000,
						.policy = EXPBUS_LOSSY};
	struct expbus_consumer *lossless, *lossy;
	const struct expbus_batch *b;
	uint32_t got = 0, next = 0, seen = 0, next_lossy = 0;
	struct writer w = {.count = N};
	pthread_t t;
	uint64_t end;

	cr_assert_eq(expbus_producer_attach(bus, "d", SCHEMA, &po, &w.p), 0,
		     "%s", expbus_last_error(bus));
	cr_assert_eq(expbus_subscribe(bus, "d", &keep, &lossless), 0);
	cr_assert_eq(expbus_subscribe(bus, "d", &drop, &lossy), 0);
	cr_assert_eq(pthread_create(&t, NULL, write_all, &w), 0);
	/* Only the lossless one reads while records flow: the lossy one's
	 * two batches fill at once and it misses the rest. */
	end = now_ms() + 60000;
	while (got < N && now_ms() < end) {
		if (expbus_next_batch(lossless, 10, &b) != 0)
			continue;
		got += check_batch(lossless, w.p, b, &next, false);
		expbus_release(lossless, b);
	}
	pthread_join(t, NULL);
	cr_assert_eq(w.rc, 0, "write: %s", strerror(-w.rc));
	cr_assert_eq(got, N);
	while (expbus_next_batch(lossy, 200, &b) == 0) {
		seen += check_batch(lossy, w.p, b, &next_lossy, true);
		expbus_release(lossy, b);
	}
	cr_assert_gt(expbus_consumer_dropped(lossy), 0,
		     "the lossy subscription never filled");
	cr_assert_eq(seen + expbus_consumer_dropped(lossy), N,
		     "lossy: %u delivered + %llu dropped != %u committed", seen,
		     (unsigned long long)expbus_consumer_dropped(lossy), N);
	expbus_consumer_close(lossy);
	expbus_consumer_close(lossless);
	expbus_producer_close(w.p);
}

Test(runs, a_producer_on_a_full_ring_is_woken_once_half_of_it_is_free)
{
	/* A ring of many broker chunks and a reader that checks every byte
	 * (slower than the writer): the ring stays full, and the broker
	 * frees it a batch at a time while the tail it last looked at lags
	 * far behind the producer's. */
	enum { N = 200000, SLOTS = 4096 };
	struct expbus_producer_options po = {.ring_slots = SLOTS};
	struct expbus_subscribe_options so = {
	    .batch_size = 128, .batch_slots = 2, .policy = EXPBUS_LOSSLESS};
	struct expbus_consumer *c;
	const struct expbus_batch *b;
	struct writer w = {.count = N};
	uint32_t got = 0, next = 0;
	pthread_t t;
	uint64_t end;

	cr_assert_eq(expbus_producer_attach(bus, "w", SCHEMA, &po, &w.p), 0,
		     "%s", expbus_last_error(bus));
	cr_assert_eq(expbus_subscribe(bus, "w", &so, &c), 0);
	cr_assert_eq(pthread_create(&t, NULL, write_all, &w), 0);
	end = now_ms() + 60000;
	while (got < N && now_ms() < end) {
		if (expbus_next_batch(c, 10, &b) != 0)
			continue;
		got += check_batch(c, w.p, b, &next, false);
		expbus_release(c, b);
	}
	pthread_join(t, NULL);
	cr_assert_eq(w.rc, 0, "write: %s", strerror(-w.rc));
	cr_assert_eq(got, N);
	/* Each sleep of the producer (a voluntary context switch) ends when
	 * SLOTS / 2 are free, so it writes at least that many per sleep. */
	printf("producer slept %ld times for %d records in a ring of %d\n",
	       w.nvcsw, N, SLOTS);
	cr_expect_leq(w.nvcsw, N / (SLOTS / 2) + 50,
		      "the producer slept %ld times for %d records: woken "
		      "before half of its ring was free",
		      w.nvcsw, N);
	expbus_consumer_close(c);
	expbus_producer_close(w.p);
}

Test(runs, a_sleeping_subscriber_is_woken_once_per_pass_not_per_batch)
{
	/* 512 records in one commit: the broker takes a ring's records in
	 * chunks of 256 (BROKER_CHUNK), so two passes of four batches of 64
	 * each. The subscriber is asleep (its flag up, as a consumer raises
	 * it before it polls its eventfd) and, being this test, never wakes
	 * to lower it. It must be woken at most once per pass: its eventfd
	 * counts the broker's writes, 2 at most, not one per batch (8). */
	enum { BATCH = 64, N = 512 };
	struct expbus_producer_options po = {.ring_slots = 4096};
	struct expbus_producer *p;
	struct expbus_span span;
	struct msg_ok_subscribe ok;
	struct release_page *rel;
	const struct batch_ring *br;
	int s, fds[4] = {-1, -1, -1, -1};
	uint64_t wakes = 0, end;

	cr_assert_eq(expbus_producer_attach(bus, "w", SCHEMA, &po, &p), 0, "%s",
		     expbus_last_error(bus));
	s = raw_connect(&tb);
	cr_assert_eq(raw_subscribe(s, "w", BATCH, 10000000, &ok, fds),
		     MSG_OK_SUBSCRIBE);
	rel = mmap(NULL, RELEASE_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		   fds[1], 0);
	br = mmap(NULL, ok.segment_size, PROT_READ, MAP_SHARED, fds[0], 0);
	cr_assert(rel != MAP_FAILED && br != MAP_FAILED);
	cr_assert_geq(br->capacity, N / BATCH, "the batch ring holds all");
	atomic_store(&rel->cons.sleeping, 1);
	cr_assert_eq(expbus_reserve(p, N, 1000, &span), N);
	memset(span.first, 0, (size_t)N * span.stride);
	cr_assert_eq(expbus_commit(p, N), 0);
	end = now_ms() + 10000;
	while (atomic_load(&br->prod.pos) < N / BATCH && now_ms() < end)
		usleep(1000);
	cr_assert_eq(atomic_load(&br->prod.pos), N / BATCH,
		     "%d batches published", N / BATCH);
	usleep(100000); /* the writes that follow the last publish */
	cr_assert_eq(read(fds[2], &wakes, sizeof(wakes)), sizeof(wakes),
		     "the sleeping subscriber was never woken");
	printf("%d batches in two passes woke the subscriber %llu times\n",
	       N / BATCH, (unsigned long long)wakes);
	cr_assert_leq(wakes, 2,
		      "%llu wakeups for %d batches published in two passes: "
		      "one per batch, not one per pass",
		      (unsigned long long)wakes, N / BATCH);
	munmap((void *)br, ok.segment_size);
	munmap(rel, RELEASE_PAGE_SIZE);
	for (int i = 0; i < 4; i++)
		close(fds[i]);
	close(s);
	expbus_producer_close(p);
}
