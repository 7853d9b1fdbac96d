/* server.c — the gRPC C-core side of expbus-grpc: one completion queue,
 * one thread turning its events into calls to the handlers (a call
 * arrives, its request is read, its request dispatched by method; sends
 * and closes of streaming calls go to session.c). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include "bridge.h"
#include "expbus.pb-c.h"

#define M_STREAM    "/expbus.v1.ExperienceService/StreamExperienceBatches"
#define M_STATS	    "/expbus.v1.ExperienceService/GetStreamStats"
#define M_LIST	    "/expbus.v1.ExperienceService/ListStreams"
#define M_UNSUB	    "/expbus.v1.ExperienceService/Unsubscribe"
#define MAX_REQUEST (1u << 20)

#define OWNER(ptr, type, member)                                               \
	((type *)((char *)(ptr)-offsetof(type, member)))

static void on_new_call(struct tag *t, bool ok);
static void on_recv(struct tag *t, bool ok);
static void on_close(struct tag *t, bool ok);
static void on_send(struct tag *t, bool ok);
static void on_status(struct tag *t, bool ok);

void rcall_ref(struct rcall *rc)
{
	/* Relaxed: a reference is only taken by a holder of another. */
	atomic_fetch_add_explicit(&rc->refs, 1, memory_order_relaxed);
}

void rcall_unref(struct rcall *rc)
{
	/* acq_rel: the last holder sees every other holder's writes (the
	 * decrements of the others are the releasing stores it pairs with). */
	if (atomic_fetch_sub_explicit(&rc->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (rc->session)
		session_unref(rc->session);
	if (rc->send_bb)
		grpc_byte_buffer_destroy(rc->send_bb);
	if (rc->call)
		grpc_call_unref(rc->call);
	grpc_call_details_destroy(&rc->details);
	grpc_metadata_array_destroy(&rc->md);
	if (rc->recv)
		grpc_byte_buffer_destroy(rc->recv);
	grpc_slice_unref(rc->status_details);
	for (size_t i = 0; i < rc->n_init_md; i++) {
		grpc_slice_unref(rc->init_md[i].key);
		grpc_slice_unref(rc->init_md[i].value);
	}
	free(rc);
}

/* Asks the server for the next call of any method. */
static int request_call(struct server *srv)
{
	struct rcall *rc = calloc(1, sizeof(*rc));

	if (!rc)
		return -ENOMEM;
	rc->srv = srv;
	atomic_init(&rc->refs, 1); /* the new-call op */
	rc->new_tag.done = on_new_call;
	rc->recv_tag.done = on_recv;
	rc->close_tag.done = on_close;
	rc->send_tag.done = on_send;
	rc->status_tag.done = on_status;
	rc->status_details = grpc_empty_slice();
	grpc_call_details_init(&rc->details);
	grpc_metadata_array_init(&rc->md);
	if (grpc_server_request_call(srv->server, &rc->call, &rc->details,
				     &rc->md, srv->cq, srv->cq,
				     &rc->new_tag) != GRPC_CALL_OK) {
		rcall_unref(rc);
		return -EIO;
	}
	return 0;
}

static bool method_is(const struct rcall *rc, const char *m)
{
	size_t n = strlen(m);

	return GRPC_SLICE_LENGTH(rc->details.method) == n &&
	       memcmp(GRPC_SLICE_START_PTR(rc->details.method), m, n) == 0;
}

void rcall_send_initial(struct rcall *rc, const char *const *kv, size_t n)
{
	grpc_op op;

	if (rc->initial_sent)
		return;
	for (size_t i = 0; i < n && i < 3; i++) {
		rc->init_md[i].key = grpc_slice_from_copied_string(kv[2 * i]);
		rc->init_md[i].value =
		    grpc_slice_from_copied_string(kv[2 * i + 1]);
		rc->n_init_md++;
	}
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_SEND_INITIAL_METADATA;
	op.data.send_initial_metadata.count = rc->n_init_md;
	op.data.send_initial_metadata.metadata = rc->init_md;
	rc->initial_sent = true;
	rcall_ref(rc);
	if (grpc_call_start_batch(rc->call, &op, 1, &rc->status_tag, NULL) !=
	    GRPC_CALL_OK)
		rcall_unref(rc);
}

void rcall_finish(struct rcall *rc, grpc_status_code status, const char *msg)
{
	grpc_op ops[2];
	size_t n = 0;

	memset(ops, 0, sizeof(ops));
	if (!rc->initial_sent) {
		ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
		rc->initial_sent = true;
	}
	grpc_slice_unref(rc->status_details);
	rc->status_details = grpc_slice_from_copied_string(msg ? msg : "");
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = status;
	ops[n].data.send_status_from_server.status_details =
	    status == GRPC_STATUS_OK ? NULL : &rc->status_details;
	n++;
	rc->status_sent = true;
	rcall_ref(rc);
	if (grpc_call_start_batch(rc->call, ops, n, &rc->status_tag, NULL) !=
	    GRPC_CALL_OK)
		rcall_unref(rc);
	if (rc->srv->cfg->verbose && status != GRPC_STATUS_OK)
		fprintf(stderr, "expbus-grpc: call ends with status %d: %s\n",
			status, msg ? msg : "");
}

static void on_new_call(struct tag *t, bool ok)
{
	struct rcall *rc = OWNER(t, struct rcall, new_tag);
	struct server *srv = rc->srv;
	grpc_op ops[1];

	if (!ok) { /* server shutting down */
		rcall_unref(rc);
		return;
	}
	if (!srv->stopping)
		(void)request_call(srv);
	/* The close op holds the reference of the new-call op. */
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[0].data.recv_close_on_server.cancelled = &rc->cancelled;
	if (grpc_call_start_batch(rc->call, ops, 1, &rc->close_tag, NULL) !=
	    GRPC_CALL_OK) {
		rcall_unref(rc);
		return;
	}
	if (!auth_token_ok(srv->cfg, &rc->md)) {
		rcall_finish(rc, GRPC_STATUS_UNAUTHENTICATED,
			     "this bridge wants a bearer token (metadata "
			     "'authorization: Bearer TOKEN', the token given "
			     "to expbus-grpc --token-file); the call had none "
			     "or another");
		return;
	}
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_MESSAGE;
	ops[0].data.recv_message.recv_message = &rc->recv;
	rcall_ref(rc);
	if (grpc_call_start_batch(rc->call, ops, 1, &rc->recv_tag, NULL) !=
	    GRPC_CALL_OK)
		rcall_unref(rc);
}

/* The request's bytes, flattened. */
static grpc_slice request_bytes(struct rcall *rc)
{
	grpc_byte_buffer_reader r;
	grpc_slice s;

	if (!rc->recv || !grpc_byte_buffer_reader_init(&r, rc->recv))
		return grpc_empty_slice();
	s = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	return s;
}

static void send_unary(struct rcall *rc, uint8_t *bytes, size_t len)
{
	grpc_slice s = grpc_slice_new(bytes, len, free);
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_op ops[3];

	grpc_slice_unref(s);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = bb;
	ops[2].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[2].data.send_status_from_server.status = GRPC_STATUS_OK;
	rc->initial_sent = rc->status_sent = true;
	rcall_ref(rc);
	if (grpc_call_start_batch(rc->call, ops, 3, &rc->status_tag, NULL) !=
	    GRPC_CALL_OK)
		rcall_unref(rc);
	/* The batch holds its own reference to the slices. */
	grpc_byte_buffer_destroy(bb);
}

static int copy_name(char *dst, size_t cap, const char *src)
{
	size_t n = src ? strlen(src) : 0;

	if (n >= cap)
		return -ENAMETOOLONG;
	memcpy(dst, src ? src : "", n + 1);
	return 0;
}

/* StreamRequest -> session_options; on a bad field, msg names it. */
static grpc_status_code check_request(const Expbus__V1__StreamRequest *r,
				      struct session_options *o, char *msg,
				      size_t len)
{
	memset(o, 0, sizeof(*o));
	if (!r->stream || !r->stream[0]) {
		snprintf(msg, len,
			 "StreamRequest.stream: name the stream to "
			 "subscribe to (ListStreams lists them)");
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	if (copy_name(o->stream, sizeof(o->stream), r->stream) < 0) {
		snprintf(msg, len,
			 "StreamRequest.stream: longer than %zu "
			 "bytes",
			 sizeof(o->stream) - 1);
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	if (copy_name(o->group, sizeof(o->group), r->group) < 0) {
		snprintf(msg, len,
			 "StreamRequest.group: longer than %zu "
			 "bytes",
			 sizeof(o->group) - 1);
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	if (copy_name(o->id, sizeof(o->id), r->subscription_id) < 0) {
		snprintf(msg, len,
			 "StreamRequest.subscription_id: longer "
			 "than %d bytes",
			 BRIDGE_ID_MAX - 1);
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	for (const char *p = o->id; *p; p++) {
		if (*p < 0x21 || *p > 0x7e) {
			snprintf(msg, len,
				 "StreamRequest.subscription_id: "
				 "printable ASCII without spaces only");
			return GRPC_STATUS_INVALID_ARGUMENT;
		}
	}
	if (r->policy != EXPBUS__V1__POLICY__POLICY_LOSSLESS &&
	    r->policy != EXPBUS__V1__POLICY__POLICY_LOSSY) {
		snprintf(msg, len,
			 "StreamRequest.policy: %d is neither "
			 "POLICY_LOSSLESS nor POLICY_LOSSY",
			 (int)r->policy);
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	if (r->compression != EXPBUS__V1__COMPRESSION__COMPRESSION_NONE &&
	    r->compression != EXPBUS__V1__COMPRESSION__COMPRESSION_LZ4) {
		snprintf(msg, len,
			 "StreamRequest.compression: %d is neither "
			 "COMPRESSION_NONE nor COMPRESSION_LZ4",
			 (int)r->compression);
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	if (r->batch_size > 65536) {
		snprintf(msg, len,
			 "StreamRequest.batch_size: %u is over "
			 "65536",
			 r->batch_size);
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	if (r->max_delay_ms > 3600000) {
		snprintf(msg, len,
			 "StreamRequest.max_delay_ms: %u is over an "
			 "hour",
			 r->max_delay_ms);
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	if (r->n_game_ids > 4096 || r->n_player_ids > 4096) {
		snprintf(msg, len, "StreamRequest.%s: more than 4096 ids",
			 r->n_game_ids > 4096 ? "game_ids" : "player_ids");
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	if (r->resume && !o->id[0]) {
		snprintf(msg, len,
			 "StreamRequest.subscription_id: resume "
			 "needs the id of the subscription to resume");
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	o->batch_size = r->batch_size;
	o->max_delay_ms = r->max_delay_ms;
	o->min_turn = r->min_turn;
	o->games = r->game_ids;
	o->n_games = (uint32_t)r->n_game_ids;
	o->players = r->player_ids;
	o->n_players = (uint32_t)r->n_player_ids;
	o->policy = r->policy == EXPBUS__V1__POLICY__POLICY_LOSSY
			? EXPBUS_LOSSY
			: EXPBUS_LOSSLESS;
	o->compression =
	    r->compression == EXPBUS__V1__COMPRESSION__COMPRESSION_LZ4
		? COMP_LZ4
		: COMP_NONE;
	o->follow = r->follow;
	o->resume = r->resume;
	o->resume_from = r->resume_from;
	return GRPC_STATUS_OK;
}

static void serve_stream(struct rcall *rc, grpc_slice req)
{
	Expbus__V1__StreamRequest *r = expbus__v1__stream_request__unpack(
	    NULL, GRPC_SLICE_LENGTH(req), GRPC_SLICE_START_PTR(req));
	struct session_options o;
	char msg[512];
	grpc_status_code st;

	if (!r) {
		rcall_finish(rc, GRPC_STATUS_INVALID_ARGUMENT,
			     "the request is not an expbus.v1.StreamRequest");
		return;
	}
	st = check_request(r, &o, msg, sizeof(msg));
	if (st == GRPC_STATUS_OK)
		st = session_attach(rc->srv, rc, &o, msg, sizeof(msg));
	if (st != GRPC_STATUS_OK)
		rcall_finish(rc, st, msg);
	expbus__v1__stream_request__free_unpacked(r, NULL);
}

static void serve_unary(struct rcall *rc, grpc_slice req, bool stats)
{
	char msg[512] = "";
	uint8_t *out = NULL;
	size_t len = 0;
	int err;

	if (stats) {
		Expbus__V1__GetStreamStatsRequest *r =
		    expbus__v1__get_stream_stats_request__unpack(
			NULL, GRPC_SLICE_LENGTH(req),
			GRPC_SLICE_START_PTR(req));
		if (!r) {
			rcall_finish(rc, GRPC_STATUS_INVALID_ARGUMENT,
				     "the request is not an "
				     "expbus.v1.GetStreamStatsRequest");
			return;
		}
		err = catalog_stats(rc->srv, r->stream, &out, &len, msg,
				    sizeof(msg));
		expbus__v1__get_stream_stats_request__free_unpacked(r, NULL);
	} else {
		err = catalog_list(rc->srv, &out, &len, msg, sizeof(msg));
	}
	if (err == -ENOENT)
		rcall_finish(rc, GRPC_STATUS_NOT_FOUND, msg);
	else if (err < 0)
		rcall_finish(rc, GRPC_STATUS_UNAVAILABLE, msg);
	else
		send_unary(rc, out, len);
}

static void serve_unsubscribe(struct rcall *rc, grpc_slice req)
{
	Expbus__V1__UnsubscribeRequest *r =
	    expbus__v1__unsubscribe_request__unpack(
		NULL, GRPC_SLICE_LENGTH(req), GRPC_SLICE_START_PTR(req));
	Expbus__V1__UnsubscribeResponse resp =
	    EXPBUS__V1__UNSUBSCRIBE_RESPONSE__INIT;
	char msg[200];
	uint8_t *out;
	size_t len;

	if (!r || !r->subscription_id || !r->subscription_id[0]) {
		rcall_finish(rc, GRPC_STATUS_INVALID_ARGUMENT,
			     "UnsubscribeRequest.subscription_id: name the "
			     "subscription to end");
	} else if (session_end(rc->srv, r->subscription_id) < 0) {
		snprintf(msg, sizeof(msg),
			 "UnsubscribeRequest.subscription_id: no "
			 "subscription '%.64s' on this bridge",
			 r->subscription_id);
		rcall_finish(rc, GRPC_STATUS_NOT_FOUND, msg);
	} else {
		len = protobuf_c_message_get_packed_size(&resp.base);
		out = malloc(len + 1);
		if (out) {
			protobuf_c_message_pack(&resp.base, out);
			send_unary(rc, out, len);
		} else {
			rcall_finish(rc, GRPC_STATUS_RESOURCE_EXHAUSTED,
				     "out of memory");
		}
	}
	if (r)
		expbus__v1__unsubscribe_request__free_unpacked(r, NULL);
}

static void on_recv(struct tag *t, bool ok)
{
	struct rcall *rc = OWNER(t, struct rcall, recv_tag);
	grpc_slice req;

	if (!ok || !rc->recv) {
		if (!rc->status_sent)
			rcall_finish(rc, GRPC_STATUS_INVALID_ARGUMENT,
				     "the call carried no request message");
		rcall_unref(rc);
		return;
	}
	if (grpc_byte_buffer_length(rc->recv) > MAX_REQUEST) {
		rcall_finish(rc, GRPC_STATUS_INVALID_ARGUMENT,
			     "the request is over 1 MiB");
		rcall_unref(rc);
		return;
	}
	req = request_bytes(rc);
	if (method_is(rc, M_STREAM))
		serve_stream(rc, req);
	else if (method_is(rc, M_STATS))
		serve_unary(rc, req, true);
	else if (method_is(rc, M_LIST))
		serve_unary(rc, req, false);
	else if (method_is(rc, M_UNSUB))
		serve_unsubscribe(rc, req);
	else
		rcall_finish(rc, GRPC_STATUS_UNIMPLEMENTED,
			     "expbus-grpc serves expbus.v1.ExperienceService "
			     "(proto/expbus.proto) only");
	grpc_slice_unref(req);
	rcall_unref(rc);
}

static void on_close(struct tag *t, bool ok)
{
	struct rcall *rc = OWNER(t, struct rcall, close_tag);
	struct session *s;

	(void)ok;
	/* rc->session is read without the session's lock: it is set before
	 * the first send and cleared only here or by a takeover, which
	 * cancels the call first and leaves clearing to session.c. */
	s = rc->session;
	if (s)
		session_call_closed(s, rc);
	rcall_unref(rc);
}

static void on_send(struct tag *t, bool ok)
{
	struct rcall *rc = OWNER(t, struct rcall, send_tag);

	if (rc->session)
		session_send_done(rc->session, rc, ok);
	rcall_unref(rc);
}

static void on_status(struct tag *t, bool ok)
{
	(void)ok;
	rcall_unref(OWNER(t, struct rcall, status_tag));
}

static void on_shutdown(struct tag *t, bool ok)
{
	(void)t;
	(void)ok;
}

int server_run(const struct bridge_config *cfg, volatile int *stop_signal,
	       void (*ready)(void))
{
	struct server srv;
	grpc_server_credentials *creds;
	grpc_arg args[2];
	grpc_channel_args chargs = {.num_args = 2, .args = args};
	char why[512] = "";
	int rc = BRIDGE_EXIT_OK;
	bool shut = false;
	int port;
	struct tag shutdown_tag = {.done = on_shutdown};

	memset(&srv, 0, sizeof(srv));
	srv.cfg = cfg;
	pthread_mutex_init(&srv.lock, NULL);
	srv.stopping = false;
	atomic_init(&srv.pumps, 0);
	if (expbus_new(cfg->socket, &srv.bus) < 0) {
		fprintf(stderr, "expbus-grpc: out of memory\n");
		return BRIDGE_EXIT_START;
	}
	creds = auth_credentials(cfg, why, sizeof(why));
	if (!creds) {
		fprintf(stderr, "expbus-grpc: %s\n", why);
		expbus_free(srv.bus);
		return BRIDGE_EXIT_START;
	}
	args[0].type = GRPC_ARG_INTEGER;
	args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[0].value.integer = MAX_REQUEST;
	args[1].type = GRPC_ARG_INTEGER;
	args[1].key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
	args[1].value.integer = -1;
	srv.cq = grpc_completion_queue_create_for_next(NULL);
	srv.server = grpc_server_create(&chargs, NULL);
	grpc_server_register_completion_queue(srv.server, srv.cq, NULL);
	port = grpc_server_add_http2_port(srv.server, cfg->listen, creds);
	if (port <= 0) {
		fprintf(stderr,
			"expbus-grpc: cannot listen on %s (in use, or not "
			"HOST:PORT of this machine)\n",
			cfg->listen);
		rc = BRIDGE_EXIT_START;
	}
	grpc_server_credentials_release(creds);
	if (rc == BRIDGE_EXIT_OK) {
		grpc_server_start(srv.server);
		for (int i = 0; i < 16; i++)
			(void)request_call(&srv);
		/* Tests and scripts read the port from this line. */
		fprintf(stderr,
			"expbus-grpc: serving %s port %d for the broker at %s "
			"(%s)\n",
			cfg->listen, port, expbus_socket_path(srv.bus),
			cfg->tls_cert ? "TLS" : "plaintext");
		if (ready)
			ready();
	} else {
		grpc_server_start(srv.server);
		*stop_signal = 1;
	}
	for (;;) {
		gpr_timespec dl =
		    gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
				 gpr_time_from_millis(200, GPR_TIMESPAN));
		grpc_event ev = grpc_completion_queue_next(srv.cq, dl, NULL);

		if (ev.type == GRPC_OP_COMPLETE) {
			struct tag *t = ev.tag;

			t->done(t, ev.success != 0);
			if (t == &shutdown_tag)
				grpc_completion_queue_shutdown(srv.cq);
		} else if (ev.type == GRPC_QUEUE_SHUTDOWN) {
			break;
		}
		if (*stop_signal && !shut) {
			shut = true;
			srv.stopping = true;
			session_stop_all(&srv);
			grpc_server_shutdown_and_notify(srv.server, srv.cq,
							&shutdown_tag);
			grpc_server_cancel_all_calls(srv.server);
		}
	}
	grpc_server_destroy(srv.server);
	grpc_completion_queue_destroy(srv.cq);
	expbus_free(srv.bus);
	pthread_mutex_destroy(&srv.lock);
	return rc;
}
