/* budget.c — the broker's total shared-memory budget. */
#include "budget.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

uint64_t budget_default_limit(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);

	if (pages <= 0 || size <= 0)
		return 4ull << 30; /* unknown: a modest guess */
	return (uint64_t)pages * (uint64_t)size / 2;
}

int budget_charge(struct shm_budget *bd, uint64_t bytes, const char *what,
		  char *err, size_t errlen)
{
	if (bytes > bd->limit || bd->used > bd->limit - bytes) {
		snprintf(err, errlen,
			 "%s of %llu MiB would exceed the broker's "
			 "shared-memory budget: %llu MiB of %llu MiB are held "
			 "(expbusd --shm-budget)",
			 what,
			 (unsigned long long)((bytes + (1 << 20) - 1) >> 20),
			 (unsigned long long)(bd->used >> 20),
			 (unsigned long long)(bd->limit >> 20));
		return -ENOSPC;
	}
	bd->used += bytes;
	return 0;
}

void budget_refund(struct shm_budget *bd, uint64_t bytes)
{
	bd->used = bytes > bd->used ? 0 : bd->used - bytes;
}
