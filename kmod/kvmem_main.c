// SPDX-License-Identifier: GPL-2.0
/*
 * kvmem_main.c - /dev/kvmem: open/release, ioctl dispatch, mmap, module
 * parameters and init/exit.
 *
 * Every ioctl handler: copy in (size-checked, zero-filled), validate every
 * field, act, copy out; if the copy-out fails the act is undone.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/dma-buf.h>
#include <linux/file.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/nodemask.h>
#include <linux/overflow.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/uidgid.h>

#include "kvmem.h"

static unsigned long max_pinned_mb;
module_param(max_pinned_mb, ulong, 0644);
MODULE_PARM_DESC(max_pinned_mb,
		 "Module-wide cap on pinned memory in MiB (0: half of RAM)");

static unsigned long max_region_mb = 64UL << 10;
module_param(max_region_mb, ulong, 0644);
MODULE_PARM_DESC(max_region_mb, "Largest region in MiB (at most 65536)");

static unsigned int max_regions = 4096;
module_param(max_regions, uint, 0644);
MODULE_PARM_DESC(max_regions, "Regions per open file");

/*
 * The node is owned by root and a group, mode 0660 by default, never
 * world-accessible: any local user who can open it can pin memory. With
 * udev, kmod/60-kvmem.rules sets group "kvmem"; without it (devtmpfs
 * only), these parameters set what devtmpfs creates.
 */
static unsigned int dev_mode = 0660;
module_param_named(mode, dev_mode, uint, 0444);
MODULE_PARM_DESC(mode, "Mode of /dev/kvmem (default 0660; at most 0660)");

static unsigned int dev_group;
module_param_named(group, dev_group, uint, 0444);
MODULE_PARM_DESC(group, "Group id owning /dev/kvmem in devtmpfs (default 0)");

struct kvmem_stats kvmem_stats;
DEFINE_MUTEX(kvmem_regions_lock);
LIST_HEAD(kvmem_regions);

unsigned long kvmem_cap_pages(void)
{
	unsigned long mb = READ_ONCE(max_pinned_mb);

	if (!mb)
		return totalram_pages() / 2;
	return min(mb, ULONG_MAX >> 20) << (20 - PAGE_SHIFT);
}

unsigned long kvmem_max_region_pages(void)
{
	unsigned long mb = min(READ_ONCE(max_region_mb), 64UL << 10);

	return mb << (20 - PAGE_SHIFT);
}

/*
 * Copy an ioctl struct in: the first u32 is the caller's size. Shorter than
 * the first ABI version: -EINVAL; above a page (as openat2 and clone3 say:
 * no struct will ever grow that far, and scanning up to 4 GiB of tail for
 * zeroes is not something to do on behalf of any caller): -E2BIG; longer
 * than ours with non-zero tail: -E2BIG (copy_struct_from_user); our fields
 * the caller lacks are zeroed.
 */
static int kvmem_copy_in(void *karg, size_t ksize, size_t min_size,
			 void __user *uarg, u32 *usize)
{
	int ret;

	if (get_user(*usize, (u32 __user *)uarg))
		return -EFAULT;
	if (*usize < min_size)
		return -EINVAL;
	if (*usize > PAGE_SIZE)
		return -E2BIG;
	ret = copy_struct_from_user(karg, ksize, uarg, *usize);
	if (ret)
		return ret;
	*(u32 *)karg = ksize;
	return 0;
}

static int kvmem_copy_out(void __user *uarg, void *karg, size_t ksize,
			  u32 usize)
{
	*(u32 *)karg = min_t(u32, usize, ksize);
	return copy_to_user(uarg, karg, min_t(u32, usize, ksize)) ? -EFAULT : 0;
}

/* Look a handle up and take a reference. Caller must not hold kf->lock. */
static struct kvmem_region *kvmem_lookup(struct kvmem_file *kf, u64 handle)
{
	struct kvmem_region *r = NULL;

	if (!handle || handle >= KVMEM_MAX_HANDLE)
		return NULL;
	mutex_lock(&kf->lock);
	r = idr_find(&kf->handles, handle);
	if (r)
		kvmem_region_get(r);
	mutex_unlock(&kf->lock);
	return r;
}

/*
 * Reserve a handle for a published region: the slot holds NULL, so no
 * lookup, FREE or mmap of this file can reach the region until
 * kvmem_commit() stores it. Returns the handle or -ENOSPC.
 */
static int kvmem_reserve(struct kvmem_file *kf, struct kvmem_region *r)
{
	int id;

	mutex_lock(&kf->lock);
	if (kf->nregions >= READ_ONCE(max_regions)) {
		id = -ENOSPC;
		goto out;
	}
	/* Cyclic: a stale handle finds nothing instead of a newer region. */
	id = idr_alloc_cyclic(&kf->handles, NULL, 1, KVMEM_MAX_HANDLE,
			      GFP_KERNEL);
	if (id < 0) {
		id = -ENOSPC;
		goto out;
	}
	r->handle = id;
	r->window = (pgoff_t)id << KVMEM_WINDOW_SHIFT;
	kf->nregions++;
out:
	mutex_unlock(&kf->lock);
	return id;
}

/* Make a reserved handle name r; the table takes the caller's reference. */
static void kvmem_commit(struct kvmem_file *kf, struct kvmem_region *r)
{
	mutex_lock(&kf->lock);
	WARN_ON(idr_replace(&kf->handles, r, r->handle) != NULL);
	mutex_unlock(&kf->lock);
}

/* Give back a handle reserved by kvmem_reserve() and never committed. */
static void kvmem_unreserve(struct kvmem_file *kf, u32 id)
{
	mutex_lock(&kf->lock);
	idr_remove(&kf->handles, id);
	kf->nregions--;
	mutex_unlock(&kf->lock);
}

/*
 * Remove a handle; returns the table's reference or NULL. A reserved,
 * uncommitted slot is not a handle yet and stays with its creator.
 */
static struct kvmem_region *kvmem_uninstall(struct kvmem_file *kf, u64 handle)
{
	struct kvmem_region *r = NULL;

	if (!handle || handle >= KVMEM_MAX_HANDLE)
		return NULL;
	mutex_lock(&kf->lock);
	if (idr_find(&kf->handles, handle))
		r = idr_remove(&kf->handles, handle);
	if (r)
		kf->nregions--;
	mutex_unlock(&kf->lock);
	return r;
}

static long kvmem_ioctl_info(struct kvmem_file *kf, void __user *uarg)
{
	struct kvmem_info info;
	u32 usize;
	int ret;

	ret = kvmem_copy_in(&info, sizeof(info), KVMEM_INFO_SIZE_VER0, uarg,
			    &usize);
	if (ret)
		return ret;
	if (info.reserved)
		return -EINVAL;

	info.abi_version = KVMEM_ABI_VERSION;
	info.features = KVMEM_FEAT_HOST | KVMEM_FEAT_PIN_USER | KVMEM_FEAT_DMABUF;
	if (kvmem_gpu_available())
		info.features |= KVMEM_FEAT_GPU;
	if (kvmem_gpu_is_mock())
		info.features |= KVMEM_FEAT_GPU_MOCK;
	info.page_size = PAGE_SIZE;
	info.huge_page_size = 1UL << KVMEM_HUGE_SHIFT;
	info.gpu_page_size = KVMEM_GPU_PAGE_SIZE;
	info.max_region_bytes = (u64)kvmem_max_region_pages() << PAGE_SHIFT;
	info.cap_bytes = (u64)kvmem_cap_pages() << PAGE_SHIFT;
	info.pinned_bytes = (u64)atomic64_read(&kvmem_stats.pinned_pages)
			    << PAGE_SHIFT;
	info.max_regions = READ_ONCE(max_regions);
	return kvmem_copy_out(uarg, &info, sizeof(info), usize);
}

/* Shared length check: non-zero, page multiple, within the limit. */
static int kvmem_check_length(u64 length, u64 align)
{
	if (!length || !IS_ALIGNED(length, align))
		return -EINVAL;
	if (length > (u64)kvmem_max_region_pages() << PAGE_SHIFT)
		return -EOVERFLOW;
	return 0;
}

/*
 * Publish, number and report a new region; undo all on failure. The handle
 * is only reserved while the result is copied out, and committed after:
 * another thread cannot FREE (or map) the region before this ioctl has
 * returned it, so a failed copy-out still owns the one reference it drops.
 */
static long kvmem_finish_new(struct kvmem_file *kf, struct kvmem_region *r,
			     u64 *handle, u64 *offset, void __user *uarg,
			     void *karg, size_t ksize, u32 usize)
{
	int id, ret;

	kvmem_region_publish(r);
	id = kvmem_reserve(kf, r);
	if (id < 0) {
		ret = id;
		goto err_put;
	}
	*handle = id;
	if (offset)
		*offset = (u64)id << PAGE_SHIFT;
	ret = kvmem_copy_out(uarg, karg, ksize, usize);
	if (ret)
		goto err_unreserve;
	kvmem_commit(kf, r);
	return 0;

err_unreserve:
	kvmem_unreserve(kf, id);
err_put:
	kvmem_region_put(r);
	return ret;
}

static long kvmem_ioctl_alloc(struct kvmem_file *kf, void __user *uarg)
{
	struct kvmem_alloc a;
	struct kvmem_region *r;
	u32 usize;
	int node, ret;

	ret = kvmem_copy_in(&a, sizeof(a), KVMEM_ALLOC_SIZE_VER0, uarg, &usize);
	if (ret)
		return ret;
	if ((a.flags & ~KVMEM_ALLOC_FLAGS) || a.reserved)
		return -EINVAL;
	if ((a.flags & KVMEM_ALLOC_NO_HUGE) &&
	    (a.flags & (KVMEM_ALLOC_HUGE_REQUIRED | KVMEM_ALLOC_HUGE_PREFERRED)))
		return -EINVAL;
	ret = kvmem_check_length(a.length, (a.flags & KVMEM_ALLOC_HUGE_REQUIRED) ?
				 1UL << KVMEM_HUGE_SHIFT : PAGE_SIZE);
	if (ret)
		return ret;
	if (a.numa_node == KVMEM_NUMA_ANY)
		node = NUMA_NO_NODE;
	else if (a.numa_node >= 0 && a.numa_node < MAX_NUMNODES &&
		 node_online(a.numa_node))
		node = a.numa_node;
	else
		return -EINVAL;

	r = kvmem_region_new(kf, KVMEM_KIND_HOST, a.length);
	if (!r)
		return -ENOMEM;
	ret = kvmem_charge(r);
	if (ret)
		goto err_put;
	ret = kvmem_host_populate(r, a.flags, node);
	if (ret)
		goto err_put;
	return kvmem_finish_new(kf, r, &a.handle, &a.mmap_offset, uarg, &a,
				sizeof(a), usize);

err_put:
	kvmem_region_put(r);
	return ret;
}

static long kvmem_ioctl_pin_user(struct kvmem_file *kf, void __user *uarg)
{
	struct kvmem_pin_user p;
	struct kvmem_region *r;
	u64 end;
	u32 usize;
	int ret;

	ret = kvmem_copy_in(&p, sizeof(p), KVMEM_PIN_USER_SIZE_VER0, uarg,
			    &usize);
	if (ret)
		return ret;
	if (p.flags & ~KVMEM_PIN_FLAGS)
		return -EINVAL;
	if (!p.addr || !PAGE_ALIGNED(p.addr))
		return -EINVAL;
	ret = kvmem_check_length(p.length, PAGE_SIZE);
	if (ret)
		return ret;
	if (check_add_overflow(p.addr, p.length, &end) || end > TASK_SIZE_MAX)
		return -EOVERFLOW;

	r = kvmem_region_new(kf, KVMEM_KIND_USER, p.length);
	if (!r)
		return -ENOMEM;
	ret = kvmem_charge(r);
	if (ret)
		goto err_put;
	ret = kvmem_user_pin(r, p.addr, p.flags & KVMEM_PIN_WRITE);
	if (ret)
		goto err_put;
	return kvmem_finish_new(kf, r, &p.handle, NULL, uarg, &p, sizeof(p),
				usize);

err_put:
	kvmem_region_put(r);
	return ret;
}

static long kvmem_ioctl_pin_gpu(struct kvmem_file *kf, void __user *uarg)
{
	struct kvmem_pin_gpu g;
	struct kvmem_region *r;
	u64 end;
	u32 usize;
	int ret;

	ret = kvmem_copy_in(&g, sizeof(g), KVMEM_PIN_GPU_SIZE_VER0, uarg,
			    &usize);
	if (ret)
		return ret;
	if (g.flags || g.reserved)
		return -EINVAL;
	if (!kvmem_gpu_available())
		return -EOPNOTSUPP;
	if (!g.addr || !IS_ALIGNED(g.addr, KVMEM_GPU_PAGE_SIZE))
		return -EINVAL;
	ret = kvmem_check_length(g.length, KVMEM_GPU_PAGE_SIZE);
	if (ret)
		return ret;
	if (check_add_overflow(g.addr, g.length, &end))
		return -EOVERFLOW;

	r = kvmem_region_new(kf, KVMEM_KIND_GPU, g.length);
	if (!r)
		return -ENOMEM;
	ret = kvmem_charge(r);
	if (ret)
		goto err_put;
	ret = kvmem_gpu_pin(r, g.addr, g.p2p_token, g.va_space);
	if (ret)
		goto err_put;
	return kvmem_finish_new(kf, r, &g.handle, &g.mmap_offset, uarg, &g,
				sizeof(g), usize);

err_put:
	kvmem_region_put(r);
	return ret;
}

static long kvmem_ioctl_query(struct kvmem_file *kf, void __user *uarg)
{
	struct kvmem_query q;
	struct kvmem_region *r;
	u32 usize;
	int ret;

	ret = kvmem_copy_in(&q, sizeof(q), KVMEM_QUERY_SIZE_VER0, uarg, &usize);
	if (ret)
		return ret;
	if (q.reserved)
		return -EINVAL;
	r = kvmem_lookup(kf, q.handle);
	if (!r)
		return -ENOENT;

	q.length = r->length;
	q.kind = r->kind;
	q.state = 0;
	if (r->kind != KVMEM_KIND_GPU || kvmem_gpu_valid(r))
		q.state |= KVMEM_STATE_VALID;
	if (r->kind != KVMEM_KIND_USER)
		q.state |= KVMEM_STATE_MAPPABLE;
	q.pages = r->npages;
	q.huge_pages = r->nhuge;
	q.numa_node = r->numa_node;
	q.mapped = atomic_read(&r->mapped);
	q.dmabufs = atomic_read(&r->dmabufs);
	q.reserved2 = 0;
	q.mmap_offset = r->kind == KVMEM_KIND_USER ? 0 :
			(u64)r->handle << PAGE_SHIFT;
	kvmem_region_put(r);
	return kvmem_copy_out(uarg, &q, sizeof(q), usize);
}

static long kvmem_ioctl_export(struct kvmem_file *kf, void __user *uarg)
{
	struct kvmem_export e;
	struct kvmem_region *r;
	struct dma_buf *buf;
	u32 usize;
	int fd, ret;

	ret = kvmem_copy_in(&e, sizeof(e), KVMEM_EXPORT_SIZE_VER0, uarg, &usize);
	if (ret)
		return ret;
	if (e.flags || e.reserved)
		return -EINVAL;
	r = kvmem_lookup(kf, e.handle);
	if (!r)
		return -ENOENT;

	buf = kvmem_dmabuf_export(r);	/* takes its own reference */
	kvmem_region_put(r);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	fd = get_unused_fd_flags(O_CLOEXEC);
	if (fd < 0) {
		ret = fd;
		goto err_put;
	}
	e.fd = fd;
	ret = kvmem_copy_out(uarg, &e, sizeof(e), usize);
	if (ret)
		goto err_fd;
	fd_install(fd, buf->file);	/* the fd owns the dma-buf now */
	return 0;

err_fd:
	put_unused_fd(fd);
err_put:
	dma_buf_put(buf);	/* its release drops the region reference */
	return ret;
}

static long kvmem_ioctl_free(struct kvmem_file *kf, void __user *uarg)
{
	struct kvmem_free fr;
	struct kvmem_region *r;
	u32 usize;
	int ret;

	ret = kvmem_copy_in(&fr, sizeof(fr), KVMEM_FREE_SIZE_VER0, uarg, &usize);
	if (ret)
		return ret;
	if (fr.flags)
		return -EINVAL;
	r = kvmem_uninstall(kf, fr.handle);
	if (!r)
		return -ENOENT;
	/* Mappings and dma-bufs keep the pages until they go. */
	kvmem_region_put(r);
	return 0;
}

static void kvmem_count_error(long ret)
{
	switch (ret) {
	case 0:
		break;
	case -EINVAL:
	case -E2BIG:
	case -EOVERFLOW:
	case -ENOTTY:
	case -ENOENT:
		atomic64_inc(&kvmem_stats.err_inval);
		break;
	case -EACCES:
		atomic64_inc(&kvmem_stats.err_access);
		break;
	case -ENOMEM:
		atomic64_inc(&kvmem_stats.err_nomem);
		break;
	default:
		atomic64_inc(&kvmem_stats.err_other);
		break;
	}
}

/*
 * The opening process, and still the image that opened it: after execve()
 * the tgid is the same but the mm is new, and charges would go to the old,
 * dead one (an fd opened without O_CLOEXEC).
 */
static bool kvmem_is_owner(struct kvmem_file *kf)
{
	return task_tgid(current) == kf->tgid && current->mm == kf->mm;
}

static long kvmem_ioctl(struct file *f, unsigned int cmd, unsigned long arg)
{
	struct kvmem_file *kf = f->private_data;
	void __user *uarg = (void __user *)arg;
	long ret;

	if (_IOC_TYPE(cmd) != KVMEM_IOC_MAGIC) {
		ret = -ENOTTY;
		goto out;
	}
	if (!kvmem_is_owner(kf)) {
		ret = -EACCES;
		goto out;
	}

	switch (_IOC_NR(cmd)) {
	case _IOC_NR(KVMEM_IOC_INFO):
		ret = kvmem_ioctl_info(kf, uarg);
		break;
	case _IOC_NR(KVMEM_IOC_ALLOC):
		ret = kvmem_ioctl_alloc(kf, uarg);
		break;
	case _IOC_NR(KVMEM_IOC_PIN_USER):
		ret = kvmem_ioctl_pin_user(kf, uarg);
		break;
	case _IOC_NR(KVMEM_IOC_PIN_GPU):
		ret = kvmem_ioctl_pin_gpu(kf, uarg);
		break;
	case _IOC_NR(KVMEM_IOC_QUERY):
		ret = kvmem_ioctl_query(kf, uarg);
		break;
	case _IOC_NR(KVMEM_IOC_EXPORT_DMABUF):
		ret = kvmem_ioctl_export(kf, uarg);
		break;
	case _IOC_NR(KVMEM_IOC_FREE):
		ret = kvmem_ioctl_free(kf, uarg);
		break;
	default:
		ret = -ENOTTY;
		break;
	}
out:
	kvmem_count_error(ret);
	return ret;
}

static int kvmem_mmap(struct file *f, struct vm_area_struct *vma)
{
	struct kvmem_file *kf = f->private_data;
	struct kvmem_region *r;
	int ret;

	if (!kvmem_is_owner(kf)) {
		ret = -EACCES;
		goto out;
	}
	/* MAP_SHARED; of an O_RDONLY file the VFS leaves only VM_MAYSHARE */
	if (!(vma->vm_flags & VM_MAYSHARE)) {
		ret = -EINVAL;
		goto out;
	}
	r = kvmem_lookup(kf, vma->vm_pgoff);
	if (!r) {
		ret = -EINVAL;
		goto out;
	}
	if (vma_pages(vma) > r->npages) {
		ret = -EINVAL;
		goto out_put;
	}

	/* The VMA takes the region's own window of file offsets, so a GPU
	 * invalidation zaps exactly this region's mappings. */
	vma->vm_pgoff = r->window;
	switch (r->kind) {
	case KVMEM_KIND_HOST:
		ret = kvmem_region_mmap(r, vma);
		if (!ret)
			kvmem_region_detach_file(vma);
		break;
	case KVMEM_KIND_GPU:
		ret = kvmem_gpu_mmap(r, vma);
		break;
	default:
		ret = -ENODEV;	/* user pins are mapped by their owner already */
		break;
	}
out_put:
	kvmem_region_put(r);
out:
	kvmem_count_error(ret);
	return ret;
}

static int kvmem_open(struct inode *inode, struct file *f)
{
	struct kvmem_file *kf;

	if (!current->mm)
		return -EINVAL;
	kf = kzalloc(sizeof(*kf), GFP_KERNEL_ACCOUNT);
	if (!kf)
		return -ENOMEM;
	mutex_init(&kf->lock);
	idr_init_base(&kf->handles, 1);
	kf->tgid = get_pid(task_tgid(current));
	kf->mm = current->mm;
	mmgrab(kf->mm);
	address_space_init_once(&kf->mapping);
	kf->mapping.host = inode;
	/*
	 * The VFS may use f_mapping's a_ops on any open file (fadvise
	 * WILLNEED, when the node lives on a filesystem with a real backing
	 * device, goes to readahead); give it the inode's, which for a device
	 * node are the empty ones, as gdrdrv does.
	 */
	kf->mapping.a_ops = inode->i_mapping->a_ops;
	f->f_mapping = &kf->mapping;
	f->private_data = kf;
	atomic64_inc(&kvmem_stats.files);
	return 0;
}

/* Last reference to the file: no VMA maps it any more. */
static int kvmem_release(struct inode *inode, struct file *f)
{
	struct kvmem_file *kf = f->private_data;
	struct kvmem_region *r;
	int id;

	/* No ioctl can run now; the lock is taken for lockdep's sake. */
	mutex_lock(&kf->lock);
	idr_for_each_entry(&kf->handles, r, id) {
		idr_remove(&kf->handles, id);
		kvmem_region_put(r);
	}
	kf->nregions = 0;
	mutex_unlock(&kf->lock);
	idr_destroy(&kf->handles);
	mmdrop(kf->mm);
	put_pid(kf->tgid);
	kfree(kf);
	atomic64_dec(&kvmem_stats.files);
	return 0;
}

static const struct file_operations kvmem_fops = {
	.owner = THIS_MODULE,
	.open = kvmem_open,
	.release = kvmem_release,
	.unlocked_ioctl = kvmem_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = kvmem_mmap,
	.llseek = noop_llseek,
};

/* devtmpfs asks this for the node's mode and owner (udev may override). */
static char *kvmem_devnode(KVMEM_DEVNODE_CONST struct device *dev,
			   umode_t *mode, kuid_t *uid, kgid_t *gid)
{
	if (mode)
		*mode = dev_mode;
	if (gid)
		*gid = make_kgid(&init_user_ns, dev_group);
	return NULL;
}

static const struct device_type kvmem_dev_type = {
	.name = "kvmem",
	.devnode = kvmem_devnode,
};

static struct class kvmem_class = {
	.name = "kvmem",
};

static dev_t kvmem_devt;
static struct cdev kvmem_cdev;
static struct device *kvmem_dev;

static void kvmem_dev_release(struct device *dev)
{
	kfree(dev);
}

/* /dev/kvmem: a class of its own, so its node can be group-owned. */
static int kvmem_dev_init(void)
{
	int ret;

	if (dev_mode & ~0660) {
		pr_err("mode=%#o: at most 0660 (owner and group), never world-accessible\n",
		       dev_mode);
		return -EINVAL;
	}
	if (!gid_valid(make_kgid(&init_user_ns, dev_group))) {
		pr_err("group=%u: not a valid group id\n", dev_group);
		return -EINVAL;
	}
	ret = alloc_chrdev_region(&kvmem_devt, 0, 1, "kvmem");
	if (ret)
		return ret;
	ret = class_register(&kvmem_class);
	if (ret)
		goto err_region;
	kvmem_dev = kzalloc(sizeof(*kvmem_dev), GFP_KERNEL);
	if (!kvmem_dev) {
		ret = -ENOMEM;
		goto err_class;
	}
	device_initialize(kvmem_dev);
	kvmem_dev->devt = kvmem_devt;
	kvmem_dev->class = &kvmem_class;
	kvmem_dev->type = &kvmem_dev_type;
	kvmem_dev->release = kvmem_dev_release;
	ret = dev_set_name(kvmem_dev, "kvmem");
	if (ret)
		goto err_put;
	cdev_init(&kvmem_cdev, &kvmem_fops);
	kvmem_cdev.owner = THIS_MODULE;
	ret = cdev_device_add(&kvmem_cdev, kvmem_dev);
	if (ret)
		goto err_put;
	return 0;

err_put:
	put_device(kvmem_dev);
err_class:
	class_unregister(&kvmem_class);
err_region:
	unregister_chrdev_region(kvmem_devt, 1);
	return ret;
}

static void kvmem_dev_exit(void)
{
	cdev_device_del(&kvmem_cdev, kvmem_dev);
	put_device(kvmem_dev);
	class_unregister(&kvmem_class);
	unregister_chrdev_region(kvmem_devt, 1);
}

static int __init kvmem_init(void)
{
	int ret;

	/* The ABI: published sizes never change. */
	BUILD_BUG_ON(sizeof(struct kvmem_info) != KVMEM_INFO_SIZE_VER0);
	BUILD_BUG_ON(sizeof(struct kvmem_alloc) != KVMEM_ALLOC_SIZE_VER0);
	BUILD_BUG_ON(sizeof(struct kvmem_pin_user) != KVMEM_PIN_USER_SIZE_VER0);
	BUILD_BUG_ON(sizeof(struct kvmem_pin_gpu) != KVMEM_PIN_GPU_SIZE_VER0);
	BUILD_BUG_ON(sizeof(struct kvmem_query) != KVMEM_QUERY_SIZE_VER0);
	BUILD_BUG_ON(sizeof(struct kvmem_export) != KVMEM_EXPORT_SIZE_VER0);
	BUILD_BUG_ON(sizeof(struct kvmem_free) != KVMEM_FREE_SIZE_VER0);

	ret = kvmem_proc_init();
	if (ret)
		return ret;
	ret = kvmem_dev_init();
	if (ret)
		goto err_proc;
	pr_info("ABI %d, GPU provider %s, cap %lu MiB, /dev/kvmem %#o gid %u\n",
		KVMEM_ABI_VERSION,
		kvmem_gpu_available() ? (kvmem_gpu_is_mock() ? "mock" : "nvidia")
				      : "none",
		kvmem_cap_pages() >> (20 - PAGE_SHIFT), dev_mode, dev_group);
	return 0;

err_proc:
	kvmem_proc_exit();
	return ret;
}

static void __exit kvmem_exit(void)
{
	kvmem_dev_exit();
	kvmem_proc_exit();
	WARN_ON(atomic64_read(&kvmem_stats.regions) ||
		atomic64_read(&kvmem_stats.pinned_pages));
}

module_init(kvmem_init);
module_exit(kvmem_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Pinned host and GPU memory regions for the KV cache");
KVMEM_IMPORT_NS_DMA_BUF();
