/* expbus.h — move reinforcement-learning experiences from game processes to
 * trainers on the same host through shared memory. This header is the manual:
 * read it top to bottom (context, producer, consumer, inspection).
 *
 * Conventions: every function that can fail returns a negative errno value
 * (-EAGAIN, -ETIMEDOUT, -EPROTO, ...); when the broker refused a request, or
 * the failure needs more words than an errno, expbus_last_error() on the
 * context says why in a sentence a person can act on. Objects are not
 * thread-safe: use one producer or consumer per thread. Destructors accept
 * NULL and return NULL. */
#ifndef EXPBUS_H
#define EXPBUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(EXPBUS_BUILDING)
#define EXPBUS_API __attribute__((visibility("default")))
#else
#define EXPBUS_API
#endif

#define EXPBUS_VERSION_MAJOR 0
#define EXPBUS_VERSION_MINOR 2

/* ------------------------------------------------------------------------
 * Schemas and records
 * ------------------------------------------------------------------------ */

/* Element types of a field. Text form in a schema: the lower-case name
 * after EXPBUS_DTYPE_ (bool, i8, u8, i16, u16, i32, u32, i64, u64, f16,
 * f32, f64). */
enum expbus_dtype {
	EXPBUS_DTYPE_BOOL = 1,
	EXPBUS_DTYPE_I8,
	EXPBUS_DTYPE_U8,
	EXPBUS_DTYPE_I16,
	EXPBUS_DTYPE_U16,
	EXPBUS_DTYPE_I32,
	EXPBUS_DTYPE_U32,
	EXPBUS_DTYPE_I64,
	EXPBUS_DTYPE_U64,
	EXPBUS_DTYPE_F16,
	EXPBUS_DTYPE_F32,
	EXPBUS_DTYPE_F64,
};

/* The size in bytes of one element of dtype, or 0 for an unknown dtype;
 * expbus_dtype_name() gives its schema spelling, or NULL. */
EXPBUS_API size_t expbus_dtype_size(enum expbus_dtype dtype);
EXPBUS_API const char *expbus_dtype_name(enum expbus_dtype dtype);

/* Record flags (struct expbus_record_header.flags); bits 16-31 are free
 * for the application. */
#define EXPBUS_RECORD_DONE	(1u << 0)
#define EXPBUS_RECORD_TRUNCATED (1u << 1)

/* Every record starts with this header; the stream's fields follow it, in
 * schema order, each aligned to its element size. The producer fills game,
 * player, turn and flags; seq and timestamp_ns are written on commit (seq:
 * the producer's record number from 0; timestamp_ns: CLOCK_MONOTONIC). */
struct expbus_record_header {
	uint64_t seq;
	uint64_t timestamp_ns;
	uint32_t game;
	uint32_t player;
	uint32_t turn;
	uint32_t flags;
};

/* ------------------------------------------------------------------------
 * Context
 * ------------------------------------------------------------------------ */

struct expbus;

/* Creates a context for the broker listening at socket_path (NULL: the
 * default, see expbus_default_socket). Nothing is connected yet: each
 * producer or consumer opens its own connection. Returns 0 or -ENOMEM. */
EXPBUS_API int expbus_new(const char *socket_path, struct expbus **ret);
EXPBUS_API struct expbus *expbus_free(struct expbus *bus);

/* How long a producer of this context whose ring is full looks again for
 * free slots, yielding its CPU before each look, before it sleeps until
 * the broker frees some (expbus_reserve and expbus_write with a timeout).
 * The default, 50 us, is about what a sleep and a wakeup cost on a small
 * VM: a broker that keeps up frees slots sooner, and the game keeps its
 * CPU instead of being woken on the broker's. 0 sleeps at once (a game
 * that would rather give its CPU away than hold it for that long). At
 * most 10,000 us: -EINVAL above. Applies to the waits that start after
 * the call; call it before sharing the context between threads. */
EXPBUS_API int expbus_set_spin_us(struct expbus *bus, unsigned us);

/* The reason for the last failure on this context or on a producer or
 * consumer made from it; "" if none. Valid until the next call. */
EXPBUS_API const char *expbus_last_error(const struct expbus *bus);

/* The socket path the context uses. */
EXPBUS_API const char *expbus_socket_path(const struct expbus *bus);

/* Writes the default socket path into buf: $XDG_RUNTIME_DIR/expbus.sock,
 * else /run/expbus/expbus.sock. Returns buf, or NULL if it does not fit. */
EXPBUS_API char *expbus_default_socket(char *buf, size_t len);

/* ------------------------------------------------------------------------
 * Producer: a game writes records straight into its ring.
 * ------------------------------------------------------------------------ */

struct expbus_producer;

struct expbus_producer_options {
	uint32_t ring_slots; /* records in the ring, a power of two from 16
				to 2^24; 0: the broker's default (~1 MiB) */
	uint32_t flags;	     /* EXPBUS_PRODUCER_* */
};
/* Keep the timestamps the producer wrote instead of stamping at commit. */
#define EXPBUS_PRODUCER_OWN_TIMESTAMPS (1u << 0)

/* Attaches a producer to stream (created if new) with schema, e.g.
 * "obs f32[9,20,20]; action i32; reward f32". A stream that exists with
 * another schema refuses: -EINVAL, and expbus_last_error() names the field
 * that differs. -ECONNREFUSED/-ENOENT: no broker at the socket path. */
EXPBUS_API int expbus_producer_attach(
    struct expbus *bus, const char *stream, const char *schema,
    const struct expbus_producer_options *opts, struct expbus_producer **ret);

/* Detaches: records already committed are still delivered. */
EXPBUS_API struct expbus_producer *
expbus_producer_close(struct expbus_producer *p);

/* Bytes of a record's data (the fields, after the header), and the offset
 * of a field within it: >= 0, or -ENOENT. */
EXPBUS_API size_t expbus_producer_data_size(const struct expbus_producer *p);
EXPBUS_API long expbus_producer_field_offset(const struct expbus_producer *p,
					     const char *field);
/* Records the ring holds. */
EXPBUS_API uint32_t expbus_producer_capacity(const struct expbus_producer *p);

/* Reserved ring slots: count records, the i-th at first + i * stride. */
struct expbus_span {
	struct expbus_record_header *first;
	size_t stride;
	unsigned count;
};

static inline struct expbus_record_header *
expbus_span_record(const struct expbus_span *s, unsigned i)
{
	return (struct expbus_record_header *)((char *)s->first +
					       (size_t)i * s->stride);
}

/* The record's data: its fields, at the offsets above. */
static inline void *expbus_record_data(struct expbus_record_header *r)
{
	return r + 1;
}

/* Reserves up to n contiguous slots (fewer at the ring's end; call again
 * for the rest) for the caller to fill in place. timeout_ms: 0 returns
 * -EAGAIN at once when the ring is full, -1 waits for ever, > 0 waits at
 * most that long and then returns -ETIMEDOUT. Returns the number reserved
 * (>= 1). Reserving again before commit extends the reservation. Returns
 * -EINTR when a signal interrupted the wait.
 * Reserve never waits on the broker's control socket: when the broker goes
 * away, committed records stay in the ring, and the producer hands its ring
 * to a broker restarted on the same socket step by step across calls
 * (a non-blocking connect, the request, the reply read on a later call;
 * each call does at most a few non-blocking syscalls, at most one per
 * millisecond), so nothing the game committed is lost. timeout_ms 0 on a
 * full ring returns -EAGAIN at once, broker or not; a full ring with no
 * broker waits no longer than timeout_ms and then returns -EPIPE. */
EXPBUS_API int expbus_reserve(struct expbus_producer *p, unsigned n,
			      int timeout_ms, struct expbus_span *span);

/* Publishes the oldest n reserved records, in order. Returns 0, or -EINVAL
 * when fewer than n are reserved. No syscall but the broker's wakeup, and
 * that only when the broker sleeps without a timer (a broker that comes
 * back on its tick gets a bit set in shared memory instead); never
 * touches the control socket. */
EXPBUS_API int expbus_commit(struct expbus_producer *p, unsigned n);

/* For games with an event loop: an fd (epoll, stable for the producer's
 * life) that turns readable when the producer has work off the hot path:
 * the broker hung up, a restarted broker answered, the next reconnect
 * attempt is due, or slots were freed after a reserve with timeout 0
 * returned -EAGAIN. Poll it for POLLIN and call expbus_producer_dispatch,
 * which never blocks and returns 1 when a broker serves the ring, 0 while
 * the producer is reconnecting. Games without an event loop need neither:
 * reserve moves the reconnection on by itself. */
EXPBUS_API int expbus_producer_fd(const struct expbus_producer *p);
EXPBUS_API int expbus_producer_dispatch(struct expbus_producer *p);

/* Copies one record in: hdr (seq ignored; timestamp_ns kept only with
 * EXPBUS_PRODUCER_OWN_TIMESTAMPS) and the fields as laid out in the record
 * (len from the end of the last field up to expbus_producer_data_size(),
 * which includes trailing padding). Same timeout and returns as
 * expbus_reserve, 0 on success. */
EXPBUS_API int expbus_write(struct expbus_producer *p,
			    const struct expbus_record_header *hdr,
			    const void *data, size_t len, int timeout_ms);

/* ------------------------------------------------------------------------
 * Consumer: a trainer reads columnar batches in place, read-only.
 * ------------------------------------------------------------------------ */

struct expbus_consumer;

enum expbus_policy {
	/* A full batch ring stops the broker taking records for this
	 * subscriber: back-pressure reaches the producers. */
	EXPBUS_LOSSLESS = 0,
	/* A full batch ring drops records for this subscriber only, counted. */
	EXPBUS_LOSSY = 1,
};

struct expbus_subscribe_options {
	uint32_t batch_size;   /* records per batch; 0: 32 */
	uint32_t max_delay_us; /* flush a partial batch this old; 0: 100000 */
	uint32_t batch_slots;  /* batches in the ring, power of two; 0: 8 */
	enum expbus_policy policy;
	const uint32_t *games; /* only these game ids; NULL: all */
	uint32_t n_games;
	const uint32_t *players; /* only these player ids; NULL: all */
	uint32_t n_players;
	uint32_t min_turn; /* only records with turn >= min_turn */
	const char *group; /* share records with other members; NULL: none */
	uint32_t flags;	   /* EXPBUS_SUBSCRIBE_* */
	/* After the broker went away: how long to keep trying to subscribe
	 * again (same options) before expbus_next_batch gives up with
	 * -EPIPE; 0: 30000. */
	uint32_t reconnect_ms;
};
/* Ask the broker to put an XXH3-64 checksum of each batch in its header. */
#define EXPBUS_SUBSCRIBE_CHECKSUM (1u << 0)
/* Do not subscribe again when the broker goes away: -EPIPE once the
 * batches it published are handed out (the behaviour before 0.2). */
#define EXPBUS_SUBSCRIBE_NO_RESUBSCRIBE (1u << 16)

/* Subscribes to stream (which must exist: -ENOENT otherwise). Filters
 * combine with AND. Members of one group share the records, all records
 * of one game going to the same member while it lives. */
EXPBUS_API int expbus_subscribe(struct expbus *bus, const char *stream,
				const struct expbus_subscribe_options *opts,
				struct expbus_consumer **ret);

/* Unsubscribes; unreleased batches are reclaimed (a group's go to the
 * members that remain). */
EXPBUS_API struct expbus_consumer *
expbus_consumer_close(struct expbus_consumer *c);

/* The stream's canonical schema text. */
EXPBUS_API const char *expbus_consumer_schema(const struct expbus_consumer *c);

/* Why a batch was published. */
enum expbus_flush_reason {
	EXPBUS_FLUSH_FULL = 1, /* batch_size records */
	/* max_delay_us passed, or its records filled more than half of a
	 * ring whose game waits for room (docs/protocol.md) */
	EXPBUS_FLUSH_TIMEOUT = 2,
	EXPBUS_FLUSH_DRAIN = 3, /* broker shutting down or stream idle */
};

/* The header at the start of every batch, read-only. */
struct expbus_batch {
	uint64_t seq;		/* batch number for this subscription, from 0 */
	uint32_t count;		/* records in the batch */
	uint32_t flush_reason;	/* enum expbus_flush_reason */
	uint64_t checksum;	/* XXH3-64 of the used column bytes, or 0 */
	uint64_t dropped_total; /* dropped for this subscriber so far, by the
				   broker that published it */
	uint64_t publish_ns;	/* CLOCK_MONOTONIC when published */
	uint64_t reserved[3];
};

/* Waits for the next batch. timeout_ms as in expbus_reserve. Returns 0 and
 * the batch, -EAGAIN/-ETIMEDOUT when none came, -EINTR when a signal
 * interrupted the wait, -EPROTO when the segment breaks the protocol.
 * When the broker goes away, the batches it published are handed out
 * first; then the consumer subscribes again by itself, with the same
 * options, to the broker restarted on the same socket, retrying within the
 * caller's timeout; -EPIPE only when none took the subscription back
 * within reconnect_ms (or at once with EXPBUS_SUBSCRIBE_NO_RESUBSCRIBE).
 * Each record, identified by (source, seq), is handed out once: a
 * restarted broker may deliver again records already handed out, and
 * those are dropped here (a batch with some of them comes as a private
 * copy holding only the others). Batches stay valid until released, also
 * across a resubscription; several may be held at once.
 * Busy polling (timeout_ms 0 in a loop) makes no syscall per call: a call
 * that finds nothing looks whether the broker went away once a
 * millisecond. On a machine with fewer cores than busy parties, a busy
 * poller takes a core the broker and the games need: sleep instead. */
EXPBUS_API int expbus_next_batch(struct expbus_consumer *c, int timeout_ms,
				 const struct expbus_batch **batch);

/* Gives back batch and every batch received before it (also those of a
 * previous broker). */
EXPBUS_API int expbus_release(struct expbus_consumer *c,
			      const struct expbus_batch *batch);

#define EXPBUS_MAX_DIMS 8

/* One column of a batch: count rows of elem_size bytes each, contiguous
 * and 64-byte aligned; a row has shape[0..ndim) elements of dtype. */
struct expbus_column {
	const void *data;
	enum expbus_dtype dtype;
	uint32_t ndim;
	uint32_t shape[EXPBUS_MAX_DIMS];
	size_t elem_size;
	uint32_t count;
};

/* The column named name: a schema field, or a header column (seq,
 * timestamp, source, game, player, turn, flags; source is the producer id
 * of the record's ring, kept across broker restarts, and (source, seq)
 * names a record). Returns 0 or -ENOENT. */
EXPBUS_API int expbus_batch_column(const struct expbus_consumer *c,
				   const struct expbus_batch *batch,
				   const char *name, struct expbus_column *col);

/* Columns by index, 0 <= i < expbus_consumer_columns(c), for loops. */
EXPBUS_API int expbus_consumer_columns(const struct expbus_consumer *c);
EXPBUS_API const char *
expbus_consumer_column_name(const struct expbus_consumer *c, int i);
EXPBUS_API int expbus_batch_column_at(const struct expbus_consumer *c,
				      const struct expbus_batch *batch, int i,
				      struct expbus_column *col);
/* Describes column i without a batch (dtype, ndim, shape, elem_size; data
 * NULL, count 0), e.g. to announce the columns before the first batch.
 * Returns 0, or -ENOENT when i is out of range. */
EXPBUS_API int expbus_consumer_column_at(const struct expbus_consumer *c, int i,
					 struct expbus_column *col);

/* Records this subscriber lost to a full ring (lossy policy) so far,
 * including drops while no batch was published, summed over every broker
 * that served it (struct expbus_batch.dropped_total counts one broker's). */
EXPBUS_API uint64_t expbus_consumer_dropped(const struct expbus_consumer *c);

/* For readers in languages with no memory model of their own (the Python
 * reader calls these through ctypes): a load-acquire and a store-release
 * of an aligned shared 64-bit counter, and a full (seq_cst) fence, with the
 * meaning ring.c gives them on every architecture. */
EXPBUS_API uint64_t expbus_load_acquire_u64(const uint64_t *p);
EXPBUS_API void expbus_store_release_u64(uint64_t *p, uint64_t v);
EXPBUS_API void expbus_fence_seq_cst(void);

/* ------------------------------------------------------------------------
 * Inspection
 * ------------------------------------------------------------------------ */

/* Maps the broker's stats segment read-only: counters per stream, producer
 * ring and subscription, laid out as docs/protocol.md describes. Reading it
 * never disturbs the broker. Returns 0, or -ECONNREFUSED/-ENOENT when no
 * broker listens (expbus_last_error names the socket), -EPROTO when the
 * layout version is not this library's. */
EXPBUS_API int expbus_stats_map(struct expbus *bus, const void **seg,
				size_t *size);
EXPBUS_API void expbus_stats_unmap(const void *seg, size_t size);

#ifdef __cplusplus
}
#endif
#endif
