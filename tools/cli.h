/* cli.h — what the subcommands of the expbus tool share: their entry
 * points, exit codes and the parsers of option values. */
#ifndef EXPBUS_TOOLS_CLI_H
#define EXPBUS_TOOLS_CLI_H

#include <signal.h>
#include <stdint.h>

#include "expbus.h"

#define EXIT_USAGE  2 /* bad command line */
#define EXIT_BROKER 3 /* no broker, or it refused or went away */

/* Each subcommand: argv[0] is its name; socket is --socket or NULL for
 * the default. Returns the process exit status. */
int cmd_pub(const char *socket, int argc, char **argv);
int cmd_sub(const char *socket, int argc, char **argv);
int cmd_check(const char *socket, int argc, char **argv);
int cmd_metrics(const char *socket, int argc, char **argv);
int cmd_bench(const char *socket, int argc, char **argv);
int cmd_stat(const char *socket, int argc, char **argv);
int cmd_ls(const char *socket, int argc, char **argv);
int cmd_top(const char *socket, int argc, char **argv);

/* Prints "expbus CMD: message" and a pointer to --help on stderr; returns
 * EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Subscribes to stream with so, retrying every 5 ms while the broker or
 * the stream is not there yet, for up to wait_ms or until *stop is set.
 * On failure prints "expbus CMD: subscribing to ..." with the broker's
 * reason on stderr. Returns 0 or -errno. */
int cli_subscribe(const char *cmd, struct expbus *bus, const char *stream,
		  const struct expbus_subscribe_options *so, uint32_t wait_ms,
		  const volatile sig_atomic_t *stop,
		  struct expbus_consumer **c);

/* CLOCK_MONOTONIC in nanoseconds and in seconds. */
uint64_t cli_now_ns(void);
double cli_now(void);
/* CPU time this process used so far (user + system, every thread). */
uint64_t cli_cpu_ns(void);

#endif
