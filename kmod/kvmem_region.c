// SPDX-License-Identifier: GPL-2.0
/*
 * kvmem_region.c - region lifetime, memlock accounting, host regions
 * allocated by the module, and pinning of existing user memory.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/file.h>
#include <linux/pagemap.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/nodemask.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#include "kvmem.h"

struct kvmem_region *kvmem_region_new(struct kvmem_file *kf, u32 kind,
				      u64 length)
{
	struct kvmem_region *r;

	r = kzalloc(sizeof(*r), GFP_KERNEL_ACCOUNT);
	if (!r)
		return NULL;
	kref_init(&r->ref);
	r->kind = kind;
	r->length = length;
	r->npages = length >> PAGE_SHIFT;
	r->numa_node = NUMA_NO_NODE;
	r->pid = pid_nr(kf->tgid);
	r->uid = current_euid();
	r->mapping = &kf->mapping;
	r->mm = kf->mm;
	mmgrab(r->mm);
	atomic_set(&r->mapped, 0);
	atomic_set(&r->dmabufs, 0);
	INIT_LIST_HEAD(&r->node);
	mutex_init(&r->gpu_lock);
	init_completion(&r->gpu_cb_done);
	return r;
}

/* Make a fully built region visible in procfs and the gauges. */
void kvmem_region_publish(struct kvmem_region *r)
{
	mutex_lock(&kvmem_regions_lock);
	list_add_tail(&r->node, &kvmem_regions);
	mutex_unlock(&kvmem_regions_lock);

	atomic64_inc(&kvmem_stats.regions);
	atomic64_inc(&kvmem_stats.allocs);
	atomic64_add(r->nhuge, &kvmem_stats.huge_pages);
	switch (r->kind) {
	case KVMEM_KIND_HOST:
		atomic64_inc(&kvmem_stats.host_regions);
		break;
	case KVMEM_KIND_USER:
		atomic64_inc(&kvmem_stats.user_regions);
		break;
	case KVMEM_KIND_GPU:
		atomic64_inc(&kvmem_stats.gpu_regions);
		break;
	}
}

/*
 * Charge r->npages to the owner's pinned_vm (RLIMIT_MEMLOCK unless
 * CAP_IPC_LOCK) and to the module-wide cap. Atomic counters, no mmap_lock:
 * the uncharge runs from VMA close, where mmap_lock is already held.
 * Returns 0, -EPERM (memlock) or -ENOMEM (module cap).
 */
int kvmem_charge(struct kvmem_region *r)
{
	unsigned long limit = rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT;
	s64 pinned;

	if (!capable(CAP_IPC_LOCK)) {
		pinned = atomic64_add_return(r->npages, &r->mm->pinned_vm);
		if (pinned > limit) {
			atomic64_sub(r->npages, &r->mm->pinned_vm);
			atomic64_inc(&kvmem_stats.err_memlock);
			pr_info_ratelimited("pid %d: %lu pages over RLIMIT_MEMLOCK (%lu pages); raise it (ulimit -l) or grant CAP_IPC_LOCK\n",
					    r->pid, r->npages, limit);
			return -EPERM;
		}
	} else {
		atomic64_add(r->npages, &r->mm->pinned_vm);
	}

	pinned = atomic64_add_return(r->npages, &kvmem_stats.pinned_pages);
	if (pinned > kvmem_cap_pages()) {
		atomic64_sub(r->npages, &kvmem_stats.pinned_pages);
		atomic64_sub(r->npages, &r->mm->pinned_vm);
		atomic64_inc(&kvmem_stats.err_cap);
		pr_info_ratelimited("pid %d: %lu pages over the module cap (%lu pages, parameter max_pinned_mb)\n",
				    r->pid, r->npages, kvmem_cap_pages());
		return -ENOMEM;
	}
	r->charged = true;
	return 0;
}

static void kvmem_uncharge(struct kvmem_region *r)
{
	if (!r->charged)
		return;
	atomic64_sub(r->npages, &r->mm->pinned_vm);
	atomic64_sub(r->npages, &kvmem_stats.pinned_pages);
	r->charged = false;
}

static void kvmem_host_free_pages(struct kvmem_region *r)
{
	unsigned long i = 0;

	while (i < r->npages && r->pages[i]) {
		struct page *page = r->pages[i];

		if (PageHead(page)) {
			i += 1UL << compound_order(page);
			__free_pages(page, compound_order(page));
		} else {
			i++;
			__free_page(page);
		}
	}
}

static void kvmem_region_release(struct kref *ref)
{
	struct kvmem_region *r = container_of(ref, struct kvmem_region, ref);
	bool published = !list_empty(&r->node);

	if (published) {
		mutex_lock(&kvmem_regions_lock);
		list_del(&r->node);
		mutex_unlock(&kvmem_regions_lock);
	}

	switch (r->kind) {
	case KVMEM_KIND_HOST:
		if (r->pages)
			kvmem_host_free_pages(r);
		break;
	case KVMEM_KIND_USER:
		/* a device may have written them: tell the owner's mapping */
		if (r->pages)
			unpin_user_pages_dirty_lock(r->pages, r->npages,
						    r->writable);
		break;
	case KVMEM_KIND_GPU:
		kvmem_gpu_release(r);
		break;
	}
	kvfree(r->pages);
	kvmem_uncharge(r);

	if (published) {
		atomic64_dec(&kvmem_stats.regions);
		atomic64_inc(&kvmem_stats.frees);
		atomic64_sub(r->nhuge, &kvmem_stats.huge_pages);
		switch (r->kind) {
		case KVMEM_KIND_HOST:
			atomic64_dec(&kvmem_stats.host_regions);
			break;
		case KVMEM_KIND_USER:
			atomic64_dec(&kvmem_stats.user_regions);
			break;
		case KVMEM_KIND_GPU:
			atomic64_dec(&kvmem_stats.gpu_regions);
			break;
		}
	}
	mmdrop(r->mm);
	if (r->kind == KVMEM_KIND_GPU)
		kvmem_gpu_free(r);	/* may leave r to a late free callback */
	else
		kfree(r);
}

void kvmem_region_get(struct kvmem_region *r)
{
	kref_get(&r->ref);
}

/* May sleep. May be called with mmap_lock held (VMA close). */
void kvmem_region_put(struct kvmem_region *r)
{
	kref_put(&r->ref, kvmem_region_release);
}

/* r->numa_node: the node of every page, or NUMA_NO_NODE if they differ. */
static void kvmem_set_node(struct kvmem_region *r)
{
	unsigned long i;

	r->numa_node = page_to_nid(r->pages[0]);
	for (i = 1; i < r->npages; i++) {
		if (page_to_nid(r->pages[i]) != r->numa_node) {
			r->numa_node = NUMA_NO_NODE;
			break;
		}
	}
}

/*
 * Allocate r->npages zeroed pages, 2 MiB compound pages first. Caller has
 * validated flags, length (huge multiple if HUGE_REQUIRED) and node.
 * Returns 0 or -ENOMEM; on failure the pages allocated so far are left in
 * r->pages for kvmem_region_put() to free.
 *
 * The pages are charged to the caller's memory cgroup (__GFP_ACCOUNT), so
 * a container cannot pin host memory beyond its memory.max (the memlock
 * limit is per process and multiplies with fork). Over the limit, or when
 * memory is short, the request fails with -ENOMEM instead of OOM-killing
 * (__GFP_RETRY_MAYFAIL): a pin is a request that can be refused.
 */
int kvmem_host_populate(struct kvmem_region *r, u32 flags, int node)
{
	gfp_t gfp = GFP_HIGHUSER | __GFP_ZERO | __GFP_NOWARN | __GFP_ACCOUNT |
		    __GFP_RETRY_MAYFAIL;
	bool try_huge = !(flags & KVMEM_ALLOC_NO_HUGE);
	bool need_huge = flags & KVMEM_ALLOC_HUGE_REQUIRED;
	unsigned long i = 0, j;
	struct page *page;

	if (node != NUMA_NO_NODE)
		gfp |= __GFP_THISNODE;

	r->pages = kvcalloc(r->npages, sizeof(*r->pages), GFP_KERNEL_ACCOUNT);
	if (!r->pages)
		return -ENOMEM;
	r->writable = true;

	while (i < r->npages) {
		if (fatal_signal_pending(current))
			return -EINTR;
		cond_resched();
		page = NULL;
		if (try_huge && r->npages - i >= KVMEM_HUGE_PAGES) {
			/* one quick try: fall back to base pages */
			page = alloc_pages_node(node, (gfp & ~__GFP_RETRY_MAYFAIL) |
						__GFP_COMP | __GFP_NORETRY,
						KVMEM_HUGE_ORDER);
			if (page) {
				for (j = 0; j < KVMEM_HUGE_PAGES; j++)
					r->pages[i + j] = page + j;
				i += KVMEM_HUGE_PAGES;
				r->nhuge++;
				continue;
			}
			if (need_huge)
				return -ENOMEM;
			try_huge = false;	/* fragmented: stop trying */
		}
		page = alloc_pages_node(node, gfp, 0);
		if (!page)
			return -ENOMEM;
		r->pages[i++] = page;
	}
	kvmem_set_node(r);
	return 0;
}

/* Pin the caller's [addr, addr + r->length) for DMA. */
int kvmem_user_pin(struct kvmem_region *r, unsigned long addr, bool write)
{
	unsigned int gup = FOLL_LONGTERM | (write ? FOLL_WRITE : 0);
	unsigned long done = 0;
	int ret;

	r->pages = kvcalloc(r->npages, sizeof(*r->pages), GFP_KERNEL_ACCOUNT);
	if (!r->pages)
		return -ENOMEM;

	r->writable = write;
	while (done < r->npages) {
		int chunk = min_t(unsigned long, r->npages - done, 1UL << 16);

		ret = pin_user_pages_fast(addr + (done << PAGE_SHIFT), chunk,
					  gup, r->pages + done);
		if (ret <= 0) {
			ret = ret ? ret : -EFAULT;
			goto err_unpin;
		}
		done += ret;
	}
	kvmem_set_node(r);	/* the owner's pages may lie anywhere */
	return 0;

err_unpin:
	unpin_user_pages(r->pages, done);
	kvfree(r->pages);
	r->pages = NULL;
	return ret;
}

/*
 * A fork child's copy of a host VMA. VM_DONTCOPY keeps host VMAs out of
 * children, but MADV_DOFORK clears it (only VM_IO refuses it, and VM_IO
 * would make GUP, hence ibv_reg_mr and io_uring, refuse the region). So
 * the copy dup_mmap() makes is turned into a dead VMA that maps nothing:
 * every access in the child gets SIGBUS, as after a GPU invalidation. It
 * holds no region reference, only the module one for its ops.
 */
static vm_fault_t kvmem_dead_fault(struct vm_fault *vmf)
{
	return VM_FAULT_SIGBUS;
}

static void kvmem_dead_open(struct vm_area_struct *vma)
{
	__module_get(THIS_MODULE);
	/* forked again after another MADV_DOFORK: still nothing to copy */
	kvmem_vm_flags_set(vma, VM_WIPEONFORK);
}

static void kvmem_dead_close(struct vm_area_struct *vma)
{
	module_put(THIS_MODULE);
}

static const struct vm_operations_struct kvmem_dead_vm_ops = {
	.open = kvmem_dead_open,
	.close = kvmem_dead_close,
	.fault = kvmem_dead_fault,
};

/*
 * Called from ->open on the child's VMA, both mm's mmap_lock held for
 * write. Kernels from 6.9 (and stable trees with commit 35e351780fa9) call
 * ->open before copy_page_range(), which VM_WIPEONFORK on the child then
 * skips; older ones copy the page table first, so it is zapped here.
 */
static void kvmem_vma_make_dead(struct vm_area_struct *vma)
{
	vma->vm_ops = &kvmem_dead_vm_ops;
	vma->vm_private_data = NULL;
	kvmem_vm_flags_set(vma, VM_WIPEONFORK);
	kvmem_zap_copied_vma(vma);
}

/*
 * VMA callbacks for host regions: each VMA holds a region reference, and a
 * module reference, since a detached VMA (KVMEM_DETACH_VM_FILE) no longer
 * pins /dev/kvmem's file and with it the module text these ops live in.
 * A VMA of another mm than the caller's is a fork child's copy (splits and
 * mremap happen in the caller's own mm, mmap of a dma-buf too).
 */
static void kvmem_vm_open(struct vm_area_struct *vma)
{
	struct kvmem_region *r = vma->vm_private_data;

	__module_get(THIS_MODULE);
	if (vma->vm_mm != current->mm) {
		kvmem_vma_make_dead(vma);
		return;
	}
	kvmem_region_get(r);
	atomic_inc(&r->mapped);
	atomic64_inc(&kvmem_stats.mappings);
}

static void kvmem_vm_close(struct vm_area_struct *vma)
{
	struct kvmem_region *r = vma->vm_private_data;

	atomic_dec(&r->mapped);
	atomic64_dec(&kvmem_stats.mappings);
	kvmem_region_put(r);
	module_put(THIS_MODULE);
}

/* Refault after e.g. MADV_DONTNEED: hand back the same page. */
static vm_fault_t kvmem_host_fault(struct vm_fault *vmf)
{
	struct kvmem_region *r = vmf->vma->vm_private_data;
	pgoff_t idx = vmf->pgoff - r->window;

	if (idx >= r->npages)
		return VM_FAULT_SIGBUS;
	vmf->page = r->pages[idx];
	get_page(vmf->page);
	return 0;
}

#if KVMEM_DETACH_VM_FILE
/*
 * Write fault on a refaulted page. Having this hook keeps the fault path
 * away from vma->vm_file (file_update_time()), which is NULL when the VMA
 * was detached. Our pages have no ->mapping, so the page must be returned
 * locked or the core would retry forever.
 *
 * Only for detached VMAs (before 6.5): from 6.5 a page_mkwrite makes
 * vma_needs_dirty_tracking() true, and GUP then refuses FOLL_LONGTERM
 * write pins (ibv_reg_mr, io_uring fixed buffers) of the VMA. There the
 * VMA keeps its file, and without the hook, on a node whose backing device
 * does no writeback (devtmpfs), it needs no dirty tracking at all.
 */
static vm_fault_t kvmem_host_page_mkwrite(struct vm_fault *vmf)
{
	lock_page(vmf->page);
	return VM_FAULT_LOCKED;
}
#endif

static const struct vm_operations_struct kvmem_host_vm_ops = {
	.open = kvmem_vm_open,
	.close = kvmem_vm_close,
	.fault = kvmem_host_fault,
#if KVMEM_DETACH_VM_FILE
	.page_mkwrite = kvmem_host_page_mkwrite,
#endif
};

/* See KVMEM_DETACH_VM_FILE in kvmem_compat.h. mmap_lock held for write. */
void kvmem_region_detach_file(struct vm_area_struct *vma)
{
#if KVMEM_DETACH_VM_FILE
	struct file *file = vma->vm_file;

	vma->vm_file = NULL;
	fput(file);
#endif
}

/*
 * Map a host region with its struct pages (VM_MIXEDMAP, not PFNMAP), so
 * GUP users (ibv_reg_mr, io_uring fixed buffers) accept the range. The
 * caller has checked ownership and VM_MAYSHARE, and set vma->vm_pgoff to
 * r->window plus the first page to map. Called with mmap_lock held for
 * write, from /dev/kvmem's mmap and from the dma-buf's.
 */
int kvmem_region_mmap(struct kvmem_region *r, struct vm_area_struct *vma)
{
	unsigned long first = vma->vm_pgoff - r->window;
	unsigned long n = vma_pages(vma);
	unsigned long left = n;
	int ret;

	if (first > r->npages || n > r->npages - first)
		return -EINVAL;

	kvmem_vm_flags_set(vma, VM_DONTCOPY | VM_DONTEXPAND | VM_DONTDUMP);
	vma->vm_ops = &kvmem_host_vm_ops;
	vma->vm_private_data = r;
	kvmem_vm_open(vma);

	/* Populate now: no faults in the DMA fast path. */
	ret = vm_insert_pages(vma, vma->vm_start, r->pages + first, &left);
	if (ret) {
		/* mmap_region() zaps what was inserted but does not call
		 * ->close on a failed mmap: undo the open here. */
		pr_debug("vm_insert_pages: %d (%lu of %lu left)\n", ret, left, n);
		kvmem_vm_close(vma);
		vma->vm_ops = NULL;
		vma->vm_private_data = NULL;
		return ret;
	}
	return 0;
}
