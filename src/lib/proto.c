/* proto.c — control messages: framing checks, and sendmsg/recvmsg with
 * SCM_RIGHTS. Decoding of bodies stays with whoever owns their meaning. */
#include "proto.h"
#include "schema.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifdef EXPBUS_SHARED_MAPPINGS
/* ThreadSanitizer test builds: the kernel orders a sendmsg before the
 * recvmsg that receives it (a segment's header written before it is sent
 * is seen by the receiver), but TSan does not model sockets; say so. */
#include <sanitizer/tsan_interface.h>
static char socket_sync;
#define SOCKET_RELEASE() __tsan_release(&socket_sync)
#define SOCKET_ACQUIRE() __tsan_acquire(&socket_sync)
#else
#define SOCKET_RELEASE() ((void)0)
#define SOCKET_ACQUIRE() ((void)0)
#endif

_Static_assert(PROTO_MAX_SCHEMA == SCHEMA_TEXT_MAX, "schema text limit");

void proto_header(struct msg_header *h, enum msg_type type, size_t length)
{
	h->magic = PROTO_MAGIC;
	h->version = PROTO_VERSION;
	h->type = (uint16_t)type;
	h->length = (uint32_t)length;
	h->reserved = 0;
}

int proto_check(const void *buf, size_t len, char *err, size_t errlen)
{
	struct msg_header h;

	if (len < sizeof(h)) {
		snprintf(err, errlen,
			 "message of %zu bytes is shorter than a header", len);
		return -EBADMSG;
	}
	memcpy(&h, buf, sizeof(h));
	if (h.magic != PROTO_MAGIC) {
		snprintf(err, errlen, "bad magic 0x%08x: not an expbus message",
			 h.magic);
		return -EBADMSG;
	}
	if (h.version != PROTO_VERSION) {
		snprintf(
		    err, errlen,
		    "protocol version %u is not supported (this broker speaks %u)",
		    h.version, PROTO_VERSION);
		return -EPROTONOSUPPORT;
	}
	if (h.length != len) {
		snprintf(err, errlen, "header says %u bytes but %zu arrived",
			 h.length, len);
		return -EBADMSG;
	}
	if (h.reserved != 0) {
		snprintf(err, errlen, "reserved header field is not zero");
		return -EBADMSG;
	}
	return h.type;
}

int proto_check_name(const char name[NAME_MAX_LEN], int may_be_empty)
{
	size_t n = strnlen(name, NAME_MAX_LEN);

	if (n == NAME_MAX_LEN || (n == 0 && !may_be_empty))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			return -EINVAL;
	}
	return 0;
}

int proto_check_attach(const void *buf, size_t len, int nfds, char *err,
		       size_t errlen)
{
	const struct msg_attach *m = buf;

	if (len < sizeof(*m) || m->schema_len != len - sizeof(*m) ||
	    m->schema_len >= PROTO_MAX_SCHEMA) {
		snprintf(err, errlen,
			 "attach request of %zu bytes does not match its "
			 "schema length",
			 len);
		return -EBADMSG;
	}
	if ((m->flags & ~(ATTACH_RESUME | ATTACH_READY)) ||
	    !(m->flags & ATTACH_RESUME) != (nfds == 0) || nfds > 1) {
		snprintf(err, errlen,
			 "attach flags 0x%x do not match the %d fd(s) sent",
			 m->flags, nfds);
		return -EBADMSG;
	}
	if (proto_check_name(m->stream, 0) < 0) {
		snprintf(err, errlen,
			 "stream name must be 1-63 characters of letters, "
			 "digits, '_', '.' and '-'");
		return -EINVAL;
	}
	return 0;
}

int proto_check_subscribe(const void *buf, size_t len, char *err, size_t errlen)
{
	const struct msg_subscribe *m = buf;
	const char *why = NULL;

	if (len < sizeof(*m) || m->n_games > PROTO_MAX_FILTER ||
	    m->n_players > PROTO_MAX_FILTER ||
	    len != sizeof(*m) + 4ull * (m->n_games + m->n_players)) {
		snprintf(err, errlen,
			 "subscribe request of %zu bytes does not match its "
			 "filter lengths",
			 len);
		return -EBADMSG;
	}
	if (proto_check_name(m->stream, 0) < 0)
		why = "stream name must be 1-63 characters of letters, digits, "
		      "'_', '.' and '-'";
	else if (proto_check_name(m->group, 1) < 0)
		why = "group name must be up to 63 characters of letters, "
		      "digits, '_', '.' and '-'";
	else if (m->batch_size > PROTO_MAX_BATCH_SIZE)
		why = "batch_size must be at most 65536";
	else if (m->max_delay_us > PROTO_MAX_DELAY_US)
		why = "max_delay_us must be at most 60 s";
	else if (m->batch_slots && (m->batch_slots < 2 ||
				    m->batch_slots > PROTO_MAX_BATCH_SLOTS ||
				    (m->batch_slots & (m->batch_slots - 1))))
		why = "batch_slots must be a power of two from 2 to 1024";
	else if (m->policy > EXPBUS_LOSSY)
		why = "policy must be 0 (lossless) or 1 (lossy)";
	else if (m->flags & ~(EXPBUS_SUBSCRIBE_CHECKSUM | SUBSCRIBE_RESUMING))
		why = "unknown subscription flags";
	if (why) {
		snprintf(err, errlen, "%s", why);
		return -EINVAL;
	}
	return 0;
}

int proto_decode_error(const void *buf, size_t len, int *error,
		       const char **text, size_t *text_len)
{
	const struct msg_error *e = buf;

	if (len < sizeof(*e) || e->text_len != len - sizeof(*e))
		return -EBADMSG;
	*error = e->error > 0 && e->error < 4096 ? e->error : EPROTO;
	*text = (const char *)(e + 1);
	*text_len = e->text_len;
	return 0;
}

int proto_send(int sock, const void *msg, size_t len, const int *fds, int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * PROTO_MAX_FDS)];
		struct cmsghdr align;
	} control;
	struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	if (nfds > PROTO_MAX_FDS)
		return -EINVAL;
	if (nfds > 0) {
		struct cmsghdr *cm;

		memset(&control, 0, sizeof(control));
		mh.msg_control = control.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
	}
	SOCKET_RELEASE();
	for (;;) {
		ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
		if (n >= 0)
			return (size_t)n == len ? 0 : -EMSGSIZE;
		if (errno != EINTR)
			return -errno;
	}
}

ssize_t proto_recv(int sock, void *buf, size_t cap, int *fds, int *nfds)
{
	/* Room for more fds than we keep, so that a peer sending extra ones
	 * is seen (and its fds closed) rather than silently truncated. */
	union {
		char buf[CMSG_SPACE(sizeof(int) * 32)];
		struct cmsghdr align;
	} control;
	struct iovec iov = {.iov_base = buf, .iov_len = cap};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = control.buf,
			    .msg_controllen = sizeof(control.buf)};
	ssize_t n;
	int kept = 0, seen = 0;

	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	SOCKET_ACQUIRE();
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm;
	     cm = CMSG_NXTHDR(&mh, cm)) {
		size_t count;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < count; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int),
			       sizeof(fd));
			seen++;
			if (fds && kept < PROTO_MAX_FDS)
				fds[kept++] = fd;
			else
				(void)close(fd);
		}
	}
	if (nfds)
		*nfds = seen > kept ? seen : kept;
	/* An empty message reads like a hang-up: the caller will treat it as
	 * one and never look at fds, so none may survive it. */
	if (n == 0 || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		proto_close_fds(fds, kept);
		if (nfds)
			*nfds = 0;
		return n == 0 ? 0 : -EMSGSIZE;
	}
	return n;
}

int proto_send_error(int sock, int error, const char *fmt, ...)
{
	struct {
		struct msg_error e;
		char text[PROTO_ERROR_TEXT];
	} m;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(m.text, sizeof(m.text), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(m.text))
		n = sizeof(m.text) - 1;
	m.e.error = error;
	m.e.text_len = (uint32_t)n;
	proto_header(&m.e.h, MSG_ERROR, sizeof(m.e) + (size_t)n);
	return proto_send(sock, &m, sizeof(m.e) + (size_t)n, NULL, 0);
}

void proto_close_fds(int *fds, int nfds)
{
	for (int i = 0; fds && i < nfds && i < PROTO_MAX_FDS; i++) {
		if (fds[i] >= 0)
			(void)close(fds[i]);
		fds[i] = -1;
	}
}
