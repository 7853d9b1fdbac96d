/* doorbell.h — a peer's own wakeup eventfd. The peer writes it when it
 * has given the broker news (a record in a ring the broker parked, a
 * release the broker waits for); a multishot io_uring poll turns each
 * write into a completion that names the producer or subscription, so
 * the broker learns which ring has news without looking at the others.
 * No peer holds another's doorbell or one of the broker's own fds. */
#ifndef EXPBUSD_DOORBELL_H
#define EXPBUSD_DOORBELL_H

#include <stdint.h>

#include "broker.h"

/* A new doorbell for owner (a struct producer or subscription, as kind
 * says), watched at once. Returns it, or NULL with errno set. Its fd is
 * d->fd, to be sent to the peer. */
struct doorbell *doorbell_new(struct broker *b, enum doorbell_kind kind,
			      void *owner);
/* The owner is gone: the fd is closed, the poll cancelled, and d freed
 * once the poll's last completion is back (or at broker_close). NULL ok. */
void doorbell_close(struct broker *b, struct doorbell *d);
/* A completion for d's poll (flags: the CQE's). Returns d's owner when
 * the peer rang, NULL when there is nothing to do (cancelled, freed).
 * Re-arms the poll when the kernel ended it. */
void *doorbell_rang(struct broker *b, struct doorbell *d, int res,
		    uint32_t flags);
/* Frees the doorbells still waiting for their last completion: call after
 * io_uring_queue_exit. */
void doorbell_free_all(struct broker *b);

#endif
