// SPDX-License-Identifier: GPL-2.0
/*
 * kvmem_proc.c - /proc/driver/kvmem/{stats,regions}. Formats are part of
 * the ABI (docs/uapi.md; kvctl parses them): "key: value" lines, and one
 * header line plus one whitespace-separated line per region.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>

#include "kvmem.h"

static struct proc_dir_entry *kvmem_proc_dir;

static const char *kvmem_kind_name(u32 kind)
{
	switch (kind) {
	case KVMEM_KIND_HOST:
		return "host";
	case KVMEM_KIND_USER:
		return "user";
	case KVMEM_KIND_GPU:
		return "gpu";
	default:
		return "?";
	}
}

#define KVMEM_STAT(name) \
	seq_printf(m, "%s: %lld\n", #name, atomic64_read(&kvmem_stats.name))

static int kvmem_stats_show(struct seq_file *m, void *v)
{
	seq_printf(m, "abi_version: %d\n", KVMEM_ABI_VERSION);
	seq_printf(m, "gpu_provider: %s\n", !kvmem_gpu_available() ? "none" :
		   kvmem_gpu_is_mock() ? "mock" : "nvidia");
	KVMEM_STAT(files);
	KVMEM_STAT(regions);
	KVMEM_STAT(host_regions);
	KVMEM_STAT(user_regions);
	KVMEM_STAT(gpu_regions);
	seq_printf(m, "pinned_bytes: %lld\n",
		   atomic64_read(&kvmem_stats.pinned_pages) << PAGE_SHIFT);
	seq_printf(m, "cap_bytes: %llu\n", (u64)kvmem_cap_pages() << PAGE_SHIFT);
	KVMEM_STAT(huge_pages);
	KVMEM_STAT(mappings);
	KVMEM_STAT(dmabufs);
	KVMEM_STAT(allocs);
	KVMEM_STAT(frees);
	KVMEM_STAT(gpu_invalidations);
	KVMEM_STAT(err_inval);
	KVMEM_STAT(err_access);
	KVMEM_STAT(err_nomem);
	KVMEM_STAT(err_memlock);
	KVMEM_STAT(err_cap);
	KVMEM_STAT(err_other);
	return 0;
}

/*
 * One line per region; a reader sees only regions of its own euid, unless
 * it opened the file with CAP_SYS_ADMIN (the opener's credentials, not the
 * reader's: a passed fd or a setuid reader does not widen the view).
 */
static int kvmem_regions_show(struct seq_file *m, void *v)
{
	const struct cred *cred = m->file->f_cred;
	bool all = file_ns_capable(m->file, &init_user_ns, CAP_SYS_ADMIN);
	struct kvmem_region *r;

	seq_puts(m, "pid handle kind size numa huge_pages mapped valid\n");
	mutex_lock(&kvmem_regions_lock);
	list_for_each_entry(r, &kvmem_regions, node) {
		if (!all && !uid_eq(r->uid, cred->euid))
			continue;
		seq_printf(m, "%d %u %s %llu %d %lu %d %d\n", r->pid, r->handle,
			   kvmem_kind_name(r->kind), r->length, r->numa_node,
			   r->nhuge, atomic_read(&r->mapped),
			   r->kind != KVMEM_KIND_GPU || kvmem_gpu_valid(r));
	}
	mutex_unlock(&kvmem_regions_lock);
	return 0;
}

int kvmem_proc_init(void)
{
	kvmem_proc_dir = proc_mkdir("driver/kvmem", NULL);
	if (!kvmem_proc_dir)
		return -ENOMEM;
	if (!proc_create_single("stats", 0444, kvmem_proc_dir,
				kvmem_stats_show) ||
	    !proc_create_single("regions", 0444, kvmem_proc_dir,
				kvmem_regions_show)) {
		proc_remove(kvmem_proc_dir);
		return -ENOMEM;
	}
	return 0;
}

void kvmem_proc_exit(void)
{
	proc_remove(kvmem_proc_dir);
}
