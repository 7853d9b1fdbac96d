/* conn.c — control connections: accepted, watched, closed and freed. What
 * a connection's messages mean is control.c's business. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "sqe.h"

struct conn *conn_new(struct broker *b, int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct conn *c;

	uint64_t held;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    b->n_conns >= BROKER_MAX_CONNS) {
		if (ratelimit_pass(&b->refuse_log, b->now_ns, &held))
			log_warn(b,
				 "refusing a connection: %u open, at most %d "
				 "(%llu more refused since the last line)",
				 b->n_conns, BROKER_MAX_CONNS,
				 (unsigned long long)held);
		(void)close(fd);
		return NULL;
	}
	/* One uid's flood must not lock the others out. */
	if (!conn_limits_admit(&b->conn_limits, cred.uid)) {
		if (ratelimit_pass(&b->refuse_log, b->now_ns, &held))
			log_warn(b,
				 "refusing a connection from pid %d: uid %d "
				 "holds %u connections, its per-uid limit "
				 "(--max-conns-per-uid; %llu more refused "
				 "since the last line)",
				 (int)cred.pid, (int)cred.uid,
				 b->cfg.max_conns_per_uid,
				 (unsigned long long)held);
		(void)close(fd);
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		conn_limits_release(&b->conn_limits, cred.uid);
		log_warn(b, "refusing a connection: out of memory");
		(void)close(fd);
		return NULL;
	}
	c->fd = fd;
	c->pid = cred.pid;
	c->uid = cred.uid;
	c->gid = cred.gid;
	c->accepted_ns = b->now_ns;
	c->next = b->conns;
	b->conns = c;
	b->n_conns++;
	log_debug(b, "connection from pid %d uid %d", (int)c->pid, (int)c->uid);
	return c;
}

void conn_arm(struct broker *b, struct conn *c)
{
	struct io_uring_sqe *sqe = broker_sqe(b);

	if (!sqe)
		return;
	io_uring_prep_poll_add(sqe, c->fd, POLLIN | POLLRDHUP);
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | OP_POLL);
	c->poll_armed = true;
}

void conn_sweep(struct broker *b)
{
	/* A walk over every connection, but only while some are closed. */
	if (!b->n_conns_closed)
		return;
	for (struct conn **pp = &b->conns; *pp;) {
		struct conn *c = *pp;
		if (c->closed && !c->poll_armed) {
			*pp = c->next;
			b->n_conns--;
			b->n_conns_closed--;
			free(c);
			continue;
		}
		pp = &c->next;
	}
}

void conn_close(struct broker *b, struct conn *c)
{
	if (c->closed)
		return;
	c->closed = true;
	b->n_conns_closed++;
	if (c->poll_armed) {
		/* The poll holds the file: cancel it; the connection is freed
		 * by conn_sweep once the poll's completion is back. */
		struct io_uring_sqe *sqe = broker_sqe(b);
		if (sqe) {
			io_uring_prep_poll_remove(sqe, (uint64_t)(uintptr_t)c |
							   OP_POLL);
			io_uring_sqe_set_data64(sqe, OP_OTHER);
		}
	}
	(void)close(c->fd);
	c->fd = -1;
	conn_limits_release(&b->conn_limits, c->uid);
}

void conn_free_all(struct broker *b)
{
	for (struct conn *c = b->conns, *next; c; c = next) {
		next = c->next;
		if (c->fd >= 0)
			(void)close(c->fd);
		free(c);
	}
	b->conns = NULL;
	b->n_conns = 0;
	b->n_conns_closed = 0;
}
