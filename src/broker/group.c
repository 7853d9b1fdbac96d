/* group.c — subscription groups: each record goes to one member, every
 * record of a game to the same member while it lives; a dead member's
 * unreleased records go to the members that remain, before newer ones. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"

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

/* Rebuilds record i of a batch slot into hdr and data (the row layout). */
static void gather(const struct subscription *sub, const uint8_t *slot,
		   uint32_t i, struct expbus_record_header *hdr, uint64_t *seq,
		   uint32_t *source, uint8_t *data)
{
	const struct schema *s = &sub->stream->schema;
	const uint64_t *off = sub->col_offset;

	*seq = ((const uint64_t *)(slot + off[0]))[i];
	hdr->seq = *seq;
	hdr->timestamp_ns = ((const uint64_t *)(slot + off[1]))[i];
	*source = ((const uint32_t *)(slot + off[2]))[i];
	hdr->game = ((const uint32_t *)(slot + off[3]))[i];
	hdr->player = ((const uint32_t *)(slot + off[4]))[i];
	hdr->turn = ((const uint32_t *)(slot + off[5]))[i];
	hdr->flags = ((const uint32_t *)(slot + off[6]))[i];
	for (uint32_t f = 0; f < s->nfields; f++) {
		uint32_t size = sub->col_size[HEADER_COLUMNS + f];
		memcpy(data + s->fields[f].offset,
		       slot + off[HEADER_COLUMNS + f] + (uint64_t)i * size,
		       size);
	}
}

/* Hands one orphaned record to the member that owns its game now. Returns
 * false when that member is lossless and has no room: try again later. */
static bool reroute(struct broker *b, struct consumer_group *g,
		    const struct subscription *dead, const uint8_t *slot,
		    uint32_t i, uint8_t *data)
{
	struct expbus_record_header hdr;
	struct subscription *to;
	uint32_t source;
	uint64_t seq;

	gather(dead, slot, i, &hdr, &seq, &source, data);
	to = group_route(g, hdr.game);
	if (!to || !filter_match(&to->filter, &hdr))
		return true;
	if (!merge_has_room(b, to)) {
		if (to->policy == EXPBUS_LOSSLESS) {
			to->blocked = true;
			return false;
		}
		subscription_dropped(to);
		return true;
	}
	merge_deliver(b, to, &hdr, seq, source, data);
	return true;
}

bool group_drain_orphans(struct broker *b, struct consumer_group *g)
{
	uint8_t *data = NULL;

	while (g->n_orphans) {
		struct subscription *dead = g->orphans[0];
		uint64_t tail = dead->ring.pos; /* batches it had published */

		if (g->n_members == 0)
			break;
		if (!data &&
		    !(data = malloc(dead->stream->schema.data_size + 8)))
			return false;
		while (g->orphan_pos <= tail) {
			const uint8_t *slot;
			uint32_t count;

			if (g->orphan_pos < tail) {
				slot = ring_slot(&dead->ring, g->orphan_pos);
				count =
				    ((const struct expbus_batch *)slot)->count;
			} else {
				slot = dead->open;
				count = dead->open ? dead->open_count : 0;
			}
			while (g->orphan_index < count) {
				if (!reroute(b, g, dead, slot, g->orphan_index,
					     data)) {
					free(data);
					return false;
				}
				g->orphan_index++;
			}
			g->orphan_pos++;
			g->orphan_index = 0;
		}
		memmove(&g->orphans[0], &g->orphans[1],
			sizeof(*g->orphans) * (g->n_orphans - 1));
		g->n_orphans--;
		dead->open = NULL; /* its records went to the others */
		subscription_free(b, dead);
		if (g->n_orphans) {
			g->orphan_pos = g->orphans[0]->ring.cached;
			g->orphan_index = 0;
		}
	}
	free(data);
	/* No member left to take them: they are lost with the group. */
	while (g->n_orphans) {
		struct subscription *dead = g->orphans[--g->n_orphans];
		subscription_free(b, dead);
	}
	return true;
}
