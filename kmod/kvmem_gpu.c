// SPDX-License-Identifier: GPL-2.0
/*
 * kvmem_gpu.c - GPU memory pinned through the NVIDIA peer-to-peer API, as
 * gdrdrv does: nvidia_p2p_get_pages() with a free callback, mapped into
 * user space by PFN (no struct pages behind BAR memory).
 *
 * Built with KVMEM_GPU=nvidia (the real driver) or KVMEM_GPU=mock (the
 * test module kvmem_p2p_mock.ko); otherwise every entry point reports the
 * provider missing and KVMEM_IOC_PIN_GPU returns -EOPNOTSUPP.
 *
 * Ownership of the page table: exactly one of two paths releases it.
 *  - kvmem_gpu_release() (last region reference) finds the region valid,
 *    takes the table and calls nvidia_p2p_put_pages(); if that fails
 *    because the callback is already running, it waits for the callback
 *    and then calls nvidia_p2p_free_page_table() itself;
 *  - the free callback (the GPU memory was freed, cudaFree) marks it
 *    invalid, zaps every user mapping and calls
 *    nvidia_p2p_free_page_table().
 * If the callback fires before kvmem_gpu_pin() has stored the table, the
 * pin fails with -ENXIO and gives the table back itself.
 * If nvidia_p2p_put_pages() fails and the callback has not started, no
 * callback may ever come (gdrdrv logs such a failure and moves on): the
 * release does not wait for one. It leaves the region struct and the table
 * to the callback ("orphan", with a module reference so its code stays),
 * which frees both if it ever fires; until then they are leaked, and the
 * kernel log says so.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/mm.h>
#include <linux/module.h>
#include <linux/slab.h>

#include "kvmem.h"

#if defined(KVMEM_GPU_MOCK) || defined(KVMEM_GPU_NVIDIA)
#include "nv-p2p.h"

bool kvmem_gpu_available(void)
{
	return true;
}

bool kvmem_gpu_is_mock(void)
{
	return IS_ENABLED(KVMEM_GPU_MOCK);
}

static unsigned long kvmem_gpu_page_bytes(u32 type)
{
	switch (type) {
	case NVIDIA_P2P_PAGE_SIZE_4KB:
		return 4UL << 10;
	case NVIDIA_P2P_PAGE_SIZE_64KB:
		return 64UL << 10;
	case NVIDIA_P2P_PAGE_SIZE_128KB:
		return 128UL << 10;
	default:
		return 0;
	}
}

/*
 * Called by the NVIDIA driver when the GPU memory is freed under us. Runs
 * with the driver's own locks held: it must not take kvmem_file.lock or
 * kvmem_regions_lock (ioctl paths hold those around calls into the
 * driver, which would deadlock), nor sleep for long. gpu_lock is safe: it
 * is never held across a call into the driver.
 */
static void kvmem_gpu_free_callback(void *data)
{
	struct kvmem_region *r = data;
	struct nvidia_p2p_page_table *pt;

	mutex_lock(&r->gpu_lock);
	if (r->gpu_orphan) {
		/* Released already, after a failed put_pages: finish it. */
		pt = r->pt;
		mutex_unlock(&r->gpu_lock);
		pr_info("pid %d handle %u: late free callback after a failed put_pages\n",
			r->pid, r->handle);
		nvidia_p2p_free_page_table(pt);
		kfree(r);
		module_put(THIS_MODULE);
		return;
	}
	r->gpu_cb_seen = true;
	r->gpu_valid = false;
	pt = r->pt;		/* NULL if kvmem_gpu_pin() has not stored it yet */
	r->pt = NULL;
	mutex_unlock(&r->gpu_lock);

	/* Every later access faults, and the fault handler says SIGBUS. */
	unmap_mapping_pages(r->mapping, r->window, r->npages, false);
	atomic64_inc(&kvmem_stats.gpu_invalidations);
	pr_info_ratelimited("pid %d handle %u: GPU memory freed, %d mapping(s) invalidated\n",
			    r->pid, r->handle, atomic_read(&r->mapped));
	if (pt)
		nvidia_p2p_free_page_table(pt);
	complete_all(&r->gpu_cb_done);	/* release and free may both wait */
}

int kvmem_gpu_pin(struct kvmem_region *r, u64 addr, u64 token, u32 va_space)
{
	struct nvidia_p2p_page_table *pt = NULL;
	unsigned long psize;
	int ret;

	r->gpu_addr = addr;
	r->gpu_token = token;
	r->gpu_va_space = va_space;
	ret = nvidia_p2p_get_pages(token, va_space, addr, r->length, &pt,
				   kvmem_gpu_free_callback, r);
	if (ret) {
		pr_info_ratelimited("nvidia_p2p_get_pages(0x%llx, %llu): %d\n",
				    addr, r->length, ret);
		return ret;
	}

	psize = kvmem_gpu_page_bytes(pt->page_size);
	if (!NVIDIA_P2P_PAGE_TABLE_VERSION_COMPATIBLE(pt) || !psize ||
	    (u64)pt->entries * psize < r->length) {
		pr_warn("incompatible p2p page table (version 0x%x, page size %u, %u entries)\n",
			pt->version, pt->page_size, pt->entries);
		ret = -EIO;
	}

	mutex_lock(&r->gpu_lock);
	if (r->gpu_cb_seen) {
		/* Freed under us before we stored pt: the callback could not
		 * give the table back, so we do. */
		ret = -ENXIO;
	} else if (!ret) {
		r->pt = pt;
		r->gpu_page_size = psize;
		r->gpu_valid = true;
	}
	mutex_unlock(&r->gpu_lock);

	if (ret == -ENXIO)
		nvidia_p2p_free_page_table(pt);
	else if (ret)
		nvidia_p2p_put_pages(token, va_space, addr, pt);
	return ret;
}

/*
 * Last reference: no VMA maps the region any more. May run with mmap_lock
 * held (VMA close): never waits for a callback that has not started.
 */
void kvmem_gpu_release(struct kvmem_region *r)
{
	struct nvidia_p2p_page_table *pt = NULL;
	bool valid, cb_seen;
	int ret;

	mutex_lock(&r->gpu_lock);
	valid = r->gpu_valid;
	cb_seen = r->gpu_cb_seen;
	if (valid) {
		r->gpu_valid = false;
		pt = r->pt;
		r->pt = NULL;
	}
	mutex_unlock(&r->gpu_lock);

	if (valid) {
		ret = nvidia_p2p_put_pages(r->gpu_token, r->gpu_va_space,
					   r->gpu_addr, pt);
		if (!ret)
			return;
		mutex_lock(&r->gpu_lock);
		cb_seen = r->gpu_cb_seen;
		if (!cb_seen) {
			/* A callback that comes now frees the table itself. */
			r->pt = pt;
			pt = NULL;
			valid = false;
		}
		mutex_unlock(&r->gpu_lock);
		pr_warn("pid %d handle %u: nvidia_p2p_put_pages: %d; %s\n",
			r->pid, r->handle, ret,
			cb_seen ? "the free callback is running" :
			"the page table is left to a free callback, if one comes");
	}
	/*
	 * The callback has started (it set gpu_cb_seen under gpu_lock) and
	 * finishes without waiting on anything of ours: let it be done with
	 * r before r is freed. If we took pt from under it, the table is
	 * ours to return.
	 */
	if (cb_seen)
		wait_for_completion(&r->gpu_cb_done);
	if (valid)
		nvidia_p2p_free_page_table(pt);
}

/*
 * Free the region struct, the last thing done with it. After a failed
 * put_pages with no callback yet, r and the table are handed to the
 * callback instead (gpu_orphan): it frees both if it ever fires.
 */
void kvmem_gpu_free(struct kvmem_region *r)
{
	mutex_lock(&r->gpu_lock);
	if (r->pt && !r->gpu_cb_seen) {
		r->gpu_orphan = true;
		__module_get(THIS_MODULE);	/* the callback's code */
		mutex_unlock(&r->gpu_lock);
		return;
	}
	mutex_unlock(&r->gpu_lock);
	if (r->gpu_cb_seen)
		wait_for_completion(&r->gpu_cb_done);
	kfree(r);
}

bool kvmem_gpu_valid(struct kvmem_region *r)
{
	return READ_ONCE(r->gpu_valid);
}

static vm_fault_t kvmem_gpu_fault(struct vm_fault *vmf)
{
	struct kvmem_region *r = vmf->vma->vm_private_data;
	u64 off = (u64)(vmf->pgoff - r->window) << PAGE_SHIFT;
	vm_fault_t ret = VM_FAULT_SIGBUS;
	u64 phys;

	/* Held across the insert so the callback cannot zap in between. */
	mutex_lock(&r->gpu_lock);
	if (r->gpu_valid && off < r->length) {
		phys = r->pt->pages[off / r->gpu_page_size]->physical_address +
		       off % r->gpu_page_size;
		ret = vmf_insert_pfn(vmf->vma, vmf->address, phys >> PAGE_SHIFT);
	}
	mutex_unlock(&r->gpu_lock);
	return ret;
}

static void kvmem_gpu_vm_open(struct vm_area_struct *vma)
{
	struct kvmem_region *r = vma->vm_private_data;

	kvmem_region_get(r);
	atomic_inc(&r->mapped);
	atomic64_inc(&kvmem_stats.mappings);
}

static void kvmem_gpu_vm_close(struct vm_area_struct *vma)
{
	struct kvmem_region *r = vma->vm_private_data;

	atomic_dec(&r->mapped);
	atomic64_dec(&kvmem_stats.mappings);
	kvmem_region_put(r);
}

static const struct vm_operations_struct kvmem_gpu_vm_ops = {
	.open = kvmem_gpu_vm_open,
	.close = kvmem_gpu_vm_close,
	.fault = kvmem_gpu_fault,
};

/* Caller set vma->vm_pgoff = r->window; mmap_lock held for write. */
int kvmem_gpu_mmap(struct kvmem_region *r, struct vm_area_struct *vma)
{
	if (!kvmem_gpu_valid(r))
		return -ENXIO;
	kvmem_vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTCOPY |
			   VM_DONTEXPAND | VM_DONTDUMP);
#ifdef KVMEM_GPU_NVIDIA
	/*
	 * BAR1 memory: write-combining asked for, as gdrdrv maps it. But with
	 * PAT, vmf_insert_pfn() (track_pfn_insert()) replaces the cache mode
	 * with the memtype recorded for the range, UC- when nothing reserved
	 * it: these mappings are uncached, not WC (issue 12, defect 10).
	 * gdrdrv gets WC from io_remap_pfn_range() at mmap time, which
	 * reserves the memtype; doing the same here (or reserving WC at pin)
	 * is the fix. Only the real provider is affected: the mock's pages
	 * are RAM.
	 */
	vma->vm_page_prot = pgprot_writecombine(vma->vm_page_prot);
#endif
	vma->vm_ops = &kvmem_gpu_vm_ops;
	vma->vm_private_data = r;
	kvmem_gpu_vm_open(vma);
	return 0;
}

#else /* no GPU provider */

bool kvmem_gpu_available(void)
{
	return false;
}

bool kvmem_gpu_is_mock(void)
{
	return false;
}

int kvmem_gpu_pin(struct kvmem_region *r, u64 addr, u64 token, u32 va_space)
{
	return -EOPNOTSUPP;
}

void kvmem_gpu_release(struct kvmem_region *r)
{
}

void kvmem_gpu_free(struct kvmem_region *r)
{
	kfree(r);
}

bool kvmem_gpu_valid(struct kvmem_region *r)
{
	return false;
}

int kvmem_gpu_mmap(struct kvmem_region *r, struct vm_area_struct *vma)
{
	return -ENXIO;
}

#endif
