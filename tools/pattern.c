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

void pattern_fill(uint64_t base, void *data, size_t size)
{
	uint8_t *d = data;
	size_t words = size / 8;

	/* memcpy of a constant 8 bytes compiles to one store; the slot is
	 * 8-byte aligned anyway, but the API does not promise it. */
	for (size_t k = 0; k < words; k++) {
		uint64_t w = le64(base + k * PATTERN_GOLDEN);
		memcpy(d + 8 * k, &w, 8);
	}
	if (size % 8) {
		uint64_t w = le64(base + words * PATTERN_GOLDEN);
		memcpy(d + 8 * words, &w, size % 8);
	}
}

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
	/* Whole words: OR the differences so that the loop has no branch
	 * and vectorises. */
	size_t words = n / 8;
	for (size_t i = 0; i < words; i++) {
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
