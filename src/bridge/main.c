/* main.c — expbus-grpc: flags, start-up, signals and exit codes. The work
 * is in server.c (gRPC) and session.c (remote subscriptions). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "bridge.h"

static const char usage[] =
    "Usage: expbus-grpc --listen HOST:PORT [OPTION]...\n"
    "Serves the streams of the local expbus broker to trainers on other\n"
    "hosts over gRPC (service expbus.v1.ExperienceService, see\n"
    "proto/expbus.proto, installed as include/expbus/expbus.proto).\n"
    "The bridge is a subscriber like any trainer: `expbus ls/top/stat` show\n"
    "one subscription per remote subscription.\n"
    "\n"
    "  -s, --socket PATH          the broker's socket (default:\n"
    "                             $XDG_RUNTIME_DIR/expbus.sock, else\n"
    "                             /run/expbus/expbus.sock)\n"
    "  -l, --listen HOST:PORT     where to serve, e.g. 127.0.0.1:7070,\n"
    "                             [::]:7070; port 0 picks a free port (the\n"
    "                             start-up line on stderr names it)\n"
    "      --tls-cert FILE        PEM certificate chain: serve TLS\n"
    "      --tls-key FILE         PEM private key of --tls-cert\n"
    "      --tls-client-ca FILE   PEM CAs: verify client certificates\n"
    "                             signed by them when clients present one\n"
    "      --require-client-cert  with --tls-client-ca: refuse clients\n"
    "                             without a certificate\n"
    "      --token-file FILE      every call must carry the metadata\n"
    "                             'authorization: Bearer TOKEN', TOKEN the\n"
    "                             file's first line; else UNAUTHENTICATED\n"
    "      --insecure             allow plaintext on an address that is not\n"
    "                             loopback (default: refused)\n"
    "      --max-subscriptions N  remote subscriptions at once, lingering\n"
    "                             ones included (default 128); beyond:\n"
    "                             RESOURCE_EXHAUSTED\n"
    "      --linger SEC           keep a subscription whose client went\n"
    "                             away this long for it to resume (default\n"
    "                             30); lossless ones hold back the games\n"
    "                             meanwhile once their retention is full.\n"
    "                             The Unsubscribe RPC (the Python client's\n"
    "                             close()) ends one at once\n"
    "      --retention N          batches each subscription keeps, sent or\n"
    "                             not, for resume (default 4096)\n"
    "      --retention-bytes N    and at most N bytes of them (default\n"
    "                             64M; K, M, G suffixes). Sent is not\n"
    "                             received: keep more than a client's\n"
    "                             receive window and socket buffers (the\n"
    "                             Python client's window is 8 MiB), or a\n"
    "                             resume after a crash reports lost records\n"
    "      --batch-slots N        batch ring of each local subscription, a\n"
    "                             power of two (default 16)\n"
    "  -v, --verbose              a line per subscription event on stderr\n"
    "  -h, --help                 show this help\n"
    "  -V, --version              show the version\n"
    "\n"
    "SIGTERM or SIGINT: end every call with UNAVAILABLE, unsubscribe, exit\n"
    "0. Under systemd (Type=notify) READY=1 is sent once listening.\n"
    "Exit status: 0 after a clean stop, 1 when it could not start (the port,\n"
    "the certificates, plaintext on a non-loopback address), 2 on bad\n"
    "usage.\n";

static volatile int stop_signal;

static void on_signal(int sig)
{
	(void)sig;
	stop_signal = 1;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;
	int shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return -EINVAL;
	if (*end == 'K' || *end == 'k')
		shift = 10;
	else if (*end == 'M' || *end == 'm')
		shift = 20;
	else if (*end == 'G' || *end == 'g')
		shift = 30;
	if (shift)
		end++;
	if (*end || v > (max >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static char *read_token(const char *path)
{
	FILE *f = fopen(path, "re");
	char line[1024];
	size_t n;

	if (!f) {
		fprintf(stderr,
			"expbus-grpc: cannot open --token-file %s: %s\n", path,
			strerror(errno));
		return NULL;
	}
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	fclose(f);
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	if (n == 0) {
		fprintf(stderr, "expbus-grpc: --token-file %s is empty\n",
			path);
		return NULL;
	}
	return strdup(line);
}

static int bad(const char *opt, const char *arg)
{
	fprintf(stderr,
		"expbus-grpc: bad value '%s' for %s\n"
		"Try 'expbus-grpc --help' for more information.\n",
		arg, opt);
	return BRIDGE_EXIT_USAGE;
}

static void notify_ready(void)
{
#ifdef HAVE_LIBSYSTEMD
	(void)sd_notify(0, "READY=1");
#endif
}

int main(int argc, char **argv)
{
	enum {
		O_TLS_CERT = 256,
		O_TLS_KEY,
		O_TLS_CA,
		O_REQUIRE,
		O_TOKEN,
		O_INSECURE,
		O_MAXSUB,
		O_LINGER,
		O_RET,
		O_RETB,
		O_SLOTS,
	};
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"listen", required_argument, NULL, 'l'},
	    {"tls-cert", required_argument, NULL, O_TLS_CERT},
	    {"tls-key", required_argument, NULL, O_TLS_KEY},
	    {"tls-client-ca", required_argument, NULL, O_TLS_CA},
	    {"require-client-cert", no_argument, NULL, O_REQUIRE},
	    {"token-file", required_argument, NULL, O_TOKEN},
	    {"insecure", no_argument, NULL, O_INSECURE},
	    {"max-subscriptions", required_argument, NULL, O_MAXSUB},
	    {"linger", required_argument, NULL, O_LINGER},
	    {"retention", required_argument, NULL, O_RET},
	    {"retention-bytes", required_argument, NULL, O_RETB},
	    {"batch-slots", required_argument, NULL, O_SLOTS},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct bridge_config cfg = {
	    .max_subscriptions = 128,
	    .linger_ms = 30000,
	    .retention = 4096,
	    .retention_bytes = 64u << 20,
	    .batch_slots = 16,
	};
	char *token = NULL;
	struct sigaction sa;
	uint64_t v;
	double sec;
	char *end;
	int c, rc;

	while ((c = getopt_long(argc, argv, "s:l:vhV", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			cfg.socket = optarg;
			break;
		case 'l':
			cfg.listen = optarg;
			break;
		case O_TLS_CERT:
			cfg.tls_cert = optarg;
			break;
		case O_TLS_KEY:
			cfg.tls_key = optarg;
			break;
		case O_TLS_CA:
			cfg.tls_client_ca = optarg;
			break;
		case O_REQUIRE:
			cfg.tls_require_client = true;
			break;
		case O_TOKEN:
			free(token);
			token = read_token(optarg);
			if (!token)
				return BRIDGE_EXIT_USAGE;
			break;
		case O_INSECURE:
			cfg.insecure = true;
			break;
		case O_MAXSUB:
			if (parse_u64(optarg, 4096, &v) < 0 || v == 0)
				return bad("--max-subscriptions", optarg);
			cfg.max_subscriptions = (uint32_t)v;
			break;
		case O_LINGER:
			errno = 0;
			sec = strtod(optarg, &end);
			if (errno || end == optarg || *end || sec < 0 ||
			    sec > 86400)
				return bad("--linger", optarg);
			cfg.linger_ms = (uint32_t)(sec * 1000);
			break;
		case O_RET:
			if (parse_u64(optarg, 1u << 20, &v) < 0 || v < 1)
				return bad("--retention", optarg);
			cfg.retention = (uint32_t)v;
			break;
		case O_RETB:
			if (parse_u64(optarg, UINT64_MAX, &v) < 0 || v < 1)
				return bad("--retention-bytes", optarg);
			cfg.retention_bytes = v;
			break;
		case O_SLOTS:
			if (parse_u64(optarg, 1u << 16, &v) < 0 || v < 2 ||
			    (v & (v - 1)))
				return bad("--batch-slots", optarg);
			cfg.batch_slots = (uint32_t)v;
			break;
		case 'v':
			cfg.verbose = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return BRIDGE_EXIT_OK;
		case 'V':
			printf("expbus-grpc %d.%d\n", EXPBUS_VERSION_MAJOR,
			       EXPBUS_VERSION_MINOR);
			return BRIDGE_EXIT_OK;
		default:
			fprintf(stderr, "Try 'expbus-grpc --help' for more "
					"information.\n");
			return BRIDGE_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "expbus-grpc: unexpected argument '%s'\n",
			argv[optind]);
		return BRIDGE_EXIT_USAGE;
	}
	if (!cfg.listen) {
		fprintf(stderr, "expbus-grpc: --listen HOST:PORT is required\n"
				"Try 'expbus-grpc --help' for more "
				"information.\n");
		return BRIDGE_EXIT_USAGE;
	}
	if (!cfg.tls_cert != !cfg.tls_key) {
		fprintf(stderr, "expbus-grpc: --tls-cert and --tls-key go "
				"together\n");
		return BRIDGE_EXIT_USAGE;
	}
	if ((cfg.tls_client_ca || cfg.tls_require_client) && !cfg.tls_cert) {
		fprintf(stderr, "expbus-grpc: client certificates need TLS: "
				"give --tls-cert and --tls-key\n");
		return BRIDGE_EXIT_USAGE;
	}
	if (cfg.tls_require_client && !cfg.tls_client_ca) {
		fprintf(stderr, "expbus-grpc: --require-client-cert needs "
				"--tls-client-ca\n");
		return BRIDGE_EXIT_USAGE;
	}
	cfg.token = token;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	heap_tune(cfg.retention_bytes);
	grpc_init();
	rc = server_run(&cfg, &stop_signal, notify_ready);
#ifdef HAVE_LIBSYSTEMD
	(void)sd_notify(0, "STOPPING=1");
#endif
	grpc_shutdown_blocking();
	free(token);
	return rc;
}
