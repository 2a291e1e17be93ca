// layer_ops.cu — the row-wise operations of a decoder layer on fp16 activations: embedding gather,
// RMSNorm (→ fp16, or fused → per-token int8 + scale for a W4A8 linear) and SwiGLU (→ fp16, or
// fused → int8 + scale). CPU twins: src/backends/cuda/twins.ts. nvcc (sm_80, sm_90a) and NVRTC.
//
// Semantics (fp32 arithmetic on fp16 inputs):
//   rmsnorm: inv = 1/sqrt(Σx²/dim + eps) (sum in fp32, block order), y = w·fp32(x·inv) (fp32)
//   swiglu:  gu row = [gate (H) | up (H)], y = silu(g)·u, silu(g) = g / (1 + e^-g) (fp32)
//   *_f16:   fp16(y)
//   *_q8:    the CPU engine's per-token int8 of the fp32 y (quant/act-quant: amax = max |y|,
//            sx = fp32(amax/127), q = clamp(rint(fp32(y·fp32(127/amax))), ±127), `.rn` PTX), i.e.
//            what a W4A8 linear of the CPU engine does with its fp32 input.
// Each row is read once: its values stay in registers between the reduction and the write
// (RMSNorm: 256 threads × 4 chunks of 8 = dim ≤ 8192; SwiGLU: 1024 threads × 2 chunks = H ≤ 16384).
// The RMSNorm weight is constant, so it is read before pdl_wait (while the preceding kernel finishes).
// ABI (grid = (rows), no dynamic smem; dim, H multiples of 8; 16-byte aligned rows):
//   embed_rows(const u16* table, const int* ids, u16* out, int vocab, int dim)      block 256; ids
//       outside [0, vocab) give a zero row (hosts validate prompts; sampled ids are in range)
//   rmsnorm_f16(const u16* x, const u16* w, const int* rows, u16* out, int dim, float eps)      block 256
//   rmsnorm_q8(const u16* x, const u16* w, const int* rows, signed char* q, float* sx, int dim, float eps)
//       rows: input row of output row r (a gather, e.g. each sequence's last token), or 0 = r
//   swiglu_f16(const u16* gu, u16* out, int H)                                     block 1024
//   swiglu_q8(const u16* gu, signed char* q, float* sx, int H)                      block 1024
//   quantize_f32(const float* x, signed char* q, float* sx, int dim)                  block 256: the
//       same per-token int8 of fp32 rows (attention's output for a W4A8 o projection), dim ≤ 8192

#include "ptx.cuh"
#include "act_quant.cuh"

#define LO_THREADS 256
#define SW_THREADS 1024
#define RMS_CHUNKS 4  // 8-value chunks per thread: dim <= 8192
#define SW_CHUNKS 2   // H <= 16384

DEVI u32 pack_h2(u16 lo, u16 hi) { return (u32)lo | ((u32)hi << 16); }
DEVI u16 lo16(u32 w) { return (u16)(w & 0xFFFF); }
DEVI u16 hi16(u32 w) { return (u16)(w >> 16); }

DEVI U4 to_f16x8(const float (&y)[8]) {
  U4 r;
  r.x = pack_h2(f2h_rn(y[0]), f2h_rn(y[1]));
  r.y = pack_h2(f2h_rn(y[2]), f2h_rn(y[3]));
  r.z = pack_h2(f2h_rn(y[4]), f2h_rn(y[5]));
  r.w = pack_h2(f2h_rn(y[6]), f2h_rn(y[7]));
  return r;
}
DEVI void unpack8(const U4& v, float (&f)[8]) {
  const u32 w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int j = 0; j < 4; ++j) f[2 * j] = h2f(lo16(w[j])), f[2 * j + 1] = h2f(hi16(w[j]));
}
extern "C" __global__ void __launch_bounds__(LO_THREADS)
    embed_rows(const u16* __restrict__ table, const int* __restrict__ ids, u16* __restrict__ out, int vocab, int dim) {
  pdl_wait();
  pdl_trigger();
  const int r = blockIdx.x, id = ids[r];
  const bool ok = id >= 0 && id < vocab;
  const U4* src = (const U4*)(table + (u64)(ok ? id : 0) * dim);
  U4* dst = (U4*)(out + (u64)r * dim);
  const U4 zero = {0u, 0u, 0u, 0u};
  for (int i = threadIdx.x; i < (dim >> 3); i += LO_THREADS) dst[i] = ok ? src[i] : zero;
}


// A row of fp16 values held in registers: chunk c (8 values) of thread t is chunk t + c·NT.
template <int NT, int CH>
struct RowChunks {
  float v[CH][8];
  bool in[CH];
};

// This thread's chunks of the RMSNorm weight (constant: read before pdl_wait, while the preceding
// kernel finishes).
template <int NT, int CH>
DEVI void load_norm_weight(const u16* __restrict__ w, int dim, U4 (&wv)[CH]) {
#pragma unroll
  for (int c = 0; c < CH; ++c) {
    const int i = threadIdx.x + c * NT;
    if (i < (dim >> 3)) wv[c] = ((const U4*)w)[i];
  }
}

// y = w·fp32(x·inv) for this thread's chunks of one row (RMSNorm), the row read once.
template <int NT, int CH>
DEVI void rmsnorm_row(const u16* __restrict__ x, const U4 (&wv)[CH], int dim, float eps, float* red, RowChunks<NT, CH>& y) {
  const U4* xr = (const U4*)x;
  const int nv = dim >> 3;
  float ss = 0.f;
#pragma unroll
  for (int c = 0; c < CH; ++c) {
    const int i = threadIdx.x + c * NT;
    y.in[c] = i < nv;
    if (y.in[c]) unpack8(xr[i], y.v[c]);
#pragma unroll
    for (int j = 0; j < 8; ++j) if (y.in[c]) ss = ffma_rn(y.v[c][j], y.v[c][j], ss);
  }
  ss = block_sum<NT>(ss, red);
  const float inv = fdiv_rn(1.f, sqrtf(fadd_rn(fdiv_rn(ss, (float)dim), eps)));
#pragma unroll
  for (int c = 0; c < CH; ++c) {
    if (!y.in[c]) continue;
    float wf[8];
    unpack8(wv[c], wf);
#pragma unroll
    for (int j = 0; j < 8; ++j) y.v[c][j] = fmul_rn(wf[j], fmul_rn(y.v[c][j], inv));
  }
}

// y = silu(g)·u for this thread's chunks of one [gate | up] row, read once.
template <int NT, int CH>
DEVI void swiglu_row(const u16* __restrict__ gu, int H, RowChunks<NT, CH>& y) {
  const U4* g = (const U4*)gu;
  const U4* u = g + (H >> 3);
  const int nv = H >> 3;
#pragma unroll
  for (int c = 0; c < CH; ++c) {
    const int i = threadIdx.x + c * NT;
    y.in[c] = i < nv;
    if (!y.in[c]) continue;
    float gf[8], uf[8];
    unpack8(g[i], gf);
    unpack8(u[i], uf);
#pragma unroll
    for (int j = 0; j < 8; ++j) y.v[c][j] = fmul_rn(fdiv_rn(gf[j], fadd_rn(1.f, expf(-gf[j]))), uf[j]);
  }
}

template <int NT, int CH>
DEVI void store_f16(const RowChunks<NT, CH>& y, u16* out) {
#pragma unroll
  for (int c = 0; c < CH; ++c)
    if (y.in[c]) ((U4*)out)[threadIdx.x + c * NT] = to_f16x8(y.v[c]);
}

// quant/act-quant of the row held in registers: amax, scale, int8.
template <int NT, int CH>
DEVI void store_q8(const RowChunks<NT, CH>& y, signed char* q, float* sx, float* red) {
  float m = 0.f;
#pragma unroll
  for (int c = 0; c < CH; ++c) if (y.in[c]) m = fmaxf(m, max_abs8(y.v[c]));
  float inv;
  const float s = scale_of(block_max<NT>(m, red), &inv);
  if (threadIdx.x == 0) *sx = s;
#pragma unroll
  for (int c = 0; c < CH; ++c)
    if (y.in[c]) ((U2*)q)[threadIdx.x + c * NT] = quantize8(y.v[c], inv);
}

extern "C" __global__ void __launch_bounds__(LO_THREADS)
    rmsnorm_f16(const u16* __restrict__ x, const u16* __restrict__ w, const int* __restrict__ rows, u16* __restrict__ out,
                int dim, float eps) {
  U4 wv[RMS_CHUNKS];
  load_norm_weight<LO_THREADS, RMS_CHUNKS>(w, dim, wv);
  pdl_wait();
  pdl_trigger();
  __shared__ float red[LO_THREADS / 32];
  const int r = blockIdx.x, src = rows ? rows[r] : r;
  RowChunks<LO_THREADS, RMS_CHUNKS> y;
  rmsnorm_row<LO_THREADS, RMS_CHUNKS>(x + (u64)src * dim, wv, dim, eps, red, y);
  store_f16(y, out + (u64)r * dim);
}

extern "C" __global__ void __launch_bounds__(LO_THREADS)
    rmsnorm_q8(const u16* __restrict__ x, const u16* __restrict__ w, const int* __restrict__ rows, signed char* __restrict__ q,
               float* __restrict__ sx, int dim, float eps) {
  U4 wv[RMS_CHUNKS];
  load_norm_weight<LO_THREADS, RMS_CHUNKS>(w, dim, wv);
  pdl_wait();
  pdl_trigger();
  __shared__ float red[LO_THREADS / 32];
  const int r = blockIdx.x, src = rows ? rows[r] : r;
  RowChunks<LO_THREADS, RMS_CHUNKS> y;
  rmsnorm_row<LO_THREADS, RMS_CHUNKS>(x + (u64)src * dim, wv, dim, eps, red, y);
  store_q8(y, q + (u64)r * dim, sx + r, red);
}

extern "C" __global__ void __launch_bounds__(SW_THREADS)
    swiglu_f16(const u16* __restrict__ gu, u16* __restrict__ out, int H) {
  pdl_wait();
  pdl_trigger();
  const int r = blockIdx.x;
  RowChunks<SW_THREADS, SW_CHUNKS> y;
  swiglu_row<SW_THREADS, SW_CHUNKS>(gu + (u64)r * 2 * H, H, y);
  store_f16(y, out + (u64)r * H);
}

extern "C" __global__ void __launch_bounds__(SW_THREADS)
    swiglu_q8(const u16* __restrict__ gu, signed char* __restrict__ q, float* __restrict__ sx, int H) {
  pdl_wait();
  pdl_trigger();
  __shared__ float red[SW_THREADS / 32];
  const int r = blockIdx.x;
  RowChunks<SW_THREADS, SW_CHUNKS> y;
  swiglu_row<SW_THREADS, SW_CHUNKS>(gu + (u64)r * 2 * H, H, y);
  store_q8(y, q + (u64)r * H, sx + r, red);
}

extern "C" __global__ void __launch_bounds__(LO_THREADS)
    quantize_f32(const float* __restrict__ x, signed char* __restrict__ q, float* __restrict__ sx, int dim) {
  pdl_wait();
  pdl_trigger();
  __shared__ float red[LO_THREADS / 32];
  const int r = blockIdx.x, nv = dim >> 3;
  const U4* xr = (const U4*)(x + (u64)r * dim);
  RowChunks<LO_THREADS, RMS_CHUNKS> y;
#pragma unroll
  for (int c = 0; c < RMS_CHUNKS; ++c) {
    const int i = threadIdx.x + c * LO_THREADS;
    y.in[c] = i < nv;
    if (!y.in[c]) continue;
    const U4 a = xr[2 * i], b = xr[2 * i + 1];
    const u32 w[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
#pragma unroll
    for (int j = 0; j < 8; ++j) y.v[c][j] = bits_to_float(w[j]);
  }
  store_q8(y, q + (u64)r * dim, sx + r, red);
}
