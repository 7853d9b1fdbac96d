/* ratelimit.h — at most one log line per interval for a repeated event
 * (an accept that keeps failing, a flood of refused connections), with a
 * count of the lines held back. */
#ifndef EXPBUSD_RATELIMIT_H
#define EXPBUSD_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct ratelimit {
	uint64_t interval_ns;
	uint64_t next_ns;    /* the next line may be logged from then */
	uint64_t suppressed; /* lines held back since the last one */
};

/* Whether a line may be logged at now_ns. When it may, *held is how many
 * were held back before it (to say so in the line) and the count starts
 * again; when not, the line is counted as held back. */
bool ratelimit_pass(struct ratelimit *r, uint64_t now_ns, uint64_t *held);

#endif
