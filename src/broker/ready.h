/* ready.h — the broker's ready sets: a page per uid whose producers asked
 * for one (ATTACH_READY), a bit per producer, which the producer marks when
 * it commits into a ring parked with RING_READY (layout.h, ring.h). */
#ifndef EXPBUSD_READY_H
#define EXPBUSD_READY_H

#include <sys/types.h>

#include "broker.h"

struct ready {
	struct ready *next; /* in broker.ready_sets */
	uid_t uid;
	int fd;
	struct ready_set *page; /* mapped writable: we clear the bits */
	uint32_t n_users;
	uint64_t used[READY_BITS / 64];
	struct producer *owner[READY_BITS];
};

/* Gives p a bit in the ready set of uid (made on first use, a page counted
 * against --shm-budget): p->ready and p->ready_bit. Returns 0, or -errno
 * (-ENOSPC: the budget is spent; -ENOMEM) with the reason in err. */
int ready_join(struct broker *b, struct producer *p, uid_t uid, char *err,
	       size_t errlen);
/* Gives p's bit back; the set goes with its last user. */
void ready_leave(struct broker *b, struct producer *p);
/* Takes the marked bits of every set and calls fn with the owner of each
 * (a bit is a hint: the owner may be active, or parked for good). */
void ready_take_all(struct broker *b,
		    void (*fn)(struct broker *b, struct producer *p));

#endif
