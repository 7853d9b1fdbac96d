/* conn.h — control connections: one per accepted peer, with at most one
 * role (producer, subscriber or stats reader). */
#ifndef EXPBUSD_CONN_H
#define EXPBUSD_CONN_H

#include "broker.h"

/* Takes an accepted fd: checks its credentials, the connection limit and
 * its uid's (--max-conns-per-uid). Returns the connection, or NULL (fd
 * closed, reason logged at most once a second). */
struct conn *conn_new(struct broker *b, int fd);
/* Watches c for a request or a hang-up (one-shot poll). */
void conn_arm(struct broker *b, struct conn *c);
/* Closes c's fd and cancels its poll; c is freed by conn_sweep once the
 * poll's completion is back. Idempotent. */
void conn_close(struct broker *b, struct conn *c);
/* Frees connections that are closed and have no poll in flight. */
void conn_sweep(struct broker *b);
/* Closes and frees every connection (shutdown). */
void conn_free_all(struct broker *b);

#endif
