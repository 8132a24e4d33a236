// SPDX-License-Identifier: GPL-2.0
/*
 * kvmem_p2p_mock.c - TEST ONLY. Provides nvidia_p2p_get_pages(),
 * nvidia_p2p_put_pages() and nvidia_p2p_free_page_table() backed by host
 * pages, so kvmem's GPU path runs in a VM without a GPU. Never part of a
 * production build (KVMEM_GPU=mock only).
 *
 * Each get_pages() call gets fresh zeroed 64 KiB host chunks standing in
 * for GPU memory at [virtual_address, +length). Writing a GPU virtual
 * address (or 0 for all) to /sys/module/kvmem_p2p_mock/parameters/free_va
 * fires the matching free callbacks, as cudaFree() would.
 * /sys/module/kvmem_p2p_mock/parameters/live counts page tables held.
 * Fault injection, for the client's error paths:
 *  - put_fail=N: the next N nvidia_p2p_put_pages() calls fail with -EINVAL
 *    and leave the table live, as when the driver has a free callback
 *    pending (or lost); free_va fires it later, or never.
 *  - cb_in_get=N: the next N nvidia_p2p_get_pages() calls fire the free
 *    callback before they return (cudaFree racing the pin).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/gfp.h>
#include <linux/io.h>
#include <linux/mm.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>

#include "nv-p2p.h"

#define MOCK_CHUNK_ORDER	(16 - PAGE_SHIFT)	/* 64 KiB */
#define MOCK_CHUNK		(1UL << 16)

struct mock_table {
	struct nvidia_p2p_page_table pt;
	struct list_head node;		/* on mock_tables while live */
	bool listed;
	u64 va;
	u64 length;
	void (*cb)(void *data);
	void *data;
	struct page **chunks;
	struct nvidia_p2p_page *entries;
	struct nvidia_p2p_page **entry_ptrs;
};

static DEFINE_MUTEX(mock_lock);		/* protects mock_tables, listed */
static LIST_HEAD(mock_tables);
static atomic_t mock_live = ATOMIC_INIT(0);

static int put_fail;
module_param(put_fail, int, 0644);
MODULE_PARM_DESC(put_fail, "Fail the next N nvidia_p2p_put_pages() calls");

static int cb_in_get;
module_param(cb_in_get, int, 0644);
MODULE_PARM_DESC(cb_in_get,
		 "Fire the free callback inside the next N nvidia_p2p_get_pages()");

/* Consume one of the N injected faults counted by *param. */
static bool mock_inject(int *param)
{
	bool hit;

	mutex_lock(&mock_lock);
	hit = READ_ONCE(*param) > 0;
	if (hit)
		WRITE_ONCE(*param, *param - 1);
	mutex_unlock(&mock_lock);
	return hit;
}

static void mock_table_free(struct mock_table *t)
{
	u32 i;

	for (i = 0; i < t->pt.entries; i++)
		if (t->chunks[i])
			__free_pages(t->chunks[i], MOCK_CHUNK_ORDER);
	kvfree(t->chunks);
	kvfree(t->entries);
	kvfree(t->entry_ptrs);
	kfree(t);
	atomic_dec(&mock_live);
}

int nvidia_p2p_get_pages(uint64_t p2p_token, uint32_t va_space,
			 uint64_t virtual_address, uint64_t length,
			 struct nvidia_p2p_page_table **page_table,
			 void (*free_callback)(void *data), void *data)
{
	struct mock_table *t;
	u64 n, i;

	if (!page_table || !free_callback || !virtual_address || !length ||
	    !IS_ALIGNED(virtual_address | length, MOCK_CHUNK))
		return -EINVAL;
	n = length / MOCK_CHUNK;
	if (n > U32_MAX)
		return -EINVAL;

	t = kzalloc(sizeof(*t), GFP_KERNEL);
	if (!t)
		return -ENOMEM;
	atomic_inc(&mock_live);
	t->chunks = kvcalloc(n, sizeof(*t->chunks), GFP_KERNEL);
	t->entries = kvcalloc(n, sizeof(*t->entries), GFP_KERNEL);
	t->entry_ptrs = kvcalloc(n, sizeof(*t->entry_ptrs), GFP_KERNEL);
	t->pt.entries = n;
	if (!t->chunks || !t->entries || !t->entry_ptrs)
		goto err_free;
	for (i = 0; i < n; i++) {
		t->chunks[i] = alloc_pages(GFP_KERNEL | __GFP_ZERO |
					   __GFP_NOWARN, MOCK_CHUNK_ORDER);
		if (!t->chunks[i])
			goto err_free;
		t->entries[i].physical_address = page_to_phys(t->chunks[i]);
		t->entry_ptrs[i] = &t->entries[i];
	}
	t->pt.version = NVIDIA_P2P_PAGE_TABLE_VERSION;
	t->pt.page_size = NVIDIA_P2P_PAGE_SIZE_64KB;
	t->pt.pages = t->entry_ptrs;
	t->va = virtual_address;
	t->length = length;
	t->cb = free_callback;
	t->data = data;

	*page_table = &t->pt;
	if (mock_inject(&cb_in_get)) {
		/* Freed before get_pages returns: the client gets the table
		 * and the callback, and must give the table back. */
		pr_info("firing free callback inside get_pages for 0x%llx\n",
			virtual_address);
		free_callback(data);
		return 0;
	}
	mutex_lock(&mock_lock);
	list_add_tail(&t->node, &mock_tables);
	t->listed = true;
	mutex_unlock(&mock_lock);
	return 0;

err_free:
	mock_table_free(t);
	return -ENOMEM;
}
EXPORT_SYMBOL_GPL(nvidia_p2p_get_pages);

/* -EINVAL if the table is unknown or its free callback already fired. */
int nvidia_p2p_put_pages(uint64_t p2p_token, uint32_t va_space,
			 uint64_t virtual_address,
			 struct nvidia_p2p_page_table *page_table)
{
	struct mock_table *t = container_of(page_table, struct mock_table, pt);
	bool listed;

	if (mock_inject(&put_fail)) {
		pr_info("failing put_pages for 0x%llx as asked\n", virtual_address);
		return -EINVAL;
	}
	mutex_lock(&mock_lock);
	listed = t->listed && t->va == virtual_address;
	if (listed) {
		list_del(&t->node);
		t->listed = false;
	}
	mutex_unlock(&mock_lock);
	if (!listed)
		return -EINVAL;
	mock_table_free(t);
	return 0;
}
EXPORT_SYMBOL_GPL(nvidia_p2p_put_pages);

/* After the free callback: the client gives the table back. */
int nvidia_p2p_free_page_table(struct nvidia_p2p_page_table *page_table)
{
	struct mock_table *t = container_of(page_table, struct mock_table, pt);

	mutex_lock(&mock_lock);
	if (t->listed) {
		list_del(&t->node);
		t->listed = false;
	}
	mutex_unlock(&mock_lock);
	mock_table_free(t);
	return 0;
}
EXPORT_SYMBOL_GPL(nvidia_p2p_free_page_table);

/* "cudaFree": fire the callbacks of tables at va (0: all). */
static int mock_free_va_set(const char *val, const struct kernel_param *kp)
{
	struct mock_table *t, *tmp;
	LIST_HEAD(fire);
	u64 va;
	int ret;

	ret = kstrtoull(val, 0, &va);
	if (ret)
		return ret;
	mutex_lock(&mock_lock);
	list_for_each_entry_safe(t, tmp, &mock_tables, node) {
		if (va && t->va != va)
			continue;
		list_move_tail(&t->node, &fire);
		t->listed = false;
	}
	mutex_unlock(&mock_lock);

	/* Callbacks run unlocked; each one frees its table. */
	list_for_each_entry_safe(t, tmp, &fire, node) {
		list_del_init(&t->node);
		pr_info("firing free callback for 0x%llx (+%llu)\n", t->va,
			t->length);
		t->cb(t->data);
	}
	return 0;
}

static const struct kernel_param_ops mock_free_va_ops = {
	.set = mock_free_va_set,
};
module_param_cb(free_va, &mock_free_va_ops, NULL, 0200);
MODULE_PARM_DESC(free_va, "Write a GPU VA (0: all) to fire its free callback");

static int mock_live_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%d\n", atomic_read(&mock_live));
}

static const struct kernel_param_ops mock_live_ops = {
	.get = mock_live_get,
};
module_param_cb(live, &mock_live_ops, NULL, 0444);
MODULE_PARM_DESC(live, "Page tables currently held");

static int __init mock_init(void)
{
	pr_info("TEST ONLY nvidia_p2p mock loaded\n");
	return 0;
}

static void __exit mock_exit(void)
{
	WARN(atomic_read(&mock_live), "%d page tables leaked\n",
	     atomic_read(&mock_live));
}

module_init(mock_init);
module_exit(mock_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("TEST ONLY: nvidia_p2p_* backed by host pages");
