/* cmd_sub.c — `expbus sub`: subscribe to a stream and print its records as
 * they arrive, for a person at a shell: an aligned table on a terminal,
 * JSON lines when piped, or with --stats one rate line a second. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "expbus.h"
#include "layout.h"
#include "options.h"
#include "proto.h"
#include "value_text.h"

#define CMD	 "sub"
#define POLL_MS	 100 /* longest wait before looking at signals */
#define MAX_COLS 64
#define EDGE	 3  /* items shown at each end of a long dimension */
#define MAX_CELL 64 /* a longer cell is cut, ending in "..." */

static const char *const header_columns[] = {"seq",    "source", "game",
					     "player", "turn",	 "flags"};

struct sub_opts {
	const char *socket;
	const char *stream;
	const char *columns;
	const char *group;
	struct expbus_subscribe_options so;
	struct id_list games, players;
	int policy; /* index in policies */
	uint32_t max_delay_ms;
	uint32_t wait_ms;
	uint64_t count;
	double duration;
	bool json, table, stats;
};

struct sub {
	const struct sub_opts *o;
	struct expbus_consumer *c;
	int cols[MAX_COLS]; /* consumer column indices, in print order */
	int flags_col;	    /* consumer index of flags, -1 */
	uint32_t ncols;
	int width[MAX_COLS];
	bool table, header_done;
	uint64_t printed;
	char *cell;
	size_t cell_cap;
	FILE *cellf;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int find_column(const struct expbus_consumer *c, const char *name)
{
	int n = expbus_consumer_columns(c);

	for (int i = 0; i < n; i++)
		if (strcmp(expbus_consumer_column_name(c, i), name) == 0)
			return i;
	return -1;
}

/* The columns to print: --columns a,b,c, or the record header then every
 * field of the schema. */
static int choose_columns(struct sub *s)
{
	const int n = expbus_consumer_columns(s->c);

	s->flags_col = find_column(s->c, "flags");
	if (!s->o->columns) {
		for (size_t h = 0;
		     h < sizeof(header_columns) / sizeof(header_columns[0]);
		     h++) {
			int i = find_column(s->c, header_columns[h]);
			if (i >= 0 && s->ncols < MAX_COLS)
				s->cols[s->ncols++] = i;
		}
		for (int i = 0; i < n && s->ncols < MAX_COLS; i++) {
			const char *name = expbus_consumer_column_name(s->c, i);
			bool header = strcmp(name, "timestamp") == 0;
			for (size_t h = 0; h < sizeof(header_columns) /
						   sizeof(header_columns[0]);
			     h++)
				header |= strcmp(name, header_columns[h]) == 0;
			if (!header)
				s->cols[s->ncols++] = i;
		}
		return 0;
	}
	for (const char *p = s->o->columns; *p;) {
		size_t len = strcspn(p, ",");
		char name[NAME_MAX_LEN];
		int i;

		if (len == 0 || len >= sizeof(name)) {
			fprintf(stderr,
				"expbus sub: --columns: '%s' is not a list of "
				"column names such as 'seq,game,reward'\n",
				s->o->columns);
			return -EINVAL;
		}
		memcpy(name, p, len);
		name[len] = '\0';
		i = find_column(s->c, name);
		if (i < 0) {
			fprintf(stderr,
				"expbus sub: --columns: the stream has no "
				"column '%s'; it has:",
				name);
			for (int k = 0; k < n; k++)
				fprintf(stderr, " %s",
					expbus_consumer_column_name(s->c, k));
			fputc('\n', stderr);
			return -ENOENT;
		}
		if (s->ncols == MAX_COLS) {
			fprintf(stderr, "expbus sub: --columns: at most %d\n",
				MAX_COLS);
			return -EINVAL;
		}
		s->cols[s->ncols++] = i;
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

static void flags_text(FILE *out, uint32_t flags)
{
	if (!flags)
		fputc('-', out);
	if (flags & EXPBUS_RECORD_DONE)
		fputs((flags & EXPBUS_RECORD_TRUNCATED) ? "done,trunc" : "done",
		      out);
	else if (flags & EXPBUS_RECORD_TRUNCATED)
		fputs("trunc", out);
	if (flags & ~(EXPBUS_RECORD_DONE | EXPBUS_RECORD_TRUNCATED))
		fprintf(out, "%s%#x", flags & 3 ? "," : "",
			flags &
			    ~(EXPBUS_RECORD_DONE | EXPBUS_RECORD_TRUNCATED));
}

/* The table text of one cell, in s->cell (valid until the next call). */
static const char *cell_text(struct sub *s, int col,
			     const struct expbus_column *c, uint32_t i)
{
	rewind(s->cellf);
	if (col == s->flags_col)
		flags_text(s->cellf, ((const uint32_t *)c->data)[i]);
	else
		value_short(s->cellf, c, i, EDGE);
	fputc('\0', s->cellf);
	fflush(s->cellf);
	if (strlen(s->cell) > MAX_CELL)
		memcpy(s->cell + MAX_CELL - 3, "...", 4);
	return s->cell;
}

/* Widths from the header and the first batch's records; later rows
 * wider than that push the rest of their line right. */
static void table_header(struct sub *s, const struct expbus_batch *b,
			 const struct expbus_column *cols)
{
	for (uint32_t k = 0; k < s->ncols; k++) {
		int w =
		    (int)strlen(expbus_consumer_column_name(s->c, s->cols[k]));
		for (uint32_t i = 0; i < b->count && i < 64; i++) {
			int len =
			    (int)strlen(cell_text(s, s->cols[k], &cols[k], i));
			if (len > w)
				w = len;
		}
		s->width[k] = w;
	}
	for (uint32_t k = 0; k < s->ncols; k++) {
		const char *name =
		    expbus_consumer_column_name(s->c, s->cols[k]);
		char up[NAME_MAX_LEN];
		size_t j;

		for (j = 0; name[j] && j + 1 < sizeof(up); j++)
			up[j] = (char)(name[j] >= 'a' && name[j] <= 'z'
					   ? name[j] - 'a' + 'A'
					   : name[j]);
		up[j] = '\0';
		/* Aligned as the values below: numbers right, arrays left. */
		if (cols[k].ndim == 0 && s->cols[k] != s->flags_col)
			printf(k + 1 < s->ncols ? "%*s  " : "%*s\n",
			       s->width[k], up);
		else
			printf(k + 1 < s->ncols ? "%-*s  " : "%-*s\n",
			       k + 1 < s->ncols ? s->width[k] : 0, up);
	}
	s->header_done = true;
}

static void print_batch(struct sub *s, const struct expbus_batch *b)
{
	struct expbus_column cols[MAX_COLS];
	uint32_t n = b->count;

	if (s->o->count && s->o->count - s->printed < n)
		n = (uint32_t)(s->o->count - s->printed);
	for (uint32_t k = 0; k < s->ncols; k++)
		expbus_batch_column_at(s->c, b, s->cols[k], &cols[k]);
	if (s->table && !s->header_done)
		table_header(s, b, cols);
	for (uint32_t i = 0; i < n; i++) {
		for (uint32_t k = 0; k < s->ncols; k++) {
			if (s->table) {
				const char *t =
				    cell_text(s, s->cols[k], &cols[k], i);
				/* Numbers right-aligned, arrays left. */
				bool num = cols[k].ndim == 0 &&
					   s->cols[k] != s->flags_col;
				if (k + 1 == s->ncols)
					printf(num ? "%*s\n" : "%-*s\n",
					       num ? s->width[k] : 0, t);
				else
					printf(num ? "%*s  " : "%-*s  ",
					       s->width[k], t);
				continue;
			}
			printf("%s\"%s\":", k ? "," : "{",
			       expbus_consumer_column_name(s->c, s->cols[k]));
			value_json(stdout, &cols[k], i);
		}
		if (!s->table)
			fputs("}\n", stdout);
	}
	s->printed += n;
}

struct rates {
	uint64_t records, bytes, batches, last_records, last_bytes;
	uint64_t last_ns;
	uint64_t dropped;
	double lat_sum_ms, lat_max_ms;
	uint64_t lat_n;
};

static void stats_line(struct rates *r, uint64_t now)
{
	double dt = (double)(now - r->last_ns) / 1e9;

	printf("%.0f rec/s  %.2f MB/s  %" PRIu64 " records  %" PRIu64
	       " batches  %" PRIu64 " dropped  batch age avg %.2f ms max %.2f "
	       "ms\n",
	       dt > 0 ? (double)(r->records - r->last_records) / dt : 0,
	       dt > 0 ? (double)(r->bytes - r->last_bytes) / dt / 1e6 : 0,
	       r->records, r->batches, r->dropped,
	       r->lat_n ? r->lat_sum_ms / (double)r->lat_n : 0, r->lat_max_ms);
	fflush(stdout);
	r->last_records = r->records;
	r->last_bytes = r->bytes;
	r->last_ns = now;
	r->lat_sum_ms = r->lat_max_ms = 0;
	r->lat_n = 0;
}

static int receive(struct sub *s)
{
	const struct sub_opts *o = s->o;
	const uint64_t t0 = cli_now_ns();
	const uint64_t end =
	    o->duration > 0 ? t0 + (uint64_t)(o->duration * 1e9) : UINT64_MAX;
	const int n = expbus_consumer_columns(s->c);
	struct rates r = {.last_ns = t0};

	while (!stop) {
		const struct expbus_batch *b;
		uint64_t now = cli_now_ns();
		int err;

		if (o->stats && now - r.last_ns >= 1000000000u)
			stats_line(&r, now);
		if (now >= end)
			break;
		err = expbus_next_batch(s->c, POLL_MS, &b);
		if (err == -EAGAIN || err == -ETIMEDOUT || err == -EINTR)
			continue;
		if (err == -EPIPE) {
			fprintf(stderr, "expbus sub: the broker went away\n");
			return EXIT_BROKER;
		}
		if (err < 0) {
			fprintf(stderr, "expbus sub: receiving: %s\n",
				strerror(-err));
			return EXIT_BROKER;
		}
		if (o->stats) {
			/* publish_ns is the broker's CLOCK_MONOTONIC, ours too.
			 */
			double age =
			    (double)(cli_now_ns() - b->publish_ns) / 1e6;
			r.records += b->count;
			r.batches++;
			r.dropped = b->dropped_total;
			for (int i = 0; i < n; i++) {
				struct expbus_column col;
				expbus_batch_column_at(s->c, b, i, &col);
				r.bytes += (uint64_t)col.count * col.elem_size;
			}
			r.lat_sum_ms += age;
			r.lat_max_ms = age > r.lat_max_ms ? age : r.lat_max_ms;
			r.lat_n++;
			s->printed += b->count;
		} else {
			print_batch(s, b);
			if (fflush(stdout) != 0) /* a closed pipe: done */
				stop = 1;
		}
		err = expbus_release(s->c, b);
		if (err < 0) {
			fprintf(stderr, "expbus sub: releasing: %s\n",
				strerror(-err));
			return EXIT_BROKER;
		}
		if (o->count && s->printed >= o->count)
			break;
	}
	if (o->stats)
		stats_line(&r, cli_now_ns());
	return 0;
}

int cmd_sub(const char *socket, int argc, char **argv)
{
	static const char *const policies[] = {"lossy", "lossless", NULL};
	struct sub_opts o = {
	    .socket = socket,
	    .wait_ms = 5000,
	};
	const struct option_spec opts[] = {
	    OPTION_SOCKET(&o.socket),
	    {.name = "stream",
	     .kind = OPTION_STRING,
	     .target = &o.stream,
	     .metavar = "NAME",
	     .help = "the stream (or give it as the argument)"},
	    {.name = "count",
	     .short_name = 'n',
	     .kind = OPTION_U64,
	     .target = &o.count,
	     .min = 1,
	     .max = UINT64_MAX / 2,
	     .metavar = "N",
	     .help = "stop after N records (default: until ^C)"},
	    {.name = "duration",
	     .kind = OPTION_SECONDS,
	     .target = &o.duration,
	     .metavar = "SEC",
	     .help = "stop after SEC seconds (default: no limit)"},
	    {.name = "columns",
	     .short_name = 'c',
	     .kind = OPTION_STRING,
	     .target = &o.columns,
	     .metavar = "A,B",
	     .help = "only these columns, in this order: header\n"
		     "columns (seq, timestamp, source, game, player,\n"
		     "turn, flags) and fields (default: all but\n"
		     "timestamp)"},
	    {.name = "json",
	     .kind = OPTION_FLAG,
	     .target = &o.json,
	     .help = "JSON lines, one object per record, arrays in\n"
		     "full (default when stdout is not a terminal)"},
	    {.name = "table",
	     .kind = OPTION_FLAG,
	     .target = &o.table,
	     .help = "an aligned table, long arrays shortened as\n"
		     "numpy prints them (default on a terminal)"},
	    {.name = "stats",
	     .kind = OPTION_FLAG,
	     .target = &o.stats,
	     .help = "no records: a line a second with records/s,\n"
		     "MB/s, batches, drops and batch age"},
	    {.name = "games",
	     .kind = OPTION_LIST,
	     .target = &o.games,
	     .max = PROTO_MAX_FILTER,
	     .metavar = "LIST",
	     .help = "only these game ids, e.g. 0-3,1000 (default all)"},
	    {.name = "players",
	     .kind = OPTION_LIST,
	     .target = &o.players,
	     .max = PROTO_MAX_FILTER,
	     .metavar = "LIST",
	     .help = "only these player ids (default all)"},
	    {.name = "min-turn",
	     .kind = OPTION_U32,
	     .target = &o.so.min_turn,
	     .max = UINT32_MAX,
	     .metavar = "T",
	     .help = "only records with turn >= T (default 0)"},
	    {.name = "group",
	     .kind = OPTION_STRING,
	     .target = &o.group,
	     .max = NAME_MAX_LEN - 1,
	     .metavar = "NAME",
	     .help = "share the records with the other members of\n"
		     "the group NAME (whole games each)"},
	    {.name = "policy",
	     .kind = OPTION_CHOICE,
	     .target = &o.policy,
	     .choices = policies,
	     .metavar = "P",
	     .help = "lossy or lossless (default lossy: a slow\n"
		     "terminal never holds the games back)"},
	    {.name = "batch-size",
	     .kind = OPTION_U32,
	     .target = &o.so.batch_size,
	     .min = 1,
	     .max = 1u << 24,
	     .metavar = "N",
	     .help = "records per batch (default: the broker's)"},
	    {.name = "max-delay-ms",
	     .kind = OPTION_U32,
	     .target = &o.max_delay_ms,
	     .min = 1,
	     .max = UINT32_MAX / 1000,
	     .metavar = "MS",
	     .help = "flush a partial batch after MS (default:\n"
		     "the broker's)"},
	    {.name = "wait-ms",
	     .kind = OPTION_U32,
	     .target = &o.wait_ms,
	     .max = 86400000,
	     .metavar = "MS",
	     .help = "wait up to MS for the stream to appear\n"
		     "(default 5000)"},
	    OPTION_END,
	};
	const struct command_spec spec = {
	    .name = CMD,
	    .args = "[STREAM]",
	    .summary =
		"Subscribe to a stream and print its records as they arrive: the\n"
		"header (seq, source producer, game, player, turn, flags) and the\n"
		"fields. On a terminal an aligned table, arrays shortened like\n"
		"numpy's; otherwise JSON lines that jq and Python read. 'expbus\n"
		"check' is the subscriber that verifies what 'expbus pub' wrote.",
	    .options = opts,
	    .epilog =
		"Examples:\n"
		"  expbus sub demo -n 5\n"
		"  expbus sub demo --columns seq,game,reward --games 0-3\n"
		"  expbus sub demo --stats\n"
		"\n"
		"Exit status: 0 stopped (--count, --duration, SIGINT/SIGTERM or\n"
		"a closed pipe), 1 out of memory, 2 bad usage, 3 no such stream\n"
		"in time, or the broker refused or went away.\n",
	    .max_args = 1,
	};
	struct sigaction sa = {.sa_handler = on_signal};
	struct sub s = {.o = &o};
	struct expbus *bus = NULL;
	int err, first_arg, status = 0;

	err = options_parse(&spec, argc, argv, &first_arg);
	if (err) {
		options_free(&spec);
		return err > 0 ? 0 : EXIT_USAGE;
	}
	if (first_arg < argc) {
		if (o.stream) {
			options_free(&spec);
			return cli_usage_error(
			    CMD, "give the stream once: --stream or argument");
		}
		o.stream = argv[first_arg];
	}
	if (!o.stream)
		o.stream = "demo";
	if (o.json && o.table) {
		options_free(&spec);
		return cli_usage_error(CMD, "--json and --table exclude "
					    "each other");
	}
	o.so.policy = o.policy == 1 ? EXPBUS_LOSSLESS : EXPBUS_LOSSY;
	o.so.max_delay_us = o.max_delay_ms * 1000;
	o.so.group = o.group;
	o.so.games = o.games.n ? o.games.ids : NULL;
	o.so.n_games = o.games.n;
	o.so.players = o.players.n ? o.players.ids : NULL;
	o.so.n_players = o.players.n;
	s.table = o.table || (!o.json && isatty(STDOUT_FILENO));

	/* No SA_RESTART: a signal cuts a wait short so we notice it; a
	 * closed pipe shows as a failed fflush. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	s.cellf = open_memstream(&s.cell, &s.cell_cap);
	if (!s.cellf) {
		fprintf(stderr, "expbus sub: out of memory\n");
		options_free(&spec);
		return 1;
	}
	err = expbus_new(o.socket, &bus);
	if (err < 0) {
		fprintf(stderr, "expbus sub: %s\n", strerror(-err));
		status = EXIT_BROKER;
		goto out;
	}
	if (cli_subscribe("sub", bus, o.stream, &o.so, o.wait_ms, &stop, &s.c) <
	    0) {
		status = EXIT_BROKER;
		goto out;
	}
	if (choose_columns(&s) < 0)
		status = EXIT_USAGE;
	else
		status = receive(&s);
	expbus_consumer_close(s.c);
out:
	expbus_free(bus);
	fclose(s.cellf);
	free(s.cell);
	options_free(&spec);
	return status;
}
