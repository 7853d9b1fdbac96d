/* shm.h — memfd segments: the one place that creates, fallocates, seals,
 * checks and maps shared memory. Nobody else calls memfd_create or mmap. */
#ifndef EXPBUS_SHM_H
#define EXPBUS_SHM_H

#include <fcntl.h>
#include <stddef.h>

/* Seal sets of the four kinds of segment (docs/protocol.md). */
#define SHM_SEALS_SHARED (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
#define SHM_SEALS_READONLY                                                     \
	(F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL)

/* Creates a CLOEXEC, sealable memfd of size bytes, allocated up front so
 * that a full tmpfs or a memory cgroup limit fails here (-ENOSPC, -ENOMEM)
 * rather than as SIGBUS later. Returns the fd or a negative errno. */
int shm_create(const char *name, size_t size);

/* Applies seals. Returns 0 or a negative errno. */
int shm_seal(int fd, int seals);

/* Maps fd (size bytes) shared, writable or read-only, MADV_DONTFORK so a
 * forked child does not inherit it. Returns 0 and *addr, or -errno. */
int shm_map(int fd, size_t size, int writable, void **addr);

/* Checks a received fd before mapping: a memfd of exactly size bytes (or,
 * if size is 0, between min_size and max_size, stored in *size_out) that
 * carries at least the seals in seals. Returns 0, -EBADF, -EINVAL (wrong
 * size) or -EPERM (seals missing). */
int shm_check(int fd, size_t min_size, size_t max_size, int seals,
	      size_t *size_out);

void shm_unmap(void *addr, size_t size);

/* Touches every page of [addr, addr + size) in this process: reads a byte
 * of each, or with write, stores back the byte it read (the contents do
 * not change; only for bytes no other process writes meanwhile). A mapped
 * segment is populated (MAP_POPULATE), but where the hypervisor shadows
 * the guest's page tables each process still takes a fault, invisible to
 * the guest, on its first access to each page (1-6 us a read, 4-11 us a
 * write on the PVM guest of perf/README.md). Done at attach, that cost
 * stays out of the first lap of records. */
void shm_touch(void *addr, size_t size, int write);

#endif
