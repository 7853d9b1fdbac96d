/* broker.h — the state of expbusd, in one struct passed down, and the
 * objects it owns: connections, streams, producers, subscriptions, groups. */
#ifndef EXPBUSD_BROKER_H
#define EXPBUSD_BROKER_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "layout.h"
#include "log.h"
#include "proto.h"
#include "ring.h"
#include "schema.h"

#define BROKER_MAX_CONNS 8192
#define BROKER_CHUNK	 256 /* records taken from one ring before the next */

struct broker;
struct stream;

enum conn_kind { CONN_NEW, CONN_PRODUCER, CONN_SUBSCRIBER, CONN_STATS };

/* One accepted control connection; it carries at most one role. */
struct conn {
	struct conn *next;
	int fd;
	enum conn_kind kind;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	uint64_t accepted_ns;
	bool poll_armed;
	bool closed; /* fd closed; freed once its poll completion is back */
	struct producer *producer;
	struct subscription *sub;
};

struct producer {
	struct conn *conn; /* NULL once the producer has hung up */
	struct stream *stream;
	uint32_t id;
	int space_fd; /* written when the producer sleeps on a full ring */
	struct producer_ring *seg;
	size_t seg_size;
	struct ring ring; /* broker is the consumer */
	struct stats_producer *st;
	bool dead;   /* hung up: drain what it committed, then free */
	bool broken; /* broke the protocol: free at once */
	bool
	    stalled; /* a lossless subscriber had no room for its next record */
	uint32_t last_game;
};

struct filter {
	uint32_t *games; /* sorted; NULL: all */
	uint32_t n_games;
	uint32_t *players; /* sorted; NULL: all */
	uint32_t n_players;
	uint32_t min_turn;
};

struct subscription {
	struct conn *conn;
	struct stream *stream;
	struct consumer_group *group;
	uint32_t id;
	uint32_t index; /* in the group's members, when in a group */
	struct filter filter;
	uint32_t batch_size;
	uint64_t max_delay_ns;
	enum expbus_policy policy;
	uint32_t flags;
	int event_fd; /* written when the subscriber sleeps */
	struct batch_ring *seg;
	size_t seg_size;
	struct release_page *rel;
	struct ring ring; /* broker is the producer */
	uint8_t *open;	  /* batch slot being filled, NULL if none */
	uint32_t open_count;
	uint64_t open_since_ns;
	uint64_t batch_seq;
	uint64_t dropped_total;
	uint64_t col_offset[MAX_COLUMNS];
	uint32_t col_size[MAX_COLUMNS];
	uint32_t ncolumns;
	uint32_t record_bytes; /* sum of col_size: one record in a batch */
	struct stats_sub *st;
	/* Per batch slot, what its last published batch held, for the lag
	 * in the stats: noted is the batch position counted up to. */
	struct batch_note {
		uint64_t since_ns; /* when its first record entered it */
		uint64_t count;
	} * notes;
	uint64_t noted;
	bool dead;    /* hung up or broke the protocol: route nothing to it */
	bool blocked; /* lossless and its batch ring was full */
};

/* Members share records; each game sticks to one member while it lives. */
struct consumer_group {
	char name[NAME_MAX_LEN];
	struct stream *stream;
	struct subscription **members;
	uint32_t n_members, cap_members;
	/* game id -> member index + 1 (0: empty), open addressing */
	uint32_t *map_keys;
	uint32_t *map_vals;
	uint32_t map_cap, map_used;
	uint32_t next_member; /* round robin for new games */
	/* A dead member's unreleased records, re-routed before new ones. */
	struct subscription **orphans;
	uint32_t n_orphans;
	uint64_t orphan_pos;   /* batch position in orphans[0] */
	uint32_t orphan_index; /* record within that batch */
};

struct stream {
	char name[NAME_MAX_LEN];
	uint32_t id;
	struct schema schema;
	char canonical[SCHEMA_TEXT_MAX];
	struct producer **producers;
	uint32_t n_producers, cap_producers;
	uint32_t rr;		    /* producer to start the next pass with */
	struct subscription **subs; /* direct subscriptions (no group) */
	uint32_t n_subs, cap_subs;
	struct consumer_group **groups;
	uint32_t n_groups, cap_groups;
	struct stats_stream *st;
	bool stalled; /* a group's orphaned records are waiting for room */
	/* After a producer resumed its ring with a restarted broker: until
	 * then, without subscribers, its records wait rather than go
	 * unclaimed. */
	uint64_t hold_until_ns;
};

struct broker_config {
	const char *socket_path;
	bool has_gid; /* a group besides the owner may attach */
	gid_t gid;
	uint64_t ring_bytes;  /* default producer ring size */
	uint64_t max_segment; /* largest ring or batch ring */
	uint32_t default_batch;
	uint32_t default_delay_us;
	int log_level;
	/* Socket activation (activation.c): listen on activated_fd, which
	 * systemd made and owns, instead of binding socket_path. */
	bool activated;
	int activated_fd;
};

struct broker {
	struct broker_config cfg;
	struct log log;
	struct io_uring uring;
	int listen_fd;
	int wake_fd; /* eventfd every peer writes to wake us */
	int signal_fd;
	uint64_t wake_buf;
	uint8_t signal_buf[128];
	bool stopping;
	struct conn *conns;
	uint32_t n_conns;
	struct stream *streams[STATS_MAX_STREAMS];
	uint32_t next_producer_id;
	uint32_t next_sub_id;
	struct stats_segment *stats;
	size_t stats_size;
	int stats_fd;
	uint64_t now_ns;
	bool uring_dirty; /* SQEs queued but not submitted */
};

/* The broker is the only writer of the stats segment: a relaxed load and
 * store is enough (no read-modify-write needed), and readers only need
 * each counter whole, which 64-bit atomics give. */
static inline void stat_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c,
			      atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline void stat_set(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, v, memory_order_relaxed);
}

/* Counts one record dropped for a lossy subscriber with a full ring. */
static inline void subscription_dropped(struct subscription *sub)
{
	sub->dropped_total++;
	stat_add(&sub->st->dropped[DROP_RING_FULL], 1);
	/* Relaxed: a counter the subscriber reads on its own. */
	atomic_store_explicit(&sub->seg->dropped, sub->dropped_total,
			      memory_order_relaxed);
}

/* loop.c */
uint64_t broker_now(void);
int broker_open(struct broker *b);
int broker_run(struct broker *b);
void broker_close(struct broker *b);
void conn_close(struct broker *b, struct conn *c);

/* peers.c: control messages, hang-ups and protocol violations. */
void peer_message(struct broker *b, struct conn *c);
void peer_hangup(struct broker *b, struct conn *c);
void peer_violation(struct broker *b, struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void producer_free(struct broker *b, struct producer *p);
/* Frees producers that are drained or broken, disconnects subscriptions
 * found breaking the protocol; called between passes of the data path. */
void peers_reap(struct broker *b);

/* segments.c: creating and laying out shared segments. */
int segment_producer_ring(struct broker *b, struct stream *s, uint32_t capacity,
			  struct producer *p, int *ring_fd);
int segment_batch_ring(struct broker *b, struct subscription *sub,
		       uint32_t capacity, int *batch_fd, int *rel_fd, char *err,
		       size_t errlen);
int segment_stats(struct broker *b);

/* stream.c */
struct stream *stream_find(struct broker *b, const char *name);
struct stream *stream_create(struct broker *b, const char *name,
			     const struct schema *schema);
int stream_add_producer(struct stream *s, struct producer *p);
void stream_remove_producer(struct stream *s, struct producer *p);
int stream_add_subscription(struct broker *b, struct stream *s,
			    struct subscription *sub, const char *group);
/* Calls fn on every subscription of every stream, direct or in a group;
 * fn must not add or remove subscriptions. */
void stream_each_subscription(struct broker *b,
			      void (*fn)(struct subscription *, void *),
			      void *arg);
/* Frees groups left without members (and their orphaned records). */
void stream_prune_groups(struct broker *b, struct stream *s);
bool stream_remove_subscription(struct broker *b, struct stream *s,
				struct subscription *sub);

/* group.c */
struct subscription *group_route(struct consumer_group *g, uint32_t game);
bool group_forget_member(struct consumer_group *g, struct subscription *sub);
int group_add_member(struct consumer_group *g, struct subscription *sub);
bool group_drain_orphans(struct broker *b, struct consumer_group *g);

/* merge.c: moving records from producer rings into batches. */
int merge_pump(struct broker *b);
uint64_t merge_flush_due(struct broker *b, uint64_t now, bool all);
bool merge_has_room(struct broker *b, struct subscription *sub);
/* Reads and validates the release counter; -EPROTO marks sub dead. */
int merge_check_release(struct broker *b, struct subscription *sub);
/* Refreshes what the stats segment shows of every producer ring's tail,
 * even a ring the broker is not taking from (stalled): housekeeping. */
void merge_refresh_tails(struct broker *b);
void merge_deliver(struct broker *b, struct subscription *sub,
		   const struct expbus_record_header *hdr, uint64_t seq,
		   uint32_t source, const uint8_t *data);
void merge_publish(struct broker *b, struct subscription *sub,
		   enum expbus_flush_reason why);
bool filter_match(const struct filter *f, const struct expbus_record_header *h);
void subscription_free(struct broker *b, struct subscription *sub);

#endif
