/* session.c — a remote subscription: a local subscription on the broker,
 * a pump thread that encodes its batches into a bounded queue, and the
 * gRPC call (at most one at a time) the queue drains into.
 *
 * The queue is numbered: messages [first, last) are retained, next_send is
 * the next one to go out. Sent messages stay retained until room is needed,
 * so a client that reconnects with resume_from gets them again. When the
 * queue is full of unsent messages, a lossless session waits (it stops
 * reading its local batches, and the broker holds back the games); a lossy
 * one evicts the oldest and counts its records in dropped_total. A session
 * without a call lingers for --linger, then ends. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/slice.h>
#include <xxhash.h>

#include "bridge.h"

#define PUMP_WAIT_MS 100 /* slices of every wait, to notice stop/linger */
#define IDLE_END_MS  250 /* follow=false: idle this long past max_delay */

/* One encoded ExperienceBatch without the fields that depend on the send
 * (encode_tail's), so that a resend reuses the same bytes. */
struct message {
	grpc_slice body; /* refcounted: retained and sent without copying */
	uint64_t seq;
	uint64_t position;
	uint32_t count;
	uint64_t bytes;		/* wire size of body */
	uint64_t dropped_total; /* the local subscription's, at encode */
};

struct session {
	struct session *next; /* srv->sessions, under srv->lock */
	struct server *srv;
	atomic_int refs;
	char id[BRIDGE_ID_MAX];
	char stream[64];
	enum expbus_policy policy;
	enum bridge_compression compression;
	bool follow;
	uint32_t max_delay_ms;
	struct expbus *bus; /* its own: last_error is per context */
	struct expbus_consumer *consumer;
	char *schema;
	uint64_t schema_hash;
	char columns[4096]; /* "name dtype d0,d1 elem_size;..." for headers */

	pthread_mutex_t lock; /* everything below */
	pthread_cond_t cond;
	struct message *q;
	uint32_t cap;
	uint64_t first, last, next_send;
	uint64_t q_bytes;
	uint64_t position; /* records appended so far */
	struct rcall *call;
	bool sending;
	bool first_of_call;
	uint64_t detached_ns; /* when the last call went; 0 while attached */
	bool ended;	      /* pump ended: status to send after the queue */
	grpc_status_code end_status;
	char end_msg[256];
	bool stop; /* pump must stop */
	uint64_t bridge_dropped, lost;
	uint64_t sent_batches, sent_records, sent_bytes;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void session_ref(struct session *s)
{
	/* Relaxed: only a holder of a reference takes another. */
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void session_unref(struct session *s)
{
	/* acq_rel: pairs with the other holders' decrements, so the last one
	 * sees all their writes before freeing. */
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (uint64_t k = s->first; k < s->last; k++)
		grpc_slice_unref(s->q[k % s->cap].body);
	free(s->q);
	free(s->schema);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static struct message *msg_at(struct session *s, uint64_t k)
{
	return &s->q[k % s->cap];
}

static void evict_first_locked(struct session *s)
{
	struct message *m = msg_at(s, s->first);

	if (s->first >= s->next_send && s->call)
		s->bridge_dropped += m->count; /* never sent: dropped */
	s->q_bytes -= m->bytes;
	grpc_slice_unref(m->body);
	s->first++;
	if (s->next_send < s->first)
		s->next_send = s->first;
}

/* Sends the status the pump ended with, once the queue is drained. */
static void maybe_finish_locked(struct session *s)
{
	if (!s->ended || !s->call || s->sending || s->next_send < s->last ||
	    s->call->status_sent)
		return;
	rcall_finish(s->call, s->end_status, s->end_msg);
	if (s->end_status == GRPC_STATUS_OK)
		s->stop = true; /* delivered all: nothing left to resume */
	pthread_cond_broadcast(&s->cond);
}

static void start_send_locked(struct session *s)
{
	struct rcall *rc = s->call;
	struct message *m;
	grpc_slice parts[2];
	grpc_op ops[2];
	size_t n = 0;

	if (!rc || s->sending || rc->status_sent) {
		return;
	}
	if (s->next_send >= s->last) {
		maybe_finish_locked(s);
		return;
	}
	m = msg_at(s, s->next_send);
	parts[0] = m->body;
	parts[1] = encode_tail(s->first_of_call ? s->id : NULL,
			       s->first_of_call ? s->schema : NULL,
			       m->dropped_total + s->bridge_dropped, s->lost);
	rc->send_bb = grpc_raw_byte_buffer_create(parts, 2);
	grpc_slice_unref(parts[1]);
	memset(ops, 0, sizeof(ops));
	if (!rc->initial_sent) {
		ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
		rc->initial_sent = true;
	}
	ops[n].op = GRPC_OP_SEND_MESSAGE;
	ops[n].data.send_message.send_message = rc->send_bb;
	n++;
	rcall_ref(rc);
	if (grpc_call_start_batch(rc->call, ops, n, &rc->send_tag, NULL) !=
	    GRPC_CALL_OK) {
		grpc_byte_buffer_destroy(rc->send_bb);
		rc->send_bb = NULL;
		rcall_unref(rc);
		return;
	}
	s->sending = true;
	s->first_of_call = false;
	s->next_send++;
	s->sent_batches++;
	s->sent_records += m->count;
	s->sent_bytes += m->bytes;
}

void session_send_done(struct session *s, struct rcall *rc, bool ok)
{
	pthread_mutex_lock(&s->lock);
	if (rc->send_bb) {
		grpc_byte_buffer_destroy(rc->send_bb);
		rc->send_bb = NULL;
	}
	if (s->call == rc) {
		s->sending = false;
		if (ok)
			start_send_locked(s);
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

void session_call_closed(struct session *s, struct rcall *rc)
{
	pthread_mutex_lock(&s->lock);
	if (s->call == rc) {
		s->call = NULL;
		s->sending = false;
		s->detached_ns = now_ns();
		if (s->srv->cfg->verbose)
			fprintf(stderr,
				"expbus-grpc: subscription %s: client gone "
				"(%s); lingering\n",
				s->id, rc->cancelled ? "cancelled" : "closed");
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static bool linger_over_locked(const struct session *s)
{
	return !s->call && s->detached_ns &&
	       now_ns() - s->detached_ns >
		   (uint64_t)s->srv->cfg->linger_ms * 1000000u;
}

static void timed_wait_locked(struct session *s)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += PUMP_WAIT_MS * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&s->cond, &s->lock, &ts);
}

/* Makes room for a message of bytes; false when the session must stop. */
static bool make_room_locked(struct session *s, uint64_t bytes)
{
	const struct bridge_config *cfg = s->srv->cfg;

	for (;;) {
		uint64_t n = s->last - s->first;

		if (s->stop)
			return false;
		if (linger_over_locked(s)) {
			s->stop = true;
			return false;
		}
		if (n < s->cap &&
		    (n == 0 || s->q_bytes + bytes <= cfg->retention_bytes))
			return true;
		if (s->first < s->next_send || s->policy == EXPBUS_LOSSY)
			evict_first_locked(s);
		else
			timed_wait_locked(s); /* lossless: hold the games */
	}
}

static void end_locked(struct session *s, grpc_status_code st, const char *m)
{
	s->ended = true;
	s->end_status = st;
	snprintf(s->end_msg, sizeof(s->end_msg), "%s", m);
	maybe_finish_locked(s);
}

static void *pump(void *arg)
{
	struct session *s = arg;
	struct server *srv = s->srv;
	uint64_t idle_since = now_ns();
	uint64_t idle_limit =
	    ((uint64_t)(s->max_delay_ms ? s->max_delay_ms : 100) +
	     IDLE_END_MS) *
	    1000000u;

	for (;;) {
		const struct expbus_batch *b;
		struct message m;
		int err;

		pthread_mutex_lock(&s->lock);
		if (!s->stop && linger_over_locked(s))
			s->stop = true;
		if (s->stop) {
			pthread_mutex_unlock(&s->lock);
			break;
		}
		if (s->ended) {
			timed_wait_locked(s);
			pthread_mutex_unlock(&s->lock);
			continue;
		}
		pthread_mutex_unlock(&s->lock);

		err = expbus_next_batch(s->consumer, PUMP_WAIT_MS, &b);
		if (err == -EAGAIN || err == -ETIMEDOUT || err == -EINTR) {
			if (!s->follow && now_ns() - idle_since > idle_limit) {
				pthread_mutex_lock(&s->lock);
				end_locked(s, GRPC_STATUS_OK, "");
				pthread_mutex_unlock(&s->lock);
			}
			continue;
		}
		if (err < 0) {
			char why[200];

			snprintf(why, sizeof(why),
				 "the broker at %s went away (%s); resume once "
				 "it is back",
				 expbus_socket_path(s->bus), strerror(-err));
			pthread_mutex_lock(&s->lock);
			end_locked(s, GRPC_STATUS_UNAVAILABLE, why);
			pthread_mutex_unlock(&s->lock);
			continue;
		}
		idle_since = now_ns();
		memset(&m, 0, sizeof(m));
		/* The one read of the count: the broker may write the batch
		 * header, and sizing and copying must agree. */
		m.count = b->count;
		m.dropped_total = expbus_consumer_dropped(s->consumer);
		/* seq and position are the session's: read under the lock
		 * only by this thread's own appends, so a private copy is
		 * exact. */
		pthread_mutex_lock(&s->lock);
		m.seq = s->last;
		m.position = s->position;
		pthread_mutex_unlock(&s->lock);
		err = encode_batch(s->consumer, b, m.count, s->schema_hash,
				   s->compression, m.seq, m.position, &m.body);
		(void)expbus_release(s->consumer, b);
		if (err < 0) {
			pthread_mutex_lock(&s->lock);
			end_locked(s, GRPC_STATUS_RESOURCE_EXHAUSTED,
				   "the bridge ran out of memory");
			pthread_mutex_unlock(&s->lock);
			continue;
		}
		m.bytes = GRPC_SLICE_LENGTH(m.body);
		pthread_mutex_lock(&s->lock);
		if (!make_room_locked(s, m.bytes)) {
			pthread_mutex_unlock(&s->lock);
			grpc_slice_unref(m.body);
			break;
		}
		*msg_at(s, s->last) = m;
		s->last++;
		s->position += m.count;
		s->q_bytes += m.bytes;
		start_send_locked(s);
		pthread_mutex_unlock(&s->lock);
	}

	/* Stop: give the local subscription back, leave the table. */
	expbus_consumer_close(s->consumer);
	s->consumer = NULL;
	expbus_free(s->bus);
	s->bus = NULL;
	pthread_mutex_lock(&s->srv->lock);
	for (struct session **pp = &s->srv->sessions; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			s->srv->n_sessions--;
			break;
		}
	}
	pthread_mutex_unlock(&s->srv->lock);
	pthread_mutex_lock(&s->lock);
	if (s->call && !s->call->status_sent)
		rcall_finish(s->call, GRPC_STATUS_UNAVAILABLE,
			     "expbus-grpc is stopping");
	pthread_mutex_unlock(&s->lock);
	if (srv->cfg->verbose)
		fprintf(stderr, "expbus-grpc: subscription %s ended\n", s->id);
	session_unref(s); /* the table's */
	session_unref(s); /* the pump's */
	/* Release: session_stop_all's acquire load sees every write of this
	 * thread (the frees above) once it sees the count drop. */
	atomic_fetch_sub_explicit(&srv->pumps, 1, memory_order_release);
	return NULL;
}

/* Points the session's next send at resume_from; false with why when it
 * cannot. */
static grpc_status_code resume_locked(struct session *s, uint64_t from,
				      char *msg, size_t len)
{
	uint64_t first_pos =
	    s->first < s->last ? msg_at(s, s->first)->position : s->position;

	if (from > s->position) {
		snprintf(msg, len,
			 "StreamRequest.resume_from: %" PRIu64
			 " is beyond the %" PRIu64
			 " records subscription %s has had",
			 from, s->position, s->id);
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	if (from < first_pos) {
		s->lost += first_pos - from;
		s->next_send = s->first;
		return GRPC_STATUS_OK;
	}
	for (uint64_t k = s->first; k <= s->last; k++) {
		uint64_t pos =
		    k < s->last ? msg_at(s, k)->position : s->position;

		if (pos == from) {
			s->next_send = k;
			return GRPC_STATUS_OK;
		}
	}
	snprintf(msg, len,
		 "StreamRequest.resume_from: %" PRIu64
		 " is not where a batch of subscription %s starts (give the "
		 "position + count of the last batch received)",
		 from, s->id);
	return GRPC_STATUS_INVALID_ARGUMENT;
}

static void attach_locked(struct session *s, struct rcall *rc)
{
	if (s->call && s->call != rc) {
		/* A client resuming while its old call still looks alive
		 * (the old connection not yet known dead) takes over. */
		grpc_call_cancel_with_status(
		    s->call->call, GRPC_STATUS_ABORTED,
		    "another call resumed this subscription", NULL);
	}
	const char *kv[6] = {"expbus-subscription-id", s->id,
			     "expbus-schema",	       s->schema,
			     "expbus-columns",	       s->columns};

	session_ref(s);
	rc->session = s;
	s->call = rc;
	s->sending = false;
	s->first_of_call = true;
	s->detached_ns = 0;
	/* Headers now: the client knows it is subscribed, with what
	 * columns, before any batch. */
	rcall_send_initial(rc, kv, 3);
	start_send_locked(s);
	pthread_cond_broadcast(&s->cond);
}

static struct session *find_locked(struct server *srv, const char *id)
{
	for (struct session *s = srv->sessions; s; s = s->next) {
		if (strcmp(s->id, id) == 0) {
			bool stopping;

			pthread_mutex_lock(&s->lock);
			stopping = s->stop;
			pthread_mutex_unlock(&s->lock);
			if (!stopping)
				return s;
		}
	}
	return NULL;
}

/* The column table as text, for the call's headers: what the client
 * needs to shape arrays before the first batch. */
static void describe_columns(struct session *s)
{
	size_t len = 0, cap = sizeof(s->columns);

	s->columns[0] = '\0';
	for (int i = 0; i < expbus_consumer_columns(s->consumer); i++) {
		struct expbus_column col;
		const char *dt;
		int n;

		if (expbus_consumer_column_at(s->consumer, i, &col) < 0)
			continue;
		dt = expbus_dtype_name(col.dtype);
		n = snprintf(
		    s->columns + len, cap - len, "%s%s %s ", i ? ";" : "",
		    expbus_consumer_column_name(s->consumer, i), dt ? dt : "?");
		if (n < 0 || (size_t)n >= cap - len)
			break;
		len += (size_t)n;
		for (uint32_t d = 0; d < col.ndim; d++) {
			n = snprintf(s->columns + len, cap - len, "%s%u",
				     d ? "," : "", col.shape[d]);
			if (n < 0 || (size_t)n >= cap - len)
				return;
			len += (size_t)n;
		}
		n = snprintf(s->columns + len, cap - len, "%s %zu",
			     col.ndim ? "" : "-", col.elem_size);
		if (n < 0 || (size_t)n >= cap - len)
			return;
		len += (size_t)n;
	}
}

static grpc_status_code subscribe_local(struct session *s,
					const struct session_options *o,
					char *msg, size_t len)
{
	const struct bridge_config *cfg = s->srv->cfg;
	struct expbus_subscribe_options so;
	const char *schema;
	int err;

	memset(&so, 0, sizeof(so));
	so.batch_size = o->batch_size;
	so.max_delay_us = o->max_delay_ms * 1000u;
	so.batch_slots = cfg->batch_slots;
	so.policy = o->policy;
	so.games = o->n_games ? o->games : NULL;
	so.n_games = o->n_games;
	so.players = o->n_players ? o->players : NULL;
	so.n_players = o->n_players;
	so.min_turn = o->min_turn;
	so.group = o->group[0] ? o->group : NULL;
	err = expbus_new(cfg->socket, &s->bus);
	if (err == 0)
		err = expbus_subscribe(s->bus, o->stream, &so, &s->consumer);
	if (err == -ENOENT && s->bus) {
		snprintf(msg, len,
			 "StreamRequest.stream: no stream '%s' on the broker "
			 "at %s (ListStreams lists the streams there are)",
			 o->stream, expbus_socket_path(s->bus));
		return GRPC_STATUS_NOT_FOUND;
	}
	if (err == -EINVAL) {
		snprintf(msg, len, "the broker refused the subscription: %s",
			 expbus_last_error(s->bus));
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	if (err < 0) {
		snprintf(msg, len, "cannot subscribe on the broker: %s",
			 s->bus && expbus_last_error(s->bus)[0]
			     ? expbus_last_error(s->bus)
			     : strerror(-err));
		return GRPC_STATUS_UNAVAILABLE;
	}
	describe_columns(s);
	schema = expbus_consumer_schema(s->consumer);
	s->schema = strdup(schema);
	s->schema_hash = XXH3_64bits(schema, strlen(schema));
	return s->schema ? GRPC_STATUS_OK : GRPC_STATUS_RESOURCE_EXHAUSTED;
}

static struct session *session_new(struct server *srv,
				   const struct session_options *o)
{
	const struct bridge_config *cfg = srv->cfg;
	struct session *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->cap = cfg->retention;
	s->q = calloc(s->cap, sizeof(*s->q));
	if (!s->q) {
		free(s);
		return NULL;
	}
	s->srv = srv;
	atomic_init(&s->refs, 1);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	if (o->id[0])
		snprintf(s->id, sizeof(s->id), "%s", o->id);
	else
		snprintf(s->id, sizeof(s->id), "bridge-%d-%" PRIu64,
			 (int)getpid(), ++srv->next_id);
	snprintf(s->stream, sizeof(s->stream), "%s", o->stream);
	s->policy = o->policy;
	s->compression = o->compression;
	s->follow = o->follow;
	s->max_delay_ms = o->max_delay_ms;
	return s;
}

static void session_discard(struct session *s)
{
	expbus_consumer_close(s->consumer);
	expbus_free(s->bus);
	session_unref(s);
}

grpc_status_code session_attach(struct server *srv, struct rcall *rc,
				const struct session_options *o, char *msg,
				size_t msg_len)
{
	struct session *s;
	grpc_status_code st;
	pthread_t tid;
	pthread_attr_t attr;

	pthread_mutex_lock(&srv->lock);
	s = o->id[0] ? find_locked(srv, o->id) : NULL;
	if (s) {
		pthread_mutex_lock(&s->lock);
		st = o->resume ? resume_locked(s, o->resume_from, msg, msg_len)
			       : GRPC_STATUS_OK;
		if (st == GRPC_STATUS_OK)
			attach_locked(s, rc);
		pthread_mutex_unlock(&s->lock);
		pthread_mutex_unlock(&srv->lock);
		return st;
	}
	if (o->resume && o->resume_from > 0) {
		pthread_mutex_unlock(&srv->lock);
		snprintf(msg, msg_len,
			 "StreamRequest.subscription_id: no subscription '%s' "
			 "to resume (it ended, or lingered past --linger "
			 "without a client); subscribe anew",
			 o->id);
		return GRPC_STATUS_NOT_FOUND;
	}
	if (srv->n_sessions >= srv->cfg->max_subscriptions) {
		pthread_mutex_unlock(&srv->lock);
		snprintf(msg, msg_len,
			 "this bridge serves %u remote subscriptions already "
			 "(expbus-grpc --max-subscriptions); try again later "
			 "or ask for a larger limit",
			 srv->cfg->max_subscriptions);
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	}
	s = session_new(srv, o);
	if (!s) {
		pthread_mutex_unlock(&srv->lock);
		snprintf(msg, msg_len, "the bridge ran out of memory");
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	}
	st = subscribe_local(s, o, msg, msg_len);
	if (st != GRPC_STATUS_OK) {
		pthread_mutex_unlock(&srv->lock);
		session_discard(s);
		return st;
	}
	session_ref(s); /* the pump's; the first is the table's */
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* Relaxed: only the count matters here; the pump's decrement is the
	 * release that session_stop_all pairs with. */
	atomic_fetch_add_explicit(&srv->pumps, 1, memory_order_relaxed);
	if (pthread_create(&tid, &attr, pump, s) != 0) {
		atomic_fetch_sub_explicit(&srv->pumps, 1, memory_order_relaxed);
		pthread_attr_destroy(&attr);
		pthread_mutex_unlock(&srv->lock);
		session_unref(s);
		session_discard(s);
		snprintf(msg, msg_len, "the bridge cannot start a thread");
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	}
	pthread_attr_destroy(&attr);
	s->next = srv->sessions;
	srv->sessions = s;
	srv->n_sessions++;
	pthread_mutex_lock(&s->lock);
	attach_locked(s, rc);
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_unlock(&srv->lock);
	if (srv->cfg->verbose)
		fprintf(stderr, "expbus-grpc: subscription %s to '%s'\n", s->id,
			s->stream);
	return GRPC_STATUS_OK;
}

int session_end(struct server *srv, const char *id)
{
	struct session *s;

	pthread_mutex_lock(&srv->lock);
	s = find_locked(srv, id);
	if (s) {
		pthread_mutex_lock(&s->lock);
		s->stop = true;
		if (s->call && !s->call->status_sent)
			rcall_finish(s->call, GRPC_STATUS_CANCELLED,
				     "the subscription was ended by "
				     "Unsubscribe");
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&srv->lock);
	return s ? 0 : -ENOENT;
}

void session_stop_all(struct server *srv)
{
	for (int i = 0; i < 500; i++) { /* up to 5 s */
		uint32_t n;

		pthread_mutex_lock(&srv->lock);
		for (struct session *s = srv->sessions; s; s = s->next) {
			pthread_mutex_lock(&s->lock);
			s->stop = true;
			pthread_cond_broadcast(&s->cond);
			pthread_mutex_unlock(&s->lock);
		}
		n = srv->n_sessions;
		pthread_mutex_unlock(&srv->lock);
		/* Acquire: pairs with each pump's release decrement. */
		if (n == 0 && atomic_load_explicit(&srv->pumps,
						   memory_order_acquire) == 0)
			return;
		usleep(10000);
	}
}

uint32_t session_list(struct server *srv, struct session_stats *out,
		      uint32_t max)
{
	uint32_t n = 0;

	pthread_mutex_lock(&srv->lock);
	for (struct session *s = srv->sessions; s && n < max; s = s->next) {
		struct session_stats *o = &out[n++];

		pthread_mutex_lock(&s->lock);
		memcpy(o->id, s->id, sizeof(o->id));
		memcpy(o->stream, s->stream, sizeof(o->stream));
		o->connected = s->call != NULL;
		o->policy = (int)s->policy;
		o->compression = (int)s->compression;
		o->sent_batches = s->sent_batches;
		o->sent_records = s->sent_records;
		o->sent_bytes = s->sent_bytes;
		o->retained = s->last - s->first;
		o->dropped = s->bridge_dropped;
		o->lost = s->lost;
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&srv->lock);
	return n;
}
