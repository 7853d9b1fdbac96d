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
#include "ring.h"
#include "schema.h"
#include "shm.h"

struct expbus_producer {
	struct expbus *bus;
	int sock;
	int ring_fd;  /* kept to hand the ring to a restarted broker */
	int wake_fd;  /* broker's: written when it sleeps and we committed */
	int space_fd; /* ours: the broker writes it when we sleep on a full ring
		       */
	struct producer_ring *seg;
	size_t seg_size;
	struct ring ring;
	uint64_t reserved; /* slots handed out past ring.pos, not committed */
	uint32_t flags;
	uint64_t checked_ns; /* when we last looked for a broker hang-up */
	char stream[NAME_MAX_LEN];
	struct schema schema;
};

#define HANGUP_CHECK_NS (100u * 1000000u)

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
	int fds[3] = {-1, -1, -1}, err, len;
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
	p->sock = p->wake_fd = p->space_fd = p->ring_fd = -1;
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
	req.m.flags = 0;
	req.m.schema_len = (uint32_t)len;
	p->flags = opts ? opts->flags : 0;
	proto_header(&req.m.h, MSG_ATTACH, sizeof(req.m) + (size_t)len);
	err = p->sock = client_connect(bus);
	if (err < 0)
		goto fail;
	n = client_request(bus, p->sock, &req, sizeof(req.m) + (size_t)len,
			   MSG_OK_ATTACH, &ok, sizeof(ok), fds, 3);
	if (n < 0) {
		err = (int)n;
		goto fail;
	}
	p->wake_fd = fds[1];
	p->space_fd = fds[2];
	if (n != sizeof(ok) || ok.data_size != p->schema.data_size) {
		err = client_fail(bus, -EPROTO, "malformed attach reply");
		(void)close(fds[0]);
		goto fail;
	}
	p->ring_fd = fds[0];
	err = map_ring(p, &ok, fds[0]);
	if (err < 0)
		goto fail;
	strcpy(p->stream, stream);
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
	if (p->sock >= 0)
		(void)close(p->sock);
	if (p->wake_fd >= 0)
		(void)close(p->wake_fd);
	if (p->space_fd >= 0)
		(void)close(p->space_fd);
	if (p->ring_fd >= 0)
		(void)close(p->ring_fd);
	free(p);
	return NULL;
}

/* The broker hung up: hand our ring to whichever broker now listens on the
 * socket, so that the records committed and not yet taken are delivered.
 * Returns 0, or a negative errno (no broker yet: try again later). */
static int resume(struct expbus_producer *p)
{
	struct {
		struct msg_attach m;
		char text[SCHEMA_TEXT_MAX];
	} req;
	struct msg_ok_attach ok;
	int fds[3] = {-1, -1, -1}, sock, len, err;
	ssize_t n;

	memset(&req.m, 0, sizeof(req.m));
	strcpy(req.m.stream, p->stream);
	len = schema_format(&p->schema, req.text, sizeof(req.text));
	req.m.flags = ATTACH_RESUME;
	req.m.schema_len = (uint32_t)len;
	proto_header(&req.m.h, MSG_ATTACH, sizeof(req.m) + (size_t)len);
	sock = client_connect(p->bus);
	if (sock < 0)
		return sock;
	err =
	    proto_send(sock, &req, sizeof(req.m) + (size_t)len, &p->ring_fd, 1);
	if (err < 0) {
		(void)close(sock);
		return err;
	}
	n = client_request(p->bus, sock, NULL, 0, MSG_OK_ATTACH, &ok,
			   sizeof(ok), fds, 3);
	if (n < 0) {
		(void)close(sock);
		return (int)n;
	}
	(void)close(fds[0]); /* our own ring again */
	if (n != sizeof(ok) || ok.capacity != p->ring.capacity ||
	    ok.slot_size != p->ring.slot_size) {
		(void)close(fds[1]);
		(void)close(fds[2]);
		(void)close(sock);
		return client_fail(p->bus, -EPROTO, "malformed resume reply");
	}
	(void)close(p->sock);
	(void)close(p->wake_fd);
	(void)close(p->space_fd);
	p->sock = sock;
	p->wake_fd = fds[1];
	p->space_fd = fds[2];
	return 0;
}

/* True when the broker has hung up on us. */
static bool broker_gone(const struct expbus_producer *p)
{
	struct pollfd pfd = {.fd = p->sock, .events = POLLRDHUP};

	return poll(&pfd, 1, 0) > 0 &&
	       (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* Every HANGUP_CHECK_NS, look for a hang-up and resume with a new broker:
 * one poll(2) per 100 ms, not per record. */
static void check_broker(struct expbus_producer *p, uint64_t now)
{
	if (now - p->checked_ns < HANGUP_CHECK_NS)
		return;
	p->checked_ns = now;
	if (broker_gone(p))
		(void)resume(p);
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
 * is lost). */
static int wait_for_space(struct expbus_producer *p, int timeout_ms)
{
	uint64_t deadline = client_deadline(timeout_ms);

	for (;;) {
		int r = client_ring_sleep(&p->ring, 1, p->reserved, p->space_fd,
					  p->sock, deadline);
		if (r == 0)
			continue;
		if (r == -EPROTO)
			return ring_broken(p);
		if (r != -EPIPE)
			return r; /* -EINTR too: let the caller see signals */
		/* Hand the ring to a restarted broker; until one is there,
		 * keep trying for as long as we may wait. */
		if (resume(p) == 0)
			continue;
		if (deadline && client_now_ns() >= deadline)
			return client_fail(
			    p->bus, -EPIPE,
			    "the broker has gone away and none took "
			    "over in time");
		(void)poll(NULL, 0, 50);
	}
}

int expbus_reserve(struct expbus_producer *p, unsigned n, int timeout_ms,
		   struct expbus_span *span)
{
	int got;

	if (n == 0)
		return -EINVAL;
	got = ring_producer_free(&p->ring, p->reserved, n);
	if (got == 0)
		check_broker(p, client_now_ns());
	if (got == 0 && timeout_ms != 0)
		got = wait_for_space(p, timeout_ms);
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
	now = client_now_ns();
	check_broker(p, now);
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
	if (ring_producer_commit(&p->ring, n)) {
		uint64_t one = 1;
		/* Nothing to do on failure: the broker also wakes on a timer.
		 */
		(void)!write(p->wake_fd, &one, sizeof(one));
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
