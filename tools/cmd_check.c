/* cmd_check.c — `expbus check`: subscribe to a stream, check every record
 * of every batch against the pattern `expbus pub` writes (content, header,
 * filter, order), count what arrived and report rates. What tests and
 * perf/run use; `expbus sub` is the one for people. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "cli.h"
#include "counts.h"
#include "expbus.h"
#include "filter.h"
#include "options.h"
#include "pattern.h"
#include "proto.h"
#include "schema.h"

#define CMD	    "check"
#define POLL_MS	    100 /* longest wait before looking at the clock and signals */
#define MAX_REPORTS 10 /* detailed messages per kind of error */

struct sub_opts {
	const char *socket;
	const char *stream;
	struct expbus_subscribe_options so;
	struct id_list games, players;
	bool lossy;
	uint32_t max_delay_ms;
	struct filter filter; /* the same as the broker's, to check with */
	uint32_t wait_ms;
	uint64_t count;
	double duration;
	uint32_t idle_ms;
	uint32_t expect_producers;
	uint64_t expect_records;
	struct pattern gen;
	bool hold, checksum;
	uint64_t pause_after;
	uint32_t pause_ms;
	const char *report;
	bool progress;
};

struct field_check {
	int col;
	uint32_t offset, size;
};

struct sub_state {
	const struct sub_opts *o;
	struct expbus_consumer *c;
	int col_seq, col_source, col_game, col_player, col_turn, col_flags;
	struct field_check fields[MAX_FIELDS];
	uint32_t nfields;
	uint32_t record_bytes;
	/* what arrived */
	uint64_t records, batches, dropped, flush[4];
	uint64_t corrupt, order_errors, filter_errors, checksum_errors;
	uint64_t first_ns, last_ns;
	uint64_t first_cpu_ns, cpu_ns; /* our CPU time: at the first batch,
					  and from it to the end of reading */
	struct counts last_seq; /* source (or source << 32 | game) -> seq + 1 */
	struct counts per_game, per_producer;
	uint64_t reports;
	/* expectation mode */
	uint64_t *expected; /* per producer index - gen.index_base */
	uint64_t expect_left;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static const char summary[] =
    "Subscribe to a stream and check every record against the pattern\n"
    "'expbus pub' writes: each field's bytes, the game/player/turn/flags\n"
    "header, the subscription's filter (with the broker's own filter code),\n"
    "and that seq grows strictly per producer (per producer and game with\n"
    "--group). Prints one line, and with --report a JSON file.";

static const char epilog[] =
    "Rates count whole records (32-byte header + data) between the first\n"
    "batch and the last.\n"
    "Exit status: 0 all good; 1 a corrupt record, an order or filter error,\n"
    "a bad checksum, or (lossless, with --expect-*) records missing when\n"
    "stopping for --idle-ms or --duration; 2 bad usage; 3 could not\n"
    "subscribe, or the broker failed or went away.\n";

/* 0: go on; -1: --help was printed; else the exit status. */
static int parse(int argc, char **argv, struct sub_opts *o)
{
	bool have_p = false, have_n = false;
	const struct option_spec opts[] = {
	    {.kind = OPTION_HEADING, .help = "Subscription:"},
	    OPTION_SOCKET(&o->socket),
	    {.name = "stream",
	     .kind = OPTION_STRING,
	     .target = &o->stream,
	     .metavar = "NAME",
	     .help = "stream (default demo)"},
	    {.name = "batch-size",
	     .kind = OPTION_U32,
	     .target = &o->so.batch_size,
	     .min = 1,
	     .max = 1u << 24,
	     .metavar = "N",
	     .help = "records per batch (default: the broker's)"},
	    {.name = "max-delay-ms",
	     .kind = OPTION_U32,
	     .target = &o->max_delay_ms,
	     .min = 1,
	     .max = UINT32_MAX / 1000,
	     .metavar = "N",
	     .help = "flush a partial batch after N ms (default:\n"
		     "the broker's)"},
	    {.name = "batch-slots",
	     .kind = OPTION_U32,
	     .target = &o->so.batch_slots,
	     .min = 1,
	     .max = 1u << 20,
	     .flags = OPTION_POW2,
	     .metavar = "N",
	     .help = "batches in the ring, a power of two\n(default 8)"},
	    {.name = "lossy",
	     .kind = OPTION_FLAG,
	     .target = &o->lossy,
	     .help = "drop records when the ring is full instead\n"
		     "of holding the producers back (default:\n"
		     "lossless)"},
	    {.name = "group",
	     .kind = OPTION_STRING,
	     .target = &o->so.group,
	     .max = NAME_MAX_LEN - 1,
	     .metavar = "NAME",
	     .help = "share the records with other members of NAME"},
	    {.name = "games",
	     .kind = OPTION_LIST,
	     .target = &o->games,
	     .max = PROTO_MAX_FILTER,
	     .metavar = "LIST",
	     .help = "only these game ids, e.g. 0-3,1000 (default all)"},
	    {.name = "players",
	     .kind = OPTION_LIST,
	     .target = &o->players,
	     .max = PROTO_MAX_FILTER,
	     .metavar = "LIST",
	     .help = "only these player ids (default all)"},
	    {.name = "min-turn",
	     .kind = OPTION_U32,
	     .target = &o->so.min_turn,
	     .max = UINT32_MAX,
	     .metavar = "T",
	     .help = "only records with turn >= T (default 0)"},
	    {.name = "checksum",
	     .kind = OPTION_FLAG,
	     .target = &o->checksum,
	     .help = "have the broker checksum each batch (XXH3),\n"
		     "and verify it"},
	    {.name = "wait-ms",
	     .kind = OPTION_U32,
	     .target = &o->wait_ms,
	     .max = 86400000,
	     .metavar = "MS",
	     .help = "retry while the stream or broker is not there\n"
		     "yet, up to MS (default 5000)"},
	    {.kind = OPTION_HEADING,
	     .help =
		 "Stopping (the first that holds; SIGINT/SIGTERM also stop):"},
	    {.name = "count",
	     .kind = OPTION_U64,
	     .target = &o->count,
	     .min = 1,
	     .max = UINT64_MAX / 2,
	     .metavar = "N",
	     .help = "after N records (default: no limit)"},
	    {.name = "duration",
	     .kind = OPTION_SECONDS,
	     .target = &o->duration,
	     .metavar = "SEC",
	     .help = "after SEC seconds (default: no limit)"},
	    {.name = "idle-ms",
	     .kind = OPTION_U32,
	     .target = &o->idle_ms,
	     .max = 86400000,
	     .metavar = "MS",
	     .help = "when no batch came for MS after the first\n"
		     "(default 2000; 0: never)"},
	    {.name = "expect-producers",
	     .kind = OPTION_U32,
	     .target = &o->expect_producers,
	     .min = 1,
	     .max = 1u << 20,
	     .metavar = "P",
	     .seen = &have_p,
	     .help = "with --expect-records N: stop as soon as\n"
		     "records 0..N-1 of producers index-base ..\n"
		     "index-base+P-1 that the filter selects have all\n"
		     "arrived; with --group, whole games are\n"
		     "expected, for the games this member got"},
	    {.name = "expect-records",
	     .kind = OPTION_U64,
	     .target = &o->expect_records,
	     .max = UINT64_MAX / 2,
	     .metavar = "N",
	     .seen = &have_n,
	     .help = "see --expect-producers"},
	    {.name = "gen-games",
	     .kind = OPTION_U32,
	     .target = &o->gen.games,
	     .min = 1,
	     .max = PATTERN_MAX_GAMES - 1,
	     .metavar = "G",
	     .help = "what pub was given as --games (default 4)"},
	    {.name = "gen-episode-len",
	     .kind = OPTION_U32,
	     .target = &o->gen.episode_len,
	     .min = 1,
	     .max = UINT32_MAX,
	     .metavar = "L",
	     .help = "pub's --episode-len (default 100)"},
	    {.name = "gen-players",
	     .kind = OPTION_U32,
	     .target = &o->gen.players,
	     .min = 1,
	     .max = UINT32_MAX,
	     .metavar = "P",
	     .help = "pub's --players (default 2)"},
	    {.name = "gen-index-base",
	     .kind = OPTION_U32,
	     .target = &o->gen.index_base,
	     .max = UINT32_MAX / PATTERN_MAX_GAMES - (1u << 20),
	     .metavar = "I",
	     .help = "pub's --index-base (default 0)"},
	    {.kind = OPTION_HEADING, .help = "Behaviour:"},
	    {.name = "hold",
	     .kind = OPTION_FLAG,
	     .target = &o->hold,
	     .help = "never release a batch (a stuck trainer);\n"
		     "--idle-ms does not apply"},
	    {.name = "pause-after",
	     .kind = OPTION_U64,
	     .target = &o->pause_after,
	     .min = 1,
	     .max = UINT64_MAX / 2,
	     .metavar = "N",
	     .help = "after N records, stop reading for --pause-ms,\n"
		     "once"},
	    {.name = "pause-ms",
	     .kind = OPTION_U32,
	     .target = &o->pause_ms,
	     .max = 86400000,
	     .metavar = "MS",
	     .help = "how long --pause-after pauses (default 1000)"},
	    {.name = "report",
	     .kind = OPTION_STRING,
	     .target = &o->report,
	     .metavar = "FILE",
	     .help = "write the counts as JSON to FILE, with\n"
		     "first_ns and last_ns (the first and last batch,\n"
		     "CLOCK_MONOTONIC) and cpu_s (our CPU time from the\n"
		     "first batch to the end of reading)"},
	    {.name = "progress",
	     .kind = OPTION_FLAG,
	     .target = &o->progress,
	     .help = "a line per second on stderr"},
	    OPTION_END,
	};
	const struct command_spec spec = {
	    .name = CMD,
	    .summary = summary,
	    .options = opts,
	    .epilog = epilog,
	};
	int r = options_parse(&spec, argc, argv, NULL);

	if (r)
		return r > 0 ? -1 : EXIT_USAGE;
	if (have_p != have_n)
		return cli_usage_error(
		    CMD, "--expect-producers and --expect-records "
			 "go together");
	if (o->lossy)
		o->so.policy = EXPBUS_LOSSY;
	if (o->checksum)
		o->so.flags |= EXPBUS_SUBSCRIBE_CHECKSUM;
	o->so.max_delay_us = o->max_delay_ms * 1000;
	/* A check ends with its broker (exit 1: "went away") rather than
	 * wait for another. */
	o->so.flags |= EXPBUS_SUBSCRIBE_NO_RESUBSCRIBE;
	if (o->games.n) {
		o->so.games = o->games.ids;
		o->so.n_games = o->games.n;
	}
	if (o->players.n) {
		o->so.players = o->players.ids;
		o->so.n_players = o->players.n;
	}
	o->filter = (struct filter){
	    .games = o->games.n ? o->games.ids : NULL,
	    .n_games = o->games.n,
	    .players = o->players.n ? o->players.ids : NULL,
	    .n_players = o->players.n,
	    .min_turn = o->so.min_turn,
	};
	return 0;
}

static bool selected(const struct sub_opts *o, uint32_t game, uint32_t player,
		     uint32_t turn)
{
	return filter_match_ids(&o->filter, game, player, turn);
}

/* Records among s in [from, to) of producer p with game index j (or any
 * game, j < 0) that the filter selects. */
static uint64_t count_range(const struct sub_opts *o, uint32_t p, long j,
			    uint64_t from, uint64_t to)
{
	struct expbus_record_header h;
	uint64_t n = 0;

	for (uint64_t s = from; s < to; s++) {
		pattern_header(&o->gen, p, s, &h);
		if ((j < 0 || h.game % PATTERN_MAX_GAMES == (uint64_t)j) &&
		    selected(o, h.game, h.player, h.turn))
			n++;
	}
	return n;
}

/* The same over s in [0, N): the pattern repeats every
 * lcm(episode_len * games, players) records, so count one period and the
 * rest rather than N records. */
static uint64_t expected_count(const struct sub_opts *o, uint32_t p, long j)
{
	uint64_t a = (uint64_t)o->gen.episode_len * o->gen.games,
		 b = o->gen.players;
	uint64_t x = a, y = b, period, n = o->expect_records;

	while (y) {
		uint64_t t = x % y;
		x = y;
		y = t;
	}
	period = a / x * b;
	if (period >= n || period / b != a / x)
		return count_range(o, p, j, 0, n);
	return n / period * count_range(o, p, j, 0, period) +
	       count_range(o, p, j, 0, n % period);
}

static int setup_expectation(struct sub_state *st)
{
	const struct sub_opts *o = st->o;

	if (!o->expect_producers || o->so.group)
		return 0;
	st->expected = calloc(o->expect_producers, sizeof(*st->expected));
	if (!st->expected)
		return -ENOMEM;
	for (uint32_t k = 0; k < o->expect_producers; k++) {
		/* Without a game filter the count is the same for every
		 * producer (only the game id depends on p): count once. */
		st->expected[k] =
		    k && !o->filter.games
			? st->expected[0]
			: expected_count(o, o->gen.index_base + k, -1);
		st->expect_left += st->expected[k];
	}
	return 0;
}

/* Records still to come in expectation mode: per producer, or with
 * --group, per game this member received (its games arrive whole). */
static uint64_t missing(struct sub_state *st)
{
	const struct sub_opts *o = st->o;
	uint64_t miss = 0;

	if (!o->expect_producers)
		return 0;
	if (!o->so.group) {
		for (uint32_t k = 0; k < o->expect_producers; k++) {
			uint64_t got = counts_get(&st->per_producer,
						  o->gen.index_base + k);
			if (got < st->expected[k])
				miss += st->expected[k] - got;
		}
		return miss;
	}
	/* Per game index j, the same for every producer without a game
	 * filter: counted once each, however many games arrived. */
	uint64_t memo[PATTERN_MAX_GAMES];
	bool have[PATTERN_MAX_GAMES] = {0};

	for (size_t i = 0; i < st->per_game.cap; i++) {
		uint32_t g, p, j;
		uint64_t want;

		if (!st->per_game.used[i])
			continue;
		g = (uint32_t)st->per_game.keys[i];
		p = g / PATTERN_MAX_GAMES;
		if (p < o->gen.index_base ||
		    p - o->gen.index_base >= o->expect_producers)
			continue;
		j = g % PATTERN_MAX_GAMES;
		if (o->filter.games) {
			want = expected_count(o, p, j);
		} else {
			if (!have[j])
				memo[j] = expected_count(o, p, j);
			have[j] = true;
			want = memo[j];
		}
		if (st->per_game.vals[i] < want)
			miss += want - st->per_game.vals[i];
	}
	return miss;
}

static int find_column(struct sub_state *st, const char *name)
{
	int n = expbus_consumer_columns(st->c);

	for (int i = 0; i < n; i++)
		if (strcmp(expbus_consumer_column_name(st->c, i), name) == 0)
			return i;
	return -1;
}

/* Works out where each field's bytes sit in the pattern: schema_parse of
 * the stream's canonical text gives the offsets the producers used. */
static int setup_columns(struct sub_state *st)
{
	struct schema s;
	char err[256];

	if (schema_parse(expbus_consumer_schema(st->c), &s, err, sizeof(err)) <
	    0) {
		fprintf(
		    stderr,
		    "expbus check: the stream's schema does not parse: %s\n",
		    err);
		return -EPROTO;
	}
	st->col_seq = find_column(st, "seq");
	st->col_source = find_column(st, "source");
	st->col_game = find_column(st, "game");
	st->col_player = find_column(st, "player");
	st->col_turn = find_column(st, "turn");
	st->col_flags = find_column(st, "flags");
	if (st->col_seq < 0 || st->col_source < 0 || st->col_game < 0 ||
	    st->col_player < 0 || st->col_turn < 0 || st->col_flags < 0) {
		fprintf(stderr,
			"expbus check: the batch ring lacks a header column\n");
		return -EPROTO;
	}
	st->nfields = s.nfields;
	for (uint32_t f = 0; f < s.nfields; f++) {
		st->fields[f].col = find_column(st, s.fields[f].name);
		st->fields[f].offset = s.fields[f].offset;
		st->fields[f].size = s.fields[f].elem_size;
		if (st->fields[f].col < 0) {
			fprintf(stderr,
				"expbus check: the batch ring has no column "
				"for field '%s'\n",
				s.fields[f].name);
			return -EPROTO;
		}
	}
	st->record_bytes =
	    (uint32_t)sizeof(struct expbus_record_header) + s.data_size;
	return 0;
}

static void complain(struct sub_state *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void complain(struct sub_state *st, const char *fmt, ...)
{
	va_list ap;

	if (st->reports++ >= MAX_REPORTS) {
		if (st->reports == MAX_REPORTS + 1)
			fprintf(stderr,
				"expbus check: (further errors not shown)\n");
		return;
	}
	fprintf(stderr, "expbus check: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static uint64_t batch_checksum(struct sub_state *st,
			       const struct expbus_batch *b)
{
	int n = expbus_consumer_columns(st->c);
	XXH3_state_t x;

	XXH3_64bits_reset(&x);
	for (int i = 0; i < n; i++) {
		struct expbus_column col;
		expbus_batch_column_at(st->c, b, i, &col);
		XXH3_64bits_update(&x, col.data,
				   (size_t)col.count * col.elem_size);
	}
	return XXH3_64bits_digest(&x);
}

/* A counter of m; out of memory ends the check (its counts would lie). */
static uint64_t *slot(struct counts *m, uint64_t key, bool *fresh)
{
	uint64_t *v = counts_slot(m, key, fresh);

	if (!v) {
		fprintf(stderr, "expbus check: out of memory for %zu keys\n",
			m->n);
		exit(1);
	}
	return v;
}

static void check_batch(struct sub_state *st, const struct expbus_batch *b)
{
	const struct sub_opts *o = st->o;
	struct expbus_column cs, csrc, cg, cp, ct, cf, fc[MAX_FIELDS];
	const uint64_t *seq;
	const uint32_t *src, *game, *player, *turn, *flags;
	uint64_t cache_key = UINT64_MAX, *cache_last = NULL;
	uint64_t game_key = UINT64_MAX, *game_count = NULL;
	uint64_t prod_key = UINT64_MAX, *prod_count = NULL;
	bool fresh;

	expbus_batch_column_at(st->c, b, st->col_seq, &cs);
	expbus_batch_column_at(st->c, b, st->col_source, &csrc);
	expbus_batch_column_at(st->c, b, st->col_game, &cg);
	expbus_batch_column_at(st->c, b, st->col_player, &cp);
	expbus_batch_column_at(st->c, b, st->col_turn, &ct);
	expbus_batch_column_at(st->c, b, st->col_flags, &cf);
	for (uint32_t f = 0; f < st->nfields; f++)
		expbus_batch_column_at(st->c, b, st->fields[f].col, &fc[f]);
	seq = cs.data;
	src = csrc.data;
	game = cg.data;
	player = cp.data;
	turn = ct.data;
	flags = cf.data;
	if (o->so.flags & EXPBUS_SUBSCRIBE_CHECKSUM) {
		uint64_t sum = batch_checksum(st, b);
		if (sum != b->checksum) {
			st->checksum_errors++;
			complain(st,
				 "batch %" PRIu64 ": checksum %016" PRIx64
				 " but the broker wrote %016" PRIx64,
				 b->seq, sum, b->checksum);
		}
	}
	for (uint32_t i = 0; i < b->count; i++) {
		const uint64_t s = seq[i];
		const uint32_t g = game[i], p = g / PATTERN_MAX_GAMES;
		struct expbus_record_header want;
		uint64_t base, key;
		bool bad = false;

		pattern_header(&o->gen, p, s, &want);
		if (g % PATTERN_MAX_GAMES >= o->gen.games || want.game != g ||
		    want.player != player[i] || want.turn != turn[i] ||
		    want.flags != flags[i]) {
			bad = true;
			complain(st,
				 "record seq %" PRIu64 " of source %u: header "
				 "game %u player %u turn %u flags %#x, the "
				 "pattern has %u %u %u %#x",
				 s, src[i], g, player[i], turn[i], flags[i],
				 want.game, want.player, want.turn, want.flags);
		}
		base = pattern_base(p, s);
		for (uint32_t f = 0; f < st->nfields && !bad; f++) {
			const struct field_check *fk = &st->fields[f];
			if (pattern_check(base,
					  (const uint8_t *)fc[f].data +
					      (size_t)i * fk->size,
					  fk->offset, fk->size)) {
				bad = true;
				complain(
				    st,
				    "record seq %" PRIu64 " of producer %u: "
				    "field %u's bytes differ from the pattern",
				    s, p, f);
			}
		}
		st->corrupt += bad;
		if (!selected(o, g, player[i], turn[i])) {
			st->filter_errors++;
			complain(st,
				 "record seq %" PRIu64
				 " (game %u player %u turn "
				 "%u) does not match the filter",
				 s, g, player[i], turn[i]);
		}
		/* Order: strictly growing seq per source, or per source and
		 * game in a group (a member that takes over a dead member's
		 * games gets its unreleased records, older than what it has).
		 */
		key = o->so.group ? (uint64_t)src[i] << 32 | g : src[i];
		if (key != cache_key) {
			cache_last = slot(&st->last_seq, key, &fresh);
			cache_key = key;
		}
		if (*cache_last && s + 1 <= *cache_last) {
			st->order_errors++;
			complain(st,
				 "source %u: seq %" PRIu64 " after %" PRIu64,
				 src[i], s, *cache_last - 1);
		}
		*cache_last = s + 1;
		if (g != game_key) {
			game_count = slot(&st->per_game, g, &fresh);
			game_key = g;
		}
		(*game_count)++;
		if (p != prod_key) {
			prod_count = slot(&st->per_producer, p, &fresh);
			prod_key = p;
		}
		(*prod_count)++;
		if (st->expected && !bad && p >= o->gen.index_base &&
		    p - o->gen.index_base < o->expect_producers &&
		    *prod_count <= st->expected[p - o->gen.index_base])
			st->expect_left--;
	}
	st->records += b->count;
	st->batches++;
	st->dropped = b->dropped_total;
	if (b->flush_reason < 4)
		st->flush[b->flush_reason]++;
}

/* {"key":count,...} sorted by key: the pairs are taken from the hash
 * map and sorted once, O(n log n) for millions of game ids. */
static int print_counts(FILE *f, const struct counts *m)
{
	struct count_pair *v = counts_sorted(m);

	if (!v)
		return -ENOMEM;
	fputc('{', f);
	for (size_t i = 0; i < m->n; i++)
		fprintf(f, "%s\"%" PRIu64 "\":%" PRIu64, i ? "," : "", v[i].key,
			v[i].val);
	fputc('}', f);
	free(v);
	return 0;
}

static int write_report(struct sub_state *st, const char *path, double secs,
			uint64_t miss)
{
	uint64_t bytes = st->records * st->record_bytes;
	FILE *f = fopen(path, "w");
	int err;

	if (!f) {
		fprintf(stderr, "expbus check: --report %s: %s\n", path,
			strerror(errno));
		return -errno;
	}
	fprintf(f,
		"{\"records\":%" PRIu64 ",\"batches\":%" PRIu64
		",\"bytes\":%" PRIu64
		",\"seconds\":%.6f,\"records_per_s\":%.1f,\"gb_per_s\":%.4f"
		",\"dropped\":%" PRIu64 ",\"corrupt\":%" PRIu64
		",\"order_errors\":%" PRIu64 ",\"filter_errors\":%" PRIu64
		",\"checksum_errors\":%" PRIu64 ",\"missing\":%" PRIu64
		",\"flush\":{\"full\":%" PRIu64 ",\"timeout\":%" PRIu64
		",\"drain\":%" PRIu64 "},\"first_ns\":%" PRIu64
		",\"last_ns\":%" PRIu64 ",\"cpu_s\":%.6f,\"per_game\":",
		st->records, st->batches, bytes, secs,
		secs > 0 ? (double)st->records / secs : 0,
		secs > 0 ? (double)bytes / secs / 1e9 : 0, st->dropped,
		st->corrupt, st->order_errors, st->filter_errors,
		st->checksum_errors, miss, st->flush[EXPBUS_FLUSH_FULL],
		st->flush[EXPBUS_FLUSH_TIMEOUT], st->flush[EXPBUS_FLUSH_DRAIN],
		st->first_ns, st->last_ns, (double)st->cpu_ns / 1e9);
	err = print_counts(f, &st->per_game);
	fprintf(f, ",\"per_producer\":");
	if (err == 0)
		err = print_counts(f, &st->per_producer);
	fprintf(f, "}\n");
	if (fclose(f) != 0 || err) {
		fprintf(stderr, "expbus check: --report %s: %s\n", path,
			strerror(errno));
		return -EIO;
	}
	return 0;
}

static void sleep_ms(uint32_t ms)
{
	uint64_t end = cli_now_ns() + (uint64_t)ms * 1000000u;

	while (!stop && cli_now_ns() < end)
		(void)usleep(10000);
}

enum stop_reason {
	RUNNING,
	BY_COUNT,
	BY_EXPECT,
	BY_IDLE,
	BY_DURATION,
	BY_SIGNAL,
	BY_BROKER
};

static const char *human_rate(double r, char *buf, size_t len)
{
	if (r >= 1e6)
		snprintf(buf, len, "%.3gM", r / 1e6);
	else if (r >= 1e3)
		snprintf(buf, len, "%.3gk", r / 1e3);
	else
		snprintf(buf, len, "%.3g", r);
	return buf;
}

static enum stop_reason receive(struct sub_state *st, int *err)
{
	const struct sub_opts *o = st->o;
	const uint64_t t0 = cli_now_ns();
	const uint64_t end =
	    o->duration > 0 ? t0 + (uint64_t)(o->duration * 1e9) : UINT64_MAX;
	uint64_t last_progress = t0, progress_records = 0;
	bool paused = false;

	if (st->expected && st->expect_left == 0)
		return BY_EXPECT;
	while (!stop) {
		const struct expbus_batch *b;
		uint64_t now = cli_now_ns();
		int r;

		if (o->progress && now - last_progress >= 1000000000u) {
			double dt = (double)(now - last_progress) / 1e9;
			double rec =
			    (double)(st->records - progress_records) / dt;
			char buf[32];
			fprintf(stderr,
				"check: %s rec/s, %.3f GB/s, %" PRIu64
				" batches, %" PRIu64 " dropped\n",
				human_rate(rec, buf, sizeof(buf)),
				rec * st->record_bytes / 1e9, st->batches,
				st->dropped);
			last_progress = now;
			progress_records = st->records;
		}
		if (now >= end)
			return BY_DURATION;
		if (!o->hold && o->idle_ms && st->batches &&
		    now - st->last_ns >= (uint64_t)o->idle_ms * 1000000u)
			return BY_IDLE;
		r = expbus_next_batch(st->c, POLL_MS, &b);
		if (r == -EAGAIN || r == -ETIMEDOUT || r == -EINTR)
			continue;
		if (r == -EPIPE)
			return BY_BROKER;
		if (r < 0) {
			*err = r;
			return BY_BROKER;
		}
		st->last_ns = cli_now_ns();
		if (!st->first_ns) {
			st->first_ns = st->last_ns;
			st->first_cpu_ns = cli_cpu_ns();
		}
		check_batch(st, b);
		if (!o->hold) {
			r = expbus_release(st->c, b);
			if (r < 0) {
				*err = r;
				return BY_BROKER;
			}
		}
		if (o->pause_after && !paused &&
		    st->records >= o->pause_after) {
			paused = true;
			sleep_ms(o->pause_ms);
			/* The pause is not idleness. */
			st->last_ns = cli_now_ns();
		}
		if (o->count && st->records >= o->count)
			return BY_COUNT;
		if (st->expected && st->expect_left == 0)
			return BY_EXPECT;
	}
	return BY_SIGNAL;
}

static void state_free(struct sub_state *st, struct sub_opts *o)
{
	counts_free(&st->last_seq);
	counts_free(&st->per_game);
	counts_free(&st->per_producer);
	free(st->expected);
	free(o->games.ids);
	free(o->players.ids);
}

int cmd_check(const char *socket, int argc, char **argv)
{
	struct sub_opts o = {
	    .socket = socket,
	    .stream = "demo",
	    .wait_ms = 5000,
	    .idle_ms = 2000,
	    .pause_ms = 1000,
	    .gen = {.games = 4, .episode_len = 100, .players = 2},
	};
	struct sigaction sa = {.sa_handler = on_signal};
	struct sub_state st = {.o = &o};
	struct expbus *bus = NULL;
	enum stop_reason why;
	uint64_t miss, bytes;
	double secs;
	char buf[32];
	int err = 0, status = 0;

	err = parse(argc, argv, &o);
	if (err) {
		state_free(&st, &o);
		return err < 0 ? 0 : err;
	}
	/* No SA_RESTART: a signal cuts a wait short so we notice it. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	err = expbus_new(o.socket, &bus);
	if (err < 0) {
		fprintf(stderr, "expbus check: %s\n", strerror(-err));
		state_free(&st, &o);
		return EXIT_BROKER;
	}
	if (setup_expectation(&st) < 0) {
		fprintf(stderr, "expbus check: out of memory\n");
		state_free(&st, &o);
		expbus_free(bus);
		return 1;
	}
	err = cli_subscribe("check", bus, o.stream, &o.so, o.wait_ms, &stop,
			    &st.c);
	if (err < 0) {
		state_free(&st, &o);
		expbus_free(bus);
		return EXIT_BROKER;
	}
	if (setup_columns(&st) < 0) {
		expbus_consumer_close(st.c);
		state_free(&st, &o);
		expbus_free(bus);
		return EXIT_BROKER;
	}
	err = 0;
	why = receive(&st, &err);
	if (st.first_ns)
		st.cpu_ns = cli_cpu_ns() - st.first_cpu_ns;
	if (why == BY_BROKER && err)
		fprintf(stderr, "expbus check: receiving: %s\n",
			expbus_last_error(bus)[0] ? expbus_last_error(bus)
						  : strerror(-err));
	else if (why == BY_BROKER)
		fprintf(stderr, "expbus check: the broker went away\n");
	expbus_consumer_close(st.c);

	miss = missing(&st);
	bytes = st.records * st.record_bytes;
	secs = st.last_ns > st.first_ns
		   ? (double)(st.last_ns - st.first_ns) / 1e9
		   : 0;
	printf("check: %" PRIu64
	       " records in %.3f s: %s rec/s, %.2f GB/s; %" PRIu64
	       " corrupt, %" PRIu64 " out of order, %" PRIu64
	       " missing, %" PRIu64 " dropped",
	       st.records, secs,
	       human_rate(secs > 0 ? (double)st.records / secs : 0, buf,
			  sizeof(buf)),
	       secs > 0 ? (double)bytes / secs / 1e9 : 0, st.corrupt,
	       st.order_errors, miss, st.dropped);
	if (st.filter_errors)
		printf(", %" PRIu64 " filter errors", st.filter_errors);
	if (st.checksum_errors)
		printf(", %" PRIu64 " bad checksums", st.checksum_errors);
	printf("\n");
	fflush(stdout);
	if (o.report && write_report(&st, o.report, secs, miss) < 0)
		status = 1;
	if (st.corrupt || st.order_errors || st.filter_errors ||
	    st.checksum_errors)
		status = 1;
	else if (miss && o.so.policy == EXPBUS_LOSSLESS &&
		 (why == BY_IDLE || why == BY_DURATION))
		status = 1;
	else if (why == BY_BROKER)
		status = EXIT_BROKER;
	state_free(&st, &o);
	expbus_free(bus);
	return status;
}
