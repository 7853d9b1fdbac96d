/* budget.h — the broker's total shared-memory budget: every producer ring,
 * batch ring and release page it holds counts against --shm-budget, so
 * that no number of peers can make it fallocate the machine's memory. */
#ifndef EXPBUSD_BUDGET_H
#define EXPBUSD_BUDGET_H

#include <stddef.h>
#include <stdint.h>

struct shm_budget {
	uint64_t limit; /* bytes */
	uint64_t used;
};

/* The default limit: half of the machine's physical memory. */
uint64_t budget_default_limit(void);

/* Counts bytes more as held. Returns 0, or -ENOSPC (nothing counted) with
 * a message in err naming what was asked, what is held and the limit. */
int budget_charge(struct shm_budget *bd, uint64_t bytes, const char *what,
		  char *err, size_t errlen);

/* Counts bytes as given back (what budget_charge counted). */
void budget_refund(struct shm_budget *bd, uint64_t bytes);

#endif
