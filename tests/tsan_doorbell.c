/* tsan_doorbell.c — no lost doorbell, under ThreadSanitizer: the broker
 * and its clients as threads of one process (built with
 * -Dtsan_shared_maps=true). Producer threads each commit one record, wait
 * until the subscriber has it, pause a random while (so that the broker
 * parks their ring or goes to sleep) and commit the next. A record that
 * no later commit follows is noticed only through its producer's doorbell:
 * if one were lost, its producer would wait in vain and the program fails.
 * With the argument `coalesce` the subscription takes batches of 2 that
 * may wait 4 ms: the broker coalesces on a 1 ms tick and parks quiet rings
 * on the ready set, so the producers mark bits instead (ready.c) and the
 * broker takes them from another thread. Exit 0 when all is well. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "expbus.h"
#include "loop.h"

#define PRODUCERS 8
#define SCHEMA	  "v i32"
#define WAIT_MS	  10000 /* for one record, under TSan on a busy host */

static uint32_t records = 300;
static unsigned pause_us = 1000;	/* longest pause between records */
static atomic_uint seen[PRODUCERS + 1]; /* by producer id */
static atomic_int failures;
static atomic_int done;

#define FAIL(...)                                                              \
	do {                                                                   \
		fprintf(stderr, "tsan_doorbell: " __VA_ARGS__);                \
		fputc('\n', stderr);                                           \
		atomic_fetch_add(&failures, 1);                                \
	} while (0)

struct producer_arg {
	struct expbus_producer *p;
	uint32_t id;
	unsigned seed;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *broker_main(void *arg)
{
	broker_run(arg);
	return NULL;
}

static void *producer_main(void *arg)
{
	struct producer_arg *a = arg;

	for (uint32_t i = 0; i < records; i++) {
		struct expbus_record_header h = {.game = a->id, .turn = i};
		int32_t v = (int32_t)i;
		uint64_t end;
		int err = expbus_write(a->p, &h, &v, sizeof(v), WAIT_MS);

		if (err < 0) {
			FAIL("producer %u: write: %d", a->id, err);
			return NULL;
		}
		end = now_ms() + WAIT_MS;
		while (atomic_load(&seen[a->id]) < i + 1) {
			if (now_ms() > end) {
				FAIL("producer %u: record %u never arrived "
				     "(lost doorbell)",
				     a->id, i);
				return NULL;
			}
			usleep(50);
		}
		/* 0 to ~1 ms: sometimes the ring is still active, sometimes
		 * parked, sometimes the broker sleeps. */
		usleep((unsigned)(rand_r(&a->seed) % pause_us));
	}
	return NULL;
}

static void *reader_main(void *arg)
{
	struct expbus_consumer *c = arg;
	uint32_t ids[PRODUCERS + 1] = {0}; /* producer id per game */

	while (!atomic_load(&done)) {
		const struct expbus_batch *b;
		struct expbus_column src, game, turn;
		int err = expbus_next_batch(c, 100, &b);

		if (err == -ETIMEDOUT || err == -EAGAIN)
			continue;
		if (err < 0) {
			FAIL("next_batch: %d", err);
			break;
		}
		if (expbus_batch_column(c, b, "source", &src) ||
		    expbus_batch_column(c, b, "game", &game) ||
		    expbus_batch_column(c, b, "turn", &turn)) {
			FAIL("missing column");
			break;
		}
		for (uint32_t i = 0; i < b->count; i++) {
			/* Producer a writes game a->id; its producer id is the
			 * broker's (not 1..N), the same for all its records. */
			uint32_t p = ((const uint32_t *)game.data)[i];
			uint32_t id = ((const uint32_t *)src.data)[i];
			uint32_t t = ((const uint32_t *)turn.data)[i];
			if (p == 0 || p > PRODUCERS || id == 0 ||
			    (ids[p] && ids[p] != id)) {
				FAIL("bad game %u or source %u", p, id);
				continue;
			}
			ids[p] = id;
			if (t != atomic_load(&seen[p]))
				FAIL("producer %u: record %u, want %u", p, t,
				     atomic_load(&seen[p]));
			atomic_store(&seen[p], t + 1);
		}
		expbus_release(c, b);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	static struct broker b;
	static struct producer_arg args[PRODUCERS];
	struct expbus *bus;
	struct expbus_consumer *c;
	struct expbus_subscribe_options o = {.batch_size = 1,
					     .max_delay_us = 60000000};
	pthread_t bt, pt[PRODUCERS], rt;
	char dir[256], path[300];
	const char *tmp = getenv("TMPDIR");
	sigset_t mask;
	int ok;

	if (argc > 1)
		records = (uint32_t)strtoul(argv[1], NULL, 10);
	if (argc > 2 && strcmp(argv[2], "coalesce") == 0) {
		o.batch_size = 2;
		o.max_delay_us = 4000;
		pause_us = 4000; /* some rings idle for ticks, some not */
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	pthread_sigmask(SIG_BLOCK, &mask, NULL); /* for the broker's signalfd */
	snprintf(dir, sizeof(dir), "%s/expbus-tsan-XXXXXX", tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/s.sock", dir);
	b.cfg.socket_path = path;
	b.cfg.ring_bytes = 4 << 10;
	b.cfg.max_segment = 1 << 30;
	b.cfg.default_batch = 32;
	b.cfg.default_delay_us = 100000;
	b.cfg.log_level = LOG_WARN;
	b.cfg.spin_ns = 20000u; /* expbusd's default: the spin runs too */
	b.cfg.coalesce_min_ns = 1000000u; /* expbusd's default */
	if (broker_open(&b) < 0)
		return 1;
	pthread_create(&bt, NULL, broker_main, &b);
	expbus_new(path, &bus);
	for (int i = 0; i < PRODUCERS; i++) {
		args[i].id = (uint32_t)i + 1; /* its game id, and seen[] */
		args[i].seed = (unsigned)i * 7919u + 1;
		if (expbus_producer_attach(bus, "s", SCHEMA, NULL, &args[i].p) <
		    0) {
			fprintf(stderr, "attach: %s\n", expbus_last_error(bus));
			return 1;
		}
	}
	/* max_delay 60 s: only a doorbell, never the flush timer, brings a
	 * record to the subscriber in time. */
	if (expbus_subscribe(bus, "s", &o, &c) < 0) {
		fprintf(stderr, "subscribe: %s\n", expbus_last_error(bus));
		return 1;
	}
	pthread_create(&rt, NULL, reader_main, c);
	for (int i = 0; i < PRODUCERS; i++)
		pthread_create(&pt[i], NULL, producer_main, &args[i]);
	for (int i = 0; i < PRODUCERS; i++)
		pthread_join(pt[i], NULL);
	atomic_store(&done, 1);
	pthread_join(rt, NULL);
	for (int i = 1; i <= PRODUCERS; i++)
		if (atomic_load(&seen[i]) != records)
			FAIL("producer %d: %u of %u records arrived", i,
			     atomic_load(&seen[i]), records);
	expbus_consumer_close(c);
	for (int i = 0; i < PRODUCERS; i++)
		expbus_producer_close(args[i].p);
	kill(getpid(), SIGTERM);
	pthread_join(bt, NULL);
	if (o.batch_size > 1)
		printf("tsan_doorbell: %llu marks taken from the ready set\n",
		       (unsigned long long)b.count.ready_marks);
	if (o.batch_size > 1 && b.count.ready_marks == 0)
		FAIL("coalescing, no producer ever marked the ready set");
	broker_close(&b);
	expbus_free(bus);
	rmdir(dir);
	ok = atomic_load(&failures) == 0;
	printf("tsan_doorbell: %u records x %d producers, one at a time: %s\n",
	       records, PRODUCERS, ok ? "ok" : "FAILED");
	return ok ? 0 : 1;
}
