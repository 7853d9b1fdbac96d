/* cmd_ls.c — `expbus ls`: what is attached to the broker, stream by
 * stream: its schema, its producers and its subscriptions, read from the
 * stats segment mapped read-only. Counters are for stat and top. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "expbus.h"
#include "options.h"
#include "stats_view.h"

#define CMD "ls"

static void filter_text(const struct sv_sub *s, char *buf, size_t len)
{
	char games[24] = "all", players[24] = "all";

	if (s->n_games)
		snprintf(games, sizeof(games), "%u ids", s->n_games);
	if (s->n_players)
		snprintf(players, sizeof(players), "%u ids", s->n_players);
	snprintf(buf, len, "games:%s players:%s turn>=%u", games, players,
		 s->min_turn);
}

static void print_stream(const struct stats_view *v, const struct sv_stream *s)
{
	uint32_t np = 0, ns = 0;

	for (uint32_t i = 0; i < v->n_producers; i++)
		np += v->producers[i].stream_id == s->id;
	for (uint32_t i = 0; i < v->n_subs; i++)
		ns += v->subs[i].stream_id == s->id;
	printf("stream %s  (%u producer%s, %u subscription%s)\n", s->name, np,
	       np == 1 ? "" : "s", ns, ns == 1 ? "" : "s");
	printf("  schema  %s\n", s->schema);
	printf("  hash    %016" PRIx64 "\n", s->schema_hash);
	if (np) {
		printf("  %-6s %8s %6s %-9s %9s %9s %12s %10s\n", "PROD", "PID",
		       "UID", "STATE", "CAPACITY", "SLOT_B", "GAMES_SEEN",
		       "LAST_GAME");
		for (uint32_t i = 0; i < v->n_producers; i++) {
			const struct sv_producer *p = &v->producers[i];
			if (p->stream_id != s->id)
				continue;
			printf("  %-6u %8u %6u %-9s %9u %9u %12" PRIu64
			       " %10" PRIu64 "\n",
			       p->id, p->pid, p->uid, sv_state_name(p->state),
			       p->capacity, p->slot_size, p->games_seen,
			       p->last_game);
		}
	}
	if (ns) {
		printf("  %-6s %8s %6s %-8s %-12s %6s %9s %6s  %s\n", "SUB",
		       "PID", "UID", "POLICY", "GROUP", "BATCH", "DELAY_MS",
		       "SLOTS", "FILTER");
		for (uint32_t i = 0; i < v->n_subs; i++) {
			const struct sv_sub *u = &v->subs[i];
			char filter[96];

			if (u->stream_id != s->id)
				continue;
			filter_text(u, filter, sizeof(filter));
			printf("  %-6u %8u %6u %-8s %-12s %6u %9.1f %6u  %s\n",
			       u->id, u->pid, u->uid, sv_policy_name(u->policy),
			       u->group[0] ? u->group : "-", u->batch_size,
			       u->max_delay_us / 1000.0, u->capacity, filter);
		}
	}
}

int cmd_ls(const char *socket, int argc, char **argv)
{
	const struct option_spec opts[] = {
	    OPTION_SOCKET(&socket),
	    OPTION_END,
	};
	const struct command_spec spec = {
	    .name = CMD,
	    .args = "[STREAM]...",
	    .summary =
		"List the broker's streams (or only those named) with their schema,\n"
		"their producers (id, pid, uid, state, ring capacity, games seen)\n"
		"and their subscriptions (id, pid, uid, filter, policy, group,\n"
		"batch size, delay, batch slots). Read from the broker's stats\n"
		"segment, mapped read-only: this never disturbs the broker.",
	    .options = opts,
	    .epilog =
		"GAMES is how often the game id of the ring's records changed, and\n"
		"the last one seen. The filter shows how many game and player ids\n"
		"a subscription selects (all: no filter) and its minimum turn.\n"
		"\n"
		"Exit status: 0 listed, 1 a named stream does not exist or out of\n"
		"memory, 2 bad usage, 3 no broker at the socket or its stats\n"
		"segment is unreadable.\n",
	    .max_args = 1 << 20,
	};
	struct stats_view v = {0};
	int err, status = 0, optind;
	bool first = true;

	err = options_parse(&spec, argc, argv, &optind);
	if (err)
		return err > 0 ? 0 : EXIT_USAGE;
	err = stats_view_snapshot(CMD, socket, &v);
	if (err)
		return err;
	if (v.n_streams == 0 && optind == argc)
		printf(
		    "no streams yet (a stream exists once a producer attaches)\n");
	for (uint32_t i = 0; i < v.n_streams; i++) {
		bool wanted = optind == argc;

		for (int a = optind; a < argc && !wanted; a++)
			wanted = strcmp(argv[a], v.streams[i].name) == 0;
		if (!wanted)
			continue;
		if (!first)
			putchar('\n');
		first = false;
		print_stream(&v, &v.streams[i]);
	}
	for (int a = optind; a < argc; a++) {
		bool found = false;

		for (uint32_t i = 0; i < v.n_streams && !found; i++)
			found = strcmp(argv[a], v.streams[i].name) == 0;
		if (!found) {
			fprintf(stderr, "expbus ls: no stream '%s'\n", argv[a]);
			status = 1;
		}
	}
	stats_view_free(&v);
	return status;
}
