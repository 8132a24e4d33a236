/* SPDX-License-Identifier: MIT */
/*
 * index.h - hash -> entry map with one LRU list per tier. An entry records
 * where copies of one block live (a slot per tier) and how many readers or
 * writers hold it; an entry with refs > 0 is never evicted or freed. The
 * index does no locking: every function expects the caller to hold the
 * owning struct kv's lock (kv->lock).
 */
#ifndef KV_INDEX_H
#define KV_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.h"

#define KV_NTIERS 4          /* indexed by enum kv_tier; 0 unused */
#define KV_SLOT_NONE UINT32_MAX

enum kv_copy_state {
	KV_COPY_EMPTY = 0,   /* no copy in this tier */
	KV_COPY_PENDING,     /* being written; invisible to lookups */
	KV_COPY_READY,       /* complete and checksummed */
	KV_COPY_BAD,         /* failed verification; freed when refs drop to 0 */
};

struct kv_entry;

struct kv_lru_link {
	struct kv_entry *prev, *next;
};

struct kv_entry {
	kv_hash h;
	struct kv_entry *hnext;        /* hash chain / free list */
	uint32_t refs;
	uint32_t slot[KV_NTIERS];
	uint8_t state[KV_NTIERS];
	struct kv_lru_link lru[KV_NTIERS];
};

struct kv_lru {
	struct kv_entry *head, *tail;  /* head: most recently used */
	uint64_t count;
};

struct kv_index {
	struct kv_entry **buckets;
	size_t mask;
	struct kv_entry *entries;      /* preallocated, capacity of them */
	struct kv_entry *free;
	size_t capacity, used;
	struct kv_lru lru[KV_NTIERS];
};

/* Room for capacity entries. Returns 0 or -ENOMEM / -EINVAL. */
int kv_index_init(struct kv_index *ix, size_t capacity);
void kv_index_destroy(struct kv_index *ix);

/* The entry named h, or NULL. */
struct kv_entry *kv_index_find(struct kv_index *ix, kv_hash h);

/* A new entry for h (which must not be present), every tier empty, refs 0; NULL when full. */
struct kv_entry *kv_index_insert(struct kv_index *ix, kv_hash h);

/* Remove e (no copies left, refs 0) and return it to the free list. */
void kv_index_remove(struct kv_index *ix, struct kv_entry *e);

/* True when e has no copy in any tier. */
bool kv_entry_empty(const struct kv_entry *e);

/* Best (lowest) tier holding a READY copy, or KV_TIER_NONE. */
int kv_entry_best_tier(const struct kv_entry *e);

/* LRU of one tier: e moves to / enters at the head; leaves the list. */
void kv_lru_touch(struct kv_index *ix, int tier, struct kv_entry *e);
void kv_lru_remove(struct kv_index *ix, int tier, struct kv_entry *e);

/* Least recently used READY copy in tier with refs 0, or NULL. */
struct kv_entry *kv_lru_victim(struct kv_index *ix, int tier);

#endif /* KV_INDEX_H */
