/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kvmem_compat.h - the one place where kernel API differences live.
 * Built and tested against 6.1 (Debian 12) and 6.12 (bookworm-backports)
 * in the VM suite; 6.3 to 6.8 are refused (kvmem_zap_copied_vma()).
 */
#ifndef KVMEM_COMPAT_H
#define KVMEM_COMPAT_H

#include <linux/version.h>
#include <linux/mm.h>

/* vm_flags became read-only with helpers in 6.3. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 3, 0)
static inline void kvmem_vm_flags_set(struct vm_area_struct *vma,
				      unsigned long flags)
{
	vma->vm_flags |= flags;
}

static inline void kvmem_vm_flags_clear(struct vm_area_struct *vma,
					unsigned long flags)
{
	vma->vm_flags &= ~flags;
}
#else
#define kvmem_vm_flags_set(vma, f)	vm_flags_set(vma, f)
#define kvmem_vm_flags_clear(vma, f)	vm_flags_clear(vma, f)
#endif

/* DMA_BUF symbols moved into a namespace in 5.16; string form in 6.13. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0)
#define KVMEM_IMPORT_NS_DMA_BUF()	MODULE_IMPORT_NS("DMA_BUF")
#else
#define KVMEM_IMPORT_NS_DMA_BUF()	MODULE_IMPORT_NS(DMA_BUF)
#endif

/*
 * io_uring before 6.5 refuses fixed buffers in a file-backed VMA that is
 * neither shmem nor hugetlbfs (io_pin_pages: -EOPNOTSUPP), which is every
 * device mapping. 6.5 dropped that check when GUP itself learnt to refuse
 * long-term pins of file pages that need writeback (ours never do). On
 * older kernels a host region's VMA is detached from /dev/kvmem's file at
 * mmap time, as /dev/zero swaps in a shmem file: the VMA keeps the region
 * alive through its own reference, needs nothing from the file, and its
 * fault path never reaches the file (see kvmem_region.c).
 * Caveat: mmap_region() in these kernels fput()s vma->vm_file if the maple
 * tree preallocation fails after ->mmap; that GFP_KERNEL allocation of a
 * few nodes only fails for an OOM-killed task.
 */
#define KVMEM_DETACH_VM_FILE	(LINUX_VERSION_CODE < KERNEL_VERSION(6, 5, 0))

/*
 * Drop the page table entries fork copied into a child's VMA before its
 * ->open ran (see kvmem_vma_make_dead()). zap_page_range() went away in
 * 6.3; from 6.9 ->open runs before the copy and VM_WIPEONFORK prevents it,
 * so there is nothing to zap. 6.3 to 6.8 are not supported.
 */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 3, 0)
static inline void kvmem_zap_copied_vma(struct vm_area_struct *vma)
{
	zap_page_range(vma, vma->vm_start, vma->vm_end - vma->vm_start);
}
#elif LINUX_VERSION_CODE >= KERNEL_VERSION(6, 9, 0)
static inline void kvmem_zap_copied_vma(struct vm_area_struct *vma)
{
}
#else
#error "kvmem: kernels 6.3 to 6.8 are not supported (fork copies VMAs before ->open)"
#endif

/* device_type.devnode takes a const device since 6.2. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 2, 0)
#define KVMEM_DEVNODE_CONST
#else
#define KVMEM_DEVNODE_CONST const
#endif

/* 2 MiB on x86-64 whether or not THP is configured. */
#define KVMEM_HUGE_SHIFT	21
#define KVMEM_HUGE_ORDER	(KVMEM_HUGE_SHIFT - PAGE_SHIFT)
#define KVMEM_HUGE_PAGES	(1UL << KVMEM_HUGE_ORDER)

#endif /* KVMEM_COMPAT_H */
