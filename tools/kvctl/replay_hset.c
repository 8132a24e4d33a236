// SPDX-License-Identifier: MIT
/*
 * replay_hset.c - a set of block names for kvctl replay: every name ever
 * stored, which is what an unbounded cache would hold. Names are uniformly
 * distributed already, so their low bits pick the slot.
 */
#include <errno.h>
#include <stdlib.h>

#include "replay.h"


static size_t kvr_hset_pos(const struct kvr_hset *s, kv_hash h)
{
	size_t i = (size_t)(h.lo ^ h.hi) & (s->cap - 1);

	while ((s->slot[i].lo || s->slot[i].hi) && !kv_hash_eq(s->slot[i], h))
		i = (i + 1) & (s->cap - 1);
	return i;
}

bool kvr_hset_has(const struct kvr_hset *s, kv_hash h)
{
	size_t i;

	if (!s->cap)
		return false;
	i = kvr_hset_pos(s, h);
	return s->slot[i].lo || s->slot[i].hi;
}

int kvr_hset_add(struct kvr_hset *s, kv_hash h)
{
	size_t i;

	if ((s->n + 1) * 2 > s->cap) {
		struct kvr_hset t = { .cap = s->cap ? s->cap * 2 : 4096 };

		t.slot = calloc(t.cap, sizeof(*t.slot));
		if (!t.slot)
			return -ENOMEM;
		for (size_t j = 0; j < s->cap; j++)
			if (s->slot[j].lo || s->slot[j].hi) {
				t.slot[kvr_hset_pos(&t, s->slot[j])] = s->slot[j];
				t.n++;
			}
		free(s->slot);
		*s = t;
	}
	i = kvr_hset_pos(s, h);
	if (!s->slot[i].lo && !s->slot[i].hi) {
		s->slot[i] = h;
		s->n++;
	}
	return 0;
}
void kvr_hset_free(struct kvr_hset *s)
{
	free(s->slot);
	s->slot = NULL;
	s->cap = s->n = 0;
}
