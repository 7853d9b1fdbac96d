/* expbus.c — the entry of the expbus tool: global options, dispatch to the
 * subcommands (cmd_*.c), and the option-value parsers they share. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "expbus.h"

struct command {
	const char *name;
	int (*run)(const char *socket, int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
    {"pub", cmd_pub, "write patterned records from N producer processes"},
    {"sub", cmd_sub, "subscribe and print records as they arrive"},
    {"check", cmd_check, "subscribe, check every record of pub, report rates"},
    {"ls", cmd_ls, "list streams, producers and subscriptions"},
    {"top", cmd_top, "live view of rings, rates, lag and drops"},
    {"stat", cmd_stat, "one snapshot of every counter (--json, --prometheus)"},
    {"metrics", cmd_metrics, "serve the counters to Prometheus over HTTP"},
    {"bench", cmd_bench, "N producers, M subscribers: rates and latency"},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	char def[108];

	fprintf(
	    f, "Usage: expbus [--socket PATH] COMMAND [OPTION]...\n"
	       "Talk to the expbus broker (expbusd): publish and subscribe to\n"
	       "test records, inspect what the broker is doing.\n"
	       "\n"
	       "Commands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-8s %s\n", commands[i].name,
			commands[i].summary);
	fprintf(
	    f,
	    "  help     'expbus help COMMAND' shows that command's options\n"
	    "\n"
	    "Options:\n"
	    "  -s, --socket PATH  the broker's control socket (default: %s);\n"
	    "                     every command also takes --socket itself\n"
	    "  -h, --help         show this help\n"
	    "  -V, --version      show the version\n"
	    "\n"
	    "Exit status: 0 success, 1 failure (see each command), 2 bad usage,\n"
	    "3 no broker or the broker refused.\n",
	    expbus_default_socket(def, sizeof(def))
		? def
		: "$XDG_RUNTIME_DIR/expbus.sock");
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {0},
	};
	const struct command *cmd;
	const char *socket = NULL;
	int c;

	/* '+': stop at the command name; what follows is the command's. */
	while ((c = getopt_long(argc, argv, "+s:hV", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			socket = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("expbus %d.%d\n", EXPBUS_VERSION_MAJOR,
			       EXPBUS_VERSION_MINOR);
			return 0;
		default:
			fprintf(stderr, "Try 'expbus --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "expbus: no command given\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[optind], "help") == 0) {
		char help[] = "--help";
		char *args[3];

		if (optind + 1 >= argc) {
			usage(stdout);
			return 0;
		}
		cmd = find_command(argv[optind + 1]);
		if (!cmd) {
			fprintf(
			    stderr,
			    "expbus help: no command '%s'; try 'expbus --help'.\n",
			    argv[optind + 1]);
			return EXIT_USAGE;
		}
		args[0] = argv[optind + 1];
		args[1] = help;
		args[2] = NULL;
		optind = 0; /* glibc: start the command's getopt afresh */
		return cmd->run(socket, 2, args);
	}
	cmd = find_command(argv[optind]);
	if (!cmd) {
		fprintf(stderr,
			"expbus: no command '%s'; try 'expbus --help'.\n",
			argv[optind]);
		return EXIT_USAGE;
	}
	argv += optind;
	argc -= optind;
	optind = 0;
	return cmd->run(socket, argc, argv);
}

int cli_subscribe(const char *cmd, struct expbus *bus, const char *stream,
		  const struct expbus_subscribe_options *so, uint32_t wait_ms,
		  const volatile sig_atomic_t *stop, struct expbus_consumer **c)
{
	uint64_t deadline = cli_now_ns() + (uint64_t)wait_ms * 1000000u;
	int err;

	for (;;) {
		err = expbus_subscribe(bus, stream, so, c);
		if (err != -ENOENT && err != -ECONNREFUSED)
			break;
		if (*stop || cli_now_ns() >= deadline)
			break;
		(void)usleep(5000);
	}
	if (err < 0)
		fprintf(stderr, "expbus %s: subscribing to '%s' at %s: %s\n",
			cmd, stream, expbus_socket_path(bus),
			expbus_last_error(bus)[0] ? expbus_last_error(bus)
						  : strerror(-err));
	return err;
}

uint64_t cli_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double cli_now(void)
{
	return (double)cli_now_ns() / 1e9;
}

uint64_t cli_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
