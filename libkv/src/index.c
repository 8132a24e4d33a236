// SPDX-License-Identifier: MIT
/*
 * index.c - chained hash table over preallocated entries. Block hashes are
 * already uniformly distributed, so the low bits of h.lo pick the bucket.
 * Caller holds kv->lock for every function here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"

static size_t pow2_at_least(size_t v)
{
	size_t p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

int kv_index_init(struct kv_index *ix, size_t capacity)
{
	size_t nb;

	memset(ix, 0, sizeof(*ix));
	if (!capacity || capacity > (SIZE_MAX / sizeof(struct kv_entry)) / 2)
		return -EINVAL;
	nb = pow2_at_least(capacity + capacity / 2);
	ix->buckets = calloc(nb, sizeof(*ix->buckets));
	ix->entries = calloc(capacity, sizeof(*ix->entries));
	if (!ix->buckets || !ix->entries) {
		kv_index_destroy(ix);
		return -ENOMEM;
	}
	ix->mask = nb - 1;
	ix->capacity = capacity;
	for (size_t i = capacity; i-- > 0;) {
		ix->entries[i].hnext = ix->free;
		ix->free = &ix->entries[i];
	}
	return 0;
}

void kv_index_destroy(struct kv_index *ix)
{
	free(ix->buckets);
	free(ix->entries);
	memset(ix, 0, sizeof(*ix));
}

static struct kv_entry **bucket(struct kv_index *ix, kv_hash h)
{
	return &ix->buckets[(h.lo ^ (h.hi >> 7)) & ix->mask];
}

struct kv_entry *kv_index_find(struct kv_index *ix, kv_hash h)
{
	for (struct kv_entry *e = *bucket(ix, h); e; e = e->hnext)
		if (kv_hash_eq(e->h, h))
			return e;
	return NULL;
}

struct kv_entry *kv_index_insert(struct kv_index *ix, kv_hash h)
{
	struct kv_entry *e = ix->free, **b;

	if (!e)
		return NULL;
	ix->free = e->hnext;
	memset(e, 0, sizeof(*e));
	e->h = h;
	for (int t = 0; t < KV_NTIERS; t++)
		e->slot[t] = KV_SLOT_NONE;
	b = bucket(ix, h);
	e->hnext = *b;
	*b = e;
	ix->used++;
	return e;
}

void kv_index_remove(struct kv_index *ix, struct kv_entry *e)
{
	struct kv_entry **pp = bucket(ix, e->h);

	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	e->hnext = ix->free;
	ix->free = e;
	ix->used--;
}

bool kv_entry_empty(const struct kv_entry *e)
{
	for (int t = 1; t < KV_NTIERS; t++)
		if (e->state[t] != KV_COPY_EMPTY)
			return false;
	return true;
}

int kv_entry_best_tier(const struct kv_entry *e)
{
	for (int t = 1; t < KV_NTIERS; t++)
		if (e->state[t] == KV_COPY_READY)
			return t;
	return KV_TIER_NONE;
}

static bool on_lru(const struct kv_lru *l, const struct kv_entry *e, int tier)
{
	return e->lru[tier].prev || e->lru[tier].next || l->head == e;
}

void kv_lru_remove(struct kv_index *ix, int tier, struct kv_entry *e)
{
	struct kv_lru *l = &ix->lru[tier];
	struct kv_lru_link *k = &e->lru[tier];

	if (!on_lru(l, e, tier))
		return;
	if (k->prev)
		k->prev->lru[tier].next = k->next;
	else
		l->head = k->next;
	if (k->next)
		k->next->lru[tier].prev = k->prev;
	else
		l->tail = k->prev;
	k->prev = k->next = NULL;
	l->count--;
}

void kv_lru_touch(struct kv_index *ix, int tier, struct kv_entry *e)
{
	struct kv_lru *l = &ix->lru[tier];

	if (l->head == e)
		return;
	kv_lru_remove(ix, tier, e);
	e->lru[tier].next = l->head;
	if (l->head)
		l->head->lru[tier].prev = e;
	l->head = e;
	if (!l->tail)
		l->tail = e;
	l->count++;
}

struct kv_entry *kv_lru_victim(struct kv_index *ix, int tier)
{
	for (struct kv_entry *e = ix->lru[tier].tail; e; e = e->lru[tier].prev)
		if (!e->refs && e->state[tier] == KV_COPY_READY)
			return e;
	return NULL;
}
