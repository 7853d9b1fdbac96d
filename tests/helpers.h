/* helpers.h — for tests that run the real broker: start expbusd on a
 * private socket in a temporary directory, read its log, stop it, and
 * speak the raw control protocol (as a hostile peer would). */
#ifndef EXPBUS_TEST_HELPERS_H
#define EXPBUS_TEST_HELPERS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

struct test_broker {
	pid_t pid;
	char dir[256];
	char socket[300];
	char log[300];
};

/* Starts $EXPBUSD (extra args may be NULL-terminated list) and waits until
 * it accepts connections. Fails the test on error. */
void broker_start(struct test_broker *tb, const char *const *extra);
/* SIGKILL the broker and start a new one on the same socket. */
void broker_crash_and_restart(struct test_broker *tb);
/* SIGTERM, wait, check exit status 0, remove the directory. */
void broker_stop(struct test_broker *tb);
/* Waits up to timeout_ms for needle to appear in the broker's log. */
int broker_log_has(const struct test_broker *tb, const char *needle,
		   int timeout_ms);
/* Open fds and shared-segment mappings of the broker process (/proc). */
int broker_fd_count(const struct test_broker *tb);
int broker_map_count(const struct test_broker *tb);

/* CLOCK_MONOTONIC in milliseconds, for the tests' deadlines. */
uint64_t now_ms(void);

int raw_connect(const struct test_broker *tb);
/* Sends an attach; returns the reply type and up to 3 fds in fds. */
int raw_attach(int sock, const char *stream, const char *schema,
	       uint32_t ring_slots, struct msg_ok_attach *ok, int fds[3]);
/* Sends ATTACH_RESUME with ring_fd (a ring an earlier broker gave). */
int raw_resume(int sock, const char *stream, const char *schema, int ring_fd,
	       struct msg_ok_attach *ok, int fds[3]);
/* Sends a plain subscribe; returns the reply type and 4 fds. */
int raw_subscribe(int sock, const char *stream, uint32_t batch_size,
		  uint32_t max_delay_us, struct msg_ok_subscribe *ok,
		  int fds[4]);
/* Waits up to timeout_ms for the broker to hang up on sock: 1 if it did. */
int raw_hung_up(int sock, int timeout_ms);

#endif
