/* recovery_reader.c — a C subscriber for the recovery tests
 * (tests/recovery): reads records of tools/pattern.h through the consumer
 * API across broker restarts and checks that each committed record comes
 * exactly once, in order per producer, with the bytes it was written with.
 *
 *   recovery_reader SOCKET STREAM PRODUCERS COUNT lossless|lossy
 *
 * Stops when every producer 0..PRODUCERS-1 delivered COUNT records (or
 * SIGTERM, or 60 s without a batch) and prints a JSON summary: records,
 * duplicates (seq at or below one already seen), gaps (records skipped),
 * out of pattern, dropped (the consumer's count), sources (distinct
 * producer ids per producer index: 1 when identities survive). */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "expbus.h"
#include "pattern.h"

#define MAX_PRODUCERS 64

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

struct col {
	const uint8_t *data;
	size_t size;
};

static struct col column(struct expbus_consumer *c,
			 const struct expbus_batch *b, const char *name)
{
	struct expbus_column col;
	struct col out = {0};

	if (expbus_batch_column(c, b, name, &col) == 0) {
		out.data = col.data;
		out.size = col.elem_size;
	}
	return out;
}

int main(int argc, char **argv)
{
	struct pattern pt = {.games = 4, .episode_len = 100, .players = 2};
	struct expbus_subscribe_options o = {.batch_size = 64,
					     .max_delay_us = 20000};
	uint64_t next[MAX_PRODUCERS] = {0}, records = 0, dups = 0, gaps = 0,
		 bad = 0, count;
	uint32_t src[MAX_PRODUCERS] = {0}, sources[MAX_PRODUCERS] = {0};
	const char *fields[] = {"obs", "action", "reward"};
	struct expbus_consumer *c;
	struct expbus *bus;
	unsigned producers, done = 0;
	int err = 0, idle = 0;

	if (argc != 6) {
		fprintf(
		    stderr,
		    "usage: %s SOCKET STREAM PRODUCERS COUNT lossless|lossy\n",
		    argv[0]);
		return 2;
	}
	producers = (unsigned)strtoul(argv[3], NULL, 10);
	count = strtoull(argv[4], NULL, 10);
	if (strcmp(argv[5], "lossy") == 0)
		o.policy = EXPBUS_LOSSY;
	if (producers > MAX_PRODUCERS)
		return 2;
	signal(SIGTERM, on_term);
	if (expbus_new(argv[1], &bus) < 0)
		return 1;
	/* The stream appears with its first producer: wait for it. */
	for (int i = 0; (err = expbus_subscribe(bus, argv[2], &o, &c)) < 0;
	     i++) {
		if (i > 3000 || (err != -ENOENT && err != -ECONNREFUSED)) {
			fprintf(stderr, "subscribe: %s\n",
				expbus_last_error(bus));
			return 1;
		}
		struct timespec ts = {0, 10000000};
		nanosleep(&ts, NULL);
	}
	printf("subscribed\n");
	fflush(stdout);
	while (!stop && done < producers && idle < 60) {
		const struct expbus_batch *b;

		err = expbus_next_batch(c, 1000, &b);
		if (err == -ETIMEDOUT || err == -EINTR) {
			idle++;
			continue;
		}
		if (err < 0) {
			fprintf(stderr, "next_batch: %d %s\n", err,
				expbus_last_error(bus));
			break;
		}
		idle = 0;
		struct col seq = column(c, b, "seq"),
			   source = column(c, b, "source"),
			   game = column(c, b, "game");
		for (uint32_t i = 0; i < b->count; i++) {
			uint64_t s;
			uint32_t g, id;
			memcpy(&s, seq.data + 8 * i, 8);
			memcpy(&g, game.data + 4 * i, 4);
			memcpy(&id, source.data + 4 * i, 4);
			uint32_t p = g / PATTERN_MAX_GAMES;
			if (p >= producers) {
				bad++;
				continue;
			}
			if (src[p] != id) {
				src[p] = id;
				sources[p]++;
			}
			records++;
			if (s < next[p]) {
				dups++;
				continue;
			}
			if (s != next[p])
				fprintf(stderr,
					"gap: producer %u seq %" PRIu64
					" to %" PRIu64 "\n",
					p, next[p], s);
			gaps += s - next[p];
			next[p] = s + 1;
			if (s + 1 == count)
				done++;
			struct expbus_record_header h;
			pattern_header(&pt, p, s, &h);
			uint32_t turn, player;
			memcpy(&turn, column(c, b, "turn").data + 4 * i, 4);
			memcpy(&player, column(c, b, "player").data + 4 * i, 4);
			if (h.game != g || h.turn != turn || h.player != player)
				bad++;
			size_t off = 0;
			for (int f = 0; f < 3; f++) {
				struct col fc = column(c, b, fields[f]);
				if (pattern_check(pattern_base(p, s),
						  fc.data + fc.size * i, off,
						  fc.size))
					bad++;
				off += fc.size;
			}
		}
		expbus_release(c, b);
	}
	printf("{\"records\": %" PRIu64 ", \"duplicates\": %" PRIu64
	       ", \"gaps\": %" PRIu64 ", \"bad\": %" PRIu64
	       ", \"dropped\": %" PRIu64 ", \"error\": %d, \"next\": [",
	       records, dups, gaps, bad, expbus_consumer_dropped(c),
	       err < 0 && err != -ETIMEDOUT ? err : 0);
	for (unsigned p = 0; p < producers; p++)
		printf("%s%" PRIu64, p ? ", " : "", next[p]);
	printf("], \"sources\": [");
	for (unsigned p = 0; p < producers; p++)
		printf("%s%u", p ? ", " : "", sources[p]);
	printf("]}\n");
	expbus_consumer_close(c);
	expbus_free(bus);
	return 0;
}
