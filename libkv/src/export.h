/* SPDX-License-Identifier: MIT */
/* export.h - mark the public functions; the build hides everything else. */
#ifndef KV_EXPORT_H
#define KV_EXPORT_H
#define KV_EXPORT __attribute__((visibility("default")))
#endif
