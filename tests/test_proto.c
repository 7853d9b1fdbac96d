/* test_proto.c — control message framing: header checks, names, and
 * sending/receiving fds over a socketpair, including too many fds and
 * truncated messages. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto.h"

static void pair(int sv[2])
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv),
		     0);
}

Test(proto, a_valid_header_gives_its_type)
{
	struct msg_stats m;
	char err[128];

	proto_header(&m.h, MSG_STATS, sizeof(m));
	cr_assert_eq(proto_check(&m, sizeof(m), err, sizeof(err)), MSG_STATS);
}

Test(proto, short_garbage_and_wrong_length_are_bad_messages)
{
	struct msg_stats m;
	char err[128];
	uint8_t junk[40];

	memset(junk, 0xab, sizeof(junk));
	cr_assert_eq(proto_check(junk, 3, err, sizeof(err)), -EBADMSG);
	cr_assert(strstr(err, "shorter"));
	cr_assert_eq(proto_check(junk, sizeof(junk), err, sizeof(err)),
		     -EBADMSG);
	cr_assert(strstr(err, "magic"));
	proto_header(&m.h, MSG_STATS, sizeof(m) + 4);
	cr_assert_eq(proto_check(&m, sizeof(m), err, sizeof(err)), -EBADMSG);
	cr_assert(strstr(err, "bytes"));
	proto_header(&m.h, MSG_STATS, sizeof(m));
	m.h.reserved = 1;
	cr_assert_eq(proto_check(&m, sizeof(m), err, sizeof(err)), -EBADMSG);
}

Test(proto, another_version_is_refused_with_both_numbers)
{
	struct msg_stats m;
	char err[128];

	proto_header(&m.h, MSG_STATS, sizeof(m));
	m.h.version = 7;
	cr_assert_eq(proto_check(&m, sizeof(m), err, sizeof(err)),
		     -EPROTONOSUPPORT);
	cr_assert(strstr(err, "7"), "%s", err);
}

Test(proto, names_must_be_terminated_and_plain)
{
	char name[NAME_MAX_LEN] = "ok-name_1.2";

	cr_assert_eq(proto_check_name(name, 0), 0);
	memset(name, 'a', sizeof(name)); /* no NUL */
	cr_assert_eq(proto_check_name(name, 0), -EINVAL);
	strcpy(name, "bad/name");
	cr_assert_eq(proto_check_name(name, 0), -EINVAL);
	name[0] = '\0';
	cr_assert_eq(proto_check_name(name, 0), -EINVAL);
	cr_assert_eq(proto_check_name(name, 1), 0);
}

Test(proto, fds_travel_with_the_message)
{
	int sv[2], fds[PROTO_MAX_FDS], nfds = 0, sent[2];
	struct msg_stats m, r;

	pair(sv);
	cr_assert_eq(pipe(sent), 0);
	proto_header(&m.h, MSG_STATS, sizeof(m));
	cr_assert_eq(proto_send(sv[0], &m, sizeof(m), sent, 2), 0);
	cr_assert_eq(proto_recv(sv[1], &r, sizeof(r), fds, &nfds),
		     (ssize_t)sizeof(m));
	cr_assert_eq(nfds, 2);
	cr_assert_eq(write(fds[1], "x", 1), 1);
	proto_close_fds(fds, nfds);
	close(sent[0]);
	close(sent[1]);
	close(sv[0]);
	close(sv[1]);
}

Test(proto, extra_fds_are_closed_and_counted)
{
	int sv[2], fds[PROTO_MAX_FDS], nfds = 0, many[6];
	struct msg_stats m, r;
	union {
		char buf[CMSG_SPACE(sizeof(many))];
		struct cmsghdr align;
	} control;
	struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = control.buf,
			    .msg_controllen = sizeof(control.buf)};
	struct cmsghdr *cm;

	pair(sv);
	for (int i = 0; i < 6; i++)
		many[i] = dup(0);
	proto_header(&m.h, MSG_STATS, sizeof(m));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(many));
	memcpy(CMSG_DATA(cm), many, sizeof(many));
	cr_assert_eq(sendmsg(sv[0], &mh, 0), (ssize_t)sizeof(m));
	cr_assert_eq(proto_recv(sv[1], &r, sizeof(r), fds, &nfds),
		     (ssize_t)sizeof(m));
	cr_assert_eq(nfds, 6, "all fds are counted");
	proto_close_fds(fds, nfds);
	for (int i = 0; i < 6; i++)
		close(many[i]);
	close(sv[0]);
	close(sv[1]);
}

Test(proto, a_message_larger_than_the_buffer_is_refused)
{
	int sv[2], nfds = 0, fds[PROTO_MAX_FDS];
	char big[256] = {0}, small[16];

	pair(sv);
	cr_assert_eq(send(sv[0], big, sizeof(big), 0), (ssize_t)sizeof(big));
	cr_assert_eq(proto_recv(sv[1], small, sizeof(small), fds, &nfds),
		     -EMSGSIZE);
	close(sv[0]);
	close(sv[1]);
}

Test(proto, hang_up_reads_as_zero)
{
	int sv[2], nfds = 0, fds[PROTO_MAX_FDS];
	char buf[16];

	pair(sv);
	close(sv[0]);
	cr_assert_eq(proto_recv(sv[1], buf, sizeof(buf), fds, &nfds), 0);
	close(sv[1]);
}

/* The lowest free fd: a leaked fd shows as this number growing. */
static int lowest_free_fd(void)
{
	int fd = dup(0);

	cr_assert_geq(fd, 0);
	close(fd);
	return fd;
}

Test(proto, an_empty_message_with_fds_reads_as_zero_and_closes_them)
{
	int sv[2], nfds = 7, fds[PROTO_MAX_FDS], sent[4], before;
	char buf[16];
	union {
		char buf[CMSG_SPACE(sizeof(sent))];
		struct cmsghdr align;
	} control;
	struct iovec iov = {.iov_base = buf, .iov_len = 0};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = control.buf,
			    .msg_controllen = sizeof(control.buf)};
	struct cmsghdr *cm;

	pair(sv);
	before = lowest_free_fd();
	for (int i = 0; i < 4; i++)
		sent[i] = dup(0);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(sent));
	memcpy(CMSG_DATA(cm), sent, sizeof(sent));
	cr_assert_eq(sendmsg(sv[0], &mh, 0), 0);
	for (int i = 0; i < 4; i++)
		close(sent[i]);
	cr_assert_eq(proto_recv(sv[1], buf, sizeof(buf), fds, &nfds), 0);
	cr_assert_eq(nfds, 0);
	cr_assert_eq(lowest_free_fd(), before, "the fds were closed");
	close(sv[0]);
	close(sv[1]);
}

static size_t attach_msg(void *buf, const char *stream, uint32_t flags,
			 const char *schema)
{
	struct msg_attach *m = buf;
	size_t tl = strlen(schema);

	memset(m, 0, sizeof(*m));
	snprintf(m->stream, sizeof(m->stream), "%s", stream);
	m->flags = flags;
	m->schema_len = (uint32_t)tl;
	memcpy(m + 1, schema, tl);
	proto_header(&m->h, MSG_ATTACH, sizeof(*m) + tl);
	return sizeof(*m) + tl;
}

Test(proto, attach_bodies_are_checked_for_framing_and_values)
{
	union {
		struct msg_attach m;
		char bytes[512];
	} u;
	char err[256];
	size_t n = attach_msg(&u, "demo", 0, "x u8");

	cr_assert_eq(proto_check_attach(&u, n, 0, err, sizeof(err)), 0);
	cr_assert_eq(proto_check_attach(&u, n - 1, 0, err, sizeof(err)),
		     -EBADMSG);
	cr_assert(strstr(err, "schema length"), "%s", err);
	cr_assert_eq(proto_check_attach(&u, n, 1, err, sizeof(err)), -EBADMSG,
		     "an fd without ATTACH_RESUME");
	n = attach_msg(&u, "demo", ATTACH_RESUME, "x u8");
	cr_assert_eq(proto_check_attach(&u, n, 1, err, sizeof(err)), 0);
	cr_assert_eq(proto_check_attach(&u, n, 0, err, sizeof(err)), -EBADMSG,
		     "ATTACH_RESUME without its fd");
	cr_assert_eq(proto_check_attach(&u, n, 2, err, sizeof(err)), -EBADMSG);
	n = attach_msg(&u, "de/mo", 0, "x u8");
	cr_assert_eq(proto_check_attach(&u, n, 0, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "stream name"), "%s", err);
}

Test(proto, subscribe_bodies_are_checked_for_framing_and_values)
{
	union {
		struct msg_subscribe m;
		char bytes[512];
	} u;
	char err[256];

	memset(&u, 0, sizeof(u));
	strcpy(u.m.stream, "demo");
	u.m.n_games = 2;
	proto_header(&u.m.h, MSG_SUBSCRIBE, sizeof(u.m) + 8);
	cr_assert_eq(
	    proto_check_subscribe(&u, sizeof(u.m) + 8, err, sizeof(err)), 0);
	cr_assert_eq(
	    proto_check_subscribe(&u, sizeof(u.m) + 4, err, sizeof(err)),
	    -EBADMSG);
	u.m.n_games = 0xffffffffu; /* 4 * n would wrap a 32-bit length */
	cr_assert_eq(
	    proto_check_subscribe(&u, sizeof(u.m) + 8, err, sizeof(err)),
	    -EBADMSG);
	u.m.n_games = 0;
	u.m.batch_slots = 3;
	cr_assert_eq(proto_check_subscribe(&u, sizeof(u.m), err, sizeof(err)),
		     -EINVAL);
	cr_assert(strstr(err, "power of two"), "%s", err);
}

Test(proto, error_replies_decode_only_when_their_lengths_add_up)
{
	union {
		struct msg_error e;
		char bytes[64];
	} u;
	const char *text;
	size_t tl;
	int error;

	memset(&u, 0, sizeof(u));
	u.e.error = -3;
	u.e.text_len = 4;
	memcpy(&u.e + 1, "oops", 4);
	cr_assert_eq(
	    proto_decode_error(&u, sizeof(u.e) + 4, &error, &text, &tl), 0);
	cr_assert_eq(error, EPROTO, "an impossible errno becomes EPROTO");
	cr_assert_eq(tl, 4);
	u.e.text_len = 1000;
	cr_assert_eq(
	    proto_decode_error(&u, sizeof(u.e) + 4, &error, &text, &tl),
	    -EBADMSG);
}
