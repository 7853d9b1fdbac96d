/* proto.h — control messages on the broker's SOCK_SEQPACKET socket: the
 * wire structs, their validation, and sending/receiving them with fds.
 * One connection carries one producer or one subscription (or one stats
 * request); hanging up ends it. See docs/protocol.md. */
#ifndef EXPBUS_PROTO_H
#define EXPBUS_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "layout.h"

#define PROTO_MAGIC	 0x4d425845u /* "EXBM" */
#define PROTO_VERSION	 1u
#define PROTO_MAX_MSG	 65536u
#define PROTO_MAX_FDS	 4
#define PROTO_MAX_FILTER 1024 /* game or player ids in one filter */
#define PROTO_ERROR_TEXT 1024
#define PROTO_MAX_SCHEMA 8192 /* schema text in ATTACH, SCHEMA_TEXT_MAX */

/* Limits of a SUBSCRIBE request (docs/protocol.md). */
#define PROTO_MAX_BATCH_SIZE  65536
#define PROTO_MAX_BATCH_SLOTS 1024
#define PROTO_MAX_DELAY_US    60000000u

enum msg_type {
	MSG_ATTACH = 1,	   /* producer: stream + schema -> ring */
	MSG_SUBSCRIBE = 2, /* subscriber: stream + filter -> batch ring */
	MSG_STATS = 3,	   /* anyone: -> stats segment */
	MSG_OK_ATTACH = 0x81,
	MSG_OK_SUBSCRIBE = 0x82,
	MSG_OK_STATS = 0x83,
	MSG_ERROR = 0xff,
};

struct msg_header {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t length;   /* of the whole message, header included */
	uint32_t reserved; /* 0 */
};
_Static_assert(sizeof(struct msg_header) == 16, "msg_header");

/* Followed by schema_len bytes of schema text (no NUL). With
 * ATTACH_RESUME, exactly one fd comes along: the ring a previous broker
 * gave this producer, which the new broker validates and takes over. */
#define ATTACH_RESUME (1u << 0)
/* The producer can mark a ready set (ready_set.h): the reply then carries it
 * as a fourth fd, and its bit in msg_ok_attach.ready_bit. */
#define ATTACH_READY (1u << 1)
struct msg_attach {
	struct msg_header h;
	char stream[NAME_MAX_LEN];
	uint32_t ring_slots; /* 0: broker's default */
	uint32_t flags;	     /* ATTACH_RESUME, ATTACH_READY */
	uint32_t schema_len;
	uint32_t pad;
};
_Static_assert(sizeof(struct msg_attach) == 96, "msg_attach");

/* msg_subscribe.flags besides the public EXPBUS_SUBSCRIBE_*: a consumer
 * that subscribes again after its broker went away says so, and a
 * restarted broker counts them back (docs/protocol.md,
 * Recovery). */
#define SUBSCRIBE_RESUMING (1u << 31)

/* Followed by n_games then n_players uint32_t ids. */
struct msg_subscribe {
	struct msg_header h;
	char stream[NAME_MAX_LEN];
	char group[NAME_MAX_LEN]; /* "" for none */
	uint32_t batch_size;
	uint32_t max_delay_us;
	uint32_t batch_slots;
	uint32_t policy;
	uint32_t min_turn;
	uint32_t flags;
	uint32_t n_games;
	uint32_t n_players;
};
_Static_assert(sizeof(struct msg_subscribe) == 176, "msg_subscribe");

struct msg_stats {
	struct msg_header h;
};

/* fds: producer ring, broker wakeup eventfd, space eventfd, and with
 * ATTACH_READY the ready set (READY_SET_SIZE bytes). */
struct msg_ok_attach {
	struct msg_header h;
	uint32_t producer_id;
	uint32_t capacity;
	uint32_t slot_size;
	uint32_t data_size;
	uint64_t segment_size;
	uint64_t schema_hash;
	uint32_t ready_bit; /* ATTACH_READY: ours in the ready set */
	uint32_t pad;
};
_Static_assert(sizeof(struct msg_ok_attach) == 56, "msg_ok_attach");

/* fds: batch ring, release page, batch eventfd, broker wakeup eventfd.
 * Followed by schema_len bytes of canonical schema text. */
struct msg_ok_subscribe {
	struct msg_header h;
	uint32_t subscription_id;
	uint32_t capacity;
	uint64_t segment_size;
	uint64_t schema_hash;
	uint32_t schema_len;
	uint32_t batch_size;
};
_Static_assert(sizeof(struct msg_ok_subscribe) == 48, "msg_ok_subscribe");

/* fds: stats segment. */
struct msg_ok_stats {
	struct msg_header h;
	uint64_t segment_size;
};

/* Followed by text_len bytes of text (no NUL). */
struct msg_error {
	struct msg_header h;
	int32_t error; /* positive errno */
	uint32_t text_len;
};

/* Fills a header. */
void proto_header(struct msg_header *h, enum msg_type type, size_t length);

/* Validates the header of a received message of len bytes: magic, version,
 * length equal to len, reserved 0. Returns the type, or -EBADMSG (not ours,
 * truncated, wrong length) or -EPROTONOSUPPORT (other version), with a
 * message in err. */
int proto_check(const void *buf, size_t len, char *err, size_t errlen);

/* The body checks of a received message whose header proto_check
 * accepted (buf aligned for the message struct, len bytes). Each returns
 * 0; -EBADMSG when the framing is broken (inner lengths that do not add
 * up, flags that do not match the fds: a protocol violation); or -EINVAL
 * when the request is well-formed but its values cannot be served (an
 * error reply). A message in err either way. They read nothing but buf:
 * pure functions, fuzzed by tests/fuzz/fuzz_proto.c. */
int proto_check_attach(const void *buf, size_t len, int nfds, char *err,
		       size_t errlen);
int proto_check_subscribe(const void *buf, size_t len, char *err,
			  size_t errlen);

/* Decodes an ERROR reply: its errno (positive, EPROTO if out of range) and
 * text. Returns 0 or -EBADMSG when its lengths do not add up. */
int proto_decode_error(const void *buf, size_t len, int *error,
		       const char **text, size_t *text_len);

/* Checks that a fixed-size name field is NUL-terminated, non-empty and made
 * of [A-Za-z0-9_.-]. Returns 0 or -EINVAL. */
int proto_check_name(const char name[NAME_MAX_LEN], int may_be_empty);

/* Sends one message with up to PROTO_MAX_FDS fds. Returns 0 or -errno. */
int proto_send(int sock, const void *msg, size_t len, const int *fds, int nfds);

/* Receives one message into buf (cap bytes) and the fds that came with it
 * (CLOEXEC; at most PROTO_MAX_FDS are kept, the rest closed, and *nfds set
 * past PROTO_MAX_FDS to tell). Returns the length, 0 on hang-up or an
 * empty message, -EMSGSIZE when the message or its fds were truncated, or
 * -errno. With 0 and -EMSGSIZE every received fd is already closed and
 * *nfds is 0. */
ssize_t proto_recv(int sock, void *buf, size_t cap, int *fds, int *nfds);

/* Sends MSG_ERROR with error (positive errno) and printf-style text. */
int proto_send_error(int sock, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void proto_close_fds(int *fds, int nfds);

#endif
