/* test_shm.c — memfd segments: created full size, sealed, checked before
 * mapping; a holder of a read-only segment's fd cannot write it by any
 * route (writable mmap, mprotect, write(2), ftruncate); shm_touch reaches
 * every page of its range and no other, and changes no byte. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/wait.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shm.h"

Test(shm, created_segments_have_their_size_and_seals)
{
	int fd = shm_create("t", 8192);
	size_t size = 0;

	cr_assert_geq(fd, 0);
	cr_assert_eq(shm_check(fd, 8192, 8192, 0, NULL), 0);
	cr_assert_eq(shm_check(fd, 8192, 8192, SHM_SEALS_SHARED, NULL), -EPERM,
		     "not sealed yet");
	cr_assert_eq(shm_seal(fd, SHM_SEALS_SHARED), 0);
	cr_assert_eq(shm_check(fd, 0, 1 << 20, SHM_SEALS_SHARED, &size), 0);
	cr_assert_eq(size, 8192);
	cr_assert_eq(shm_check(fd, 4096, 4096, 0, NULL), -EINVAL, "wrong size");
	cr_assert_neq(ftruncate(fd, 4096), 0, "shrink is sealed");
	cr_assert_neq(ftruncate(fd, 16384), 0, "grow is sealed");
	close(fd);
}

Test(shm, a_pipe_is_not_a_segment)
{
	int p[2];

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(shm_check(p[0], 0, 1 << 20, 0, NULL), -EBADF);
	close(p[0]);
	close(p[1]);
}

Test(shm, the_owner_keeps_writing_after_a_future_write_seal)
{
	int fd = shm_create("t", 4096);
	void *w;

	cr_assert_eq(shm_map(fd, 4096, 1, &w), 0);
	cr_assert_eq(shm_seal(fd, SHM_SEALS_READONLY), 0);
	((volatile char *)w)[0] = 42;
	cr_assert_eq(((volatile char *)w)[0], 42);
	shm_unmap(w, 4096);
	close(fd);
}

Test(shm, a_reader_cannot_write_a_read_only_segment)
{
	int fd = shm_create("t", 4096), rfd;
	void *w, *r;
	char path[64];

	cr_assert_eq(shm_map(fd, 4096, 1, &w), 0);
	cr_assert_eq(shm_seal(fd, SHM_SEALS_READONLY), 0);
	/* The reader gets its own open file description, as a peer would
	 * through SCM_RIGHTS of a dup. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	rfd = open(path, O_RDWR);
	if (rfd < 0)
		rfd = dup(fd);
	cr_assert_geq(rfd, 0);
	cr_assert_eq(shm_map(rfd, 4096, 1, &r), -EPERM, "writable mmap");
	cr_assert_eq(shm_map(rfd, 4096, 0, &r), 0, "read-only mmap works");
	cr_assert_neq(mprotect(r, 4096, PROT_READ | PROT_WRITE), 0, "mprotect");
	cr_assert_eq(write(rfd, "x", 1), -1, "write(2)");
	cr_assert_eq(errno, EPERM);
	cr_assert_eq(pwrite(rfd, "x", 1, 100), -1, "pwrite(2)");
	cr_assert_neq(ftruncate(rfd, 0), 0, "ftruncate");
	cr_assert_neq(ftruncate(rfd, 8192), 0, "ftruncate");
	shm_unmap(r, 4096);
	shm_unmap(w, 4096);
	close(rfd);
	close(fd);
}

Test(shm, mappings_are_not_inherited_by_a_forked_child)
{
	int fd = shm_create("t", 4096);
	void *w;
	pid_t pid;
	int status;

	cr_assert_eq(shm_map(fd, 4096, 1, &w), 0);
	pid = fork();
	if (pid == 0) {
		/* MADV_DONTFORK: the page is not mapped here, so touching it
		 * faults; report what mincore says instead of crashing. */
		unsigned char vec;
		_exit(mincore(w, 4096, &vec) == 0 ? 1 : 0);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the child still had the mapping");
	shm_unmap(w, 4096);
	close(fd);
}

/* Pages of a fresh anonymous mapping are absent until first touched, so
 * mincore shows which pages shm_touch reached. The range starts and ends
 * inside a page: both end pages count, the pages around it do not. */
Test(shm, touch_reaches_every_page_of_its_range_and_no_other)
{
	long page = sysconf(_SC_PAGESIZE);
	unsigned char in[8];
	uint8_t *m = mmap(NULL, 8 * page, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	cr_assert_neq(m, MAP_FAILED);
	cr_assert_eq(mincore(m, 8 * page, in), 0);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(in[i] & 1, 0, "page %d present before", i);
	shm_touch(m + page + 100, 5 * page, 0);
	cr_assert_eq(mincore(m, 8 * page, in), 0);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(in[i] & 1, i >= 1 && i <= 6, "page %d: present %d",
			     i, in[i] & 1);
	munmap(m, 8 * page);
}

Test(shm, a_writing_touch_changes_no_byte)
{
	int fd = shm_create("t", 5 * 4096 + 24);
	uint8_t *m, want[5 * 4096 + 24];
	void *addr;

	cr_assert_geq(fd, 0);
	cr_assert_eq(shm_map(fd, sizeof(want), 1, &addr), 0);
	m = addr;
	for (size_t i = 0; i < sizeof(want); i++)
		want[i] = m[i] = (uint8_t)(i * 7 + 3);
	shm_touch(m + 5, sizeof(want) - 5, 1);
	cr_assert_eq(memcmp(m, want, sizeof(want)), 0);
	shm_unmap(m, sizeof(want));
	close(fd);
}
