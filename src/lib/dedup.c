/* dedup.c — per-producer high-water marks of what a reader delivered, in an
 * open-addressing table that grows; lookups of one id in a row hit the
 * cached slot. */
#include "dedup.h"

#include <errno.h>
#include <stdlib.h>

static uint32_t hash(uint32_t id)
{
	return id * 0x9E3779B1u; /* Fibonacci hashing: ids are small */
}

static uint32_t find(const struct dedup *d, uint32_t id)
{
	uint32_t i = hash(id) & (d->cap - 1);

	while (d->ids[i] && d->ids[i] != id)
		i = (i + 1) & (d->cap - 1);
	return i;
}

static int grow(struct dedup *d)
{
	uint32_t cap = d->cap ? 2 * d->cap : 64;
	struct dedup n = {.cap = cap, .used = d->used};

	n.ids = calloc(cap, sizeof(*n.ids));
	n.next = calloc(cap, sizeof(*n.next));
	n.floor = calloc(cap, sizeof(*n.floor));
	if (!n.ids || !n.next || !n.floor) {
		free(n.ids);
		free(n.next);
		free(n.floor);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < d->cap; i++) {
		if (!d->ids[i])
			continue;
		uint32_t j = find(&n, d->ids[i]);
		n.ids[j] = d->ids[i];
		n.next[j] = d->next[i];
		n.floor[j] = d->floor[i];
	}
	dedup_free(d);
	*d = n;
	return 0;
}

int dedup_admit(struct dedup *d, uint32_t id, uint64_t seq)
{
	uint32_t i;

	if (id == 0)
		return 1;
	if (d->cap && d->ids[d->last] == id) {
		i = d->last;
	} else {
		if (4 * (d->used + 1) > 3 * d->cap && grow(d) < 0)
			return -ENOMEM;
		i = find(d, id);
		if (!d->ids[i]) {
			d->ids[i] = id;
			d->next[i] = d->floor[i] = 0;
			d->used++;
		}
		d->last = i;
	}
	if (seq < d->floor[i])
		return 0;
	if (seq >= d->next[i])
		d->next[i] = seq + 1;
	return 1;
}

void dedup_new_broker(struct dedup *d)
{
	for (uint32_t i = 0; i < d->cap; i++)
		d->floor[i] = d->next[i];
}

void dedup_free(struct dedup *d)
{
	free(d->ids);
	free(d->next);
	free(d->floor);
	d->ids = NULL;
	d->next = d->floor = NULL;
	d->cap = d->used = d->last = 0;
}
