// moe_rows.cu — moving rows in and out of the expert-grouped order of the engine's mixture of
// experts (docs/ENGINE.md): the grouping itself is moe_route.cu's (offsets, perm, slot).
// CPU twins: src/backends/cuda/twins.ts (gatherRowsTwin, moeCombineTwin). nvcc (sm_80, sm_90a) and NVRTC.
//
// ABI: gather_rows(const unsigned char* src, const int* perm, unsigned char* dst, int rows, int rowBytes)
//        dst row s = src row perm[s] (rows of rowBytes bytes, rowBytes % 4 == 0; 16-byte copies when
//        rowBytes % 16 == 0): the int8 activations, their per-row scales (rowBytes = 4) or fp16
//        rows, put in expert order. grid = (rows), block = 128.
//      moe_combine(const u16* y, const int* slot, const float* weights, u16* residual, int M, int K, int dim)
//        residual[r] = fp16(residual[r] + Σ_k weights[r, k] · y[slot[r, k]]) for the M rows, the
//        sum in fp32 in k order (most probable expert first), one rounding: the experts' fp16
//        outputs y [M·K, dim] (grouped order) back into the residual stream. grid = (M),
//        block = 256; dim % 8 == 0.

#include "ptx.cuh"

extern "C" __global__ void __launch_bounds__(128)
    gather_rows(const unsigned char* __restrict__ src, const int* __restrict__ perm, unsigned char* __restrict__ dst,
                int rows, int rowBytes) {
  pdl_wait();
  pdl_trigger();
  const int s = blockIdx.x;
  if (s >= rows) return;
  const unsigned char* from = src + (u64)perm[s] * rowBytes;
  unsigned char* to = dst + (u64)s * rowBytes;
  if (rowBytes % 16 == 0) {
    for (int i = threadIdx.x * 16; i < rowBytes; i += 128 * 16) *(U4*)(to + i) = *(const U4*)(from + i);
  } else {
    for (int i = threadIdx.x * 4; i < rowBytes; i += 128 * 4) *(u32*)(to + i) = *(const u32*)(from + i);
  }
}

extern "C" __global__ void __launch_bounds__(256)
    moe_combine(const u16* __restrict__ y, const int* __restrict__ slot, const float* __restrict__ weights,
                u16* __restrict__ residual, int M, int K, int dim) {
  pdl_wait();
  pdl_trigger();
  const int r = blockIdx.x;
  if (r >= M) return;
  u16* row = residual + (u64)r * dim;
  for (int i = threadIdx.x * 8; i < dim; i += 256 * 8) {
    float acc[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[j] = 0.0f;
    for (int k = 0; k < K; ++k) {
      const float w = weights[(u64)r * K + k];
      const U4 v = *(const U4*)(y + (u64)slot[(u64)r * K + k] * dim + i);
      const u32 h[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        acc[2 * j] = ffma_rn(w, h2f(h[j] & 0xFFFF), acc[2 * j]);
        acc[2 * j + 1] = ffma_rn(w, h2f(h[j] >> 16), acc[2 * j + 1]);
      }
    }
    const U4 rv = *(const U4*)(row + i);
    const u32 rr[4] = {rv.x, rv.y, rv.z, rv.w};
    u32 out[4];
#pragma unroll
    for (int j = 0; j < 4; ++j)
      out[j] = f2h_rn(fadd_rn(h2f(rr[j] & 0xFFFF), acc[2 * j])) | (f2h_rn(fadd_rn(h2f(rr[j] >> 16), acc[2 * j + 1])) << 16);
    *(U4*)(row + i) = U4{out[0], out[1], out[2], out[3]};
  }
}
