/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * nv-p2p.h (mock) - the subset of the NVIDIA peer-to-peer kernel API that
 * kvmem uses, with the same layout and prototypes as the driver's
 * kernel-open/nvidia/nv-p2p.h. Only for KVMEM_GPU=mock builds, where
 * kvmem_p2p_mock.ko provides the symbols backed by host pages.
 */
#ifndef _NV_P2P_H_
#define _NV_P2P_H_

#include <linux/types.h>

enum {
	NVIDIA_P2P_PAGE_SIZE_4KB = 0,
	NVIDIA_P2P_PAGE_SIZE_64KB,
	NVIDIA_P2P_PAGE_SIZE_128KB,
	NVIDIA_P2P_PAGE_SIZE_COUNT
};

typedef struct nvidia_p2p_page {
	uint64_t physical_address;
	union nvidia_p2p_request_registers {
		struct {
			uint32_t wreqmb_h;
			uint32_t rreqmb_h;
			uint32_t rreqmb_0;
			uint32_t reserved[3];
		} fermi;
	} registers;
} nvidia_p2p_page_t;

#define NVIDIA_P2P_PAGE_TABLE_VERSION	0x00010002
#define NVIDIA_P2P_PAGE_TABLE_VERSION_COMPATIBLE(p) \
	((((p)->version) & 0xffff0000) == \
	 (NVIDIA_P2P_PAGE_TABLE_VERSION & 0xffff0000))

typedef struct nvidia_p2p_page_table {
	uint32_t version;
	uint32_t page_size;	/* NVIDIA_P2P_PAGE_SIZE_* */
	struct nvidia_p2p_page **pages;
	uint32_t entries;
	uint8_t *gpu_uuid;
} nvidia_p2p_page_table_t;

int nvidia_p2p_get_pages(uint64_t p2p_token, uint32_t va_space,
			 uint64_t virtual_address, uint64_t length,
			 struct nvidia_p2p_page_table **page_table,
			 void (*free_callback)(void *data), void *data);
int nvidia_p2p_put_pages(uint64_t p2p_token, uint32_t va_space,
			 uint64_t virtual_address,
			 struct nvidia_p2p_page_table *page_table);
int nvidia_p2p_free_page_table(struct nvidia_p2p_page_table *page_table);

#endif /* _NV_P2P_H_ */
