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

static int map_resize(struct consumer_group *g, uint32_t cap)
{
	uint32_t *keys = calloc(cap, sizeof(*keys));
	uint32_t *vals = calloc(cap, sizeof(*vals));
	uint32_t *old_keys = g->map_keys, *old_vals = g->map_vals;
	uint32_t old_cap = g->map_cap;

	if (!keys || !vals) {
		free(keys);
		free(vals);
		return -ENOMEM;
	}
	g->map_keys = keys;
	g->map_vals = vals;
	g->map_cap = cap;
	g->map_used = 0;
	for (uint32_t i = 0; i < old_cap; i++) {
		if (!old_vals[i])
			continue;
		uint32_t j = hash32(old_keys[i]) & (cap - 1);
		while (vals[j])
			j = (j + 1) & (cap - 1);
		keys[j] = old_keys[i];
		vals[j] = old_vals[i];
		g->map_used++;
	}
	free(old_keys);
	free(old_vals);
	return 0;
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
	free(g->orphans);
	free(g);
}

struct subscription *group_route(struct consumer_group *g, uint32_t game)
{
	uint32_t j;

	if (g->n_members == 0)
		return NULL;
	if (g->map_used * 2 >= g->map_cap &&
	    map_resize(g, g->map_cap ? g->map_cap * 2 : 64) < 0)
		/* Out of memory: still deliver, by hash, without stickiness. */
		return g->members[hash32(game) % g->n_members];
	j = hash32(game) & (g->map_cap - 1);
	while (g->map_vals[j]) {
		if (g->map_keys[j] == game)
			return g->members[g->map_vals[j] - 1];
		j = (j + 1) & (g->map_cap - 1);
	}
	/* A new game: the next member in turn takes it for good. */
	g->next_member = (g->next_member + 1) % g->n_members;
	g->map_keys[j] = game;
	g->map_vals[j] = g->next_member + 1;
	g->map_used++;
	return g->members[g->next_member];
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
	g->members[g->n_members++] = sub;
	return 0;
}

/* Forgets the games of member index gone and renumbers the members after
 * it, in place: rebuild the table from the entries that stay. */
static void map_drop_member(struct consumer_group *g, uint32_t gone)
{
	uint32_t *keys = g->map_keys, *vals = g->map_vals, cap = g->map_cap;

	g->map_keys = NULL;
	g->map_vals = NULL;
	g->map_cap = 0;
	g->map_used = 0;
	if (map_resize(g, cap ? cap : 64) < 0) {
		/* Out of memory: games lose their stickiness, nothing else. */
		free(keys);
		free(vals);
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
		g->map_used++;
	}
	free(keys);
	free(vals);
}

bool group_forget_member(struct consumer_group *g, struct subscription *sub)
{
	uint32_t gone = sub->index;

	memmove(&g->members[gone], &g->members[gone + 1],
		sizeof(*g->members) * (g->n_members - gone - 1));
	g->n_members--;
	for (uint32_t i = gone; i < g->n_members; i++)
		g->members[i]->index = i;
	if (g->next_member >= gone && g->next_member > 0)
		g->next_member--;
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
