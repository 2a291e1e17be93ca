// W4A8 integer-scale (IS, g128) GEMM prototype on sm_90a wgmma: owns the kernels only
// (harness.cu drives them). Semantics: docs/QUANT_SPEC.md —
//   acc[t,n] = Σ_g P_g[t,n]·ŝ[g,n] (int32), y = fp32(fp32(acc)·s_x[t])·2^-k_n → fp16.
// Prototype step 1: weights are int8 q[n,k] ∈ [-8,7] pre-unpacked in global memory ([N,K] row-major,
// i.e. K-major like A), so both operands go global → smem by cp.async unchanged.
// Tile: BM=128 (2 consumer warpgroups × m64) × BN=128, BK=128 (= one g128 group per stage),
// STAGES-deep cp.async ring, 128B-swizzled smem tiles, wgmma.m64n128k32.s32.s8.s8 from smem.
// Kernel A (`w4a8_is_wgmma_serial`): per group 4 wgmmas (first with scale-d=0), wait 0, acc += P·ŝ.
// Kernel B (`w4a8_is_wgmma_dbl`): two P register sets: group g+1's wgmmas are in flight while the
// IMAD epilogue of group g runs (wait_group 1).
#include <cstdint>
#include <cuda_fp16.h>

#include "wgmma_m64n128k32.inc"

namespace wg {

constexpr int BM = 128, BN = 128, BK = 128, STAGES = 6, THREADS = 256;
constexpr int TILE_BYTES = BM * BK;                 // 16 KB (A) — B is the same size (BN*BK)
constexpr int STAGE_BYTES = 2 * TILE_BYTES;         // A + B
constexpr int SMEM_BYTES = STAGES * STAGE_BYTES + 1024;  // +1024 for manual 1024-B alignment

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// K-major operand, 128-byte swizzle: rows of 128 B, 8-row atoms 1024 B apart (SBO), LBO unused (1).
__device__ __forceinline__ uint64_t make_desc_sw128(uint32_t addr) {
  uint64_t d = 0;
  d |= static_cast<uint64_t>((addr & 0x3FFFF) >> 4);
  d |= static_cast<uint64_t>(1) << 16;
  d |= static_cast<uint64_t>(1024 >> 4) << 32;
  d |= static_cast<uint64_t>(1) << 62;
  return d;
}

__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }
__device__ __forceinline__ void fence_operands(int (&d)[64]) {
#pragma unroll
  for (int i = 0; i < 64; ++i) asm volatile("" : "+r"(d[i])::"memory");
}

// One stage: A rows m0.. (128 × 128 B) and B rows n0.. (128 × 128 B), 16-B chunk c of row r stored at
// r*128 + ((c ^ (r&7)) << 4)  (the 128B swizzle pattern the descriptor's mode 1 expects, base 1024-aligned).
__device__ __forceinline__ void load_stage(uint32_t sA, uint32_t sB, const int8_t* A, const int8_t* B, int K,
                                           int m0, int n0, int kt) {
  // Thread handles chunk c = tid%8 of rows r0 + 32·i: the swizzled column is the same for every i.
  const int tid = threadIdx.x, r0 = tid >> 3, c = tid & 7;
  const uint32_t off0 = r0 * 128 + ((c ^ (r0 & 7)) << 4);
  const int8_t* a = A + static_cast<size_t>(m0 + r0) * K + kt * BK + c * 16;
  const int8_t* b = B + static_cast<size_t>(n0 + r0) * K + kt * BK + c * 16;
  const size_t step = static_cast<size_t>(32) * K;
#pragma unroll
  for (int i = 0; i < (BM * BK / 16) / THREADS; ++i) {
    cp_async16(sA + off0 + i * 32 * 128, a + i * step);
    cp_async16(sB + off0 + i * 32 * 128, b + i * step);
  }
}

// 4 k-steps of 32 over one 128-wide stage; the first starts P fresh (scale-d = 0).
__device__ __forceinline__ void group_mma(int (&P)[64], uint32_t sA, uint32_t sB) {
#pragma unroll
  for (int ks = 0; ks < 4; ++ks)
    wgmma_m64n128k32_s8(P, make_desc_sw128(sA + ks * 32), make_desc_sw128(sB + ks * 32), ks == 0 ? 0 : 1);
}

// Scales this thread needs for one group: columns j*8 + (lane%4)*2 + {0,1}, j = 0..15.
__device__ __forceinline__ void load_scales(int2 (&s)[16], const int32_t* S, int N, int g, int n0) {
  const int lane = threadIdx.x & 31;
  const int32_t* row = S + static_cast<size_t>(g) * N + n0 + (lane & 3) * 2;
#pragma unroll
  for (int j = 0; j < 16; ++j) s[j] = __ldg(reinterpret_cast<const int2*>(row + j * 8));
}

__device__ __forceinline__ void apply_group(int (&acc)[64], const int (&P)[64], const int2 (&s)[16]) {
#pragma unroll
  for (int i = 0; i < 64; ++i) {
    const int sc = (i & 1) ? s[i >> 2].y : s[i >> 2].x;
    acc[i] = static_cast<int>(static_cast<unsigned>(acc[i]) + static_cast<unsigned>(P[i]) * static_cast<unsigned>(sc));
  }
}

// As apply_group, scales read straight from global (L1/L2-resident) to keep fewer registers live.
__device__ __forceinline__ void apply_group_ldg(int (&acc)[64], const int (&P)[64], const int32_t* S, int N, int g,
                                                int n0) {
  const int lane = threadIdx.x & 31;
  const int32_t* row = S + static_cast<size_t>(g) * N + n0 + (lane & 3) * 2;
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    int2 s;  // volatile asm: keeps ptxas from hoisting all groups' scale loads (register pressure)
    asm volatile("ld.global.nc.v2.s32 {%0, %1}, [%2];\n" : "=r"(s.x), "=r"(s.y) : "l"(row + j * 8));
#pragma unroll
    for (int h = 0; h < 4; ++h) {
      const int i = j * 4 + h;
      const int sc = (h & 1) ? s.y : s.x;
      acc[i] = static_cast<int>(static_cast<unsigned>(acc[i]) + static_cast<unsigned>(P[i]) * static_cast<unsigned>(sc));
    }
  }
}

__device__ __forceinline__ void epilogue(const int (&acc)[64], const float* sx, const int8_t* shift, __half* out,
                                         int N, int m0, int n0) {
  const int tid = threadIdx.x, wgi = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31;
  const int rowBase = m0 + wgi * 64 + warp * 16 + (lane >> 2);
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = rowBase + 8 * h;
    const float s = sx[row];
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const int col = n0 + j * 8 + (lane & 3) * 2;
      __half2 v;
      float y[2];
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int k = shift[col + c];
        const float p2 = __int_as_float((127 - k) << 23);  // 2^-k exactly, k in [0,30]
        y[c] = __fmul_rn(__fmul_rn(__int2float_rn(acc[j * 4 + h * 2 + c]), s), p2);
      }
      v = __floats2half2_rn(y[0], y[1]);
      *reinterpret_cast<__half2*>(out + static_cast<size_t>(row) * N + col) = v;
    }
  }
}

// Grouped raster: consecutive blocks walk groupM m-tiles down a column before moving to the next
// n-tile, so a wave of ~132 blocks touches groupM A row-panels and ~132/groupM B panels (L2 reuse).
// groupM = 1 is plain row-major raster (blockIdx.x = n-tile fastest).
__device__ __forceinline__ void tile_coords(int groupM, int& m0, int& n0) {
  const int nN = gridDim.x, nM = gridDim.y;
  const int bid = blockIdx.x + blockIdx.y * nN;
  const int groupSize = groupM * nN, first = (bid / groupSize) * groupM;
  const int gsz = min(nM - first, groupM), r = bid % groupSize;
  m0 = (first + r % gsz) * BM;
  n0 = (r / gsz) * BN;
}

}  // namespace wg

// Requires M % 128 == 0, N % 128 == 0, K % 128 == 0; grid (N/128, M/128), block 256, smem wg::SMEM_BYTES.
extern "C" __global__ void __launch_bounds__(wg::THREADS, 1)
    w4a8_is_wgmma_serial(const int8_t* __restrict__ A, const float* __restrict__ sx, const int8_t* __restrict__ B,
                         const int32_t* __restrict__ S, const int8_t* __restrict__ shift, __half* __restrict__ out,
                         int M, int N, int K, int groupM) {
  using namespace wg;
  extern __shared__ uint8_t smem_raw[];
  const uint32_t base = (smem_u32(smem_raw) + 1023) & ~1023u;
  int m0, n0;
  tile_coords(groupM, m0, n0);
  const int KT = K / BK;
  const int wgi = threadIdx.x >> 7;
  int acc[64], P[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) acc[i] = 0;

#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < KT) load_stage(base + s * STAGE_BYTES, base + s * STAGE_BYTES + TILE_BYTES, A, B, K, m0, n0, s);
    cp_async_commit();
  }
  for (int kt = 0; kt < KT; ++kt) {
    cp_async_wait<STAGES - 2>();
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();
    const int nk = kt + STAGES - 1;  // refill the slot consumed in iteration kt-1 (its wgmmas finished)
    if (nk < KT) {
      const uint32_t st = base + (nk % STAGES) * STAGE_BYTES;
      load_stage(st, st + TILE_BYTES, A, B, K, m0, n0, nk);
    }
    cp_async_commit();
    const uint32_t st = base + (kt % STAGES) * STAGE_BYTES;
    int2 sc[16];
    wgmma_fence();
    group_mma(P, st + wgi * 64 * 128, st + TILE_BYTES);
    wgmma_commit();
    load_scales(sc, S, N, kt, n0);
    wgmma_wait<0>();
    fence_operands(P);
    apply_group(acc, P, sc);
  }
  epilogue(acc, sx, shift, out, N, m0, n0);
}

// Same contract; P double-buffered so one group's wgmmas overlap the previous group's IMADs.
// Refill distance STAGES-2: the slot refilled in iteration kt was read by group kt-2, which is
// complete (wait_group 1 in iteration kt-1) on every warpgroup once the barrier is passed.
// KT_FIXED = K/128 is a template constant so the loop unrolls completely: with a run-time loop the
// P sets crossing the back-edge become register copies of in-flight accumulators, and ptxas
// serializes every wgmma (C7514). Instantiated for K = 1024 and 4096.
template <int KT_FIXED>
__global__ void __launch_bounds__(wg::THREADS, 1)
    w4a8_is_wgmma_dbl(const int8_t* __restrict__ A, const float* __restrict__ sx, const int8_t* __restrict__ B,
                      const int32_t* __restrict__ S, const int8_t* __restrict__ shift, __half* __restrict__ out,
                      int M, int N, int K, int groupM) {
  using namespace wg;
  extern __shared__ uint8_t smem_raw[];
  const uint32_t base = (smem_u32(smem_raw) + 1023) & ~1023u;
  int m0, n0;
  tile_coords(groupM, m0, n0);
  constexpr int KT = KT_FIXED;
  const int wgi = threadIdx.x >> 7;
  int acc[64], P0[64], P1[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) acc[i] = 0;

#pragma unroll
  for (int s = 0; s < STAGES - 2; ++s) {
    if (s < KT) load_stage(base + s * STAGE_BYTES, base + s * STAGE_BYTES + TILE_BYTES, A, B, K, m0, n0, s);
    cp_async_commit();
  }
  // Prologue stage issue for group 0 (peeled so every loop step has a previous group to fold).
  auto issue = [&](int kt, int (&Pcur)[64]) {
    cp_async_wait<STAGES - 3>();
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();
    const int nk = kt + STAGES - 2;
    if (nk < KT) {
      const uint32_t st = base + (nk % STAGES) * STAGE_BYTES;
      load_stage(st, st + TILE_BYTES, A, B, K, m0, n0, nk);
    }
    cp_async_commit();
    const uint32_t st = base + (kt % STAGES) * STAGE_BYTES;
    wgmma_fence();
    group_mma(Pcur, st + wgi * 64 * 128, st + TILE_BYTES);
    wgmma_commit();
  };
  issue(0, P0);
#pragma unroll
  for (int kt = 1; kt < KT - 1; kt += 2) {  // KT is even (host checks K % 256 == 0)
    issue(kt, P1);
    wgmma_wait<1>();
    fence_operands(P0);
    apply_group_ldg(acc, P0, S, N, kt - 1, n0);
    issue(kt + 1, P0);
    wgmma_wait<1>();
    fence_operands(P1);
    apply_group_ldg(acc, P1, S, N, kt, n0);
  }
  issue(KT - 1, P1);
  wgmma_wait<1>();
  fence_operands(P0);
  apply_group_ldg(acc, P0, S, N, KT - 2, n0);
  wgmma_wait<0>();
  fence_operands(P1);
  apply_group_ldg(acc, P1, S, N, KT - 1, n0);
  epilogue(acc, sx, shift, out, N, m0, n0);
}

template __global__ void w4a8_is_wgmma_dbl<8>(const int8_t*, const float*, const int8_t*, const int32_t*,
                                              const int8_t*, __half*, int, int, int, int);
template __global__ void w4a8_is_wgmma_dbl<32>(const int8_t*, const float*, const int8_t*, const int32_t*,
                                               const int8_t*, __half*, int, int, int, int);
