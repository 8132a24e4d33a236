// SPDX-License-Identifier: MIT
/*
 * replay_gen.c - the built-in workload of `kvctl replay` (what `make run`
 * replays): shared system prompts, multi-turn chats, agent loops, one-shot
 * requests, all drawn from the seed alone.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "replay.h"
#include "util.h"

#define VOCAB 128000u

static int tok_reserve(struct tokbuf *b, size_t n)
{
	if (b->cap >= n)
		return 0;
	size_t cap = b->cap ? b->cap : 1024;

	while (cap < n)
		cap *= 2;
	uint32_t *t = realloc(b->t, cap * sizeof(*t));

	if (!t)
		return -ENOMEM;
	b->t = t;
	b->cap = cap;
	return 0;
}

static int tok_append_random(struct tokbuf *b, struct kvu_rng *r, size_t n)
{
	if (tok_reserve(b, b->n + n))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		b->t[b->n++] = (uint32_t)kvu_rng_below(r, VOCAB);
	return 0;
}

static int tok_append(struct tokbuf *b, const uint32_t *t, size_t n)
{
	if (tok_reserve(b, b->n + n))
		return -ENOMEM;
	memcpy(b->t + b->n, t, n * sizeof(*t));
	b->n += n;
	return 0;
}

/* Popularity of system prompt i ~ 1/(i+1). */
static uint32_t pick_system(struct workload *w)
{
	double total = 0, x;

	for (uint32_t i = 0; i < w->nsys; i++)
		total += 1.0 / (i + 1);
	x = kvu_rng_unit(&w->rng) * total;
	for (uint32_t i = 0; i < w->nsys; i++) {
		x -= 1.0 / (i + 1);
		if (x < 0)
			return i;
	}
	return w->nsys - 1;
}

int conv_start(struct workload *w, struct conv *c)
{
	double k = kvu_rng_unit(&w->rng);
	struct tokbuf *s = &w->sys[pick_system(w)];

	c->rng.s = kvu_rng_next(&w->rng);
	c->hist.n = 0;
	c->staged = 0;
	c->busy = false;
	c->ended = false;
	if (k < 0.6) {
		c->kind = CONV_CHAT;
		c->turns_left = (uint32_t)kvu_rng_range(&c->rng, 2, 10);
	} else if (k < 0.85) {
		c->kind = CONV_AGENT;
		c->turns_left = (uint32_t)kvu_rng_range(&c->rng, 3, 16);
	} else {
		c->kind = CONV_ONESHOT;
		c->turns_left = 1;
	}
	w->started[c->kind]++;
	/* At most half the context, so every conversation has room for a turn. */
	return tok_append(&c->hist, s->t, s->n < w->max_tokens / 2 ? s->n : w->max_tokens / 2);
}

/*
 * Stage the next turn of c (the new user message, tool output or document)
 * unless one is staged already. Returns 0, or -ENOSPC if the conversation
 * would outgrow max_tokens (it ends), -ENOMEM.
 */
int conv_stage(struct workload *w, struct conv *c)
{
	size_t n;

	if (c->staged)
		return 0;
	switch (c->kind) {
	case CONV_CHAT:
		n = kvu_rng_range(&c->rng, 16, 256);
		break;
	case CONV_AGENT:
		n = kvu_rng_range(&c->rng, 64, 1024);   /* tool output */
		break;
	default:
		n = kvu_rng_range(&c->rng, 32, 1536);   /* question or document */
		break;
	}
	if (c->hist.n >= w->max_tokens)
		return -ENOSPC;
	if (c->hist.n + n > w->max_tokens)
		n = w->max_tokens - c->hist.n;
	if (tok_append_random(&c->hist, &c->rng, n))
		return -ENOMEM;
	c->staged = n;
	return 0;
}

/* The turn was answered: append the reply (generated, not yet cached). */
int conv_answered(struct workload *w, struct conv *c)
{
	size_t n = c->kind == CONV_AGENT ? kvu_rng_range(&c->rng, 16, 128) :
					   kvu_rng_range(&c->rng, 32, 384);

	c->staged = 0;
	c->busy = false;
	/*
	 * A finished conversation restarts when it is next picked, not here:
	 * completions arrive in any order, picks in a fixed one, so the
	 * workload depends on the seed alone.
	 */
	if (--c->turns_left == 0 || c->hist.n + n >= w->max_tokens) {
		c->ended = true;
		return 0;
	}
	return tok_append_random(&c->hist, &c->rng, n);
}

int workload_init(struct workload *w, const struct replay_opts *o)
{
	memset(w, 0, sizeof(*w));
	w->rng.s = kvu_mix64(o->seed ^ 0x6b7663746c72706cull);
	w->max_tokens = o->max_tokens;
	w->nsys = (uint32_t)o->system_prompts;
	w->nconv = (uint32_t)o->conversations;
	w->sys = calloc(w->nsys, sizeof(*w->sys));
	w->convs = calloc(w->nconv, sizeof(*w->convs));
	/* Picks avoid the last half of the conversations (any inflight). */
	w->nrecent = w->nconv / 2;
	w->recent = calloc(w->nrecent + 1, sizeof(*w->recent));
	w->next = -1;
	if (!w->sys || !w->convs || !w->recent)
		return -ENOMEM;
	for (uint32_t i = 0; i < w->nrecent; i++)
		w->recent[i] = UINT32_MAX;
	for (uint32_t i = 0; i < w->nsys; i++)
		if (tok_append_random(&w->sys[i], &w->rng, kvu_rng_range(&w->rng, 384, 2048)))
			return -ENOMEM;
	for (uint32_t i = 0; i < w->nconv; i++)
		if (conv_start(w, &w->convs[i]))
			return -ENOMEM;
	return 0;
}

void workload_free(struct workload *w)
{
	for (uint32_t i = 0; w->sys && i < w->nsys; i++)
		free(w->sys[i].t);
	for (uint32_t i = 0; w->convs && i < w->nconv; i++)
		free(w->convs[i].hist.t);
	free(w->sys);
	free(w->convs);
	free(w->recent);
}

/*
 * The next conversation to send a turn: random, but not one of the last
 * nrecent picks. Drawn once and kept until issued, so the sequence of picks
 * (and every token) depends only on the seed.
 */
struct conv *workload_pick(struct workload *w)
{
	if (w->next < 0) {
		uint32_t i;
		bool again;

		do {
			i = (uint32_t)kvu_rng_below(&w->rng, w->nconv);
			again = false;
			for (uint32_t k = 0; k < w->nrecent; k++)
				if (w->recent[k] == i)
					again = true;
		} while (again);
		w->next = i;
	}
	return &w->convs[w->next];
}

void workload_issued(struct workload *w)
{
	if (w->nrecent) {
		w->recent[w->recent_pos] = (uint32_t)w->next;
		w->recent_pos = (w->recent_pos + 1) % w->nrecent;
	}
	w->next = -1;
}
