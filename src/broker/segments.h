/* segments.h — creating the broker's shared segments and writing their
 * headers. Memory itself comes from shm.c. */
#ifndef EXPBUSD_SEGMENTS_H
#define EXPBUSD_SEGMENTS_H

#include <stddef.h>
#include <stdint.h>

#include "broker.h"

/* Bytes of a producer ring of capacity records for stream s. */
uint64_t segment_producer_ring_size(const struct stream *s, uint32_t capacity);
/* A new producer ring of capacity records for p (p->seg, p->ring set);
 * its fd in *ring_fd. -EFBIG beyond --max-segment. */
int segment_producer_ring(struct broker *b, struct stream *s, uint32_t capacity,
			  struct producer *p, int *ring_fd);
/* A batch ring and release page for sub (sub->seg, sub->rel, sub->ring and
 * its column plan set); -errno with the reason in err. */
int segment_batch_ring(struct broker *b, struct subscription *sub,
		       uint32_t capacity, int *batch_fd, int *rel_fd, char *err,
		       size_t errlen);
/* The stats segment (b->stats, b->stats_size, b->stats_fd). */
/* A ready set (layout.h), mapped writable at *out, every bit clear,
 * sealed against resizing. Returns its fd or -errno. */
int segment_ready_set(struct ready_set **out);
int segment_stats(struct broker *b);

#endif
