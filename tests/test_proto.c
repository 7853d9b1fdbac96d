/* test_proto.c — control message framing: header checks, names, and
 * sending/receiving fds over a socketpair, including too many fds and
 * truncated messages. */
#include <criterion/criterion.h>
#include <errno.h>
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
