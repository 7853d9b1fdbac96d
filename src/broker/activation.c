/* activation.c — expbusd under systemd: the listening socket handed over
 * by socket activation (LISTEN_FDS, sd_listen_fds) instead of binding one,
 * and READY=1 / STOPPING=1 on $NOTIFY_SOCKET (sd_notify) for Type=notify.
 * Without libsystemd (-Dsystemd=disabled) neither happens. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "activation.h"

int activation_listen_fd(char *path, size_t path_len)
{
#ifdef HAVE_LIBSYSTEMD
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	/* unset_environment: the variables are for this process, not for
	 * anything it might start. */
	int n = sd_listen_fds(1), fd = SD_LISTEN_FDS_START;

	if (n == 0)
		return -ENOENT;
	if (n < 0) {
		fprintf(stderr, "expbusd: LISTEN_FDS: %s\n", strerror(-n));
		return n;
	}
	if (n != 1 || sd_is_socket_unix(fd, SOCK_SEQPACKET, 1, NULL, 0) <= 0) {
		fprintf(stderr,
			"expbusd: socket activation must pass exactly one "
			"listening AF_UNIX SOCK_SEQPACKET socket "
			"(ListenSequentialPacket= in the .socket unit); got "
			"%d fds\n",
			n);
		return -EINVAL;
	}
	memset(&sa, 0, sizeof(sa));
	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0 ||
	    sa.sun_family != AF_UNIX || len <= sizeof(sa.sun_family) ||
	    !sa.sun_path[0]) {
		fprintf(stderr, "expbusd: the activated socket has no path\n");
		return -EINVAL;
	}
	snprintf(path, path_len, "%.*s",
		 (int)(len - offsetof(struct sockaddr_un, sun_path)),
		 sa.sun_path);
	return fd;
#else
	(void)path;
	(void)path_len;
	return -ENOENT;
#endif
}

void activation_notify(const char *state)
{
#ifdef HAVE_LIBSYSTEMD
	(void)sd_notify(0, state);
#else
	(void)state;
#endif
}
