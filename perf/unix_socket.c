/* unix_socket.c — the baseline a user would write without expbus: N
 * producer processes writev() the same records `expbus pub` makes (header
 * and pattern.h data) over one Unix stream socket each to a reader process
 * that read()s them and checks every byte as `expbus check` does. perf/run
 * compares expbus with it; one JSON line like `expbus check --report`.
 *
 * Rates count whole records (32-byte header + data) from the first byte
 * read to the last record checked, as `expbus check` counts from its first
 * batch to its last. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "expbus.h"
#include "pattern.h"
#include "clock.h"

#define MAX_PRODUCERS 1024
#define WRITE_BYTES   (256u << 10) /* records per writev: about this much */
#define MAX_IOV	      64	   /* and at most this many */

struct us_opts {
	uint32_t producers;
	uint64_t count;
	uint32_t record_size;
};

struct conn {
	int fd;
	uint32_t p;	   /* producer index */
	uint64_t next_seq; /* the seq the next record must carry */
	size_t fill;	   /* bytes in buf */
	uint8_t *buf;
};

static const struct pattern pt = {.games = 4, .episode_len = 100, .players = 2};

static void usage(void)
{
	printf(
	    "Usage: unix_socket [OPTION]...\n"
	    "N producer processes writev() patterned records over a Unix stream\n"
	    "socket each; one reader read()s and checks them. One JSON line.\n"
	    "\n"
	    "  -n, --producers N    producer processes (default 8)\n"
	    "      --count N        records per producer (default 100000)\n"
	    "      --record-size N  bytes, 32-byte header included, >= 40 and a\n"
	    "                       multiple of 8 (default 64)\n");
}

static void producer(const struct us_opts *o, const struct sockaddr_un *addr,
		     socklen_t alen, uint32_t p)
{
	const size_t size = o->record_size;
	size_t per = WRITE_BYTES / size;
	struct iovec iov[MAX_IOV];
	uint8_t *buf;
	int fd;

	if (per < 1)
		per = 1;
	if (per > MAX_IOV)
		per = MAX_IOV;
	buf = aligned_alloc(64, per * size);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!buf || fd < 0 ||
	    connect(fd, (const struct sockaddr *)addr, alen) < 0) {
		perror("unix_socket: producer");
		_exit(1);
	}
	/* The reader needs to know which producer this is: 4 bytes first. */
	if (write(fd, &p, sizeof(p)) != sizeof(p))
		_exit(1);
	for (uint64_t s = 0; s < o->count;) {
		size_t n = o->count - s < per ? (size_t)(o->count - s) : per;
		uint64_t stamp = now_ns();
		struct iovec *v = iov;
		int nv = (int)n;

		for (size_t i = 0; i < n; i++) {
			struct expbus_record_header *r =
			    (struct expbus_record_header *)(buf + i * size);
			r->seq = s + i;
			r->timestamp_ns = stamp;
			pattern_header(&pt, p, s + i, r);
			pattern_fill(pattern_base(p, s + i), r + 1,
				     size - sizeof(*r));
			iov[i].iov_base = r;
			iov[i].iov_len = size;
		}
		/* A stream socket may take part of it: go on from there. */
		while (nv > 0) {
			ssize_t w = writev(fd, v, nv);

			if (w < 0) {
				if (errno == EINTR)
					continue;
				perror("unix_socket: writev");
				_exit(1);
			}
			while (nv > 0 && (size_t)w >= v->iov_len) {
				w -= (ssize_t)v->iov_len;
				v++;
				nv--;
			}
			if (nv > 0) {
				v->iov_base = (uint8_t *)v->iov_base + w;
				v->iov_len -= (size_t)w;
			}
		}
		s += n;
	}
	(void)close(fd);
	_exit(0);
}

/* Checks the whole records in c->buf, keeps the partial one. */
static void consume(struct conn *c, size_t size, uint64_t *records,
		    uint64_t *corrupt, uint64_t *order)
{
	size_t off = 0;

	for (; c->fill - off >= size; off += size) {
		const struct expbus_record_header *r =
		    (const struct expbus_record_header *)(c->buf + off);
		struct expbus_record_header want;

		pattern_header(&pt, c->p, r->seq, &want);
		if (r->seq != c->next_seq)
			(*order)++;
		c->next_seq = r->seq + 1;
		if (want.game != r->game || want.player != r->player ||
		    want.turn != r->turn || want.flags != r->flags ||
		    pattern_check(pattern_base(c->p, r->seq), r + 1, 0,
				  size - sizeof(*r)))
			(*corrupt)++;
		(*records)++;
	}
	if (off && off < c->fill)
		memmove(c->buf, c->buf + off, c->fill - off);
	c->fill -= off;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"producers", required_argument, NULL, 'n'},
	    {"count", required_argument, NULL, 'c'},
	    {"record-size", required_argument, NULL, 'z'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct us_opts o = {.producers = 8, .count = 100000, .record_size = 64};
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	struct epoll_event ev, evs[64];
	struct conn *conns;
	pid_t *kids;
	socklen_t alen;
	uint64_t records = 0, corrupt = 0, order = 0, t_first = 0, t_last = 0;
	size_t cap;
	int lfd, ep, opt, status = 0, open_conns;

	while ((opt = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			o.producers = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'c':
			o.count = strtoull(optarg, NULL, 10);
			break;
		case 'z':
			o.record_size = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'h':
			usage();
			return 0;
		default:
			return 2;
		}
	}
	if (o.producers < 1 || o.producers > MAX_PRODUCERS ||
	    o.record_size < 40 || o.record_size % 8 || !o.count) {
		fprintf(stderr, "unix_socket: bad arguments; try --help\n");
		return 2;
	}
	/* An abstract address: nothing to clean up in the file system. */
	snprintf(addr.sun_path + 1, sizeof(addr.sun_path) - 1,
		 "expbus-perf-unix-%d", (int)getpid());
	alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			   strlen(addr.sun_path + 1));
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, alen) < 0 ||
	    listen(lfd, (int)o.producers) < 0) {
		perror("unix_socket: listen");
		return 1;
	}
	kids = calloc(o.producers, sizeof(*kids));
	conns = calloc(o.producers, sizeof(*conns));
	if (!kids || !conns)
		return 1;
	for (uint32_t k = 0; k < o.producers; k++) {
		kids[k] = fork();
		if (kids[k] < 0) {
			perror("unix_socket: fork");
			return 1;
		}
		if (kids[k] == 0) {
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			(void)close(lfd);
			producer(&o, &addr, alen, k);
		}
	}
	/* Room for what one read can bring: a record plus the socket's
	 * worth, so that a read never has to wait for the parser. */
	cap = o.record_size + (256u << 10);
	ep = epoll_create1(EPOLL_CLOEXEC);
	for (uint32_t k = 0; k < o.producers; k++) {
		struct conn *c = &conns[k];
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0 || read(fd, &c->p, sizeof(c->p)) != sizeof(c->p)) {
			perror("unix_socket: accept");
			return 1;
		}
		c->fd = fd;
		c->buf = aligned_alloc(64, (cap + 63) / 64 * 64);
		if (!c->buf)
			return 1;
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			perror("unix_socket: epoll_ctl");
			return 1;
		}
	}
	open_conns = (int)o.producers;
	while (open_conns > 0) {
		int n = epoll_wait(ep, evs, 64, 10000);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "unix_socket: no data for 10 s\n");
			status = 1;
			break;
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			ssize_t r =
			    read(c->fd, c->buf + c->fill, cap - c->fill);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				(void)epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				(void)close(c->fd);
				open_conns--;
				continue;
			}
			if (!t_first)
				t_first = now_ns();
			c->fill += (size_t)r;
			consume(c, o.record_size, &records, &corrupt, &order);
			t_last = now_ns();
		}
	}
	for (uint32_t k = 0; k < o.producers; k++) {
		int ws;

		if (waitpid(kids[k], &ws, 0) != kids[k] || !WIFEXITED(ws) ||
		    WEXITSTATUS(ws))
			status = 1;
		if (conns[k].fill)
			corrupt++; /* a torn record at the end */
		free(conns[k].buf);
	}
	{
		double secs =
		    t_last > t_first ? (double)(t_last - t_first) / 1e9 : 0;
		uint64_t bytes = records * o.record_size;
		uint64_t missing = o.count * o.producers > records
				       ? o.count * o.producers - records
				       : 0;

		printf(
		    "{\"producers\":%u,\"record_size\":%u,\"records\":%" PRIu64
		    ",\"bytes\":%" PRIu64
		    ",\"seconds\":%.6f,\"records_per_s\":%.1f"
		    ",\"gb_per_s\":%.4f,\"corrupt\":%" PRIu64
		    ",\"order_errors\":%" PRIu64 ",\"missing\":%" PRIu64 "}\n",
		    o.producers, o.record_size, records, bytes, secs,
		    secs > 0 ? (double)records / secs : 0,
		    secs > 0 ? (double)bytes / secs / 1e9 : 0, corrupt, order,
		    missing);
		if (corrupt || order || missing)
			status = 1;
	}
	free(kids);
	free(conns);
	return status;
}
