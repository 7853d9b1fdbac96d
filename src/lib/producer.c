/* producer.c — the producer side of libexpbus: attach to a stream, then
 * reserve, fill and commit records in place in the ring; no syscall per
 * record unless the broker sleeps or the ring is full. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "link.h"
#include "ready_set.h"
#include "ring.h"
#include "schema.h"
#include "shm.h"

struct expbus_producer {
	struct expbus *bus;
	/* The broker connection and its fds (link.wake_fd: written when the
	 * broker sleeps and we committed; link.space_fd: written by the
	 * broker when we sleep on a full ring; link.ring_fd: kept to hand
	 * the ring to a restarted broker). */
	struct link link;
	struct producer_ring *seg;
	size_t seg_size;
	struct ring ring;
	uint64_t reserved; /* slots handed out past ring.pos, not committed */
	uint32_t flags;
	bool flag_up; /* a reserve(timeout 0) left prod.sleeping raised */
	struct schema schema;
};

static int map_ring(struct expbus_producer *p, const struct msg_ok_attach *ok,
		    int ring_fd)
{
	struct producer_ring *seg;
	void *addr;
	int err;

	err = shm_check(ring_fd, ok->segment_size, ok->segment_size,
			SHM_SEALS_SHARED, NULL);
	if (err < 0)
		return client_fail(
		    p->bus, -EPROTO,
		    "broker sent a ring that is not a sealed memfd of "
		    "%llu bytes (%s)",
		    (unsigned long long)ok->segment_size, strerror(-err));
	err = shm_map(ring_fd, ok->segment_size, 1, &addr);
	if (err < 0)
		return client_fail(p->bus, err, "mapping the ring: %s",
				   strerror(-err));
	p->seg = seg = addr;
	p->seg_size = ok->segment_size;
	if (seg->seg.magic != MAGIC_PRODUCER_RING ||
	    seg->seg.version != LAYOUT_VERSION ||
	    seg->seg.size != p->seg_size || seg->capacity == 0 ||
	    (seg->capacity & (seg->capacity - 1)) ||
	    seg->capacity != ok->capacity ||
	    seg->slot_size <
		sizeof(struct expbus_record_header) + p->schema.data_size ||
	    seg->data_offset < sizeof(*seg) ||
	    seg->data_offset + (uint64_t)seg->capacity * seg->slot_size >
		p->seg_size)
		return client_fail(
		    p->bus, -EPROTO,
		    "the ring the broker sent has a header this "
		    "library does not understand (layout version "
		    "%u, want %u)",
		    seg->seg.version, LAYOUT_VERSION);
	ring_init_producer(&p->ring, &seg->prod, &seg->cons,
			   (uint8_t *)seg + seg->data_offset, seg->slot_size,
			   seg->capacity);
	/* A new ring, every slot ours to write and none committed: its
	 * pages now, not in the first lap (shm.h). Past the header only (the
	 * broker writes its counters there), and in the size we checked. */
	shm_touch((uint8_t *)seg + sizeof(*seg), p->seg_size - sizeof(*seg), 1);
	return 0;
}

int expbus_producer_attach(struct expbus *bus, const char *stream,
			   const char *schema,
			   const struct expbus_producer_options *opts,
			   struct expbus_producer **ret)
{
	struct {
		struct msg_attach m;
		char text[SCHEMA_TEXT_MAX];
	} req;
	struct msg_ok_attach ok;
	struct expbus_producer *p;
	char err_text[512];
	int fds[4] = {-1, -1, -1, -1}, err, len, sock;
	ssize_t n;

	if (!stream || strlen(stream) >= NAME_MAX_LEN)
		return client_fail(bus, -EINVAL,
				   "stream name must be 1 to %d characters",
				   NAME_MAX_LEN - 1);
	memset(&req.m, 0, sizeof(req.m));
	strcpy(req.m.stream, stream);
	if (proto_check_name(req.m.stream, 0) < 0)
		return client_fail(
		    bus, -EINVAL,
		    "stream name '%s' may only use letters, digits, "
		    "'_', '.' and '-'",
		    stream);
	p = calloc(1, sizeof(*p));
	if (!p)
		return client_fail(bus, -ENOMEM, "out of memory");
	p->bus = bus;
	p->link.sock = p->link.wake_fd = p->link.space_fd = -1;
	p->link.ring_fd = p->link.pending = p->link.epoll_fd = -1;
	p->link.retry_fd = -1;
	err = schema_parse(schema ? schema : "", &p->schema, err_text,
			   sizeof(err_text));
	if (err < 0) {
		client_fail(bus, err, "schema: %s", err_text);
		goto fail;
	}
	len = schema_format(&p->schema, req.text, sizeof(req.text));
	if (len < 0) {
		err = client_fail(bus, -EINVAL, "schema text too long");
		goto fail;
	}
	req.m.ring_slots = opts ? opts->ring_slots : 0;
	req.m.flags = ATTACH_READY;
	req.m.schema_len = (uint32_t)len;
	p->flags = opts ? opts->flags : 0;
	proto_header(&req.m.h, MSG_ATTACH, sizeof(req.m) + (size_t)len);
	sock = client_connect(bus);
	if (sock < 0) {
		err = sock;
		goto fail;
	}
	n = client_request(bus, sock, &req, sizeof(req.m) + (size_t)len,
			   MSG_OK_ATTACH, &ok, sizeof(ok), fds, 4);
	if (n < 0) {
		(void)close(sock);
		err = (int)n;
		goto fail;
	}
	err = link_init(&p->link, bus, sock, fds[1], fds[2], fds[0], stream,
			&p->schema, ok.capacity, ok.slot_size);
	if (err < 0) {
		(void)close(sock);
		proto_close_fds(fds, 4);
		client_fail(bus, err, "cannot set up the producer: %s",
			    strerror(-err));
		goto fail;
	}
	/* Without it (a bad one) commits write the eventfd: only slower. */
	(void)link_map_ready(&p->link, fds[3], ok.ready_bit);
	if (n != sizeof(ok) || ok.data_size != p->schema.data_size) {
		err = client_fail(bus, -EPROTO, "malformed attach reply");
		goto fail;
	}
	err = map_ring(p, &ok, fds[0]);
	if (err < 0)
		goto fail;
	bus->error[0] = '\0';
	*ret = p;
	return 0;
fail:
	expbus_producer_close(p);
	return err;
}

struct expbus_producer *expbus_producer_close(struct expbus_producer *p)
{
	if (!p)
		return NULL;
	shm_unmap(p->seg, p->seg_size);
	link_close(&p->link);
	free(p);
	return NULL;
}

int expbus_producer_fd(const struct expbus_producer *p)
{
	return p->link.epoll_fd;
}

int expbus_producer_dispatch(struct expbus_producer *p)
{
	uint64_t now = client_now_ns();

	link_drain(&p->link);
	if (p->link.state == LINK_LIVE)
		p->link.next_ns = now; /* look for a hang-up now */
	if (p->flag_up) {
		ring_producer_sleep_done(&p->ring);
		p->flag_up = false;
	}
	return link_step(&p->link, now) == LINK_LIVE;
}

size_t expbus_producer_data_size(const struct expbus_producer *p)
{
	return p->schema.data_size;
}

long expbus_producer_field_offset(const struct expbus_producer *p,
				  const char *field)
{
	int i = schema_find(&p->schema, field);

	return i < 0 ? i : (long)p->schema.fields[i].offset;
}

uint32_t expbus_producer_capacity(const struct expbus_producer *p)
{
	return (uint32_t)p->ring.capacity;
}

static int ring_broken(struct expbus_producer *p)
{
	return client_fail(
	    p->bus, -EPROTO,
	    "the broker's head counter in the ring is impossible; "
	    "the ring is unusable");
}

/* Waits for free slots (client_ring_sleep; ring.c explains why no wakeup
 * is lost). While no broker serves the ring, moves the link on and sleeps
 * on its fds, never past the deadline. */
static int wait_for_space(struct expbus_producer *p, int timeout_ms)
{
	uint64_t deadline = client_deadline(timeout_ms);

	for (;;) {
		struct link *l = &p->link;
		uint64_t now = client_now_ns(), until;
		struct pollfd pfd = {.fd = l->epoll_fd, .events = POLLIN};
		int r;

		if (l->state != LINK_LIVE)
			link_step(l, now);
		if (l->state == LINK_LIVE) {
			r = client_ring_sleep(&p->ring, 1, p->reserved,
					      l->space_fd, l->wake_fd, l->sock,
					      deadline, p->bus->spin_ns);
			if (r == 0)
				continue;
			if (r == -EPROTO)
				return ring_broken(p);
			if (r != -EPIPE)
				return r; /* -EINTR too: let the caller see */
			link_lost(l, client_now_ns());
			continue;
		}
		if (deadline && now >= deadline)
			return client_fail(
			    p->bus, -EPIPE,
			    "the broker at %s has gone away and none took "
			    "over in time",
			    p->bus->socket_path);
		until = l->next_ns;
		if (deadline && deadline < until)
			until = deadline;
		r = poll(&pfd, 1,
			 until > now ? (int)((until - now + 999999) / 1000000)
				     : 0);
		if (r < 0 && errno == EINTR)
			return -EINTR;
		link_drain(l);
	}
}

int expbus_reserve(struct expbus_producer *p, unsigned n, int timeout_ms,
		   struct expbus_span *span)
{
	uint64_t now;
	int got;

	if (n == 0)
		return -EINVAL;
	now = client_now_ns();
	if (now >= p->link.next_ns)
		link_step(&p->link, now); /* never blocks */
	if (p->flag_up) {
		ring_producer_sleep_done(&p->ring);
		p->flag_up = false;
	}
	got = ring_producer_free(&p->ring, p->reserved, n);
	if (got == 0 && timeout_ms != 0)
		got = wait_for_space(p, timeout_ms);
	if (got == 0 && p->link.state == LINK_LIVE) {
		/* Full: raise our flag (and look once more), so that the
		 * broker writes the space eventfd and expbus_producer_fd
		 * turns readable when it frees slots. */
		got = ring_producer_prepare_sleep(&p->ring, p->reserved);
		if (got != 0) {
			ring_producer_sleep_done(&p->ring);
		} else {
			p->flag_up = true;
			client_ring_full(&p->ring, p->link.wake_fd);
		}
		if (got > 0 && (unsigned)got > n)
			got = (int)n;
	}
	if (got == 0)
		return -EAGAIN;
	if (got < 0)
		return got == -EPROTO ? ring_broken(p) : got;
	if ((unsigned)got > n)
		got = (int)n;
	span->first = ring_slot(&p->ring, p->ring.pos + p->reserved);
	span->stride = p->ring.slot_size;
	span->count = (unsigned)got;
	p->reserved += (unsigned)got;
	return got;
}

int expbus_commit(struct expbus_producer *p, unsigned n)
{
	uint64_t now;

	if (n > p->reserved)
		return -EINVAL;
	now = client_now_ns(); /* vDSO: no syscall */
	if (p->flags & EXPBUS_PRODUCER_OWN_TIMESTAMPS)
		now = 0;
	for (unsigned i = 0; i < n; i++) {
		struct expbus_record_header *r =
		    ring_slot(&p->ring, p->ring.pos + i);
		r->seq = p->ring.pos + i;
		if (now)
			r->timestamp_ns = now;
	}
	p->reserved -= n;
	/* The only syscall commit makes: the wakeup, when the broker sleeps
	 * (none while no broker serves us: a new one looks at the ring when
	 * it takes it over). A broker that comes back on its tick wants no
	 * syscall, only our bit in its ready set. */
	switch (ring_producer_commit(&p->ring, n)) {
	case RING_WAKE_NONE:
		break;
	case RING_WAKE_MARK:
		if (p->link.ready_word) {
			ready_mark(p->link.ready_word, p->link.ready_mask);
			break;
		}
		/* No ready set: the eventfd instead. */
		__attribute__((fallthrough));
	case RING_WAKE_EVENTFD:
		if (p->link.wake_fd >= 0) {
			uint64_t one = 1;
			/* Nothing to do on failure: the broker also wakes on
			 * a timer. */
			(void)!write(p->link.wake_fd, &one, sizeof(one));
		}
		break;
	}
	return 0;
}

int expbus_write(struct expbus_producer *p,
		 const struct expbus_record_header *hdr, const void *data,
		 size_t len, int timeout_ms)
{
	struct expbus_span span;
	struct expbus_record_header *r;
	int err;

	const struct schema_field *last =
	    &p->schema.fields[p->schema.nfields - 1];
	size_t end = (size_t)last->offset + last->elem_size;

	/* The padding after the last field is optional. */
	if (len < end || len > p->schema.data_size)
		return client_fail(
		    p->bus, -EINVAL,
		    "record data is %zu bytes; the schema needs %zu "
		    "(%u with padding)",
		    len, end, p->schema.data_size);
	if (p->reserved)
		return client_fail(p->bus, -EBUSY,
				   "records are reserved and not committed");
	err = expbus_reserve(p, 1, timeout_ms, &span);
	if (err < 0)
		return err;
	r = span.first;
	r->game = hdr->game;
	r->player = hdr->player;
	r->turn = hdr->turn;
	r->flags = hdr->flags;
	r->timestamp_ns = hdr->timestamp_ns;
	memcpy(expbus_record_data(r), data, len);
	memset((uint8_t *)expbus_record_data(r) + len, 0,
	       p->schema.data_size - len);
	return expbus_commit(p, 1);
}
