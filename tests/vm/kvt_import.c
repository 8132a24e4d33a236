// SPDX-License-Identifier: MIT
/*
 * kvt_import.c - a kvmem dma-buf imported by another driver: vgem (DRM)
 * attaches it and maps it for DMA (map_dma_buf: the scatterlist path).
 * The importer keeps the pages alive after the kvmem handle, fd and
 * dma-buf fd are all closed; closing its GEM handle releases everything.
 * (DRM does not let user space map an imported object, so the bytes are
 * checked through the exporter's mappings elsewhere, not here.)
 */
#include <dirent.h>
#include <linux/ioctl.h>

#include "kvt.h"

/* The few DRM ioctls used (include/uapi/drm/drm.h, drm_mode.h). */
struct kvt_drm_version {
	int major, minor, patch;
	size_t name_len;
	char *name;
	size_t date_len;
	char *date;
	size_t desc_len;
	char *desc;
};
struct kvt_drm_prime_handle { uint32_t handle, flags; int32_t fd; };
struct kvt_drm_gem_close { uint32_t handle, pad; };
#define KVT_DRM_VERSION _IOWR('d', 0x00, struct kvt_drm_version)
#define KVT_DRM_GEM_CLOSE _IOW('d', 0x09, struct kvt_drm_gem_close)
#define KVT_DRM_PRIME_FD_TO_HANDLE _IOWR('d', 0x2e, struct kvt_drm_prime_handle)

static int open_vgem(void)
{
	DIR *d = opendir("/dev/dri");
	struct dirent *e;
	int fd = -1;

	while (d && (e = readdir(d)) && fd < 0) {
		char path[300], name[32] = "";
		struct kvt_drm_version v = { .name_len = sizeof(name) - 1, .name = name };
		int f;

		if (strncmp(e->d_name, "card", 4))
			continue;
		snprintf(path, sizeof(path), "/dev/dri/%s", e->d_name);
		f = open(path, O_RDWR | O_CLOEXEC);
		if (f >= 0 && !ioctl(f, KVT_DRM_VERSION, &v) && !strcmp(name, "vgem"))
			fd = f;
		else if (f >= 0)
			close(f);
	}
	if (d)
		closedir(d);
	return fd;
}

/*
 * A user pin's dma-buf carries the pin's direction (issue 12, defect 4): a
 * read-only pin exports an O_RDONLY fd that no importer can map for device
 * writes (vgem maps DMA_BIDIRECTIONAL at import: EACCES); a KVMEM_PIN_WRITE
 * pin exports O_RDWR and imports.
 */
static void case_pin_direction(int vg)
{
	struct kvt_drm_gem_close gc = { 0 };
	struct kvt_drm_prime_handle ph;
	struct kvmem_pin_user p;
	struct kvmem_export e;
	struct kvt_snap s;
	size_t len = 65536;
	uint8_t *u;
	int fd, w;

	kvt_begin("dmabuf_pin_direction");
	kvt_snap(&s);
	fd = kvt_open();
	u = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(fd >= 0 && u != MAP_FAILED, "open/mmap");
	memset(u, 0x5a, len);
	for (w = 0; w < 2; w++) {
		p = (struct kvmem_pin_user){ .size = sizeof(p), .addr = (uintptr_t)u,
					     .length = len, .flags = w ? KVMEM_PIN_WRITE : 0 };
		CHECK(ioctl(fd, KVMEM_IOC_PIN_USER, &p) == 0, "PIN_USER %d", w);
		e = (struct kvmem_export){ .size = sizeof(e), .handle = p.handle };
		CHECK(ioctl(fd, KVMEM_IOC_EXPORT_DMABUF, &e) == 0, "EXPORT %d", w);
		CHECK((fcntl(e.fd, F_GETFL) & O_ACCMODE) == (w ? O_RDWR : O_RDONLY),
		      "%s pin exported with access mode %d", w ? "writable" : "read-only",
		      fcntl(e.fd, F_GETFL) & O_ACCMODE);
		ph = (struct kvt_drm_prime_handle){ .fd = e.fd };
		errno = 0;
		if (w) {
			CHECK(ioctl(vg, KVT_DRM_PRIME_FD_TO_HANDLE, &ph) == 0,
			      "import of a writable pin: %s", strerror(errno));
			gc.handle = ph.handle;
			CHECK(ioctl(vg, KVT_DRM_GEM_CLOSE, &gc) == 0, "GEM_CLOSE");
		} else {
			CHECK(ioctl(vg, KVT_DRM_PRIME_FD_TO_HANDLE, &ph) == -1 &&
			      errno == EACCES,
			      "bidirectional import of a read-only pin: %s, want EACCES",
			      errno ? strerror(errno) : "it worked");
		}
		close(e.fd);
		CHECK(kvt_free(fd, p.handle) == 0, "FREE");
	}
	munmap(u, len);
	close(fd);
	CHECK_SNAP_SAME(&s, "pin direction");
	kvt_end();
}

int main(void)
{
	size_t len = 2 << 20;
	struct kvt_snap s;
	struct kvmem_export e = { .size = sizeof(e) };
	struct kvt_drm_prime_handle ph = { 0 };
	uint64_t h = 0, seed = kvt_seed();
	int fd, vg;
	uint8_t *m;

	vg = open_vgem();
	if (vg < 0) {
		printf("skip dmabuf_import_vgem: no vgem device (modprobe vgem)\n");
		return 77;
	}
	kvt_begin("dmabuf_import_vgem");
	kvt_snap(&s);
	fd = kvt_open();
	CHECK(fd >= 0 && kvt_alloc(fd, len, 0, -1, &h) == 0, "ALLOC");
	m = kvt_map(fd, h, len);
	CHECK(m != NULL, "map");
	if (!m)
		goto out;
	kvt_fill(m, len, seed);
	munmap(m, len);
	e.handle = h;
	CHECK(ioctl(fd, KVMEM_IOC_EXPORT_DMABUF, &e) == 0, "EXPORT");
	ph.fd = e.fd;
	CHECK(ioctl(vg, KVT_DRM_PRIME_FD_TO_HANDLE, &ph) == 0,
	      "vgem PRIME import (attach + map_dma_buf): %s", strerror(errno));
	/* everything on the kvmem side goes; the importer keeps the pages */
	close(e.fd);
	CHECK(kvt_free(fd, h) == 0, "FREE");
	close(fd);
	fd = -1;
	CHECK(kvt_stat("regions") == s.v[1] + 1 && kvt_stat("dmabufs") == s.v[8] + 1,
	      "imported region gone early: regions %lld dmabufs %lld",
	      kvt_stat("regions"), kvt_stat("dmabufs"));
	struct kvt_drm_gem_close gc = { .handle = ph.handle };
	CHECK(ioctl(vg, KVT_DRM_GEM_CLOSE, &gc) == 0, "GEM_CLOSE");
out:
	if (fd >= 0)
		close(fd);
	close(vg);
	CHECK_SNAP_SAME(&s, "vgem import");
	kvt_end();
	vg = open_vgem();
	if (vg >= 0) {
		case_pin_direction(vg);
		close(vg);
	}
	return kvt_exit();
}
