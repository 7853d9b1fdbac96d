/* flush.c — how full the broker's batches are and how long batching holds
 * records back, under a given load, for a subscription's batch size and
 * maximum delay. perf/run runs it at low, bursty and high rates.
 *
 * Forked producers write at a steady rate or in bursts; libexpbus stamps
 * each record at commit (CLOCK_MONOTONIC). The subscriber records, per
 * batch, its count and flush reason, and the wait batching added:
 * publish_ns - timestamp for every record, and publish_ns - the oldest
 * timestamp for the batch (the figure max_delay bounds). Prints one JSON
 * line. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "expbus.h"
#include "hist.h"
#include "pattern.h"
#include "clock.h"

#define MAX_PRODUCERS 256
#define MIN_SLEEP_NS  100000u /* a paced producer naps at least this long */

struct flush_opts {
	const char *socket;
	char stream[64];
	uint32_t producers;
	double rate;	    /* records/s per producer, steady (0 with burst) */
	uint32_t burst;	    /* records per burst */
	uint32_t period_us; /* between bursts */
	double duration;
	uint32_t batch_size, max_delay_us;
	uint32_t record_size;
};

static void usage(void)
{
	printf(
	    "Usage: flush --socket PATH [OPTION]...\n"
	    "Batch fill and the wait batching adds, for one subscription.\n"
	    "\n"
	    "  -s, --socket PATH     the broker's socket (required)\n"
	    "      --producers N     producer processes (default 8)\n"
	    "      --rate R          steady records/s per producer\n"
	    "      --burst N         instead: N records back to back every\n"
	    "      --period-us T     T microseconds, per producer\n"
	    "      --duration SEC    how long producers write (default 2)\n"
	    "      --batch-size B    the subscription's batch size (default 256)\n"
	    "      --max-delay-us D  its maximum delay (default 5000)\n"
	    "      --record-size N   bytes, header included (default 64)\n"
	    "Prints one JSON line: batches, records, mean fill (records per\n"
	    "batch / B), flush reasons, and histograms (ns) of the per-record\n"
	    "wait (publish - commit) and per-batch wait (publish - oldest\n"
	    "commit).\n");
}

static int parse(int argc, char **argv, struct flush_opts *o)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"producers", required_argument, NULL, 'n'},
	    {"rate", required_argument, NULL, 'r'},
	    {"burst", required_argument, NULL, 'b'},
	    {"period-us", required_argument, NULL, 'p'},
	    {"duration", required_argument, NULL, 'd'},
	    {"batch-size", required_argument, NULL, 'B'},
	    {"max-delay-us", required_argument, NULL, 'D'},
	    {"record-size", required_argument, NULL, 'z'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->socket = optarg;
			break;
		case 'n':
			o->producers = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'r':
			o->rate = strtod(optarg, NULL);
			break;
		case 'b':
			o->burst = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'p':
			o->period_us = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'd':
			o->duration = strtod(optarg, NULL);
			break;
		case 'B':
			o->batch_size = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'D':
			o->max_delay_us = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'z':
			o->record_size = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'h':
			usage();
			exit(0);
		default:
			return 2;
		}
	}
	if (!o->socket || o->producers < 1 || o->producers > MAX_PRODUCERS ||
	    (o->rate <= 0) == (o->burst == 0) || (o->burst && !o->period_us) ||
	    o->duration <= 0 || !o->batch_size || !o->max_delay_us ||
	    o->record_size < 40 || o->record_size % 8) {
		fprintf(stderr,
			"flush: bad arguments (one of --rate and --burst "
			"is needed); try --help\n");
		return 2;
	}
	return 0;
}

/* Records producer k writes: decided up front so that the subscriber
 * knows when it has them all. */
static uint64_t planned(const struct flush_opts *o)
{
	if (o->burst)
		return (uint64_t)(o->duration * 1e6 / o->period_us) * o->burst;
	return (uint64_t)(o->duration * o->rate);
}

/* Records due by time t: steady, or whole bursts. */
static uint64_t due(const struct flush_opts *o, uint64_t t0, uint64_t t)
{
	double dt = (double)(t - t0);

	if (o->burst)
		return ((uint64_t)(dt / 1e3 / o->period_us) + 1) * o->burst;
	return (uint64_t)(dt / 1e9 * o->rate) + 1;
}

static uint64_t next_due_ns(const struct flush_opts *o, uint64_t t0, uint64_t s)
{
	if (o->burst)
		return t0 + (s / o->burst) * (uint64_t)o->period_us * 1000u;
	return t0 + (uint64_t)((double)s / o->rate * 1e9);
}

static void producer(const struct flush_opts *o, uint32_t k, int ready_fd,
		     int go_fd)
{
	const struct pattern pt = {
	    .games = 4, .episode_len = 100, .players = 2};
	struct expbus_producer *p = NULL;
	struct expbus *bus = NULL;
	const uint64_t total = planned(o);
	uint64_t t0, s = 0;
	size_t data_size;
	char schema[64], go;
	int err;

	(void)prctl(PR_SET_TIMERSLACK, 1UL);
	snprintf(schema, sizeof(schema), "payload u8[%u]", o->record_size - 32);
	err = expbus_new(o->socket, &bus);
	if (err == 0)
		err = expbus_producer_attach(bus, o->stream, schema, NULL, &p);
	if (err < 0) {
		fprintf(stderr, "flush: producer %u: %s\n", k,
			bus ? expbus_last_error(bus) : strerror(-err));
		_exit(1);
	}
	data_size = expbus_producer_data_size(p);
	if (write(ready_fd, "r", 1) != 1 || read(go_fd, &go, 1) != 1)
		_exit(1);
	/* Spread the producers' phases over one period so that bursts and
	 * steady records do not all start in lockstep. */
	t0 = now_ns() + (o->burst
			     ? (uint64_t)o->period_us * 1000u * k / o->producers
			     : (uint64_t)(1e9 / o->rate * k / o->producers));
	while (s < total) {
		uint64_t t = now_ns(), d = due(o, t0, t);
		struct expbus_span span;
		int n;

		if (t < t0 || d <= s) {
			uint64_t next = next_due_ns(o, t0, s);
			sleep_until(next > t + MIN_SLEEP_NS ? next
							    : t + MIN_SLEEP_NS);
			continue;
		}
		if (d > total)
			d = total;
		n = expbus_reserve(p, (unsigned)(d - s < 64 ? d - s : 64), -1,
				   &span);
		if (n < 0) {
			err = n;
			break;
		}
		for (int i = 0; i < n; i++) {
			struct expbus_record_header *r =
			    expbus_span_record(&span, (unsigned)i);
			pattern_header(&pt, k, s + (unsigned)i, r);
			pattern_fill(pattern_base(k, s + (unsigned)i),
				     expbus_record_data(r), data_size);
		}
		err = expbus_commit(p, (unsigned)n);
		if (err < 0)
			break;
		s += (unsigned)n;
	}
	if (err < 0)
		fprintf(stderr, "flush: producer %u: %s\n", k, strerror(-err));
	expbus_producer_close(p);
	expbus_free(bus);
	_exit(err < 0 ? 1 : 0);
}

int main(int argc, char **argv)
{
	struct flush_opts o = {.producers = 8,
			       .duration = 2,
			       .batch_size = 256,
			       .max_delay_us = 5000,
			       .record_size = 64};
	struct expbus_subscribe_options so = {.batch_slots = 64};
	static struct hist rec_wait, batch_wait;
	struct expbus_consumer *c = NULL;
	struct expbus *bus = NULL;
	pid_t kids[MAX_PRODUCERS];
	uint32_t started = 0;
	uint64_t got = 0, want, batches = 0, reasons[4] = {0};
	uint64_t t_first = 0, t_last = 0;
	int ready[2], go[2], col_ts, err, status = 0;
	char byte;

	err = parse(argc, argv, &o);
	if (err)
		return err;
	so.batch_size = o.batch_size;
	so.max_delay_us = o.max_delay_us;
	snprintf(o.stream, sizeof(o.stream), "flush-%d", (int)getpid());
	want = planned(&o) * o.producers;
	hist_init(&rec_wait);
	hist_init(&batch_wait);
	if (pipe(ready) < 0 || pipe(go) < 0) {
		perror("flush: pipe");
		return 1;
	}
	for (; started < o.producers; started++) {
		kids[started] = fork();
		if (kids[started] < 0) {
			perror("flush: fork");
			goto fail;
		}
		if (kids[started] == 0) {
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			producer(&o, started, ready[1], go[0]);
		}
	}
	for (uint32_t k = 0; k < o.producers; k++)
		if (read(ready[0], &byte, 1) != 1) {
			fprintf(stderr, "flush: a producer did not attach\n");
			goto fail;
		}
	err = expbus_new(o.socket, &bus);
	if (err == 0)
		err = expbus_subscribe(bus, o.stream, &so, &c);
	if (err < 0) {
		fprintf(stderr, "flush: subscribe: %s\n",
			bus ? expbus_last_error(bus) : strerror(-err));
		goto fail;
	}
	col_ts = -1;
	for (int i = 0; i < expbus_consumer_columns(c); i++)
		if (strcmp(expbus_consumer_column_name(c, i), "timestamp") == 0)
			col_ts = i;
	if (col_ts < 0)
		goto fail;
	for (uint32_t k = 0; k < o.producers; k++)
		if (write(go[1], "g", 1) != 1)
			goto fail;
	while (got < want) {
		const struct expbus_batch *b;
		struct expbus_column ts;
		uint64_t oldest = UINT64_MAX;

		err = expbus_next_batch(c, 100, &b);
		if (err == -EAGAIN || err == -ETIMEDOUT || err == -EINTR)
			continue;
		if (err < 0) {
			fprintf(stderr, "flush: next_batch: %s\n",
				expbus_last_error(bus));
			goto fail;
		}
		t_last = now_ns();
		if (!t_first)
			t_first = t_last;
		expbus_batch_column_at(c, b, col_ts, &ts);
		for (uint32_t i = 0; i < b->count; i++) {
			uint64_t stamp = ((const uint64_t *)ts.data)[i];

			if (stamp < oldest)
				oldest = stamp;
			hist_record(&rec_wait, b->publish_ns > stamp
						   ? b->publish_ns - stamp
						   : 0);
		}
		if (b->count)
			hist_record(&batch_wait, b->publish_ns > oldest
						     ? b->publish_ns - oldest
						     : 0);
		if (b->flush_reason < 4)
			reasons[b->flush_reason]++;
		batches++;
		got += b->count;
		expbus_release(c, b);
	}
	printf("{\"producers\":%u,\"rate_per_producer\":%.1f,\"burst\":%u,"
	       "\"period_us\":%u,\"duration\":%.3f,\"batch_size\":%u,"
	       "\"max_delay_us\":%u,\"record_size\":%u,\"records\":%" PRIu64
	       ",\"batches\":%" PRIu64 ",\"seconds\":%.3f,\"mean_fill\":%.4f,"
	       "\"flush\":{\"full\":%" PRIu64 ",\"timeout\":%" PRIu64
	       ",\"drain\":%" PRIu64 "},",
	       o.producers, o.rate, o.burst, o.period_us, o.duration,
	       o.batch_size, o.max_delay_us, o.record_size, got, batches,
	       (double)(t_last - t_first) / 1e9,
	       batches ? (double)got / (double)batches / o.batch_size : 0.0,
	       reasons[EXPBUS_FLUSH_FULL], reasons[EXPBUS_FLUSH_TIMEOUT],
	       reasons[EXPBUS_FLUSH_DRAIN]);
	hist_json(stdout, "record_wait", &rec_wait);
	putchar(',');
	hist_json(stdout, "batch_wait", &batch_wait);
	printf("}\n");
	goto out;
fail:
	status = 1;
	for (uint32_t k = 0; k < started; k++)
		(void)kill(kids[k], SIGTERM);
out:
	expbus_consumer_close(c);
	expbus_free(bus);
	for (uint32_t k = 0; k < started; k++)
		if (waitpid(kids[k], &err, 0) == kids[k] &&
		    (!WIFEXITED(err) || WEXITSTATUS(err)))
			status = 1;
	return status;
}
