/* cmd_stat.c — `expbus stat`: map the broker's stats segment read-only and
 * print its streams, producer rings and subscriptions, as a table or as
 * one JSON object. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "expbus.h"
#include "layout.h"

#define CMD "stat"

static void usage(void)
{
	printf("Usage: expbus stat [OPTION]...\n"
	       "Show the broker's streams, producer rings and subscriptions with\n"
	       "their counters, read from its stats segment (this never disturbs\n"
	       "the broker). Counters are read one at a time, not as a snapshot.\n"
	       "\n"
	       "  -s, --socket PATH  the broker's socket (default: expbus's)\n"
	       "      --json         print one JSON object: broker_pid, unclaimed,\n"
	       "                     violations, streams, producers, subscriptions\n"
	       "                     (default: readable tables)\n"
	       "  -h, --help         show this help\n"
	       "\n"
	       "Exit status: 0 printed, 2 bad usage, 3 no broker at the socket or\n"
	       "its stats segment is unreadable.\n");
}

static uint64_t ld(const _Atomic uint64_t *c)
{
	/* Relaxed: each counter whole is all the segment promises. */
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* Strings from the segment are the broker's, but are printed with their
 * length bounded and JSON's special characters escaped all the same. */
static void json_string(const char *s, size_t max)
{
	putchar('"');
	for (size_t i = 0; i < max && s[i]; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static const char *stream_name(const struct stats_segment *st, uint32_t id)
{
	for (uint32_t i = 0; i < STATS_MAX_STREAMS; i++)
		if (st->streams[i].in_use && st->streams[i].id == id)
			return st->streams[i].name;
	return "?";
}

static void print_json(const struct stats_segment *st)
{
	const char *sep = "";

	printf("{\"broker_pid\":%u,\"unclaimed\":%" PRIu64 ",\"violations\":%" PRIu64
	       ",\"streams\":[",
	       st->broker_pid, ld(&st->unclaimed), ld(&st->violations));
	for (uint32_t i = 0; i < STATS_MAX_STREAMS; i++) {
		const struct stats_stream *s = &st->streams[i];
		if (!s->in_use)
			continue;
		printf("%s{\"name\":", sep);
		json_string(s->name, NAME_MAX_LEN);
		printf(",\"schema\":");
		json_string(s->schema, STATS_SCHEMA_TEXT);
		printf(",\"records_in\":%" PRIu64 ",\"unclaimed\":%" PRIu64 "}",
		       ld(&s->records_in), ld(&s->unclaimed));
		sep = ",";
	}
	printf("],\"producers\":[");
	sep = "";
	for (uint32_t i = 0; i < STATS_MAX_PRODUCERS; i++) {
		const struct stats_producer *p = &st->producers[i];
		if (!p->in_use)
			continue;
		printf("%s{\"id\":%u,\"stream\":", sep, p->id);
		json_string(stream_name(st, p->stream_id), NAME_MAX_LEN);
		printf(",\"pid\":%u,\"uid\":%u,\"state\":\"%s\",\"capacity\":%u"
		       ",\"records_in\":%" PRIu64 ",\"head\":%" PRIu64
		       ",\"tail\":%" PRIu64 ",\"stalls\":%" PRIu64 "}",
		       p->pid, p->uid, p->in_use == 1 ? "attached" : "draining",
		       p->capacity, ld(&p->records_in), ld(&p->head),
		       ld(&p->tail_seen), ld(&p->stalls));
		sep = ",";
	}
	printf("],\"subscriptions\":[");
	sep = "";
	for (uint32_t i = 0; i < STATS_MAX_SUBS; i++) {
		const struct stats_sub *s = &st->subs[i];
		if (!s->in_use)
			continue;
		printf("%s{\"id\":%u,\"stream\":", sep, s->id);
		json_string(stream_name(st, s->stream_id), NAME_MAX_LEN);
		printf(",\"pid\":%u,\"policy\":\"%s\",\"group\":", s->pid,
		       s->policy == EXPBUS_LOSSY ? "lossy" : "lossless");
		if (s->group[0])
			json_string(s->group, NAME_MAX_LEN);
		else
			printf("null");
		printf(",\"batch_size\":%u,\"delivered\":%" PRIu64
		       ",\"delivered_bytes\":%" PRIu64
		       ",\"dropped_ring_full\":%" PRIu64
		       ",\"dropped_subscriber_gone\":%" PRIu64
		       ",\"batches_full\":%" PRIu64 ",\"batches_timeout\":%" PRIu64
		       ",\"batches_drain\":%" PRIu64 ",\"published\":%" PRIu64
		       ",\"released\":%" PRIu64 ",\"filtered\":%" PRIu64 "}",
		       s->batch_size, ld(&s->delivered), ld(&s->delivered_bytes),
		       ld(&s->dropped[DROP_RING_FULL]),
		       ld(&s->dropped[DROP_SUBSCRIBER_GONE]),
		       ld(&s->batches[EXPBUS_FLUSH_FULL]),
		       ld(&s->batches[EXPBUS_FLUSH_TIMEOUT]),
		       ld(&s->batches[EXPBUS_FLUSH_DRAIN]), ld(&s->published),
		       ld(&s->released), ld(&s->filtered));
		sep = ",";
	}
	printf("]}\n");
}

static void print_table(const struct stats_segment *st)
{
	printf("broker pid %u; %" PRIu64 " records unclaimed, %" PRIu64
	       " peers disconnected for protocol violations\n\n",
	       st->broker_pid, ld(&st->unclaimed), ld(&st->violations));
	printf("%-20s %14s %14s  %s\n", "STREAM", "RECORDS_IN", "UNCLAIMED",
	       "SCHEMA");
	for (uint32_t i = 0; i < STATS_MAX_STREAMS; i++) {
		const struct stats_stream *s = &st->streams[i];
		if (s->in_use)
			printf("%-20.*s %14" PRIu64 " %14" PRIu64 "  %.*s\n",
			       NAME_MAX_LEN, s->name, ld(&s->records_in),
			       ld(&s->unclaimed), STATS_SCHEMA_TEXT, s->schema);
	}
	printf("\n%-6s %-20s %8s %-9s %9s %14s %10s %10s\n", "PROD", "STREAM",
	       "PID", "STATE", "CAPACITY", "RECORDS_IN", "FILL", "STALLS");
	for (uint32_t i = 0; i < STATS_MAX_PRODUCERS; i++) {
		const struct stats_producer *p = &st->producers[i];
		if (p->in_use)
			printf("%-6u %-20.*s %8u %-9s %9u %14" PRIu64 " %10" PRIu64
			       " %10" PRIu64 "\n",
			       p->id, NAME_MAX_LEN, stream_name(st, p->stream_id),
			       p->pid, p->in_use == 1 ? "attached" : "draining",
			       p->capacity, ld(&p->records_in),
			       ld(&p->tail_seen) - ld(&p->head), ld(&p->stalls));
	}
	printf("\n%-6s %-20s %8s %-8s %-12s %14s %12s %10s %10s\n", "SUB",
	       "STREAM", "PID", "POLICY", "GROUP", "DELIVERED", "DROPPED",
	       "FILTERED", "HELD");
	for (uint32_t i = 0; i < STATS_MAX_SUBS; i++) {
		const struct stats_sub *s = &st->subs[i];
		if (s->in_use)
			printf("%-6u %-20.*s %8u %-8s %-12.*s %14" PRIu64 " %12" PRIu64
			       " %10" PRIu64 " %10" PRIu64 "\n",
			       s->id, NAME_MAX_LEN, stream_name(st, s->stream_id),
			       s->pid, s->policy == EXPBUS_LOSSY ? "lossy" : "lossless",
			       NAME_MAX_LEN, s->group[0] ? s->group : "-",
			       ld(&s->delivered),
			       ld(&s->dropped[DROP_RING_FULL]) +
				       ld(&s->dropped[DROP_SUBSCRIBER_GONE]),
			       ld(&s->filtered), ld(&s->published) - ld(&s->released));
	}
}

int cmd_stat(const char *socket, int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const void *seg;
	size_t size;
	struct expbus *bus;
	bool json = false;
	int c, err;

	while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
		switch (c) {
		case 's': socket = optarg; break;
		case 'j': json = true; break;
		case 'h': usage(); return 0;
		default:
			fprintf(stderr, "Try 'expbus stat --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
	err = expbus_new(socket, &bus);
	if (err < 0) {
		fprintf(stderr, "expbus stat: socket path: %s\n", strerror(-err));
		return EXIT_USAGE;
	}
	err = expbus_stats_map(bus, &seg, &size);
	if (err < 0) {
		const char *why = expbus_last_error(bus);

		/* The library's message names the socket and suggests --socket. */
		fprintf(stderr, "expbus stat: %s\n",
			why[0] ? why : strerror(-err));
		expbus_free(bus);
		return EXIT_BROKER;
	}
	if (json)
		print_json(seg);
	else
		print_table(seg);
	expbus_stats_unmap(seg, size);
	expbus_free(bus);
	return 0;
}
