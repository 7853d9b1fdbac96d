/* producer.h — a producer: one game process's ring, which the broker
 * consumes, and the eventfd that wakes the game when room comes back. */
#ifndef EXPBUSD_PRODUCER_H
#define EXPBUSD_PRODUCER_H

#include <stdbool.h>
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
/* Puts p in the set the data path visits (its ring may have news: its
 * doorbell rang, it is new, or it hung up and must be drained). */
void producer_activate(struct broker *b, struct producer *p);
void producer_deactivate(struct broker *b, struct producer *p);
/* Parks p if its ring is empty: raises its flag so that its next commit
 * rings the doorbell, and takes it out of the active set. Returns false,
 * leaving it active, when the ring had news after all. */
bool producer_park(struct broker *b, struct producer *p);
/* Coalescing, for a producer with a ready set: parks p with RING_READY,
 * its next commit marks its bit (no syscall), and appends it to
 * broker.ready_parked. Returns false, leaving it active, when the ring had
 * news after all. */
bool producer_ready_park(struct broker *b, struct producer *p);
/* Parks for good (flag 1: the doorbell) the producers parked on the ready
 * set before `before`, or activates those with news; UINT64_MAX: all of
 * them, before a sleep with no tick to take the bits. */
void producer_ready_expire(struct broker *b, uint64_t before);
/* Its bit was marked: activates p if it was parked on the ready set. */
void producer_ready_rang(struct broker *b, struct producer *p);

#endif
