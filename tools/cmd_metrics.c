/* cmd_metrics.c — `expbus metrics`: serves the broker's counters on
 * http://HOST:PORT/metrics for Prometheus, in a process of its own (the
 * broker stays off the network), reading the stats segment read-only on
 * each scrape. HTTP is libmicrohttpd's, one internal thread. */
#include <errno.h>
#include <pthread.h>
#include <microhttpd.h>
#include <netdb.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cli.h"
#include "expbus.h"
#include "options.h"
#include "prom_text.h"
#include "stats_view.h"

#define CMD	       "metrics"
#define DEFAULT_LISTEN "127.0.0.1:9477"
#define CONTENT_TYPE   "text/plain; version=0.0.4; charset=utf-8"

/* Touched only by libmicrohttpd's one internal thread, once started. */
struct exporter {
	struct stats_source src; /* seg NULL while no broker is mapped */
	struct stats_view view;
	unsigned long long scrapes;
};

/* Maps the segment of whichever broker serves the socket now, when none
 * is mapped or the mapped one's broker has exited (a restart). */
static bool broker_mapped(struct exporter *e)
{
	if (e->src.seg && stats_view_take(e->src.seg, &e->view) == 0 &&
	    (kill((pid_t)e->view.broker_pid, 0) == 0 || errno != ESRCH))
		return true;
	if (stats_source_reopen(&e->src) < 0) {
		if (e->src.seg)
			expbus_stats_unmap(e->src.seg, e->src.size);
		e->src.seg = NULL;
		return false;
	}
	return stats_view_take(e->src.seg, &e->view) == 0;
}

static char *scrape(struct exporter *e, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	bool up;

	if (!f)
		return NULL;
	up = broker_mapped(e);
	e->scrapes++;
	fprintf(f,
		"# HELP expbus_broker_up Whether the broker's stats segment "
		"could be read (1) or not (0) at this scrape.\n"
		"# TYPE expbus_broker_up gauge\n"
		"expbus_broker_up %d\n",
		up);
	fprintf(f,
		"# HELP expbus_exporter_scrapes_total Scrapes this 'expbus "
		"metrics' served.\n"
		"# TYPE expbus_exporter_scrapes_total counter\n"
		"expbus_exporter_scrapes_total %llu\n",
		e->scrapes);
	if (up)
		prom_text_write(f, &e->view);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status,
			     const char *type, char *body, size_t len,
			     enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(len, body, mode);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn,
			      const char *url, const char *method,
			      const char *version, const char *upload,
			      size_t *upload_size, void **req)
{
	static char index_page[] =
	    "expbus metrics: the broker's counters are at /metrics\n";
	static char not_found[] = "not found: try /metrics\n";
	static char not_allowed[] = "only GET and HEAD\n";
	struct exporter *e = cls;
	size_t len;
	char *body;

	(void)version;
	(void)upload;
	(void)upload_size;
	(void)req;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain",
			     not_allowed, sizeof(not_allowed) - 1,
			     MHD_RESPMEM_PERSISTENT);
	if (strcmp(url, "/") == 0)
		return reply(conn, MHD_HTTP_OK, "text/plain", index_page,
			     sizeof(index_page) - 1, MHD_RESPMEM_PERSISTENT);
	if (strcmp(url, "/metrics") != 0)
		return reply(conn, MHD_HTTP_NOT_FOUND, "text/plain", not_found,
			     sizeof(not_found) - 1, MHD_RESPMEM_PERSISTENT);
	body = scrape(e, &len);
	if (!body)
		return MHD_NO;
	return reply(conn, MHD_HTTP_OK, CONTENT_TYPE, body, len,
		     MHD_RESPMEM_MUST_FREE);
}

/* HOST:PORT or [V6]:PORT into an address; port 0 picks a free one. */
static int resolve(const char *listen, struct sockaddr_storage *addr,
		   char *host, size_t host_len)
{
	const char *colon = strrchr(listen, ':');
	const char *h = listen;
	size_t hl;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE},
			*res;
	int err;

	if (!colon || !colon[1])
		return cli_usage_error(CMD,
				       "--listen: '%s' is not HOST:PORT, e.g. "
				       "127.0.0.1:9477 or [::1]:9477",
				       listen);
	hl = (size_t)(colon - listen);
	if (hl >= 2 && listen[0] == '[' && listen[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl == 0 || hl >= host_len)
		return cli_usage_error(CMD, "--listen: no host in '%s'",
				       listen);
	memcpy(host, h, hl);
	host[hl] = '\0';
	err = getaddrinfo(host, colon + 1, &hints, &res);
	if (err)
		return cli_usage_error(CMD, "--listen: '%s': %s", listen,
				       gai_strerror(err));
	memcpy(addr, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

int cmd_metrics(const char *socket, int argc, char **argv)
{
	const char *listen = DEFAULT_LISTEN;
	const struct option_spec opts[] = {
	    OPTION_SOCKET(&socket),
	    {.name = "listen",
	     .short_name = 'l',
	     .kind = OPTION_STRING,
	     .target = &listen,
	     .metavar = "HOST:PORT",
	     .help = "address to serve on (default " DEFAULT_LISTEN ",\n"
		     "loopback only; port 0: a free one, printed)"},
	    OPTION_END,
	};
	const struct command_spec spec = {
	    .name = CMD,
	    .summary =
		"Serve the broker's counters over HTTP for Prometheus: GET\n"
		"/metrics returns the text exposition format (0.0.4), read from\n"
		"the broker's stats segment, mapped read-only, at each scrape. The\n"
		"same families as 'expbus stat --prometheus', per stream, producer\n"
		"ring and subscription (labels stream, producer, subscription, pid,\n"
		"group, policy), plus expbus_broker_up: 0 while no broker answers\n"
		"at the socket (a restarted broker is found again by itself).",
	    .options = opts,
	    .epilog = "Runs until SIGINT or SIGTERM. It serves plain HTTP "
		      "without\n"
		      "authentication: keep it on loopback or behind a proxy.\n"
		      "\n"
		      "Exit status: 0 stopped by a signal, 1 could not serve "
		      "on the\n"
		      "address, 2 bad usage.\n",
	};
	struct exporter e = {0};
	struct sockaddr_storage addr;
	char host[256];
	struct MHD_Daemon *d;
	const union MHD_DaemonInfo *info;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	sigset_t sigs;
	int err, sig;

	err = options_parse(&spec, argc, argv, NULL);
	if (err)
		return err > 0 ? 0 : EXIT_USAGE;
	err = resolve(listen, &addr, host, sizeof(host));
	if (err)
		return err;
	if (addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	err = expbus_new(socket, &e.src.bus);
	if (err < 0) {
		fprintf(stderr, "expbus metrics: socket path: %s\n",
			strerror(-err));
		return EXIT_USAGE;
	}
	/* Signals are taken with sigwait below; blocked before the daemon's
	 * thread starts so that it inherits the mask and never gets them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	d = MHD_start_daemon(
	    flags, 0, NULL, NULL, handle, &e, MHD_OPTION_SOCK_ADDR,
	    (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT, 64u,
	    MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "expbus metrics: cannot serve on %s: %s\n",
			listen, strerror(errno));
		expbus_free(e.src.bus);
		return 1;
	}
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	printf("expbus metrics: serving http://%s%s%s:%u/metrics\n",
	       addr.ss_family == AF_INET6 ? "[" : "", host,
	       addr.ss_family == AF_INET6 ? "]" : "", info ? info->port : 0);
	fflush(stdout);
	sigwait(&sigs, &sig);
	MHD_stop_daemon(d);
	stats_view_free(&e.view);
	if (e.src.seg)
		expbus_stats_unmap(e.src.seg, e.src.size);
	expbus_free(e.src.bus);
	return 0;
}
