/* ratelimit.c — one log line per interval for repeated events. */
#include "ratelimit.h"

bool ratelimit_pass(struct ratelimit *r, uint64_t now_ns, uint64_t *held)
{
	if (now_ns < r->next_ns) {
		r->suppressed++;
		return false;
	}
	*held = r->suppressed;
	r->suppressed = 0;
	r->next_ns = now_ns + r->interval_ns;
	return true;
}
