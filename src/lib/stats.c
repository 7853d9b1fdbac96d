/* stats.c — mapping the broker's stats segment read-only, for the CLI and
 * anyone else allowed on the socket. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "shm.h"

int expbus_stats_map(struct expbus *bus, const void **seg, size_t *size)
{
	struct msg_stats req;
	struct msg_ok_stats ok;
	const struct stats_segment *st;
	void *addr;
	int sock, fd = -1, err;
	ssize_t n;

	sock = client_connect(bus);
	if (sock < 0)
		return sock;
	proto_header(&req.h, MSG_STATS, sizeof(req));
	n = client_request(bus, sock, &req, sizeof(req), MSG_OK_STATS, &ok,
			   sizeof(ok), &fd, 1);
	(void)close(sock);
	if (n < 0)
		return (int)n;
	err = shm_check(fd, sizeof(struct stats_segment), ok.segment_size,
			SHM_SEALS_READONLY, NULL);
	if (err == 0 && ok.segment_size < sizeof(struct stats_segment))
		err = -EINVAL;
	if (err == 0)
		err = shm_map(fd, ok.segment_size, 0, &addr);
	(void)close(fd);
	if (err < 0)
		return client_fail(bus, -EPROTO,
				   "the stats segment from the broker is not a "
				   "sealed memfd of %llu bytes",
				   (unsigned long long)ok.segment_size);
	st = addr;
	if (st->seg.magic != MAGIC_STATS || st->seg.version != LAYOUT_VERSION) {
		shm_unmap(addr, ok.segment_size);
		return client_fail(bus, -EPROTO,
				   "stats layout version %u is not the %u this "
				   "tool reads",
				   st->seg.version, LAYOUT_VERSION);
	}
	*seg = addr;
	*size = ok.segment_size;
	return 0;
}

void expbus_stats_unmap(const void *seg, size_t size)
{
	shm_unmap((void *)seg, size);
}
