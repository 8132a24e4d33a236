/* SPDX-License-Identifier: MIT */
/*
 * emul.h - kv_cuda_launch() walked on the host: include after
 * kernels/kv_pack_cuda.cu (whose kernel body, xfer_warp/xfer_unit, is
 * __host__ __device__). Used by test_pack_emul: a check of the kernel
 * body's index arithmetic on the host, not a stand-in for a GPU run.
 */
#ifndef KV_GPU_EMUL_H
#define KV_GPU_EMUL_H

template <typename V, bool HM, bool PACK>
static inline void emul(const xfer_args &a, unsigned grid)
{
	uint32_t warps = grid * WARPS;

	for (uint32_t w = 0; w < warps; w++)
		for (uint32_t lane = 0; lane < WARP; lane++)
			xfer_warp<V, HM, PACK>(a, w, warps, lane);
}

template <typename V>
static inline void emul_width(const xfer_args &a, bool hm, bool pack, unsigned grid)
{
	if (hm)
		pack ? emul<V, true, true>(a, grid) : emul<V, true, false>(a, grid);
	else
		pack ? emul<V, false, true>(a, grid) : emul<V, false, false>(a, grid);
}

/* kv_cuda_launch() with the grid walked on the host, warp by warp, lane by
 * lane (lanes never share an output byte, so the order does not matter). */
static inline int emulate(const struct kv_cuda_geom *g, int dir, const uint32_t *blocks,
			  const uint64_t *canon, uint32_t n, unsigned width, unsigned grid)
{
	xfer_args a;
	bool hm = g->head_major, pack = dir == KV_CUDA_PACK;

	if (make_args(g, blocks, canon, n, width, &a) != cudaSuccess)
		return -1;
	switch (width) {
	case 16: emul_width<uint4>(a, hm, pack, grid); break;
	case 8: emul_width<uint2>(a, hm, pack, grid); break;
	case 4: emul_width<unsigned int>(a, hm, pack, grid); break;
	case 2: emul_width<unsigned short>(a, hm, pack, grid); break;
	default: emul_width<unsigned char>(a, hm, pack, grid); break;
	}
	return 0;
}

#endif /* KV_GPU_EMUL_H */
