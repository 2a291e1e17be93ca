// layer_ops.cu — the row-wise operations of a decoder layer on fp16 activations: embedding gather,
// RMSNorm (→ fp16, or fused → per-token int8 + scale for a W4A8 linear) and SwiGLU (→ fp16, or
// fused → int8 + scale). CPU twins: src/backends/cuda/twins.ts. nvcc (sm_80, sm_90a) and NVRTC.
//
// Semantics (fp32 arithmetic on fp16 inputs, fp16 results):
//   rmsnorm: inv = 1/sqrt(Σx²/dim + eps) (sum in fp32, block order), y = fp16(w·fp32(x·inv))
//   swiglu:  gu row = [gate (H) | up (H)], y = fp16(silu(g)·u), silu(g) = g / (1 + e^-g)
//   *_q8:    y as above (the fp16-rounded values), then exactly quantize_act.cu's per-token int8
//            (amax of |y|, sx = amax/127, q = clamp(rint(y·(127/amax)), ±127), `.rn` PTX), so the
//            fused kernel equals "fp16 kernel, then quantize_act" bit for bit.
// ABI (grid = (rows), block = 256, no dynamic smem; dim, H multiples of 8; 16-byte aligned rows):
//   embed_rows(const u16* table, const int* ids, u16* out, int vocab, int dim)      ids outside
//       [0, vocab) give a zero row (hosts validate prompts; sampled ids are in range)
//   rmsnorm_f16(const u16* x, const u16* w, const int* rows, u16* out, int dim, float eps)
//   rmsnorm_q8(const u16* x, const u16* w, const int* rows, signed char* q, float* sx, int dim, float eps)
//       rows: input row of output row r (a gather, e.g. each sequence's last token), or 0 = r
//   swiglu_f16(const u16* gu, u16* out, int H)
//   swiglu_q8(const u16* gu, signed char* q, float* sx, int H)

#include "ptx.cuh"

#define LO_THREADS 256

struct alignas(8) U2 { u32 x, y; };

DEVI float fdiv_rn(float a, float b) {
  float d;
  asm("div.rn.f32 %0, %1, %2;" : "=f"(d) : "f"(a), "f"(b));
  return d;
}
DEVI int f2i_rni(float a) {
  int d;
  asm("cvt.rni.s32.f32 %0, %1;" : "=r"(d) : "f"(a));
  return d;
}
DEVI u32 pack_h2(u16 lo, u16 hi) { return (u32)lo | ((u32)hi << 16); }
DEVI u16 lo16(u32 w) { return (u16)(w & 0xFFFF); }
DEVI u16 hi16(u32 w) { return (u16)(w >> 16); }

// Block-wide reductions (LO_THREADS threads); `red` holds one slot per warp. Every thread gets the result.
DEVI float block_sum(float v, float* red) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // `red` may still be read by a previous reduction
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < LO_THREADS / 32; ++i) s += red[i];  // fixed order: deterministic
  return s;
}
DEVI u32 block_max_u32(u32 m, u32* red) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const u32 t = __shfl_xor_sync(0xffffffffu, m, o);
    m = m > t ? m : t;
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) red[warp] = m;
  __syncthreads();
  u32 r = 0;
#pragma unroll
  for (int i = 0; i < LO_THREADS / 32; ++i) r = r > red[i] ? r : red[i];
  return r;
}

// |y| of fp16 values orders like the bit patterns & 0x7FFF (NaN aside)
DEVI u32 absmax_bits(const U4& v) {
  const u32 w[4] = {v.x, v.y, v.z, v.w};
  u32 m = 0;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const u32 a = w[i] & 0x7FFFu, b = (w[i] >> 16) & 0x7FFFu;
    m = m > a ? m : a;
    m = m > b ? m : b;
  }
  return m;
}
DEVI int quant1(float x, float inv) {
  const int q = f2i_rni(fmul_rn(x, inv));
  return q > 127 ? 127 : (q < -127 ? -127 : q);
}
// 8 fp16 values → 8 int8 (little-endian)
DEVI U2 quantize8(const U4& v, float inv) {
  const u32 w[4] = {v.x, v.y, v.z, v.w};
  u32 o[2] = {0, 0};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int q0 = quant1(h2f(lo16(w[i])), inv), q1 = quant1(h2f(hi16(w[i])), inv);
    o[i >> 1] |= (((u32)q0 & 0xFF) | (((u32)q1 & 0xFF) << 8)) << ((i & 1) * 16);
  }
  U2 r;
  r.x = o[0];
  r.y = o[1];
  return r;
}
// The per-token scale and the multiplier of quantize_act.cu from the row's max |y| bits.
DEVI float scale_of(u32 amax_bits, float* inv) {
  const float amax = h2f((u16)amax_bits);
  *inv = amax > 0.f ? fdiv_rn(127.f, amax) : 0.f;
  return amax > 0.f ? fdiv_rn(amax, 127.f) : 0.f;
}

extern "C" __global__ void __launch_bounds__(LO_THREADS)
    embed_rows(const u16* __restrict__ table, const int* __restrict__ ids, u16* __restrict__ out, int vocab, int dim) {
  const int r = blockIdx.x, id = ids[r];
  const bool ok = id >= 0 && id < vocab;
  const U4* src = (const U4*)(table + (u64)(ok ? id : 0) * dim);
  U4* dst = (U4*)(out + (u64)r * dim);
  const U4 zero = {0u, 0u, 0u, 0u};
  for (int i = threadIdx.x; i < (dim >> 3); i += LO_THREADS) dst[i] = ok ? src[i] : zero;
}

// The normalized 8 values of chunk i (fp16-rounded), given the row's 1/rms.
DEVI U4 norm8(const U4& xv, const U4& wv, float inv) {
  const u32 xs[4] = {xv.x, xv.y, xv.z, xv.w}, ws[4] = {wv.x, wv.y, wv.z, wv.w};
  u32 o[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const u16 a = f2h_rn(fmul_rn(h2f(lo16(ws[j])), fmul_rn(h2f(lo16(xs[j])), inv)));
    const u16 b = f2h_rn(fmul_rn(h2f(hi16(ws[j])), fmul_rn(h2f(hi16(xs[j])), inv)));
    o[j] = pack_h2(a, b);
  }
  U4 r;
  r.x = o[0]; r.y = o[1]; r.z = o[2]; r.w = o[3];
  return r;
}

DEVI float row_inv_rms(const U4* xr, int nv, int dim, float eps, float* red) {
  float ss = 0.f;
  for (int i = threadIdx.x; i < nv; i += LO_THREADS) {
    const U4 v = xr[i];
    const u32 w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float a = h2f(lo16(w[j])), b = h2f(hi16(w[j]));
      ss = ffma_rn(a, a, ss);
      ss = ffma_rn(b, b, ss);
    }
  }
  ss = block_sum(ss, red);
  return fdiv_rn(1.f, sqrtf(fadd_rn(fdiv_rn(ss, (float)dim), eps)));
}

extern "C" __global__ void __launch_bounds__(LO_THREADS)
    rmsnorm_f16(const u16* __restrict__ x, const u16* __restrict__ w, const int* __restrict__ rows, u16* __restrict__ out,
                int dim, float eps) {
  __shared__ float red[LO_THREADS / 32];
  const int r = blockIdx.x, src = rows ? rows[r] : r, nv = dim >> 3;
  const U4* xr = (const U4*)(x + (u64)src * dim);
  const U4* wr = (const U4*)w;
  const float inv = row_inv_rms(xr, nv, dim, eps, red);
  U4* o = (U4*)(out + (u64)r * dim);
  for (int i = threadIdx.x; i < nv; i += LO_THREADS) o[i] = norm8(xr[i], wr[i], inv);
}

extern "C" __global__ void __launch_bounds__(LO_THREADS)
    rmsnorm_q8(const u16* __restrict__ x, const u16* __restrict__ w, const int* __restrict__ rows, signed char* __restrict__ q,
               float* __restrict__ sx, int dim, float eps) {
  __shared__ float red[LO_THREADS / 32];
  __shared__ u32 redm[LO_THREADS / 32];
  const int r = blockIdx.x, src = rows ? rows[r] : r, nv = dim >> 3;
  const U4* xr = (const U4*)(x + (u64)src * dim);
  const U4* wr = (const U4*)w;
  const float inv = row_inv_rms(xr, nv, dim, eps, red);
  u32 m = 0;
  for (int i = threadIdx.x; i < nv; i += LO_THREADS) {
    const u32 a = absmax_bits(norm8(xr[i], wr[i], inv));
    m = m > a ? m : a;
  }
  float qinv;
  const float s = scale_of(block_max_u32(m, redm), &qinv);
  if (threadIdx.x == 0) sx[r] = s;
  U2* qr = (U2*)(q + (u64)r * dim);
  for (int i = threadIdx.x; i < nv; i += LO_THREADS) qr[i] = quantize8(norm8(xr[i], wr[i], inv), qinv);
}

DEVI float silu_mul(float g, float u) { return fmul_rn(fdiv_rn(g, fadd_rn(1.f, expf(-g))), u); }

DEVI U4 swiglu8(const U4& gv, const U4& uv) {
  const u32 gs[4] = {gv.x, gv.y, gv.z, gv.w}, us[4] = {uv.x, uv.y, uv.z, uv.w};
  u32 o[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const u16 a = f2h_rn(silu_mul(h2f(lo16(gs[j])), h2f(lo16(us[j]))));
    const u16 b = f2h_rn(silu_mul(h2f(hi16(gs[j])), h2f(hi16(us[j]))));
    o[j] = pack_h2(a, b);
  }
  U4 r;
  r.x = o[0]; r.y = o[1]; r.z = o[2]; r.w = o[3];
  return r;
}

extern "C" __global__ void __launch_bounds__(LO_THREADS)
    swiglu_f16(const u16* __restrict__ gu, u16* __restrict__ out, int H) {
  const int r = blockIdx.x, nv = H >> 3;
  const U4* g = (const U4*)(gu + (u64)r * 2 * H);
  const U4* u = g + nv;
  U4* o = (U4*)(out + (u64)r * H);
  for (int i = threadIdx.x; i < nv; i += LO_THREADS) o[i] = swiglu8(g[i], u[i]);
}

extern "C" __global__ void __launch_bounds__(LO_THREADS)
    swiglu_q8(const u16* __restrict__ gu, signed char* __restrict__ q, float* __restrict__ sx, int H) {
  __shared__ u32 redm[LO_THREADS / 32];
  const int r = blockIdx.x, nv = H >> 3;
  const U4* g = (const U4*)(gu + (u64)r * 2 * H);
  const U4* u = g + nv;
  u32 m = 0;
  for (int i = threadIdx.x; i < nv; i += LO_THREADS) {
    const u32 a = absmax_bits(swiglu8(g[i], u[i]));
    m = m > a ? m : a;
  }
  float qinv;
  const float s = scale_of(block_max_u32(m, redm), &qinv);
  if (threadIdx.x == 0) sx[r] = s;
  U2* qr = (U2*)(q + (u64)r * H);
  for (int i = threadIdx.x; i < nv; i += LO_THREADS) qr[i] = quantize8(swiglu8(g[i], u[i]), qinv);
}
