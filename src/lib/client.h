/* client.h — what producer.c and consumer.c share: the context, the
 * connection to the broker and one request/reply exchange. */
#ifndef EXPBUS_CLIENT_H
#define EXPBUS_CLIENT_H

#include <stddef.h>
#include <sys/un.h>

#include "expbus.h"
#include "proto.h"

#define CLIENT_REPLY_TIMEOUT_MS 10000

struct expbus {
	char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char error[PROTO_ERROR_TEXT + 256];
	uint32_t spin_ns; /* a producer's look-again budget (spin.c) */
};

/* Records a failure message on the context; returns err for chaining. */
int client_fail(struct expbus *bus, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Connects a new SOCK_SEQPACKET socket to the broker. Returns the fd or a
 * negative errno with a message naming the socket. */
int client_connect(struct expbus *bus);

/* The same with extra socket(2) type flags (SOCK_NONBLOCK: connect never
 * waits; a full listen queue is -EAGAIN). */
int client_connect_flags(struct expbus *bus, int sock_flags);

/* Sends req (unless NULL: already sent), waits for the reply of type want with
 * exactly nfds fds into reply (cap bytes). A MSG_ERROR reply becomes its
 * negative errno with the broker's text as the context's error. Returns the
 * reply's length. */
ssize_t client_request(struct expbus *bus, int sock, const void *req,
		       size_t len, int want, void *reply, size_t cap, int *fds,
		       int nfds);

/* Reads one waiting reply, as client_request does after its wait; -EAGAIN
 * (no message recorded) when none has come yet. */
ssize_t client_reply(struct expbus *bus, int sock, int want, void *reply,
		     size_t cap, int *fds, int nfds);

/* Waits until fd is readable or sock hangs up, at most timeout_ms (-1:
 * for ever). Returns 1 readable, 0 timed out, -EPIPE broker gone, -EINTR. */
int client_wait(int fd, int sock, int timeout_ms);

struct ring;

/* One sleep of one side of a ring, as ring.c describes: raise the side's
 * flag, look again, then block on efd (or until sock hangs up) no later
 * than deadline (CLOCK_MONOTONIC ns; 0: none). A producer passes the
 * broker's wake fd as wake_fd (consumers -1): with its flag up and the
 * ring still full, it wakes a broker whose flag asks for it
 * (ring_producer_full_wakes). With its flag up it first looks again for
 * up to spin_ns (spin.c; 0: sleeps at once).
 * Returns > 0 when slots are ready (consumer) or free (producer) after
 * all, 0 after a wakeup (look again), -ETIMEDOUT, -EPIPE (the broker hung
 * up), -EPROTO (impossible counter), -EINTR, or another negative errno. */
int client_ring_sleep(struct ring *r, int producer, uint64_t skip, int efd,
		      int wake_fd, int sock, uint64_t deadline,
		      uint64_t spin_ns);

/* A producer whose ring is full and whose flag is up: writes wake_fd (the
 * broker's; -1: none) when the broker's flag asks for it
 * (ring_producer_full_wakes). Nothing to do on failure: the broker's timer
 * comes anyway. */
void client_ring_full(const struct ring *r, int wake_fd);

/* Now plus timeout_ms as a deadline for client_ring_sleep (0 if none). */
uint64_t client_deadline(int timeout_ms);

/* Monotonic clock in nanoseconds. */
uint64_t client_now_ns(void);

#endif
