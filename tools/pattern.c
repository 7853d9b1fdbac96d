/* pattern.c — generating and checking the record content of pattern.h a
 * word at a time: both sit on the benchmark's hot path. */
#include "pattern.h"

#include <string.h>

void pattern_header(const struct pattern *pt, uint32_t p, uint64_t s,
		    struct expbus_record_header *h)
{
	h->game = pattern_game(pt, p, s);
	h->player = (uint32_t)(s % pt->players);
	h->turn = (uint32_t)(s % pt->episode_len);
	h->flags = h->turn == pt->episode_len - 1 ? EXPBUS_RECORD_DONE : 0;
}

/* The words are stored little-endian; on a big-endian host the byte swap
 * keeps the data area identical to what a little-endian producer writes. */
static inline uint64_t le64(uint64_t w)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	return __builtin_bswap64(w);
#else
	return w;
#endif
}

/* Four words per vector, two vectors per step: the compiler lowers the
 * vector type to whatever the target has (two SSE2 registers at worst),
 * and the stores go out 32 or 64 bytes at a time instead of 8. */
typedef uint64_t v4u64 __attribute__((vector_size(32)));

/* Words k..k+3 (through a pointer: returning a vector wider than the
 * target's registers draws an ABI warning). */
static inline void first_words(v4u64 *v, uint64_t base, size_t k)
{
	uint64_t w = base + k * PATTERN_GOLDEN;

	(*v)[0] = w;
	(*v)[1] = w + PATTERN_GOLDEN;
	(*v)[2] = w + 2 * PATTERN_GOLDEN;
	(*v)[3] = w + 3 * PATTERN_GOLDEN;
}

/* On x86-64, build the two hot loops for AVX2 and AVX-512 too and let the
 * loader pick (an ifunc): the default x86-64 target has 16-byte vectors
 * only, and filling or checking 16 KiB records is the benchmark's work. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HOT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define HOT_CLONES
#endif

HOT_CLONES
void pattern_fill(uint64_t base, void *data, size_t size)
{
	const v4u64 step = {8 * PATTERN_GOLDEN, 8 * PATTERN_GOLDEN,
			    8 * PATTERN_GOLDEN, 8 * PATTERN_GOLDEN};
	uint8_t *d = data;
	size_t words = size / 8, k = 0;

	if (words >= 8 && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__) {
		v4u64 a, b;

		first_words(&a, base, 0);
		first_words(&b, base, 4);

		/* memcpy: the slot is 8-byte aligned, not 32. */
		for (; k + 8 <= words; k += 8) {
			memcpy(d + 8 * k, &a, 32);
			memcpy(d + 8 * k + 32, &b, 32);
			a += step;
			b += step;
		}
	}
	for (; k < words; k++) {
		uint64_t w = le64(base + k * PATTERN_GOLDEN);
		memcpy(d + 8 * k, &w, 8);
	}
	if (size % 8) {
		uint64_t w = le64(base + words * PATTERN_GOLDEN);
		memcpy(d + 8 * words, &w, size % 8);
	}
}

HOT_CLONES
int pattern_check(uint64_t base, const void *buf, size_t off, size_t n)
{
	const uint8_t *b = buf;
	size_t k = off / 8, head = off % 8;
	uint64_t diff = 0;

	/* The unaligned head: the tail bytes of word k. */
	if (head) {
		uint64_t w = le64(base + k * PATTERN_GOLDEN);
		size_t m = 8 - head < n ? 8 - head : n;
		if (memcmp(b, (const uint8_t *)&w + head, m))
			return 1;
		b += m;
		n -= m;
		k++;
	}
	/* Whole words: OR the differences so that the loop has no branch,
	 * eight words at a time as in pattern_fill. */
	size_t words = n / 8, i = 0;
	if (words >= 8 && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__) {
		const v4u64 step = {8 * PATTERN_GOLDEN, 8 * PATTERN_GOLDEN,
				    8 * PATTERN_GOLDEN, 8 * PATTERN_GOLDEN};
		v4u64 a, c, da = {0, 0, 0, 0}, dc = da;

		first_words(&a, base, k);
		first_words(&c, base, k + 4);

		for (; i + 8 <= words; i += 8) {
			v4u64 x, y;
			memcpy(&x, b + 8 * i, 32);
			memcpy(&y, b + 8 * i + 32, 32);
			da |= x ^ a;
			dc |= y ^ c;
			a += step;
			c += step;
		}
		da |= dc;
		diff = da[0] | da[1] | da[2] | da[3];
	}
	for (; i < words; i++) {
		uint64_t v;
		memcpy(&v, b + 8 * i, 8);
		diff |= v ^ le64(base + (k + i) * PATTERN_GOLDEN);
	}
	if (diff)
		return 1;
	if (n % 8) {
		uint64_t w = le64(base + (k + words) * PATTERN_GOLDEN);
		if (memcmp(b + 8 * words, &w, n % 8))
			return 1;
	}
	return 0;
}
