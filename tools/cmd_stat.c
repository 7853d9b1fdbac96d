/* cmd_stat.c — `expbus stat`: one view of the broker's stats segment,
 * mapped read-only, printed as tables, as one JSON object, or in the
 * Prometheus text exposition format. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "expbus.h"
#include "options.h"
#include "prom_text.h"
#include "stats_view.h"

#define CMD "stat"

/* Strings from the segment are the broker's, but are printed with JSON's
 * special characters escaped all the same. */
static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void print_json(const struct stats_view *v)
{
	const char *sep = "";

	printf("{\"broker_pid\":%u,\"unclaimed\":%" PRIu64
	       ",\"violations\":%" PRIu64 ",\"loops\":%" PRIu64
	       ",\"sleeps\":%" PRIu64 ",\"uptime_s\":%.3f,\"streams\":[",
	       v->broker_pid, v->unclaimed, v->violations, v->loops, v->sleeps,
	       v->taken_ns > v->start_ns
		   ? (double)(v->taken_ns - v->start_ns) / 1e9
		   : 0.0);
	for (uint32_t i = 0; i < v->n_streams; i++) {
		const struct sv_stream *s = &v->streams[i];
		printf("%s{\"id\":%u,\"name\":", sep, s->id);
		json_string(s->name);
		printf(",\"schema\":");
		json_string(s->schema);
		printf(",\"schema_hash\":\"%016" PRIx64
		       "\",\"records_in\":%" PRIu64 ",\"unclaimed\":%" PRIu64
		       "}",
		       s->schema_hash, s->records_in, s->unclaimed);
		sep = ",";
	}
	printf("],\"producers\":[");
	sep = "";
	for (uint32_t i = 0; i < v->n_producers; i++) {
		const struct sv_producer *p = &v->producers[i];
		printf("%s{\"id\":%u,\"stream\":", sep, p->id);
		json_string(stats_view_stream_name(v, p->stream_id));
		printf(",\"pid\":%u,\"uid\":%u,\"state\":\"%s\",\"capacity\":%u"
		       ",\"slot_size\":%u,\"records_in\":%" PRIu64
		       ",\"head\":%" PRIu64 ",\"tail\":%" PRIu64
		       ",\"occupancy\":%" PRIu64
		       ",\"fill_ratio\":%.6f,\"stalls\":%" PRIu64
		       ",\"games_seen\":%" PRIu64 ",\"last_game\":%" PRIu64 "}",
		       p->pid, p->uid, sv_state_name(p->state), p->capacity,
		       p->slot_size, p->records_in, p->head, p->tail,
		       p->occupancy, p->fill, p->stalls, p->games_seen,
		       p->last_game);
		sep = ",";
	}
	printf("],\"subscriptions\":[");
	sep = "";
	for (uint32_t i = 0; i < v->n_subs; i++) {
		const struct sv_sub *s = &v->subs[i];
		printf("%s{\"id\":%u,\"stream\":", sep, s->id);
		json_string(stats_view_stream_name(v, s->stream_id));
		printf(",\"pid\":%u,\"uid\":%u,\"policy\":\"%s\",\"group\":",
		       s->pid, s->uid, sv_policy_name(s->policy));
		if (s->group[0])
			json_string(s->group);
		else
			printf("null");
		printf(
		    ",\"batch_size\":%u,\"max_delay_us\":%u,\"batch_slots\":%u"
		    ",\"filter\":{\"games\":%u,\"players\":%u,\"min_turn\":%u}"
		    ",\"delivered\":%" PRIu64 ",\"delivered_bytes\":%" PRIu64
		    ",\"dropped_ring_full\":%" PRIu64
		    ",\"dropped_subscriber_gone\":%" PRIu64
		    ",\"batches_full\":%" PRIu64 ",\"batches_timeout\":%" PRIu64
		    ",\"batches_drain\":%" PRIu64 ",\"published\":%" PRIu64
		    ",\"released\":%" PRIu64 ",\"filtered\":%" PRIu64
		    ",\"released_records\":%" PRIu64
		    ",\"open_records\":%" PRIu64 ",\"lag_records\":%" PRIu64
		    ",\"lag_ms\":%.3f}",
		    s->batch_size, s->max_delay_us, s->capacity, s->n_games,
		    s->n_players, s->min_turn, s->delivered, s->delivered_bytes,
		    s->dropped[DROP_RING_FULL],
		    s->dropped[DROP_SUBSCRIBER_GONE],
		    s->batches[EXPBUS_FLUSH_FULL],
		    s->batches[EXPBUS_FLUSH_TIMEOUT],
		    s->batches[EXPBUS_FLUSH_DRAIN], s->published, s->released,
		    s->filtered, s->released_records, s->open_records,
		    s->lag_records, (double)s->lag_ns / 1e6);
		sep = ",";
	}
	printf("]}\n");
}

static void print_table(const struct stats_view *v)
{
	printf("broker pid %u; %" PRIu64 " records unclaimed, %" PRIu64
	       " peers disconnected for protocol violations\n\n",
	       v->broker_pid, v->unclaimed, v->violations);
	printf("%-20s %14s %14s  %s\n", "STREAM", "RECORDS_IN", "UNCLAIMED",
	       "SCHEMA");
	for (uint32_t i = 0; i < v->n_streams; i++) {
		const struct sv_stream *s = &v->streams[i];
		printf("%-20s %14" PRIu64 " %14" PRIu64 "  %s\n", s->name,
		       s->records_in, s->unclaimed, s->schema);
	}
	printf("\n%-6s %-20s %8s %-9s %9s %14s %10s %6s %10s\n", "PROD",
	       "STREAM", "PID", "STATE", "CAPACITY", "RECORDS_IN", "OCCUPANCY",
	       "FILL%", "STALLS");
	for (uint32_t i = 0; i < v->n_producers; i++) {
		const struct sv_producer *p = &v->producers[i];
		printf("%-6u %-20s %8u %-9s %9u %14" PRIu64 " %10" PRIu64
		       " %6.1f %10" PRIu64 "\n",
		       p->id, stats_view_stream_name(v, p->stream_id), p->pid,
		       sv_state_name(p->state), p->capacity, p->records_in,
		       p->occupancy, 100 * p->fill, p->stalls);
	}
	printf("\n%-6s %-20s %8s %-8s %-12s %14s %12s %10s %10s %10s\n", "SUB",
	       "STREAM", "PID", "POLICY", "GROUP", "DELIVERED", "DROPPED",
	       "FILTERED", "LAG", "LAG_MS");
	for (uint32_t i = 0; i < v->n_subs; i++) {
		const struct sv_sub *s = &v->subs[i];
		printf("%-6u %-20s %8u %-8s %-12s %14" PRIu64 " %12" PRIu64
		       " %10" PRIu64 " %10" PRIu64 " %10.1f\n",
		       s->id, stats_view_stream_name(v, s->stream_id), s->pid,
		       sv_policy_name(s->policy), s->group[0] ? s->group : "-",
		       s->delivered,
		       s->dropped[DROP_RING_FULL] +
			   s->dropped[DROP_SUBSCRIBER_GONE],
		       s->filtered, s->lag_records, (double)s->lag_ns / 1e6);
	}
}

int cmd_stat(const char *socket, int argc, char **argv)
{
	bool json = false, prometheus = false;
	const struct option_spec opts[] = {
	    OPTION_SOCKET(&socket),
	    {.name = "json",
	     .kind = OPTION_FLAG,
	     .target = &json,
	     .help = "one JSON object: broker_pid, unclaimed,\n"
		     "violations, streams, producers, subscriptions"},
	    {.name = "prometheus",
	     .kind = OPTION_FLAG,
	     .target = &prometheus,
	     .help = "the Prometheus text exposition format (0.0.4),\n"
		     "for a textfile collector ('expbus metrics'\n"
		     "serves it over HTTP) (default: readable tables)"},
	    OPTION_END,
	};
	const struct command_spec spec = {
	    .name = CMD,
	    .summary =
		"Show the broker's streams, producer rings and subscriptions with\n"
		"their counters, read once from its stats segment, which this maps\n"
		"read-only: it never disturbs the broker, busy or not. The counters\n"
		"are one consistent snapshot (the broker publishes them once per\n"
		"pass under a sequence counter).",
	    .options = opts,
	    .epilog =
		"Occupancy of a producer ring: tail - head, records committed and\n"
		"not yet taken (the tail as the broker last read it, at most\n"
		"100 ms old). Lag of a subscription: records routed to it and not\n"
		"yet released (in batches it holds, plus the batch being filled),\n"
		"and the age of the oldest of them.\n"
		"\n"
		"Exit status: 0 printed, 1 out of memory, 2 bad usage, 3 no broker\n"
		"at the socket or its stats segment is unreadable.\n",
	};
	struct stats_view v = {0};
	int err;

	err = options_parse(&spec, argc, argv, NULL);
	if (err)
		return err > 0 ? 0 : EXIT_USAGE;
	if (json && prometheus)
		return cli_usage_error(
		    CMD, "--json and --prometheus exclude each other");
	err = stats_view_snapshot(CMD, socket, &v);
	if (err)
		return err;
	if (json)
		print_json(&v);
	else if (prometheus)
		prom_text_write(stdout, &v);
	else
		print_table(&v);
	stats_view_free(&v);
	return fflush(stdout) == 0 ? 0 : 1;
}
