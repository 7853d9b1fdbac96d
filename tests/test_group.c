/* test_group.c — subscription groups are bounded and fair: a game is
 * forgotten at its DONE record (200,000 games leave the broker's memory
 * flat) or after --group-idle-s of silence, and a new game goes to the
 * member with the least outstanding work. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "expbus.h"
#include "helpers.h"

#define SCHEMA "v i32"

static struct test_broker tb;

static void teardown(void)
{
	broker_stop(&tb);
}

static void setup_plain(void)
{
	broker_start(&tb, NULL);
}

static void setup_idle(void)
{
	static const char *const extra[] = {"--group-idle-s", "1", NULL};
	broker_start(&tb, extra);
}

static void write_rec(struct expbus_producer *p, uint32_t game, uint32_t turn,
		      uint32_t flags)
{
	struct expbus_record_header h = {
	    .game = game, .turn = turn, .flags = flags};
	int32_t v = (int32_t)turn;
	int rc = expbus_write(p, &h, &v, sizeof(v), 2000);
	cr_assert_eq(rc, 0, "write: %s", strerror(-rc));
}

/* Takes one batch from c within ms, or NULL; its game in *game. */
static const struct expbus_batch *take(struct expbus_consumer *c, int ms,
				       uint32_t *game)
{
	const struct expbus_batch *b;
	struct expbus_column col;

	if (expbus_next_batch(c, ms, &b) != 0)
		return NULL;
	cr_assert_eq(expbus_batch_column(c, b, "game", &col), 0);
	*game = ((const uint32_t *)col.data)[0];
	return b;
}

/* Anonymous memory of the broker (its own heap, not shared segments). */
static long broker_anon_kb(void)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)tb.pid);
	f = fopen(path, "r");
	cr_assert(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

Test(group, a_new_game_goes_to_the_least_loaded_member, .init = setup_plain,
     .fini = teardown, .timeout = 60)
{
	struct expbus *bus;
	struct expbus_producer *p;
	struct expbus_consumer *m[2];
	struct expbus_subscribe_options o = {
	    .batch_size = 1, .batch_slots = 16, .group = "g"};
	const struct expbus_batch *held = NULL, *b;
	uint32_t game;
	int holder = -1;

	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	cr_assert_eq(expbus_producer_attach(bus, "s", SCHEMA, NULL, &p), 0);
	cr_assert_eq(expbus_subscribe(bus, "s", &o, &m[0]), 0);
	cr_assert_eq(expbus_subscribe(bus, "s", &o, &m[1]), 0);
	/* Game 1 goes to one member, which keeps it: one record of
	 * outstanding work. */
	write_rec(p, 1, 0, 0);
	for (int t = 0; t < 50 && holder < 0; t++) {
		for (int i = 0; i < 2 && holder < 0; i++) {
			if ((held = take(m[i], 20, &game))) {
				cr_assert_eq(game, 1u);
				holder = i;
			}
		}
	}
	cr_assert_geq(holder, 0, "game 1 never arrived");
	/* Every new game goes to the other, idle member (round robin would
	 * give the holder every second one). */
	for (uint32_t g = 2; g < 12; g++) {
		write_rec(p, g, 0, 0);
		b = take(m[1 - holder], 2000, &game);
		cr_assert(b, "game %u did not reach the idle member", g);
		cr_assert_eq(game, g);
		expbus_release(m[1 - holder], b);
	}
	cr_assert_null(take(m[holder], 100, &game),
		       "the busy member got game %u", game);
	expbus_release(m[holder], held);
	expbus_consumer_close(m[0]);
	expbus_consumer_close(m[1]);
	expbus_producer_close(p);
	expbus_free(bus);
}

Test(group, a_silent_game_is_forgotten_after_the_idle_time, .init = setup_idle,
     .fini = teardown, .timeout = 60)
{
	struct expbus *bus;
	struct expbus_producer *p;
	struct expbus_consumer *m[2];
	struct expbus_subscribe_options o = {
	    .batch_size = 1, .batch_slots = 16, .group = "g"};
	const struct expbus_batch *held = NULL, *b;
	uint32_t game;
	int holder = -1;

	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	cr_assert_eq(expbus_producer_attach(bus, "s", SCHEMA, NULL, &p), 0);
	cr_assert_eq(expbus_subscribe(bus, "s", &o, &m[0]), 0);
	cr_assert_eq(expbus_subscribe(bus, "s", &o, &m[1]), 0);
	write_rec(p, 5, 0, 0);
	for (int t = 0; t < 50 && holder < 0; t++)
		for (int i = 0; i < 2 && holder < 0; i++)
			if ((held = take(m[i], 20, &game)))
				holder = i;
	cr_assert_geq(holder, 0);
	/* Silent for 2 s > --group-idle-s 1: game 5 is new again and goes
	 * to the member without outstanding work. */
	usleep(2000000);
	write_rec(p, 5, 1, 0);
	b = take(m[1 - holder], 2000, &game);
	cr_assert(b, "game 5 stuck to the busy member after its idle time");
	cr_assert_eq(game, 5u);
	expbus_release(m[1 - holder], b);
	expbus_release(m[holder], held);
	expbus_consumer_close(m[0]);
	expbus_consumer_close(m[1]);
	expbus_producer_close(p);
	expbus_free(bus);
}

Test(group, games_that_end_are_forgotten_200000_leave_memory_flat,
     .init = setup_plain, .fini = teardown, .timeout = 300)
{
	struct expbus *bus;
	struct expbus_producer *p;
	struct expbus_consumer *m[2];
	struct expbus_subscribe_options o = {
	    .batch_size = 64, .max_delay_us = 1000, .group = "g"};
	const uint32_t games = 200000;
	long base = 0, end;
	uint64_t got = 0;

	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	cr_assert_eq(expbus_producer_attach(bus, "s", SCHEMA, NULL, &p), 0);
	cr_assert_eq(expbus_subscribe(bus, "s", &o, &m[0]), 0);
	cr_assert_eq(expbus_subscribe(bus, "s", &o, &m[1]), 0);
	/* Two records a game, the last one DONE, committed many at a time
	 * (one doorbell per span, not per record). */
	for (uint64_t r = 0; r < 2ull * games;) {
		struct expbus_span span;
		const struct expbus_batch *b;
		/* Never wait for room: this thread also drains the members.
		 * No more than are left: a reserve may give fewer than asked
		 * (the room there is), and the last must not overshoot. */
		uint64_t left = 2ull * games - r;
		int n = expbus_reserve(p, left < 64 ? (unsigned)left : 64, 0,
				       &span);

		if (n == -EAGAIN) {
			for (int i = 0; i < 2; i++)
				if (expbus_next_batch(m[i], 1, &b) == 0) {
					got += b->count;
					expbus_release(m[i], b);
				}
			continue;
		}
		cr_assert_gt(n, 0, "reserve: %d", n);
		for (int k = 0; k < n; k++, r++) {
			struct expbus_record_header *h =
			    expbus_span_record(&span, (unsigned)k);
			int32_t v = (int32_t)(r & 1);
			h->game = (uint32_t)(r / 2);
			h->player = 0;
			h->turn = (uint32_t)(r & 1);
			h->flags = (r & 1) ? EXPBUS_RECORD_DONE : 0;
			memcpy(expbus_record_data(h), &v, sizeof(v));
		}
		expbus_commit(p, (unsigned)n);
		for (int i = 0; i < 2; i++)
			while (expbus_next_batch(m[i], 0, &b) == 0) {
				got += b->count;
				expbus_release(m[i], b);
			}
		if (!base && r >= 40000)
			base = broker_anon_kb();
	}
	for (int t = 0; t < 200 && got < 2ull * games; t++)
		for (int i = 0; i < 2; i++) {
			const struct expbus_batch *b;
			if (expbus_next_batch(m[i], 10, &b) == 0) {
				got += b->count;
				expbus_release(m[i], b);
			}
		}
	cr_assert_eq(got, 2ull * games, "the members got %llu of %llu records",
		     (unsigned long long)got, 2ull * games);
	end = broker_anon_kb();
	cr_log_info("broker RssAnon %ld kB after 20,000 games, %ld kB after "
		    "%u",
		    base, end, games);
	/* 180,000 more games remembered would take megabytes. */
	cr_assert_lt(end - base, 512, "broker grew from %ld to %ld kB", base,
		     end);
	expbus_consumer_close(m[0]);
	expbus_consumer_close(m[1]);
	expbus_producer_close(p);
	expbus_free(bus);
}
