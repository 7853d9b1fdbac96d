/* loop.c — the broker's io_uring event loop: accept connections, watch
 * them for requests and hang-ups, wake on the shared eventfd or a signal,
 * and between events run the data path; sleep only after telling every
 * ring (ring.c explains the protocol). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "shm.h"

enum op_tag {
	OP_POLL = 0,
	OP_ACCEPT = 1,
	OP_WAKE = 2,
	OP_SIGNAL = 3,
	OP_OTHER = 4
};
#define TAG_MASK	    7u
#define IDLE_SPIN_NS	    (50u * 1000u)
#define NEW_CONN_TIMEOUT_NS (10ull * 1000000000u)
#define MAX_SLEEP_NS	    (200ull * 1000000u)
#define DRAIN_NS	    (2ull * 1000000000u)

uint64_t broker_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct io_uring_sqe *get_sqe(struct broker *b)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&b->uring);

	if (!sqe) {
		/* Queue full: push what is there and take a fresh entry. */
		(void)io_uring_submit(&b->uring);
		sqe = io_uring_get_sqe(&b->uring);
	}
	b->uring_dirty = true;
	return sqe;
}

static void arm(struct broker *b, enum op_tag tag)
{
	struct io_uring_sqe *sqe = get_sqe(b);

	if (!sqe) {
		log_error(b, "io_uring submission queue unavailable");
		return;
	}
	switch (tag) {
	case OP_ACCEPT:
		io_uring_prep_accept(sqe, b->listen_fd, NULL, NULL,
				     SOCK_CLOEXEC | SOCK_NONBLOCK);
		break;
	case OP_WAKE:
		io_uring_prep_read(sqe, b->wake_fd, &b->wake_buf,
				   sizeof(b->wake_buf), 0);
		break;
	case OP_SIGNAL:
		io_uring_prep_read(sqe, b->signal_fd, b->signal_buf,
				   sizeof(b->signal_buf), 0);
		break;
	default:
		break;
	}
	io_uring_sqe_set_data64(sqe, tag);
}

static void arm_poll(struct broker *b, struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(b);

	if (!sqe)
		return;
	io_uring_prep_poll_add(sqe, c->fd, POLLIN | POLLRDHUP);
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | OP_POLL);
	c->poll_armed = true;
}

/* Frees connections that are closed and have no poll in flight. */
static void conns_sweep(struct broker *b)
{
	for (struct conn **pp = &b->conns; *pp;) {
		struct conn *c = *pp;
		if (c->closed && !c->poll_armed) {
			*pp = c->next;
			b->n_conns--;
			free(c);
			continue;
		}
		pp = &c->next;
	}
}

void conn_close(struct broker *b, struct conn *c)
{
	if (c->closed)
		return;
	c->closed = true;
	if (c->poll_armed) {
		/* The poll holds the file: cancel it; the connection is freed
		 * by conns_sweep once the poll's completion is back. */
		struct io_uring_sqe *sqe = get_sqe(b);
		if (sqe) {
			io_uring_prep_poll_remove(sqe, (uint64_t)(uintptr_t)c |
							   OP_POLL);
			io_uring_sqe_set_data64(sqe, OP_OTHER);
		}
	}
	(void)close(c->fd);
	c->fd = -1;
}

static void on_accept(struct broker *b, int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct conn *c;

	if (fd < 0) {
		if (fd != -EAGAIN && fd != -EINTR && fd != -ECANCELED)
			log_warn(b, "accept: %s", strerror(-fd));
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    b->n_conns >= BROKER_MAX_CONNS || !(c = calloc(1, sizeof(*c)))) {
		log_warn(b, "refusing a connection (%u open)", b->n_conns);
		(void)close(fd);
		return;
	}
	c->fd = fd;
	c->pid = cred.pid;
	c->uid = cred.uid;
	c->gid = cred.gid;
	c->accepted_ns = b->now_ns;
	c->next = b->conns;
	b->conns = c;
	b->n_conns++;
	log_debug(b, "connection from pid %d uid %d", (int)c->pid, (int)c->uid);
	arm_poll(b, c);
}

static void on_poll(struct broker *b, struct conn *c, int res)
{
	c->poll_armed = false;
	if (c->closed)
		return;
	if (res < 0)
		peer_hangup(b, c);
	else if (res & POLLIN)
		peer_message(b, c);
	else if (res & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL))
		peer_hangup(b, c);
	if (!c->closed)
		arm_poll(b, c);
}

static int handle_cqes(struct broker *b)
{
	struct io_uring_cqe *cqe;
	int n = 0;

	while (io_uring_peek_cqe(&b->uring, &cqe) == 0) {
		uint64_t data = io_uring_cqe_get_data64(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&b->uring, cqe);
		n++;
		switch (data & TAG_MASK) {
		case OP_POLL:
			on_poll(b,
				(struct conn *)(uintptr_t)(data &
							   ~(uint64_t)TAG_MASK),
				res);
			break;
		case OP_ACCEPT:
			on_accept(b, res);
			if (!b->stopping)
				arm(b, OP_ACCEPT);
			break;
		case OP_WAKE:
			arm(b, OP_WAKE);
			break;
		case OP_SIGNAL:
			if (res > 0 && !b->stopping) {
				log_info(b, "signal received: stopping");
				b->stopping = true;
			}
			arm(b, OP_SIGNAL);
			break;
		default:
			break;
		}
	}
	conns_sweep(b);
	return n;
}

static void check_release(struct subscription *sub, void *arg)
{
	/* Looks at the release counter even when the broker does not need
	 * room yet, so that a subscriber that lies is caught promptly. */
	if (!sub->dead)
		(void)merge_check_release(arg, sub);
	/* The open batch's fill, for the stats: here rather than per record
	 * on the data path (publishing sets it back to 0). */
	stat_set(&sub->st->open_records, sub->open ? sub->open_count : 0);
}

/* Closes connections that never said what they are, checks every
 * subscriber's release counter and refreshes the ring tails in the stats. */
static void housekeeping(struct broker *b)
{
	stream_each_subscription(b, check_release, b);
	merge_refresh_tails(b);
	for (struct conn *c = b->conns, *next; c; c = next) {
		next = c->next;
		if (!c->closed && c->kind == CONN_NEW &&
		    b->now_ns - c->accepted_ns > NEW_CONN_TIMEOUT_NS)
			peer_violation(b, c, "sent no request within 10 s");
	}
	stat_set(&b->stats->now_ns, b->now_ns);
}

static void sub_prepare(struct subscription *sub, void *arg)
{
	bool *ok = arg;

	if (sub->blocked && !sub->dead &&
	    ring_producer_prepare_sleep(&sub->ring, 0) != 0)
		*ok = false;
}

static void sub_done(struct subscription *sub, void *arg)
{
	(void)arg;
	ring_producer_sleep_done(&sub->ring);
	sub->blocked = false;
}

/* Raises the sleeping flag on every ring that could give us work and looks
 * at each once more. Returns false when there is work after all. */
static bool prepare_sleep(struct broker *b)
{
	bool ok = true;

	for (int i = 0; i < STATS_MAX_STREAMS; i++) {
		struct stream *s = b->streams[i];
		if (!s)
			continue;
		for (uint32_t j = 0; j < s->n_producers; j++) {
			struct producer *p = s->producers[j];
			/* A stalled ring waits for a subscriber's release,
			 * which wakes us through that batch ring instead. */
			if (p->broken || p->stalled || s->stalled)
				continue;
			if (ring_consumer_prepare_sleep(&p->ring, 0) != 0)
				ok = false;
		}
	}
	stream_each_subscription(b, sub_prepare, &ok);
	return ok;
}

static void finish_sleep(struct broker *b)
{
	for (int i = 0; i < STATS_MAX_STREAMS; i++) {
		struct stream *s = b->streams[i];
		if (!s)
			continue;
		for (uint32_t j = 0; j < s->n_producers; j++)
			ring_consumer_sleep_done(&s->producers[j]->ring);
	}
	stream_each_subscription(b, sub_done, NULL);
}

static void sleep_until(struct broker *b, uint64_t deadline)
{
	struct __kernel_timespec ts;
	struct io_uring_cqe *cqe;
	uint64_t wait = deadline > b->now_ns ? deadline - b->now_ns : 0;

	if (wait > MAX_SLEEP_NS)
		wait = MAX_SLEEP_NS;
	ts.tv_sec = (long long)(wait / 1000000000u);
	ts.tv_nsec = (long long)(wait % 1000000000u);
	if (prepare_sleep(b)) {
		stat_add(&b->stats->sleeps, 1);
		(void)io_uring_submit_and_wait_timeout(&b->uring, &cqe, 1, &ts,
						       NULL);
		b->uring_dirty = false;
	}
	finish_sleep(b);
}

static void drain_and_flush(struct broker *b)
{
	uint64_t until = broker_now() + DRAIN_NS;

	/* Take what producers committed, as long as subscribers make room,
	 * then publish every partial batch. */
	for (;;) {
		b->now_ns = broker_now();
		peers_reap(b);
		if (merge_pump(b) == 0 || b->now_ns > until)
			break;
	}
	merge_flush_due(b, b->now_ns, true);
}

int broker_run(struct broker *b)
{
	uint64_t last_submit = 0, last_house = 0, last_work = 0;

	arm(b, OP_ACCEPT);
	arm(b, OP_WAKE);
	arm(b, OP_SIGNAL);
	(void)io_uring_submit(&b->uring);
	log_info(b, "listening on %s", b->cfg.socket_path);
	for (;;) {
		uint64_t next;
		int work;

		b->now_ns = broker_now();
		work = merge_pump(b);
		next = merge_flush_due(b, b->now_ns, false);
		peers_reap(b);
		/* An event (a hang-up, say) may leave work for the next pass:
		 * count it as activity so the loop looks again before sleeping.
		 */
		if (handle_cqes(b) > 0)
			last_work = b->now_ns;
		stat_add(&b->stats->loops, 1);
		if (b->now_ns - last_house > 100000000u) {
			housekeeping(b);
			last_house = b->now_ns;
		}
		if (b->stopping)
			break;
		if (work > 0) {
			last_work = b->now_ns;
			/* While busy, enter the kernel now and then so that
			 * completions (new peers, hang-ups) keep flowing. */
			if (b->uring_dirty ||
			    b->now_ns - last_submit > 1000000u) {
				(void)io_uring_submit(&b->uring);
				b->uring_dirty = false;
				last_submit = b->now_ns;
			}
			continue;
		}
		/* Idle: look again for a few microseconds (yielding the CPU
		 * to producers) before the syscalls of a sleep; a time budget,
		 * not a pass count, since a pass costs more with more rings. */
		if (b->now_ns - last_work < IDLE_SPIN_NS) {
			if (b->uring_dirty) {
				(void)io_uring_submit(&b->uring);
				b->uring_dirty = false;
			}
			sched_yield();
			continue;
		}
		sleep_until(b, next);
		last_submit = broker_now();
	}
	drain_and_flush(b);
	log_info(b, "stopped; partial batches flushed");
	return 0;
}

/* Whether a live broker answers on path. A connect alone proves nothing:
 * a broker that died may leave its socket accepting into a backlog for a
 * moment (its io_uring is torn down asynchronously); a live one answers a
 * stats request. */
static int socket_in_use(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct msg_stats req;
	struct pollfd pfd;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), r = 0;

	if (fd < 0)
		return 0;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	proto_header(&req.h, MSG_STATS, sizeof(req));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    proto_send(fd, &req, sizeof(req), NULL, 0) == 0) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		r = poll(&pfd, 1, 1000) > 0 &&
		    !(pfd.revents & (POLLHUP | POLLERR));
	}
	(void)close(fd);
	return r;
}

/* Binds, sets the mode and listens on a temporary name beside path, then
 * renames it into place: the path never names a socket that is not yet
 * listening (a connect would be refused) or not yet restricted. */
static int listen_socket(struct broker *b)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *path = b->cfg.socket_path;
	mode_t mode = b->cfg.has_gid ? 0660 : 0600;
	int fd, err, n;

	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s.%d.tmp", path,
		     (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path)) {
		log_error(b, "socket path %s is too long (at most %zu bytes)",
			  path, sizeof(sa.sun_path) - 16);
		return -ENAMETOOLONG;
	}
	if (socket_in_use(path)) {
		log_error(b, "another broker is already listening on %s", path);
		return -EADDRINUSE;
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	(void)unlink(sa.sun_path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = -errno;
		log_error(b,
			  "cannot bind %s: %s (does its directory exist and "
			  "is it writable?)",
			  path, strerror(errno));
		(void)close(fd);
		return err;
	}
	if ((b->cfg.has_gid && chown(sa.sun_path, (uid_t)-1, b->cfg.gid) < 0) ||
	    chmod(sa.sun_path, mode) < 0 || listen(fd, 128) < 0 ||
	    rename(sa.sun_path, path) < 0) { /* replaces a stale socket */
		err = -errno;
		log_error(b, "cannot set up %s: %s", path, strerror(errno));
		(void)unlink(sa.sun_path);
		(void)close(fd);
		return err;
	}
	return fd;
}

int broker_open(struct broker *b)
{
	sigset_t mask;
	int err;

	b->listen_fd = b->wake_fd = b->signal_fd = b->stats_fd = -1;
	b->log.level = b->cfg.log_level;
	err = segment_stats(b);
	if (err < 0) {
		log_error(b, "cannot create the stats segment: %s",
			  strerror(-err));
		return err;
	}
	b->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	b->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (b->wake_fd < 0 || b->signal_fd < 0) {
		log_error(b, "eventfd/signalfd: %s", strerror(errno));
		return -errno;
	}
	err = io_uring_queue_init(256, &b->uring, 0);
	if (err < 0) {
		log_error(b,
			  "io_uring_queue_init: %s (is io_uring disabled by "
			  "sysctl kernel.io_uring_disabled?)",
			  strerror(-err));
		return err;
	}
	b->listen_fd =
	    b->cfg.activated ? b->cfg.activated_fd : listen_socket(b);
	return b->listen_fd < 0 ? b->listen_fd : 0;
}

static void stream_free(struct broker *b, struct stream *s)
{
	while (s->n_producers)
		producer_free(b, s->producers[s->n_producers - 1]);
	while (s->n_subs) {
		struct subscription *sub = s->subs[s->n_subs - 1];
		if (sub->conn)
			peer_hangup(b, sub->conn);
		else
			s->n_subs--;
	}
	for (uint32_t i = 0; i < s->n_groups; i++) {
		struct consumer_group *g = s->groups[i];
		/* A hang-up may free the group: start over each time. */
		if (g->n_members && g->members[0]->conn) {
			peer_hangup(b, g->members[0]->conn);
			i = (uint32_t)-1;
		}
	}
	stream_prune_groups(b, s);
	free(s->producers);
	free(s->subs);
	free(s->groups);
	free(s);
}

void broker_close(struct broker *b)
{
	for (int i = 0; i < STATS_MAX_STREAMS; i++) {
		if (b->streams[i]) {
			stream_free(b, b->streams[i]);
			b->streams[i] = NULL;
		}
	}
	for (struct conn *c = b->conns, *next; c; c = next) {
		next = c->next;
		if (c->fd >= 0)
			(void)close(c->fd);
		free(c);
	}
	b->conns = NULL;
	if (b->listen_fd >= 0) {
		(void)close(b->listen_fd);
		if (!b->cfg.activated) /* systemd's socket is systemd's */
			(void)unlink(b->cfg.socket_path);
	}
	if (b->uring.ring_fd > 0)
		io_uring_queue_exit(&b->uring);
	if (b->wake_fd >= 0)
		(void)close(b->wake_fd);
	if (b->signal_fd >= 0)
		(void)close(b->signal_fd);
	shm_unmap(b->stats, b->stats_size);
	if (b->stats_fd >= 0)
		(void)close(b->stats_fd);
}
