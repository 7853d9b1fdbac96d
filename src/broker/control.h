/* control.h — the control protocol, broker side: what a connection's
 * messages ask for, hang-ups and protocol violations. */
#ifndef EXPBUSD_CONTROL_H
#define EXPBUSD_CONTROL_H

#include "broker.h"

/* Reads and handles one message on c (its poll said POLLIN). */
void control_message(struct broker *b, struct conn *c);
/* c hung up: its producer drains what it committed, its subscription goes
 * (a group's records to the other members); c is closed. */
void control_hangup(struct broker *b, struct conn *c);
/* c broke the protocol: logged with the reason, counted, disconnected. */
void control_violation(struct broker *b, struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Frees producers that are drained or broken, disconnects subscriptions
 * found breaking the protocol; called between passes of the data path. */
void control_reap(struct broker *b);
/* Closes connections that sent no request within --idle-timeout-ms (a
 * rate-limited log line says so). */
void control_expire_new(struct broker *b);
/* Frees every stream with its producers and subscriptions, and every
 * connection (shutdown). */
void control_close_all(struct broker *b);

#endif
