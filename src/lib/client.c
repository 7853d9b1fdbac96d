/* client.c — the context, connecting to the broker, and one request/reply
 * exchange on a fresh connection, shared by producers and consumers. */
#include "client.h"
#include "ring.h"
#include "spin.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int expbus_new(const char *socket_path, struct expbus **ret)
{
	struct expbus *bus = calloc(1, sizeof(*bus));

	if (!bus)
		return -ENOMEM;
	if (socket_path) {
		if (strlen(socket_path) >= sizeof(bus->socket_path)) {
			free(bus);
			return -ENAMETOOLONG;
		}
		strcpy(bus->socket_path, socket_path);
	} else if (!expbus_default_socket(bus->socket_path,
					  sizeof(bus->socket_path))) {
		free(bus);
		return -ENAMETOOLONG;
	}
	bus->spin_ns = SPIN_DEFAULT_NS;
	*ret = bus;
	return 0;
}

int expbus_set_spin_us(struct expbus *bus, unsigned us)
{
	if ((uint64_t)us * 1000u > SPIN_MAX_NS)
		return client_fail(bus, -EINVAL,
				   "spin of %u us refused: at most %u us", us,
				   SPIN_MAX_NS / 1000u);
	bus->spin_ns = (uint32_t)us * 1000u;
	return 0;
}

struct expbus *expbus_free(struct expbus *bus)
{
	free(bus);
	return NULL;
}

const char *expbus_last_error(const struct expbus *bus)
{
	return bus ? bus->error : "";
}

const char *expbus_socket_path(const struct expbus *bus)
{
	return bus->socket_path;
}

char *expbus_default_socket(char *buf, size_t len)
{
	const char *dir = getenv("XDG_RUNTIME_DIR");
	int n;

	if (dir && dir[0])
		n = snprintf(buf, len, "%s/expbus.sock", dir);
	else
		n = snprintf(buf, len, "/run/expbus/expbus.sock");
	return n < 0 || (size_t)n >= len ? NULL : buf;
}

int client_fail(struct expbus *bus, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(bus->error, sizeof(bus->error), fmt, ap);
	va_end(ap);
	return err;
}

/* Why connect() to path failed, in words a person can act on. The
 * kernel says ECONNREFUSED both for a socket nobody listens on and for a
 * path that is no socket at all: lstat tells them apart. */
static int connect_failed(struct expbus *bus, int err)
{
	const char *path = bus->socket_path;
	struct stat st;

	if (err == -EACCES || err == -EPERM)
		return client_fail(
		    bus, err,
		    "permission denied on the broker's socket %s: it admits "
		    "only the user expbusd runs as (and its --group, if "
		    "given); run as that user or start expbusd with --group",
		    path);
	if (err == -ENOENT)
		return client_fail(bus, err,
				   "no broker socket at %s (is expbusd running "
				   "with --socket %s?)",
				   path, path);
	if (err == -ECONNREFUSED && lstat(path, &st) == 0 &&
	    !S_ISSOCK(st.st_mode))
		return client_fail(bus, -ENOTSOCK,
				   "%s is not a socket but a %s: give the "
				   "broker's --socket path",
				   path,
				   S_ISREG(st.st_mode)	 ? "regular file"
				   : S_ISDIR(st.st_mode) ? "directory"
							 : "special file");
	if (err == -ECONNREFUSED)
		return client_fail(bus, err,
				   "no broker listens on %s (expbusd stopped "
				   "or died and left its socket behind)",
				   path);
	return client_fail(bus, err, "cannot reach the broker at %s: %s", path,
			   strerror(-err));
}

int client_connect(struct expbus *bus)
{
	return client_connect_flags(bus, 0);
}

int client_connect_flags(struct expbus *bus, int sock_flags)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, err;

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | sock_flags, 0);
	if (fd < 0)
		return client_fail(bus, -errno, "socket: %s", strerror(errno));
	memcpy(sa.sun_path, bus->socket_path, sizeof(sa.sun_path));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = -errno;
		(void)close(fd);
		return connect_failed(bus, err);
	}
	return fd;
}

uint64_t client_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int client_wait(int fd, int sock, int timeout_ms)
{
	struct pollfd pfd[2] = {
	    {.fd = fd, .events = POLLIN},
	    {.fd = sock, .events = POLLRDHUP},
	};
	int n = poll(pfd, 2, timeout_ms);

	if (n < 0)
		return -errno;
	if (pfd[1].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
		return -EPIPE;
	return n > 0 && (pfd[0].revents & POLLIN) ? 1 : 0;
}

uint64_t client_deadline(int timeout_ms)
{
	return timeout_ms > 0
		   ? client_now_ns() + (uint64_t)timeout_ms * 1000000u
		   : 0;
}

void client_ring_full(const struct ring *r, int wake_fd)
{
	uint64_t one = 1;

	if (wake_fd >= 0 && ring_producer_full_wakes(r))
		(void)!write(wake_fd, &one, sizeof(one));
}

int client_ring_sleep(struct ring *r, int producer, uint64_t skip, int efd,
		      int wake_fd, int sock, uint64_t deadline,
		      uint64_t spin_ns)
{
	int left = -1, n;
	uint64_t junk;

	n = producer ? ring_producer_prepare_sleep(r, skip)
		     : ring_consumer_prepare_sleep(r, skip);
	/* The broker may hold what it took until it publishes: it learns
	 * here that we wait for it (ring.c), before we look again. */
	if (n == 0 && producer)
		client_ring_full(r, wake_fd);
	if (n == 0)
		n = ring_spin(r, producer, skip, spin_ns);
	if (n == 0 && deadline) {
		uint64_t now = client_now_ns();
		if (now >= deadline)
			n = -ETIMEDOUT;
		else
			left = (int)((deadline - now + 999999) / 1000000);
	}
	if (n == 0) {
		n = client_wait(efd, sock, left);
		if (n > 0) /* drain the eventfd; EAGAIN: someone else did */
			n = read(efd, &junk, sizeof(junk)) < 0 &&
				    errno != EAGAIN
				? -errno
				: 0;
	}
	if (producer)
		ring_producer_sleep_done(r);
	else
		ring_consumer_sleep_done(r);
	return n;
}

static ssize_t reply_error(struct expbus *bus, const void *buf, size_t len)
{
	const char *text;
	size_t text_len;
	int error;

	if (proto_decode_error(buf, len, &error, &text, &text_len) < 0)
		return client_fail(bus, -EPROTO,
				   "malformed error reply from broker");
	return client_fail(bus, -error, "broker refused: %.*s", (int)text_len,
			   text);
}

ssize_t client_reply(struct expbus *bus, int sock, int want, void *reply,
		     size_t cap, int *fds, int nfds)
{
	/* Big enough for any reply, an error's text included. */
	union {
		struct msg_header h;
		char bytes[16384];
	} buf;
	char why[256];
	int got[PROTO_MAX_FDS], ngot = 0, type;
	ssize_t n;

	n = proto_recv(sock, &buf, sizeof(buf), got, &ngot);
	if (n == -EAGAIN)
		return n;
	if (n == 0)
		return client_fail(bus, -EPIPE, "broker closed the connection");
	if (n < 0)
		return client_fail(bus, (int)n, "reading broker reply: %s",
				   strerror((int)-n));
	type = proto_check(&buf, (size_t)n, why, sizeof(why));
	if (type < 0) {
		proto_close_fds(got, ngot);
		return client_fail(bus, -EPROTO, "bad reply from broker: %s",
				   why);
	}
	if (type == MSG_ERROR) {
		proto_close_fds(got, ngot);
		return reply_error(bus, &buf, (size_t)n);
	}
	if (type != want || ngot != nfds || (size_t)n > cap) {
		proto_close_fds(got, ngot);
		return client_fail(
		    bus, -EPROTO,
		    "unexpected reply from broker (type %d, %d fds)", type,
		    ngot);
	}
	memcpy(fds, got, sizeof(int) * (size_t)nfds);
	memcpy(reply, &buf, (size_t)n);
	return n;
}

ssize_t client_request(struct expbus *bus, int sock, const void *req,
		       size_t len, int want, void *reply, size_t cap, int *fds,
		       int nfds)
{
	int err;

	if (req) { /* else the caller sent it (with fds) */
		err = proto_send(sock, req, len, NULL, 0);
		if (err < 0)
			return client_fail(bus, err,
					   "sending to broker at %s: %s",
					   bus->socket_path, strerror(-err));
	}
	err = client_wait(sock, -1, CLIENT_REPLY_TIMEOUT_MS);
	if (err == 0)
		return client_fail(bus, -ETIMEDOUT,
				   "broker at %s did not answer within %d ms",
				   bus->socket_path, CLIENT_REPLY_TIMEOUT_MS);
	if (err < 0)
		return client_fail(bus, err, "waiting for broker: %s",
				   strerror(-err));
	return client_reply(bus, sock, want, reply, cap, fds, nfds);
}
