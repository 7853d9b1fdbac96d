/* deadlines.c — a binary min-heap of subscriptions by flush deadline;
 * each subscription knows its place (heap_at) so that publishing removes
 * it in O(log n). */
#include <errno.h>
#include <stdlib.h>

#include "deadlines.h"

static uint64_t due_of(const struct subscription *sub)
{
	return sub->open_since_ns + sub->max_delay_ns;
}

static void place(struct broker *b, uint32_t i, struct subscription *sub)
{
	b->heap[i] = sub;
	sub->heap_at = i;
}

static void sift_up(struct broker *b, uint32_t i)
{
	struct subscription *sub = b->heap[i];
	uint64_t due = due_of(sub);

	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (due_of(b->heap[parent]) <= due)
			break;
		place(b, i, b->heap[parent]);
		i = parent;
	}
	place(b, i, sub);
}

static void sift_down(struct broker *b, uint32_t i)
{
	struct subscription *sub = b->heap[i];
	uint64_t due = due_of(sub);

	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = l;
		if (l >= b->n_heap)
			break;
		if (r < b->n_heap && due_of(b->heap[r]) < due_of(b->heap[l]))
			m = r;
		if (due_of(b->heap[m]) >= due)
			break;
		place(b, i, b->heap[m]);
		i = m;
	}
	place(b, i, sub);
}

int deadlines_reserve(struct broker *b)
{
	if (b->n_heap_reserved == b->cap_heap) {
		uint32_t cap = b->cap_heap ? b->cap_heap * 2 : 16;
		struct subscription **h = realloc(b->heap, sizeof(*h) * cap);
		if (!h)
			return -ENOMEM;
		b->heap = h;
		b->cap_heap = cap;
	}
	b->n_heap_reserved++;
	return 0;
}

void deadlines_release(struct broker *b)
{
	b->n_heap_reserved--;
}

void deadline_add(struct broker *b, struct subscription *sub)
{
	if (sub->heap_at != NOT_QUEUED)
		return;
	b->heap[b->n_heap] = sub;
	sub->heap_at = b->n_heap++;
	sift_up(b, sub->heap_at);
}

void deadline_remove(struct broker *b, struct subscription *sub)
{
	uint32_t i = sub->heap_at;
	struct subscription *last;

	if (i == NOT_QUEUED)
		return;
	sub->heap_at = NOT_QUEUED;
	last = b->heap[--b->n_heap];
	if (i == b->n_heap)
		return;
	place(b, i, last);
	if (i > 0 && due_of(b->heap[(i - 1) / 2]) > due_of(last))
		sift_up(b, i);
	else
		sift_down(b, i);
}

struct subscription *deadline_first(const struct broker *b, uint64_t *due)
{
	if (!b->n_heap)
		return NULL;
	*due = due_of(b->heap[0]);
	return b->heap[0];
}

void deadlines_free(struct broker *b)
{
	free(b->heap);
	b->heap = NULL;
	b->n_heap = b->cap_heap = b->n_heap_reserved = 0;
}
