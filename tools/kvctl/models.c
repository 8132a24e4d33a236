// SPDX-License-Identifier: MIT
/*
 * models.c - what a cache hit is worth: a small table of models and the
 * prefill work a hit saves (the FLOPs of recomputing those tokens' KV).
 *
 * Per prompt token at position p (0-based) a prefill costs
 *
 *   2 x matmul_params                       the weights every token goes through
 * + 2 x layers x q_heads x (d_qk + d_v) x (p+1)   attention: QK^T and PV over p+1 keys
 *
 * matmul_params = active parameters - the embedding table - the LM head (a
 * prefill of cached tokens needs no logits; the lookup is no matmul); for a
 * mixture of experts only the routed experts' share is active. The attention
 * term grows with the prefix, so recomputing the blocks deep in a long prompt
 * costs more than its first blocks. Sources: the models' config.json on
 * Hugging Face and their papers (docs/kvctl.md).
 */
#include <stdio.h>
#include <strings.h>

#include "replay.h"

static const struct kvr_model models[] = {
	{
		.name = "llama-3-8b", .label = "Llama-3-8B",
		.layers = 32, .q_heads = 32, .kv_heads = 8, .d_qk = 128, .d_v = 128,
		.kv_elems = 2 * 8 * 128, .kv_dtype_bytes = 2, .kv_dtype = "bf16",
		.active_params = 8.03e9, .hidden = 4096, .vocab = 128256, .tied = 0,
		.note = "dense, GQA 32/8",
	},
	{
		.name = "llama-3-70b", .label = "Llama-3-70B",
		.layers = 80, .q_heads = 64, .kv_heads = 8, .d_qk = 128, .d_v = 128,
		.kv_elems = 2 * 8 * 128, .kv_dtype_bytes = 2, .kv_dtype = "bf16",
		.active_params = 70.55e9, .hidden = 8192, .vocab = 128256, .tied = 0,
		.note = "dense, GQA 64/8",
	},
	{
		/* MLA: the cache holds a 512-dim latent + 64 rope dims per token and
		 * layer; prefill attends with 128 heads of q/k 192 (128+64), v 128. */
		.name = "deepseek-v3", .label = "DeepSeek-V3",
		.layers = 61, .q_heads = 128, .kv_heads = 1, .d_qk = 192, .d_v = 128,
		.kv_elems = 512 + 64, .kv_dtype_bytes = 2, .kv_dtype = "bf16",
		.active_params = 37e9, .hidden = 7168, .vocab = 129280, .tied = 0,
		.note = "MoE 671B total / 37B active, MLA",
	},
};

#define NMODELS (sizeof(models) / sizeof(models[0]))

const struct kvr_model *kvr_model_find(const char *name)
{
	for (size_t i = 0; i < NMODELS; i++)
		if (!strcasecmp(name, models[i].name) || !strcasecmp(name, models[i].label))
			return &models[i];
	return NULL;
}

void kvr_model_list(FILE *f)
{
	for (size_t i = 0; i < NMODELS; i++) {
		const struct kvr_model *m = &models[i];

		fprintf(f, "  %-12s %s: %u layers, %u heads (%u KV), d_qk %u, d_v %u, KV %s %.1f KiB/token, "
			"%.2fB matmul params (%s)\n",
			m->name, m->label, m->layers, m->q_heads, m->kv_heads, m->d_qk, m->d_v,
			m->kv_dtype, kvr_model_kv_bytes_per_token(m) / 1024.0,
			kvr_model_matmul_params(m) / 1e9, m->note);
	}
}

double kvr_model_matmul_params(const struct kvr_model *m)
{
	return m->active_params - (m->tied ? 1.0 : 2.0) * m->vocab * m->hidden;
}

double kvr_model_kv_bytes_per_token(const struct kvr_model *m)
{
	return (double)m->layers * m->kv_elems * m->kv_dtype_bytes;
}

double kvr_model_prefill_flops(const struct kvr_model *m, uint64_t a, uint64_t b)
{
	double n, keys;

	if (b <= a)
		return 0;
	n = (double)(b - a);
	/* sum over p in [a, b) of (p + 1) */
	keys = ((double)b * (b + 1) - (double)a * (a + 1)) / 2;
	return 2 * kvr_model_matmul_params(m) * n +
	       2.0 * m->layers * m->q_heads * (m->d_qk + m->d_v) * keys;
}
