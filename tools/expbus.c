/* expbus.c — the entry of the expbus tool: global options, dispatch to the
 * subcommands (cmd_*.c), and the option-value parsers they share. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "expbus.h"

struct command {
	const char *name;
	int (*run)(const char *socket, int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
    {"pub", cmd_pub, "write patterned records from N producer processes"},
    {"sub", cmd_sub, "subscribe, check every record, report rates"},
    {"ls", cmd_ls, "list streams, producers and subscriptions"},
    {"top", cmd_top, "live view of rings, rates, lag and drops"},
    {"stat", cmd_stat, "one snapshot of every counter (--json, --prometheus)"},
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
		fprintf(f, "  %-6s %s\n", commands[i].name,
			commands[i].summary);
	fprintf(
	    f,
	    "  help   'expbus help COMMAND' shows that command's options\n"
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

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "expbus %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'expbus %s --help'.\n", cmd);
	return EXIT_USAGE;
}

int cli_u64(const char *cmd, const char *opt, const char *arg, uint64_t min,
	    uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	/* strtoull accepts "-1" and wraps it: refuse any sign up front. */
	if (arg[0] < '0' || arg[0] > '9')
		goto bad;
	v = strtoull(arg, &end, 10);
	if (errno || *end || v < min || v > max)
		goto bad;
	*out = v;
	return 0;
bad:
	cli_usage_error(cmd, "%s: '%s' is not a whole number from %llu to %llu",
			opt, arg, (unsigned long long)min,
			(unsigned long long)max);
	return -EINVAL;
}

int cli_u32(const char *cmd, const char *opt, const char *arg, uint32_t min,
	    uint32_t max, uint32_t *out)
{
	uint64_t v;
	int err = cli_u64(cmd, opt, arg, min, max, &v);

	if (err == 0)
		*out = (uint32_t)v;
	return err;
}

int cli_seconds(const char *cmd, const char *opt, const char *arg, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno || end == arg || *end || !(v >= 0) || v > 1e9) {
		cli_usage_error(
		    cmd, "%s: '%s' is not a number of seconds (e.g. 2.5)", opt,
		    arg);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

int cli_list(const char *cmd, const char *opt, const char *arg, uint32_t max,
	     uint32_t **ids, uint32_t *n)
{
	uint32_t *v = malloc(sizeof(*v) * max), k = 0, out = 0;
	const char *p = arg;

	if (!v) {
		fprintf(stderr, "expbus %s: out of memory\n", cmd);
		return -ENOMEM;
	}
	for (;;) {
		unsigned long lo, hi;
		char *end;

		if (*p < '0' || *p > '9')
			goto bad;
		errno = 0;
		lo = hi = strtoul(p, &end, 10);
		if (*end == '-') {
			p = end + 1;
			if (*p < '0' || *p > '9')
				goto bad;
			hi = strtoul(p, &end, 10);
		}
		if (errno || lo > UINT32_MAX || hi > UINT32_MAX || lo > hi)
			goto bad;
		if (hi - lo >= max || k + (hi - lo) >= max) {
			free(v);
			cli_usage_error(cmd, "%s: '%s' names more than %u ids",
					opt, arg, max);
			return -EINVAL;
		}
		for (unsigned long x = lo; x <= hi; x++)
			v[k++] = (uint32_t)x;
		if (*end == '\0')
			break;
		if (*end != ',')
			goto bad;
		p = end + 1;
	}
	qsort(v, k, sizeof(*v), cmp_u32);
	for (uint32_t i = 0; i < k; i++)
		if (out == 0 || v[out - 1] != v[i])
			v[out++] = v[i];
	*ids = v;
	*n = out;
	return 0;
bad:
	free(v);
	cli_usage_error(cmd, "%s: '%s' is not a list of ids such as '0,2,5-9'",
			opt, arg);
	return -EINVAL;
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
