/* conn_limits.h — how many control connections each uid holds, so that
 * one user's flood of connections cannot lock every other user out. */
#ifndef EXPBUSD_CONN_LIMITS_H
#define EXPBUSD_CONN_LIMITS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct conn_limits {
	struct uid_conns {
		uid_t uid;
		uint32_t n;
	} * v; /* one entry per uid with connections; a handful at most */
	uint32_t n, cap;
	uint32_t max_per_uid;
};

/* Counts one more connection of uid, unless uid holds max_per_uid
 * already (or memory is short). Returns whether it was counted. */
bool conn_limits_admit(struct conn_limits *l, uid_t uid);

/* Counts one connection of uid as closed. */
void conn_limits_release(struct conn_limits *l, uid_t uid);

void conn_limits_free(struct conn_limits *l);

#endif
