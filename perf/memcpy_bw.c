/* memcpy_bw.c — the machine's memcpy bandwidth for a working set like the
 * broker's: records of a given size copied one memcpy each from a 64 MiB
 * source ring into a 16 MiB destination, as the broker copies producer
 * rings into batch rings. The yardstick run_core.sh compares expbus to.
 *
 * Usage: memcpy_bw SIZE...   prints "SIZE GB/s" per size (median of 7). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define SRC_BYTES (64u << 20)
#define DST_BYTES (16u << 20)
#define REPS 7
#define PASS_BYTES (256ull << 20) /* copied per repetition */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The copy loop sits behind a volatile function pointer so that the
 * compiler cannot turn a fixed-size memcpy into inline moves the broker
 * (which copies sizes only known at run time) would not get. */
static void *(*volatile copy)(void *, const void *, size_t) = memcpy;

static double bandwidth(uint8_t *src, uint8_t *dst, size_t size)
{
	const size_t src_n = SRC_BYTES / size, dst_n = DST_BYTES / size;
	double gbs[REPS];

	for (int r = 0; r < REPS; r++) {
		uint64_t copied = 0;
		size_t i = 0, j = 0;
		double t = now();

		while (copied < PASS_BYTES) {
			copy(dst + j * size, src + i * size, size);
			if (++i == src_n)
				i = 0;
			if (++j == dst_n)
				j = 0;
			copied += size;
		}
		gbs[r] = (double)copied / (now() - t) / 1e9;
	}
	qsort(gbs, REPS, sizeof(gbs[0]), cmp_double);
	return gbs[REPS / 2];
}

int main(int argc, char **argv)
{
	uint8_t *src, *dst;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		printf("Usage: memcpy_bw SIZE...\n"
		       "Prints, per record size in bytes, the median memcpy bandwidth\n"
		       "in GB/s (10^9 bytes) copying records of that size from a 64 MiB\n"
		       "source into a 16 MiB destination.\n");
		return argc < 2 ? 2 : 0;
	}
	src = mmap(NULL, SRC_BYTES, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	dst = mmap(NULL, DST_BYTES, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (src == MAP_FAILED || dst == MAP_FAILED) {
		fprintf(stderr, "memcpy_bw: mmap: %s\n", strerror(errno));
		return 1;
	}
	/* Distinct, non-zero pages: no shared zero page behind the source. */
	memset(src, 0x5a, SRC_BYTES);
	memset(dst, 0xa5, DST_BYTES);
	for (int a = 1; a < argc; a++) {
		char *end;
		unsigned long size = strtoul(argv[a], &end, 10);

		if (*end || size == 0 || size > DST_BYTES) {
			fprintf(stderr, "memcpy_bw: '%s' is not a size from 1 to %u\n",
				argv[a], DST_BYTES);
			return 2;
		}
		printf("%lu %.2f\n", size, bandwidth(src, dst, size));
		fflush(stdout);
	}
	return 0;
}
