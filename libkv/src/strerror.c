// SPDX-License-Identifier: MIT
/* strerror.c - text for libkv's negative errno values and tier names. */
#include <errno.h>
#include <string.h>

#include "export.h"
#include "kv.h"

KV_EXPORT const char *kv_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case -ENOENT:
		return "block not present (miss)";
	case -EBADMSG:
		return "stored copy failed its check values (treated as a miss)";
	case -EAGAIN:
		return "too many requests in flight; reap completions and retry";
	case -ENOSPC:
		return "no space: every block of the tier is in use";
	case -EOPNOTSUPP:
		return "not supported by this build or host";
	case -ENODEV:
		return "/dev/kvmem is not available (module not loaded?)";
	}
	/* -err only where it cannot overflow: errno values are below 4096. */
	if (err < 0 && err > -4096)
		return strerror(-err);
	return err > 0 ? "unknown error (positive value)" : "unknown error";
}

KV_EXPORT const char *kv_tier_name(int tier)
{
	static const char *const names[] = { "none", "host", "disk", "remote" };

	if (tier < 0 || tier > KV_TIER_REMOTE)
		return "none";
	return names[tier];
}

#define KV_STR_(x) #x
#define KV_STR(x) KV_STR_(x)

KV_EXPORT const char *kv_version(void)
{
	return KV_STR(KV_VERSION_MAJOR) "." KV_STR(KV_VERSION_MINOR) "." KV_STR(KV_VERSION_PATCH);
}
