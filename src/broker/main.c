/* main.c — expbusd: flags, start-up and exit. The broker's work is in
 * loop.c (events), control.c (control protocol) and pump.c (data path). */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "activation.h"
#include "loop.h"

static const char usage[] =
    "Usage: expbusd [OPTION]...\n"
    "The expbus broker: merges the shared-memory rings of game processes\n"
    "into columnar batches for trainers on this host.\n"
    "\n"
    "  -s, --socket PATH      control socket (default: $XDG_RUNTIME_DIR/expbus.sock,\n"
    "                         else /run/expbus/expbus.sock); mode 0600, so only\n"
    "                         this user may attach\n"
    "  -g, --group NAME       also let members of group NAME attach (mode 0660)\n"
    "      --ring-bytes N     default size of a producer ring (default 1M);\n"
    "                         a producer may ask for its own size\n"
    "      --max-segment N    largest ring or batch ring a peer may ask for\n"
    "                         (default 1G)\n"
    "      --batch N          default records per batch (default 32)\n"
    "      --delay-ms N       default maximum delay of a partial batch\n"
    "                         (default 100)\n"
    "      --shm-budget N     total shared memory of rings and pages the\n"
    "                         broker holds for its peers (default: half of\n"
    "                         RAM); a request beyond it is refused\n"
    "      --idle-timeout-ms N  close a connection that sent no request\n"
    "                         within N ms (default 10000)\n"
    "      --max-conns-per-uid N  control connections one uid may hold\n"
    "                         (default 1024)\n"
    "      --stream-linger-ms N  free a stream N ms after its last producer\n"
    "                         and subscriber left (default 60000)\n"
    "      --resume-hold-ms N  after a restart, a stream whose producers\n"
    "                         hand their rings over waits until the\n"
    "                         subscribers it had are back (they resubscribe\n"
    "                         by themselves), at most N ms (default 5000;\n"
    "                         0: does not wait)\n"
    "      --group-idle-s N   a subscription group forgets a game (which\n"
    "                         member has it) after N s without a record;\n"
    "                         it always does at the game's DONE or\n"
    "                         TRUNCATED record (default 600; 0: never)\n"
    "      --coalesce-min-delay-us N  when every subscription takes\n"
    "                         batches of more than one record and allows\n"
    "                         at least N us of delay, a quiet broker looks\n"
    "                         at its rings on a timer (a quarter of the\n"
    "                         smallest delay, counted against it) instead\n"
    "                         of waking for every record (default 1000;\n"
    "                         0: always wake for every record)\n"
    "      --spin-us N        going idle while records keep coming sooner\n"
    "                         than N us apart, look again for N us (giving\n"
    "                         the CPU away between looks) before sleeping;\n"
    "                         twice that while the subscribers sleep rather\n"
    "                         than poll (default 20; 0: sleep at once)\n"
    "  -l, --log-level LEVEL  error, warn, info (default) or debug; logs go\n"
    "                         to stderr\n"
    "  -h, --help             show this help\n"
    "  -V, --version          show the version\n"
    "\n"
    "Sizes take a K, M or G suffix (powers of 1024).\n"
    "SIGTERM or SIGINT: stop accepting, deliver what producers committed,\n"
    "flush partial batches and exit 0.\n"
    "Under systemd: a socket passed by socket activation (LISTEN_FDS, one\n"
    "SOCK_SEQPACKET socket) is used instead of --socket, and READY=1 is\n"
    "sent on $NOTIFY_SOCKET once listening (Type=notify).\n"
    "Exit status: 0 after a clean stop, 1 when start-up failed, 2 on bad\n"
    "usage.\n";

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		v <<= 10;
		end++;
		break;
	case 'm':
	case 'M':
		v <<= 20;
		end++;
		break;
	case 'g':
	case 'G':
		v <<= 30;
		end++;
		break;
	default:
		break;
	}
	if (*end || v == 0)
		return -EINVAL;
	*out = v;
	return 0;
}

/* A plain decimal count from 0 to max. */
static int parse_count(const char *s, unsigned long long max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int bad(const char *opt, const char *val)
{
	fprintf(stderr,
		"expbusd: invalid value '%s' for %s\n"
		"Try 'expbusd --help' for more information.\n",
		val, opt);
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"group", required_argument, NULL, 'g'},
	    {"ring-bytes", required_argument, NULL, 'r'},
	    {"max-segment", required_argument, NULL, 'm'},
	    {"batch", required_argument, NULL, 'b'},
	    {"delay-ms", required_argument, NULL, 'd'},
	    {"group-idle-s", required_argument, NULL, 'i'},
	    {"log-level", required_argument, NULL, 'l'},
	    {"shm-budget", required_argument, NULL, 'B'},
	    {"idle-timeout-ms", required_argument, NULL, 'I'},
	    {"max-conns-per-uid", required_argument, NULL, 'U'},
	    {"stream-linger-ms", required_argument, NULL, 'L'},
	    {"resume-hold-ms", required_argument, NULL, 'H'},
	    {"coalesce-min-delay-us", required_argument, NULL, 'C'},
	    {"spin-us", required_argument, NULL, 'S'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {0},
	};
	static struct broker broker;
	struct broker *b = &broker;
	char default_path[108], activated_path[108];
	sigset_t stop;
	uint64_t v;
	int c, rc;

	/* SIGTERM and SIGINT wait for the signalfd (broker_open) from the
	 * start: one sent as soon as this process exists (a supervisor that
	 * restarts it and stops it at once) is a clean stop, not a kill. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigprocmask(SIG_BLOCK, &stop, NULL);
	b->cfg.ring_bytes = 1u << 20;
	b->cfg.max_segment = 1u << 30;
	b->cfg.default_batch = 32;
	b->cfg.default_delay_us = 100000;
	b->cfg.group_idle_ns = 600ull * 1000000000u;
	b->cfg.resume_hold_ns = 5000ull * 1000000u;
	b->cfg.coalesce_min_ns = 1000000u;
	b->cfg.spin_ns = 20000u;
	b->cfg.log_level = LOG_INFO;
	while ((c = getopt_long(argc, argv, "s:g:l:hV", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			b->cfg.socket_path = optarg;
			break;
		case 'g': {
			struct group *gr = getgrnam(optarg);
			if (!gr) {
				fprintf(stderr,
					"expbusd: no group named '%s'\n",
					optarg);
				return 2;
			}
			b->cfg.has_gid = true;
			b->cfg.gid = gr->gr_gid;
			break;
		}
		case 'r':
			if (parse_size(optarg, &b->cfg.ring_bytes) < 0)
				return bad("--ring-bytes", optarg);
			break;
		case 'm':
			if (parse_size(optarg, &b->cfg.max_segment) < 0)
				return bad("--max-segment", optarg);
			break;
		case 'b':
			if (parse_size(optarg, &v) < 0 || v > 65536)
				return bad("--batch", optarg);
			b->cfg.default_batch = (uint32_t)v;
			break;
		case 'd':
			if (parse_size(optarg, &v) < 0 || v > 60000)
				return bad("--delay-ms", optarg);
			b->cfg.default_delay_us = (uint32_t)v * 1000;
			break;
		case 'B':
			if (parse_size(optarg, &b->cfg.shm_budget) < 0)
				return bad("--shm-budget", optarg);
			break;
		case 'I':
			if (parse_size(optarg, &v) < 0 || v > 86400000)
				return bad("--idle-timeout-ms", optarg);
			b->cfg.idle_timeout_ns = v * 1000000u;
			break;
		case 'U':
			if (parse_size(optarg, &v) < 0 || v > BROKER_MAX_CONNS)
				return bad("--max-conns-per-uid", optarg);
			b->cfg.max_conns_per_uid = (uint32_t)v;
			break;
		case 'L':
			if (parse_size(optarg, &v) < 0 || v > 86400000)
				return bad("--stream-linger-ms", optarg);
			b->cfg.stream_linger_ns = v * 1000000u;
			break;
		case 'H':
			if (parse_count(optarg, 600000u, &v) < 0)
				return bad("--resume-hold-ms", optarg);
			b->cfg.resume_hold_ns = v * 1000000u;
			break;
		case 'i':
			if (parse_count(optarg, 365ull * 24 * 3600, &v) < 0)
				return bad("--group-idle-s", optarg);
			b->cfg.group_idle_ns = v * 1000000000u;
			break;
		case 'S':
			if (parse_count(optarg, 1000000u, &v) < 0)
				return bad("--spin-us", optarg);
			b->cfg.spin_ns = v * 1000u;
			break;
		case 'C':
			if (parse_count(optarg, 60000000u, &v) < 0)
				return bad("--coalesce-min-delay-us", optarg);
			b->cfg.coalesce_min_ns = v * 1000u;
			break;
		case 'l':
			b->cfg.log_level = log_parse_level(optarg);
			if (b->cfg.log_level < 0)
				return bad("--log-level", optarg);
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		case 'V':
			printf("expbusd %d.%d\n", EXPBUS_VERSION_MAJOR,
			       EXPBUS_VERSION_MINOR);
			return 0;
		default:
			fputs("Try 'expbusd --help' for more information.\n",
			      stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr,
			"expbusd: unexpected argument '%s'\n"
			"Try 'expbusd --help' for more information.\n",
			argv[optind]);
		return 2;
	}
	if (!b->cfg.socket_path) {
		if (!expbus_default_socket(default_path,
					   sizeof(default_path))) {
			fprintf(stderr,
				"expbusd: $XDG_RUNTIME_DIR is too long for "
				"a socket path; use --socket\n");
			return 2;
		}
		b->cfg.socket_path = default_path;
		if (!getenv("XDG_RUNTIME_DIR"))
			(void)mkdir("/run/expbus", 0755);
	}
	b->cfg.activated_fd =
	    activation_listen_fd(activated_path, sizeof(activated_path));
	if (b->cfg.activated_fd >= 0) {
		b->cfg.activated = true;
		b->cfg.socket_path = activated_path;
	} else if (b->cfg.activated_fd != -ENOENT) {
		return 1;
	}
	rc = broker_open(b) < 0 ? 1 : 0;
	if (rc == 0) {
		activation_notify("READY=1");
		rc = broker_run(b);
		activation_notify("STOPPING=1");
	}
	broker_close(b);
	return rc;
}
