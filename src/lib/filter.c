/* filter.c — the id lookup of subscription filters (filter.h), shared by
 * the broker and the expbus tool. */
#include "filter.h"

bool filter_contains(const uint32_t *sorted, uint32_t n, uint32_t x)
{
	uint32_t lo = 0, hi = n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (sorted[mid] < x)
			lo = mid + 1;
		else if (sorted[mid] > x)
			hi = mid;
		else
			return true;
	}
	return false;
}
