/* pattern.h — the deterministic content of every record `expbus pub`
 * writes, so that `expbus sub` can check each byte it receives knowing
 * only the record's producer index and sequence number.
 *
 * For producer index p and record number s (the seq the broker delivers):
 *   game   = p * 1000 + (s / episode_len) % games
 *   player = s % players,  turn = s % episode_len
 *   flags  = EXPBUS_RECORD_DONE on the episode's last turn, else 0
 *   data   = little-endian words w[k] = splitmix64((p << 40) ^ s) + k * GOLDEN
 * The consumer recovers p as game / 1000. */
#ifndef EXPBUS_TOOLS_PATTERN_H
#define EXPBUS_TOOLS_PATTERN_H

#include <stddef.h>
#include <stdint.h>

#include "expbus.h"

#define PATTERN_GOLDEN 0x9E3779B97F4A7C15ull
#define PATTERN_MAX_GAMES                                                      \
	1000u /* game ids of a producer: p * 1000 + 0..999                     \
	       */

struct pattern {
	uint32_t games;
	uint32_t episode_len;
	uint32_t players;
	uint32_t index_base; /* added to a pub child's index to make p */
};

static inline uint64_t splitmix64(uint64_t x)
{
	uint64_t z;

	x += PATTERN_GOLDEN;
	z = x;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* w[0] of the record's data area; w[k] = base + k * PATTERN_GOLDEN. */
static inline uint64_t pattern_base(uint32_t p, uint64_t s)
{
	return splitmix64(((uint64_t)p << 40) ^ s);
}

static inline uint32_t pattern_game(const struct pattern *pt, uint32_t p,
				    uint64_t s)
{
	return p * PATTERN_MAX_GAMES +
	       (uint32_t)((s / pt->episode_len) % pt->games);
}

/* Fills game, player, turn and flags of h for record s of producer p. */
void pattern_header(const struct pattern *pt, uint32_t p, uint64_t s,
		    struct expbus_record_header *h);

/* Writes the first size bytes of the data area (size a multiple of 8). */
void pattern_fill(uint64_t base, void *data, size_t size);

/* Compares n bytes at buf with bytes [off, off + n) of the data area
 * whose first word is base. Returns 0 when they match. */
int pattern_check(uint64_t base, const void *buf, size_t off, size_t n);

#endif
