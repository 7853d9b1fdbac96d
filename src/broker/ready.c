/* ready.c — the ready sets: one shared page per uid, so that a producer
 * can only mark (or clear) the bits of producers of its own uid, which
 * could harm it anyway; a bit cleared by such a peer costs its owner the
 * wait until the broker parks that ring for good and looks at it again
 * (producer_ready_expire). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "budget.h"
#include "ready.h"
#include "ready_set.h"
#include "segments.h"
#include "shm.h"

static struct ready *find(struct broker *b, uid_t uid)
{
	for (struct ready *r = b->ready_sets; r; r = r->next)
		if (r->uid == uid)
			return r;
	return NULL;
}

static int create(struct broker *b, uid_t uid, struct ready **out, char *err,
		  size_t errlen)
{
	struct ready *r;
	int fd, e;

	/* A page, counted like every ring and release page. */
	e = budget_charge(&b->budget, READY_SET_SIZE, "a ready set", err,
			  errlen);
	if (e < 0)
		return e;
	r = calloc(1, sizeof(*r));
	fd = r ? segment_ready_set(&r->page) : -ENOMEM;
	if (fd < 0) {
		free(r);
		budget_refund(&b->budget, READY_SET_SIZE);
		snprintf(err, errlen, "cannot make a ready set: %s",
			 strerror(-fd));
		return fd;
	}
	r->fd = fd;
	r->uid = uid;
	r->next = b->ready_sets;
	b->ready_sets = r;
	*out = r;
	return 0;
}

static void destroy(struct broker *b, struct ready *r)
{
	for (struct ready **pp = &b->ready_sets; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	shm_unmap(r->page, READY_SET_SIZE);
	(void)close(r->fd);
	free(r);
	budget_refund(&b->budget, READY_SET_SIZE);
}

int ready_join(struct broker *b, struct producer *p, uid_t uid, char *err,
	       size_t errlen)
{
	struct ready *r = find(b, uid);
	int e;

	if (!r && (e = create(b, uid, &r, err, errlen)) < 0)
		return e;
	/* A set has a bit for every producer the broker may serve. */
	for (uint32_t w = 0; w < READY_BITS / 64; w++) {
		uint32_t bit;

		if (r->used[w] == UINT64_MAX)
			continue;
		bit = w * 64 + (uint32_t)__builtin_ctzll(~r->used[w]);
		r->used[w] |= 1ull << (bit % 64);
		r->owner[bit] = p;
		r->n_users++;
		p->ready = r;
		p->ready_bit = bit;
		return 0;
	}
	if (!r->n_users)
		destroy(b, r);
	snprintf(err, errlen,
		 "all %d bits of the ready set of uid %d are taken", READY_BITS,
		 (int)uid);
	return -EMFILE;
}

void ready_leave(struct broker *b, struct producer *p)
{
	struct ready *r = p->ready;

	if (!r)
		return;
	r->used[p->ready_bit / 64] &= ~(1ull << (p->ready_bit % 64));
	r->owner[p->ready_bit] = NULL;
	p->ready = NULL;
	if (--r->n_users == 0)
		destroy(b, r);
}

void ready_take_all(struct broker *b,
		    void (*fn)(struct broker *b, struct producer *p))
{
	for (struct ready *r = b->ready_sets; r; r = r->next) {
		for (uint32_t w = 0; w < READY_BITS / 64; w++) {
			/* What a peer wrote, read once; bits of no producer
			 * are dropped. */
			uint64_t bits =
			    ready_take(&r->page->words[w]) & r->used[w];

			while (bits) {
				uint32_t bit =
				    w * 64 + (uint32_t)__builtin_ctzll(bits);

				bits &= bits - 1;
				b->count.ready_marks++;
				fn(b, r->owner[bit]);
			}
		}
	}
}
