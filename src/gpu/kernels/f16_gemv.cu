// f16_gemv.cu — fp16-weight GEMMs of decode size (M ≤ 16 tokens): out[M, N] = x[M, K]·Wᵀ (+ residual)
// with W fp16 [N, K] row-major (the HF layout the engine keeps FP16 linears in), fp32 accumulation,
// one rounding to fp16. What it is for: the FP16 mixture of experts inside the graph-captured
// decode step (cuBLAS takes its row counts from the host, so it cannot run only the experts a step
// routes to without a sync); its dense entries run the same code on one matrix, so `intscale bench
// gemm` can hold it against cuBLAS on the same shapes. nvcc (sm_80, sm_90a) and NVRTC.
//
// ABI: f16_gemv_v8 / _v16 (dense): (x, W, residual, out, M, N, K); grid (ceil(N / (16·FG_R_V8 or _V16))), block 256;
//        M ≤ 8 / 16, N % 16 == 0, K % 32 == 0; residual fp16 [M, N] or null.
//      f16_gemv_v8_moe / _v16_moe (grouped): (x, experts, active, offsets, out, N, K); grid
//        (ceil(N / (16·FG_R_V8 or _V16)), routed-expert slots): expert e = active[blockIdx.y] (-1: none)
//        multiplies rows [offsets[e], offsets[e + 1]) of x by the fp16 weights at experts[e].wp into
//        the same rows of out (w4_gemv.cu's grouped scheme and ptx.cuh's GvExpert entries; only the
//        weight pointer is read). An expert with more rows than the tile holds traps.
//
// Design: a block is 8 warps on FG_R_* 16-row weight tiles; warp w takes the k32 chunks w, w + 8, ... of
// K for all of them (each activation fragment serves all the tiles: at M = 16 the activations' re-reads
// from L2 would otherwise equal the weights' bytes), FG_UNROLL chunks loaded (16-byte loads straight into registers, weights first: they do not
// depend on the preceding kernel) before any is computed. Lane (g, q) loads k = 8q .. 8q + 7 of the
// chunk for weight rows g and g + 8 and for tokens g (and g + 8): permuting k the same way in both
// operands makes those words the m16n8k16 fragments of the chunk's two k16 steps (step s takes
// words 2s and 2s + 1 at fragment positions 2q and 2q + 8). The warps' fp32 sums are added in warp
// order through smem (a fixed order: deterministic), then one f2h per output.

#include "ptx.cuh"

#define FG_WARPS 8
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define FG_MINB 2  // blocks per SM: caps registers at 128 (sm_90: no spills at these unrolls)
#else
#define FG_MINB 1  // (sm_80 would spill the grouped v16 entry under that cap)
#endif
// per tile: FG_R_* 16-row weight tiles per block (each activation fragment loaded serves all of
// them), FG_UNROLL_* k32 chunks per warp loaded before any is computed (grouped-gemm.ts sets them)
#ifndef FG_R_V8
#define FG_R_V8 4
#define FG_UNROLL_V8 2
#endif
#ifndef FG_R_V16
#define FG_R_V16 2
#define FG_UNROLL_V16 4
#endif


template <int NT, int R, int FG_UNROLL>
DEVI void f16_gemv(const u16* __restrict__ X, const u16* __restrict__ W, const u16* __restrict__ residual,
                   u16* __restrict__ out, int M, int N, int K) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
  const int n0 = blockIdx.x * 16 * R, KC = K >> 5;
  // rows n0 + 16r + g and + 8 of tile r (a tile past N, when N % (16·R) != 0, re-reads the last one: never stored)
  const U4* wr[R][2];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int base = n0 + 16 * r < N ? n0 + 16 * r : N - 16;
    wr[r][0] = (const U4*)(W + (u64)(base + g) * K) + q;  // chunk c: + 4c
    wr[r][1] = (const U4*)(W + (u64)(base + g + 8) * K) + q;
  }
  const U4* xr[NT];
  bool xok[NT];
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    const int t = 8 * j + g;
    xok[j] = t < M;
    xr[j] = (const U4*)(X + (u64)(t < M ? t : 0) * K) + q;
  }
  float acc[R][NT][4];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[r][j][e] = 0.0f;

  for (int c0 = warp; c0 < KC; c0 += FG_WARPS * FG_UNROLL) {
    U4 a[FG_UNROLL][R][2], x[FG_UNROLL][NT];
#pragma unroll
    for (int u = 0; u < FG_UNROLL; ++u) {
      const int c = c0 + u * FG_WARPS;
      if (c < KC) {
#pragma unroll
        for (int r = 0; r < R; ++r) a[u][r][0] = ldg_stream16(wr[r][0] + 4 * c), a[u][r][1] = ldg_stream16(wr[r][1] + 4 * c);
      }
    }
    if (c0 == warp) pdl_wait();  // the activations are the preceding kernel's output
#pragma unroll
    for (int u = 0; u < FG_UNROLL; ++u) {
      const int c = c0 + u * FG_WARPS;
#pragma unroll
      for (int j = 0; j < NT; ++j) x[u][j] = c < KC && xok[j] ? xr[j][4 * c] : U4{0u, 0u, 0u, 0u};
    }
#pragma unroll
    for (int u = 0; u < FG_UNROLL; ++u) {
      if (c0 + u * FG_WARPS >= KC) continue;
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const u32 ra[4] = {a[u][r][0].x, a[u][r][0].y, a[u][r][0].z, a[u][r][0].w};
        const u32 rb[4] = {a[u][r][1].x, a[u][r][1].y, a[u][r][1].z, a[u][r][1].w};
#pragma unroll
        for (int s = 0; s < 2; ++s) {
          const u32 af[4] = {ra[2 * s], rb[2 * s], ra[2 * s + 1], rb[2 * s + 1]};
#pragma unroll
          for (int j = 0; j < NT; ++j) {
            const u32 xw[4] = {x[u][j].x, x[u][j].y, x[u][j].z, x[u][j].w};
            mma_f16(acc[r][j], af, xw[2 * s], xw[2 * s + 1]);
          }
        }
      }
    }
  }
  pdl_wait();     // (warps past the last chunk) the residual comes from preceding kernels too
  pdl_trigger();  // the next kernel may launch while this one reduces and writes

  // the warps' sums, added in warp order by all threads: value v = tid + i·256 of the block's R·NT·4·32
  __shared__ float red[FG_WARPS][R * NT * 4][32];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) red[warp][(r * NT + j) * 4 + e][lane] = acc[r][j][e];
  __syncthreads();
  constexpr int VALUES = R * NT * 4 * 32;
#pragma unroll
  for (int v = threadIdx.x; v < VALUES; v += 32 * FG_WARPS) {
    const int l = v & 31, je = v >> 5, e = je & 3, j = (je >> 2) % NT, r = (je >> 2) / NT;
    float y = red[0][je][l];
#pragma unroll
    for (int w = 1; w < FG_WARPS; ++w) y = fadd_rn(y, red[w][je][l]);
    const int t = 8 * j + 2 * (l & 3) + (e & 1), n = n0 + 16 * r + (l >> 2) + (e < 2 ? 0 : 8);  // c0, c1: row g; c2, c3: row g + 8
    if (t >= M || n0 + 16 * r >= N) continue;
    if (residual) y = fadd_rn(y, h2f(residual[(u64)t * N + n]));
    out[(u64)t * N + n] = f2h_rn(y);
  }
}

// (the v16 tile takes at most 8 rows as one n8 token tile: an expert's rows at batch 16 are ~4)
#define FG_CALL(CAP, X, W, RES, OUT, M)                                                                   \
  if constexpr (CAP == 8) f16_gemv<1, FG_R_V8, FG_UNROLL_V8>(X, W, RES, OUT, M, N, K);                   \
  else if (M <= 8) f16_gemv<1, FG_R_V16, FG_UNROLL_V16>(X, W, RES, OUT, M, N, K);                        \
  else f16_gemv<2, FG_R_V16, FG_UNROLL_V16>(X, W, RES, OUT, M, N, K);

template <int CAP> DEVI void f16_gemv_expert(const u16* X, const GvExpert* experts, const int* active, const int* offsets,
                                             u16* out, int N, int K) {
  int e = 0, r0 = 0, m = 0;
  if (!grouped_expert_rows<CAP>(active, offsets, e, r0, m)) return;
  FG_CALL(CAP, X + (u64)r0 * K, (const u16*)experts[e].wp, nullptr, out + (u64)r0 * N, m)
}

#define FG_DENSE(NAME, CAP)                                                                               \
  extern "C" __global__ void __launch_bounds__(32 * FG_WARPS, FG_MINB) NAME(const u16* __restrict__ x, const u16* __restrict__ W, \
                                                                 const u16* __restrict__ residual, u16* __restrict__ out, \
                                                                 int M, int N, int K) {                    \
    if (M > CAP) __trap();                                                                                \
    FG_CALL(CAP, x, W, residual, out, M)                                                                  \
  }
#define FG_GROUPED(NAME, CAP)                                                                             \
  extern "C" __global__ void __launch_bounds__(32 * FG_WARPS, FG_MINB) NAME(const u16* __restrict__ x, const GvExpert* __restrict__ experts, \
                                                                 const int* __restrict__ active, const int* __restrict__ offsets, \
                                                                 u16* __restrict__ out, int N, int K) {     \
    f16_gemv_expert<CAP>(x, experts, active, offsets, out, N, K);                                         \
  }
FG_DENSE(f16_gemv_v8, 8)
FG_DENSE(f16_gemv_v16, 16)
FG_GROUPED(f16_gemv_v8_moe, 8)
FG_GROUPED(f16_gemv_v16_moe, 16)
