/* batch.h — a subscription's batches: opened by the first record, filled
 * column by column, published when full or when their delay is up. */
#ifndef EXPBUSD_BATCH_H
#define EXPBUSD_BATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "broker.h"

/* Whether sub can take a record now: an open batch, or a free slot to open
 * one. A subscriber whose release counter lies is marked dead (false). */
bool batch_has_room(struct broker *b, struct subscription *sub);
/* Reads and validates the release counter; -EPROTO marks sub dead. */
int batch_check_release(struct broker *b, struct subscription *sub);
/* Copies one record into sub's open batch (opening one: the caller made
 * sure of room) and publishes the batch when it is full. seq is the
 * record's position in the ring of producer id source; while the batch is
 * open the record holds src's head there (src NULL: it holds nothing). */
void batch_deliver(struct broker *b, struct subscription *sub,
		   const struct expbus_record_header *hdr, uint64_t seq,
		   uint32_t source, struct producer *src, const uint8_t *data);
/* Runs: k consecutive records of producer p's ring, from position pos,
 * routed whole to every subscription of a stream that takes them all (no
 * filter, no group). The first subscription with room copies them from
 * the ring (each header field read once, each field column by column);
 * the others copy that subscription's columns. */
struct run_copy {
	const struct subscription *sub; /* NULL: not copied yet */
	const uint8_t *slot;		/* its batch slot holding the run */
	uint32_t at;			/* the run's first index there */
};
/* Records sub can take before its batch is full: what its open batch
 * lacks, a whole batch when it has a free slot, 0 when its ring is full
 * (or its release counter lies: sub is then dead). */
uint32_t batch_room(struct broker *b, struct subscription *sub);
/* Copies the run into sub's batch (k at most its room) from the ring, or
 * from where *from has it; publishes the batch when full. Sets *from when
 * it was the first copy. */
void batch_take_run(struct broker *b, struct subscription *sub,
		    struct producer *p, uint64_t pos, uint32_t k,
		    struct run_copy *from);
/* Counts n records dropped for a lossy subscriber with a full ring. */
void batch_dropped_n(struct broker *b, struct subscription *sub, uint64_t n);
/* Forgets sub's open batch unpublished (its records went elsewhere). */
void batch_discard(struct broker *b, struct subscription *sub);
/* Publishes sub's open batch and wakes its subscriber if it sleeps. */
void batch_publish(struct broker *b, struct subscription *sub,
		   enum expbus_flush_reason why);
/* Records routed to sub and not yet released (published batches it holds
 * and its open batch), from a fresh look at its release counter;
 * UINT64_MAX when that counter is impossible (sub is then dead). */
uint64_t batch_outstanding(struct broker *b, struct subscription *sub);
/* Counts one record dropped for a lossy subscriber with a full ring. */
void batch_dropped(struct broker *b, struct subscription *sub);
/* Publishes every open batch whose delay is up (all: every open batch,
 * shutting down). Returns the earliest deadline still to come. */
uint64_t batch_flush_due(struct broker *b, uint64_t now, bool all);

#endif
