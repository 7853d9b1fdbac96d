/* bridge.h — expbus-grpc: the pieces of the gRPC bridge and what they share.
 *
 *   main.c     flags, start-up, signals, exit codes
 *   server.c   the gRPC C-core completion-queue loop: calls in, statuses out
 *   session.c  a remote subscription: its local consumer, pump thread,
 *              retention queue, resume and linger
 *   encode.c   a local batch -> ExperienceBatch bytes (columns as they lie,
 *              lz4 when asked, XXH3-64 of the uncompressed bytes)
 *   catalog.c  ListStreams and GetStreamStats from the broker's stats segment
 *   auth.c     server credentials (TLS or plaintext) and the bearer token
 *
 * Threads: one thread runs the completion queue; every remote subscription
 * has one pump thread reading its local batches. A pump thread never waits
 * on a client: it appends to its own queue and starts a send when the call
 * is idle; the queue thread never waits on the broker except to subscribe
 * and to read the stats segment. */
#ifndef EXPBUS_BRIDGE_H
#define EXPBUS_BRIDGE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <grpc/grpc.h>

#include "expbus.h"

/* Exit codes of expbus-grpc (documented in --help). */
#define BRIDGE_EXIT_OK	  0
#define BRIDGE_EXIT_START 1 /* could not start: port, certificates, ... */
#define BRIDGE_EXIT_USAGE 2

#define BRIDGE_ID_MAX 64 /* subscription ids, with the NUL */

enum bridge_compression { COMP_NONE = 0, COMP_LZ4 = 1 };

struct bridge_config {
	const char *socket;	    /* the broker's; NULL: default */
	const char *listen;	    /* HOST:PORT */
	bool insecure;		    /* plaintext on a non-loopback address */
	const char *tls_cert;	    /* PEM file: server certificate chain */
	const char *tls_key;	    /* PEM file: its private key */
	const char *tls_client_ca;  /* PEM file: CAs for client certificates */
	bool tls_require_client;    /* client certificate required */
	const char *token;	    /* bearer token, or NULL */
	uint32_t max_subscriptions; /* remote subscriptions at once */
	uint32_t linger_ms;	    /* keep a disconnected subscription */
	uint32_t retention;	    /* batches kept for resume and in flight */
	uint64_t retention_bytes;   /* and at most so many bytes of them */
	uint32_t batch_slots;	    /* local batch ring of each subscription */
	bool verbose;
};

/* ---- auth.c ---------------------------------------------------------- */

/* The credentials to serve cfg->listen with: TLS when a certificate is
 * configured, else plaintext, refused (NULL, *why set) on an address that
 * is not loopback unless cfg->insecure. */
grpc_server_credentials *auth_credentials(const struct bridge_config *cfg,
					  char *why, size_t why_len);
/* true when the call's metadata carries "authorization: Bearer <token>"
 * (or no token is configured). */
bool auth_token_ok(const struct bridge_config *cfg,
		   const grpc_metadata_array *md);
/* true when host (of HOST:PORT) names the loopback interface. */
bool auth_is_loopback(const char *listen);

/* ---- encode.c -------------------------------------------------------- */

/* Encodes the fields of an ExperienceBatch that never change for this
 * batch (schema hash, count, position, seq, flush reason, publish time,
 * columns) into a refcounted slice. Columns are copied once from the
 * mapping, or compressed straight from it with lz4. count is the caller's
 * one read of b->count (checked by expbus_next_batch against the ring's
 * batch size), used for sizing and copying alike. 0 or -ENOMEM. */
int encode_batch(const struct expbus_consumer *c, const struct expbus_batch *b,
		 uint32_t count, uint64_t schema_hash,
		 enum bridge_compression comp, uint64_t seq, uint64_t position,
		 grpc_slice *out);
/* The fields that depend on the send: subscription id and schema (the
 * first message of a call; NULL otherwise), dropped and lost totals. */
grpc_slice encode_tail(const char *id, const char *schema, uint64_t dropped,
		       uint64_t lost);

/* ---- heap.c ---------------------------------------------------------- */

/* malloc settings for buffers retained up to retention_bytes: call once,
 * before any thread starts. */
void heap_tune(size_t retention_bytes);

/* ---- server.c -------------------------------------------------------- */

/* Something the completion queue reports: done(self, ok). */
struct tag {
	void (*done)(struct tag *self, bool ok);
};

struct session;

/* A call in progress. Its references: the RECV_CLOSE op, each batch of
 * ops in flight; the last drop destroys the call. */
struct rcall {
	grpc_call *call;
	grpc_call_details details;
	grpc_metadata_array md;
	grpc_byte_buffer *recv;
	int cancelled; /* from RECV_CLOSE_ON_SERVER */
	atomic_int refs;
	struct server *srv;
	struct tag new_tag, recv_tag, close_tag, send_tag, status_tag;
	/* For a streaming call: its session (a reference), set while the
	 * session serves this call. Guarded by the session's lock. */
	struct session *session;
	bool initial_sent;
	bool status_sent;
	grpc_slice status_details;
	grpc_byte_buffer *send_bb; /* the message in flight, if any */
	grpc_metadata init_md[3];  /* headers of a streaming call */
	size_t n_init_md;
};

struct server {
	const struct bridge_config *cfg;
	grpc_server *server;
	grpc_completion_queue *cq;
	struct expbus *bus;
	pthread_mutex_t lock; /* sessions, n_sessions */
	struct session *sessions;
	uint32_t n_sessions;
	uint64_t next_id;
	bool stopping;	   /* the queue thread's only */
	atomic_uint pumps; /* pump threads not yet finished */
};

/* Serves until *stop_signal becomes non-zero; ready() is called once
 * listening. Returns an exit code. */
int server_run(const struct bridge_config *cfg, volatile int *stop_signal,
	       void (*ready)(void));

void rcall_ref(struct rcall *rc);
void rcall_unref(struct rcall *rc);
/* Sends the initial metadata (headers) now, with up to 3 key/value
 * pairs (copied; NULL, 0: none). */
void rcall_send_initial(struct rcall *rc, const char *const *kv, size_t n);
/* Ends the call with status and message (a copy is kept). */
void rcall_finish(struct rcall *rc, grpc_status_code status, const char *msg);

/* ---- session.c ------------------------------------------------------- */

/* What a StreamRequest asked, checked. */
struct session_options {
	char stream[64];
	char group[64];
	char id[BRIDGE_ID_MAX];
	uint32_t batch_size, max_delay_ms, min_turn;
	uint32_t *games, n_games, *players, n_players;
	enum expbus_policy policy;
	enum bridge_compression compression;
	bool follow;
	bool resume;
	uint64_t resume_from;
};

/* Starts serving the streaming call rc for opts: a new session, or the one
 * named opts->id (resumed). On refusal returns a gRPC status != OK and
 * writes why into msg. */
grpc_status_code session_attach(struct server *srv, struct rcall *rc,
				const struct session_options *opts, char *msg,
				size_t msg_len);
void session_unref(struct session *s);
/* rc's RECV_CLOSE or a send completed: called from the queue thread. */
void session_call_closed(struct session *s, struct rcall *rc);
void session_send_done(struct session *s, struct rcall *rc, bool ok);
/* Ends the session named id now (Unsubscribe): its call, if any, ends
 * with CANCELLED and its local subscription goes. 0 or -ENOENT. */
int session_end(struct server *srv, const char *id);
/* Stops every session's pump (server shutdown) and waits for them. */
void session_stop_all(struct server *srv);

/* One line per remote subscription, for GetStreamStats. */
struct session_stats {
	char id[BRIDGE_ID_MAX];
	char stream[64];
	bool connected;
	int policy, compression;
	uint64_t sent_batches, sent_records, sent_bytes, retained;
	uint64_t dropped, lost;
};
/* Fills up to max entries; returns how many. Takes srv->lock. */
uint32_t session_list(struct server *srv, struct session_stats *out,
		      uint32_t max);

/* ---- catalog.c ------------------------------------------------------- */

/* Packs a ListStreamsResponse / GetStreamStatsResponse into *out (malloc'ed
 * bytes, *len). 0, or a negative errno with why in msg. */
int catalog_list(struct server *srv, uint8_t **out, size_t *len, char *msg,
		 size_t msg_len);
int catalog_stats(struct server *srv, const char *stream, uint8_t **out,
		  size_t *len, char *msg, size_t msg_len);

#endif
