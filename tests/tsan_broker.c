/* tsan_broker.c — the broker and its clients as threads of one process,
 * for ThreadSanitizer: built with -Dtsan_shared_maps=true, every segment
 * has one address here, so TSan sees the broker's copies into batches,
 * the producers' writes into rings and the consumers' reads race-free or
 * not. Four producer threads, one lossless subscriber and a two-member
 * group; counts, order and content are checked. Exit 0 when all is well. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loop.h"
#include "expbus.h"

#define PRODUCERS 4
#define SCHEMA	  "obs f32[6]; action i32"

static uint64_t records = 50000;
static struct expbus *bus;
static atomic_uint_fast64_t group_total;
static atomic_int failures;

struct rec {
	float obs[6];
	int32_t action;
};

#define FAIL(...)                                                              \
	do {                                                                   \
		fprintf(stderr, "tsan_broker: " __VA_ARGS__);                  \
		fputc('\n', stderr);                                           \
		atomic_fetch_add(&failures, 1);                                \
	} while (0)

static void *broker_main(void *arg)
{
	broker_run(arg);
	return NULL;
}

static void *producer_main(void *arg)
{
	struct expbus_producer *p = arg;
	long obs_off = expbus_producer_field_offset(p, "obs");
	long act_off = expbus_producer_field_offset(p, "action");
	uint32_t me = (uint32_t)(uintptr_t)expbus_producer_capacity(p);
	uint64_t i = 0;

	(void)me;
	while (i < records) {
		struct expbus_span span;
		int n = expbus_reserve(p, 32, 10000, &span);
		if (n < 0) {
			FAIL("reserve: %d", n);
			break;
		}
		for (int k = 0; k < n && i + (uint64_t)k < records; k++) {
			struct expbus_record_header *r =
			    expbus_span_record(&span, (unsigned)k);
			uint8_t *d = expbus_record_data(r);
			uint64_t s = i + (uint64_t)k;
			float *obs = (float *)(d + obs_off);
			int32_t act = (int32_t)s;

			r->game = (uint32_t)(s / 100 % 5);
			r->player = 0;
			r->turn = (uint32_t)(s % 100);
			r->flags = 0;
			for (int j = 0; j < 6; j++)
				obs[j] = (float)(s % 1000) + (float)j;
			memcpy(d + act_off, &act, sizeof(act));
		}
		if ((uint64_t)n > records - i)
			n = (int)(records - i);
		expbus_commit(p, (unsigned)n);
		i += (uint64_t)n;
	}
	return NULL;
}

struct reader {
	struct expbus_consumer *c;
	int grouped;
	uint64_t got;
	uint64_t next_seq[PRODUCERS + 1];
	uint32_t ids[PRODUCERS + 1]; /* producer id of each slot, 0: free */
};

/* The slot (1..PRODUCERS) of producer id, given in the order ids first
 * come (a broker's producer ids are not 1..N: docs/protocol.md); 0 for an
 * id 0 or one too many. */
static uint32_t slot_of(struct reader *r, uint32_t id)
{
	for (uint32_t k = 1; id && k <= PRODUCERS; k++) {
		if (r->ids[k] == id)
			return k;
		if (!r->ids[k]) {
			r->ids[k] = id;
			return k;
		}
	}
	return 0;
}

static void check_batch(struct reader *r, const struct expbus_batch *b)
{
	struct expbus_column seq, src, obs, act;

	if (expbus_batch_column(r->c, b, "seq", &seq) ||
	    expbus_batch_column(r->c, b, "source", &src) ||
	    expbus_batch_column(r->c, b, "obs", &obs) ||
	    expbus_batch_column(r->c, b, "action", &act)) {
		FAIL("missing column");
		return;
	}
	for (uint32_t i = 0; i < b->count; i++) {
		uint64_t s = ((const uint64_t *)seq.data)[i];
		uint32_t id = ((const uint32_t *)src.data)[i];
		uint32_t p = slot_of(r, id);
		const float *o = (const float *)obs.data + i * 6;

		if (p == 0) {
			FAIL("bad source %u", id);
			continue;
		}
		if (!r->grouped && s != r->next_seq[p])
			FAIL("producer %u: seq %llu, want %llu", p,
			     (unsigned long long)s,
			     (unsigned long long)r->next_seq[p]);
		r->next_seq[p] = s + 1;
		if (((const int32_t *)act.data)[i] != (int32_t)s ||
		    o[5] != (float)(s % 1000) + 5)
			FAIL("producer %u seq %llu: wrong content", p,
			     (unsigned long long)s);
	}
}

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	uint64_t want = records * PRODUCERS;

	for (int idle = 0; idle < 300;) {
		const struct expbus_batch *b;
		int err = expbus_next_batch(r->c, 100, &b);

		if (err == -ETIMEDOUT || err == -EAGAIN) {
			if ((r->grouped ? atomic_load(&group_total) : r->got) >=
			    want)
				break;
			idle++;
			continue;
		}
		if (err < 0) {
			FAIL("next_batch: %d", err);
			break;
		}
		idle = 0;
		check_batch(r, b);
		r->got += b->count;
		if (r->grouped)
			atomic_fetch_add(&group_total, b->count);
		expbus_release(r->c, b);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	static struct broker b;
	struct expbus_producer *prod[PRODUCERS];
	struct reader readers[3] = {{0}, {.grouped = 1}, {.grouped = 1}};
	struct expbus_subscribe_options all = {.batch_size = 64,
					       .max_delay_us = 2000};
	struct expbus_subscribe_options grp = {
	    .batch_size = 16, .max_delay_us = 2000, .group = "g"};
	pthread_t bt, pt[PRODUCERS], rt[3];
	char dir[256], path[300];
	const char *tmp = getenv("TMPDIR");
	sigset_t mask;
	int ok;

	if (argc > 1)
		records = strtoull(argv[1], NULL, 10);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	pthread_sigmask(SIG_BLOCK, &mask, NULL); /* for the broker's signalfd */
	snprintf(dir, sizeof(dir), "%s/expbus-tsan-XXXXXX", tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/s.sock", dir);
	b.cfg.socket_path = path;
	b.cfg.ring_bytes = 64 << 10;
	b.cfg.max_segment = 1 << 30;
	b.cfg.default_batch = 32;
	b.cfg.default_delay_us = 100000;
	b.cfg.log_level = LOG_WARN;
	b.cfg.spin_ns = 20000u; /* expbusd's default: the spin runs too */
	/* Both subscriptions allow 2 ms: the broker coalesces (a 500 us
	 * tick), so the watching flag and the half-full doorbell run here
	 * too. */
	b.cfg.coalesce_min_ns = 1000000u;
	if (broker_open(&b) < 0)
		return 1;
	pthread_create(&bt, NULL, broker_main, &b);
	expbus_new(path, &bus);
	for (int i = 0; i < PRODUCERS; i++)
		if (expbus_producer_attach(bus, "s", SCHEMA, NULL, &prod[i]) <
		    0) {
			fprintf(stderr, "attach: %s\n", expbus_last_error(bus));
			return 1;
		}
	if (expbus_subscribe(bus, "s", &all, &readers[0].c) < 0 ||
	    expbus_subscribe(bus, "s", &grp, &readers[1].c) < 0 ||
	    expbus_subscribe(bus, "s", &grp, &readers[2].c) < 0) {
		fprintf(stderr, "subscribe: %s\n", expbus_last_error(bus));
		return 1;
	}
	for (int i = 0; i < 3; i++)
		pthread_create(&rt[i], NULL, reader_main, &readers[i]);
	for (int i = 0; i < PRODUCERS; i++)
		pthread_create(&pt[i], NULL, producer_main, prod[i]);
	for (int i = 0; i < PRODUCERS; i++)
		pthread_join(pt[i], NULL);
	for (int i = 0; i < 3; i++)
		pthread_join(rt[i], NULL);
	if (readers[0].got != records * PRODUCERS)
		FAIL("subscriber got %llu of %llu",
		     (unsigned long long)readers[0].got,
		     (unsigned long long)(records * PRODUCERS));
	if (readers[1].got + readers[2].got != records * PRODUCERS)
		FAIL("group got %llu + %llu of %llu",
		     (unsigned long long)readers[1].got,
		     (unsigned long long)readers[2].got,
		     (unsigned long long)(records * PRODUCERS));
	for (int i = 0; i < 3; i++)
		expbus_consumer_close(readers[i].c);
	for (int i = 0; i < PRODUCERS; i++)
		expbus_producer_close(prod[i]);
	kill(getpid(), SIGTERM);
	pthread_join(bt, NULL);
	broker_close(&b);
	expbus_free(bus);
	rmdir(dir);
	ok = atomic_load(&failures) == 0;
	printf("tsan_broker: %llu records x %d producers: %s\n",
	       (unsigned long long)records, PRODUCERS, ok ? "ok" : "FAILED");
	return ok ? 0 : 1;
}
