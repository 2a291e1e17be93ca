// stream_read.cu — the memory roofline the small-M GEMMs are held against: a plain streaming read
// of exactly `bytes` (a W4 kernel's weight + scale bytes) with 16-byte loads that bypass L1, timed
// the same way as the GEMMs by `intscale bench gemm` (its `read` rows). Nothing is computed but a
// XOR of the words, written once per block so the loads cannot be removed.
//
// stream_read(const U4* src, u64 n16, u32* sink): grid (any), block (256), no smem; n16 = bytes / 16.
// Programmatic dependent launch (sm_90): the loads do not depend on the preceding kernel (they
// stand for weights), so they are issued first; only the store to `sink` waits for it, as the
// W4 GEMMs do with their activations.

#include "ptx.cuh"

#define SR_UNROLL 4  // 16-byte loads in flight per thread per round

extern "C" __global__ void __launch_bounds__(256) stream_read(const U4* __restrict__ src, u64 n16, u32* __restrict__ sink) {
  pdl_trigger();
  const u64 stride = (u64)gridDim.x * blockDim.x;
  u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
  u32 x = 0;
  for (; i + (SR_UNROLL - 1) * stride < n16; i += SR_UNROLL * stride) {
    U4 v[SR_UNROLL];
#pragma unroll
    for (int u = 0; u < SR_UNROLL; ++u) v[u] = ldg_stream16(src + i + u * stride);
#pragma unroll
    for (int u = 0; u < SR_UNROLL; ++u) x ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  for (; i < n16; i += stride) {
    const U4 v = ldg_stream16(src + i);
    x ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  // one word per block (a warp-wide XOR, then lane 0 of warp 0): enough to keep every load alive
#pragma unroll
  for (int o = 16; o; o >>= 1) x ^= __shfl_xor_sync(0xffffffffu, x, o);
  pdl_wait();
  if (threadIdx.x == 0) sink[blockIdx.x] = x;
}
