/* fuzz_proto.c — the control-message decoder as the broker and clients
 * meet it: the bytes go through a SOCK_SEQPACKET socketpair with 0-5 fds
 * (proto_recv: fds kept, closed, truncation), then the header check and
 * the body checks of ATTACH, SUBSCRIBE and ERROR. Properties: no memory
 * error, no fd leak, and whatever a check accepts is safe to use as the
 * broker uses it (lengths add up, names terminated, schema parses). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "proto.h"
#include "schema.h"

static int pair[2] = {-1, -1};
/* Reads land here so the compiler keeps them (and ASan checks them). */
static volatile uint32_t sink;

static void check(int ok)
{
	if (!ok)
		abort();
}

/* The lowest free fd: a leak shows as this number growing. */
static int lowest_free_fd(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	check(fd >= 0);
	(void)close(fd);
	return fd;
}

static void decode_body(const uint8_t *msg, size_t len, int nfds)
{
	char err[512];
	int type = proto_check(msg, len, err, sizeof(err));

	check(type < 0 ? err[0] != '\0' : 1);
	if (type == MSG_ATTACH) {
		const struct msg_attach *m = (const void *)msg;
		int e = proto_check_attach(msg, len, nfds, err, sizeof(err));

		check(e == 0 || e == -EBADMSG || e == -EINVAL);
		if (e == 0) {
			char *text = malloc(m->schema_len + 1);
			struct schema *s = malloc(sizeof(*s));

			check(len == sizeof(*m) + m->schema_len);
			check(memchr(m->stream, '\0', NAME_MAX_LEN) != NULL);
			check(text && s);
			memcpy(text, m + 1, m->schema_len);
			text[m->schema_len] = '\0';
			(void)schema_parse(text, s, err, sizeof(err));
			free(s);
			free(text);
		}
	} else if (type == MSG_SUBSCRIBE) {
		const struct msg_subscribe *m = (const void *)msg;
		int e = proto_check_subscribe(msg, len, err, sizeof(err));

		check(e == 0 || e == -EBADMSG || e == -EINVAL);
		if (e == 0) {
			const uint32_t *ids = (const uint32_t *)(m + 1);
			for (uint32_t i = 0; i < m->n_games + m->n_players; i++)
				sink += ids[i];
			check(memchr(m->group, '\0', NAME_MAX_LEN) != NULL);
		}
	} else if (type == MSG_ERROR) {
		const char *text;
		size_t tl;
		int error;

		if (proto_decode_error(msg, len, &error, &text, &tl) == 0) {
			check(error > 0 && error < 4096);
			check(text + tl == (const char *)msg + len);
			for (size_t i = 0; i < tl; i++)
				sink += (uint8_t)text[i];
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size heap copy: ASan sees any read past the message. */
	uint8_t *msg = malloc(PROTO_MAX_MSG + 64);
	int sent_fds[8], fds[PROTO_MAX_FDS], nfds = 0, nsend, before;
	ssize_t n;

	check(msg != NULL);
	if (pair[0] < 0)
		check(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
				 pair) == 0);
	if (size < 1 || size - 1 > PROTO_MAX_MSG + 16) {
		free(msg);
		return 0;
	}
	/* The first byte picks how many fds come along (0-5: more than the
	 * broker keeps); the rest is the message. */
	nsend = data[0] % 6;
	data++;
	size--;
	before = lowest_free_fd();
	for (int i = 0; i < nsend; i++)
		check((sent_fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >=
		      0);
	{
		union {
			char buf[CMSG_SPACE(sizeof(int) * 8)];
			struct cmsghdr align;
		} control;
		struct iovec iov = {.iov_base = (void *)data, .iov_len = size};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

		if (nsend) {
			struct cmsghdr *cm;
			memset(&control, 0, sizeof(control));
			mh.msg_control = control.buf;
			mh.msg_controllen =
			    CMSG_SPACE(sizeof(int) * (size_t)nsend);
			cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nsend);
			memcpy(CMSG_DATA(cm), sent_fds,
			       sizeof(int) * (size_t)nsend);
		}
		check(sendmsg(pair[0], &mh, MSG_NOSIGNAL) == (ssize_t)size);
	}
	for (int i = 0; i < nsend; i++)
		(void)close(sent_fds[i]);
	n = proto_recv(pair[1], msg, PROTO_MAX_MSG, fds, &nfds);
	/* What the broker does: fds are closed on every path. */
	if (n > 0 && (size_t)n <= PROTO_MAX_MSG) {
		uint8_t *exact = malloc((size_t)n);

		check(exact != NULL);
		memcpy(exact, msg, (size_t)n);
		decode_body(exact, (size_t)n,
			    nfds > PROTO_MAX_FDS ? PROTO_MAX_FDS : nfds);
		free(exact);
	} else {
		check(n == 0 || n == -EMSGSIZE);
		check(nfds == 0); /* closed by proto_recv already */
		check(n != -EMSGSIZE || size > PROTO_MAX_MSG);
	}
	if (n >= 0)
		proto_close_fds(fds, nfds);
	check(lowest_free_fd() == before);
	free(msg);
	return 0;
}
