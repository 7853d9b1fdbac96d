/* shm.c — memfd segments: create, fallocate, seal, check, map.
 * The broker creates and seals every segment; clients check before mapping. */
#include "shm.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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
	void *p = mmap(NULL, size, prot, MAP_SHARED, fd, 0);

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
	if (addr)
		(void)munmap(addr, size);
}
