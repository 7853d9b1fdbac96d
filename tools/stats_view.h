/* stats_view.h — a copy of the broker's stats segment in plain structs,
 * taken at one moment, and the rates between two copies: what ls, stat
 * and top print.
 *
 * The broker publishes its counters once per pass inside a window of the
 * segment's sequence counter; a view is copied until it saw no window
 * open or close meanwhile, so it is a consistent snapshot. Derived values
 * that subtract counters (occupancy, lag) are still clamped to what is
 * possible. */
#ifndef EXPBUS_TOOLS_STATS_VIEW_H
#define EXPBUS_TOOLS_STATS_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

enum sv_state { SV_ATTACHED = 1, SV_DRAINING = 2 };

struct sv_stream {
	uint32_t id;
	char name[NAME_MAX_LEN];
	char schema[STATS_SCHEMA_TEXT];
	uint64_t schema_hash;
	uint64_t records_in, unclaimed;
	double in_per_s, unclaimed_per_s; /* 0 until stats_view_rates */
};

struct sv_producer {
	uint32_t id, stream_id, pid, uid, capacity, slot_size;
	enum sv_state state;
	uint64_t records_in, head, tail, stalls, last_game, games_seen;
	uint64_t occupancy; /* tail - head, in [0, capacity] */
	double fill;	    /* occupancy / capacity */
	double in_per_s;
};

struct sv_sub {
	uint32_t id, stream_id, pid, uid, policy, batch_size, max_delay_us;
	uint32_t capacity, min_turn, n_games, n_players;
	char group[NAME_MAX_LEN];
	uint64_t delivered, delivered_bytes, filtered;
	uint64_t dropped[DROP_REASONS];
	uint64_t batches[4]; /* by enum expbus_flush_reason, [0] unused */
	uint64_t published, released, released_records, open_records;
	uint64_t last_publish_ns, oldest_record_ns, oldest_unreleased_ns;
	/* Records routed to it and not yet released: in published batches
	 * it holds, plus the open batch. */
	uint64_t lag_records;
	uint64_t lag_ns; /* age of the oldest of those, 0 if none */
	double out_per_s, bytes_per_s, drops_per_s, filtered_per_s;
	double batches_per_s[4];
	double avg_fill; /* of batches published in the interval, 0..1 */
};

struct stats_view {
	uint64_t taken_ns; /* CLOCK_MONOTONIC, the broker's clock too */
	double interval_s; /* since the previous view, 0 if none */
	uint32_t broker_pid;
	uint64_t start_ns, broker_now_ns, loops, sleeps, unclaimed, violations;
	double unclaimed_per_s;
	struct sv_stream *streams;
	struct sv_producer *producers;
	struct sv_sub *subs;
	uint32_t n_streams, n_producers, n_subs;
};

/* The segment the broker at socket serves, mapped read-only. */
struct stats_source {
	struct expbus *bus;
	const struct stats_segment *seg;
	size_t size;
	char socket[108];
};

/* Connects to the broker once to receive the segment. On failure prints
 * "expbus CMD: why" (naming the socket; nothing if cmd is NULL) and
 * returns the exit status to use: EXIT_USAGE or EXIT_BROKER; 0 on
 * success. */
int stats_source_open(const char *cmd, const char *socket,
		      struct stats_source *src);
/* As stats_source_open, silently: 0 or negative errno. */
int stats_source_reopen(struct stats_source *src);
void stats_source_close(struct stats_source *src);

/* Copies the segment's entries in use into v, sorted by id (arrays are
 * allocated on first use and reused). 0 or -ENOMEM. */
int stats_view_take(const struct stats_segment *seg, struct stats_view *v);
void stats_view_free(struct stats_view *v);

/* One snapshot for a one-shot command: open, take, close. On failure
 * prints "expbus CMD: why" and returns the exit status to use; 0 on
 * success. */
int stats_view_snapshot(const char *cmd, const char *socket,
			struct stats_view *v);

/* Fills the rates of cur from the counters' growth since prev, matching
 * entries by id; those new in cur get 0. */
void stats_view_rates(const struct stats_view *prev, struct stats_view *cur);

/* The stream's name, or "?" when it is gone. */
const char *stats_view_stream_name(const struct stats_view *v, uint32_t id);

const char *sv_policy_name(uint32_t policy);
const char *sv_state_name(enum sv_state state);

#endif
