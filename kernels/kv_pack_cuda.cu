// SPDX-License-Identifier: MIT
/*
 * kv_pack_cuda.cu - CUDA pack/unpack between an engine's paged KV cache and
 * canonical blocks, byte for byte the mapping of kv_pack.h (the CPU reference
 * kv_pack_cpu.c is the specification).
 *
 * One launch moves a whole batch: n blocks x layers x planes "planes", each
 * plane_bytes long. A plane is contiguous on the canonical side; on the
 * engine side it is contiguous too for token-major layouts (NHD, MLA) and a
 * permutation of head_dim rows for head-major ones (HND): canonical row
 * t*H + h is engine row h*T + t.
 *
 * Geometry: a persistent grid of 256-thread CTAs whose warps walk "units"
 * (grid-stride over all warps of the grid); a unit is one chunk of
 * CHUNK_VECS = 32 lanes x UNROLL vectors of one plane, so a warp's access is
 * 512 contiguous bytes per instruction (16-byte vectors) and small planes
 * (1 KiB) waste no more than part of one warp. Each lane issues UNROLL
 * independent loads before its first store (memory-level parallelism, which
 * is what mapped host memory over PCIe needs most). The vector type is the
 * widest that every address of the batch allows (16 bytes normally; odd
 * head_dim or fp8 rows fall back to 8/4/2/1), chosen on the host per launch.
 * Data are streamed with evict-first hints (ld.global.cs / st.global.cs) so
 * a transfer does not flush the engine's working set out of L2.
 */
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#include "kv_cuda_backend.h"

namespace {

constexpr unsigned THREADS = 256;
constexpr unsigned WARP = 32;
constexpr unsigned WARPS = THREADS / WARP;
constexpr unsigned UNROLL = 4;
constexpr unsigned CHUNK_VECS = WARP * UNROLL;

#ifdef __CUDA_ARCH__
#define KV_UNROLL _Pragma("unroll")
#else
#define KV_UNROLL
#endif

/* n / d for n, d < 2^31 with a multiply-high (PyTorch's IntDivider). */
struct fastdiv {
	uint32_t d, m, s;
};

fastdiv make_fastdiv(uint32_t d)
{
	fastdiv f;
	uint32_t s = 0;

	while (s < 31 && (1u << s) < d)
		s++;
	f.d = d;
	f.s = s;
	f.m = (uint32_t)((((uint64_t)1 << 32) * (((uint64_t)1 << s) - d)) / d + 1);
	return f;
}

__host__ __device__ __forceinline__ uint32_t fdiv(uint32_t n, const fastdiv &f)
{
#ifdef __CUDA_ARCH__
	return (__umulhi(n, f.m) + n) >> f.s;
#else
	return (uint32_t)((((uint64_t)n * f.m) >> 32) + n) >> f.s;
#endif
}

struct xfer_args {
	const uint64_t *layer_base;
	const uint32_t *blocks;
	const uint64_t *canon;
	uint64_t plane_stride, block_stride, plane_bytes;
	uint32_t units;             /* n * layers * planes * chunks, < 2^31 */
	uint32_t plane_vecs;        /* vectors per plane */
	uint32_t T, rv;             /* block_tokens, vectors per head_dim row */
	fastdiv div_chunks;         /* units per plane */
	fastdiv div_lp;             /* layers * planes */
	fastdiv div_planes;
	fastdiv div_rv, div_h;      /* row vectors, kv_heads (head-major only) */
};

/* Engine vector index of canonical vector v of a head-major plane. */
__host__ __device__ __forceinline__ uint32_t hnd_index(const xfer_args &a, uint32_t v)
{
	uint32_t r = fdiv(v, a.div_rv);
	uint32_t col = v - r * a.rv;
	uint32_t t = fdiv(r, a.div_h);
	uint32_t h = r - t * a.div_h.d;

	return (h * a.T + t) * a.rv + col;
}

/* Streaming (evict-first) accesses; plain ones in the host emulation. */
template <typename V>
__host__ __device__ __forceinline__ V ld(const V *p)
{
#ifdef __CUDA_ARCH__
	return __ldcs(p);
#else
	return *p;
#endif
}

template <typename V>
__host__ __device__ __forceinline__ void st(V *p, V v)
{
#ifdef __CUDA_ARCH__
	__stcs(p, v);
#else
	*p = v;
#endif
}

/*
 * Unit u of the batch as seen by lane `lane` of the warp that runs it. Also
 * compiled for the host so that tests/gpu/test_pack_emul.cu can check the
 * index arithmetic against the CPU reference where there is no GPU.
 */
template <typename V, bool HEAD_MAJOR, bool PACK>
__host__ __device__ __forceinline__ void xfer_unit(const xfer_args &a, uint32_t u,
						   uint32_t lane)
{
	uint32_t j = fdiv(u, a.div_chunks);    /* plane of the batch */
	uint32_t c = u - j * a.div_chunks.d;   /* chunk of that plane */
	uint32_t i = fdiv(j, a.div_lp);        /* block of the batch */
	uint32_t lp = j - i * a.div_lp.d;      /* layer*planes + plane */
	uint32_t l = fdiv(lp, a.div_planes);
	uint32_t p = lp - l * a.div_planes.d;
	char *eng = (char *)a.layer_base[l] + p * a.plane_stride +
		    (uint64_t)a.blocks[i] * a.block_stride;
	char *can = (char *)a.canon[i] + lp * a.plane_bytes;
	V *ev = (V *)eng;
	V *cv = (V *)can;
	uint32_t v0 = c * CHUNK_VECS + lane;
	V r[UNROLL];

#ifndef __CUDA_ARCH__
	memset(r, 0, sizeof(r)); /* host emulation: quiets -Wmaybe-uninitialized */
#endif

	KV_UNROLL
	for (unsigned k = 0; k < UNROLL; k++) {
		uint32_t v = v0 + k * WARP;

		if (v < a.plane_vecs) {
			uint32_t e = HEAD_MAJOR ? hnd_index(a, v) : v;

			r[k] = PACK ? ld(ev + e) : ld(cv + v);
		}
	}
	KV_UNROLL
	for (unsigned k = 0; k < UNROLL; k++) {
		uint32_t v = v0 + k * WARP;

		if (v < a.plane_vecs) {
			uint32_t e = HEAD_MAJOR ? hnd_index(a, v) : v;

			if (PACK)
				st(cv + v, r[k]);
			else
				st(ev + e, r[k]);
		}
	}
}

/* Warp w of `warps` in the grid: a grid-stride walk over the units. */
template <typename V, bool HEAD_MAJOR, bool PACK>
__host__ __device__ __forceinline__ void xfer_warp(const xfer_args &a, uint32_t w,
						   uint32_t warps, uint32_t lane)
{
	for (uint32_t u = w; u < a.units; u += warps)
		xfer_unit<V, HEAD_MAJOR, PACK>(a, u, lane);
}

template <typename V, bool HEAD_MAJOR, bool PACK>
__global__ void __launch_bounds__(THREADS)
kv_xfer_kernel(const xfer_args a)
{
	xfer_warp<V, HEAD_MAJOR, PACK>(a, blockIdx.x * WARPS + threadIdx.x / WARP,
				       gridDim.x * WARPS, threadIdx.x % WARP);
}

template <typename V, bool HM, bool PACK>
cudaError_t launch_one(const xfer_args &a, unsigned max_ctas, cudaStream_t s)
{
	static int ctas_per_sm[64]; /* per device, filled on first use */
	int dev = 0, sms = 0, occ;

	if (cudaGetDevice(&dev) != cudaSuccess || dev < 0)
		dev = 0;
	if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
	    sms <= 0)
		sms = 1;
	occ = dev < 64 ? __atomic_load_n(&ctas_per_sm[dev], __ATOMIC_RELAXED) : 0;
	if (occ <= 0) {
		if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(
			    &occ, kv_xfer_kernel<V, HM, PACK>, THREADS, 0) != cudaSuccess ||
		    occ <= 0)
			occ = 4;
		if (dev < 64)
			__atomic_store_n(&ctas_per_sm[dev], occ, __ATOMIC_RELAXED);
	}
	uint64_t grid = (uint64_t)sms * (unsigned)occ;

	if (max_ctas && grid > max_ctas)
		grid = max_ctas;
	if (grid > (a.units + WARPS - 1) / WARPS)
		grid = (a.units + WARPS - 1) / WARPS;
	kv_xfer_kernel<V, HM, PACK><<<(unsigned)grid, THREADS, 0, s>>>(a);
	return cudaGetLastError();
}

template <typename V>
cudaError_t launch_width(const xfer_args &a, bool hm, bool pack, unsigned max_ctas,
			 cudaStream_t s)
{
	if (hm)
		return pack ? launch_one<V, true, true>(a, max_ctas, s)
			    : launch_one<V, true, false>(a, max_ctas, s);
	return pack ? launch_one<V, false, true>(a, max_ctas, s)
		    : launch_one<V, false, false>(a, max_ctas, s);
}

} // namespace

cudaError_t kv_cuda_probe(void)
{
	struct cudaFuncAttributes fa;

	return cudaFuncGetAttributes(&fa, kv_xfer_kernel<uint4, false, true>);
}

unsigned kv_cuda_vec_width(const struct kv_cuda_geom *g, const uint64_t *hbase,
			   uint64_t canon_align)
{
	uint64_t row = g->head_major ? (uint64_t)g->head_dim * g->esize : g->plane_bytes;
	uint64_t x = canon_align | g->block_stride | g->plane_bytes | row;

	if (g->planes > 1)
		x |= g->plane_stride;
	for (uint32_t l = 0; l < g->layers; l++)
		x |= hbase[l];
	for (unsigned w = 16; w > 1; w >>= 1)
		if (!(x & (w - 1)))
			return w;
	return 1;
}

namespace {

/* Kernel arguments for a batch; cudaErrorInvalidValue if width does not fit. */
cudaError_t make_args(const struct kv_cuda_geom *g, const uint32_t *blocks,
		      const uint64_t *canon, uint32_t n, unsigned width, xfer_args *a)
{
	uint64_t row = (uint64_t)g->head_dim * g->esize;
	uint64_t pv;

	if (width != 1 && width != 2 && width != 4 && width != 8 && width != 16)
		return cudaErrorInvalidValue;
	if (g->plane_bytes % width || (g->head_major && row % width))
		return cudaErrorInvalidValue;
	pv = g->plane_bytes / width;
	if (pv == 0 || pv >= (1ull << 31))
		return cudaErrorInvalidValue;
	/*
	 * Unit indices stay below 2^31 so that they divide with a multiply-high
	 * (4 TiB a launch at 16-byte vectors) and the grid-stride step cannot
	 * wrap (the grid is at most SMs x occupancy CTAs).
	 */
	if ((uint64_t)n * g->layers * g->planes * ((pv + CHUNK_VECS - 1) / CHUNK_VECS) >=
	    (1ull << 31))
		return cudaErrorInvalidValue;

	a->layer_base = g->layer_base;
	a->blocks = blocks;
	a->canon = canon;
	a->plane_stride = g->plane_stride;
	a->block_stride = g->block_stride;
	a->plane_bytes = g->plane_bytes;
	a->plane_vecs = (uint32_t)pv;
	a->div_chunks = make_fastdiv((uint32_t)((pv + CHUNK_VECS - 1) / CHUNK_VECS));
	a->div_lp = make_fastdiv(g->layers * g->planes);
	a->div_planes = make_fastdiv(g->planes);
	a->units = n * a->div_lp.d * a->div_chunks.d;
	a->T = g->block_tokens;
	a->rv = g->head_major ? (uint32_t)(row / width) : 1;
	a->div_rv = make_fastdiv(a->rv);
	a->div_h = make_fastdiv(g->head_major ? g->kv_heads : 1);
	return cudaSuccess;
}

} // namespace

cudaError_t kv_cuda_launch(const struct kv_cuda_geom *g, int dir, const uint32_t *blocks,
			   const uint64_t *canon, uint32_t n, unsigned width,
			   unsigned max_ctas, cudaStream_t stream)
{
	xfer_args a;
	cudaError_t e;

	if (!n)
		return cudaSuccess;
	e = make_args(g, blocks, canon, n, width, &a);
	if (e != cudaSuccess)
		return e;

	bool hm = g->head_major != 0, pack = dir == KV_CUDA_PACK;

	switch (width) {
	case 16:
		return launch_width<uint4>(a, hm, pack, max_ctas, stream);
	case 8:
		return launch_width<uint2>(a, hm, pack, max_ctas, stream);
	case 4:
		return launch_width<unsigned int>(a, hm, pack, max_ctas, stream);
	case 2:
		return launch_width<unsigned short>(a, hm, pack, max_ctas, stream);
	default:
		return launch_width<unsigned char>(a, hm, pack, max_ctas, stream);
	}
}
