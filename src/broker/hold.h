/* hold.h — what open batches hold in producer rings: a producer ring's
 * head (what its game may overwrite) advances past a record only once no
 * open, unpublished batch holds it, so a broker killed at any instant
 * leaves every record that is in no published batch in its ring. */
#ifndef EXPBUSD_HOLD_H
#define EXPBUSD_HOLD_H

#include <stdbool.h>
#include <stdint.h>

#include "broker.h"

/* Gives p what it needs to be held: one counter per ring slot. Returns 0
 * or -ENOMEM. */
int hold_init(struct producer *p);
/* Record i of sub's open batch is p's record at ring position pos: it holds
 * p's head until the batch is published or discarded. */
void hold_take(struct subscription *sub, uint32_t i, struct producer *p,
	       uint64_t pos);
/* The same for records i .. i + k - 1, p's positions pos .. pos + k - 1. */
void hold_take_run(struct subscription *sub, uint32_t i, struct producer *p,
		   uint64_t pos, uint32_t k);
/* Whatever record i of sub's open batch holds (NULL: nothing). */
struct producer *hold_of(const struct subscription *sub, uint32_t i);
/* sub's open batch is published or discarded: its records hold no head
 * any more (the heads move at the next hold_release_heads). */
void hold_drop_open(struct broker *b, struct subscription *sub);
/* p took records or lost holds: its head may move at the next release. */
void hold_queue(struct broker *b, struct producer *p);
/* Moves the head of every queued producer to the oldest record it took
 * that an open batch still holds (or to all it took), and wakes a
 * producer asleep on its full ring once half of it is free. Once per pass
 * and after publishing: one store per ring, not one per record. */
void hold_release_heads(struct broker *b);
/* Records of p's ring from the oldest an open batch holds to the last one
 * taken (0: open batches hold none of them). */
uint64_t hold_span(const struct producer *p);
/* Whether open batches keep p's producer waiting: they hold more than
 * half of its ring (it is woken once half is free), the broker has taken
 * all it knows of, and the producer's flag is up. Those batches may wait
 * for records only that producer would write. */
bool hold_blocks_producer(const struct producer *p);
/* Whether sub's open batch holds one of p's records. */
bool hold_has(const struct subscription *sub, const struct producer *p);
/* p is freed: no open batch refers to it any more. */
void hold_forget_producer(struct broker *b, struct producer *p);

#endif
