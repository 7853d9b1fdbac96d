/* test_filter.c — the subscription filter the broker routes with and
 * `expbus check` verifies with (src/lib/filter.c). */
#include <criterion/criterion.h>

#include "filter.h"

Test(filter, empty_filter_selects_every_record)
{
	struct filter f = {0};
	struct expbus_record_header h = {.game = 7, .player = 3, .turn = 0};

	cr_assert(filter_match(&f, &h));
}

Test(filter, min_turn_turns_away_earlier_turns)
{
	struct filter f = {.min_turn = 5};

	cr_assert_not(filter_match_ids(&f, 1, 1, 4));
	cr_assert(filter_match_ids(&f, 1, 1, 5));
}

Test(filter, games_and_players_must_both_be_listed)
{
	uint32_t games[] = {2, 10, 1000, 4000000000u}, players[] = {1};
	struct filter f = {
	    .games = games, .n_games = 4, .players = players, .n_players = 1};

	cr_assert(filter_match_ids(&f, 1000, 1, 0));
	cr_assert(filter_match_ids(&f, 4000000000u, 1, 0));
	cr_assert_not(filter_match_ids(&f, 1000, 0, 0));
	cr_assert_not(filter_match_ids(&f, 11, 1, 0));
	cr_assert_not(filter_match_ids(&f, 0, 1, 0));
}

Test(filter, contains_finds_every_listed_id_and_no_other)
{
	uint32_t ids[101];

	for (uint32_t i = 0; i < 101; i++)
		ids[i] = 3 * i + 1;
	for (uint32_t x = 0; x < 400; x++)
		cr_assert_eq(filter_contains(ids, 101, x),
			     x % 3 == 1 && x <= 301, "id %u", x);
	cr_assert_not(filter_contains(ids, 0, 1));
}
