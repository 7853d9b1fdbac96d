/* sqe.h — taking an io_uring submission entry from the broker's ring. */
#ifndef EXPBUSD_SQE_H
#define EXPBUSD_SQE_H

#include <liburing.h>

#include "broker.h"

/* io_uring user-data tags in the low bits; a connection's poll and a
 * doorbell's poll carry their pointer (8-byte aligned) above them. */
enum op_tag {
	OP_POLL = 0,
	OP_ACCEPT = 1,
	OP_SIGNAL = 3,
	OP_OTHER = 4,
	OP_DOORBELL = 5,
};
#define TAG_MASK 7u

/* Returns a submission entry, pushing the queue to the kernel first when
 * it is full; NULL only when even that fails. Marks the ring dirty. */
static inline struct io_uring_sqe *broker_sqe(struct broker *b)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&b->uring);

	if (!sqe) {
		/* Queue full: push what is there and take a fresh entry. */
		(void)io_uring_submit(&b->uring);
		sqe = io_uring_get_sqe(&b->uring);
	}
	b->uring_dirty = true;
	return sqe;
}

#endif
