/* latency.c — how long a record takes from expbus_commit in a producer
 * process to being visible to a subscriber in another, batch size 1, with
 * the subscriber busy-polling or sleeping on its eventfd. perf/run runs it.
 *
 * The producer child commits records at a fixed rate (open loop: a late
 * record is not skipped, so queueing shows in the tail); libexpbus stamps
 * each with CLOCK_MONOTONIC at commit, the broker carries the stamp in the
 * batch's timestamp column, and the subscriber takes CLOCK_MONOTONIC when
 * expbus_next_batch hands it the batch. Both processes share the clock, so
 * the difference is the latency. Prints one JSON line. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "expbus.h"
#include "hist.h"
#include "pattern.h"
#include "clock.h"

struct lat_opts {
	const char *socket;
	char stream[64];
	bool busy;
	uint64_t samples, warmup;
	double rate;
	uint32_t record_size;
};

static void usage(void)
{
	printf(
	    "Usage: latency --socket PATH [OPTION]...\n"
	    "Commit-to-visible latency through expbusd, batch size 1: a forked\n"
	    "producer commits records at --rate, the subscriber measures\n"
	    "CLOCK_MONOTONIC at receipt minus the commit timestamp.\n"
	    "\n"
	    "  -s, --socket PATH    the broker's socket (required)\n"
	    "      --mode MODE      busy (expbus_next_batch(c, 0) in a spin loop)\n"
	    "                       or sleep (a 100 ms timeout: sleeps on the\n"
	    "                       eventfd) (default busy)\n"
	    "      --samples N      records measured (default 1000000)\n"
	    "      --warmup N       records before them, not measured (default\n"
	    "                       N/100, at least 100)\n"
	    "      --rate R         records per second (default 50000)\n"
	    "      --record-size N  bytes, header included, >= 40, multiple of 8\n"
	    "                       (default 64)\n"
	    "Prints one JSON line: commit_to_visible (what is asked),\n"
	    "commit_to_publish (producer ring and broker) and\n"
	    "publish_to_visible (batch ring and wakeup), each with count, min,\n"
	    "mean, p50, p90, p99, p99.9, p99.99 and max in ns.\n");
}

static int parse(int argc, char **argv, struct lat_opts *o)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"mode", required_argument, NULL, 'm'},
	    {"samples", required_argument, NULL, 'n'},
	    {"warmup", required_argument, NULL, 'w'},
	    {"rate", required_argument, NULL, 'r'},
	    {"record-size", required_argument, NULL, 'z'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	bool warm = false;
	int c;

	while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->socket = optarg;
			break;
		case 'm':
			if (strcmp(optarg, "busy") && strcmp(optarg, "sleep")) {
				fprintf(stderr,
					"latency: --mode busy or sleep\n");
				return 2;
			}
			o->busy = strcmp(optarg, "busy") == 0;
			break;
		case 'n':
			o->samples = strtoull(optarg, NULL, 10);
			break;
		case 'w':
			o->warmup = strtoull(optarg, NULL, 10);
			warm = true;
			break;
		case 'r':
			o->rate = strtod(optarg, NULL);
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
	if (!o->socket || o->samples == 0 || o->rate <= 0 ||
	    o->record_size < 40 || o->record_size % 8) {
		fprintf(stderr, "latency: bad arguments; try --help\n");
		return 2;
	}
	if (!warm)
		o->warmup = o->samples / 100 > 100 ? o->samples / 100 : 100;
	return 0;
}

static void producer(const struct lat_opts *o, int ready_fd, int go_fd)
{
	const struct pattern pt = {
	    .games = 4, .episode_len = 100, .players = 2};
	struct expbus_producer_options popts = {.ring_slots = 4096};
	struct expbus_producer *p = NULL;
	struct expbus *bus = NULL;
	const uint64_t total = o->samples + o->warmup;
	const double period = 1e9 / o->rate;
	uint64_t t0;
	size_t data_size;
	char schema[64], go;
	int err;

	/* Sleeps end on time, not up to 50 us late. */
	(void)prctl(PR_SET_TIMERSLACK, 1UL);
	snprintf(schema, sizeof(schema), "payload u8[%u]", o->record_size - 32);
	err = expbus_new(o->socket, &bus);
	if (err == 0)
		err =
		    expbus_producer_attach(bus, o->stream, schema, &popts, &p);
	if (err < 0) {
		fprintf(stderr, "latency: producer: %s\n",
			bus ? expbus_last_error(bus) : strerror(-err));
		_exit(1);
	}
	data_size = expbus_producer_data_size(p);
	if (write(ready_fd, "r", 1) != 1 || read(go_fd, &go, 1) != 1)
		_exit(1);
	t0 = now_ns();
	for (uint64_t s = 0; s < total; s++) {
		struct expbus_span span;
		struct expbus_record_header *r;

		sleep_until(t0 + (uint64_t)((double)s * period));
		err = expbus_reserve(p, 1, -1, &span);
		if (err < 0)
			break;
		r = span.first;
		pattern_header(&pt, 0, s, r);
		pattern_fill(pattern_base(0, s), expbus_record_data(r),
			     data_size);
		err = expbus_commit(p, 1);
		if (err < 0)
			break;
	}
	if (err < 0)
		fprintf(stderr, "latency: producer: %s\n", strerror(-err));
	expbus_producer_close(p);
	expbus_free(bus);
	_exit(err < 0 ? 1 : 0);
}

/* CPU (user + system) of ru over ns of wall time, in % of one core. */
static double cpu_pct(const struct rusage *ru, uint64_t ns)
{
	double us = (double)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1e6 +
		    (double)(ru->ru_utime.tv_usec + ru->ru_stime.tv_usec);

	return ns ? 100.0 * us * 1e3 / (double)ns : 0.0;
}

static int column_index(struct expbus_consumer *c, const char *name)
{
	for (int i = 0; i < expbus_consumer_columns(c); i++)
		if (strcmp(expbus_consumer_column_name(c, i), name) == 0)
			return i;
	return -1;
}

int main(int argc, char **argv)
{
	struct lat_opts o = {
	    .busy = true, .samples = 1000000, .rate = 50000, .record_size = 64};
	struct expbus_subscribe_options so = {
	    .batch_size = 1, .max_delay_us = 1000, .batch_slots = 1024};
	static struct hist total, broker, deliver;
	struct rusage pru = {0}, sru = {0};
	struct expbus_consumer *c = NULL;
	struct expbus *bus = NULL;
	int ready[2], go[2], col_ts, col_seq, err, status = 0;
	uint64_t got = 0, want, next_seq = 0, order_errors = 0, t_start, t_end;
	uint64_t publish_early = 0;
	char byte;
	pid_t child;

	err = parse(argc, argv, &o);
	if (err)
		return err;
	snprintf(o.stream, sizeof(o.stream), "latency-%s-%d",
		 o.busy ? "busy" : "sleep", (int)getpid());
	want = o.samples + o.warmup;
	hist_init(&total);
	hist_init(&broker);
	hist_init(&deliver);
	if (pipe(ready) < 0 || pipe(go) < 0) {
		perror("latency: pipe");
		return 1;
	}
	child = fork();
	if (child < 0) {
		perror("latency: fork");
		return 1;
	}
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		producer(&o, ready[1], go[0]);
	}
	/* The producer creates the stream; subscribe once it has. */
	if (read(ready[0], &byte, 1) != 1) {
		fprintf(stderr, "latency: the producer did not attach\n");
		goto fail;
	}
	err = expbus_new(o.socket, &bus);
	if (err == 0)
		err = expbus_subscribe(bus, o.stream, &so, &c);
	if (err < 0) {
		fprintf(stderr, "latency: subscribe: %s\n",
			bus ? expbus_last_error(bus) : strerror(-err));
		goto fail;
	}
	col_ts = column_index(c, "timestamp");
	col_seq = column_index(c, "seq");
	if (col_ts < 0 || col_seq < 0) {
		fprintf(stderr, "latency: no timestamp or seq column\n");
		goto fail;
	}
	if (write(go[1], "g", 1) != 1)
		goto fail;
	t_start = now_ns();
	while (got < want) {
		const struct expbus_batch *b;
		struct expbus_column ts, seq;
		uint64_t t;

		err = expbus_next_batch(c, o.busy ? 0 : 100, &b);
		if (err == -EAGAIN || err == -ETIMEDOUT || err == -EINTR)
			continue;
		if (err < 0) {
			fprintf(stderr, "latency: next_batch: %s\n",
				expbus_last_error(bus));
			goto fail;
		}
		t = now_ns();
		expbus_batch_column_at(c, b, col_ts, &ts);
		expbus_batch_column_at(c, b, col_seq, &seq);
		for (uint32_t i = 0; i < b->count; i++) {
			uint64_t stamp = ((const uint64_t *)ts.data)[i];
			uint64_t s = ((const uint64_t *)seq.data)[i];

			if (s != next_seq)
				order_errors++;
			next_seq = s + 1;
			if (got + i >= o.warmup) {
				hist_record(&total, t - stamp);
				/* publish_ns may precede the stamp: the broker
				 * stamps a batch with the time its loop pass
				 * began (src/broker/batch.c), which can be
				 * before the commit it then takes. Count, clamp
				 * to 0. */
				if (b->publish_ns < stamp)
					publish_early++;
				hist_record(&broker, b->publish_ns > stamp
							 ? b->publish_ns - stamp
							 : 0);
				hist_record(&deliver, t > b->publish_ns
							  ? t - b->publish_ns
							  : 0);
			}
		}
		got += b->count;
		expbus_release(c, b);
	}
	t_end = now_ns();
	/* Each party's CPU over the run, in % of one core: on a small machine
	 * whether the broker had a core left. The producer's last commit came
	 * before our last batch: it has exited or is about to. */
	if (wait4(child, &err, 0, &pru) == child) {
		if (!WIFEXITED(err) || WEXITSTATUS(err))
			status = 1;
		child = -1;
	}
	getrusage(RUSAGE_SELF, &sru);
	printf("{\"mode\":\"%s\",\"clock\":\"CLOCK_MONOTONIC\",\"rate\":%.0f,"
	       "\"record_size\":%u,\"warmup\":%" PRIu64 ",\"samples\":%" PRIu64
	       ",\"seconds\":%.3f,\"order_errors\":%" PRIu64
	       ",\"publish_before_commit\":%" PRIu64
	       ",\"producer_cpu_pct\":%.1f,\"subscriber_cpu_pct\":%.1f,",
	       o.busy ? "busy" : "sleep", o.rate, o.record_size, o.warmup,
	       total.count, (double)(t_end - t_start) / 1e9, order_errors,
	       publish_early, cpu_pct(&pru, t_end - t_start),
	       cpu_pct(&sru, t_end - t_start));
	hist_json(stdout, "commit_to_visible", &total);
	putchar(',');
	hist_json(stdout, "commit_to_publish", &broker);
	putchar(',');
	hist_json(stdout, "publish_to_visible", &deliver);
	printf("}\n");
	if (order_errors)
		status = 1;
	goto out;
fail:
	status = 1;
	(void)kill(child, SIGTERM);
out:
	expbus_consumer_close(c);
	expbus_free(bus);
	if (child > 0 && waitpid(child, &err, 0) == child &&
	    (!WIFEXITED(err) || WEXITSTATUS(err)))
		status = 1;
	return status;
}
