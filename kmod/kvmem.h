/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kvmem.h - internal interfaces between the parts of kvmem.ko.
 *
 * Object model:
 *   struct kvmem_file    one per open() of /dev/kvmem; owns handles.
 *   struct kvmem_region  refcounted; references are held by the handle
 *                        table of its file, by every VMA mapping it and by
 *                        every dma-buf exported from it. Pages are released
 *                        (and the charge undone) when the last one goes.
 *
 * Locks, outermost first:
 *   mmap_lock            core mm: held for write around ->mmap and VMA
 *                        open/close, for read around faults. The last
 *                        region reference can go in VMA close, so a region
 *                        release may run under it and must never wait for
 *                        anything that needs it (see kvmem_gpu_release()).
 *   kvmem_file.lock      handle table of one file (mutex); taken in ->mmap;
 *                        held in release while regions are put. Never held
 *                        across a user copy or GUP (both take mmap_lock).
 *   NVIDIA driver locks  held by the driver around the free callback; the
 *                        release calls nvidia_p2p_put_pages() under the two
 *                        above, so the callback takes neither.
 *   kvmem_region.gpu_lock  validity of a GPU region vs. its fault handler
 *                        and the NVIDIA free callback (mutex; never held
 *                        while calling into the NVIDIA driver, nor across
 *                        unmap_mapping_pages(), which takes i_mmap_rwsem)
 *   kvmem_regions_lock   global list of live regions, for procfs (mutex;
 *                        a leaf: nothing is taken under it)
 * Counters are atomics and need no lock.
 */
#ifndef KVMEM_H
#define KVMEM_H

#include <linux/atomic.h>
#include <linux/completion.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mm_types.h>
#include <linux/mutex.h>
#include <linux/pid.h>

#include "kvmem_compat.h"
#include "uapi/kvmem.h"

/* Handles are < KVMEM_MAX_HANDLE; each owns a window of the file's
 * address_space so a GPU invalidation zaps exactly its own mappings. */
#define KVMEM_MAX_HANDLE	(1U << 20)
#define KVMEM_WINDOW_SHIFT	24	/* pages: 64 GiB per region */
#define KVMEM_GPU_PAGE_SIZE	(64UL << 10)

struct kvmem_file {
	struct mutex lock;		/* protects handles */
	struct idr handles;		/* handle -> struct kvmem_region * */
	struct pid *tgid;		/* owner: only it may use the handles */
	struct mm_struct *mm;		/* charged for pinned pages (mmgrab) */
	/* Private address_space so unmap_mapping_pages() hits only ours. */
	struct address_space mapping;
	unsigned int nregions;		/* caller holds lock */
};

struct nvidia_p2p_page_table;
struct dma_buf;

struct kvmem_region {
	struct kref ref;
	u32 kind;			/* KVMEM_KIND_* */
	u32 handle;
	pid_t pid;			/* owner's tgid, for procfs */
	kuid_t uid;			/* owner's euid: who sees it in procfs */
	u64 length;
	unsigned long npages;		/* base pages */
	unsigned long nhuge;		/* huge pages (host) */
	int numa_node;
	struct page **pages;		/* host and user regions */
	struct mm_struct *mm;		/* charged for npages (mmgrab) */
	bool charged;
	bool writable;			/* devices may write the pages */
	atomic_t mapped;		/* live VMAs */
	atomic_t dmabufs;		/* live dma-buf exports */
	struct list_head node;		/* on kvmem_regions, kvmem_regions_lock */
	/* Owner file's address_space, for GPU zaps. Valid for a GPU region's
	 * life: it cannot be exported, and its VMAs keep vm_file (only host
	 * VMAs are detached), so the file outlives it. */
	struct address_space *mapping;
	pgoff_t window;			/* first pgoff of this region's window */

	/* GPU regions only */
	struct mutex gpu_lock;		/* protects gpu_valid */
	bool gpu_valid;			/* pages still owned by the GPU driver */
	bool gpu_cb_seen;		/* the free callback has started */
	bool gpu_orphan;		/* released; a late callback frees r */
	struct nvidia_p2p_page_table *pt;
	struct completion gpu_cb_done;	/* free callback has finished */
	u64 gpu_addr;
	u64 gpu_token;
	u32 gpu_va_space;
	unsigned long gpu_page_size;
};

/* Statistics; gauges return to zero when nothing is held. */
struct kvmem_stats {
	atomic64_t files;
	atomic64_t regions;
	atomic64_t host_regions;
	atomic64_t user_regions;
	atomic64_t gpu_regions;
	atomic64_t pinned_pages;	/* charged against the module cap */
	atomic64_t huge_pages;
	atomic64_t mappings;
	atomic64_t dmabufs;
	/* monotonic */
	atomic64_t allocs;
	atomic64_t frees;
	atomic64_t gpu_invalidations;
	atomic64_t err_inval;
	atomic64_t err_access;
	atomic64_t err_nomem;
	atomic64_t err_memlock;
	atomic64_t err_cap;
	atomic64_t err_other;
};

extern struct kvmem_stats kvmem_stats;
extern struct mutex kvmem_regions_lock;
extern struct list_head kvmem_regions;
extern unsigned long kvmem_cap_pages(void);
extern unsigned long kvmem_max_region_pages(void);

/* kvmem_region.c */
struct kvmem_region *kvmem_region_new(struct kvmem_file *kf, u32 kind,
				      u64 length);
void kvmem_region_publish(struct kvmem_region *r);
void kvmem_region_get(struct kvmem_region *r);
void kvmem_region_put(struct kvmem_region *r);
int kvmem_charge(struct kvmem_region *r);
int kvmem_host_populate(struct kvmem_region *r, u32 flags, int node);
int kvmem_user_pin(struct kvmem_region *r, unsigned long addr, bool write);
int kvmem_region_mmap(struct kvmem_region *r, struct vm_area_struct *vma);
void kvmem_region_detach_file(struct vm_area_struct *vma);

/* kvmem_gpu.c */
bool kvmem_gpu_available(void);
bool kvmem_gpu_is_mock(void);
int kvmem_gpu_pin(struct kvmem_region *r, u64 addr, u64 token, u32 va_space);
void kvmem_gpu_release(struct kvmem_region *r);
void kvmem_gpu_free(struct kvmem_region *r);
bool kvmem_gpu_valid(struct kvmem_region *r);
int kvmem_gpu_mmap(struct kvmem_region *r, struct vm_area_struct *vma);

/* kvmem_dmabuf.c */
struct dma_buf *kvmem_dmabuf_export(struct kvmem_region *r);

/* kvmem_proc.c */
int kvmem_proc_init(void);
void kvmem_proc_exit(void);

#endif /* KVMEM_H */
