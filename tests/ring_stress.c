/* ring_stress.c — a producer and a consumer thread over one ring, with
 * random pauses and optional eventfd sleeping (see ring_stress.h). */
#include "ring_stress.h"

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "ready_set.h"
#include "ring.h"

struct shared {
	struct ring_side prod;
	struct ring_side cons;
	/* A ready set's word (the ring's bit is 1), on a line of its own as
	 * in a real ready set. */
	_Atomic uint64_t ready;
	uint8_t pad[CACHE_LINE - 8];
	uint64_t slots[];
};

double stress_scale(void)
{
	const char *s = getenv("EXPBUS_STRESS_SCALE");
	return s ? atof(s) : 1.0;
}

static void maybe_pause(unsigned *seed)
{
	int r = rand_r(seed) % 1024;

	if (r == 0) {
		struct timespec ts = {0, (rand_r(seed) % 50) * 1000};
		nanosleep(&ts, NULL);
	} else if (r < 8) {
		sched_yield();
	}
}

/* Blocks on efd; a wait that hits the 2 s watchdog is a lost wakeup. */
static void block(struct stress *st, int efd, uint64_t *sleeps)
{
	struct pollfd pfd = {.fd = efd, .events = POLLIN};
	uint64_t junk;

	(*sleeps)++;
	if (poll(&pfd, 1, 2000) == 0)
		__atomic_add_fetch(&st->lost, 1, __ATOMIC_RELAXED);
	else
		(void)!read(efd, &junk, sizeof(junk));
}

static void wake(int efd)
{
	uint64_t one = 1;
	(void)!write(efd, &one, sizeof(one));
}

/* The producer waits until the consumer has released every record it
 * committed; 2 s without is a lost mark. */
static void wait_consumed(struct stress *st, const struct ring *r)
{
	for (int us = 0; us < 2000000; us += 10) {
		/* Acquire: pairs with the consumer's head store-release. */
		if (atomic_load_explicit(&r->cons->pos, memory_order_acquire) ==
		    r->pos)
			return;
		usleep(10);
	}
	__atomic_add_fetch(&st->lost, 1, __ATOMIC_RELAXED);
}

/* The consumer parked with RING_READY: waits for the ring's bit or its
 * eventfd (a commit past half). A wait that hits the 2 s watchdog is a
 * lost mark. */
static void wait_ready(struct stress *st)
{
	struct pollfd pfd = {.fd = st->cons_efd, .events = POLLIN};
	uint64_t junk;

	st->cons_sleeps++;
	for (int ms = 0; ms < 2000; ms++) {
		if (ready_take(&st->s->ready) & 1)
			return;
		if (poll(&pfd, 1, 1) == 1) {
			(void)!read(st->cons_efd, &junk, sizeof(junk));
			return;
		}
	}
	__atomic_add_fetch(&st->lost, 1, __ATOMIC_RELAXED);
}

static void *producer_main(void *arg)
{
	struct stress *st = arg;
	struct ring r;
	unsigned seed = 1;
	uint64_t v = 0;

	ring_init_producer(&r, &st->s->prod, &st->s->cons, st->s->slots, 8,
			   st->cap);
	while (v < st->count) {
		int n = ring_producer_free(&r, 0,
					   (uint64_t)(rand_r(&seed) % 7 + 1));
		if (n < 0) {
			st->errors++;
			break;
		}
		if (n == 0) {
			if (!st->sleeping && !st->ready)
				continue;
			n = ring_producer_prepare_sleep(&r, 0);
			if (n == 0)
				block(st, st->prod_efd, &st->prod_sleeps);
			ring_producer_sleep_done(&r);
			continue;
		}
		if ((uint64_t)n > st->count - v)
			n = (int)(st->count - v);
		for (int i = 0; i < n; i++)
			*(uint64_t *)ring_slot(&r, r.pos + (uint64_t)i) = v++;
		switch (ring_producer_commit(&r, (uint64_t)n)) {
		case RING_WAKE_NONE:
			break;
		case RING_WAKE_MARK:
			ready_mark(&st->s->ready, 1);
			st->marks++;
			break;
		case RING_WAKE_EVENTFD:
			wake(st->cons_efd);
			break;
		}
		/* Now and then wait until the consumer has it all: then
		 * nothing but this commit's mark can tell a parked consumer. */
		if (st->ready && rand_r(&seed) % 16 == 0)
			wait_consumed(st, &r);
		if (st->pauses)
			maybe_pause(&seed);
	}
	return NULL;
}

static void *consumer_main(void *arg)
{
	struct stress *st = arg;
	struct ring r;
	unsigned seed = 2;
	uint64_t want = 0;

	ring_init_consumer(&r, &st->s->prod, &st->s->cons, st->s->slots, 8,
			   st->cap);
	while (want < st->count) {
		int n = ring_consumer_ready(&r, 0,
					    (uint64_t)(rand_r(&seed) % 7 + 1));
		if (n < 0) {
			st->errors++;
			break;
		}
		if (n == 0) {
			if (st->ready) {
				n = ring_consumer_prepare_ready(&r, 0);
				if (n == 0)
					wait_ready(st);
			} else {
				if (!st->sleeping)
					continue;
				n = ring_consumer_prepare_sleep(&r, 0);
				if (n == 0)
					block(st, st->cons_efd,
					      &st->cons_sleeps);
			}
			ring_consumer_sleep_done(&r);
			continue;
		}
		for (int i = 0; i < n; i++)
			if (*(uint64_t *)ring_slot(&r, r.pos + (uint64_t)i) !=
			    want++)
				st->errors++;
		if (ring_consumer_release(&r, (uint64_t)n))
			wake(st->prod_efd);
		if (st->pauses)
			maybe_pause(&seed);
	}
	return NULL;
}

void stress_run(struct stress *st)
{
	pthread_t a, b;

	st->s = aligned_alloc(64, align_up(sizeof(*st->s) + st->cap * 8, 64));
	memset(st->s, 0, sizeof(*st->s) + st->cap * 8);
	st->prod_efd = eventfd(0, EFD_CLOEXEC);
	st->cons_efd = eventfd(0, EFD_CLOEXEC);
	pthread_create(&a, NULL, producer_main, st);
	pthread_create(&b, NULL, consumer_main, st);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	close(st->prod_efd);
	close(st->cons_efd);
	free(st->s);
}
