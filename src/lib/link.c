/* link.c — a producer's connection to the broker, kept without blocking:
 * each step does at most one non-blocking syscall or two, so a game's
 * reserve never waits on the control plane (docs/protocol.md, Recovery). */
#include "link.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "shm.h"

#define HANGUP_CHECK_NS	 (100u * 1000000u)
#define REPLY_CHECK_NS	 (1u * 1000000u) /* look for the reply 1/ms */
#define BACKOFF_FIRST_MS 10u
#define BACKOFF_MAX_MS	 200u

static void watch(struct link *l, int fd, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.fd = fd};

	/* Cannot fail for a fresh, valid fd short of ENOMEM; the producer then
	 * only loses event-loop wakeups, never records or correctness. */
	(void)epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		(void)close(*fd);
	*fd = -1;
}

/* Leaves the epoll set, then closes: closing alone would not remove it
 * while another process (the broker) still holds the same open file. */
static void unwatch_close(struct link *l, int *fd)
{
	if (*fd >= 0 && l->epoll_fd >= 0)
		(void)epoll_ctl(l->epoll_fd, EPOLL_CTL_DEL, *fd, NULL);
	close_fd(fd);
}

int link_init(struct link *l, struct expbus *bus, int sock, int wake_fd,
	      int space_fd, int ring_fd, const char *stream,
	      const struct schema *schema, uint32_t capacity,
	      uint32_t slot_size)
{
	int len;

	memset(l, 0, sizeof(*l));
	l->bus = bus;
	l->sock = l->wake_fd = l->space_fd = l->ring_fd = -1;
	l->pending = l->epoll_fd = l->retry_fd = -1;
	l->capacity = capacity;
	l->slot_size = slot_size;
	memset(&l->req.m, 0, sizeof(l->req.m));
	strcpy(l->req.m.stream, stream);
	len = schema_format(schema, l->req.text, sizeof(l->req.text));
	if (len < 0)
		return -EINVAL; /* cannot be: attach formatted it already */
	l->req.m.flags = ATTACH_RESUME | ATTACH_READY;
	l->req.m.schema_len = (uint32_t)len;
	l->req_len = sizeof(l->req.m) + (size_t)len;
	proto_header(&l->req.m.h, MSG_ATTACH, l->req_len);
	l->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	l->retry_fd =
	    timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (l->epoll_fd < 0 || l->retry_fd < 0) {
		int err = -errno;
		close_fd(&l->epoll_fd);
		close_fd(&l->retry_fd);
		return err;
	}
	l->sock = sock;
	l->wake_fd = wake_fd;
	l->space_fd = space_fd;
	l->ring_fd = ring_fd;
	watch(l, l->retry_fd, EPOLLIN);
	watch(l, sock, EPOLLRDHUP);
	watch(l, space_fd, EPOLLIN);
	l->state = LINK_LIVE;
	l->next_ns = client_now_ns() + HANGUP_CHECK_NS;
	return 0;
}

static void unmap_ready(struct link *l)
{
	if (l->ready)
		shm_unmap(l->ready, READY_SET_SIZE);
	l->ready = NULL;
	l->ready_word = NULL;
	l->ready_mask = 0;
}

int link_map_ready(struct link *l, int fd, uint32_t bit)
{
	struct ready_set *set;
	void *addr;
	int err;

	unmap_ready(l);
	err = shm_check(fd, READY_SET_SIZE, READY_SET_SIZE, SHM_SEALS_SHARED,
			NULL);
	if (err == 0)
		err = shm_map(fd, READY_SET_SIZE, 1, &addr);
	(void)close(fd);
	if (err < 0)
		return err;
	set = addr;
	/* Read once, checked, then only our copy of bit is used. */
	if (set->seg.magic != MAGIC_READY_SET ||
	    set->seg.version != LAYOUT_VERSION ||
	    set->seg.size != READY_SET_SIZE || set->bits != READY_BITS ||
	    bit >= READY_BITS) {
		shm_unmap(addr, READY_SET_SIZE);
		return -EPROTO;
	}
	l->ready = set;
	l->ready_word = &set->words[bit / 64];
	l->ready_mask = 1ull << (bit % 64);
	return 0;
}

void link_close(struct link *l)
{
	unmap_ready(l);
	unwatch_close(l, &l->sock);
	close_fd(&l->wake_fd);
	unwatch_close(l, &l->space_fd);
	unwatch_close(l, &l->pending);
	close_fd(&l->epoll_fd);
	close_fd(&l->retry_fd);
	close_fd(&l->ring_fd);
}

/* Try again after a growing pause, and let the event loop know when. */
static void back_off(struct link *l, uint64_t now)
{
	struct itimerspec it = {0};
	uint64_t at;

	unwatch_close(l, &l->pending);
	l->state = LINK_LOST;
	l->backoff_ms = l->backoff_ms ? 2 * l->backoff_ms : BACKOFF_FIRST_MS;
	if (l->backoff_ms > BACKOFF_MAX_MS)
		l->backoff_ms = BACKOFF_MAX_MS;
	l->next_ns = at = now + (uint64_t)l->backoff_ms * 1000000u;
	it.it_value.tv_sec = (time_t)(at / 1000000000u);
	it.it_value.tv_nsec = (long)(at % 1000000000u);
	(void)timerfd_settime(l->retry_fd, TFD_TIMER_ABSTIME, &it, NULL);
}

void link_lost(struct link *l, uint64_t now)
{
	unmap_ready(l); /* the dead broker's */
	unwatch_close(l, &l->sock);
	close_fd(&l->wake_fd);
	unwatch_close(l, &l->space_fd);
	l->state = LINK_LOST;
	l->backoff_ms = 0;
	l->next_ns = now;
}

/* Connect without waiting (AF_UNIX connects at once or fails at once) and
 * send ATTACH_RESUME with the ring. */
static void start_resume(struct link *l, uint64_t now)
{
	int fd = client_connect_flags(l->bus, SOCK_NONBLOCK);

	if (fd < 0) {
		back_off(l, now);
		return;
	}
	if (proto_send(fd, &l->req, l->req_len, &l->ring_fd, 1) < 0) {
		(void)close(fd);
		back_off(l, now);
		return;
	}
	l->pending = fd;
	watch(l, fd, EPOLLIN | EPOLLRDHUP);
	l->state = LINK_RESUMING;
	l->deadline_ns = now + (uint64_t)CLIENT_REPLY_TIMEOUT_MS * 1000000u;
	l->next_ns = now;
}

/* The new broker's answer, if it came: our ring back (closed: we have it)
 * and its wakeup and space eventfds. */
static void finish_resume(struct link *l, uint64_t now)
{
	struct msg_ok_attach ok;
	int fds[4] = {-1, -1, -1, -1};
	ssize_t n;

	n = client_reply(l->bus, l->pending, MSG_OK_ATTACH, &ok, sizeof(ok),
			 fds, 4);
	if (n == -EAGAIN) {
		if (now >= l->deadline_ns)
			back_off(l, now);
		else
			l->next_ns = now + REPLY_CHECK_NS;
		return;
	}
	if (n < 0) { /* refused, or gone again: the message is on bus */
		back_off(l, now);
		return;
	}
	close_fd(&fds[0]); /* our own ring again */
	if (n != sizeof(ok) || ok.capacity != l->capacity ||
	    ok.slot_size != l->slot_size) {
		close_fd(&fds[1]);
		close_fd(&fds[2]);
		close_fd(&fds[3]);
		client_fail(l->bus, -EPROTO, "malformed resume reply");
		back_off(l, now);
		return;
	}
	l->sock = l->pending;
	l->pending = -1;
	l->wake_fd = fds[1];
	l->space_fd = fds[2];
	/* Without it (a bad one) we write wake_fd instead: only slower. */
	(void)link_map_ready(l, fds[3], ok.ready_bit);
	watch(l, l->space_fd, EPOLLIN);
	l->state = LINK_LIVE;
	l->backoff_ms = 0;
	l->resumes++;
	l->next_ns = now + HANGUP_CHECK_NS;
}

static int hung_up(int sock)
{
	struct pollfd pfd = {.fd = sock, .events = POLLRDHUP};

	return poll(&pfd, 1, 0) > 0 &&
	       (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

enum link_state link_step(struct link *l, uint64_t now)
{
	if (now < l->next_ns)
		return l->state;
	if (l->state == LINK_LIVE) {
		l->next_ns = now + HANGUP_CHECK_NS;
		if (!hung_up(l->sock))
			return l->state;
		link_lost(l, now);
	}
	if (l->state == LINK_LOST)
		start_resume(l, now);
	if (l->state == LINK_RESUMING)
		finish_resume(l, now);
	return l->state;
}

void link_drain(struct link *l)
{
	uint64_t junk;

	/* EAGAIN: nothing was pending; either way the fd is empty now. */
	(void)!read(l->retry_fd, &junk, sizeof(junk));
	if (l->space_fd >= 0)
		(void)!read(l->space_fd, &junk, sizeof(junk));
}
