/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * kvmem.h - ABI of /dev/kvmem, shared by kvmem.ko, libkv and the tests.
 * Documented in docs/uapi.md.
 *
 * Every ioctl argument starts with a __u32 size holding sizeof() of the
 * caller's struct. The kernel accepts any size from the first published
 * size (KVMEM_*_SIZE_VER0) up to a page: a shorter struct is -EINVAL, one
 * above a page -E2BIG, a longer one must have only zero bytes beyond what
 * the kernel knows (-E2BIG otherwise), and fields the caller does not know
 * are zero-filled on input and not written on output. Only _IOC_TYPE and
 * _IOC_NR of the command are matched, so a caller built against a newer
 * header still reaches the same handler.
 */
#ifndef _UAPI_KVMEM_H
#define _UAPI_KVMEM_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define KVMEM_ABI_VERSION	1
#define KVMEM_DEV_PATH		"/dev/kvmem"
#define KVMEM_IOC_MAGIC		0xB7

/* kvmem_info.features */
#define KVMEM_FEAT_HOST		(1ULL << 0)	/* KVMEM_IOC_ALLOC */
#define KVMEM_FEAT_PIN_USER	(1ULL << 1)	/* KVMEM_IOC_PIN_USER */
#define KVMEM_FEAT_GPU		(1ULL << 2)	/* KVMEM_IOC_PIN_GPU works */
#define KVMEM_FEAT_GPU_MOCK	(1ULL << 3)	/* ... against the test mock */
#define KVMEM_FEAT_DMABUF	(1ULL << 4)	/* KVMEM_IOC_EXPORT_DMABUF */

struct kvmem_info {
	__u32 size;		/* in: sizeof(struct kvmem_info) */
	__u32 abi_version;	/* out: KVMEM_ABI_VERSION */
	__u64 features;		/* out: KVMEM_FEAT_* */
	__u64 page_size;	/* out: PAGE_SIZE */
	__u64 huge_page_size;	/* out: size of a huge page (2 MiB on x86) */
	__u64 gpu_page_size;	/* out: alignment of KVMEM_IOC_PIN_GPU (64 KiB) */
	__u64 max_region_bytes;	/* out: largest region */
	__u64 cap_bytes;	/* out: module-wide cap on pinned bytes */
	__u64 pinned_bytes;	/* out: pinned now, all processes */
	__u32 max_regions;	/* out: regions per open file */
	__u32 reserved;
};
#define KVMEM_INFO_SIZE_VER0	72

/* kvmem_alloc.flags */
#define KVMEM_ALLOC_HUGE_PREFERRED	(1U << 0) /* huge pages first (default) */
#define KVMEM_ALLOC_HUGE_REQUIRED	(1U << 1) /* only huge pages, or -ENOMEM */
#define KVMEM_ALLOC_ZERO		(1U << 2) /* zeroed (always done) */
#define KVMEM_ALLOC_NO_HUGE		(1U << 3) /* base pages only */
#define KVMEM_ALLOC_FLAGS		0xfU

#define KVMEM_NUMA_ANY		(-1)

struct kvmem_alloc {
	__u32 size;		/* in: sizeof(struct kvmem_alloc) */
	__u32 flags;		/* in: KVMEM_ALLOC_* */
	__u64 length;		/* in: bytes, a multiple of the page size */
	__s32 numa_node;	/* in: node, or KVMEM_NUMA_ANY */
	__u32 reserved;		/* in: 0 */
	__u64 handle;		/* out: region handle (> 0) */
	__u64 mmap_offset;	/* out: handle << PAGE_SHIFT, for mmap() */
};
#define KVMEM_ALLOC_SIZE_VER0	40

/* kvmem_pin_user.flags */
#define KVMEM_PIN_WRITE		(1U << 0)	/* device may write the pages */
#define KVMEM_PIN_FLAGS		0x1U

struct kvmem_pin_user {
	__u32 size;		/* in */
	__u32 flags;		/* in: KVMEM_PIN_* */
	__u64 addr;		/* in: page-aligned user address */
	__u64 length;		/* in: bytes, a multiple of the page size */
	__u64 handle;		/* out */
};
#define KVMEM_PIN_USER_SIZE_VER0	32

struct kvmem_pin_gpu {
	__u32 size;		/* in */
	__u32 flags;		/* in: 0 */
	__u64 addr;		/* in: GPU virtual address, gpu_page_size aligned */
	__u64 length;		/* in: bytes, a multiple of gpu_page_size */
	__u64 p2p_token;	/* in: legacy nvidia_p2p token, normally 0 */
	__u32 va_space;		/* in: legacy nvidia_p2p va_space, normally 0 */
	__u32 reserved;		/* in: 0 */
	__u64 handle;		/* out */
	__u64 mmap_offset;	/* out */
};
#define KVMEM_PIN_GPU_SIZE_VER0	56

/* kvmem_query.kind */
#define KVMEM_KIND_HOST		1
#define KVMEM_KIND_USER		2
#define KVMEM_KIND_GPU		3

/* kvmem_query.state */
#define KVMEM_STATE_VALID	(1U << 0)	/* memory is usable */
#define KVMEM_STATE_MAPPABLE	(1U << 1)	/* mmap() supported */

struct kvmem_query {
	__u32 size;		/* in */
	__u32 reserved;		/* in: 0 */
	__u64 handle;		/* in */
	__u64 length;		/* out: bytes */
	__u32 kind;		/* out: KVMEM_KIND_* */
	__u32 state;		/* out: KVMEM_STATE_* */
	__u64 pages;		/* out: base pages */
	__u64 huge_pages;	/* out: of which in huge pages (2 MiB each) */
	__s32 numa_node;	/* out: node of every page, -1 if mixed/unknown */
	__u32 mapped;		/* out: live mappings (VMAs) */
	__u32 dmabufs;		/* out: live dma-buf exports */
	__u32 reserved2;
	__u64 mmap_offset;	/* out */
};
#define KVMEM_QUERY_SIZE_VER0	72

struct kvmem_export {
	__u32 size;		/* in */
	__u32 flags;		/* in: 0 (fd: O_CLOEXEC, O_RDONLY for a read-only pin) */
	__u64 handle;		/* in */
	__s32 fd;		/* out: dma-buf file descriptor */
	__u32 reserved;
};
#define KVMEM_EXPORT_SIZE_VER0	24

struct kvmem_free {
	__u32 size;		/* in */
	__u32 flags;		/* in: 0 */
	__u64 handle;		/* in */
};
#define KVMEM_FREE_SIZE_VER0	16

#define KVMEM_IOC_INFO		_IOWR(KVMEM_IOC_MAGIC, 0x00, struct kvmem_info)
#define KVMEM_IOC_ALLOC		_IOWR(KVMEM_IOC_MAGIC, 0x01, struct kvmem_alloc)
#define KVMEM_IOC_PIN_USER	_IOWR(KVMEM_IOC_MAGIC, 0x02, struct kvmem_pin_user)
#define KVMEM_IOC_PIN_GPU	_IOWR(KVMEM_IOC_MAGIC, 0x03, struct kvmem_pin_gpu)
#define KVMEM_IOC_QUERY		_IOWR(KVMEM_IOC_MAGIC, 0x04, struct kvmem_query)
#define KVMEM_IOC_EXPORT_DMABUF	_IOWR(KVMEM_IOC_MAGIC, 0x05, struct kvmem_export)
#define KVMEM_IOC_FREE		_IOW(KVMEM_IOC_MAGIC, 0x06, struct kvmem_free)

#endif /* _UAPI_KVMEM_H */
