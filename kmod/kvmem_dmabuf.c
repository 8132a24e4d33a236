// SPDX-License-Identifier: GPL-2.0
/*
 * kvmem_dmabuf.c - export a host or user-pinned region as a dma-buf, so
 * another driver (a NIC, a GPU, udmabuf-style consumers) can import it.
 * The dma-buf holds a region reference until its last fd and mapping go.
 * A user pin without KVMEM_PIN_WRITE exports read-only: an O_RDONLY fd,
 * and map_dma_buf only for DMA_TO_DEVICE.
 * GPU regions are not exported: their pages belong to the NVIDIA driver
 * and may be revoked at any time (the free callback); use nvidia-peermem.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/dma-buf.h>
#include <linux/dma-mapping.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>

#include "kvmem.h"

static struct sg_table *kvmem_map_dma_buf(struct dma_buf_attachment *at,
					  enum dma_data_direction dir)
{
	struct kvmem_region *r = at->dmabuf->priv;
	struct sg_table *sgt;
	int ret;

	/* A read-only pin: the importer's device may only read. */
	if (!r->writable && dir != DMA_TO_DEVICE)
		return ERR_PTR(-EACCES);
	sgt = kzalloc(sizeof(*sgt), GFP_KERNEL);
	if (!sgt)
		return ERR_PTR(-ENOMEM);
	ret = sg_alloc_table_from_pages(sgt, r->pages, r->npages, 0, r->length,
					GFP_KERNEL);
	if (ret)
		goto err_free;
	ret = dma_map_sgtable(at->dev, sgt, dir, 0);
	if (ret)
		goto err_table;
	return sgt;

err_table:
	sg_free_table(sgt);
err_free:
	kfree(sgt);
	return ERR_PTR(ret);
}

static void kvmem_unmap_dma_buf(struct dma_buf_attachment *at,
				struct sg_table *sgt,
				enum dma_data_direction dir)
{
	dma_unmap_sgtable(at->dev, sgt, dir, 0);
	sg_free_table(sgt);
	kfree(sgt);
}

static void kvmem_dmabuf_release(struct dma_buf *buf)
{
	struct kvmem_region *r = buf->priv;

	atomic_dec(&r->dmabufs);
	atomic64_dec(&kvmem_stats.dmabufs);
	kvmem_region_put(r);
}

/* dma-buf core has checked vm_pgoff + length against the buffer size. */
static int kvmem_dmabuf_mmap(struct dma_buf *buf, struct vm_area_struct *vma)
{
	struct kvmem_region *r = buf->priv;

	if (r->kind != KVMEM_KIND_HOST)
		return -ENODEV;
	if (!(vma->vm_flags & VM_MAYSHARE))	/* MAP_SHARED, maybe read-only */
		return -EINVAL;
	vma->vm_pgoff += r->window;
	return kvmem_region_mmap(r, vma);
}

static const struct dma_buf_ops kvmem_dmabuf_ops = {
	.map_dma_buf = kvmem_map_dma_buf,
	.unmap_dma_buf = kvmem_unmap_dma_buf,
	.release = kvmem_dmabuf_release,
	.mmap = kvmem_dmabuf_mmap,
};

/* Returns a dma-buf holding its own reference on r, or ERR_PTR. */
struct dma_buf *kvmem_dmabuf_export(struct kvmem_region *r)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp);
	struct dma_buf *buf;

	if (r->kind == KVMEM_KIND_GPU)
		return ERR_PTR(-EOPNOTSUPP);

	exp.ops = &kvmem_dmabuf_ops;
	exp.size = r->length;
	/* the fd's access mode says what importers may do */
	exp.flags = (r->writable ? O_RDWR : O_RDONLY) | O_CLOEXEC;
	exp.priv = r;

	kvmem_region_get(r);
	buf = dma_buf_export(&exp);
	if (IS_ERR(buf)) {
		kvmem_region_put(r);
		return buf;
	}
	atomic_inc(&r->dmabufs);
	atomic64_inc(&kvmem_stats.dmabufs);
	return buf;
}
