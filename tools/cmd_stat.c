/* cmd_stat.c — `expbus stat`: one view of the broker's stats segment,
 * mapped read-only, printed as tables, as one JSON object, or in the
 * Prometheus text exposition format. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "expbus.h"
#include "stats_view.h"

#define CMD "stat"

enum format { FMT_TABLE, FMT_JSON, FMT_PROMETHEUS };

static void usage(void)
{
	printf(
	    "Usage: expbus stat [OPTION]...\n"
	    "Show the broker's streams, producer rings and subscriptions with\n"
	    "their counters, read once from its stats segment, which this maps\n"
	    "read-only: it never disturbs the broker, busy or not. The counters\n"
	    "are one consistent snapshot (the broker publishes them once per\n"
	    "pass under a sequence counter).\n"
	    "\n"
	    "  -s, --socket PATH  the broker's socket (default: expbus's)\n"
	    "      --json         one JSON object: broker_pid, unclaimed,\n"
	    "                     violations, streams, producers, subscriptions\n"
	    "      --prometheus   the Prometheus text exposition format (0.0.4),\n"
	    "                     for a textfile collector or an exporter\n"
	    "                     (default: readable tables)\n"
	    "  -h, --help         show this help\n"
	    "\n"
	    "Occupancy of a producer ring: tail - head, records committed and\n"
	    "not yet taken (the tail as the broker last read it, at most\n"
	    "100 ms old). Lag of a subscription: records routed to it and not\n"
	    "yet released (in batches it holds, plus the batch being filled),\n"
	    "and the age of the oldest of them.\n"
	    "\n"
	    "Exit status: 0 printed, 1 out of memory, 2 bad usage, 3 no broker\n"
	    "at the socket or its stats segment is unreadable.\n");
}

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

/* Label values: backslash, double quote and line feed are escaped, as
 * the exposition format requires. */
static void prom_label(const char *name, const char *value, bool first)
{
	printf("%s%s=\"", first ? "" : ",", name);
	for (; *value; value++) {
		if (*value == '\\' || *value == '"')
			printf("\\%c", *value);
		else if (*value == '\n')
			printf("\\n");
		else
			putchar(*value);
	}
	putchar('"');
}

static void prom_family(const char *name, const char *type, const char *help)
{
	printf("# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void producer_labels(const struct stats_view *v,
			    const struct sv_producer *p)
{
	char id[16], pid[16];

	snprintf(id, sizeof(id), "%u", p->id);
	snprintf(pid, sizeof(pid), "%u", p->pid);
	putchar('{');
	prom_label("stream", stats_view_stream_name(v, p->stream_id), true);
	prom_label("producer", id, false);
	prom_label("pid", pid, false);
}

/* A reason is the last label, when there is one. */
static void sub_labels(const struct stats_view *v, const struct sv_sub *s,
		       const char *reason)
{
	char id[16], pid[16];

	snprintf(id, sizeof(id), "%u", s->id);
	snprintf(pid, sizeof(pid), "%u", s->pid);
	putchar('{');
	prom_label("stream", stats_view_stream_name(v, s->stream_id), true);
	prom_label("subscription", id, false);
	prom_label("pid", pid, false);
	prom_label("group", s->group, false);
	prom_label("policy", sv_policy_name(s->policy), false);
	if (reason)
		prom_label("reason", reason, false);
}

enum pfield { P_RECORDS, P_OCC, P_CAP, P_RATIO, P_STALLS };

static void prom_producers(const struct stats_view *v, const char *name,
			   const char *type, const char *help, enum pfield f)
{
	prom_family(name, type, help);
	for (uint32_t i = 0; i < v->n_producers; i++) {
		const struct sv_producer *p = &v->producers[i];

		fputs(name, stdout);
		producer_labels(v, p);
		switch (f) {
		case P_RECORDS:
			printf("} %" PRIu64 "\n", p->records_in);
			break;
		case P_OCC:
			printf("} %" PRIu64 "\n", p->occupancy);
			break;
		case P_CAP:
			printf("} %u\n", p->capacity);
			break;
		case P_RATIO:
			printf("} %.6f\n", p->fill);
			break;
		case P_STALLS:
			printf("} %" PRIu64 "\n", p->stalls);
			break;
		}
	}
}

enum sfield {
	S_DELIVERED,
	S_BYTES,
	S_FILTERED,
	S_RELEASED,
	S_LAG,
	S_LAG_S,
	S_BATCH_SIZE,
};

static void prom_subs(const struct stats_view *v, const char *name,
		      const char *type, const char *help, enum sfield f)
{
	prom_family(name, type, help);
	for (uint32_t i = 0; i < v->n_subs; i++) {
		const struct sv_sub *s = &v->subs[i];
		uint64_t x = 0;

		fputs(name, stdout);
		sub_labels(v, s, NULL);
		switch (f) {
		case S_DELIVERED:
			x = s->delivered;
			break;
		case S_BYTES:
			x = s->delivered_bytes;
			break;
		case S_FILTERED:
			x = s->filtered;
			break;
		case S_RELEASED:
			x = s->released_records;
			break;
		case S_LAG:
			x = s->lag_records;
			break;
		case S_BATCH_SIZE:
			x = s->batch_size;
			break;
		case S_LAG_S:
			printf("} %.9f\n", (double)s->lag_ns / 1e9);
			continue;
		}
		printf("} %" PRIu64 "\n", x);
	}
}

static void print_prometheus(const struct stats_view *v)
{
	static const char *const drop_reason[] = {"ring_full",
						  "subscriber_gone"};
	static const char *const flush_reason[] = {NULL, "full", "timeout",
						   "drain"};
	const char *name;

	prom_family("expbus_broker_info", "gauge",
		    "The broker serving the stats segment; always 1.");
	printf("expbus_broker_info{pid=\"%u\"} 1\n", v->broker_pid);
	prom_family("expbus_broker_uptime_seconds", "gauge",
		    "Seconds since the broker started.");
	printf("expbus_broker_uptime_seconds %.3f\n",
	       v->taken_ns > v->start_ns
		   ? (double)(v->taken_ns - v->start_ns) / 1e9
		   : 0.0);
	prom_family("expbus_broker_loops_total", "counter",
		    "Passes of the broker's event loop.");
	printf("expbus_broker_loops_total %" PRIu64 "\n", v->loops);
	prom_family("expbus_broker_sleeps_total", "counter",
		    "Times the broker went to sleep for want of work.");
	printf("expbus_broker_sleeps_total %" PRIu64 "\n", v->sleeps);
	prom_family("expbus_protocol_violations_total", "counter",
		    "Peers disconnected for breaking the protocol.");
	printf("expbus_protocol_violations_total %" PRIu64 "\n", v->violations);
	prom_family(
	    "expbus_unclaimed_records_total", "counter",
	    "Records taken from producers that no subscription wanted.");
	printf("expbus_unclaimed_records_total %" PRIu64 "\n", v->unclaimed);

	prom_family("expbus_stream_records_total", "counter",
		    "Records taken from the stream's producer rings.");
	for (uint32_t i = 0; i < v->n_streams; i++) {
		printf("expbus_stream_records_total{");
		prom_label("stream", v->streams[i].name, true);
		printf("} %" PRIu64 "\n", v->streams[i].records_in);
	}
	prom_family("expbus_stream_unclaimed_records_total", "counter",
		    "Records of the stream that no subscription wanted.");
	for (uint32_t i = 0; i < v->n_streams; i++) {
		printf("expbus_stream_unclaimed_records_total{");
		prom_label("stream", v->streams[i].name, true);
		printf("} %" PRIu64 "\n", v->streams[i].unclaimed);
	}

	prom_producers(v, "expbus_producer_records_total", "counter",
		       "Records the broker took from the producer's ring.",
		       P_RECORDS);
	prom_producers(v, "expbus_producer_ring_occupancy_records", "gauge",
		       "Records committed to the ring and not yet taken.",
		       P_OCC);
	prom_producers(v, "expbus_producer_ring_capacity_records", "gauge",
		       "Slots in the producer's ring.", P_CAP);
	prom_producers(v, "expbus_producer_ring_occupancy_ratio", "gauge",
		       "Occupancy of the ring over its capacity, 0 to 1.",
		       P_RATIO);
	prom_producers(v, "expbus_producer_stalls_total", "counter",
		       "Times a lossless subscription without room held the "
		       "producer's ring.",
		       P_STALLS);

	prom_subs(v, "expbus_subscription_delivered_records_total", "counter",
		  "Records in batches published to the subscription.",
		  S_DELIVERED);
	prom_subs(v, "expbus_subscription_delivered_bytes_total", "counter",
		  "Column bytes of the records delivered, headers included.",
		  S_BYTES);
	prom_subs(v, "expbus_subscription_released_records_total", "counter",
		  "Records in batches the subscriber has released.",
		  S_RELEASED);
	prom_subs(v, "expbus_subscription_filtered_records_total", "counter",
		  "Records the subscription's filter turned away.", S_FILTERED);
	name = "expbus_subscription_dropped_records_total";
	prom_family(name, "counter",
		    "Records dropped for the subscription, by reason.");
	for (uint32_t i = 0; i < v->n_subs; i++)
		for (int r = 0; r < 2; r++) {
			fputs(name, stdout);
			sub_labels(v, &v->subs[i], drop_reason[r]);
			printf("} %" PRIu64 "\n", v->subs[i].dropped[r]);
		}
	name = "expbus_subscription_batches_total";
	prom_family(name, "counter",
		    "Batches published to the subscription, by flush reason.");
	for (uint32_t i = 0; i < v->n_subs; i++)
		for (int r = 1; r < 4; r++) {
			fputs(name, stdout);
			sub_labels(v, &v->subs[i], flush_reason[r]);
			printf("} %" PRIu64 "\n", v->subs[i].batches[r]);
		}
	prom_subs(v, "expbus_subscription_batch_size_records", "gauge",
		  "Records per batch at most.", S_BATCH_SIZE);
	prom_subs(v, "expbus_subscription_lag_records", "gauge",
		  "Records routed to the subscription and not yet released.",
		  S_LAG);
	prom_subs(v, "expbus_subscription_lag_seconds", "gauge",
		  "Age of the oldest record routed and not yet released.",
		  S_LAG_S);
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
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'},
	    {"prometheus", no_argument, NULL, 'P'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct stats_view v = {0};
	enum format fmt = FMT_TABLE;
	int c, err;

	while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			socket = optarg;
			break;
		case 'j':
		case 'P':
			if (fmt != FMT_TABLE)
				return cli_usage_error(
				    CMD, "--json and --prometheus "
					 "exclude each other");
			fmt = c == 'j' ? FMT_JSON : FMT_PROMETHEUS;
			break;
		case 'h':
			usage();
			return 0;
		default:
			fprintf(stderr, "Try 'expbus stat --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage_error(CMD, "unexpected argument '%s'",
				       argv[optind]);
	err = stats_view_snapshot(CMD, socket, &v);
	if (err)
		return err;
	switch (fmt) {
	case FMT_JSON:
		print_json(&v);
		break;
	case FMT_PROMETHEUS:
		print_prometheus(&v);
		break;
	case FMT_TABLE:
		print_table(&v);
		break;
	}
	stats_view_free(&v);
	return fflush(stdout) == 0 ? 0 : 1;
}
