/* loop.c — the broker's io_uring event loop: accept connections (conn.c)
 * and hand their requests and hang-ups to control.c, wake on a peer's
 * doorbell (doorbell.c: it names the ring with news) or a signal, and between
 * events run the data path (pump.c, then batch.c's flush deadlines); sleep only
 * after telling every ring (pump_prepare_sleep; ring.c explains the protocol).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "batch.h"
#include "clock.h"
#include "coalesce.h"
#include "conn.h"
#include "control.h"
#include "deadlines.h"
#include "doorbell.h"
#include "loop.h"
#include "producer.h"
#include "pump.h"
#include "sqe.h"
#include "stats.h"
#include "stream.h"
#include "wake.h"

/* Going idle, the loop looks again before it sleeps, yielding the CPU
 * between looks, but only while work has been coming back sooner than its
 * budget (an average of the recent idle gaps): a steady trickle of records
 * with longer gaps costs a wakeup each, never a spinning core. The budget
 * is cfg.spin_ns (--spin-us) while subscribers poll (they and a spinning
 * broker would take every core of a small machine, and the games would
 * wait), twice that while they sleep on their eventfds (a wakeup saved is
 * then worth a look on a core nobody uses). */
#define MAX_SLEEP_NS (200ull * 1000000u)
/* Coalescing (coalesce.c) only while records come at least this far apart
 * on average: about what a wakeup costs on a small VM. */
#define COALESCE_GAP_NS		 (10u * 1000u)
#define DRAIN_NS		 (2ull * 1000000000u)
#define DEFAULT_IDLE_TIMEOUT_NS	 (10ull * 1000000000u)
#define DEFAULT_CONNS_PER_UID	 1024
#define DEFAULT_STREAM_LINGER_NS (60ull * 1000000000u)
#define ACCEPT_BACKOFF_MIN_NS	 (10ull * 1000000u)
#define ACCEPT_BACKOFF_MAX_NS	 (1000ull * 1000000u)

static void arm(struct broker *b, enum op_tag tag)
{
	struct io_uring_sqe *sqe = broker_sqe(b);

	if (!sqe) {
		log_error(b, "io_uring submission queue unavailable");
		return;
	}
	switch (tag) {
	case OP_ACCEPT:
		io_uring_prep_accept(sqe, b->listen_fd, NULL, NULL,
				     SOCK_CLOEXEC | SOCK_NONBLOCK);
		b->accept_armed = true;
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

/* Out of fds or memory, accept would fail again at once: stop accepting
 * for a while (10 ms, doubling to 1 s while it lasts; housekeeping arms it
 * again) instead of spinning, and say so at most once a second. */
static void accept_back_off(struct broker *b, int err)
{
	uint64_t held;

	b->accept_backoff_ns = b->accept_backoff_ns ? b->accept_backoff_ns * 2
						    : ACCEPT_BACKOFF_MIN_NS;
	if (b->accept_backoff_ns > ACCEPT_BACKOFF_MAX_NS)
		b->accept_backoff_ns = ACCEPT_BACKOFF_MAX_NS;
	b->accept_resume_ns = b->now_ns + b->accept_backoff_ns;
	if (ratelimit_pass(&b->accept_log, b->now_ns, &held))
		log_warn(b,
			 "accept: %s with %u connections open; not accepting "
			 "for %llu ms (%llu similar lines held back)",
			 strerror(err), b->n_conns,
			 (unsigned long long)(b->accept_backoff_ns / 1000000u),
			 (unsigned long long)held);
}

/* Returns whether accept may be armed again at once. */
static bool on_accept(struct broker *b, int fd)
{
	struct conn *c;
	uint64_t held;

	if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
		accept_back_off(b, -fd);
		return false;
	}
	if (fd < 0) {
		if (fd != -EAGAIN && fd != -EINTR && fd != -ECANCELED &&
		    ratelimit_pass(&b->accept_log, b->now_ns, &held))
			log_warn(b, "accept: %s (%llu similar lines held back)",
				 strerror(-fd), (unsigned long long)held);
		return true;
	}
	b->accept_backoff_ns = 0;
	c = conn_new(b, fd);
	if (c)
		conn_arm(b, c);
	return true;
}

static void on_poll(struct broker *b, struct conn *c, int res)
{
	c->poll_armed = false;
	if (c->closed)
		return;
	if (res < 0)
		control_hangup(b, c);
	else if (res & POLLIN)
		control_message(b, c);
	else if (res & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL))
		control_hangup(b, c);
	if (!c->closed)
		conn_arm(b, c);
}

static void on_doorbell(struct broker *b, struct doorbell *d, int res,
			uint32_t flags)
{
	enum doorbell_kind kind = d->kind;
	void *owner = doorbell_rang(b, d, res, flags);

	/* A subscription's doorbell (a release) needs nothing more: the loop
	 * is awake, and its stalled producers are still active. */
	if (owner && kind == DOORBELL_PRODUCER)
		producer_activate(b, owner);
}

static int handle_cqes(struct broker *b)
{
	struct io_uring_cqe *cqe;
	int n = 0;

	while (io_uring_peek_cqe(&b->uring, &cqe) == 0) {
		uint64_t data = io_uring_cqe_get_data64(cqe);
		int res = cqe->res;
		uint32_t cqe_flags = cqe->flags;

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
			b->accept_armed = false;
			if (on_accept(b, res) && !b->stopping)
				arm(b, OP_ACCEPT);
			break;
		case OP_DOORBELL:
			on_doorbell(
			    b,
			    (struct doorbell *)(uintptr_t)(data &
							   ~(uint64_t)TAG_MASK),
			    res, cqe_flags);
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
	conn_sweep(b);
	return n;
}

static void check_release(struct subscription *sub, void *arg)
{
	/* Looks at the release counter even when the broker does not need
	 * room yet, so that a subscriber that lies is caught promptly. */
	if (!sub->dead)
		(void)batch_check_release(arg, sub);
	/* The open batch's fill, for the stats: here rather than per record
	 * on the data path (publishing sets it back to 0). */
	stat_set(&sub->st->open_records, sub->open ? sub->open_count : 0);
	stats_touch_sub(arg, sub);
}

/* Closes connections that never said what they are, checks every
 * subscriber's release counter and refreshes the ring tails in the stats. */
static void housekeeping(struct broker *b)
{
	stream_each_subscription(b, check_release, b);
	pump_refresh_tails(b);
	control_expire_new(b);
	if (!b->accept_armed && !b->stopping &&
	    b->now_ns >= b->accept_resume_ns)
		arm(b, OP_ACCEPT);
	streams_reap_unused(b);
	if (b->cfg.group_idle_ns)
		stream_expire_games(b, b->cfg.group_idle_ns);
}

/* Sleeps until deadline (a flush), an event, or with coalesce the next
 * tick (b->tick_ns), whichever comes first. */
static void sleep_until(struct broker *b, uint64_t deadline, bool coalesce)
{
	struct __kernel_timespec ts;
	struct io_uring_cqe *cqe;
	uint64_t wait = deadline > b->now_ns ? deadline - b->now_ns : 0;

	/* With no active ring and none parked on a ready set there is
	 * nothing for a tick to look at. Without a tick, nobody would take
	 * the ready sets' bits: their rings are parked for good first. */
	coalesce = coalesce && (b->n_active || b->ready_parked_head);
	if (!coalesce)
		producer_ready_expire(b, UINT64_MAX);
	if (wait > MAX_SLEEP_NS)
		wait = MAX_SLEEP_NS;
	if (coalesce && wait > b->tick_ns)
		wait = b->tick_ns;
	/* What the next pass takes may have waited this long in its ring. */
	b->lag_ns = coalesce ? b->tick_ns : 0;
	ts.tv_sec = (long long)(wait / 1000000000u);
	ts.tv_nsec = (long long)(wait % 1000000000u);
	wake_now(b); /* none is left asleep over a batch */
	if (pump_prepare_sleep(b, coalesce)) {
		b->count.sleeps++;
		stats_publish(b);
		(void)io_uring_submit_and_wait_timeout(&b->uring, &cqe, 1, &ts,
						       NULL);
		b->uring_dirty = false;
	}
	pump_sleep_done(b);
}

static void drain_and_flush(struct broker *b)
{
	uint64_t until = broker_now() + DRAIN_NS;

	/* Take what producers committed, as long as subscribers make room,
	 * then publish every partial batch. */
	for (;;) {
		b->now_ns = broker_now();
		control_reap(b);
		if (pump_all(b) == 0 || b->now_ns > until)
			break;
	}
	batch_flush_due(b, b->now_ns, true);
	wake_now(b);
	stats_publish(b);
}

int broker_run(struct broker *b)
{
	uint64_t last_submit = 0, last_house = 0;
	uint64_t idle_since = 0; /* 0: the last pass had work */
	uint64_t spin = b->cfg.spin_ns;
	/* Recent idle gaps per record: no spin yet, coalescing if allowed. */
	uint64_t gap_avg = 8 * (spin + COALESCE_GAP_NS);

	arm(b, OP_ACCEPT);
	arm(b, OP_SIGNAL);
	(void)io_uring_submit(&b->uring);
	log_info(b, "listening on %s", b->cfg.socket_path);
	for (;;) {
		uint64_t next;
		int work;
		bool events, coalesce;

		b->now_ns = broker_now();
		work = pump_all(b);
		next = batch_flush_due(b, b->now_ns, false);
		/* The pass is over: its subscribers read what it published
		 * while we serve the control plane. (What that publishes is
		 * woken at the next pass, or before we sleep.) */
		wake_now(b);
		control_reap(b);
		/* An event (a hang-up, say) may leave work for the next pass:
		 * count it as activity so the loop looks again before sleeping.
		 */
		events = handle_cqes(b) > 0;
		b->count.loops++;
		if (b->now_ns - last_house > 100000000u) {
			housekeeping(b);
			last_house = b->now_ns;
		}
		stats_publish(b); /* once per pass */
		if (b->stopping)
			break;
		if (work > 0) {
			if (idle_since) {
				/* Per record: a pass after a tick takes many.
				 */
				uint64_t gap =
				    (b->now_ns - idle_since) / (uint64_t)work;
				gap_avg = gap_avg - gap_avg / 8 + gap / 8;
				idle_since = 0;
			}
			/* While busy, enter the kernel now and then so that
			 * completions (new peers, hang-ups) keep flowing. */
			if (b->uring_dirty ||
			    b->now_ns - last_submit > 1000000u) {
				(void)io_uring_submit(&b->uring);
				b->uring_dirty = false;
				last_submit = b->now_ns;
			}
			/* Coalescing, a pass that emptied every ring it looked
			 * at is the tick's work done: no pass to find nothing.
			 */
			if (!b->tick_ns || gap_avg < COALESCE_GAP_NS ||
			    b->more || events)
				continue;
		}
		if (!idle_since)
			idle_since = b->now_ns;
		/* Coalescing pays when records come further apart than a
		 * wakeup costs; closer, the broker follows the producers (the
		 * records are still in the cache) as if it were off. */
		b->tick_ns = coalesce_tick(b);
		coalesce = b->tick_ns && gap_avg >= COALESCE_GAP_NS;
		b->coalescing = coalesce;
		spin =
		    b->subscriber_asleep ? 2 * b->cfg.spin_ns : b->cfg.spin_ns;
		/* Idle: look again (yielding the CPU to producers) before the
		 * syscalls of a sleep, if work tends to come back within the
		 * budget; a time budget, not a pass count. Coalescing, never:
		 * the tick comes back. An event (a doorbell, a hang-up) gets
		 * one more pass at once. */
		if (events || (!coalesce && work == 0 && gap_avg < spin &&
			       b->now_ns - idle_since < spin)) {
			if (b->uring_dirty) {
				(void)io_uring_submit(&b->uring);
				b->uring_dirty = false;
			}
			sched_yield();
			continue;
		}
		sleep_until(b, next, coalesce);
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
		union {
			struct msg_header h;
			char bytes[256];
		} reply;
		int fds[PROTO_MAX_FDS], nfds = 0;

		pfd.fd = fd;
		pfd.events = POLLIN;
		/* A reply is what proves it: a live broker answers and then
		 * hangs up (so POLLHUP may come with it); a dead one's
		 * backlog only hangs up. */
		r = poll(&pfd, 1, 1000) > 0 &&
		    proto_recv(fd, &reply, sizeof(reply), fds, &nfds) > 0;
		proto_close_fds(fds, nfds);
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
	struct stat st;
	int fd, err, n;

	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s.%d.tmp", path,
		     (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path)) {
		log_error(b, "socket path %s is too long (at most %zu bytes)",
			  path, sizeof(sa.sun_path) - 16);
		return -ENAMETOOLONG;
	}
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		log_error(b,
			  "%s is not a socket but a %s: refusing to replace "
			  "it; give --socket a path that is free or a stale "
			  "expbusd socket",
			  path,
			  S_ISREG(st.st_mode)	? "regular file"
			  : S_ISDIR(st.st_mode) ? "directory"
						: "special file");
		return -ENOTSOCK;
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
	/* What we bound: at exit, the path is unlinked only if it is still
	 * this socket (someone may have put their own file there since). */
	if (lstat(path, &st) == 0) {
		b->sock_dev = st.st_dev;
		b->sock_ino = st.st_ino;
	}
	return fd;
}

/* The limits left at 0 (no flag given, or a program that embeds the broker,
 * like tests/tsan_broker.c) get their defaults; the flags refuse 0. */
static void limits_defaults(struct broker_config *cfg)
{
	if (!cfg->shm_budget)
		cfg->shm_budget = budget_default_limit();
	if (!cfg->idle_timeout_ns)
		cfg->idle_timeout_ns = DEFAULT_IDLE_TIMEOUT_NS;
	if (!cfg->max_conns_per_uid)
		cfg->max_conns_per_uid = DEFAULT_CONNS_PER_UID;
	if (!cfg->stream_linger_ns)
		cfg->stream_linger_ns = DEFAULT_STREAM_LINGER_NS;
}

int broker_open(struct broker *b)
{
	sigset_t mask;
	int err;

	struct io_uring_params params = {
	    .flags = IORING_SETUP_CQSIZE,
	    /* Room for every doorbell to ring at once; past that, multishot
	     * polls end and are re-armed (doorbell_rang). */
	    .cq_entries = 8192,
	};

	b->listen_fd = b->signal_fd = b->stats_fd = -1;
	b->log.level = b->cfg.log_level;
	limits_defaults(&b->cfg);
	b->budget.limit = b->cfg.shm_budget;
	b->conn_limits.max_per_uid = b->cfg.max_conns_per_uid;
	b->accept_log.interval_ns = b->refuse_log.interval_ns =
	    b->idle_log.interval_ns = 1000000000u;
	err = stats_open(b);
	if (err < 0) {
		log_error(b, "cannot create the stats segment: %s",
			  strerror(-err));
		return err;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	b->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (b->signal_fd < 0) {
		log_error(b, "signalfd: %s", strerror(errno));
		return -errno;
	}
	err = io_uring_queue_init_params(256, &b->uring, &params);
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

void broker_close(struct broker *b)
{
	control_close_all(b);
	if (b->listen_fd >= 0) {
		struct stat st;

		(void)close(b->listen_fd);
		/* systemd's socket is systemd's; and only the socket this
		 * broker bound, never what another put at the path since. */
		if (!b->cfg.activated && lstat(b->cfg.socket_path, &st) == 0 &&
		    S_ISSOCK(st.st_mode) && st.st_dev == b->sock_dev &&
		    st.st_ino == b->sock_ino)
			(void)unlink(b->cfg.socket_path);
	}
	conn_limits_free(&b->conn_limits);
	if (b->uring.ring_fd > 0)
		io_uring_queue_exit(&b->uring);
	doorbell_free_all(b); /* their polls are gone with the ring */
	free(b->active);
	b->active = NULL;
	free(b->moved);
	b->moved = NULL;
	deadlines_free(b);
	if (b->signal_fd >= 0)
		(void)close(b->signal_fd);
	stats_close(b);
}
