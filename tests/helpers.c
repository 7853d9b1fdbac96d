/* helpers.c — running the real broker for tests, and raw protocol peers. */
#include "helpers.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void spawn(struct test_broker *tb, const char *const *extra);

void broker_start(struct test_broker *tb, const char *const *extra)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(tb->dir, sizeof(tb->dir), "%s/expbus-test-XXXXXX",
		 tmp ? tmp : "/tmp");
	cr_assert_not_null(mkdtemp(tb->dir));
	snprintf(tb->socket, sizeof(tb->socket), "%s/s.sock", tb->dir);
	snprintf(tb->log, sizeof(tb->log), "%s/broker.log", tb->dir);
	spawn(tb, extra);
}

void broker_crash_and_restart(struct test_broker *tb)
{
	kill(tb->pid, SIGKILL);
	waitpid(tb->pid, NULL, 0);
	spawn(tb, NULL);
}

static void spawn(struct test_broker *tb, const char *const *extra)
{
	const char *exe = getenv("EXPBUSD");
	char *argv[32];
	int n = 0;

	cr_assert_not_null(exe, "EXPBUSD must name the broker binary");
	argv[n++] = (char *)exe;
	argv[n++] = "--socket";
	argv[n++] = tb->socket;
	argv[n++] = "--log-level";
	argv[n++] = "debug";
	for (int i = 0; extra && extra[i] && n < 30; i++)
		argv[n++] = (char *)extra[i];
	argv[n] = NULL;
	tb->pid = fork();
	cr_assert_geq(tb->pid, 0);
	if (tb->pid == 0) {
		int fd = open(tb->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		dup2(fd, 2);
		execv(exe, argv);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		int s = raw_connect(tb);
		if (s >= 0) {
			close(s);
			return;
		}
		sleep_ms(10);
	}
	cr_assert_fail("the broker did not come up; see %s", tb->log);
}

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[600];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

void broker_stop(struct test_broker *tb)
{
	int status = 0;

	if (tb->pid <= 0)
		return;
	kill(tb->pid, SIGTERM);
	for (int i = 0; i < 500; i++) {
		if (waitpid(tb->pid, &status, WNOHANG) == tb->pid)
			break;
		sleep_ms(10);
		if (i == 499) {
			kill(tb->pid, SIGKILL);
			waitpid(tb->pid, &status, 0);
		}
	}
	tb->pid = 0;
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the broker did not exit 0 on SIGTERM (status %d)", status);
	if (getenv("EXPBUS_KEEP_LOGS")) {
		fprintf(stderr, "broker log kept in %s\n", tb->log);
		return;
	}
	remove_dir(tb->dir);
}

int broker_log_has(const struct test_broker *tb, const char *needle,
		   int timeout_ms)
{
	static char buf[1 << 20];

	for (int waited = 0;; waited += 20) {
		FILE *f = fopen(tb->log, "r");
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
		if (f)
			fclose(f);
		buf[n] = '\0';
		if (strstr(buf, needle))
			return 1;
		if (waited >= timeout_ms)
			return 0;
		sleep_ms(20);
	}
}

static int count_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

int broker_fd_count(const struct test_broker *tb)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)tb->pid);
	return count_entries(path);
}

int broker_map_count(const struct test_broker *tb)
{
	char path[64], line[512];
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)tb->pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	/* Only shared segments: the allocator's own mappings come and go
	 * (more so under AddressSanitizer). */
	while (fgets(line, sizeof(line), f))
		n += strstr(line, "memfd:expbus") != NULL;
	fclose(f);
	return n;
}

int raw_connect(const struct test_broker *tb)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(tb->socket) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, tb->socket);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -errno;
	}
	return fd;
}

static int wait_readable(int fd, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, timeout_ms);
}

static int reply(int sock, void *buf, size_t cap, int *fds, int want)
{
	int got[PROTO_MAX_FDS], n = 0;
	ssize_t len;
	char err[128];

	if (wait_readable(sock, 5000) <= 0)
		return -ETIMEDOUT;
	len = proto_recv(sock, buf, cap, got, &n);
	if (len <= 0)
		return len == 0 ? -EPIPE : (int)len;
	for (int i = 0; i < n && i < want; i++)
		fds[i] = got[i];
	return proto_check(buf, (size_t)len, err, sizeof(err));
}

static int attach(int sock, const char *stream, const char *schema,
		  uint32_t ring_slots, int resume_fd, struct msg_ok_attach *ok,
		  int fds[3])
{
	struct {
		struct msg_attach m;
		char text[4096];
	} req;
	union {
		struct msg_ok_attach ok;
		char buf[2048];
	} rep;
	size_t len = strlen(schema);
	int type;

	memset(&req, 0, sizeof(req));
	snprintf(req.m.stream, sizeof(req.m.stream), "%s", stream);
	req.m.ring_slots = ring_slots;
	req.m.schema_len = (uint32_t)len;
	memcpy(req.text, schema, len);
	req.m.flags = resume_fd >= 0 ? ATTACH_RESUME : 0;
	proto_header(&req.m.h, MSG_ATTACH, sizeof(req.m) + len);
	if (proto_send(sock, &req, sizeof(req.m) + len,
		       resume_fd >= 0 ? &resume_fd : NULL,
		       resume_fd >= 0 ? 1 : 0) < 0)
		return -EPIPE;
	type = reply(sock, &rep, sizeof(rep), fds, 3);
	if (type == MSG_OK_ATTACH && ok)
		*ok = rep.ok;
	return type;
}

int raw_attach(int sock, const char *stream, const char *schema,
	       uint32_t ring_slots, struct msg_ok_attach *ok, int fds[3])
{
	return attach(sock, stream, schema, ring_slots, -1, ok, fds);
}

int raw_resume(int sock, const char *stream, const char *schema, int ring_fd,
	       struct msg_ok_attach *ok, int fds[3])
{
	return attach(sock, stream, schema, 0, ring_fd, ok, fds);
}

int raw_subscribe(int sock, const char *stream, uint32_t batch_size,
		  uint32_t max_delay_us, struct msg_ok_subscribe *ok,
		  int fds[4])
{
	struct msg_subscribe m;
	union {
		struct msg_ok_subscribe ok;
		char buf[16384];
	} rep;
	int type;

	memset(&m, 0, sizeof(m));
	snprintf(m.stream, sizeof(m.stream), "%s", stream);
	m.batch_size = batch_size;
	m.max_delay_us = max_delay_us;
	proto_header(&m.h, MSG_SUBSCRIBE, sizeof(m));
	if (proto_send(sock, &m, sizeof(m), NULL, 0) < 0)
		return -EPIPE;
	type = reply(sock, &rep, sizeof(rep), fds, 4);
	if (type == MSG_OK_SUBSCRIBE && ok)
		*ok = rep.ok;
	return type;
}

int raw_hung_up(int sock, int timeout_ms)
{
	char buf[4096];

	for (int waited = 0; waited <= timeout_ms; waited += 10) {
		struct pollfd p = {.fd = sock, .events = POLLIN | POLLRDHUP};
		if (poll(&p, 1, 10) > 0) {
			ssize_t n = recv(sock, buf, sizeof(buf), MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN))
				return 1;
			/* an error reply may come first: keep reading */
		}
	}
	return 0;
}

uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
