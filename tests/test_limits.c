/* test_limits.c — the broker's limits as pure objects: the shared-memory
 * budget, per-uid connection counts, rate-limited log lines, and the
 * handed-ring validator. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "budget.h"
#include "conn_limits.h"
#include "ratelimit.h"
#include "ring_check.h"

Test(budget, charges_up_to_the_limit_and_refuses_with_a_message)
{
	struct shm_budget bd = {.limit = 100u << 20};
	char err[256];

	cr_assert_eq(budget_charge(&bd, 60u << 20, "a ring", err, sizeof(err)),
		     0);
	cr_assert_eq(budget_charge(&bd, 50u << 20, "a ring", err, sizeof(err)),
		     -ENOSPC);
	cr_assert(strstr(err, "budget") && strstr(err, "--shm-budget"), "%s",
		  err);
	cr_assert(strstr(err, "60 MiB of 100 MiB"), "%s", err);
	cr_assert_eq(bd.used, 60u << 20, "a refusal counts nothing");
	budget_refund(&bd, 60u << 20);
	cr_assert_eq(budget_charge(&bd, 100u << 20, "a ring", err, sizeof(err)),
		     0);
	cr_assert_eq(budget_charge(&bd, UINT64_MAX, "x", err, sizeof(err)),
		     -ENOSPC, "no wrap-around");
}

Test(conn_limits, each_uid_is_held_to_its_own_limit)
{
	struct conn_limits l = {.max_per_uid = 2};

	cr_assert(conn_limits_admit(&l, 1000));
	cr_assert(conn_limits_admit(&l, 1000));
	cr_assert_not(conn_limits_admit(&l, 1000));
	cr_assert(conn_limits_admit(&l, 1001), "another uid is not locked out");
	conn_limits_release(&l, 1000);
	cr_assert(conn_limits_admit(&l, 1000));
	conn_limits_release(&l, 1001);
	cr_assert_eq(l.n, 1, "a uid without connections is forgotten");
	conn_limits_free(&l);
}

Test(ratelimit, one_line_per_interval_counting_the_rest)
{
	struct ratelimit r = {.interval_ns = 1000};
	uint64_t held = 99;

	cr_assert(ratelimit_pass(&r, 5000, &held));
	cr_assert_eq(held, 0);
	for (int i = 0; i < 10; i++)
		cr_assert_not(ratelimit_pass(&r, 5000 + (uint64_t)i, &held));
	cr_assert(ratelimit_pass(&r, 6000, &held));
	cr_assert_eq(held, 10);
}

static struct ring_copy good_ring(void)
{
	return (struct ring_copy){
	    .magic = MAGIC_PRODUCER_RING,
	    .version = LAYOUT_VERSION,
	    .size = 256 + 64 * 296,
	    .capacity = 64,
	    .slot_size = 296,
	    .data_size = 264,
	    .producer_id = 7,
	    .schema_hash = 0x1234,
	    .data_offset = 256,
	};
}

static const struct ring_expect want = {
    .seg_size = 256 + 64 * 296,
    .slot_size = 296,
    .data_size = 264,
    .schema_hash = 0x1234,
    .min_slots = 16,
    .max_slots = 1u << 24,
};

Test(ring_check, a_ring_that_fits_its_stream_is_accepted)
{
	struct ring_copy c = good_ring();
	char err[256];

	cr_assert_eq(ring_copy_check(&c, &want, err, sizeof(err)), 0);
	c.head = UINT64_MAX - 5; /* counters wrap */
	c.tail = c.head + 64;
	cr_assert_eq(ring_copy_check(&c, &want, err, sizeof(err)), 0);
}

Test(ring_check, impossible_headers_are_refused_with_the_reason)
{
	struct ring_copy c;
	char err[256];

	c = good_ring();
	c.capacity = 1u << 24; /* slots far past the segment */
	cr_assert_eq(ring_copy_check(&c, &want, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "do not fit"), "%s", err);
	c = good_ring();
	c.capacity = 48;
	cr_assert_eq(ring_copy_check(&c, &want, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "power of two"), "%s", err);
	c = good_ring();
	c.data_offset = 0;
	cr_assert_eq(ring_copy_check(&c, &want, err, sizeof(err)), -EINVAL);
	c = good_ring();
	c.tail = 65;
	cr_assert_eq(ring_copy_check(&c, &want, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "counters"), "%s", err);
	c = good_ring();
	c.head = 1; /* tail behind head */
	cr_assert_eq(ring_copy_check(&c, &want, err, sizeof(err)), -EINVAL);
	c = good_ring();
	c.size = 1u << 30;
	cr_assert_eq(ring_copy_check(&c, &want, err, sizeof(err)), -EINVAL);
	c = good_ring();
	c.producer_id = 0; /* ids survive restarts: no broker gives 0 */
	cr_assert_eq(ring_copy_check(&c, &want, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "producer id 0"), "%s", err);
	c = good_ring();
	c.schema_hash = 7;
	cr_assert_eq(ring_copy_check(&c, &want, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "schema"), "%s", err);
}
