/* producer.h — a producer: one game process's ring, which the broker
 * consumes, and the eventfd that wakes the game when room comes back. */
#ifndef EXPBUSD_PRODUCER_H
#define EXPBUSD_PRODUCER_H

#include <stddef.h>
#include <stdint.h>

#include "broker.h"

#define MIN_RING_SLOTS 16
#define MAX_RING_SLOTS (1u << 24)

/* The ring size, in records, for a producer that did not ask for one. */
uint32_t producer_default_slots(struct broker *b, const struct schema *s);
/* A new producer on s: with resume_fd < 0 a new ring of cap records, else
 * the ring a previous broker gave it (checked, then adopted). Its ring fd
 * (a new one, the caller closes it) in *ring_fd. Not yet in its stream.
 * Returns 0, or -errno with the reason in err. */
int producer_new(struct broker *b, struct stream *s, uint32_t cap,
		 int resume_fd, struct producer **out, int *ring_fd, char *err,
		 size_t errlen);
/* Takes p out of its stream, unmaps its ring and frees it. Its connection,
 * if any, is the caller's (control.c) to close. */
void producer_free(struct broker *b, struct producer *p);

#endif
