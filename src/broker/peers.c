/* peers.c — the broker's side of the control protocol: attach and
 * subscribe requests, stats requests, hang-ups (a peer that dies), and
 * peers that break the protocol. Every refusal gets a reply a person can
 * act on; every offender is disconnected with a logged reason. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "broker.h"
#include "shm.h"

#define DEFAULT_BATCH_SLOTS 8
#define MAX_BATCH_SIZE	    65536
#define MAX_BATCH_SLOTS	    1024
#define MAX_DELAY_US	    60000000u
#define MIN_RING_SLOTS	    16
#define MAX_RING_SLOTS	    (1u << 24)
#define RESUME_GRACE_NS	    (2ull * 1000000000u)

static struct stats_producer *stats_producer_slot(struct broker *b)
{
	for (int i = 0; i < STATS_MAX_PRODUCERS; i++)
		if (!b->stats->producers[i].in_use)
			return &b->stats->producers[i];
	return NULL;
}

static struct stats_sub *stats_sub_slot(struct broker *b)
{
	for (int i = 0; i < STATS_MAX_SUBS; i++)
		if (!b->stats->subs[i].in_use)
			return &b->stats->subs[i];
	return NULL;
}

static uint32_t default_ring_slots(struct broker *b, const struct schema *s)
{
	uint64_t slot =
	    align_up(sizeof(struct expbus_record_header) + s->data_size, 8);
	uint64_t n = b->cfg.ring_bytes / slot, p = MIN_RING_SLOTS;

	while (p * 2 <= n && p * 2 <= 65536)
		p *= 2;
	return (uint32_t)p;
}

/* Takes over a ring that a previous broker gave this producer: the records
 * it committed and that broker never took are delivered from here. The
 * segment is checked like any received fd, and its header like any counter
 * a peer can write. Returns 0, or -errno with the reason in err. */
static int adopt_ring(struct broker *b, struct stream *s, int fd,
		      struct producer *p, char *err, size_t errlen)
{
	uint64_t slot = align_up(
	    sizeof(struct expbus_record_header) + s->schema.data_size, 8);
	struct producer_ring *seg;
	uint64_t head, tail;
	uint32_t id;
	size_t size;
	void *addr;
	int e;

	e = shm_check(fd, PRODUCER_RING_DATA_OFFSET, b->cfg.max_segment,
		      SHM_SEALS_SHARED, &size);
	if (e < 0) {
		snprintf(err, errlen,
			 "the ring to resume is not a sealed memfd "
			 "of at most %llu bytes",
			 (unsigned long long)b->cfg.max_segment);
		return e;
	}
	e = shm_map(fd, size, 1, &addr);
	if (e < 0) {
		snprintf(err, errlen, "cannot map the ring to resume: %s",
			 strerror(-e));
		return e;
	}
	seg = addr;
	/* Read once: the producer can write its header. */
	id = *(volatile uint32_t *)&seg->producer_id;
	head = atomic_load_explicit(&seg->cons.pos, memory_order_relaxed);
	/* Acquire: the producer's records up to tail are written. */
	tail = atomic_load_explicit(&seg->prod.pos, memory_order_acquire);
	if (seg->seg.magic != MAGIC_PRODUCER_RING ||
	    seg->seg.version != LAYOUT_VERSION || seg->seg.size != size ||
	    seg->capacity < MIN_RING_SLOTS || seg->capacity > MAX_RING_SLOTS ||
	    (seg->capacity & (seg->capacity - 1)) || seg->slot_size != slot ||
	    seg->data_size != s->schema.data_size ||
	    seg->schema_hash != s->schema.hash ||
	    seg->data_offset != PRODUCER_RING_DATA_OFFSET ||
	    PRODUCER_RING_DATA_OFFSET + (uint64_t)seg->capacity * slot > size ||
	    tail - head > seg->capacity || id == 0) {
		shm_unmap(addr, size);
		snprintf(err, errlen,
			 "the ring to resume does not match its "
			 "stream's schema or layout, or its counters "
			 "are impossible");
		return -EINVAL;
	}
	/* The ring keeps its producer id across brokers (issue 9): readers
	 * drop the (id, seq) they already delivered. */
	p->id = id;
	if (id > b->next_producer_id)
		b->next_producer_id = id;
	p->seg = seg;
	p->seg_size = size;
	ring_init_consumer(&p->ring, &seg->prod, &seg->cons,
			   (uint8_t *)seg + seg->data_offset, slot,
			   seg->capacity);
	log_info(b,
		 "producer %u resumes a ring with %llu records not yet taken "
		 "(from %llu)",
		 p->id, (unsigned long long)(tail - head),
		 (unsigned long long)head);
	return 0;
}

static void handle_attach(struct broker *b, struct conn *c, const void *buf,
			  size_t len, int resume_fd)
{
	const struct msg_attach *m = buf;
	struct msg_ok_attach ok;
	char err[512], text[SCHEMA_TEXT_MAX];
	struct schema *schema = NULL;
	struct producer *p = NULL;
	struct stream *s;
	struct stats_producer *st;
	uint32_t cap;
	int fds[3] = {-1, b->wake_fd, -1}, e;

	if (len < sizeof(*m) || m->schema_len != len - sizeof(*m) ||
	    m->schema_len >= SCHEMA_TEXT_MAX) {
		peer_violation(b, c,
			       "attach request of %zu bytes does not match "
			       "its schema length",
			       len);
		return;
	}
	if ((m->flags & ~ATTACH_RESUME) ||
	    !(m->flags & ATTACH_RESUME) != (resume_fd < 0)) {
		peer_violation(b, c, "attach flags 0x%x do not match the %s fd",
			       m->flags, resume_fd < 0 ? "missing" : "sent");
		return;
	}
	if (proto_check_name(m->stream, 0) < 0) {
		proto_send_error(
		    c->fd, EINVAL,
		    "stream name must be 1-63 characters of letters, "
		    "digits, '_', '.' and '-'");
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
	cap = m->ring_slots ? m->ring_slots : default_ring_slots(b, schema);
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
	if (!s && !(s = stream_create(b, m->stream, schema))) {
		proto_send_error(c->fd, EMFILE,
				 "the broker serves at most %d streams",
				 STATS_MAX_STREAMS);
		goto out;
	}
	if (resume_fd >= 0 && !s->n_subs && !s->n_groups) {
		/* A broker that restarted: give trainers a moment to come
		 * back before records no one subscribed to are consumed. */
		s->hold_until_ns = b->now_ns + RESUME_GRACE_NS;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		proto_send_error(c->fd, ENOMEM, "broker out of memory");
		goto out;
	}
	p->id = ++b->next_producer_id;
	p->stream = s;
	p->space_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->space_fd >= 0 && resume_fd >= 0) {
		e = adopt_ring(b, s, resume_fd, p, err, sizeof(err));
		if (e < 0) {
			proto_send_error(c->fd, -e, "%s", err);
			goto fail;
		}
		fds[0] = dup(resume_fd);
		cap = p->seg->capacity;
		e = fds[0] < 0 ? -errno : 0;
	} else {
		e = p->space_fd < 0
			? -errno
			: segment_producer_ring(b, s, cap, p, &fds[0]);
	}
	if (e < 0) {
		proto_send_error(c->fd, -e,
				 "cannot create a ring of %u records: %s%s",
				 cap, strerror(-e),
				 e == -EFBIG ? " (larger than --max-segment; "
					       "use fewer ring_slots)"
					     : "");
		goto fail;
	}
	if (stream_add_producer(s, p) < 0) {
		proto_send_error(c->fd, ENOMEM, "broker out of memory");
		goto fail;
	}
	memset(st, 0, sizeof(*st));
	st->id = p->id;
	st->stream_id = s->id;
	st->pid = (uint32_t)c->pid;
	st->uid = (uint32_t)c->uid;
	st->capacity = cap;
	st->slot_size = p->seg->slot_size;
	st->in_use = 1;
	p->st = st;
	memset(&ok, 0, sizeof(ok));
	proto_header(&ok.h, MSG_OK_ATTACH, sizeof(ok));
	ok.producer_id = p->id;
	ok.capacity = cap;
	ok.slot_size = p->seg->slot_size;
	ok.data_size = s->schema.data_size;
	ok.segment_size = p->seg_size;
	ok.schema_hash = s->schema.hash;
	fds[2] = p->space_fd;
	e = proto_send(c->fd, &ok, sizeof(ok), fds, 3);
	(void)close(fds[0]);
	p->conn = c;
	c->kind = CONN_PRODUCER;
	c->producer = p;
	if (e < 0) {
		log_info(b, "producer %u: reply failed: %s", p->id,
			 strerror(-e));
		peer_hangup(b, c);
	} else {
		log_info(
		    b,
		    "producer %u attached to '%s' (pid %d uid %d, %u slots "
		    "of %u bytes)",
		    p->id, s->name, (int)c->pid, (int)c->uid, cap,
		    p->seg->slot_size);
	}
	free(schema);
	return;
fail:
	if (fds[0] >= 0)
		(void)close(fds[0]);
	if (p) {
		if (p->seg)
			shm_unmap(p->seg, p->seg_size);
		if (p->space_fd >= 0)
			(void)close(p->space_fd);
		free(p);
	}
out:
	free(schema);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static uint32_t *sorted_ids(const uint32_t *ids, uint32_t n)
{
	uint32_t *out;

	if (n == 0)
		return NULL;
	out = malloc(sizeof(*out) * n);
	if (!out)
		return NULL;
	memcpy(out, ids, sizeof(*out) * n);
	qsort(out, n, sizeof(*out), cmp_u32);
	return out;
}

void subscription_free(struct broker *b, struct subscription *sub)
{
	(void)b;
	if (!sub)
		return;
	if (sub->open && sub->open_count) {
		sub->dropped_total += sub->open_count;
		if (sub->st)
			stat_add(&sub->st->dropped[DROP_SUBSCRIBER_GONE],
				 sub->open_count);
	}
	if (sub->st)
		sub->st->in_use = 0;
	shm_unmap(sub->seg, sub->seg_size);
	shm_unmap(sub->rel, RELEASE_PAGE_SIZE);
	if (sub->event_fd >= 0)
		(void)close(sub->event_fd);
	free(sub->filter.games);
	free(sub->filter.players);
	free(sub->notes);
	free(sub);
}

static const char *subscribe_check(const struct msg_subscribe *m, size_t len)
{
	if (len < sizeof(*m) || m->n_games > PROTO_MAX_FILTER ||
	    m->n_players > PROTO_MAX_FILTER ||
	    len != sizeof(*m) + 4ull * (m->n_games + m->n_players))
		return "";
	if (proto_check_name(m->stream, 0) < 0)
		return "stream name must be 1-63 characters of letters, digits, "
		       "'_', '.' and '-'";
	if (proto_check_name(m->group, 1) < 0)
		return "group name must be up to 63 characters of letters, "
		       "digits, '_', '.' and '-'";
	if (m->batch_size > MAX_BATCH_SIZE)
		return "batch_size must be at most 65536";
	if (m->max_delay_us > MAX_DELAY_US)
		return "max_delay_us must be at most 60 s";
	if (m->batch_slots &&
	    (m->batch_slots < 2 || m->batch_slots > MAX_BATCH_SLOTS ||
	     (m->batch_slots & (m->batch_slots - 1))))
		return "batch_slots must be a power of two from 2 to 1024";
	if (m->policy > EXPBUS_LOSSY)
		return "policy must be 0 (lossless) or 1 (lossy)";
	if (m->flags & ~EXPBUS_SUBSCRIBE_CHECKSUM)
		return "unknown subscription flags";
	return NULL;
}

static void handle_subscribe(struct broker *b, struct conn *c, const void *buf,
			     size_t len)
{
	const struct msg_subscribe *m = buf;
	const uint32_t *ids = (const uint32_t *)(m + 1);
	struct {
		struct msg_ok_subscribe m;
		char text[SCHEMA_TEXT_MAX];
	} ok;
	struct subscription *sub;
	struct stats_sub *st;
	struct stream *s;
	const char *why = subscribe_check(m, len);
	char err[512];
	uint32_t cap;
	int fds[4] = {-1, -1, -1, b->wake_fd}, e;
	size_t tl;

	if (why && !why[0]) {
		peer_violation(b, c,
			       "subscribe request of %zu bytes does not match "
			       "its filter lengths",
			       len);
		return;
	}
	if (why) {
		proto_send_error(c->fd, EINVAL, "%s", why);
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
	sub = calloc(1, sizeof(*sub));
	if (!sub) {
		proto_send_error(c->fd, ENOMEM, "broker out of memory");
		return;
	}
	sub->id = ++b->next_sub_id;
	sub->stream = s;
	sub->event_fd = -1;
	sub->batch_size = m->batch_size ? m->batch_size : b->cfg.default_batch;
	sub->max_delay_ns =
	    1000ull *
	    (m->max_delay_us ? m->max_delay_us : b->cfg.default_delay_us);
	sub->policy = (enum expbus_policy)m->policy;
	sub->flags = m->flags;
	sub->filter.min_turn = m->min_turn;
	sub->filter.n_games = m->n_games;
	sub->filter.n_players = m->n_players;
	sub->filter.games = sorted_ids(ids, m->n_games);
	sub->filter.players = sorted_ids(ids + m->n_games, m->n_players);
	if ((m->n_games && !sub->filter.games) ||
	    (m->n_players && !sub->filter.players)) {
		proto_send_error(c->fd, ENOMEM, "broker out of memory");
		goto fail;
	}
	cap = m->batch_slots ? m->batch_slots : DEFAULT_BATCH_SLOTS;
	sub->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sub->event_fd < 0) {
		proto_send_error(c->fd, errno, "eventfd: %s", strerror(errno));
		goto fail;
	}
	e = segment_batch_ring(b, sub, cap, &fds[0], &fds[1], err, sizeof(err));
	if (e < 0) {
		proto_send_error(c->fd, -e, "%s", err);
		goto fail;
	}
	sub->notes = calloc(sub->ring.capacity, sizeof(*sub->notes));
	if (!sub->notes) {
		proto_send_error(c->fd, ENOMEM, "broker out of memory");
		goto fail;
	}
	sub->noted = sub->ring.cached;
	if (stream_add_subscription(b, s, sub, m->group) < 0) {
		proto_send_error(c->fd, ENOMEM, "broker out of memory");
		goto fail;
	}
	memset(st, 0, sizeof(*st));
	st->id = sub->id;
	st->stream_id = s->id;
	st->pid = (uint32_t)c->pid;
	st->uid = (uint32_t)c->uid;
	st->policy = sub->policy;
	st->batch_size = sub->batch_size;
	st->max_delay_us = (uint32_t)(sub->max_delay_ns / 1000);
	st->capacity = cap;
	st->min_turn = m->min_turn;
	st->n_games = m->n_games;
	st->n_players = m->n_players;
	memcpy(st->group, m->group, sizeof(st->group));
	st->in_use = 1;
	sub->st = st;
	sub->conn = c;
	c->kind = CONN_SUBSCRIBER;
	c->sub = sub;

	memset(&ok.m, 0, sizeof(ok.m));
	tl = strlen(s->canonical);
	memcpy(ok.text, s->canonical, tl);
	ok.m.subscription_id = sub->id;
	ok.m.capacity = cap;
	ok.m.segment_size = sub->seg_size;
	ok.m.schema_hash = s->schema.hash;
	ok.m.schema_len = (uint32_t)tl;
	ok.m.batch_size = sub->batch_size;
	proto_header(&ok.m.h, MSG_OK_SUBSCRIBE, sizeof(ok.m) + tl);
	fds[2] = sub->event_fd;
	e = proto_send(c->fd, &ok, sizeof(ok.m) + tl, fds, 4);
	(void)close(fds[0]);
	(void)close(fds[1]);
	if (e < 0) {
		log_info(b, "subscription %u: reply failed: %s", sub->id,
			 strerror(-e));
		peer_hangup(b, c);
		return;
	}
	log_info(
	    b,
	    "subscription %u to '%s' (pid %d uid %d): batch %u, delay %u us, "
	    "%s%s%s, %u games, %u players, turn >= %u",
	    sub->id, s->name, (int)c->pid, (int)c->uid, sub->batch_size,
	    st->max_delay_us, sub->policy ? "lossy" : "lossless",
	    m->group[0] ? ", group " : "", m->group, m->n_games, m->n_players,
	    m->min_turn);
	return;
fail:
	if (fds[0] >= 0)
		(void)close(fds[0]);
	if (fds[1] >= 0)
		(void)close(fds[1]);
	subscription_free(b, sub);
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
}

void peer_message(struct broker *b, struct conn *c)
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
		peer_hangup(b, c);
		goto out;
	}
	if (n == -EMSGSIZE) {
		peer_violation(b, c,
			       "message larger than %u bytes or with too "
			       "many fds",
			       PROTO_MAX_MSG);
		goto out;
	}
	if (n < 0) {
		log_warn(b, "reading from pid %d: %s", (int)c->pid,
			 strerror((int)-n));
		peer_hangup(b, c);
		goto out;
	}
	type = proto_check(buf, (size_t)n, why, sizeof(why));
	/* Only a resuming producer sends an fd: exactly one, with ATTACH. */
	if (nfds && !(type == MSG_ATTACH && nfds == 1 && c->kind == CONN_NEW)) {
		proto_close_fds(fds, nfds);
		peer_violation(b, c, "sent %d unexpected file descriptor(s)",
			       nfds);
		goto out;
	}
	if (type < 0) {
		proto_close_fds(fds, nfds);
		proto_send_error(
		    c->fd, type == -EPROTONOSUPPORT ? EPROTONOSUPPORT : EBADMSG,
		    "%s", why);
		peer_violation(b, c, "%s", why);
		goto out;
	}
	if (c->kind != CONN_NEW) {
		peer_violation(b, c,
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
			peer_violation(b, c, "stats request of %zd bytes", n);
		else
			handle_stats(b, c);
		break;
	default:
		proto_send_error(c->fd, EBADMSG, "unknown message type %d",
				 type);
		peer_violation(b, c, "unknown message type %d", type);
	}
out:
	if (nfds == 1 && type == MSG_ATTACH)
		(void)close(fds[0]); /* a resumed ring stays mapped */
	free(buf);
}

void producer_free(struct broker *b, struct producer *p)
{
	stream_remove_producer(p->stream, p);
	if (p->conn) {
		p->conn->producer = NULL;
		conn_close(b, p->conn);
	}
	if (p->st)
		p->st->in_use = 0;
	shm_unmap(p->seg, p->seg_size);
	if (p->space_fd >= 0)
		(void)close(p->space_fd);
	log_info(b, "producer %u freed after %llu records", p->id,
		 (unsigned long long)p->ring.pos);
	free(p);
}

static void subscription_gone(struct broker *b, struct subscription *sub)
{
	sub->conn = NULL;
	sub->dead = true;
	/* Where it had got to: its release counter, if that is possible. */
	(void)ring_producer_free(&sub->ring, 0, UINT64_MAX);
	if (!stream_remove_subscription(b, sub->stream, sub))
		subscription_free(b, sub);
}

void peer_hangup(struct broker *b, struct conn *c)
{
	if (c->producer) {
		struct producer *p = c->producer;
		log_info(b,
			 "producer %u (pid %d) hung up; delivering what it "
			 "committed",
			 p->id, (int)c->pid);
		p->conn = NULL;
		p->dead = true;
		if (p->st)
			p->st->in_use = 2;
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

void peer_violation(struct broker *b, struct conn *c, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_warn(b, "disconnecting pid %d (uid %d): %s", (int)c->pid,
		 (int)c->uid, why);
	stat_add(&b->stats->violations, 1);
	if (c->producer) {
		c->producer->broken = true;
		c->producer->conn = NULL;
		c->producer = NULL;
	}
	peer_hangup(b, c);
}

void peers_reap(struct broker *b)
{
	for (int i = 0; i < STATS_MAX_STREAMS; i++) {
		struct stream *s = b->streams[i];
		if (!s)
			continue;
		for (uint32_t j = 0; j < s->n_producers;) {
			struct producer *p = s->producers[j];
			if (p->broken ||
			    (p->dead &&
			     ring_consumer_ready(&p->ring, 0, 1) == 0)) {
				producer_free(b, p);
				continue;
			}
			j++;
		}
		for (uint32_t j = 0; j < s->n_subs;) {
			struct subscription *sub = s->subs[j];
			if (sub->dead && sub->conn) {
				peer_violation(b, sub->conn,
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
					peer_violation(
					    b, sub->conn,
					    "broke the batch ring protocol");
					/* the group may be gone now */
					goto next_stream;
				}
				j++;
			}
		}
	next_stream:;
	}
}
