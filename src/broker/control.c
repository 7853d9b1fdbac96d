/* control.c — the broker's side of the control protocol: the receive path
 * of a control connection, attach and subscribe requests (the objects
 * themselves are made by producer.c and subscription.c), stats requests,
 * hang-ups (a peer that dies), and peers that break the protocol. Every
 * refusal gets a reply a person can act on; every offender is disconnected
 * with a logged reason. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "conn.h"
#include "control.h"
#include "producer.h"
#include "ready.h"
#include "stats.h"
#include "stream.h"
#include "subscription.h"

static void handle_attach(struct broker *b, struct conn *c, const void *buf,
			  size_t len, int resume_fd)
{
	const struct msg_attach *m = buf;
	struct msg_ok_attach ok;
	char err[512], text[SCHEMA_TEXT_MAX];
	struct schema *schema = NULL;
	struct producer *p = NULL;
	struct stream *s = NULL;
	struct stats_producer *st;
	uint32_t cap;
	int fds[4] = {-1, -1, -1, -1}, e;
	bool created = false;

	e = proto_check_attach(m, len, resume_fd >= 0, err, sizeof(err));
	if (e == -EBADMSG) {
		control_violation(b, c, "%s", err);
		return;
	}
	if (e < 0) {
		proto_send_error(c->fd, -e, "%s", err);
		return;
	}
	memcpy(text, m + 1, m->schema_len);
	text[m->schema_len] = '\0';
	schema = malloc(sizeof(*schema));
	if (!schema) {
		proto_send_error(c->fd, ENOMEM, "broker out of memory");
		return;
	}
	if (schema_parse(text, schema, err, sizeof(err)) < 0) {
		proto_send_error(c->fd, EINVAL, "schema: %s", err);
		goto out;
	}
	s = stream_find(b, m->stream);
	if (s && schema_diff(&s->schema, schema, err, sizeof(err))) {
		proto_send_error(c->fd, EINVAL,
				 "schema mismatch on stream '%s': %s (stream "
				 "schema: %s)",
				 m->stream, err, s->canonical);
		goto out;
	}
	cap = m->ring_slots ? m->ring_slots : producer_default_slots(b, schema);
	if (resume_fd < 0 && (cap < MIN_RING_SLOTS || cap > MAX_RING_SLOTS ||
			      (cap & (cap - 1)))) {
		proto_send_error(
		    c->fd, EINVAL,
		    "ring_slots %u must be a power of two from %u to %u", cap,
		    MIN_RING_SLOTS, MAX_RING_SLOTS);
		goto out;
	}
	st = stats_producer_slot(b);
	if (!st) {
		proto_send_error(c->fd, EMFILE,
				 "the broker serves at most %d producers",
				 STATS_MAX_PRODUCERS);
		goto out;
	}
	if (!s) {
		s = stream_create(b, m->stream, schema);
		if (!s) {
			proto_send_error(c->fd, EMFILE,
					 "the broker serves at most %d streams "
					 "at once",
					 STATS_MAX_STREAMS);
			goto out;
		}
		created = true;
	}
	e = producer_new(b, s, cap, resume_fd, &p, &fds[0], err, sizeof(err));
	if (e < 0) {
		proto_send_error(c->fd, -e, "%s", err);
		goto out;
	}
	cap = (uint32_t)
		  p->ring.capacity; /* the checked copy, not shared memory */
	if (stream_add_producer(s, p) < 0) {
		proto_send_error(c->fd, ENOMEM, "broker out of memory");
		(void)close(fds[0]);
		producer_free(b, p);
		goto out;
	}
	/* Its bit in its uid's ready set: then a commit into its parked ring
	 * costs it no syscall while the broker coalesces (ready.c). */
	if ((m->flags & ATTACH_READY) &&
	    (e = ready_join(b, p, c->uid, err, sizeof(err))) < 0) {
		proto_send_error(c->fd, -e, "%s", err);
		(void)close(fds[0]);
		producer_free(b, p);
		goto out;
	}
	/* A broker that restarted (adopt_ring read how many subscriptions
	 * the last one had): the stream waits for them to subscribe again,
	 * or, none known, for a first subscriber, before records are routed
	 * without them. */
	if (resume_fd >= 0 && !s->hold_until_ns && b->cfg.resume_hold_ns &&
	    (s->subs_before ? s->subs_back < s->subs_before
			    : !s->n_subs && !s->n_groups))
		s->hold_until_ns = b->now_ns + b->cfg.resume_hold_ns;
	stream_note_subscriptions(b,
				  s); /* into this ring too, before the reply */
	memset(&p->mine, 0, sizeof(p->mine));
	p->mine.id = p->id;
	p->mine.stream_id = s->id;
	p->mine.pid = (uint32_t)c->pid;
	p->mine.uid = (uint32_t)c->uid;
	p->mine.capacity = cap;
	p->mine.slot_size = (uint32_t)p->ring.slot_size;
	p->mine.in_use = 1;
	stats_claim_producer(b, p, st);
	memset(&ok, 0, sizeof(ok));
	proto_header(&ok.h, MSG_OK_ATTACH, sizeof(ok));
	ok.producer_id = p->id;
	ok.capacity = cap;
	ok.slot_size = (uint32_t)p->ring.slot_size;
	ok.data_size = s->schema.data_size;
	ok.segment_size = p->seg_size;
	ok.schema_hash = s->schema.hash;
	fds[1] = p->doorbell->fd;
	fds[2] = p->space_fd;
	if (p->ready) {
		fds[3] = p->ready->fd;
		ok.ready_bit = p->ready_bit;
	}
	e = proto_send(c->fd, &ok, sizeof(ok), fds, p->ready ? 4 : 3);
	(void)close(fds[0]);
	p->conn = c;
	c->kind = CONN_PRODUCER;
	c->producer = p;
	producer_activate(b, p); /* a resumed ring may hold records */
	if (e < 0) {
		log_info(b, "producer %u: reply failed: %s", p->id,
			 strerror(-e));
		control_hangup(b, c);
	} else {
		log_info(
		    b,
		    "producer %u attached to '%s' (pid %d uid %d, %u slots "
		    "of %u bytes)",
		    p->id, s->name, (int)c->pid, (int)c->uid, cap,
		    (uint32_t)p->ring.slot_size);
	}
out:
	/* A refused first producer leaves no empty stream behind. */
	if (created && !s->n_producers && !s->n_subs && !s->n_groups)
		stream_free(b, s);
	free(schema);
}

static void handle_subscribe(struct broker *b, struct conn *c, const void *buf,
			     size_t len)
{
	const struct msg_subscribe *m = buf;
	struct {
		struct msg_ok_subscribe m;
		char text[SCHEMA_TEXT_MAX];
	} ok;
	struct subscription *sub = NULL;
	struct stats_sub *st;
	struct stream *s;
	char err[512];
	int fds[4] = {-1, -1, -1, -1}, e;
	size_t tl;

	e = proto_check_subscribe(m, len, err, sizeof(err));
	if (e == -EBADMSG) {
		control_violation(b, c, "%s", err);
		return;
	}
	if (e < 0) {
		proto_send_error(c->fd, -e, "%s", err);
		return;
	}
	s = stream_find(b, m->stream);
	if (!s) {
		proto_send_error(
		    c->fd, ENOENT,
		    "no stream '%s' yet: a stream exists once a producer "
		    "attaches to it",
		    m->stream);
		return;
	}
	st = stats_sub_slot(b);
	if (!st) {
		proto_send_error(c->fd, EMFILE,
				 "the broker serves at most %d subscriptions",
				 STATS_MAX_SUBS);
		return;
	}
	e = subscription_new(b, s, m, &sub, &fds[0], &fds[1], err, sizeof(err));
	if (e < 0) {
		proto_send_error(c->fd, -e, "%s", err);
		return;
	}
	if (stream_add_subscription(b, s, sub, m->group) < 0) {
		proto_send_error(c->fd, ENOMEM, "broker out of memory");
		(void)close(fds[0]);
		(void)close(fds[1]);
		subscription_free(b, sub);
		return;
	}
	memset(&sub->mine, 0, sizeof(sub->mine));
	sub->mine.id = sub->id;
	sub->mine.stream_id = s->id;
	sub->mine.pid = (uint32_t)c->pid;
	sub->mine.uid = (uint32_t)c->uid;
	sub->mine.policy = sub->policy;
	sub->mine.batch_size = sub->batch_size;
	sub->mine.max_delay_us = (uint32_t)(sub->max_delay_ns / 1000);
	sub->mine.capacity = (uint32_t)sub->ring.capacity;
	sub->mine.min_turn = m->min_turn;
	sub->mine.n_games = m->n_games;
	sub->mine.n_players = m->n_players;
	memcpy(sub->mine.group, m->group, sizeof(sub->mine.group));
	sub->mine.in_use = 1;
	stats_claim_sub(b, sub, st);
	if (m->flags & SUBSCRIBE_RESUMING)
		s->subs_back++;
	stream_note_subscriptions(b, s); /* before the reply */
	sub->conn = c;
	c->kind = CONN_SUBSCRIBER;
	c->sub = sub;

	memset(&ok.m, 0, sizeof(ok.m));
	tl = strlen(s->canonical);
	memcpy(ok.text, s->canonical, tl);
	ok.m.subscription_id = sub->id;
	ok.m.capacity = (uint32_t)sub->ring.capacity;
	ok.m.segment_size = sub->seg_size;
	ok.m.schema_hash = s->schema.hash;
	ok.m.schema_len = (uint32_t)tl;
	ok.m.batch_size = sub->batch_size;
	proto_header(&ok.m.h, MSG_OK_SUBSCRIBE, sizeof(ok.m) + tl);
	fds[2] = sub->event_fd;
	fds[3] = sub->doorbell->fd;
	e = proto_send(c->fd, &ok, sizeof(ok.m) + tl, fds, 4);
	(void)close(fds[0]);
	(void)close(fds[1]);
	if (e < 0) {
		log_info(b, "subscription %u: reply failed: %s", sub->id,
			 strerror(-e));
		control_hangup(b, c);
		return;
	}
	log_info(
	    b,
	    "subscription %u to '%s' (pid %d uid %d): batch %u, delay %u us, "
	    "%s%s%s, %u games, %u players, turn >= %u",
	    sub->id, s->name, (int)c->pid, (int)c->uid, sub->batch_size,
	    sub->mine.max_delay_us, sub->policy ? "lossy" : "lossless",
	    m->group[0] ? ", group " : "", m->group, m->n_games, m->n_players,
	    m->min_turn);
}

static void handle_stats(struct broker *b, struct conn *c)
{
	struct msg_ok_stats ok;
	int e;

	memset(&ok, 0, sizeof(ok));
	proto_header(&ok.h, MSG_OK_STATS, sizeof(ok));
	ok.segment_size = b->stats_size;
	e = proto_send(c->fd, &ok, sizeof(ok), &b->stats_fd, 1);
	if (e < 0)
		log_debug(b, "stats reply failed: %s", strerror(-e));
	c->kind = CONN_STATS;
	/* The reply carries all there is: holding the connection open would
	 * only hold one of the broker's connections (and an fd). */
	control_hangup(b, c);
}

void control_message(struct broker *b, struct conn *c)
{
	/* A union keeps the buffer aligned for the message structs. */
	union {
		struct msg_header h;
		uint8_t bytes[PROTO_MAX_MSG];
	} *buf = malloc(sizeof(*buf));
	char why[256];
	int fds[PROTO_MAX_FDS], nfds = 0, type = -1;
	ssize_t n;

	if (!buf) {
		log_error(b, "out of memory reading a message");
		return;
	}
	n = proto_recv(c->fd, buf, sizeof(*buf), fds, &nfds);
	if (n == -EAGAIN || n == -EINTR)
		goto out;
	if (n == 0 || n == -ECONNRESET) {
		control_hangup(b, c);
		goto out;
	}
	if (n == -EMSGSIZE) {
		control_violation(b, c,
				  "message larger than %u bytes or with too "
				  "many fds",
				  PROTO_MAX_MSG);
		goto out;
	}
	if (n < 0) {
		log_warn(b, "reading from pid %d: %s", (int)c->pid,
			 strerror((int)-n));
		control_hangup(b, c);
		goto out;
	}
	type = proto_check(buf, (size_t)n, why, sizeof(why));
	/* Only a resuming producer sends an fd: exactly one, with ATTACH. */
	if (nfds && !(type == MSG_ATTACH && nfds == 1 && c->kind == CONN_NEW)) {
		proto_close_fds(fds, nfds);
		control_violation(b, c, "sent %d unexpected file descriptor(s)",
				  nfds);
		goto out;
	}
	if (type < 0) {
		proto_close_fds(fds, nfds);
		proto_send_error(
		    c->fd, type == -EPROTONOSUPPORT ? EPROTONOSUPPORT : EBADMSG,
		    "%s", why);
		control_violation(b, c, "%s", why);
		goto out;
	}
	if (c->kind != CONN_NEW) {
		control_violation(b, c,
				  "message type %d after the connection "
				  "already has a role",
				  type);
		goto out;
	}
	switch (type) {
	case MSG_ATTACH:
		if (b->stopping)
			proto_send_error(c->fd, ESHUTDOWN,
					 "the broker is stopping");
		else
			handle_attach(b, c, buf, (size_t)n, nfds ? fds[0] : -1);
		break;
	case MSG_SUBSCRIBE:
		if (b->stopping)
			proto_send_error(c->fd, ESHUTDOWN,
					 "the broker is stopping");
		else
			handle_subscribe(b, c, buf, (size_t)n);
		break;
	case MSG_STATS:
		if (n != sizeof(struct msg_stats))
			control_violation(b, c, "stats request of %zd bytes",
					  n);
		else
			handle_stats(b, c);
		break;
	default:
		proto_send_error(c->fd, EBADMSG, "unknown message type %d",
				 type);
		control_violation(b, c, "unknown message type %d", type);
	}
out:
	/* Every fd received is closed on every path (a resumed ring stays
	 * mapped; proto_recv already closed those of an empty or truncated
	 * message, and those past PROTO_MAX_FDS). */
	proto_close_fds(fds, nfds);
	free(buf);
}

/* Closes p's connection, if it has one, and frees it. */
static void producer_close(struct broker *b, struct producer *p)
{
	if (p->conn) {
		p->conn->producer = NULL;
		conn_close(b, p->conn);
		p->conn = NULL;
	}
	producer_free(b, p);
}

static void subscription_gone(struct broker *b, struct subscription *sub)
{
	struct stream *s = sub->stream;

	sub->conn = NULL;
	sub->dead = true;
	/* Where it had got to: its release counter, if that is possible. */
	(void)ring_producer_free(&sub->ring, 0, UINT64_MAX);
	if (!stream_remove_subscription(b, s, sub))
		subscription_free(b, sub);
	stream_note_subscriptions(
	    b, s); /* one fewer to wait for after a restart */
}

void control_hangup(struct broker *b, struct conn *c)
{
	if (c->producer) {
		struct producer *p = c->producer;
		log_info(b,
			 "producer %u (pid %d) hung up; delivering what it "
			 "committed",
			 p->id, (int)c->pid);
		p->conn = NULL;
		p->dead = true;
		/* Drained by the data path, then reaped. */
		producer_activate(b, p);
		b->reap_pending = true;
		p->mine.in_use = 2;
		stats_touch_producer(b, p);
		c->producer = NULL;
	}
	if (c->sub) {
		struct subscription *sub = c->sub;
		log_info(b, "subscription %u (pid %d) hung up%s", sub->id,
			 (int)c->pid,
			 sub->group ? "; its group's records go to the others"
				    : "");
		c->sub = NULL;
		subscription_gone(b, sub);
	}
	conn_close(b, c);
}

void control_violation(struct broker *b, struct conn *c, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_warn(b, "disconnecting pid %d (uid %d): %s", (int)c->pid,
		 (int)c->uid, why);
	b->count.violations++;
	b->reap_pending = true;
	if (c->producer) {
		c->producer->broken = true;
		c->producer->conn = NULL;
		c->producer = NULL;
	}
	control_hangup(b, c);
}

void control_reap(struct broker *b)
{
	/* A walk over everything, but only after something asked for it (a
	 * hang-up, a violation, a drained or broken producer). */
	if (!b->reap_pending)
		return;
	b->reap_pending = false;
	for (int i = 0; i < STATS_MAX_STREAMS; i++) {
		struct stream *s = b->streams[i];
		if (!s)
			continue;
		for (uint32_t j = 0; j < s->n_producers;) {
			struct producer *p = s->producers[j];
			/* Dead and all taken: its head no longer matters (no
			 * one will hand its ring over again). */
			if (p->broken ||
			    (p->dead &&
			     ring_consumer_ready(
				 &p->ring, p->taken - p->ring.pos, 1) == 0)) {
				producer_close(b, p);
				continue;
			}
			j++;
		}
		for (uint32_t j = 0; j < s->n_subs;) {
			struct subscription *sub = s->subs[j];
			if (sub->dead && sub->conn) {
				control_violation(
				    b, sub->conn,
				    "broke the batch ring protocol");
				continue;
			}
			j++;
		}
		for (uint32_t g = 0; g < s->n_groups; g++) {
			for (uint32_t j = 0; j < s->groups[g]->n_members;) {
				struct subscription *sub =
				    s->groups[g]->members[j];
				if (sub->dead && sub->conn) {
					control_violation(
					    b, sub->conn,
					    "broke the batch ring protocol");
					/* the group may be gone now: look
					 * again next time */
					b->reap_pending = true;
					goto next_stream;
				}
				j++;
			}
		}
	next_stream:;
	}
}

void control_expire_new(struct broker *b)
{
	for (struct conn *c = b->conns, *next; c; c = next) {
		uint64_t held;

		next = c->next;
		if (c->closed || c->kind != CONN_NEW ||
		    b->now_ns - c->accepted_ns <= b->cfg.idle_timeout_ns)
			continue;
		/* A flood of idle connections must not flood the log. */
		if (ratelimit_pass(&b->idle_log, b->now_ns, &held))
			log_warn(b,
				 "closing the connection of pid %d (uid %d): "
				 "no request within %llu ms (%llu more closed "
				 "since the last line)",
				 (int)c->pid, (int)c->uid,
				 (unsigned long long)(b->cfg.idle_timeout_ns /
						      1000000u),
				 (unsigned long long)held);
		control_hangup(b, c);
	}
}

/* Frees s and all it holds: producers, then subscriptions (hung up). */
static void close_stream(struct broker *b, struct stream *s)
{
	while (s->n_producers)
		producer_close(b, s->producers[s->n_producers - 1]);
	while (s->n_subs) {
		struct subscription *sub = s->subs[s->n_subs - 1];
		if (sub->conn)
			control_hangup(b, sub->conn);
		else
			s->n_subs--;
	}
	for (uint32_t i = 0; i < s->n_groups; i++) {
		struct consumer_group *g = s->groups[i];
		/* A hang-up may free the group: start over each time. */
		if (g->n_members && g->members[0]->conn) {
			control_hangup(b, g->members[0]->conn);
			i = (uint32_t)-1;
		}
	}
	stream_free(b, s);
}

void control_close_all(struct broker *b)
{
	for (int i = 0; i < STATS_MAX_STREAMS; i++)
		if (b->streams[i])
			close_stream(b, b->streams[i]);
	conn_free_all(b);
}
