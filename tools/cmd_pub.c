/* cmd_pub.c — `expbus pub`: N producer processes write patterned records
 * (pattern.h) through reserve/fill/commit as fast as they can, or at a
 * rate, and the parent adds up what they report through a pipe. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/futex.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "expbus.h"
#include "layout.h"
#include "options.h"
#include "pattern.h"
#include "schema.h"
#include "stats_view.h"

#define CMD		"pub"
#define DEFAULT_SCHEMA	"obs f32[8,8]; action i32; reward f32"
#define RESERVE_WAIT_MS 100 /* blocking reserve, sliced to notice signals */

/* --together's words, on the line after the children's counters: the
 * children attached (start), the children done writing, and the parent's
 * leave flag. */
enum { GATE_START, GATE_DONE, GATE_LEAVE };

struct pub_opts {
	const char *socket;
	const char *stream;
	char schema[SCHEMA_TEXT_MAX];
	uint32_t producers;
	uint64_t count; /* per producer; 0: until duration or a signal */
	double duration;
	double rate;
	struct pattern pt;
	uint32_t batch;
	bool nonblock;
	uint32_t ring_slots;
	uint32_t spin_us;
	uint32_t wait_subs;
	uint32_t wait_ms;
	bool together;
	bool json;
	bool progress;
};

/* What a child writes to the parent's pipe when it is done: one write of
 * less than PIPE_BUF bytes, so the children's reports never interleave. */
struct pub_result {
	uint32_t index;
	int32_t error; /* 0 or negative errno */
	uint64_t records;
	uint64_t retries;
	uint64_t start_ns, end_ns;
	uint64_t cpu_ns; /* this child's CPU time from start_ns to end_ns */
	uint64_t record_bytes;
	char message[256];
};
_Static_assert(sizeof(struct pub_result) < PIPE_BUF, "atomic pipe write");

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int wait_for_subs(struct expbus *bus, const struct pub_opts *o)
{
	uint64_t deadline = cli_now_ns() + (uint64_t)o->wait_ms * 1000000u;

	while (!stop) {
		const struct stats_segment *st;
		const void *seg;
		uint32_t subs = 0, id = UINT32_MAX;
		size_t size;
		int err = expbus_stats_map(bus, &seg, &size);

		if (err < 0)
			return err;
		st = seg;
		for (uint32_t i = 0; i < STATS_MAX_STREAMS; i++)
			if (st->streams[i].in_use &&
			    strncmp(st->streams[i].name, o->stream,
				    NAME_MAX_LEN) == 0)
				id = st->streams[i].id;
		for (uint32_t i = 0; i < STATS_MAX_SUBS; i++)
			if (st->subs[i].in_use && st->subs[i].stream_id == id)
				subs++;
		expbus_stats_unmap(seg, size);
		if (subs >= o->wait_subs)
			return 0;
		if (cli_now_ns() >= deadline)
			return -ETIMEDOUT;
		(void)usleep(5000);
	}
	return 0;
}

/* Sleeps until the records written so far are due at the requested rate. */
static void pace(const struct pub_opts *o, uint64_t start_ns, uint64_t done)
{
	uint64_t due = start_ns + (uint64_t)((double)done / o->rate * 1e9);
	struct timespec ts = {.tv_sec = (time_t)(due / 1000000000u),
			      .tv_nsec = (long)(due % 1000000000u)};

	if (due > cli_now_ns())
		(void)clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts,
				      NULL);
}

static int produce(struct expbus_producer *p, const struct pub_opts *o,
		   uint32_t index, _Atomic uint64_t *live,
		   struct pub_result *res)
{
	const size_t data_size = expbus_producer_data_size(p);
	const uint64_t target = o->count ? o->count : UINT64_MAX;
	const uint64_t end_ns =
	    o->duration > 0 ? res->start_ns + (uint64_t)(o->duration * 1e9)
			    : UINT64_MAX;
	/* At a rate, reserve about a millisecond's worth at a time so that
	 * the sleeps between batches stay coarse but the pace stays even. */
	uint32_t step = o->batch;
	uint64_t s = 0, next_check = 0;
	int err = 0;

	if (o->rate > 0 && o->rate / 1000 < step)
		step = o->rate / 1000 >= 1 ? (uint32_t)(o->rate / 1000) : 1;
	while (s < target && !stop) {
		struct expbus_span span;
		uint64_t want = target - s < step ? target - s : step;
		int n;

		if (s >= next_check || o->rate > 0) {
			/* Look at the clock about every 256 records. */
			if (cli_now_ns() >= end_ns)
				break;
			if (o->rate > 0)
				pace(o, res->start_ns, s);
			next_check = s + 256;
		}
		n = expbus_reserve(p, (unsigned)want,
				   o->nonblock ? 0 : RESERVE_WAIT_MS, &span);
		if (n == -EAGAIN || n == -ETIMEDOUT) {
			if (o->nonblock) {
				res->retries++;
				(void)usleep(50);
			}
			if (o->duration > 0 && cli_now_ns() >= end_ns)
				break;
			continue;
		}
		if (n < 0) {
			err = n;
			break;
		}
		for (int i = 0; i < n; i++) {
			struct expbus_record_header *r =
			    expbus_span_record(&span, (unsigned)i);
			pattern_header(&o->pt, index, s + (unsigned)i, r);
			pattern_fill(pattern_base(index, s + (unsigned)i),
				     expbus_record_data(r), data_size);
		}
		err = expbus_commit(p, (unsigned)n);
		if (err < 0)
			break;
		s += (unsigned)n;
		atomic_store_explicit(live, s, memory_order_relaxed);
	}
	res->records = s;
	return err;
}

/* Sleeps until *word >= n (a futex on the shared page, so that hundreds
 * of waiting children cost no polling), a signal, or the deadline (0:
 * none). The word only rises: no child can miss the moment it reaches n. */
static void gate_wait(_Atomic uint32_t *word, uint32_t n, uint64_t deadline)
{
	uint32_t seen;

	/* Acquire: pairs with the release of whoever raised the word (the
	 * children's increments in gate_pass, the parent's store in
	 * leave_when_taken). */
	while (!stop && (!deadline || cli_now_ns() < deadline) &&
	       (seen = atomic_load_explicit(word, memory_order_acquire)) < n) {
		/* Returns at once if the word moved since it was read
		 * (EAGAIN). The timeout looks at stop again: a signal that
		 * came between that test and the wait would be lost. */
		struct timespec slice = {.tv_nsec = 100000000};

		(void)syscall(SYS_futex, word, FUTEX_WAIT, seen, &slice, NULL,
			      0);
	}
}

/* --together, the start: a child counts itself in once its attach is
 * over, done or failed, and sleeps until all have. A sibling that died
 * before counting itself in must not hold the others forever: after
 * --wait-ms they go. */
static void gate_pass(_Atomic uint32_t *gate, uint32_t n, uint32_t wait_ms)
{
	/* acq_rel: pairs with the other children's increments, so that the
	 * last one sees every earlier attach done. */
	uint32_t seen =
	    atomic_fetch_add_explicit(gate, 1, memory_order_acq_rel) + 1;

	if (seen == n) {
		(void)syscall(SYS_futex, gate, FUTEX_WAKE, INT_MAX, NULL, NULL,
			      0);
		return;
	}
	gate_wait(gate, n, cli_now_ns() + (uint64_t)wait_ms * 1000000u);
}

static void child(const struct pub_opts *o, uint32_t k, int fd,
		  _Atomic uint64_t *live, _Atomic uint32_t *gate)
{
	struct expbus_producer_options popts = {.ring_slots = o->ring_slots};
	struct pub_result res = {.index = o->pt.index_base + k};
	struct expbus_producer *p = NULL;
	struct expbus *bus = NULL;
	int err;

	err = expbus_new(o->socket, &bus);
	if (err < 0) {
		if (o->together)
			gate_pass(&gate[GATE_START], o->producers, o->wait_ms);
		snprintf(res.message, sizeof(res.message), "%s",
			 strerror(-err));
		goto out;
	}
	err = expbus_set_spin_us(bus, o->spin_us);
	if (err >= 0)
		err = expbus_producer_attach(bus, o->stream, o->schema, &popts,
					     &p);
	if (err < 0) {
		if (o->together)
			gate_pass(&gate[GATE_START], o->producers, o->wait_ms);
		snprintf(res.message, sizeof(res.message),
			 "attaching to '%s' at %s: %s", o->stream,
			 expbus_socket_path(bus), expbus_last_error(bus));
		goto out;
	}
	res.record_bytes =
	    sizeof(struct expbus_record_header) + expbus_producer_data_size(p);
	/* Before the gate: a request to the broker and a map of its stats
	 * segment per child, which for hundreds of children would otherwise
	 * be a ramp inside the measured run. */
	err = o->wait_subs ? wait_for_subs(bus, o) : 0;
	if (o->together)
		gate_pass(&gate[GATE_START], o->producers, o->wait_ms);
	if (err < 0) {
		snprintf(res.message, sizeof(res.message),
			 "waiting for %u subscriptions on '%s': %s",
			 o->wait_subs, o->stream,
			 err == -ETIMEDOUT ? "timed out"
					   : expbus_last_error(bus));
		goto out;
	}
	res.cpu_ns = cli_cpu_ns();
	res.start_ns = cli_now_ns();
	err = produce(p, o, res.index, live, &res);
	res.end_ns = cli_now_ns();
	res.cpu_ns = cli_cpu_ns() - res.cpu_ns;
	if (err < 0)
		snprintf(res.message, sizeof(res.message),
			 "after %" PRIu64 " records: %s", res.records,
			 expbus_last_error(bus)[0] ? expbus_last_error(bus)
						   : strerror(-err));
out:
	res.error = err;
	/* --together ends together too: a child that is done counts itself
	 * in and waits for the parent's word (leave_when_taken) before it
	 * detaches and exits, so that hundreds of exits, each unmapping its
	 * ring, run neither beside the children still writing nor beside
	 * the broker still taking what they wrote. Every child passes here
	 * once, failed ones included. Release: pairs with the parent's
	 * acquire load of the count (its live counter is stored before). */
	if (o->together) {
		atomic_fetch_add_explicit(&gate[GATE_DONE], 1,
					  memory_order_release);
		gate_wait(&gate[GATE_LEAVE], 1, 0);
	}
	/* Detach before reporting: committed records are delivered anyway. */
	expbus_producer_close(p);
	expbus_free(bus);
	if (write(fd, &res, sizeof(res)) != (ssize_t)sizeof(res))
		_exit(1);
	_exit(err < 0 ? 1 : 0);
}

/* A child by pid, for matching the stats segment's producers. */
struct child_pid {
	uint32_t pid, k;
};

static int by_pid(const void *a, const void *b)
{
	uint32_t x = ((const struct child_pid *)a)->pid,
		 y = ((const struct child_pid *)b)->pid;

	return (x > y) - (x < y);
}

/* What the parent keeps for leave_when_taken. */
struct leave {
	struct stats_source src;
	struct stats_view view;
	struct child_pid *kids; /* sorted by pid */
	bool have_src, tried_src;
	uint64_t done_ns; /* when every child was done; 0: not yet */
};

static bool all_taken(struct leave *l, const struct pub_opts *o,
		      const pid_t *pids, _Atomic uint64_t *live)
{
	if (!l->tried_src) {
		/* Quietly: without the segment, nobody is held back. */
		l->tried_src = true;
		l->kids = calloc(o->producers, sizeof(*l->kids));
		l->have_src =
		    l->kids && stats_source_open(NULL, o->socket, &l->src) == 0;
		for (uint32_t k = 0; l->kids && k < o->producers; k++)
			l->kids[k] = (struct child_pid){(uint32_t)pids[k], k};
		if (l->kids)
			qsort(l->kids, o->producers, sizeof(*l->kids), by_pid);
	}
	if (!l->have_src || stats_view_take(l->src.seg, &l->view) < 0)
		return true;
	for (uint32_t i = 0; i < l->view.n_producers; i++) {
		const struct sv_producer *sp = &l->view.producers[i];
		struct child_pid key = {.pid = sp->pid};
		const struct child_pid *kid = bsearch(
		    &key, l->kids, o->producers, sizeof(*l->kids), by_pid);

		/* Relaxed: the child stored it before its release increment
		 * of the done count, which we load-acquired. */
		if (kid &&
		    sp->records_in < atomic_load_explicit(&live[kid->k * 8],
							  memory_order_relaxed))
			return false;
	}
	return true;
}

/* --together, the end, in the parent: once every child still alive is
 * done writing, let them detach and exit when the broker has taken every
 * record each committed (its records_in in the stats segment, matched by
 * pid), or --wait-ms after the last was done, whichever comes first. A
 * child the segment does not show (it failed to attach, or a broker that
 * sees other pids) holds nobody back. Returns whether the word is set. */
static bool leave_when_taken(struct leave *l, const struct pub_opts *o,
			     const pid_t *pids, _Atomic uint64_t *live,
			     _Atomic uint32_t *gate, uint32_t alive)
{
	uint64_t now = cli_now_ns();

	/* Acquire: pairs with each child's release increment. */
	if (atomic_load_explicit(&gate[GATE_DONE], memory_order_acquire) <
	    alive)
		return false;
	if (!l->done_ns)
		l->done_ns = now;
	if (now - l->done_ns < (uint64_t)o->wait_ms * 1000000u &&
	    !all_taken(l, o, pids, live))
		return false;
	/* Release: pairs with the children's acquire in gate_wait. */
	atomic_store_explicit(&gate[GATE_LEAVE], 1, memory_order_release);
	(void)syscall(SYS_futex, &gate[GATE_LEAVE], FUTEX_WAKE, INT_MAX, NULL,
		      NULL, 0);
	return true;
}

/* 0: go on; -1: --help was printed; else the exit status. */
static int parse(int argc, char **argv, struct pub_opts *o)
{
	const char *schema = NULL;
	uint32_t record_size = 0;
	const struct option_spec opts[] = {
	    OPTION_SOCKET(&o->socket),
	    {.name = "stream",
	     .kind = OPTION_STRING,
	     .target = &o->stream,
	     .metavar = "NAME",
	     .help = "stream to write (default demo; created if new)"},
	    {.name = "schema",
	     .kind = OPTION_STRING,
	     .target = &schema,
	     .metavar = "TEXT",
	     .help = "fields of a record (default\n"
		     "\"" DEFAULT_SCHEMA "\")"},
	    {.name = "record-size",
	     .kind = OPTION_U32,
	     .target = &record_size,
	     .min = 40,
	     .max = SCHEMA_DATA_MAX_BYTES + 32,
	     .metavar = "N",
	     .help = "instead of --schema: records of N bytes, the\n"
		     "32-byte header and \"payload u8[N-32]\"; N >= 40\n"
		     "and a multiple of 8"},
	    {.name = "producers",
	     .short_name = 'n',
	     .kind = OPTION_U32,
	     .target = &o->producers,
	     .min = 1,
	     .max = 1024,
	     .metavar = "N",
	     .help = "producer processes (default 1)"},
	    {.name = "count",
	     .kind = OPTION_U64,
	     .target = &o->count,
	     .max = UINT64_MAX / 2,
	     .metavar = "N",
	     .help = "records per producer (default 100000; 0: until\n"
		     "--duration is up, or until SIGINT)"},
	    {.name = "duration",
	     .kind = OPTION_SECONDS,
	     .target = &o->duration,
	     .metavar = "SEC",
	     .help = "stop after SEC seconds (default: no limit)"},
	    {.name = "rate",
	     .kind = OPTION_SECONDS,
	     .target = &o->rate,
	     .metavar = "R",
	     .help = "records per second per producer (default 0:\n"
		     "as fast as the ring takes them)"},
	    {.name = "games",
	     .kind = OPTION_U32,
	     .target = &o->pt.games,
	     .min = 1,
	     .max = PATTERN_MAX_GAMES - 1,
	     .metavar = "G",
	     .help = "games per producer, < 1000 (default 4)"},
	    {.name = "episode-len",
	     .kind = OPTION_U32,
	     .target = &o->pt.episode_len,
	     .min = 1,
	     .max = UINT32_MAX,
	     .metavar = "L",
	     .help = "turns per episode (default 100)"},
	    {.name = "players",
	     .kind = OPTION_U32,
	     .target = &o->pt.players,
	     .min = 1,
	     .max = UINT32_MAX,
	     .metavar = "P",
	     .help = "players per game (default 2)"},
	    /* p * 1000 + 999 must fit a 32-bit game id. */
	    {.name = "index-base",
	     .kind = OPTION_U32,
	     .target = &o->pt.index_base,
	     .max = UINT32_MAX / PATTERN_MAX_GAMES - 1024,
	     .metavar = "I",
	     .help = "first producer index (default 0)"},
	    {.name = "batch",
	     .kind = OPTION_U32,
	     .target = &o->batch,
	     .min = 1,
	     .max = 1u << 20,
	     .metavar = "K",
	     .help = "records reserved and committed at once\n(default 64)"},
	    {.name = "nonblock",
	     .kind = OPTION_FLAG,
	     .target = &o->nonblock,
	     .help = "on a full ring, retry after a short pause\n"
		     "and count the retries (default: block)"},
	    {.name = "ring-slots",
	     .kind = OPTION_U32,
	     .target = &o->ring_slots,
	     .min = 1,
	     .max = 1u << 30,
	     .flags = OPTION_POW2,
	     .metavar = "N",
	     .help = "slots in each ring, a power of two (default:\n"
		     "the broker's)"},
	    {.name = "spin-us",
	     .kind = OPTION_U32,
	     .target = &o->spin_us,
	     .max = 10000,
	     .metavar = "US",
	     .help = "on a full ring, look again for US before\n"
		     "sleeping, yielding the CPU between looks\n"
		     "(default 50; 0: sleep at once)"},
	    {.name = "wait-subs",
	     .kind = OPTION_U32,
	     .target = &o->wait_subs,
	     .max = STATS_MAX_SUBS,
	     .metavar = "N",
	     .help = "before writing, wait until the stream has N\n"
		     "subscriptions (default 0: do not wait)"},
	    {.name = "wait-ms",
	     .kind = OPTION_U32,
	     .target = &o->wait_ms,
	     .max = 86400000,
	     .metavar = "MS",
	     .help = "give up on --wait-subs, and stop waiting for\n"
		     "--together, after MS (default 5000)"},
	    {.name = "together",
	     .kind = OPTION_FLAG,
	     .target = &o->together,
	     .help = "start writing only when all N producers have\n"
		     "attached (or failed to), all at once, or after\n"
		     "--wait-ms, and detach only when all are done and\n"
		     "the broker has taken their records (or --wait-ms\n"
		     "after the last was done): the rate is that of all\n"
		     "N writing, without a ramp of attaches or exits;\n"
		     "without it each starts as soon as it is attached\n"
		     "and leaves as soon as it is done"},
	    {.name = "json",
	     .kind = OPTION_FLAG,
	     .target = &o->json,
	     .help = "print one JSON object at the end: producers,\n"
		     "records, bytes, seconds, records_per_s, gb_per_s,\n"
		     "cpu_s (the producers' CPU time while writing,\n"
		     "all of them together)"},
	    {.name = "progress",
	     .kind = OPTION_FLAG,
	     .target = &o->progress,
	     .help = "a line per second on stderr"},
	    OPTION_END,
	};
	const struct command_spec spec = {
	    .name = CMD,
	    .summary =
		"Attach N producers (one process each) to a stream and write\n"
		"records whose every byte follows a pattern 'expbus check' checks:\n"
		"for producer p = child index + --index-base and record s,\n"
		"game = p*1000 + (s/episode-len) % games, player = s % players,\n"
		"turn = s % episode-len, flags = done on an episode's last turn,\n"
		"data = splitmix64 words (see tools/pattern.h).",
	    .options = opts,
	    .epilog =
		"Bytes count whole records (header + data). SIGINT/SIGTERM: stop,\n"
		"commit what is filled, report.\n"
		"Exit status: 0 all producers wrote their records, 1 a producer\n"
		"failed (the reason is printed), 2 bad usage.\n",
	};
	struct schema parsed;
	char err[256];
	int r;

	r = options_parse(&spec, argc, argv, NULL);
	if (r)
		return r > 0 ? -1 : EXIT_USAGE;
	if (record_size % 8)
		return cli_usage_error(
		    CMD, "--record-size: %u is not a multiple of 8",
		    record_size);
	if (schema && record_size)
		return cli_usage_error(
		    CMD, "--schema and --record-size exclude each other");
	if (record_size)
		snprintf(o->schema, sizeof(o->schema), "payload u8[%u]",
			 record_size - 32);
	else
		snprintf(o->schema, sizeof(o->schema), "%s",
			 schema ? schema : DEFAULT_SCHEMA);
	if (schema_parse(o->schema, &parsed, err, sizeof(err)) < 0)
		return cli_usage_error(CMD, "--schema: %s", err);
	return 0;
}

static void print_progress(const struct pub_opts *o, _Atomic uint64_t *live,
			   uint64_t *last, double *last_t, double t0)
{
	uint64_t total = 0;
	double now = cli_now();

	for (uint32_t k = 0; k < o->producers; k++)
		total +=
		    atomic_load_explicit(&live[k * 8], memory_order_relaxed);
	fprintf(stderr, "pub: %.0f s: %" PRIu64 " records, %.3g M rec/s\n",
		now - t0, total,
		(double)(total - *last) / (now - *last_t) / 1e6);
	*last = total;
	*last_t = now;
}

/* What the children reported so far. */
struct results {
	uint64_t records, retries, bytes, start, end, cpu_ns;
	uint32_t reported, failed;
};

/* Reads every whole result waiting in the pipe (all of them, to EOF, when
 * fd blocks). Results are smaller than PIPE_BUF, so each write is whole. */
static void collect(int fd, struct results *acc)
{
	struct pub_result res;

	while (read(fd, &res, sizeof(res)) == (ssize_t)sizeof(res)) {
		acc->reported++;
		acc->records += res.records;
		acc->retries += res.retries;
		acc->cpu_ns += res.cpu_ns;
		acc->bytes += res.records * res.record_bytes;
		if (res.error < 0) {
			acc->failed++;
			fprintf(stderr, "expbus pub: producer %u: %s\n",
				res.index, res.message);
		}
		if (res.start_ns && res.start_ns < acc->start)
			acc->start = res.start_ns;
		if (res.end_ns > acc->end)
			acc->end = res.end_ns;
	}
}

int cmd_pub(const char *socket, int argc, char **argv)
{
	struct pub_opts o = {
	    .socket = socket,
	    .stream = "demo",
	    .producers = 1,
	    .count = 100000,
	    .pt = {.games = 4, .episode_len = 100, .players = 2},
	    .batch = 64,
	    .spin_us = 50,
	    .wait_ms = 5000,
	};
	struct sigaction sa = {.sa_handler = on_signal};
	uint64_t records = 0, bytes = 0, retries = 0, start = UINT64_MAX,
		 end = 0, last = 0;
	uint32_t failed = 0, reported = 0, alive;
	_Atomic uint64_t *live;
	_Atomic uint32_t *gate;
	struct leave leave = {0};
	bool left = false;
	size_t live_size;
	pid_t *pids;
	double secs, t0 = cli_now(), last_t = t0;
	struct results acc = {.start = UINT64_MAX};
	int fds[2], r;

	r = parse(argc, argv, &o);
	if (r)
		return r < 0 ? 0 : r;
	/* Counters the children update for --progress, a cache line each,
	 * and after them the --together words (GATE_START, GATE_DONE,
	 * GATE_LEAVE). */
	live_size = ((size_t)o.producers + 1) * 64;
	live = mmap(NULL, live_size, PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pids = calloc(o.producers, sizeof(*pids));
	if (live == MAP_FAILED || !pids || pipe2(fds, O_CLOEXEC) < 0) {
		fprintf(stderr, "expbus pub: %s\n", strerror(errno));
		return 1;
	}
	gate = (_Atomic uint32_t *)&live[o.producers * 8];
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	for (uint32_t k = 0; k < o.producers; k++) {
		pids[k] = fork();
		if (pids[k] == 0)
			prctl(PR_SET_PDEATHSIG, SIGTERM); /* not without us */
		if (pids[k] < 0) {
			fprintf(stderr, "expbus pub: fork: %s\n",
				strerror(errno));
			stop = 1;
			o.producers = k;
			break;
		}
		if (pids[k] == 0) {
			(void)close(fds[0]);
			child(&o, k, fds[1], &live[k * 8], gate);
		}
	}
	(void)close(fds[1]);
	/* Results are read as they come: hundreds of children would fill the
	 * pipe and block in write(2) before exiting otherwise. */
	(void)fcntl(fds[0], F_SETFL, O_NONBLOCK);
	alive = o.producers;
	while (alive) {
		collect(fds[0], &acc);
		pid_t pid = waitpid(-1, NULL, WNOHANG);

		if (pid > 0) {
			alive--;
			continue;
		}
		if (pid < 0 && errno != EINTR)
			break;
		if (stop == 1) {
			/* SIGTERM to us alone reaches the children this way. */
			for (uint32_t k = 0; k < o.producers; k++)
				(void)kill(pids[k], SIGTERM);
			stop = 2;
		}
		if (o.progress && cli_now() - last_t >= 1.0)
			print_progress(&o, live, &last, &last_t, t0);
		if (o.together && !left)
			left = leave_when_taken(&leave, &o, pids, live, gate,
						alive);
		/* Finer while the broker takes the last records: the
		 * children's exits wait for this look. */
		(void)usleep(o.together && !left && leave.done_ns ? 5000
								  : 20000);
	}
	stats_view_free(&leave.view);
	stats_source_close(&leave.src);
	free(leave.kids);
	(void)fcntl(fds[0], F_SETFL,
		    0); /* the rest, till every writer is gone */
	collect(fds[0], &acc);
	records = acc.records;
	retries = acc.retries;
	bytes = acc.bytes;
	failed += acc.failed;
	reported = acc.reported;
	start = acc.start;
	end = acc.end;
	if (reported < o.producers) {
		fprintf(stderr,
			"expbus pub: %u producer processes died without "
			"reporting\n",
			o.producers - reported);
		failed += o.producers - reported;
	}
	secs = end > start ? (double)(end - start) / 1e9 : 0;
	if (o.json)
		printf(
		    "{\"producers\":%u,\"records\":%" PRIu64
		    ",\"bytes\":%" PRIu64
		    ",\"seconds\":%.6f,\"records_per_s\":%.1f,\"gb_per_s\":%.4f"
		    ",\"cpu_s\":%.6f}\n",
		    o.producers, records, bytes, secs,
		    secs > 0 ? (double)records / secs : 0,
		    secs > 0 ? (double)bytes / secs / 1e9 : 0,
		    (double)acc.cpu_ns / 1e9);
	else
		printf("pub: %u producer%s, %" PRIu64
		       " records (%.1f MB) in %.3f s: "
		       "%.3g M rec/s, %.3f GB/s\n",
		       o.producers, o.producers == 1 ? "" : "s", records,
		       (double)bytes / 1e6, secs,
		       secs > 0 ? (double)records / secs / 1e6 : 0,
		       secs > 0 ? (double)bytes / secs / 1e9 : 0);
	if (o.nonblock && !o.json)
		printf("pub: %" PRIu64 " retries on a full ring\n", retries);
	free(pids);
	munmap((void *)live, live_size);
	return failed ? 1 : 0;
}
