/* heap.c — the bridge's malloc settings. Each batch it sends is a buffer
 * of up to megabytes, and a subscription retains them (sent or not) up to
 * --retention-bytes, 64 MiB by default: the heap grows by that much under
 * load, and the first fill of every 4 KiB page is a page fault (about
 * 15 us each on the virtual machines we measured: 18,000 of them, a fifth
 * of the bridge's CPU, in a 1.6 GB run of 16 KiB records). So: freed
 * buffers stay for reuse (no mmap per buffer, no trimming); every thread
 * allocates from the one brk heap, which grows by the retention at a time
 * (address space only), and that range is given transparent huge pages
 * (madvise: one fault per 2 MiB where the kernel allows them). */
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bridge.h"

#define HUGE_PAGE ((uintptr_t)2 << 20)
#define PAD_MAX	  ((size_t)1 << 30)

void heap_tune(size_t retention_bytes)
{
	size_t pad = retention_bytes + (16u << 20);
	uintptr_t lo, hi;
	void *grow;

	(void)mallopt(M_MMAP_THRESHOLD, 32 << 20);
	(void)mallopt(M_TRIM_THRESHOLD, 256 << 20);
	/* One arena: the pump threads' buffers come from the heap advised
	 * below, not from per-thread heaps that would fault page by page. */
	(void)mallopt(M_ARENA_MAX, 1);
	(void)mallopt(M_TOP_PAD, (int)(pad < PAD_MAX ? pad : PAD_MAX));
	/* Grow the heap now (by the request plus the pad) and advise what
	 * was added: the top chunk, where the buffers will be cut from. Under
	 * a sanitizer's allocator the break does not move: nothing to do. */
	lo = (uintptr_t)sbrk(0);
	grow = malloc(1u << 20);
	if (grow) /* a use: the compiler would drop an unused malloc/free */
		((volatile char *)grow)[0] = 0;
	free(grow);
	hi = (uintptr_t)sbrk(0);
	if (lo == (uintptr_t)-1 || hi == (uintptr_t)-1)
		return;
	lo = (lo + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
	hi &= ~(HUGE_PAGE - 1);
	if (hi > lo) /* may fail (no THP in this kernel): 4 KiB pages then */
		(void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
}
