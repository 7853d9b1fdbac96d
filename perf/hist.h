/* hist.h — a fixed-bucket log-linear histogram of nanosecond values in the
 * manner of HdrHistogram: 128 linear sub-buckets per power of two, so any
 * recorded value is known to within 1/128 (0.8 %), in 36 KiB of counters.
 * Header-only: perf/latency.c and perf/flush.c each record into one. */
#ifndef EXPBUS_PERF_HIST_H
#define EXPBUS_PERF_HIST_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
/* Values up to 2^48 ns (3 days): 128 exact buckets, then 128 per octave. */
#define HIST_BUCKETS (HIST_SUB + (48 - HIST_SUB_BITS) * HIST_SUB)

struct hist {
	uint64_t count;
	uint64_t min, max;
	double sum;
	uint64_t buckets[HIST_BUCKETS];
};

static inline void hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

static inline unsigned hist_index(uint64_t v)
{
	unsigned e, shift;

	if (v < HIST_SUB)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v); /* v in [2^e, 2^(e+1)) */
	if (e >= 48)
		return HIST_BUCKETS - 1;
	shift = e - HIST_SUB_BITS;
	/* v >> shift lies in [HIST_SUB, 2 * HIST_SUB). */
	return HIST_SUB + shift * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

/* The highest value that lands in bucket i: what a percentile reports, so
 * that a reported percentile is never below the true one. */
static inline uint64_t hist_bucket_high(unsigned i)
{
	unsigned shift;

	if (i < HIST_SUB)
		return i;
	shift = (i - HIST_SUB) / HIST_SUB;
	return (((uint64_t)(HIST_SUB + (i - HIST_SUB) % HIST_SUB) + 1) << shift) - 1;
}

static inline void hist_record(struct hist *h, uint64_t v)
{
	h->buckets[hist_index(v)]++;
	h->count++;
	h->sum += (double)v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

/* The value at or below which a fraction q of the samples lie; the exact
 * maximum for q >= 1. */
static inline uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t rank, seen = 0;

	if (!h->count)
		return 0;
	if (q >= 1.0)
		return h->max;
	rank = (uint64_t)(q * (double)h->count);
	if (rank < 1)
		rank = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank) {
			uint64_t v = hist_bucket_high(i);
			return v > h->max ? h->max : v;
		}
	}
	return h->max;
}

/* `"name":{"count":..,"mean_ns":..,"p50_ns":..,...}` for the JSON line. */
static inline void hist_json(FILE *f, const char *name, const struct hist *h)
{
	fprintf(f,
		"\"%s\":{\"count\":%llu,\"min_ns\":%llu,\"mean_ns\":%.1f,"
		"\"p50_ns\":%llu,\"p90_ns\":%llu,\"p99_ns\":%llu,"
		"\"p999_ns\":%llu,\"p9999_ns\":%llu,\"max_ns\":%llu}",
		name, (unsigned long long)h->count,
		(unsigned long long)(h->count ? h->min : 0),
		h->count ? h->sum / (double)h->count : 0.0,
		(unsigned long long)hist_quantile(h, 0.50),
		(unsigned long long)hist_quantile(h, 0.90),
		(unsigned long long)hist_quantile(h, 0.99),
		(unsigned long long)hist_quantile(h, 0.999),
		(unsigned long long)hist_quantile(h, 0.9999),
		(unsigned long long)hist_quantile(h, 1.0));
}

#endif
