/* activation.h — systemd socket activation and readiness for expbusd. */
#ifndef EXPBUS_BROKER_ACTIVATION_H
#define EXPBUS_BROKER_ACTIVATION_H

#include <stddef.h>

/* The listening socket systemd passed (LISTEN_FDS), its path written into
 * path; -ENOENT when not socket-activated; another negative errno (with a
 * message on stderr) when what was passed is not one SOCK_SEQPACKET
 * AF_UNIX listening socket. */
int activation_listen_fd(char *path, size_t path_len);

/* sd_notify(state), e.g. "READY=1"; nothing outside systemd. */
void activation_notify(const char *state);

#endif
