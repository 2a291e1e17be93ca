// quantize_act.cu — per-token dynamic int8 activation quantization (docs/QUANT_SPEC.md):
// fp16 X[M,K] → int8 Q[M,K] + fp32 sx[M], bit-exact with the CPU:
//   amax = max_k |X[t,k]|; sx = fp32(amax/127); inv = fp32(127/amax) (IEEE division);
//   q = clamp(rint(fp32(x·inv)), -127, 127); amax = 0 → sx = 0, q = 0.
// Compiles under nvcc (sm_80, sm_90a) and NVRTC; includes ptx.cuh and act_quant.cuh (shared helpers).
//
// ABI: quantize_act_per_token(const unsigned short* X, signed char* Q, float* sx, int M, int K)
//   grid = (M), block = (256), no dynamic smem. Limits: K % 8 == 0, 16-byte aligned X and Q rows
//   (K % 16 == 0 keeps Q rows 16-byte aligned; K % 8 == 0 needs only 8-byte alignment of Q).
// One block per row; the row quantization is a device function on values already loaded, so an
// RMSNorm kernel can fuse it later (normalize → quantize_row_values).

#include "ptx.cuh"
#include "act_quant.cuh"

DEVI u32 shfl_xor(u32 v, int m) {
  u32 r;
  asm volatile("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=r"(r) : "r"(v), "r"(m));
  return r;
}
DEVI void bar_sync() { asm volatile("bar.sync 0;\n" ::: "memory"); }

// |x| of fp16 values compares like the integers (bits & 0x7FFF) (NaN aside): max over 8 halves.
DEVI u32 absmax_bits8(const U4& v) {
  u32 m = 0;
  const u32 w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const u32 lo = w[i] & 0x7FFFu, hi = (w[i] >> 16) & 0x7FFFu;
    m = m > lo ? m : lo;
    m = m > hi ? m : hi;
  }
  return m;
}

// 8 fp16 values → 8 int8 (little-endian in a U2).
DEVI U2 quantize8(const U4& v, float inv) {
  const u32 w[4] = {v.x, v.y, v.z, v.w};
  u32 o[2] = {0, 0};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int q0 = quant1(h2f((u16)(w[i] & 0xFFFF)), inv), q1 = quant1(h2f((u16)(w[i] >> 16)), inv);
    o[i >> 1] |= (((u32)q0 & 0xFF) | (((u32)q1 & 0xFF) << 8)) << ((i & 1) * 16);
  }
  U2 r;
  r.x = o[0];
  r.y = o[1];
  return r;
}

// Block-wide max of a u32 (256 threads).
DEVI u32 block_max(u32 m) {
  __shared__ u32 s_red[8];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const u32 t = shfl_xor(m, o);
    m = m > t ? m : t;
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) s_red[warp] = m;
  bar_sync();
  m = s_red[0];
#pragma unroll
  for (int i = 1; i < 8; ++i) m = m > s_red[i] ? m : s_red[i];
  return m;
}

extern "C" __global__ void __launch_bounds__(256)
    quantize_act_per_token(const u16* __restrict__ X, signed char* __restrict__ Q, float* __restrict__ sx, int M, int K) {
  pdl_wait();
  pdl_trigger();
  const int row = blockIdx.x;
  if (row >= M) return;
  const U4* xr = (const U4*)(X + (u64)row * K);
  U2* qr = (U2*)(Q + (u64)row * K);
  const int nv = K >> 3;
  u32 m = 0;
  for (int i = threadIdx.x; i < nv; i += 256) m = (m > absmax_bits8(xr[i])) ? m : absmax_bits8(xr[i]);
  const float amax = h2f((u16)block_max(m));
  float inv;
  const float s = scale_of(amax, &inv);
  if (threadIdx.x == 0) sx[row] = s;
  for (int i = threadIdx.x; i < nv; i += 256) qr[i] = quantize8(xr[i], inv);
}
