/* broker.h — the types of expbusd: the state in one struct passed down,
 * and the objects it owns (connections, streams, producers, subscriptions,
 * groups). Types only: each object's functions are declared in the header
 * of the file that owns it (conn.h, producer.h, subscription.h, ...). */
#ifndef EXPBUSD_BROKER_H
#define EXPBUSD_BROKER_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "filter.h"
#include "budget.h"
#include "conn_limits.h"
#include "layout.h"
#include "log.h"
#include "proto.h"
#include "ratelimit.h"
#include "ring.h"
#include "schema.h"

#define BROKER_MAX_CONNS 8192
#define BROKER_CHUNK	 256 /* records taken from one ring before the next */

struct broker;
struct stream;
struct ready;

enum doorbell_kind { DOORBELL_PRODUCER, DOORBELL_SUBSCRIPTION };

/* A peer's own wakeup eventfd (doorbell.c). */
struct doorbell {
	struct doorbell *next; /* in broker.doorbells_closing */
	int fd;
	enum doorbell_kind kind;
	void *owner; /* NULL once closed */
	bool armed;  /* a poll is in flight */
};

#define NOT_ACTIVE UINT32_MAX
#define NOT_QUEUED UINT32_MAX

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
	struct doorbell
	    *doorbell;	    /* the producer rings it: news in a parked ring */
	uint32_t active_at; /* index in broker.active, or NOT_ACTIVE (parked) */
	uint64_t news_ns;   /* when records were last taken */
	uint32_t watching;  /* its flag, RING_WATCH_* (coalescing), or 0 */
	/* Its bit in its uid's ready set (ready.c), if it asked for one
	 * (ATTACH_READY); NULL if not. */
	struct ready *ready;
	uint32_t ready_bit;
	/* Parked with RING_READY (producer_ready_park): not active, its
	 * commits mark its bit; in broker.ready_parked, oldest first. */
	bool ready_parked;
	uint64_t parked_ns;
	struct producer *parked_prev, *parked_next;
	struct producer_ring *seg;
	size_t seg_size;
	/* The broker is the consumer. ring.pos is the shared head: what the
	 * game may overwrite. taken (>= ring.pos) is how far the broker has
	 * read and routed; the records between are held by open batches or
	 * wait for the next hold_release_heads (hold.c). */
	struct ring ring;
	uint64_t taken;
	uint16_t *holds; /* per slot: open batches holding its record */
	uint64_t n_held; /* sum of holds */
	bool queued;	 /* in broker.moved: its head may move */
	/* Its counters, kept here and published by stats_publish once per
	 * pass: st points at mine, pub at its slot in the stats segment. */
	struct stats_producer *st, *pub, mine;
	bool dirty;  /* in broker.dirty_producers */
	bool dead;   /* hung up: drain what it committed, then free */
	bool broken; /* broke the protocol: free at once */
	bool
	    stalled; /* a lossless subscriber had no room for its next record */
	uint32_t last_game;
	/* The ring's memfd: a ring handed over again while it is still this
	 * producer's is refused. */
	dev_t ring_dev;
	ino_t ring_ino;
	uint64_t budget_bytes; /* counted against the shm budget */
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
	int event_fd;		   /* written when the subscriber sleeps */
	struct doorbell *doorbell; /* the subscriber rings it: a release */
	struct batch_ring *seg;
	size_t seg_size;
	struct release_page *rel;
	struct ring ring; /* broker is the producer */
	uint8_t *open;	  /* batch slot being filled, NULL if none */
	/* Per record of the open batch, the producer whose head it holds
	 * (NULL: none, e.g. a record re-routed from a published batch). */
	struct producer **open_src;
	uint32_t heap_at; /* in broker.heap while open, else NOT_QUEUED */
	bool reserved;	  /* holds a place in broker.heap's capacity */
	uint32_t open_count;
	uint64_t open_since_ns;
	uint64_t batch_seq;
	uint64_t dropped_total;
	uint64_t col_offset[MAX_COLUMNS];
	uint32_t col_size[MAX_COLUMNS];
	uint32_t ncolumns;
	uint32_t record_bytes; /* sum of col_size: one record in a batch */
	/* The copy plan, made at subscribe time: per schema field, where it
	 * is in a record's data and where its column starts in a batch. */
	struct copy_op {
		uint64_t dst;  /* column offset in the batch slot */
		uint32_t src;  /* offset in the record's data */
		uint32_t size; /* bytes per record */
	} plan[MAX_FIELDS];
	uint32_t n_plan;
	struct stats_sub *st, *pub, mine; /* as in struct producer */
	bool dirty;
	/* Per batch slot, what its last published batch held, for the lag
	 * in the stats: noted is the batch position counted up to. */
	struct batch_note {
		uint64_t since_ns; /* when its first record entered it */
		uint64_t count;
	} * notes;
	uint64_t noted;
	bool dead;    /* hung up or broke the protocol: route nothing to it */
	bool blocked; /* lossless and its batch ring was full */
	bool wake_pending;     /* in broker.wake_subs (wake.c) */
	uint64_t budget_bytes; /* counted against the shm budget */
};

/* Members share records; each game sticks to one member while it lives. */
struct consumer_group {
	char name[NAME_MAX_LEN];
	struct stream *stream;
	struct subscription **members;
	uint32_t n_members, cap_members;
	/* game id -> member index + 1 (0: empty), open addressing; when
	 * the game last had a record. A game is forgotten at its DONE or
	 * TRUNCATED record, or after --group-idle of silence. */
	uint32_t *map_keys;
	uint32_t *map_vals;
	uint64_t *map_last;
	uint32_t map_cap, map_used;
	uint32_t next_member; /* ties among the least loaded: round robin */
	/* The last game looked up (runs of one game's records). */
	struct subscription *cached_member; /* NULL: nothing cached */
	uint32_t cached_game, cached_slot;
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
	struct stats_stream *st, *pub, mine; /* as in struct producer */
	bool dirty, published; /* published: its names are in the segment */
	bool stalled; /* a group's orphaned records are waiting for room */
	/* After a producer resumed its ring with a restarted broker, the
	 * stream's records wait (until hold_until_ns at most) for the
	 * subscriptions the previous broker had: subs_before, the most any
	 * resumed ring said (ring header `subscriptions`), of which
	 * subs_back subscribed again saying they resume. With none known,
	 * the first subscription ends the wait. 0: no wait. */
	uint64_t hold_until_ns;
	uint32_t subs_before, subs_back;
	/* Since when it has had no producer and no subscriber (0: in use);
	 * freed after --stream-linger-ms. */
	uint64_t unused_since_ns;
};

struct broker_config {
	const char *socket_path;
	bool has_gid; /* a group besides the owner may attach */
	gid_t gid;
	uint64_t ring_bytes;  /* default producer ring size */
	uint64_t max_segment; /* largest ring or batch ring */
	uint32_t default_batch;
	uint32_t default_delay_us;
	uint64_t group_idle_ns; /* forget a silent game after this; 0: never */
	int log_level;
	/* Socket activation (activation.c): listen on activated_fd, which
	 * systemd made and owns, instead of binding socket_path. */
	bool activated;
	int activated_fd;
	uint64_t shm_budget;	    /* total bytes of rings and pages */
	uint64_t idle_timeout_ns;   /* for a connection without a request */
	uint32_t max_conns_per_uid; /* control connections of one uid */
	uint64_t stream_linger_ns;  /* an unused stream lives this long */
	uint64_t resume_hold_ns;    /* longest wait for subscribers after a
				       restart (stream.c) */
	/* Coalesce wakeups (coalesce.c) when every subscription allows this
	 * much delay; 0: never. */
	uint64_t coalesce_min_ns;
	/* Going idle, look again this long before sleeping (loop.c); 0:
	 * never (a program that embeds the broker gets that). */
	uint64_t spin_ns;
};

struct broker {
	struct broker_config cfg;
	struct log log;
	struct io_uring uring;
	int listen_fd;
	int signal_fd;
	uint8_t signal_buf[128];
	bool stopping;
	struct conn *conns;
	uint32_t n_conns;
	uint32_t n_conns_closed; /* closed, waiting for conn_sweep */
	struct stream *streams[STATS_MAX_STREAMS];
	/* Producers whose rings may have news, visited by every pass; the
	 * others are parked: their doorbell brings them back. */
	struct producer **active;
	uint32_t n_active, cap_active;
	uint32_t n_producers; /* all of them, active or parked */
	/* Coalescing, a ring empty since the last tick is parked with
	 * RING_READY (oldest first here): the pass takes the ready sets'
	 * marked bits instead of visiting it; after COALESCE_PARK_TICKS it
	 * is parked for good (flag 1, its doorbell). */
	struct producer *ready_parked_head, *ready_parked_tail;
	struct ready *ready_sets; /* one per uid (ready.c) */
	/* Producers whose head may move at the next hold_release_heads;
	 * room for every producer (grown with active). */
	struct producer **moved;
	uint32_t n_moved;
	/* The broker's own counters and the objects whose counters changed
	 * since the last stats_publish. */
	struct broker_counters {
		uint64_t loops, sleeps, unclaimed, violations, ring_visits;
		uint64_t ready_marks; /* bits taken from the ready sets */
	} count;
	struct producer *dirty_producers[STATS_MAX_PRODUCERS];
	struct subscription *dirty_subs[STATS_MAX_SUBS];
	struct stream *dirty_streams[STATS_MAX_STREAMS];
	/* Subscribers to wake at the end of this pass (wake.c). */
	struct subscription *wake_subs[STATS_MAX_SUBS];
	uint32_t n_wake_subs;
	uint32_t n_dirty_producers, n_dirty_subs, n_dirty_streams;
	struct doorbell *doorbells_closing;
	/* Subscriptions with an open batch, by flush deadline (deadlines.c) */
	struct subscription **heap;
	uint32_t n_heap, cap_heap, n_heap_reserved;
	bool reap_pending; /* a producer or subscription may need reaping */
	uint32_t next_sub_id;
	struct stats_segment *stats;
	size_t stats_size;
	int stats_fd;
	uint64_t now_ns;
	/* Coalescing (coalesce.c): the tick of the quiet broker's timer, 0
	 * when it wakes on every commit; lag_ns, how long a record taken now
	 * may have waited in its ring for that timer. */
	uint64_t tick_ns, lag_ns;
	bool coalescing; /* the loop's last choice: sleep to the tick */
	bool more;	 /* the last pass left records it saw in a ring */
	/* The last batch published woke its subscriber (it slept on its
	 * eventfd rather than polling): loop.c spins longer then. */
	bool subscriber_asleep;
	bool uring_dirty; /* SQEs queued but not submitted */
	struct shm_budget budget;
	struct conn_limits conn_limits;
	/* accept: re-armed from accept_resume_ns after running out of fds */
	bool accept_armed;
	uint64_t accept_resume_ns;
	uint64_t accept_backoff_ns;
	struct ratelimit accept_log, refuse_log, idle_log;
	/* The socket the broker bound: only that is unlinked at exit. */
	dev_t sock_dev;
	ino_t sock_ino;
};

#endif
