/* recovery_game.c — a game for the recovery tests (tests/recovery): one
 * producer writing the records of tools/pattern.h through reserve with
 * timeout 0 and commit, never waiting on the broker, and timing both.
 *
 *   recovery_game SOCKET STREAM INDEX COUNT RATE RING_SLOTS
 *
 * Attaches, prints "attached", waits for a line on stdin, then writes
 * COUNT records as producer INDEX at RATE records/s (0: as fast as
 * it can), retrying after 1 ms when the ring is full. Prints one line per
 * event on stdout: "full <committed> <reserve0_ns>" the first time a
 * reserve(timeout 0) finds the ring full after it had room, then "done"
 * with a JSON summary once COUNT are committed; it then keeps its ring
 * handed to whichever broker listens (expbus_producer_fd/_dispatch) until
 * SIGTERM, so that every committed record can still be delivered. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "expbus.h"
#include "pattern.h"

#define SCHEMA "obs f32[4,4]; action i32; reward f32"

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	struct pattern pt = {.games = 4, .episode_len = 100, .players = 2};
	struct expbus_producer_options po = {0};
	struct expbus_producer *p;
	struct expbus *bus;
	uint64_t count, s = 0, t0, max_commit = 0, max_reserve0 = 0, eagain = 0;
	uint64_t max_commit_run = 0, blocked = 0, preempted = 0;
	uint32_t index;
	double rate;
	int err, full = 0;
	size_t data_size;

	if (argc != 7) {
		fprintf(stderr,
			"usage: %s SOCKET STREAM INDEX COUNT RATE "
			"RING_SLOTS\n",
			argv[0]);
		return 2;
	}
	index = (uint32_t)strtoul(argv[3], NULL, 10);
	count = strtoull(argv[4], NULL, 10);
	rate = strtod(argv[5], NULL);
	po.ring_slots = (uint32_t)strtoul(argv[6], NULL, 10);
	signal(SIGTERM, on_term);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (expbus_new(argv[1], &bus) < 0)
		return 1;
	err = expbus_producer_attach(bus, argv[2], SCHEMA, &po, &p);
	if (err < 0) {
		fprintf(stderr, "attach: %s\n", expbus_last_error(bus));
		return 1;
	}
	data_size = expbus_producer_data_size(p);
	/* Attached: the stream exists. Write once told to (subscribers are
	 * in place by then). */
	printf("attached\n");
	char go[16];
	if (!fgets(go, sizeof(go), stdin))
		return 1;
	t0 = now_ns();
	while (s < count && !stop) {
		struct expbus_span span;
		uint64_t a, b, c;
		int n;

		if (rate > 0 &&
		    (double)(now_ns() - t0) * 1e-9 * rate < (double)s) {
			(void)poll(NULL, 0, 1);
			continue;
		}
		a = now_ns();
		n = expbus_reserve(p, 1, 0, &span);
		b = now_ns();
		if (b - a > max_reserve0)
			max_reserve0 = b - a;
		if (n == -EAGAIN) {
			eagain++;
			if (!full)
				printf("full %" PRIu64 " %" PRIu64 "\n", s,
				       b - a);
			full = 1;
			/* An event-loop game: sleep on the producer's fd. */
			struct pollfd pfd = {.fd = expbus_producer_fd(p),
					     .events = POLLIN};
			(void)poll(&pfd, 1, 1);
			(void)expbus_producer_dispatch(p);
			continue;
		}
		if (n < 0) {
			fprintf(stderr, "reserve: %d %s\n", n,
				expbus_last_error(bus));
			return 1;
		}
		full = 0;
		struct expbus_record_header *r = span.first;
		pattern_header(&pt, index, s, r);
		pattern_fill(pattern_base(index, s), expbus_record_data(r),
			     data_size);
		/* Time every commit, and tell apart the ones the scheduler
		 * preempted (an involuntary context switch: a shared machine)
		 * from those that blocked (a voluntary one: a waiting
		 * syscall, which commit must never make). */
		struct rusage r0, r1;
		getrusage(RUSAGE_THREAD, &r0);
		a = now_ns();
		err = expbus_commit(p, 1);
		c = now_ns();
		getrusage(RUSAGE_THREAD, &r1);
		if (c - a > max_commit)
			max_commit = c - a;
		if (r1.ru_nvcsw != r0.ru_nvcsw)
			blocked++;
		if (r1.ru_nivcsw != r0.ru_nivcsw)
			preempted++;
		else if (c - a > max_commit_run)
			max_commit_run = c - a;
		if (err < 0)
			return 1;
		s++;
	}
	printf("done {\"index\": %u, \"committed\": %" PRIu64
	       ", \"max_commit_ns\": %" PRIu64 ", \"max_reserve0_ns\": %" PRIu64
	       ", \"eagain\": %" PRIu64
	       ", \"max_commit_unpreempted_ns\": %" PRIu64
	       ", \"commits_blocked\": %" PRIu64
	       ", \"commits_preempted\": %" PRIu64 "}\n",
	       index, s, max_commit, max_reserve0, eagain, max_commit_run,
	       blocked, preempted);
	while (!stop) {
		struct pollfd pfd = {.fd = expbus_producer_fd(p),
				     .events = POLLIN};
		(void)poll(&pfd, 1, 100);
		(void)expbus_producer_dispatch(p);
	}
	expbus_producer_close(p);
	expbus_free(bus);
	return 0;
}
