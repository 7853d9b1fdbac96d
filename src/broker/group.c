/* group.c — subscription groups: each record goes to one member, every
 * record of a game to the same member while it lives; a dead member is
 * kept as an orphan whose unreleased records pump.c hands to the members
 * that remain, before newer ones. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"

static uint32_t hash32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}

/* The game map: open addressing with linear probing; vals hold member
 * index + 1 (0: empty), last when the game last had a record. */
static int map_resize(struct consumer_group *g, uint32_t cap)
{
	uint32_t *keys = calloc(cap, sizeof(*keys));
	uint32_t *vals = calloc(cap, sizeof(*vals));
	uint64_t *last = calloc(cap, sizeof(*last));
	uint32_t *old_keys = g->map_keys, *old_vals = g->map_vals;
	uint64_t *old_last = g->map_last;
	uint32_t old_cap = g->map_cap;

	if (!keys || !vals || !last) {
		free(keys);
		free(vals);
		free(last);
		return -ENOMEM;
	}
	g->map_keys = keys;
	g->map_vals = vals;
	g->map_last = last;
	g->map_cap = cap;
	g->map_used = 0;
	g->cached_member = NULL;
	for (uint32_t i = 0; i < old_cap; i++) {
		if (!old_vals[i])
			continue;
		uint32_t j = hash32(old_keys[i]) & (cap - 1);
		while (vals[j])
			j = (j + 1) & (cap - 1);
		keys[j] = old_keys[i];
		vals[j] = old_vals[i];
		last[j] = old_last[i];
		g->map_used++;
	}
	free(old_keys);
	free(old_vals);
	free(old_last);
	return 0;
}

/* Removes the entry at slot i, shifting back the entries of its probe
 * run (no tombstones: the table never fills with dead entries). */
static void map_delete_at(struct consumer_group *g, uint32_t i)
{
	uint32_t mask = g->map_cap - 1, j = i;

	g->cached_member = NULL;
	g->map_vals[i] = 0;
	g->map_used--;
	for (;;) {
		uint32_t home;
		j = (j + 1) & mask;
		if (!g->map_vals[j])
			break;
		home = hash32(g->map_keys[j]) & mask;
		/* Entry j stays unless the hole at i lies cyclically in
		 * [home, j): then it moves into the hole. */
		if (((j - home) & mask) < ((j - i) & mask))
			continue;
		g->map_keys[i] = g->map_keys[j];
		g->map_vals[i] = g->map_vals[j];
		g->map_last[i] = g->map_last[j];
		g->map_vals[j] = 0;
		i = j;
	}
}

/* Shrinks a table that a burst of games grew, so that memory follows the
 * live games. */
static void map_shrink(struct consumer_group *g)
{
	uint32_t cap = g->map_cap;

	while (cap > 64 && g->map_used * 8 < cap)
		cap /= 2;
	if (cap != g->map_cap)
		(void)map_resize(g, cap);
}

static uint32_t map_find(const struct consumer_group *g, uint32_t game)
{
	uint32_t j;

	if (!g->map_cap)
		return UINT32_MAX;
	j = hash32(game) & (g->map_cap - 1);
	while (g->map_vals[j]) {
		if (g->map_keys[j] == game)
			return j;
		j = (j + 1) & (g->map_cap - 1);
	}
	return UINT32_MAX;
}

struct consumer_group *group_new(struct stream *s, const char *name)
{
	struct consumer_group *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	snprintf(g->name, sizeof(g->name), "%s", name);
	g->stream = s;
	return g;
}

void group_free(struct consumer_group *g)
{
	free(g->members);
	free(g->map_keys);
	free(g->map_vals);
	free(g->map_last);
	free(g->orphans);
	free(g);
}

struct subscription *group_lookup(struct consumer_group *g, uint32_t game,
				  uint64_t now)
{
	uint32_t j;

	if (g->n_members == 0)
		return NULL;
	if (g->cached_member && g->cached_game == game) {
		g->map_last[g->cached_slot] = now;
		return g->cached_member;
	}
	j = map_find(g, game);
	if (j == UINT32_MAX)
		return NULL;
	g->map_last[j] = now;
	g->cached_game = game;
	g->cached_slot = j;
	g->cached_member = g->members[g->map_vals[j] - 1];
	return g->cached_member;
}

void group_assign(struct consumer_group *g, uint32_t game,
		  struct subscription *sub, uint64_t now)
{
	uint32_t j;

	g->cached_member = NULL;
	if (g->map_used * 2 >= g->map_cap &&
	    map_resize(g, g->map_cap ? g->map_cap * 2 : 64) < 0)
		return; /* out of memory: the game loses its stickiness */
	j = hash32(game) & (g->map_cap - 1);
	while (g->map_vals[j])
		j = (j + 1) & (g->map_cap - 1);
	g->map_keys[j] = game;
	g->map_vals[j] = sub->index + 1;
	g->map_last[j] = now;
	g->map_used++;
}

void group_forget_game(struct consumer_group *g, uint32_t game)
{
	uint32_t j = map_find(g, game);

	if (j == UINT32_MAX)
		return;
	map_delete_at(g, j);
	map_shrink(g);
}

uint32_t group_expire(struct consumer_group *g, uint64_t now, uint64_t idle_ns)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < g->map_cap;) {
		if (g->map_vals[i] && now - g->map_last[i] > idle_ns) {
			/* The delete may shift a later entry into slot i:
			 * look at slot i again. An entry shifted back across
			 * the end (from slot 0) is seen on the next call. */
			map_delete_at(g, i);
			n++;
			continue;
		}
		i++;
	}
	map_shrink(g);
	return n;
}

int group_add_member(struct consumer_group *g, struct subscription *sub)
{
	if (g->n_members == g->cap_members) {
		uint32_t cap = g->cap_members ? g->cap_members * 2 : 4;
		struct subscription **m = realloc(g->members, sizeof(*m) * cap);
		if (!m)
			return -ENOMEM;
		g->members = m;
		g->cap_members = cap;
	}
	sub->group = g;
	sub->index = g->n_members;
	g->cached_member = NULL;
	g->members[g->n_members++] = sub;
	return 0;
}

/* Forgets the games of member index gone and renumbers the members after
 * it, in place: rebuild the table from the entries that stay. */
static void map_drop_member(struct consumer_group *g, uint32_t gone)
{
	uint32_t *keys = g->map_keys, *vals = g->map_vals, cap = g->map_cap;
	uint64_t *last = g->map_last;

	g->map_keys = NULL;
	g->map_vals = NULL;
	g->map_last = NULL;
	g->map_cap = 0;
	g->map_used = 0;
	if (map_resize(g, cap ? cap : 64) < 0) {
		/* Out of memory: games lose their stickiness, nothing else. */
		free(keys);
		free(vals);
		free(last);
		return;
	}
	for (uint32_t i = 0; i < cap; i++) {
		uint32_t v = vals[i], j;
		if (!v || v - 1 == gone)
			continue;
		if (v - 1 > gone)
			v--;
		j = hash32(keys[i]) & (g->map_cap - 1);
		while (g->map_vals[j])
			j = (j + 1) & (g->map_cap - 1);
		g->map_keys[j] = keys[i];
		g->map_vals[j] = v;
		g->map_last[j] = last[i];
		g->map_used++;
	}
	free(keys);
	free(vals);
	free(last);
}

bool group_forget_member(struct consumer_group *g, struct subscription *sub)
{
	uint32_t gone = sub->index;

	memmove(&g->members[gone], &g->members[gone + 1],
		sizeof(*g->members) * (g->n_members - gone - 1));
	g->n_members--;
	for (uint32_t i = gone; i < g->n_members; i++)
		g->members[i]->index = i;
	map_drop_member(g, gone);
	if (g->n_members == 0)
		return false;
	/* Keep its records to hand to the others, in order, first. */
	struct subscription **o =
	    realloc(g->orphans, sizeof(*o) * (g->n_orphans + 1));
	if (!o)
		return false;
	g->orphans = o;
	if (g->n_orphans == 0) {
		g->orphan_pos = sub->ring.cached; /* its released head */
		g->orphan_index = 0;
	}
	g->orphans[g->n_orphans++] = sub;
	return true;
}
