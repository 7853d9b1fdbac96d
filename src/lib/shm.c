/* shm.c — memfd segments: create, fallocate, seal, check, map.
 * The broker creates and seals every segment; clients check before mapping. */
#include "shm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef EXPBUS_SHARED_MAPPINGS
/* ThreadSanitizer builds only (-Dtsan_shared_maps=true): every mapping of
 * one segment in this process gets the same address, so that TSan, which
 * tracks addresses, sees the broker's thread and its clients' threads touch
 * the same bytes. This table is the library's only global state, and it
 * exists only in those test builds. */
#include <pthread.h>

struct shared_map {
	dev_t dev;
	ino_t ino;
	void *addr;
	size_t size;
	int refs;
};
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shared_map shared_maps[4096];

static int shared_find(int fd, size_t size, void **addr)
{
	struct stat st;
	int free_slot = -1, err = 0;

	if (fstat(fd, &st) < 0)
		return -errno;
	pthread_mutex_lock(&shared_lock);
	for (int i = 0; i < 4096; i++) {
		struct shared_map *m = &shared_maps[i];
		if (m->refs && m->dev == st.st_dev && m->ino == st.st_ino) {
			m->refs++;
			*addr = m->addr;
			goto out;
		}
		if (!m->refs && free_slot < 0)
			free_slot = i;
	}
	*addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (*addr == MAP_FAILED)
		*addr = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (*addr == MAP_FAILED || free_slot < 0) {
		err = -ENOMEM;
		goto out;
	}
	shared_maps[free_slot] =
	    (struct shared_map){st.st_dev, st.st_ino, *addr, size, 1};
out:
	pthread_mutex_unlock(&shared_lock);
	return err;
}

static int shared_release(void *addr)
{
	int found = 0;

	pthread_mutex_lock(&shared_lock);
	for (int i = 0; i < 4096; i++) {
		struct shared_map *m = &shared_maps[i];
		if (m->refs && m->addr == addr) {
			found = 1;
			if (--m->refs == 0)
				(void)munmap(m->addr, m->size);
			break;
		}
	}
	pthread_mutex_unlock(&shared_lock);
	return found;
}
#endif

int shm_create(const char *name, size_t size)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int err;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0)
		goto fail;
	/* fallocate returns the error itself on some kernels' tmpfs paths;
	 * posix_fallocate would silently fall back to writing. */
	if (fallocate(fd, 0, 0, (off_t)size) < 0)
		goto fail;
	return fd;
fail:
	err = -errno;
	(void)close(fd);
	return err;
}

int shm_seal(int fd, int seals)
{
	if (fcntl(fd, F_ADD_SEALS, seals) < 0)
		return -errno;
	return 0;
}

int shm_map(int fd, size_t size, int writable, void **addr)
{
	int prot = PROT_READ | (writable ? PROT_WRITE : 0);
	void *p;

#ifdef EXPBUS_SHARED_MAPPINGS
	return shared_find(fd, size, addr);
#endif
	p = mmap(NULL, size, prot, MAP_SHARED | MAP_POPULATE, fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	if (madvise(p, size, MADV_DONTFORK) < 0) {
		int err = -errno;
		(void)munmap(p, size);
		return err;
	}
	*addr = p;
	return 0;
}

int shm_check(int fd, size_t min_size, size_t max_size, int seals,
	      size_t *size_out)
{
	struct stat st;
	int have;

	if (fstat(fd, &st) < 0)
		return -EBADF;
	if (!S_ISREG(st.st_mode))
		return -EBADF;
	if (st.st_size < 0 || (size_t)st.st_size < min_size ||
	    (size_t)st.st_size > max_size)
		return -EINVAL;
	have = fcntl(fd, F_GET_SEALS);
	if (have < 0)
		return -EBADF; /* not a memfd: cannot be sealed */
	if ((have & seals) != seals)
		return -EPERM;
	if (size_out)
		*size_out = (size_t)st.st_size;
	return 0;
}

void shm_unmap(void *addr, size_t size)
{
#ifdef EXPBUS_SHARED_MAPPINGS
	if (addr && shared_release(addr))
		return;
#endif
	if (addr)
		(void)munmap(addr, size);
}

void shm_touch(void *addr, size_t size, int write)
{
	/* volatile: the compiler must make each access, though it sees no
	 * use of the byte read and no change from the byte stored. 4096
	 * divides every page size Linux uses, so no page is skipped. */
	volatile uint8_t *p = addr, *end = p + size;

	while (p < end) {
		uint8_t v = *p;

		if (write)
			*p = v;
		p = (volatile uint8_t *)(((uintptr_t)p | 4095) + 1);
	}
}
