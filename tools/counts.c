/* counts.c — the key -> counter map of counts.h. */
#include <stdlib.h>

#include "counts.h"

static uint64_t hash64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static int grow(struct counts *m)
{
	struct counts big = {.cap = m->cap ? m->cap * 2 : 256};

	big.keys = malloc(big.cap * sizeof(*big.keys));
	big.vals = malloc(big.cap * sizeof(*big.vals));
	big.used = calloc(big.cap, 1);
	if (!big.keys || !big.vals || !big.used) {
		counts_free(&big);
		return -1;
	}
	for (size_t j = 0; j < m->cap; j++) {
		bool fresh;
		if (m->used[j])
			*counts_slot(&big, m->keys[j], &fresh) = m->vals[j];
	}
	counts_free(m);
	*m = big;
	return 0;
}

uint64_t *counts_slot(struct counts *m, uint64_t key, bool *fresh)
{
	size_t i;

	/* At most half full: probes stay short. */
	if ((m->n + 1) * 2 > m->cap && grow(m) < 0)
		return NULL;
	for (i = hash64(key) & (m->cap - 1); m->used[i];
	     i = (i + 1) & (m->cap - 1))
		if (m->keys[i] == key) {
			*fresh = false;
			return &m->vals[i];
		}
	m->used[i] = 1;
	m->keys[i] = key;
	m->vals[i] = 0;
	m->n++;
	*fresh = true;
	return &m->vals[i];
}

uint64_t counts_get(const struct counts *m, uint64_t key)
{
	if (!m->cap)
		return 0;
	for (size_t i = hash64(key) & (m->cap - 1); m->used[i];
	     i = (i + 1) & (m->cap - 1))
		if (m->keys[i] == key)
			return m->vals[i];
	return 0;
}

static int cmp_pair(const void *a, const void *b)
{
	uint64_t x = ((const struct count_pair *)a)->key,
		 y = ((const struct count_pair *)b)->key;

	return x < y ? -1 : x > y;
}

struct count_pair *counts_sorted(const struct counts *m)
{
	struct count_pair *v = malloc(sizeof(*v) * (m->n ? m->n : 1));
	size_t n = 0;

	if (!v)
		return NULL;
	for (size_t i = 0; i < m->cap; i++)
		if (m->used[i])
			v[n++] = (struct count_pair){m->keys[i], m->vals[i]};
	qsort(v, n, sizeof(*v), cmp_pair);
	return v;
}

void counts_free(struct counts *m)
{
	free(m->keys);
	free(m->vals);
	free(m->used);
	m->keys = m->vals = NULL;
	m->used = NULL;
	m->cap = m->n = 0;
}
