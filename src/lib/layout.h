/* layout.h — the byte layout of every shared-memory segment, as mapped by
 * the broker, libexpbus, the Python reader and the CLI (docs/protocol.md).
 * Everything is little-endian, fixed-size, and checked by _Static_assert. */
#ifndef EXPBUS_LAYOUT_H
#define EXPBUS_LAYOUT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "expbus.h"

/* 2: producer_id is the ring's for life, kept across brokers (issue 9);
 * the stats segment is published under a sequence counter. */
#define LAYOUT_VERSION 2u

#define MAGIC_PRODUCER_RING 0x52425845u /* "EXBR" */
#define MAGIC_BATCH_RING    0x42425845u /* "EXBB" */
#define MAGIC_RELEASE_PAGE  0x4c425845u /* "EXBL" */
#define MAGIC_STATS	    0x53425845u /* "EXBS" */
#define MAGIC_READY_SET	    0x59425845u /* "EXBY" */

#define CACHE_LINE   64
#define NAME_MAX_LEN 64 /* stream, group and field names, with the NUL */

/* One side of a ring: the counter its owner advances and the flag its owner
 * raises before sleeping. Each side sits alone on its cache line so that
 * the two processes never write the same line. */
struct ring_side {
	alignas(CACHE_LINE) _Atomic uint64_t pos;
	_Atomic uint32_t sleeping;
	uint32_t pad0;
	uint8_t pad[CACHE_LINE - 16];
};
_Static_assert(sizeof(struct ring_side) == CACHE_LINE, "ring_side");

/* What every segment starts with. */
struct seg_header {
	uint32_t magic;
	uint16_t version;
	uint16_t header_size; /* bytes before the first data byte */
	uint64_t size;	      /* of the whole segment, as fallocated */
};
_Static_assert(sizeof(struct seg_header) == 16, "seg_header");

/* Producer ring: written by its producer (slots, prod side) and the broker
 * (cons side). Slots start at data_offset. */
struct producer_ring {
	struct seg_header seg;
	uint32_t capacity;  /* slots, a power of two */
	uint32_t slot_size; /* bytes: record header + data, multiple of 8 */
	uint32_t data_size; /* bytes of fields after the record header */
	/* Written once by the broker that created the ring and kept by every
	 * broker that adopts it after a restart: records are (producer_id,
	 * seq) for the ring's whole life (docs/protocol.md, Recovery). */
	uint32_t producer_id;
	uint64_t schema_hash;
	uint64_t data_offset;
	uint8_t pad0[CACHE_LINE - 48];
	struct ring_side prod; /* tail: records committed */
	struct ring_side cons; /* head: records taken by the broker */
	/* Written by the broker only: the subscriptions of the ring's
	 * stream (counting those a restarted broker still waits for), so
	 * that the broker that adopts the ring after a restart holds the
	 * stream until as many subscribers are back (docs/protocol.md,
	 * Recovery). Was padding (0) before: a broker that does not write
	 * it says "none known". */
	_Atomic uint32_t subscriptions;
	uint8_t pad1[CACHE_LINE - 4];
};
_Static_assert(sizeof(struct producer_ring) == 4 * CACHE_LINE, "producer_ring");
_Static_assert(offsetof(struct producer_ring, prod) == 64, "prod side");
_Static_assert(offsetof(struct producer_ring, cons) == 128, "cons side");
#define PRODUCER_RING_DATA_OFFSET 256u

/* A column's place in every batch slot. */
struct column_desc {
	char name[NAME_MAX_LEN];
	uint32_t dtype; /* enum expbus_dtype */
	uint32_t ndim;
	uint32_t shape[EXPBUS_MAX_DIMS];
	uint32_t elem_size; /* bytes per record */
	uint32_t pad;
	uint64_t offset; /* from the start of the slot; multiple of 64 */
};
_Static_assert(sizeof(struct column_desc) == 120, "column_desc");

#define HEADER_COLUMNS 7 /* seq timestamp source game player turn flags */
#define MAX_FIELDS     64
#define MAX_COLUMNS    (HEADER_COLUMNS + MAX_FIELDS)

/* Batch ring: written by the broker only; the subscriber maps it read-only.
 * The consumer side lives in the subscriber's release page. */
struct batch_ring {
	struct seg_header seg;
	uint32_t capacity;    /* batch slots, a power of two */
	uint32_t batch_size;  /* records per batch at most */
	uint64_t slot_size;   /* bytes, multiple of 64 */
	uint64_t data_offset; /* first slot; multiple of 4096 */
	uint64_t schema_hash;
	uint32_t subscription_id;
	uint32_t ncolumns;
	uint8_t pad0[CACHE_LINE - 56];
	struct ring_side prod; /* tail: batches published */
	struct column_desc columns[MAX_COLUMNS];
	/* Records dropped for this subscriber so far (lossy policy), kept
	 * current by the broker even while no batch is published. */
	alignas(CACHE_LINE) _Atomic uint64_t dropped;
};
_Static_assert(offsetof(struct batch_ring, prod) == 64, "batch prod side");
_Static_assert(sizeof(struct expbus_batch) == 64, "batch header");
_Static_assert(offsetof(struct batch_ring, columns) == 128, "columns");
_Static_assert(offsetof(struct batch_ring, dropped) == 8704, "dropped");

/* Release page: written by the subscriber only. */
struct release_page {
	struct seg_header seg;
	uint8_t pad0[CACHE_LINE - sizeof(struct seg_header)];
	struct ring_side cons; /* head: batches released */
};
_Static_assert(offsetof(struct release_page, cons) == 64, "release cons");
#define RELEASE_PAGE_SIZE 4096u

/* ------------------------------------------------------------------------
 * Stats segment: written by the broker only, read by anyone allowed.
 * Counters are 64-bit, only grow, and are stored with relaxed atomics,
 * once per pass of the broker, inside a window of stats_segment.seq: a
 * reader that honours seq gets a consistent snapshot.
 * ------------------------------------------------------------------------ */

#define STATS_MAX_STREAMS   64
#define STATS_MAX_PRODUCERS 2048
#define STATS_MAX_SUBS	    256
#define STATS_SCHEMA_TEXT   1024

enum drop_reason {
	DROP_RING_FULL = 0,	  /* lossy subscriber's batch ring was full */
	DROP_SUBSCRIBER_GONE = 1, /* partial batch of a subscriber that died */
	DROP_REASONS = 4,
};

struct stats_stream {
	uint32_t in_use;
	uint32_t id;
	char name[NAME_MAX_LEN];
	uint64_t schema_hash;
	uint32_t data_size;
	uint32_t pad;
	_Atomic uint64_t records_in;
	_Atomic uint64_t unclaimed; /* records no subscriber wanted */
	char schema[STATS_SCHEMA_TEXT];
};

struct stats_producer {
	uint32_t in_use; /* 0 free, 1 attached, 2 dead, draining */
	uint32_t id;
	uint32_t stream_id;
	uint32_t pid;
	uint32_t uid;
	uint32_t capacity;
	uint32_t slot_size;
	uint32_t pad;
	_Atomic uint64_t records_in; /* taken from the ring */
	_Atomic uint64_t tail_seen;  /* producer's tail as last read */
	_Atomic uint64_t head;	     /* broker's head */
	_Atomic uint64_t stalls;     /* times a lossless subscriber held it */
	_Atomic uint64_t last_game;
	_Atomic uint64_t games_seen; /* distinct-ish: changes of game id */
};

struct stats_sub {
	uint32_t in_use;
	uint32_t id;
	uint32_t stream_id;
	uint32_t pid;
	uint32_t uid;
	uint32_t policy;
	uint32_t batch_size;
	uint32_t max_delay_us;
	uint32_t capacity;
	uint32_t min_turn;
	uint32_t n_games;
	uint32_t n_players;
	char group[NAME_MAX_LEN];
	_Atomic uint64_t delivered; /* records in published batches */
	_Atomic uint64_t delivered_bytes;
	_Atomic uint64_t dropped[DROP_REASONS];
	_Atomic uint64_t
	    batches[4]; /* by enum expbus_flush_reason, [0] unused */
	_Atomic uint64_t published; /* batch ring tail */
	_Atomic uint64_t released;  /* batch ring head */
	_Atomic uint64_t filtered;  /* records the filter turned away */
	_Atomic uint64_t last_publish_ns;
	_Atomic uint64_t oldest_record_ns; /* of the open batch, 0 if none */
	/* Lag, as `expbus top` shows it: records routed to the subscription
	 * and not yet released are delivered + open_records -
	 * released_records; oldest_unreleased_ns is when the oldest of them
	 * entered a batch (CLOCK_MONOTONIC, 0 if none). Released counts are
	 * as of the broker's last look at the release page (at least every
	 * 100 ms). */
	_Atomic uint64_t released_records; /* records in released batches */
	_Atomic uint64_t open_records;	   /* records in the open batch */
	_Atomic uint64_t oldest_unreleased_ns;
};
_Static_assert(sizeof(struct stats_sub) == 256, "stats_sub");
_Static_assert(sizeof(struct stats_producer) == 80, "stats_producer");

struct stats_segment {
	struct seg_header seg;
	uint32_t max_streams;
	uint32_t max_producers;
	uint32_t max_subs;
	uint32_t broker_pid;
	uint64_t start_ns;
	_Atomic uint64_t now_ns; /* refreshed by the broker loop */
	_Atomic uint64_t loops;
	_Atomic uint64_t sleeps;
	_Atomic uint64_t unclaimed;
	_Atomic uint64_t violations;  /* peers disconnected for the protocol */
	_Atomic uint64_t ring_visits; /* rings looked at by the data path */
	/* Sequence counter around every update (a seqlock, like the perf
	 * mmap page): odd while the broker writes. A reader loads it
	 * (acquire), copies what it wants, fences (acquire) and loads it
	 * again; equal and even: the copy is consistent. */
	_Atomic uint64_t seq;
	uint8_t pad[CACHE_LINE * 2 - 96];
	struct stats_stream streams[STATS_MAX_STREAMS];
	struct stats_producer producers[STATS_MAX_PRODUCERS];
	struct stats_sub subs[STATS_MAX_SUBS];
};
_Static_assert(offsetof(struct stats_segment, streams) == 128, "stats");

/* Bytes to round n up to a multiple of a (a power of two). */
static inline uint64_t align_up(uint64_t n, uint64_t a)
{
	return (n + a - 1) & ~(a - 1);
}

/* ------------------------------------------------------------------------
 * Ready set: one page per uid of the broker's producers, written by those
 * producers (a bit each, set) and the broker (bits cleared as it takes
 * them). A producer that asked for one (ATTACH_READY) and finds its ring
 * parked with RING_READY marks its bit when it commits, instead of
 * writing the broker's eventfd: no syscall. The broker reads the words
 * once a tick and looks only at the rings whose bits were set. A bit is a
 * hint: a bogus one costs the broker a look at that ring.
 * ------------------------------------------------------------------------ */

#define READY_BITS STATS_MAX_PRODUCERS
struct ready_set {
	struct seg_header seg;
	uint32_t bits; /* READY_BITS */
	uint8_t pad0[CACHE_LINE - sizeof(struct seg_header) - 4];
	_Atomic uint64_t words[READY_BITS / 64];
};
_Static_assert(offsetof(struct ready_set, words) == 64, "ready words");
#define READY_SET_SIZE 4096u
_Static_assert(sizeof(struct ready_set) <= READY_SET_SIZE, "ready set");

#endif
