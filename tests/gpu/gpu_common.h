/* SPDX-License-Identifier: MIT */
/*
 * gpu_common.h - helpers shared by the GPU tests and the benchmark: checked
 * CUDA calls, SKIP when there is no usable device, a seeded PRNG.
 */
#ifndef KV_GPU_COMMON_H
#define KV_GPU_COMMON_H

#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SKIP_RC 77

/* CUDA maps memory in the shadow gap ASan protects by default. */
extern "C" const char *__asan_default_options(void)
{
	return "protect_shadow_gap=0";
}

/* Every CUDA call and launch goes through CK: a failure ends the program. */
#define CK(call)                                                                      \
	do {                                                                          \
		cudaError_t ck_e_ = (call);                                           \
		if (ck_e_ != cudaSuccess) {                                           \
			fprintf(stderr, "FAIL %s:%d: %s: %s\n", __FILE__, __LINE__,   \
				#call, cudaGetErrorString(ck_e_));                    \
			exit(1);                                                      \
		}                                                                     \
	} while (0)

#define CHECK(cond, ...)                                                              \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);          \
			fprintf(stderr, __VA_ARGS__);                                 \
			fputc('\n', stderr);                                          \
			exit(1);                                                      \
		}                                                                     \
	} while (0)

/* SKIP (exit 77, reason on the last line) unless a CUDA device is usable. */
static inline int gpu_require(void)
{
	int n = 0;
	cudaError_t e = cudaGetDeviceCount(&n);

	if (e != cudaSuccess || n <= 0) {
		printf("SKIP: no usable CUDA device (cudaGetDeviceCount: %s)\n",
		       e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
		exit(SKIP_RC);
	}
	return n;
}

/* xorshift64*: reproducible from the printed seed. */
struct rng {
	uint64_t s;
};

static inline uint64_t rnd(struct rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545F4914F6CDD1DULL;
}

static inline uint32_t rnd_below(struct rng *r, uint32_t n)
{
	return (uint32_t)(rnd(r) % n);
}

static inline void rnd_fill(struct rng *r, void *p, size_t len)
{
	unsigned char *b = (unsigned char *)p;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t v = rnd(r);
		memcpy(b + i, &v, 8);
	}
	for (; i < len; i++)
		b[i] = (unsigned char)rnd(r);
}

static inline uint64_t seed_from_env(void)
{
	const char *s = getenv("KV_SEED");
	uint64_t v;

	if (s && *s)
		v = strtoull(s, NULL, 0);
	else
		v = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
	return v ? v : 1;
}

static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#endif /* KV_GPU_COMMON_H */
