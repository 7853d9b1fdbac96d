/* cmd_bench.c — `expbus bench`: N producer and M subscriber processes
 * against the running broker, then records/s, GB/s and commit-to-receipt
 * latency percentiles, the way `nats bench` answers "how fast is it
 * here?" in ten seconds. perf/run is the careful benchmark; this is the
 * quick one. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "expbus.h"
#include "hist.h"
#include "layout.h"
#include "options.h"

#define CMD	      "bench"
#define WAIT_MS	      100	     /* a blocking call's slice */
#define START_TIMEOUT 20000000000ull /* ns for every child to be ready */
#define DRAIN_IDLE_NS 500000000ull   /* after the producers, quiet this long */

struct bench_opts {
	const char *socket;
	const char *stream;
	const char *group;
	uint32_t pubs, subs, size, batch, batch_size, max_delay_ms;
	uint64_t count;
	double duration, rate;
	int policy; /* 0 lossless, 1 lossy */
	bool json;
};

/* One child's figures, written by that child into the shared area. */
struct child_result {
	int32_t error; /* 0 or negative errno */
	char message[200];
	uint64_t records, bytes, dropped;
	uint64_t start_ns, end_ns; /* first and last record */
	struct hist latency;	   /* subscribers: now - commit timestamp */
};

/* MAP_SHARED between the parent and every child. */
struct shared {
	_Atomic uint32_t subs_ready; /* subscribed, or failed */
	_Atomic uint32_t pubs_done;  /* finished writing, or failed */
	_Atomic uint32_t failed;
	struct child_result r[]; /* producers, then subscribers */
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void fail(struct shared *sh, struct child_result *r, int err,
		 struct expbus *bus, const char *what)
{
	r->error = err;
	snprintf(r->message, sizeof(r->message), "%s: %s", what,
		 bus && expbus_last_error(bus)[0] ? expbus_last_error(bus)
						  : strerror(-err));
	atomic_fetch_add_explicit(&sh->failed, 1, memory_order_relaxed);
}

static void producer(const struct bench_opts *o, struct shared *sh, uint32_t k)
{
	struct child_result *r = &sh->r[k];
	struct expbus_producer *p = NULL;
	struct expbus *bus = NULL;
	char schema[64];
	uint64_t s = 0, end_ns, deadline;
	int err;

	snprintf(schema, sizeof(schema), "payload u8[%u]", o->size - 32);
	err = expbus_new(o->socket, &bus);
	if (err == 0)
		err = expbus_producer_attach(bus, o->stream, schema, NULL, &p);
	if (err < 0) {
		fail(sh, r, err, bus, "attaching");
		goto out;
	}
	/* Start together: once every subscriber is in. */
	deadline = cli_now_ns() + START_TIMEOUT;
	while (atomic_load_explicit(&sh->subs_ready, memory_order_acquire) <
	       o->subs) {
		if (stop || cli_now_ns() > deadline) {
			fail(sh, r, -ETIMEDOUT, NULL,
			     "waiting for the subscribers");
			goto out;
		}
		(void)usleep(1000);
	}
	r->start_ns = cli_now_ns();
	end_ns = o->duration > 0 ? r->start_ns + (uint64_t)(o->duration * 1e9)
				 : UINT64_MAX;
	while (!stop && (o->count == 0 || s < o->count)) {
		struct expbus_span span;
		uint64_t want = o->batch;
		int n;

		if (o->count && o->count - s < want)
			want = o->count - s;
		if ((s & 255) < want && cli_now_ns() >= end_ns)
			break;
		if (o->rate > 0) {
			uint64_t due =
			    r->start_ns + (uint64_t)((double)s / o->rate * 1e9);
			struct timespec ts = {
			    .tv_sec = (time_t)(due / 1000000000u),
			    .tv_nsec = (long)(due % 1000000000u)};
			if (due > cli_now_ns())
				(void)clock_nanosleep(CLOCK_MONOTONIC,
						      TIMER_ABSTIME, &ts, NULL);
			want = 1;
		}
		n = expbus_reserve(p, (unsigned)want, WAIT_MS, &span);
		if (n == -EAGAIN || n == -ETIMEDOUT)
			continue;
		if (n < 0) {
			fail(sh, r, n, bus, "reserving");
			break;
		}
		for (int i = 0; i < n; i++) {
			struct expbus_record_header *h =
			    expbus_span_record(&span, (unsigned)i);
			h->game = k * 1000 + (uint32_t)((s + (unsigned)i) % 4);
			h->player = 0;
			h->turn = (uint32_t)((s + (unsigned)i) % 100);
			h->flags = 0;
			memset(expbus_record_data(h), (int)(s & 0xff),
			       o->size - 32);
		}
		err = expbus_commit(p, (unsigned)n);
		if (err < 0) {
			fail(sh, r, err, bus, "committing");
			break;
		}
		s += (unsigned)n;
	}
	r->end_ns = cli_now_ns();
	r->records = s;
	r->bytes = s * o->size;
out:
	/* Committed records are delivered after the producer detaches. */
	expbus_producer_close(p);
	expbus_free(bus);
	atomic_fetch_add_explicit(&sh->pubs_done, 1, memory_order_release);
	_exit(r->error ? 1 : 0);
}

static void subscriber(const struct bench_opts *o, struct shared *sh,
		       uint32_t k)
{
	struct child_result *r = &sh->r[o->pubs + k];
	struct expbus_subscribe_options so = {
	    .batch_size = o->batch_size,
	    .max_delay_us = o->max_delay_ms * 1000,
	    .policy = o->policy ? EXPBUS_LOSSY : EXPBUS_LOSSLESS,
	    .group = o->group,
	};
	const uint64_t want = o->group ? 0 : o->count * o->pubs;
	struct expbus_consumer *c = NULL;
	struct expbus *bus = NULL;
	uint64_t deadline = cli_now_ns() + START_TIMEOUT, idle_since = 0;
	int err;

	hist_init(&r->latency);
	err = expbus_new(o->socket, &bus);
	while (err == 0) {
		err = expbus_subscribe(bus, o->stream, &so, &c);
		/* The stream appears when a producer attaches; give up when
		 * they all have (failed), or at the deadline. */
		if (err != -ENOENT || stop || cli_now_ns() > deadline ||
		    atomic_load_explicit(&sh->pubs_done,
					 memory_order_acquire) >= o->pubs)
			break;
		(void)usleep(2000); /* the producers create the stream */
		err = 0;
	}
	if (err < 0) {
		fail(sh, r, err, bus, "subscribing");
		atomic_fetch_add_explicit(&sh->subs_ready, 1,
					  memory_order_release);
		goto out;
	}
	atomic_fetch_add_explicit(&sh->subs_ready, 1, memory_order_release);
	while (!stop) {
		const struct expbus_batch *b;
		struct expbus_column ts;
		uint64_t now;

		err = expbus_next_batch(c, WAIT_MS, &b);
		now = cli_now_ns();
		if (err == -EAGAIN || err == -ETIMEDOUT || err == -EINTR) {
			/* Done when the producers are and nothing comes. */
			if (atomic_load_explicit(
				&sh->pubs_done, memory_order_acquire) < o->pubs)
				continue;
			if (!idle_since)
				idle_since = now;
			if (now - idle_since >= DRAIN_IDLE_NS)
				break;
			continue;
		}
		if (err < 0) {
			fail(sh, r, err, bus, "receiving");
			break;
		}
		idle_since = 0;
		if (expbus_batch_column(c, b, "timestamp", &ts) == 0)
			for (uint32_t i = 0; i < b->count; i++) {
				uint64_t t = ((const uint64_t *)ts.data)[i];
				hist_record(&r->latency, now > t ? now - t : 0);
			}
		if (!r->records)
			r->start_ns = now;
		r->end_ns = now;
		r->records += b->count;
		r->bytes += (uint64_t)b->count * o->size;
		r->dropped = b->dropped_total;
		err = expbus_release(c, b);
		if (err < 0) {
			fail(sh, r, err, bus, "releasing");
			break;
		}
		if (want && r->records + r->dropped >= want)
			break;
	}
out:
	expbus_consumer_close(c);
	expbus_free(bus);
	_exit(r->error ? 1 : 0);
}

static double rate(uint64_t n, uint64_t start, uint64_t end)
{
	return end > start ? (double)n / ((double)(end - start) / 1e9) : 0;
}

static const char *human(double v, char *buf, size_t len)
{
	if (v >= 1e9)
		snprintf(buf, len, "%.2fG", v / 1e9);
	else if (v >= 1e6)
		snprintf(buf, len, "%.2fM", v / 1e6);
	else if (v >= 1e3)
		snprintf(buf, len, "%.1fk", v / 1e3);
	else
		snprintf(buf, len, "%.0f", v);
	return buf;
}

/* A side's total over its children: records between the first start
 * and the last end. */
static void side(const struct shared *sh, uint32_t from, uint32_t n,
		 uint64_t *records, uint64_t *bytes, uint64_t *start,
		 uint64_t *end)
{
	*records = *bytes = *end = 0;
	*start = UINT64_MAX;
	for (uint32_t i = from; i < from + n; i++) {
		const struct child_result *r = &sh->r[i];
		*records += r->records;
		*bytes += r->bytes;
		if (r->records && r->start_ns < *start)
			*start = r->start_ns;
		if (r->end_ns > *end)
			*end = r->end_ns;
	}
	if (*start == UINT64_MAX)
		*start = *end;
}

static void print_text(const struct bench_opts *o, const struct shared *sh,
		       const struct hist *lat, uint64_t dropped)
{
	const char *label[2] = {"Pub", "Sub"};
	char a[32], b[32];

	printf("expbus bench: stream %s, %u producer%s, %u subscriber%s%s%s, "
	       "%u-byte records (32-byte header), %s\n",
	       o->stream, o->pubs, o->pubs == 1 ? "" : "s", o->subs,
	       o->subs == 1 ? "" : "s", o->group ? " in group " : "",
	       o->group ? o->group : "", o->size,
	       o->policy ? "lossy" : "lossless");
	for (int s = 0; s < 2; s++) {
		uint32_t from = s ? o->pubs : 0, n = s ? o->subs : o->pubs;
		uint64_t rec, by, t0, t1;

		side(sh, from, n, &rec, &by, &t0, &t1);
		printf("\n%s stats: %s rec/s ~ %.3f GB/s (%" PRIu64
		       " records in %.3f s)\n",
		       label[s], human(rate(rec, t0, t1), a, sizeof(a)),
		       rate(by, t0, t1) / 1e9, rec, (double)(t1 - t0) / 1e9);
		for (uint32_t i = from; i < from + n; i++) {
			const struct child_result *r = &sh->r[i];
			printf(" [%u] %s rec/s ~ %.3f GB/s (%" PRIu64
			       " records)%s%s\n",
			       i - from + 1,
			       human(rate(r->records, r->start_ns, r->end_ns),
				     b, sizeof(b)),
			       rate(r->bytes, r->start_ns, r->end_ns) / 1e9,
			       r->records, r->error ? "  FAILED: " : "",
			       r->error ? r->message : "");
		}
	}
	if (dropped)
		printf("\n%" PRIu64 " records dropped (lossy)\n", dropped);
	printf("\nLatency, commit to subscriber (%" PRIu64
	       " records): p50 %.1f us, p90 %.1f us, p99 %.1f us, p99.9 "
	       "%.1f us, max %.1f us\n",
	       lat->count, hist_quantile(lat, 0.5) / 1e3,
	       hist_quantile(lat, 0.9) / 1e3, hist_quantile(lat, 0.99) / 1e3,
	       hist_quantile(lat, 0.999) / 1e3, hist_quantile(lat, 1.0) / 1e3);
	if (!o->rate)
		printf("(producers at full speed: latency includes queueing; "
		       "--rate R for latency at a load)\n");
}

static void print_json(const struct bench_opts *o, const struct shared *sh,
		       const struct hist *lat, uint64_t dropped)
{
	const char *label[2] = {"pub", "sub"};

	printf("{\"producers\":%u,\"subscribers\":%u,\"record_bytes\":%u,"
	       "\"dropped\":%" PRIu64,
	       o->pubs, o->subs, o->size, dropped);
	for (int s = 0; s < 2; s++) {
		uint32_t from = s ? o->pubs : 0, n = s ? o->subs : o->pubs;
		uint64_t rec, by, t0, t1;

		side(sh, from, n, &rec, &by, &t0, &t1);
		printf(",\"%s\":{\"records\":%" PRIu64
		       ",\"seconds\":%.6f,\"records_per_s\":%.1f,"
		       "\"gb_per_s\":%.6f,\"each\":[",
		       label[s], rec, (double)(t1 - t0) / 1e9,
		       rate(rec, t0, t1), rate(by, t0, t1) / 1e9);
		for (uint32_t i = from; i < from + n; i++)
			printf("%s%" PRIu64, i > from ? "," : "",
			       sh->r[i].records);
		printf("]}");
	}
	printf(",");
	hist_json(stdout, "latency", lat);
	printf("}\n");
}

int cmd_bench(const char *socket, int argc, char **argv)
{
	static const char *const policies[] = {"lossless", "lossy", NULL};
	struct bench_opts o = {
	    .socket = socket,
	    .pubs = 1,
	    .subs = 1,
	    .size = 128,
	    .batch = 64,
	    .batch_size = 256,
	    .count = 1000000,
	};
	bool have_duration = false;
	const struct option_spec opts[] = {
	    OPTION_SOCKET(&o.socket),
	    {.name = "stream",
	     .kind = OPTION_STRING,
	     .target = &o.stream,
	     .max = NAME_MAX_LEN - 1,
	     .metavar = "NAME",
	     .help = "stream to use (default benchSIZE, e.g. bench128;\n"
		     "its schema is \"payload u8[SIZE-32]\")"},
	    {.name = "pub",
	     .short_name = 'p',
	     .kind = OPTION_U32,
	     .target = &o.pubs,
	     .min = 1,
	     .max = 256,
	     .metavar = "N",
	     .help = "producer processes (default 1)"},
	    {.name = "sub",
	     .short_name = 'S',
	     .kind = OPTION_U32,
	     .target = &o.subs,
	     .max = 64,
	     .metavar = "M",
	     .help = "subscriber processes (default 1); each gets\n"
		     "every record, unless --group"},
	    {.name = "count",
	     .short_name = 'n',
	     .kind = OPTION_U64,
	     .target = &o.count,
	     .min = 1,
	     .max = UINT64_MAX / 1024,
	     .metavar = "N",
	     .help = "records per producer (default 1000000)"},
	    {.name = "duration",
	     .kind = OPTION_SECONDS,
	     .target = &o.duration,
	     .seen = &have_duration,
	     .metavar = "SEC",
	     .help = "instead of --count: write for SEC seconds"},
	    {.name = "size",
	     .kind = OPTION_U32,
	     .target = &o.size,
	     .min = 40,
	     .max = 1u << 20,
	     .metavar = "BYTES",
	     .help = "record size, header included, a multiple of 8\n"
		     "(default 128)"},
	    {.name = "rate",
	     .kind = OPTION_SECONDS,
	     .target = &o.rate,
	     .metavar = "R",
	     .help = "records/s per producer (default: full speed)"},
	    {.name = "batch",
	     .kind = OPTION_U32,
	     .target = &o.batch,
	     .min = 1,
	     .max = 4096,
	     .metavar = "K",
	     .help = "records a producer reserves at once (default 64)"},
	    {.name = "batch-size",
	     .kind = OPTION_U32,
	     .target = &o.batch_size,
	     .min = 1,
	     .max = 1u << 20,
	     .metavar = "N",
	     .help = "records per subscriber batch (default 256)"},
	    {.name = "max-delay-ms",
	     .kind = OPTION_U32,
	     .target = &o.max_delay_ms,
	     .min = 1,
	     .max = 60000,
	     .metavar = "MS",
	     .help = "flush a partial batch after MS (default: the\n"
		     "broker's)"},
	    {.name = "policy",
	     .kind = OPTION_CHOICE,
	     .target = &o.policy,
	     .choices = policies,
	     .metavar = "P",
	     .help = "lossless or lossy (default lossless)"},
	    {.name = "group",
	     .kind = OPTION_STRING,
	     .target = &o.group,
	     .max = NAME_MAX_LEN - 1,
	     .metavar = "NAME",
	     .help = "subscribers share the records as a group"},
	    {.name = "json",
	     .kind = OPTION_FLAG,
	     .target = &o.json,
	     .help = "one JSON object instead of the text"},
	    OPTION_END,
	};
	const struct command_spec spec = {
	    .name = CMD,
	    .summary =
		"Start N producer and M subscriber processes against the running\n"
		"broker and print what they reached: records/s and GB/s per\n"
		"process and in all, and the latency from commit (the record's\n"
		"timestamp) to the subscriber receiving its batch, as percentiles.",
	    .options = opts,
	    .epilog =
		"Bytes count whole records (32-byte header + payload). Rates\n"
		"run from a side's first record to its last. On a shared machine\n"
		"the figures vary; perf/run measures with baselines.\n"
		"\n"
		"Exit status: 0 every process did its part, 1 a process failed\n"
		"or (lossless) records went missing, 2 bad usage, 3 no broker.\n",
	};
	struct sigaction sa = {.sa_handler = on_signal};
	struct shared *sh;
	struct hist *lat;
	size_t shsize;
	uint64_t got = 0, sent = 0, dropped = 0;
	char default_stream[32];
	int status = 0, err;
	pid_t *pids;

	err = options_parse(&spec, argc, argv, NULL);
	if (err)
		return err > 0 ? 0 : EXIT_USAGE;
	if (o.size % 8)
		return cli_usage_error(CMD, "--size: %u is not a multiple of 8",
				       o.size);
	if (have_duration)
		o.count = 0;
	/* One stream per size: a stream keeps its schema while it lives. */
	snprintf(default_stream, sizeof(default_stream), "bench%u", o.size);
	if (!o.stream)
		o.stream = default_stream;
	shsize = sizeof(*sh) + sizeof(sh->r[0]) * (o.pubs + o.subs);
	sh = mmap(NULL, shsize, PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pids = calloc(o.pubs + o.subs, sizeof(*pids));
	lat = malloc(sizeof(*lat));
	if (sh == MAP_FAILED || !pids || !lat) {
		fprintf(stderr, "expbus bench: out of memory\n");
		return 1;
	}
	hist_init(lat);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	fflush(stdout);
	for (uint32_t i = 0; i < o.pubs + o.subs; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			fprintf(stderr, "expbus bench: fork: %s\n",
				strerror(errno));
			stop = 1;
			status = 1;
			break;
		}
		if (pid == 0) {
			/* Children do not outlive the bench. */
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			if (i < o.pubs)
				producer(&o, sh, i);
			subscriber(&o, sh, i - o.pubs);
		}
		pids[i] = pid;
	}
	for (uint32_t i = 0; i < o.pubs + o.subs; i++) {
		int ws;

		if (!pids[i])
			continue;
		while (waitpid(pids[i], &ws, 0) < 0 && errno == EINTR)
			if (stop)
				kill(pids[i], SIGTERM);
		if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
			status = 1;
	}
	for (uint32_t i = 0; i < o.pubs + o.subs; i++) {
		const struct child_result *r = &sh->r[i];
		if (r->error)
			fprintf(stderr, "expbus bench: %s %u: %s\n",
				i < o.pubs ? "producer" : "subscriber",
				i < o.pubs ? i + 1 : i - o.pubs + 1,
				r->message);
		if (i < o.pubs) {
			sent += r->records;
			continue;
		}
		got += r->records;
		dropped += r->dropped;
		for (unsigned b = 0; b < HIST_BUCKETS; b++)
			lat->buckets[b] += r->latency.buckets[b];
		lat->count += r->latency.count;
		lat->sum += r->latency.sum;
		if (r->latency.count && r->latency.min < lat->min)
			lat->min = r->latency.min;
		if (r->latency.max > lat->max)
			lat->max = r->latency.max;
	}
	/* With nothing sent and a failure, the errors above say it all. */
	if (o.json && (sent || !status))
		print_json(&o, sh, lat, dropped);
	else if (sent || !status)
		print_text(&o, sh, lat, dropped);
	if (status == 0 && !o.policy && o.subs &&
	    got != (o.group ? sent : sent * o.subs)) {
		fprintf(stderr,
			"expbus bench: subscribers got %" PRIu64
			" records of %" PRIu64 " (lossless)\n",
			got, o.group ? sent : sent * o.subs);
		status = 1;
	}
	if (status &&
	    (sh->r[0].error == -ENOENT || sh->r[0].error == -ECONNREFUSED))
		status = EXIT_BROKER; /* no broker at the socket */
	munmap(sh, shsize);
	free(pids);
	free(lat);
	return status;
}
