/* link.h — a producer's connection to the broker, kept without ever
 * blocking: live, lost, or resuming (ATTACH_RESUME sent to whichever broker
 * now listens, its reply awaited on later calls). docs/protocol.md,
 * "Recovery", describes the exchange. */
#ifndef EXPBUS_LINK_H
#define EXPBUS_LINK_H

#include <stdint.h>

#include "client.h"
#include "schema.h"

enum link_state {
	LINK_LIVE,     /* sock is the broker's; wake_fd and space_fd its fds */
	LINK_LOST,     /* no broker; the next connect at next_ns */
	LINK_RESUMING, /* pending sent ATTACH_RESUME; reply due by deadline */
};

struct link {
	struct expbus *bus;
	enum link_state state;
	int sock;     /* LIVE: the broker's connection; else -1 */
	int wake_fd;  /* broker's eventfd; -1 while no broker */
	int space_fd; /* ours: written by the broker when we sleep */
	int pending;  /* RESUMING: the connection awaiting its reply */
	int epoll_fd; /* expbus_producer_fd: sock or pending, space, retry */
	int retry_fd; /* timerfd: LOST and the next connect is due */
	int ring_fd;  /* the ring, handed to each new broker */
	/* The broker's ready set (ready_set.h), mapped: our word in it and our
	 * bit. NULL without one: RING_WAKE_MARK then writes wake_fd. */
	struct ready_set *ready;
	_Atomic uint64_t *ready_word;
	uint64_t ready_mask;
	uint32_t capacity, slot_size; /* a resume reply must match these */
	uint32_t resumes;	      /* successful resumes, for tests */
	unsigned backoff_ms;
	uint64_t next_ns;     /* link_step has nothing to do before this */
	uint64_t deadline_ns; /* RESUMING: give up this attempt after */
	size_t req_len;
	struct {
		struct msg_attach m;
		char text[SCHEMA_TEXT_MAX];
	} req;
};

/* Starts a live link from a fresh attach: takes sock, wake_fd, space_fd and
 * ring_fd. Builds the resume request for stream and schema. Returns 0 or a
 * negative errno (the fds are then still the caller's). */
int link_init(struct link *l, struct expbus *bus, int sock, int wake_fd,
	      int space_fd, int ring_fd, const char *stream,
	      const struct schema *schema, uint32_t capacity,
	      uint32_t slot_size);

/* Closes every fd the link holds and unmaps its ready set. */
void link_close(struct link *l);

/* Maps the ready set a broker sent (fd, closed here) with our bit in it.
 * One that is not a sealed memfd of READY_SET_SIZE bytes with a header
 * we understand is left alone: the link then has none, which only costs
 * a syscall per wakeup. Returns 0 or a negative errno. */
int link_map_ready(struct link *l, int fd, uint32_t bit);

/* Does whatever is due at now without blocking: looks for a hang-up (at
 * most every 100 ms while live), connects and sends ATTACH_RESUME once the
 * back-off has passed, reads the reply once it came. Returns the state. */
enum link_state link_step(struct link *l, uint64_t now);

/* The broker hung up (seen by a caller's poll): drop the live connection
 * and try again at once. */
void link_lost(struct link *l, uint64_t now);

/* Empties the retry timer and the space eventfd (after epoll said ready). */
void link_drain(struct link *l);

#endif
