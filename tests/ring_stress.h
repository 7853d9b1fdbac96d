/* ring_stress.h — two threads over one ring: a producer and a consumer
 * with random pauses, optionally sleeping on eventfds when full or empty,
 * or (the consumer) parked on a ready set.
 * Shared by the Criterion suite and the ThreadSanitizer program. */
#ifndef EXPBUS_RING_STRESS_H
#define EXPBUS_RING_STRESS_H

#include <stdint.h>

struct shared;

struct stress {
	struct shared *s;
	uint64_t cap;
	uint64_t count;
	int pauses;   /* random pauses in both threads */
	int sleeping; /* block on eventfds instead of spinning */
	/* The consumer parks with RING_READY and waits for its bit in a
	 * ready set (or its eventfd: a commit past half); the producer marks
	 * the bit. Implies sleeping. */
	int ready;
	int prod_efd, cons_efd;
	uint64_t prod_sleeps, cons_sleeps;
	uint64_t marks;	 /* commits that marked the ready set */
	uint64_t lost;	 /* waits that ran into the watchdog timeout */
	uint64_t errors; /* records lost, duplicated or out of order */
};

/* Runs both threads to the end; results in st. */
void stress_run(struct stress *st);

/* $EXPBUS_STRESS_SCALE, 1.0 by default: shrinks the counts under slow
 * sanitizers. */
double stress_scale(void);

#endif
