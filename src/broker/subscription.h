/* subscription.h — a subscription: a filter, a batch ring the broker fills
 * and the release page its subscriber moves. */
#ifndef EXPBUSD_SUBSCRIPTION_H
#define EXPBUSD_SUBSCRIPTION_H

#include <stdbool.h>
#include <stddef.h>

#include "broker.h"

/* A new subscription to s as m (already checked by control.c) asks: its
 * filter, eventfd, batch ring and release page; their fds in *batch_fd and
 * *rel_fd. Not yet in its stream. Returns 0, or -errno with the reason in
 * err. */
int subscription_new(struct broker *b, struct stream *s,
		     const struct msg_subscribe *m, struct subscription **out,
		     int *batch_fd, int *rel_fd, char *err, size_t errlen);
/* Unmaps and frees sub (NULL is fine); records of its open batch are
 * counted as dropped (subscriber gone). It must be out of its stream. */
void subscription_free(struct broker *b, struct subscription *sub);
/* Whether the record with header h passes f. */
bool filter_match(const struct filter *f, const struct expbus_record_header *h);

#endif
