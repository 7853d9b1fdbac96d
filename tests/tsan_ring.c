/* tsan_ring.c — the ring stress of test_ring.c as a plain program, for
 * ThreadSanitizer builds where Criterion cannot run. Exit 0 when no record
 * was lost, duplicated or reordered and no wakeup was lost. */
#include <stdio.h>

#include "ring_stress.h"

static int check(const char *name, struct stress *st)
{
	stress_run(st);
	printf("%s: %llu records, %llu+%llu sleeps, %llu errors, %llu lost "
	       "wakeups\n",
	       name, (unsigned long long)st->count,
	       (unsigned long long)st->prod_sleeps,
	       (unsigned long long)st->cons_sleeps,
	       (unsigned long long)st->errors, (unsigned long long)st->lost);
	return st->errors == 0 && st->lost == 0;
}

int main(void)
{
	struct stress pauses = {
	    .cap = 64, .count = (uint64_t)(2e6 * stress_scale()), .pauses = 1};
	struct stress sleeping = {
	    .cap = 2, .count = (uint64_t)(1e6 * stress_scale()), .sleeping = 1};
	struct stress ready = {.cap = 64,
			       .count = (uint64_t)(1e6 * stress_scale()),
			       .pauses = 1,
			       .ready = 1};
	int ok = check("random pauses", &pauses);

	ok &= check("sleeping", &sleeping);
	ok &= check("parked on a ready set", &ready);
	printf("%d passed, %d failed\n", ok ? 3 : 0, ok ? 0 : 1);
	return ok ? 0 : 1;
}
