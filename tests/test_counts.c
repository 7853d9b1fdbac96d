/* test_counts.c — the key -> counter map of `expbus check` (tools/
 * counts.c): exact counts and a report sorted once, for millions of keys
 * (issue 11: an insertion sort took more than 10 minutes there). */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "counts.h"

Test(counts, counts_each_key_and_sorts_the_report)
{
	struct counts m = {0};
	struct count_pair *v;
	bool fresh;

	/* Keys in a scrambled order (7919 is prime to 3000); key k counted
	 * k % 3 + 1 times. */
	for (uint64_t i = 0; i < 3000; i++) {
		uint64_t k = i * 7919 % 3000;
		for (uint64_t r = 0; r <= k % 3; r++)
			(*counts_slot(&m, k, &fresh))++;
	}
	cr_assert_eq(m.n, 3000);
	cr_assert_eq(counts_get(&m, 5), 3);
	cr_assert_eq(counts_get(&m, 3001), 0);
	v = counts_sorted(&m);
	cr_assert_not_null(v);
	for (size_t i = 0; i < m.n; i++) {
		cr_assert_eq(v[i].key, i);
		cr_assert_eq(v[i].val, i % 3 + 1);
	}
	free(v);
	counts_free(&m);
}

/* Four million distinct game ids inserted in a scrambled order: the
 * report's pairs come back sorted. The meson timeout fails a quadratic
 * sort (hours at this size); the figure itself is not asserted. */
Test(counts, millions_of_keys_sort_in_one_pass, .timeout = 120)
{
	const uint64_t n = 4000000;
	struct counts m = {0};
	struct count_pair *v;
	bool fresh;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t *c = counts_slot(&m, (i * 2654435761u) % n, &fresh);
		cr_assert_not_null(c);
		cr_assert(fresh);
		*c = i;
	}
	cr_assert_eq(m.n, n);
	v = counts_sorted(&m);
	cr_assert_not_null(v);
	for (uint64_t i = 0; i < n; i++)
		cr_assert_eq(v[i].key, i);
	free(v);
	counts_free(&m);
}
