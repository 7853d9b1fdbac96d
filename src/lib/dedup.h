/* dedup.h — what a reader has already delivered, per producer. One broker
 * hands each record out once; a restarted broker may hand out again records
 * a previous one had published (docs/protocol.md, Recovery). So a record
 * (id, seq) from the current broker is new unless seq is below the floor:
 * one past the highest seq of id that earlier brokers delivered. (Not the
 * live high-water mark: a group member gets a dead member's records after
 * later ones of the same producer, and those are new.) */
#ifndef EXPBUS_DEDUP_H
#define EXPBUS_DEDUP_H

#include <stdbool.h>
#include <stdint.h>

struct dedup {
	uint32_t *ids;	 /* 0: empty slot (producer ids are never 0) */
	uint64_t *next;	 /* one past the highest seq of ids[i] delivered */
	uint64_t *floor; /* next, as of the last dedup_new_broker */
	uint32_t cap;	 /* a power of two, or 0 */
	uint32_t used;
	uint32_t last; /* slot of the last id looked up: batches come in runs */
};

/* 1 when (id, seq) was not delivered by an earlier broker, and records it
 * as delivered; 0 when it was. A record of id 0 (no identity) is always
 * new. Returns -ENOMEM when the table cannot grow (the record then counts
 * as new). */
int dedup_admit(struct dedup *d, uint32_t id, uint64_t seq);

/* A new broker serves the reader: what was delivered so far becomes the
 * floor below which its records are duplicates. */
void dedup_new_broker(struct dedup *d);

void dedup_free(struct dedup *d);

#endif
