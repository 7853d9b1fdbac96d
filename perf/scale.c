/* scale.c — what many attached producers at a low rate each cost the
 * broker: CPU per record and memory, over a window in which every producer
 * is attached and writing. perf/run runs it with 1,000 producers and with
 * 8 at the same total rate.
 *
 * Forks N producers; each attaches, reports ready, waits for the go, then
 * writes pattern.h records at --rate for --duration. This process
 * subscribes and checks every record (header, data, order per producer) as
 * `expbus check` does, and samples the broker (whose pid it is given):
 * CPU from /proc/PID/schedstat (ns on CPU), memory from /proc/PID/status
 * and the memfd mappings in /proc/PID/maps; and the producers' CPU the same
 * way; the broker's loop passes and sleeps from its stats segment.
 * Prints one JSON line.
 *
 * With --pace-only, the baseline of the same run: the same processes keep
 * the same schedule and fill each record's bytes into their own memory,
 * with no broker and no subscriber. What they cost, and whether they keep
 * up, is what the machine leaves to any transport at that load. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
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
#include "layout.h"
#include "pattern.h"
#include "clock.h"

#define MAX_PRODUCERS 2048

struct scale_opts {
	const char *socket;
	char stream[64];
	int broker_pid;
	uint32_t producers;
	double rate; /* per producer */
	double duration;
	double idle_s; /* broker CPU measured this long with every ring idle */
	uint32_t record_size;
	uint32_t ring_slots;
	uint32_t batch_size, max_delay_us;
	bool pace_only;
};

struct mem {
	uint64_t rss_kb, anon_kb, shmem_kb;
	uint64_t memfd_bytes; /* mapped memfd segments, whole */
	uint32_t memfd_maps;
};

static const struct pattern pt = {.games = 4, .episode_len = 100, .players = 2};

/* Nanoseconds pid has run on a CPU: schedstat, else utime + stime. */
static uint64_t cpu_ns(int pid)
{
	unsigned long long run = 0, ut = 0, st = 0;
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", pid);
	f = fopen(path, "r");
	if (f) {
		int n = fscanf(f, "%llu", &run);
		fclose(f);
		if (n == 1)
			return run;
	}
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	/* Fields 14 and 15; the command name (2) may hold spaces, skip past
	 * ')'. */
	if (fscanf(
		f,
		"%*[^)]) %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
		&ut, &st) != 2)
		ut = st = 0;
	fclose(f);
	return (ut + st) *
	       (1000000000ull / (unsigned long long)sysconf(_SC_CLK_TCK));
}

static void read_mem(int pid, struct mem *m)
{
	char path[64], line[512];
	FILE *f;

	memset(m, 0, sizeof(*m));
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			unsigned long long v;
			if (sscanf(line, "VmRSS: %llu", &v) == 1)
				m->rss_kb = v;
			else if (sscanf(line, "RssAnon: %llu", &v) == 1)
				m->anon_kb = v;
			else if (sscanf(line, "RssShmem: %llu", &v) == 1)
				m->shmem_kb = v;
		}
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "r");
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			unsigned long long lo, hi;
			if (strstr(line, "/memfd:") &&
			    sscanf(line, "%llx-%llx", &lo, &hi) == 2) {
				m->memfd_bytes += hi - lo;
				m->memfd_maps++;
			}
		}
		fclose(f);
	}
}

static uint64_t planned(const struct scale_opts *o)
{
	return (uint64_t)(o->rate * o->duration);
}

/* --pace-only: producer's schedule and pattern fill, nothing sent. */
static void pacer(const struct scale_opts *o, uint32_t k, int ready_fd,
		  int go_fd)
{
	const uint64_t total = planned(o);
	const double period = 1e9 / o->rate;
	const size_t data_size = o->record_size - 32;
	struct expbus_record_header *r = malloc(o->record_size);
	volatile uint8_t sink = 0;
	uint64_t t0;
	char go;

	if (!r) {
		(void)!write(ready_fd, "x", 1); /* counted, as failed */
		_exit(1);
	}
	if (write(ready_fd, "r", 1) != 1 || read(go_fd, &go, 1) != 1)
		_exit(1);
	t0 = now_ns() + (uint64_t)(period * k / o->producers);
	for (uint64_t s = 0; s < total; s++) {
		sleep_until(t0 + (uint64_t)((double)s * period));
		pattern_header(&pt, k, s, r);
		pattern_fill(pattern_base(k, s), expbus_record_data(r),
			     data_size);
		sink ^= ((const uint8_t *)r)[s % o->record_size];
	}
	(void)sink;
	free(r);
	_exit(0);
}

static void producer(const struct scale_opts *o, uint32_t k, int ready_fd,
		     int go_fd)
{
	struct expbus_producer_options popts = {.ring_slots = o->ring_slots};
	struct expbus_producer *p = NULL;
	struct expbus *bus = NULL;
	const uint64_t total = planned(o);
	const double period = 1e9 / o->rate;
	size_t data_size;
	char schema[64], go;
	uint64_t t0;
	int err;

	snprintf(schema, sizeof(schema), "payload u8[%u]", o->record_size - 32);
	err = expbus_new(o->socket, &bus);
	if (err == 0)
		err =
		    expbus_producer_attach(bus, o->stream, schema, &popts, &p);
	if (err < 0) {
		fprintf(stderr, "scale: producer %u: %s\n", k,
			bus ? expbus_last_error(bus) : strerror(-err));
		(void)!write(ready_fd, "x", 1);
		_exit(1);
	}
	data_size = expbus_producer_data_size(p);
	if (write(ready_fd, "r", 1) != 1 || read(go_fd, &go, 1) != 1)
		_exit(1);
	/* Phases spread over one period: N producers do not tick together. */
	t0 = now_ns() + (uint64_t)(period * k / o->producers);
	for (uint64_t s = 0; s < total; s++) {
		struct expbus_span span;
		struct expbus_record_header *r;

		sleep_until(t0 + (uint64_t)((double)s * period));
		err = expbus_reserve(p, 1, -1, &span);
		if (err < 0)
			break;
		r = span.first;
		pattern_header(&pt, k, s, r);
		pattern_fill(pattern_base(k, s), expbus_record_data(r),
			     data_size);
		err = expbus_commit(p, 1);
		if (err < 0)
			break;
	}
	expbus_producer_close(p);
	expbus_free(bus);
	_exit(err < 0 ? 1 : 0);
}

struct checker {
	int col_seq, col_game, col_player, col_turn, col_flags, col_data;
	uint32_t data_size;
	uint64_t *next_seq; /* per producer */
	uint32_t producers;
	uint64_t records, corrupt, order_errors;
};

static int column_index(struct expbus_consumer *c, const char *name)
{
	for (int i = 0; i < expbus_consumer_columns(c); i++)
		if (strcmp(expbus_consumer_column_name(c, i), name) == 0)
			return i;
	return -1;
}

static void check_batch(struct checker *ck, struct expbus_consumer *c,
			const struct expbus_batch *b)
{
	struct expbus_column seq, game, player, turn, flags, data;

	expbus_batch_column_at(c, b, ck->col_seq, &seq);
	expbus_batch_column_at(c, b, ck->col_game, &game);
	expbus_batch_column_at(c, b, ck->col_player, &player);
	expbus_batch_column_at(c, b, ck->col_turn, &turn);
	expbus_batch_column_at(c, b, ck->col_flags, &flags);
	expbus_batch_column_at(c, b, ck->col_data, &data);
	for (uint32_t i = 0; i < b->count; i++) {
		uint64_t s = ((const uint64_t *)seq.data)[i];
		uint32_t g = ((const uint32_t *)game.data)[i];
		uint32_t p = g / PATTERN_MAX_GAMES;
		struct expbus_record_header want;

		ck->records++;
		if (p >= ck->producers) {
			ck->corrupt++;
			continue;
		}
		pattern_header(&pt, p, s, &want);
		if (want.game != g ||
		    want.player != ((const uint32_t *)player.data)[i] ||
		    want.turn != ((const uint32_t *)turn.data)[i] ||
		    want.flags != ((const uint32_t *)flags.data)[i] ||
		    pattern_check(pattern_base(p, s),
				  (const uint8_t *)data.data +
				      (size_t)i * ck->data_size,
				  0, ck->data_size))
			ck->corrupt++;
		if (s != ck->next_seq[p])
			ck->order_errors++;
		ck->next_seq[p] = s + 1;
	}
}

typedef void (*body_fn)(const struct scale_opts *o, uint32_t k, int ready_fd,
			int go_fd);

/* Forks o->producers children running body (which never returns); stops
 * at a failed fork. Returns how many were started. */
static uint32_t fork_all(const struct scale_opts *o, pid_t *kids, int ready[2],
			 int go[2], body_fn body)
{
	uint32_t started = 0;

	for (; started < o->producers; started++) {
		kids[started] = fork();
		if (kids[started] < 0) {
			perror("scale: fork");
			break;
		}
		if (kids[started] == 0) {
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			body(o, started, ready[1], go[0]);
		}
	}
	return started;
}

/* Reads one byte from each of n children: 'r' ready, anything else
 * failed. Returns the failed count, or -1 when the pipe broke. */
static int count_ready(int ready_fd, uint32_t n)
{
	int failed = 0;

	for (uint32_t k = 0; k < n; k++) {
		char byte;
		if (read(ready_fd, &byte, 1) != 1)
			return -1;
		if (byte != 'r')
			failed++;
	}
	return failed;
}

/* One byte per child: each reads one and starts. Returns 0 or -1. */
static int start_all(int go_fd, uint32_t n)
{
	char *bytes = malloc(n ? n : 1);
	int r = -1;

	if (bytes) {
		memset(bytes, 'g', n);
		r = write(go_fd, bytes, n) == (ssize_t)n ? 0 : -1;
	}
	free(bytes);
	return r;
}

/* --pace-only: forks the pacers, starts them together, waits for all. */
static int pace_only(const struct scale_opts *o, pid_t *kids, int ready[2],
		     int go[2])
{
	uint64_t want = planned(o) * o->producers, t_go, t_end, cpu_us;
	uint32_t started = fork_all(o, kids, ready, go, pacer), failed = 0;
	struct rusage ru;
	int status = started < o->producers || count_ready(ready[0], started);

	t_go = now_ns();
	if (status == 0 && start_all(go[1], started) < 0)
		status = 1;
	for (uint32_t k = 0; k < started; k++) {
		int ws;
		if (status)
			(void)kill(kids[k], SIGTERM);
		if (waitpid(kids[k], &ws, 0) != kids[k] || !WIFEXITED(ws) ||
		    WEXITSTATUS(ws))
			failed++;
	}
	t_end = now_ns();
	if (status || failed) {
		fprintf(stderr, "scale: %u pacers failed\n", failed);
		return 1;
	}
	getrusage(RUSAGE_CHILDREN, &ru);
	cpu_us =
	    (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
	    (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
	printf("{\"pace_only\":true,\"producers\":%u,"
	       "\"rate_per_producer\":%.2f,\"total_rate\":%.1f,"
	       "\"record_size\":%u,\"records\":%" PRIu64
	       ",\"elapsed_s\":%.3f,\"records_per_s\":%.1f,"
	       "\"producers_cpu_pct\":%.3f}\n",
	       o->producers, o->rate, o->rate * o->producers, o->record_size,
	       want, (double)(t_end - t_go) / 1e9,
	       (double)want * 1e9 / (double)(t_end - t_go),
	       100.0 * (double)cpu_us * 1e3 / (double)(t_end - t_go));
	return 0;
}

static void usage(void)
{
	printf(
	    "Usage: scale --socket PATH --broker-pid PID [OPTION]...\n"
	    "Broker CPU per record and memory with many producers attached.\n"
	    "\n"
	    "  -s, --socket PATH     the broker's socket (required)\n"
	    "      --broker-pid PID  the broker to measure (required)\n"
	    "  -n, --producers N     producer processes (default 1000)\n"
	    "      --rate R          records/s per producer (default 20)\n"
	    "      --duration SEC    how long each writes (default 5); the\n"
	    "                        window measured is its middle 80 %%\n"
	    "      --record-size N   bytes, header included (default 64)\n"
	    "      --ring-slots N    slots per producer ring (default 64)\n"
	    "      --batch-size B    the subscription's (default 256)\n"
	    "      --max-delay-us D  the subscription's (default 10000)\n"
	    "      --idle-s SEC      first measure the broker this long with\n"
	    "                        every producer attached and idle\n"
	    "                        (default 0: not)\n"
	    "      --pace-only       the baseline: the producers keep their\n"
	    "                        schedule and fill each record in their\n"
	    "                        own memory, nothing sent (no broker is\n"
	    "                        needed; --socket and --broker-pid are\n"
	    "                        ignored). Prints their CPU and the rate\n"
	    "                        they made records at.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"broker-pid", required_argument, NULL, 'P'},
	    {"producers", required_argument, NULL, 'n'},
	    {"rate", required_argument, NULL, 'r'},
	    {"duration", required_argument, NULL, 'd'},
	    {"idle-s", required_argument, NULL, 'I'},
	    {"record-size", required_argument, NULL, 'z'},
	    {"ring-slots", required_argument, NULL, 'R'},
	    {"batch-size", required_argument, NULL, 'B'},
	    {"max-delay-us", required_argument, NULL, 'D'},
	    {"pace-only", no_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct scale_opts o = {.producers = 1000,
			       .rate = 20,
			       .duration = 5,
			       .record_size = 64,
			       .ring_slots = 64,
			       .batch_size = 256,
			       .max_delay_us = 10000};
	struct expbus_subscribe_options so = {.batch_slots = 64};
	struct checker ck = {0};
	struct expbus_consumer *c = NULL;
	struct expbus *bus = NULL;
	struct mem during, bmem_idle;
	pid_t *kids;
	uint32_t started = 0;
	uint64_t t_start, t_attached, t_go, w_start = 0, w_end = 0, want;
	uint64_t cpu0 = 0, cpu1 = 0, rec0 = 0, rec1 = 0, pcpu0 = 0, pcpu1 = 0;
	double idle_cpu_pct = 0;
	uint64_t behind = 0;
	uint64_t child_rss_kb = 0, loops0 = 0, loops1 = 0, sleeps0 = 0,
		 sleeps1 = 0;
	const struct stats_segment *st = NULL;
	const void *seg = NULL;
	size_t seg_size = 0;
	int ready[2], go[2], opt, status = 0, failed_attach = 0;

	while ((opt = getopt_long(argc, argv, "s:n:h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			o.socket = optarg;
			break;
		case 'P':
			o.broker_pid = atoi(optarg);
			break;
		case 'n':
			o.producers = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'r':
			o.rate = strtod(optarg, NULL);
			break;
		case 'd':
			o.duration = strtod(optarg, NULL);
			break;
		case 'I':
			o.idle_s = strtod(optarg, NULL);
			break;
		case 'z':
			o.record_size = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'R':
			o.ring_slots = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'B':
			o.batch_size = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'D':
			o.max_delay_us = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'p':
			o.pace_only = true;
			break;
		case 'h':
			usage();
			return 0;
		default:
			return 2;
		}
	}
	if ((!o.pace_only && (!o.socket || o.broker_pid <= 0)) ||
	    !o.producers || o.producers > MAX_PRODUCERS || o.rate <= 0 ||
	    o.duration <= 0 || o.record_size < 40 || o.record_size % 8) {
		fprintf(stderr, "scale: bad arguments; try --help\n");
		return 2;
	}
	so.batch_size = o.batch_size;
	so.max_delay_us = o.max_delay_us;
	snprintf(o.stream, sizeof(o.stream), "scale-%d", (int)getpid());
	want = planned(&o) * o.producers;
	kids = calloc(o.producers, sizeof(*kids));
	ck.next_seq = calloc(o.producers, sizeof(*ck.next_seq));
	ck.producers = o.producers;
	ck.data_size = o.record_size - 32;
	if (!kids || !ck.next_seq || pipe(ready) < 0 || pipe(go) < 0)
		return 1;
	if (o.pace_only)
		return pace_only(&o, kids, ready, go);
	read_mem(o.broker_pid, &bmem_idle);
	t_start = now_ns();
	started = fork_all(&o, kids, ready, go, producer);
	if (started < o.producers)
		goto fail;
	failed_attach = count_ready(ready[0], started);
	if (failed_attach < 0)
		goto fail;
	t_attached = now_ns();
	if (failed_attach) {
		fprintf(stderr, "scale: %d producers could not attach\n",
			failed_attach);
		goto fail;
	}
	if (expbus_new(o.socket, &bus) < 0 ||
	    expbus_subscribe(bus, o.stream, &so, &c) < 0) {
		fprintf(stderr, "scale: subscribe: %s\n",
			bus ? expbus_last_error(bus) : "");
		goto fail;
	}
	if (expbus_stats_map(bus, &seg, &seg_size) == 0)
		st = seg;
	if (o.idle_s > 0) {
		/* Every ring attached, the subscriber waiting, nothing written:
		 * what an idle broker costs. */
		uint64_t c0 = cpu_ns(o.broker_pid), t0 = now_ns(), c1, t1;
		usleep((useconds_t)(o.idle_s * 1e6));
		c1 = cpu_ns(o.broker_pid);
		t1 = now_ns();
		idle_cpu_pct = 100.0 * (double)(c1 - c0) / (double)(t1 - t0);
	}
	ck.col_seq = column_index(c, "seq");
	ck.col_game = column_index(c, "game");
	ck.col_player = column_index(c, "player");
	ck.col_turn = column_index(c, "turn");
	ck.col_flags = column_index(c, "flags");
	ck.col_data = column_index(c, "payload");
	if (start_all(go[1], o.producers) < 0)
		goto fail;
	t_go = now_ns();
	{
		const uint64_t w0 = t_go + (uint64_t)(o.duration * 0.1e9);
		const uint64_t w1 = t_go + (uint64_t)(o.duration * 0.9e9);

		while (ck.records < want) {
			const struct expbus_batch *b;
			uint64_t t = now_ns();
			int err;

			if (!w_start && t >= w0) {
				w_start = t;
				cpu0 = cpu_ns(o.broker_pid);
				if (st) {
					loops0 = atomic_load_explicit(
					    &st->loops, memory_order_relaxed);
					sleeps0 = atomic_load_explicit(
					    &st->sleeps, memory_order_relaxed);
				}
				rec0 = ck.records;
				for (uint32_t k = 0; k < o.producers; k++)
					pcpu0 += cpu_ns(kids[k]);
				{
					/* Now, while every producer surely
					 * lives. */
					struct mem cm;
					read_mem(kids[0], &cm);
					child_rss_kb = cm.rss_kb;
				}
			}
			if (w_start && !w_end && t >= w1) {
				w_end = t;
				cpu1 = cpu_ns(o.broker_pid);
				if (st) {
					loops1 = atomic_load_explicit(
					    &st->loops, memory_order_relaxed);
					sleeps1 = atomic_load_explicit(
					    &st->sleeps, memory_order_relaxed);
				}
				rec1 = ck.records;
				for (uint32_t k = 0; k < o.producers; k++)
					pcpu1 += cpu_ns(kids[k]);
				read_mem(o.broker_pid, &during);
			}
			if (t > t_go + (uint64_t)((o.duration + 20) * 1e9)) {
				/* Not lost (lossless: they wait in the
				 * rings) but late: report how far behind,
				 * with the figures of the window. */
				behind = want - ck.records;
				fprintf(stderr,
					"scale: %" PRIu64 " records still "
					"undelivered 20 s after the run\n",
					behind);
				if (!w_end)
					goto fail;
				break;
			}
			err = expbus_next_batch(c, 20, &b);
			if (err == -EAGAIN || err == -ETIMEDOUT ||
			    err == -EINTR)
				continue;
			if (err < 0) {
				fprintf(stderr, "scale: next_batch: %s\n",
					expbus_last_error(bus));
				goto fail;
			}
			check_batch(&ck, c, b);
			expbus_release(c, b);
		}
	}
	if (!w_end) {
		fprintf(stderr, "scale: the run ended before its window\n");
		goto fail;
	}
	{
		double wsec = (double)(w_end - w_start) / 1e9;
		uint64_t dr = rec1 - rec0;

		printf(
		    "{\"producers\":%u,\"rate_per_producer\":%.2f,\"total_rate\":%.1f,"
		    "\"record_size\":%u,\"ring_slots\":%u,\"batch_size\":%u,"
		    "\"max_delay_us\":%u,\"records\":%" PRIu64
		    ",\"corrupt\":%" PRIu64 ",\"order_errors\":%" PRIu64
		    ",\"attach_s\":%.3f,"
		    "\"window_s\":%.3f,\"window_records\":%" PRIu64
		    ",\"records_per_s\":%.1f,\"broker_cpu_pct\":%.3f,"
		    "\"broker_cpu_ns_per_record\":%.1f,"
		    "\"producers_cpu_pct\":%.3f,\"producers_cpu_ns_per_record\":%.1f,"
		    "\"broker_loops_per_s\":%.1f,\"broker_sleeps_per_s\":%.1f,"
		    "\"broker_cpu_ns_per_loop\":%.1f,"
		    "\"broker_mem\":{\"idle_rss_kb\":%" PRIu64
		    ",\"rss_kb\":%" PRIu64 ",\"anon_kb\":%" PRIu64
		    ",\"shmem_kb\":%" PRIu64 ",\"memfd_mapped_bytes\":%" PRIu64
		    ",\"memfd_maps\":%u},"
		    "\"producer_rss_kb\":%" PRIu64
		    ",\"idle_broker_cpu_pct\":%.3f,\"behind\":%" PRIu64 "}\n",
		    o.producers, o.rate, o.rate * o.producers, o.record_size,
		    o.ring_slots, o.batch_size, o.max_delay_us, ck.records,
		    ck.corrupt, ck.order_errors,
		    (double)(t_attached - t_start) / 1e9, wsec, dr,
		    (double)dr / wsec,
		    100.0 * (double)(cpu1 - cpu0) / 1e9 / wsec,
		    dr ? (double)(cpu1 - cpu0) / (double)dr : 0.0,
		    100.0 * (double)(pcpu1 - pcpu0) / 1e9 / wsec,
		    dr ? (double)(pcpu1 - pcpu0) / (double)dr : 0.0,
		    (double)(loops1 - loops0) / wsec,
		    (double)(sleeps1 - sleeps0) / wsec,
		    loops1 > loops0
			? (double)(cpu1 - cpu0) / (double)(loops1 - loops0)
			: 0.0,
		    bmem_idle.rss_kb, during.rss_kb, during.anon_kb,
		    during.shmem_kb, during.memfd_bytes, during.memfd_maps,
		    child_rss_kb, idle_cpu_pct, behind);
	}
	if (ck.corrupt || ck.order_errors || behind)
		status = 1;
	goto out;
fail:
	status = 1;
	for (uint32_t k = 0; k < started; k++)
		(void)kill(kids[k], SIGTERM);
out:
	if (seg)
		expbus_stats_unmap(seg, seg_size);
	expbus_consumer_close(c);
	expbus_free(bus);
	for (uint32_t k = 0; k < started; k++) {
		int ws;
		if (waitpid(kids[k], &ws, 0) == kids[k] &&
		    (!WIFEXITED(ws) || WEXITSTATUS(ws)))
			status = 1;
	}
	free(kids);
	free(ck.next_seq);
	return status;
}
