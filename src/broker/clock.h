/* clock.h — the broker's clock: monotonic nanoseconds. */
#ifndef EXPBUSD_CLOCK_H
#define EXPBUSD_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t broker_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
