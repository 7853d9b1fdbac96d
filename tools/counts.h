/* counts.h — a map from 64-bit keys to 64-bit counters (open addressing,
 * linear probing) for `expbus check`: per game, per producer, last seq
 * per source. Millions of keys stay fast: a slot is found in O(1) and the
 * report sorts the pairs once, at the end. */
#ifndef EXPBUS_TOOLS_COUNTS_H
#define EXPBUS_TOOLS_COUNTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct counts {
	uint64_t *keys, *vals;
	uint8_t *used;
	size_t cap, n;
};

struct count_pair {
	uint64_t key, val;
};

/* The counter of key, created at 0 (*fresh true) if new; NULL when out
 * of memory. The pointer is valid until the next counts_slot. */
uint64_t *counts_slot(struct counts *m, uint64_t key, bool *fresh);

/* The counter of key, 0 if absent. */
uint64_t counts_get(const struct counts *m, uint64_t key);

/* Every (key, value) pair sorted by key, in a malloc'ed array of m->n
 * pairs: O(n log n). NULL when out of memory (or m is empty). */
struct count_pair *counts_sorted(const struct counts *m);

void counts_free(struct counts *m);

#endif
