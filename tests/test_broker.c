/* test_broker.c — the broker as a real process, driven through libexpbus
 * and through raw protocol peers that misbehave: every offender is
 * disconnected with a logged reason and everyone else is still served. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "expbus.h"
#include "helpers.h"
#include "layout.h"

#define SCHEMA "obs f32[4]; action i32"

static struct test_broker tb;

static void setup(void)
{
	broker_start(&tb, NULL);
}

static void teardown(void)
{
	broker_stop(&tb);
}

TestSuite(broker, .init = setup, .fini = teardown, .timeout = 60);

struct rec {
	float obs[4];
	int32_t action;
};

static void write_records(struct expbus_producer *p, uint32_t game, int n,
			  int first)
{
	for (int i = 0; i < n; i++) {
		struct expbus_record_header h = {
		    .game = game, .player = 1, .turn = (uint32_t)(first + i)};
		struct rec r = {{(float)(first + i), 1, 2, 3}, first + i};
		int rc = expbus_write(p, &h, &r, sizeof(r), 1000);
		cr_assert_eq(rc, 0, "write %d: %s", rc, strerror(-rc));
	}
}

/* Counts records until want have arrived or timeout_ms passes. */
static int read_records(struct expbus_consumer *c, int want, int timeout_ms,
			int *timeouts)
{
	const struct expbus_batch *b;
	int got = 0;
	uint64_t end = now_ms() + (uint64_t)timeout_ms;

	while (got < want && now_ms() < end) {
		if (expbus_next_batch(c, 100, &b) != 0)
			continue;
		got += (int)b->count;
		if (timeouts && b->flush_reason == EXPBUS_FLUSH_TIMEOUT)
			(*timeouts)++;
		expbus_release(c, b);
	}
	return got;
}

/* The broker still serves a fresh producer and subscriber. */
static void still_serves(const char *stream)
{
	struct expbus *bus;
	struct expbus_producer *p;
	struct expbus_consumer *c;
	struct expbus_subscribe_options o = {.batch_size = 4,
					     .max_delay_us = 5000};

	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	cr_assert_eq(expbus_producer_attach(bus, stream, SCHEMA, NULL, &p), 0,
		     "%s", expbus_last_error(bus));
	cr_assert_eq(expbus_subscribe(bus, stream, &o, &c), 0, "%s",
		     expbus_last_error(bus));
	write_records(p, 7, 10, 0);
	cr_assert_eq(read_records(c, 10, 5000, NULL), 10,
		     "the broker stopped serving others");
	expbus_consumer_close(c);
	expbus_producer_close(p);
	expbus_free(bus);
}

Test(broker, records_arrive_as_columns_with_their_header)
{
	struct expbus *bus;
	struct expbus_producer *p;
	struct expbus_consumer *c;
	struct expbus_subscribe_options o = {.batch_size = 4,
					     .max_delay_us = 20000};
	const struct expbus_batch *b;
	struct expbus_column obs, action, seq, game, source, turn;
	uint32_t id = 0;
	int got = 0;

	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	cr_assert_eq(expbus_producer_attach(bus, "s", SCHEMA, NULL, &p), 0,
		     "%s", expbus_last_error(bus));
	cr_assert_eq(expbus_subscribe(bus, "s", &o, &c), 0, "%s",
		     expbus_last_error(bus));
	cr_assert_str_eq(expbus_consumer_schema(c), "obs f32[4]; action i32");
	write_records(p, 3, 10, 0);
	while (got < 10) {
		cr_assert_eq(expbus_next_batch(c, 2000, &b), 0, "batch %d",
			     got);
		cr_assert_eq(expbus_batch_column(c, b, "obs", &obs), 0);
		cr_assert_eq(expbus_batch_column(c, b, "action", &action), 0);
		cr_assert_eq(expbus_batch_column(c, b, "seq", &seq), 0);
		cr_assert_eq(expbus_batch_column(c, b, "game", &game), 0);
		cr_assert_eq(expbus_batch_column(c, b, "source", &source), 0);
		cr_assert_eq(expbus_batch_column(c, b, "turn", &turn), 0);
		cr_assert_eq(expbus_batch_column(c, b, "nope", &turn), -ENOENT);
		cr_assert_eq(obs.dtype, EXPBUS_DTYPE_F32);
		cr_assert_eq(obs.ndim, 1);
		cr_assert_eq(obs.shape[0], 4);
		cr_assert_eq(obs.elem_size, 16);
		cr_assert_eq((uintptr_t)obs.data % 64, 0, "64-byte aligned");
		cr_assert_eq(b->count, got < 8 ? 4u : 2u);
		cr_assert_eq(b->flush_reason, got < 8 ? EXPBUS_FLUSH_FULL
						      : EXPBUS_FLUSH_TIMEOUT);
		for (uint32_t i = 0; i < b->count; i++, got++) {
			cr_assert_eq(((const float *)obs.data)[i * 4],
				     (float)got);
			cr_assert_eq(((const int32_t *)action.data)[i], got);
			cr_assert_eq(((const uint64_t *)seq.data)[i],
				     (uint64_t)got);
			cr_assert_eq(((const uint32_t *)game.data)[i], 3);
			cr_assert_eq(((const uint32_t *)turn.data)[i],
				     (uint32_t)got);
			/* One producer: one id, never 0. */
			if (!id)
				id = ((const uint32_t *)source.data)[i];
			cr_assert_neq(id, 0u);
			cr_assert_eq(((const uint32_t *)source.data)[i], id);
		}
		cr_assert_eq(expbus_release(c, b), 0);
		cr_assert_eq(expbus_release(c, b), -EINVAL, "released twice");
	}
	expbus_consumer_close(c);
	expbus_producer_close(p);
	expbus_free(bus);
}

Test(broker, a_consumer_describes_its_columns_before_any_batch)
{
	struct expbus *bus;
	struct expbus_producer *p;
	struct expbus_consumer *c;
	struct expbus_subscribe_options o = {.batch_size = 4};
	struct expbus_column col;
	int n, obs = -1;

	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	cr_assert_eq(expbus_producer_attach(bus, "s", SCHEMA, NULL, &p), 0,
		     "%s", expbus_last_error(bus));
	cr_assert_eq(expbus_subscribe(bus, "s", &o, &c), 0, "%s",
		     expbus_last_error(bus));
	n = expbus_consumer_columns(c);
	cr_assert_gt(n, 2, "the header columns and the fields");
	for (int i = 0; i < n; i++)
		if (!strcmp(expbus_consumer_column_name(c, i), "obs"))
			obs = i;
	cr_assert_geq(obs, 0);
	cr_assert_eq(expbus_consumer_column_at(c, obs, &col), 0);
	cr_assert_eq(col.dtype, EXPBUS_DTYPE_F32);
	cr_assert_eq(col.ndim, 1);
	cr_assert_eq(col.shape[0], 4);
	cr_assert_eq(col.elem_size, 16);
	cr_assert_eq(col.count, 0);
	cr_assert_null(col.data);
	cr_assert_eq(expbus_consumer_column_at(c, n, &col), -ENOENT);
	cr_assert_eq(expbus_consumer_column_at(c, -1, &col), -ENOENT);
	expbus_consumer_close(c);
	expbus_producer_close(p);
	expbus_free(bus);
}

Test(broker, a_schema_mismatch_names_the_field_that_differs)
{
	struct expbus *bus;
	struct expbus_producer *p, *q;

	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	cr_assert_eq(expbus_producer_attach(bus, "s", SCHEMA, NULL, &p), 0);
	int rc = expbus_producer_attach(bus, "s", "obs f32[5]; action i32",
					NULL, &q);
	cr_assert_eq(rc, -EINVAL, "%d %s", rc, expbus_last_error(bus));
	cr_assert(strstr(expbus_last_error(bus), "'obs'"), "%s",
		  expbus_last_error(bus));
	cr_assert(strstr(expbus_last_error(bus), "f32[5]"), "%s",
		  expbus_last_error(bus));
	cr_assert_eq(expbus_producer_attach(bus, "s", "obs f32[4]", NULL, &q),
		     -EINVAL);
	cr_assert(strstr(expbus_last_error(bus), "action"), "%s",
		  expbus_last_error(bus));
	cr_assert_eq(expbus_producer_attach(bus, "s", "obs f33", NULL, &q),
		     -EINVAL);
	cr_assert(strstr(expbus_last_error(bus), "f33"), "%s",
		  expbus_last_error(bus));
	expbus_producer_close(p);
	expbus_free(bus);
}

Test(broker, subscribing_to_an_unknown_stream_says_how_streams_appear)
{
	struct expbus *bus;
	struct expbus_consumer *c;

	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	cr_assert_eq(expbus_subscribe(bus, "nothing", NULL, &c), -ENOENT);
	cr_assert(strstr(expbus_last_error(bus), "nothing"));
	cr_assert(strstr(expbus_last_error(bus), "producer"));
	expbus_free(bus);
}

Test(broker, bad_subscription_options_are_refused_with_a_reason)
{
	struct expbus *bus;
	struct expbus_producer *p;
	struct expbus_consumer *c;
	struct expbus_subscribe_options o = {.batch_slots = 3};

	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	cr_assert_eq(expbus_producer_attach(bus, "s", SCHEMA, NULL, &p), 0);
	cr_assert_eq(expbus_subscribe(bus, "s", &o, &c), -EINVAL);
	cr_assert(strstr(expbus_last_error(bus), "batch_slots"));
	o.batch_slots = 0;
	o.batch_size = 65536;
	o.policy = EXPBUS_LOSSY;
	/* 8 slots x 65536 records x 60 bytes fits; a huge record would not */
	cr_assert_eq(expbus_subscribe(bus, "s", &o, &c), 0, "%s",
		     expbus_last_error(bus));
	expbus_consumer_close(c);
	expbus_producer_close(p);
	expbus_free(bus);
}

Test(broker, no_broker_gives_an_error_naming_the_socket)
{
	struct expbus *bus;
	struct expbus_producer *p;

	cr_assert_eq(expbus_new("/nonexistent/dir/x.sock", &bus), 0);
	cr_assert_lt(expbus_producer_attach(bus, "s", SCHEMA, NULL, &p), 0);
	cr_assert(strstr(expbus_last_error(bus), "/nonexistent/dir/x.sock"));
	expbus_free(bus);
}

Test(broker, a_lone_record_is_flushed_within_its_max_delay)
{
	struct expbus *bus;
	struct expbus_producer *p;
	struct expbus_consumer *c;
	struct expbus_subscribe_options o = {.batch_size = 32,
					     .max_delay_us = 50000};
	const struct expbus_batch *b;
	struct expbus_column ts;
	uint64_t waited;

	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	cr_assert_eq(expbus_producer_attach(bus, "s", SCHEMA, NULL, &p), 0);
	cr_assert_eq(expbus_subscribe(bus, "s", &o, &c), 0);
	write_records(p, 1, 1, 0);
	/* Generous bound: the point is that it comes without more records
	 * and not before its delay, not how fast a loaded CI machine is. */
	cr_assert_eq(expbus_next_batch(c, 5000, &b), 0,
		     "the lone record "
		     "never came");
	cr_assert_eq(b->count, 1);
	cr_assert_eq(b->flush_reason, EXPBUS_FLUSH_TIMEOUT);
	cr_assert_eq(expbus_batch_column(c, b, "timestamp", &ts), 0);
	waited = b->publish_ns - ((const uint64_t *)ts.data)[0];
	cr_assert_geq(waited, 40000000u,
		      "published after %llu ns, before its "
		      "delay",
		      (unsigned long long)waited);
	expbus_release(c, b);
	expbus_consumer_close(c);
	expbus_producer_close(p);
	expbus_free(bus);
}

Test(broker, records_with_no_subscriber_are_consumed_not_blocking)
{
	struct expbus *bus;
	struct expbus_producer *p;
	struct expbus_producer_options po = {.ring_slots = 16};

	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	cr_assert_eq(expbus_producer_attach(bus, "s", SCHEMA, &po, &p), 0);
	/* Ten rings' worth: would block for ever if nobody took them. */
	write_records(p, 1, 160, 0);
	expbus_producer_close(p);
	expbus_free(bus);
}

/* ---- hostile peers ---- */

static void expect_disconnect(int sock, const char *reason)
{
	cr_assert(raw_hung_up(sock, 5000), "the offender was not disconnected");
	cr_assert(broker_log_has(&tb, reason, 5000), "log lacks '%s'", reason);
	close(sock);
	still_serves("after");
}

Test(broker, garbage_is_disconnected_with_a_reason)
{
	int s = raw_connect(&tb);
	char junk[100];

	memset(junk, 0x5a, sizeof(junk));
	cr_assert_eq(send(s, junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
	expect_disconnect(s, "bad magic");
}

Test(broker, a_truncated_message_is_disconnected)
{
	int s = raw_connect(&tb);
	struct msg_stats m;

	proto_header(&m.h, MSG_STATS, sizeof(m));
	cr_assert_eq(send(s, &m, 10, 0), 10);
	expect_disconnect(s, "shorter than a header");
}

Test(broker, a_length_that_lies_is_disconnected)
{
	int s = raw_connect(&tb);
	struct msg_attach m;

	memset(&m, 0, sizeof(m));
	strcpy(m.stream, "s");
	m.schema_len = 500; /* but no schema follows */
	proto_header(&m.h, MSG_ATTACH, sizeof(m));
	cr_assert_eq(send(s, &m, sizeof(m), 0), (ssize_t)sizeof(m));
	expect_disconnect(s, "does not match");
}

Test(broker, an_oversized_message_is_disconnected)
{
	int s = raw_connect(&tb);
	int sz = 1 << 20;
	static char big[200000];

	setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	memset(big, 1, sizeof(big));
	cr_assert_eq(send(s, big, sizeof(big), 0), (ssize_t)sizeof(big));
	expect_disconnect(s, "larger than");
}

Test(broker, another_protocol_version_is_refused_and_disconnected)
{
	int s = raw_connect(&tb);
	struct msg_stats m;
	char buf[2048];
	ssize_t n;

	proto_header(&m.h, MSG_STATS, sizeof(m));
	m.h.version = 99;
	cr_assert_eq(send(s, &m, sizeof(m), 0), (ssize_t)sizeof(m));
	n = recv(s, buf, sizeof(buf) - 1, 0);
	cr_assert_gt(n, (ssize_t)sizeof(struct msg_error), "an error reply");
	buf[n] = '\0';
	cr_assert(strstr(buf + sizeof(struct msg_error), "version 99"), "%s",
		  buf + sizeof(struct msg_error));
	expect_disconnect(s, "version 99");
}

Test(broker, unexpected_fds_are_closed_and_the_sender_disconnected)
{
	int s = raw_connect(&tb), fds[2];
	struct msg_stats m;

	cr_assert_eq(pipe(fds), 0);
	proto_header(&m.h, MSG_STATS, sizeof(m));
	cr_assert_eq(proto_send(s, &m, sizeof(m), fds, 2), 0);
	expect_disconnect(s, "unexpected file descriptor");
	/* The broker closed its copies: our write end sees no reader...
	 * only once we close ours too; the read end sees EOF once the
	 * broker's write-end copy is gone. */
	close(fds[1]);
	char c;
	cr_assert_eq(read(fds[0], &c, 1), 0, "the broker kept a received fd");
	close(fds[0]);
}

Test(broker, a_second_request_on_a_producer_connection_is_a_violation)
{
	int s = raw_connect(&tb), fds[3] = {-1, -1, -1};
	struct msg_ok_attach ok;
	struct msg_stats m;

	cr_assert_eq(raw_attach(s, "s", SCHEMA, 0, &ok, fds), MSG_OK_ATTACH);
	proto_header(&m.h, MSG_STATS, sizeof(m));
	cr_assert_eq(proto_send(s, &m, sizeof(m), NULL, 0), 0);
	expect_disconnect(s, "already has a role");
	for (int i = 0; i < 3; i++)
		close(fds[i]);
}

static struct producer_ring *map_ring(int fd, const struct msg_ok_attach *ok)
{
	void *p = mmap(NULL, ok->segment_size, PROT_READ | PROT_WRITE,
		       MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	return p;
}

Test(broker, a_producer_tail_more_than_a_ring_ahead_is_a_violation)
{
	int s = raw_connect(&tb), fds[3] = {-1, -1, -1};
	struct msg_ok_attach ok;
	struct producer_ring *r;

	cr_assert_eq(raw_attach(s, "s", SCHEMA, 16, &ok, fds), MSG_OK_ATTACH);
	r = map_ring(fds[0], &ok);
	atomic_store(&r->prod.pos, 16 + 5);
	uint64_t one = 1;
	cr_assert_eq(write(fds[1], &one, 8), 8); /* wake the broker */
	expect_disconnect(s, "is impossible");
	for (int i = 0; i < 3; i++)
		close(fds[i]);
}

Test(broker, a_producer_tail_behind_its_head_is_a_violation)
{
	int s = raw_connect(&tb), fds[3] = {-1, -1, -1};
	struct msg_ok_attach ok;
	struct producer_ring *r;
	uint64_t one = 1;

	cr_assert_eq(raw_attach(s, "s", SCHEMA, 16, &ok, fds), MSG_OK_ATTACH);
	r = map_ring(fds[0], &ok);
	atomic_store(&r->prod.pos, 10); /* ten zeroed records, fine */
	cr_assert_eq(write(fds[1], &one, 8), 8);
	for (int i = 0; i < 500 && atomic_load(&r->cons.pos) != 10; i++)
		usleep(10000);
	cr_assert_eq(atomic_load(&r->cons.pos), 10, "the broker took them");
	atomic_store(&r->prod.pos, 5);
	cr_assert_eq(write(fds[1], &one, 8), 8);
	expect_disconnect(s, "is impossible");
	for (int i = 0; i < 3; i++)
		close(fds[i]);
}

Test(broker, a_release_beyond_what_was_delivered_is_a_violation)
{
	struct expbus *bus;
	struct expbus_producer *p;
	int s, fds[4] = {-1, -1, -1, -1};
	struct msg_ok_subscribe ok;
	struct release_page *rel;

	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	cr_assert_eq(expbus_producer_attach(bus, "s", SCHEMA, NULL, &p), 0);
	s = raw_connect(&tb);
	cr_assert_eq(raw_subscribe(s, "s", 4, 1000, &ok, fds),
		     MSG_OK_SUBSCRIBE);
	rel = mmap(NULL, RELEASE_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		   fds[1], 0);
	cr_assert_neq(rel, MAP_FAILED);
	write_records(p, 1, 8, 0);
	atomic_store(&rel->cons.pos, 1000);
	expect_disconnect(s, "release counter");
	expbus_producer_close(p);
	expbus_free(bus);
	for (int i = 0; i < 4; i++)
		close(fds[i]);
}

Test(broker, a_subscriber_cannot_write_its_batch_ring)
{
	struct expbus *bus;
	struct expbus_producer *p;
	int s, fds[4] = {-1, -1, -1, -1};
	struct msg_ok_subscribe ok;
	void *ro;

	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	cr_assert_eq(expbus_producer_attach(bus, "s", SCHEMA, NULL, &p), 0);
	s = raw_connect(&tb);
	cr_assert_eq(raw_subscribe(s, "s", 4, 1000, &ok, fds),
		     MSG_OK_SUBSCRIBE);
	cr_assert_eq(mmap(NULL, ok.segment_size, PROT_READ | PROT_WRITE,
			  MAP_SHARED, fds[0], 0),
		     MAP_FAILED, "writable mmap");
	cr_assert_eq(errno, EPERM);
	ro = mmap(NULL, ok.segment_size, PROT_READ, MAP_SHARED, fds[0], 0);
	cr_assert_neq(ro, MAP_FAILED, "read-only mmap");
	cr_assert_neq(mprotect(ro, 4096, PROT_READ | PROT_WRITE), 0,
		      "mprotect");
	cr_assert_eq(pwrite(fds[0], "x", 1, 0), -1, "write(2)");
	cr_assert_eq(errno, EPERM);
	cr_assert_neq(ftruncate(fds[0], 0), 0, "ftruncate shrink");
	cr_assert_neq(ftruncate(fds[0], (off_t)ok.segment_size * 2), 0,
		      "ftruncate grow");
	munmap(ro, ok.segment_size);
	for (int i = 0; i < 4; i++)
		close(fds[i]);
	close(s);
	expbus_producer_close(p);
	expbus_free(bus);
}

/* ---- peers that die ---- */

struct progress {
	_Atomic uint64_t intent;    /* about to commit up to here */
	_Atomic uint64_t committed; /* committed up to here */
	_Atomic int ready;
};

static struct progress *shared_progress(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(p, MAP_FAILED);
	return p;
}

/* A game process: writes records of games game0..game0+games-1 until
 * killed or count is reached, publishing its progress. */
static pid_t spawn_producer(struct progress *pr, uint32_t game0, uint32_t games,
			    uint64_t count)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
	struct expbus *bus;
	struct expbus_producer *p;
	if (expbus_new(tb.socket, &bus) < 0 ||
	    expbus_producer_attach(bus, "s", SCHEMA, NULL, &p) < 0)
		_exit(3);
	atomic_store(&pr->ready, 1);
	for (uint64_t i = 0; i < count; i++) {
		struct expbus_record_header h = {
		    .game = game0 + (uint32_t)(i / 10 % games),
		    .turn = (uint32_t)i};
		struct rec r = {{(float)i, 0, 0, 0}, (int32_t)i};
		atomic_store(&pr->intent, i + 1);
		if (expbus_write(p, &h, &r, sizeof(r), -1) < 0)
			_exit(4);
		atomic_store(&pr->committed, i + 1);
	}
	_exit(0);
}

static void wait_ready(struct progress *pr)
{
	for (int i = 0; i < 500 && !atomic_load(&pr->ready); i++)
		usleep(10000);
	cr_assert(atomic_load(&pr->ready), "the producer did not attach");
}

static void wait_back_to(int fds, int maps)
{
	int f = -1, m = -1;

	for (int i = 0; i < 500; i++) {
		f = broker_fd_count(&tb);
		m = broker_map_count(&tb);
		if (f <= fds &&
		    m <= maps) /* a probe may still be open at baseline */
			return;
		usleep(10000);
	}
	cr_assert_fail("broker holds %d fds and %d mappings, had %d and %d", f,
		       m, fds, maps);
}

Test(broker, a_killed_producer_s_committed_records_all_arrive)
{
	struct expbus *bus;
	struct expbus_producer *creator;
	struct expbus_consumer *c;
	struct expbus_subscribe_options o = {.batch_size = 16,
					     .max_delay_us = 5000};
	struct progress *pr = shared_progress();
	const struct expbus_batch *b;
	uint64_t want = 0, got = 0, low, high;
	int fds, maps, quiet = 0;
	pid_t pid;

	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	/* The stream must exist before subscribing; this producer leaves. */
	cr_assert_eq(expbus_producer_attach(bus, "s", SCHEMA, NULL, &creator),
		     0);
	cr_assert_eq(expbus_subscribe(bus, "s", &o, &c), 0);
	expbus_producer_close(creator);
	cr_assert(broker_log_has(&tb, " freed after ", 5000));
	fds = broker_fd_count(&tb);
	maps = broker_map_count(&tb);
	pid = spawn_producer(pr, 0, 1, UINT64_MAX);
	wait_ready(pr);
	/* Read for a while, then kill it mid-stream, then read the rest. */
	while (got < 20000 || quiet < 20) {
		if (got >= 20000 && pid) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			pid = 0;
		}
		if (expbus_next_batch(c, 50, &b) != 0) {
			quiet += pid == 0;
			continue;
		}
		struct expbus_column seq;
		expbus_batch_column(c, b, "seq", &seq);
		for (uint32_t i = 0; i < b->count; i++, want++)
			cr_assert_eq(((const uint64_t *)seq.data)[i], want,
				     "records out of order or lost");
		got += b->count;
		expbus_release(c, b);
	}
	low = atomic_load(&pr->committed);
	high = atomic_load(&pr->intent);
	cr_assert_geq(got, low, "committed %llu, only %llu arrived",
		      (unsigned long long)low, (unsigned long long)got);
	cr_assert_leq(got, high, "more arrived than was written");
	cr_assert(broker_log_has(&tb, "hung up", 1000));
	wait_back_to(fds, maps);
	still_serves("after");
	expbus_consumer_close(c);
	expbus_free(bus);
}

/* A group member that takes batches and never releases them, until killed. */
static pid_t spawn_hoarder(struct progress *pr)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
	struct expbus *bus;
	struct expbus_consumer *c;
	struct expbus_subscribe_options o = {.batch_size = 8,
					     .batch_slots = 2,
					     .max_delay_us = 5000,
					     .group = "g"};
	const struct expbus_batch *b;
	if (expbus_new(tb.socket, &bus) < 0 ||
	    expbus_subscribe(bus, "s", &o, &c) < 0)
		_exit(3);
	atomic_store(&pr->ready, 1);
	for (;;) {
		int err = expbus_next_batch(c, 100, &b);
		if (err == 0)
			atomic_fetch_add(&pr->committed, b->count);
		else if (err != -ETIMEDOUT && err != -EAGAIN)
			_exit(5);
	}
}

Test(broker, a_killed_group_member_s_records_go_to_the_other)
{
	struct expbus *bus;
	struct expbus_producer *p;
	struct expbus_consumer *c;
	struct expbus_subscribe_options o = {
	    .batch_size = 8, .max_delay_us = 5000, .group = "g"};
	struct progress *pr = shared_progress();
	const struct expbus_batch *b;
	const uint32_t games = 16, n = 4000;
	uint32_t next_turn[16] = {0}, got = 0;
	int fds, maps;
	pid_t pid;

	struct expbus_producer_options po = {.ring_slots = 16};

	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	cr_assert_eq(expbus_producer_attach(bus, "s", SCHEMA, &po, &p), 0);
	/* The broker closes its copy of the ring fd just after its reply:
	 * let it, before counting. */
	usleep(100000);
	fds = broker_fd_count(&tb);
	maps = broker_map_count(&tb);
	cr_assert_eq(expbus_subscribe(bus, "s", &o, &c), 0);
	pid = spawn_hoarder(pr);
	wait_ready(pr);
	/* Game g's turns 0, 1, 2, ... in order; the hoarder gets some games
	 * and, holding its batches, soon stops the producer (lossless). */
	for (uint32_t i = 0; i < n; i++) {
		struct expbus_record_header h = {.game = i % games,
						 .turn = i / games};
		struct rec r = {{0}, (int32_t)i};
		int err;
		while ((err = expbus_write(p, &h, &r, sizeof(r), 10)) ==
		       -ETIMEDOUT) {
			/* Back-pressure: drain ours, and once the hoarder
			 * holds a full ring, kill it. */
			while (expbus_next_batch(c, 0, &b) == 0) {
				struct expbus_column game, turn;
				expbus_batch_column(c, b, "game", &game);
				expbus_batch_column(c, b, "turn", &turn);
				for (uint32_t k = 0; k < b->count; k++, got++) {
					uint32_t g =
					    ((const uint32_t *)game.data)[k];
					cr_assert_eq(
					    ((const uint32_t *)turn.data)[k],
					    next_turn[g]++,
					    "game %u out of order", g);
				}
				expbus_release(c, b);
			}
			if (pid && atomic_load(&pr->committed) >= 16) {
				kill(pid, SIGKILL);
				waitpid(pid, NULL, 0);
				pid = 0;
			}
		}
		cr_assert_eq(err, 0);
	}
	cr_assert_eq(pid, 0, "the hoarder never filled its ring");
	while (got < n && expbus_next_batch(c, 2000, &b) == 0) {
		struct expbus_column game, turn;
		expbus_batch_column(c, b, "game", &game);
		expbus_batch_column(c, b, "turn", &turn);
		for (uint32_t k = 0; k < b->count; k++, got++) {
			uint32_t g = ((const uint32_t *)game.data)[k];
			cr_assert_eq(((const uint32_t *)turn.data)[k],
				     next_turn[g]++, "game %u out of order", g);
		}
		expbus_release(c, b);
	}
	cr_assert_eq(got, n, "the surviving member got %u of %u", got, n);
	for (uint32_t g = 0; g < games; g++)
		cr_assert_eq(next_turn[g], n / games);
	expbus_consumer_close(c);
	wait_back_to(fds, maps);
	expbus_producer_close(p);
	expbus_free(bus);
}

/* ---- a broker that restarts ---- */

Test(broker, a_restarted_broker_takes_over_a_producer_ring_without_loss)
{
	struct expbus *bus;
	struct expbus_producer *p;
	struct expbus_consumer *held, *c;
	struct expbus_producer_options po = {.ring_slots = 16};
	struct expbus_subscribe_options ho = {
	    .batch_size = 4, .batch_slots = 2, .max_delay_us = 1000000};
	struct expbus_subscribe_options co = {.batch_size = 8,
					      .max_delay_us = 5000};
	struct expbus_span span;
	const struct expbus_batch *b;
	uint64_t written = 0, want = 8;
	int err;

	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	cr_assert_eq(expbus_producer_attach(bus, "s", SCHEMA, &po, &p), 0);
	cr_assert_eq(expbus_subscribe(bus, "s", &ho, &held), 0);
	/* The held subscriber takes two batches (seq 0-7) and releases
	 * nothing: the broker stops there and the ring fills behind it. */
	while (written < 100) {
		struct expbus_record_header h = {.game = 1,
						 .turn = (uint32_t)written};
		struct rec r = {{0}, (int32_t)written};
		if (expbus_write(p, &h, &r, sizeof(r), 200) < 0)
			break;
		written++;
	}
	cr_assert_eq(written, 8 + 16, "broker took %llu records",
		     (unsigned long long)written);
	cr_assert_eq(expbus_next_batch(held, 2000, &b), 0);
	cr_assert_eq(expbus_next_batch(held, 2000, &b), 0);

	broker_crash_and_restart(&tb);
	/* The producer notices the hang-up and hands its ring over. */
	for (int i = 0; i < 100; i++) {
		usleep(20000);
		err = expbus_reserve(p, 1, 0, &span);
		cr_assert_eq(err, -EAGAIN, "the ring is still full");
		if (broker_log_has(&tb, "resumes a ring", 0))
			break;
	}
	cr_assert(broker_log_has(&tb, "resumes a ring with 16 records", 1000));
	cr_assert_eq(expbus_subscribe(bus, "s", &co, &c), 0, "%s",
		     expbus_last_error(bus));
	/* c is new, not one of the last broker's subscribers coming back
	 * (held never does): the stream stays held, its ring full, for the
	 * whole --resume-hold-ms (5 s by default) since the resume. The
	 * first write waits for that, so it may take well over 5 s. */
	for (int i = 0; i < 10; i++, written++) {
		struct expbus_record_header h = {.game = 1,
						 .turn = (uint32_t)written};
		struct rec r = {{0}, (int32_t)written};
		cr_assert_eq(expbus_write(p, &h, &r, sizeof(r), 20000), 0);
	}
	/* Everything the old broker had not taken, then the new records. */
	while (want < written) {
		struct expbus_column seq, act;
		cr_assert_eq(expbus_next_batch(c, 5000, &b), 0,
			     "waiting for %llu", (unsigned long long)want);
		expbus_batch_column(c, b, "seq", &seq);
		expbus_batch_column(c, b, "action", &act);
		for (uint32_t i = 0; i < b->count; i++, want++) {
			cr_assert_eq(((const uint64_t *)seq.data)[i], want);
			cr_assert_eq(((const int32_t *)act.data)[i],
				     (int32_t)want);
		}
		expbus_release(c, b);
	}
	expbus_consumer_close(c);
	expbus_consumer_close(held);
	expbus_producer_close(p);
	expbus_free(bus);
}

/* ---- who may attach, and what a forked child inherits ---- */

Test(broker, only_the_owner_may_use_the_socket)
{
	struct stat st;

	cr_assert_eq(stat(tb.socket, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
}

Test(broker, every_fd_the_library_holds_is_close_on_exec)
{
	struct expbus *bus;
	struct expbus_producer *p;
	struct expbus_consumer *c;
	DIR *d;
	struct dirent *e;
	int seen = 0;

	cr_assert_eq(expbus_new(tb.socket, &bus), 0);
	cr_assert_eq(expbus_producer_attach(bus, "s", SCHEMA, NULL, &p), 0);
	cr_assert_eq(expbus_subscribe(bus, "s", NULL, &c), 0);
	d = opendir("/proc/self/fd");
	cr_assert_not_null(d);
	while ((e = readdir(d))) {
		char path[64], target[256];
		ssize_t n;
		int fd = atoi(e->d_name);

		if (e->d_name[0] == '.' || fd == dirfd(d))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (!strstr(target, "memfd:expbus") &&
		    !strstr(target, "[eventfd]"))
			continue;
		seen++;
		cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC,
			  "%s (fd %d) leaks into "
			  "exec'd children",
			  target, fd);
	}
	closedir(d);
	cr_assert_geq(seen, 5, "ring, eventfds: found %d", seen);
	expbus_consumer_close(c);
	expbus_producer_close(p);
	expbus_free(bus);
}
