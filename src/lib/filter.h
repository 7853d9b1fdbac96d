/* filter.h — which records a subscription selects: game ids, player ids
 * and a minimum turn. The broker routes with it and `expbus check`
 * verifies deliveries with the very same code. */
#ifndef EXPBUS_FILTER_H
#define EXPBUS_FILTER_H

#include <stdbool.h>
#include <stdint.h>

#include "expbus.h"

struct filter {
	uint32_t *games; /* sorted; NULL: all */
	uint32_t n_games;
	uint32_t *players; /* sorted; NULL: all */
	uint32_t n_players;
	uint32_t min_turn;
};

/* Whether x is among the n sorted ids (binary search). */
bool filter_contains(const uint32_t *sorted, uint32_t n, uint32_t x);

/* Whether the filter selects a record with this game, player and turn.
 * Inline: the broker calls it per record per subscription, and a filter
 * with no id lists costs one comparison. */
static inline bool filter_match_ids(const struct filter *f, uint32_t game,
				    uint32_t player, uint32_t turn)
{
	if (turn < f->min_turn)
		return false;
	if (f->games && !filter_contains(f->games, f->n_games, game))
		return false;
	if (f->players && !filter_contains(f->players, f->n_players, player))
		return false;
	return true;
}

static inline bool filter_match(const struct filter *f,
				const struct expbus_record_header *h)
{
	return filter_match_ids(f, h->game, h->player, h->turn);
}

#endif
