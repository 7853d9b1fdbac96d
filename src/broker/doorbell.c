/* doorbell.c — per-peer wakeup eventfds, each watched by a multishot
 * io_uring poll whose user data is the doorbell, which names its owner.
 * The broker never reads the eventfds: a multishot poll completes on every
 * write (the wake-up of the eventfd's wait queue), whatever the counter
 * holds, and a counter of 2^64 - 2 writes is never reached. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "doorbell.h"
#include "sqe.h"

static void arm(struct broker *b, struct doorbell *d)
{
	struct io_uring_sqe *sqe = broker_sqe(b);

	if (!sqe)
		return; /* the 200 ms timer and housekeeping still come */
	io_uring_prep_poll_multishot(sqe, d->fd, POLLIN);
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)d | OP_DOORBELL);
	d->armed = true;
}

struct doorbell *doorbell_new(struct broker *b, enum doorbell_kind kind,
			      void *owner)
{
	struct doorbell *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->fd < 0) {
		int e = errno;
		free(d);
		errno = e;
		return NULL;
	}
	d->kind = kind;
	d->owner = owner;
	arm(b, d);
	return d;
}

static void unlink_closing(struct broker *b, struct doorbell *d)
{
	for (struct doorbell **pp = &b->doorbells_closing; *pp;
	     pp = &(*pp)->next) {
		if (*pp == d) {
			*pp = d->next;
			return;
		}
	}
}

void doorbell_close(struct broker *b, struct doorbell *d)
{
	if (!d)
		return;
	d->owner = NULL;
	(void)close(d->fd);
	d->fd = -1;
	if (!d->armed) {
		free(d);
		return;
	}
	/* The poll holds the file: cancel it; its last completion frees d. */
	struct io_uring_sqe *sqe = broker_sqe(b);
	if (sqe) {
		io_uring_prep_poll_remove(sqe,
					  (uint64_t)(uintptr_t)d | OP_DOORBELL);
		io_uring_sqe_set_data64(sqe, OP_OTHER);
	}
	d->next = b->doorbells_closing;
	b->doorbells_closing = d;
}

void *doorbell_rang(struct broker *b, struct doorbell *d, int res,
		    uint32_t flags)
{
	if (!(flags & IORING_CQE_F_MORE))
		d->armed = false;
	if (!d->owner) {
		if (!d->armed) {
			unlink_closing(b, d);
			free(d);
		}
		return NULL;
	}
	if (!d->armed)
		arm(b, d); /* ended by the kernel (CQ overflow, say) */
	/* An error ends the poll; report a ring anyway: one spare look. */
	(void)res;
	return d->owner;
}

void doorbell_free_all(struct broker *b)
{
	while (b->doorbells_closing) {
		struct doorbell *d = b->doorbells_closing;
		b->doorbells_closing = d->next;
		free(d);
	}
}
