// weights.cu — preparing weights on the GPU: bf16 → fp16, seeded random fp16 weights for
// shape-true speed models, RTN int4 quantization per group (the CPU spec, bit for bit), integer
// scales with the per-channel 'auto' shift and its int32 proof (bit for bit), and the repacking of
// canonical int4 into the W4 GEMM layouts (src/gpu/repack.ts, bit for bit) and of scales into
// [groups][N]. CPU twins: src/quant/rtn.ts, src/quant/integer-scale.ts, src/gpu/repack.ts.
// nvcc (sm_80, sm_90a) and NVRTC.
//
// ABI (n = element counts as u64; all grids 1-D, block 256):
//   bf16_to_f16(const u16* in, u16* out, u64 n)                                 grid ceil(n/256)
//   random_f16(u16* out, u64 n, u64 seed, float mean, float std)                grid ceil(n/256)
//       mean + std·N(0,1) from splitmix64 + Box–Muller (index-addressed: any grid gives the same tensor)
//   rtn_quantize(const u16* w, u8* qpacked, u16* scales, int* bad, int N, int K, int G)
//       grid ceil(N·(K/G)/8): a warp per (row, group). s = fp16(fp32(absmax/7)), q = clamp(rint(
//       fp32(w/s)), ±7) (0 when s = 0); canonical packing (low nibble = even k). *bad = 1 + row of a
//       non-finite weight (any one), else untouched.
//   integer_scales(const u16* scales, const u8* qpacked, int* iscales, signed char* shift, int* bad,
//                  int N, int K, int G)   grid ceil(N/8): a warp per row; 'auto': the largest
//       k ≤ cap (cap: smallest k with every nonzero s·2^k ≥ 1024, ≤ 30) with
//       E = 127·Σ_g |rint(s_g·2^k)|·Σ_{k∈g}|q| < 2^31; *bad = 1 + row when even k = 0 fails.
//   repack_w4(const u8* canon, U4* out, int N, int K, int layout)   grid ceil(N/8·K/128·32/256):
//       one thread per 16-byte chunk; layout 0 = 'w4a8', 1 = 'w4a16'
//   transpose_scales(const void* in, void* out, int N, int groups, int mode)   grid ceil(N·groups/256)
//       out[g·N + n] = in[n·groups + g]: mode 0 int32 → int32, 1 fp16 → fp32, 2 fp16 → fp16,
//       3 int16 → int32

#include "ptx.cuh"

DEVI double rint_d(double a) {
  double d;
  asm("cvt.rni.f64.f64 %0, %1;" : "=d"(d) : "d"(a));
  return d;
}
DEVI float bf16_to_f32(u16 b) { return bits_to_float((u32)b << 16); }

extern "C" __global__ void __launch_bounds__(256) bf16_to_f16(const u16* __restrict__ in, u16* __restrict__ out, u64 n) {
  const u64 i = (u64)blockIdx.x * 256 + threadIdx.x;
  if (i < n) out[i] = f2h_rn(bf16_to_f32(in[i]));
}

extern "C" __global__ void __launch_bounds__(256) random_f16(u16* __restrict__ out, u64 n, u64 seed, float mean, float std) {
  const u64 i = (u64)blockIdx.x * 256 + threadIdx.x;
  if (i >= n) return;
  const u64 h = splitmix64(seed ^ splitmix64(i));
  const float u1 = ((float)(u32)(h >> 40) + 1.f) * (1.f / 16777217.f);  // (0, 1]
  const float u2 = (float)(u32)(h & 0xFFFFFF) * (1.f / 16777216.f);
  const float z = sqrtf(-2.f * logf(u1)) * cospif(2.f * u2);
  out[i] = f2h_rn(mean + std * z);
}

// A warp per (row n, group g): lane takes value pairs (2 per byte) in 64-wide steps.
extern "C" __global__ void __launch_bounds__(256)
    rtn_quantize(const u16* __restrict__ w, unsigned char* __restrict__ qpacked, u16* __restrict__ scales,
                 int* __restrict__ bad, int N, int K, int G) {
  const int groups = K / G;
  const u64 task = (u64)blockIdx.x * 8 + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (task >= (u64)N * groups) return;
  const int n = (int)(task / groups), g = (int)(task - (u64)n * groups);
  const u16* src = w + (u64)n * K + (u64)g * G;
  u32 amax = 0;  // on |fp16| bits; NaN/inf have exponent 0x1F
  bool nonfinite = false;
  for (int k = 2 * lane; k < G; k += 64) {
    const u32 pair = *(const u32*)(src + k);
    const u32 a = pair & 0x7FFFu, b = (pair >> 16) & 0x7FFFu;
    nonfinite |= a >= 0x7C00u || b >= 0x7C00u;
    amax = amax > a ? amax : a;
    amax = amax > b ? amax : b;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const u32 t = __shfl_xor_sync(0xffffffffu, amax, o);
    amax = amax > t ? amax : t;
  }
  if (__any_sync(0xffffffffu, nonfinite)) {
    if (lane == 0) atomicExch(bad, n + 1);
    return;
  }
  const float s = h2f(f2h_rn(fdiv_rn(h2f((u16)amax), 7.f)));
  if (lane == 0) scales[(u64)n * groups + g] = f2h_rn(s);
  unsigned char* dst = qpacked + ((u64)n * K + (u64)g * G) / 2;
  for (int k = 2 * lane; k < G; k += 64) {
    const u32 pair = *(const u32*)(src + k);
    int q0 = 0, q1 = 0;
    if (s != 0.f) {
      q0 = f2i_rni(fdiv_rn(h2f((u16)(pair & 0xFFFF)), s));
      q1 = f2i_rni(fdiv_rn(h2f((u16)(pair >> 16)), s));
      q0 = q0 > 7 ? 7 : (q0 < -7 ? -7 : q0);
      q1 = q1 > 7 ? 7 : (q1 < -7 ? -7 : q1);
    }
    dst[k >> 1] = (unsigned char)((q0 & 0xF) | ((q1 & 0xF) << 4));
  }
}

DEVI int nibble(const unsigned char* row, int k) {
  const int b = row[k >> 1], v = (k & 1) ? b >> 4 : b & 0xF;
  return v >= 8 ? v - 16 : v;
}

// A warp per row n: group |q| sums and scales stay in the loop (no per-row scratch).
extern "C" __global__ void __launch_bounds__(256)
    integer_scales(const u16* __restrict__ scales, const unsigned char* __restrict__ qpacked, int* __restrict__ iscales,
                   signed char* __restrict__ shift, int* __restrict__ bad, int N, int K, int G) {
  const int n = blockIdx.x * 8 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (n >= N) return;
  const int groups = K / G;
  const u16* srow = scales + (u64)n * groups;
  const unsigned char* qrow = qpacked + (u64)n * K / 2;
  // cap: smallest k in [0, 30] with min nonzero |s|·2^k ≥ 1024
  float minS = 3.0e38f;
  for (int g = lane; g < groups; g += 32) {
    const float s = fabsf(h2f(srow[g]));
    if (s > 0.f && s < minS) minS = s;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) minS = fminf(minS, __shfl_xor_sync(0xffffffffu, minS, o));
  int cap = 0;
  if (minS < 3.0e38f) while (cap < 30 && (double)minS * (double)(1u << cap) < 1024.0) ++cap;
  int k = cap;
  for (; k >= 0; --k) {
    const double amp = (double)(1u << k);
    double e = 0.0;  // exact: integers below 2^53
    for (int g = lane; g < groups; g += 32) {
      int abssum = 0;
      for (int j = 0; j < G; ++j) {
        const int v = nibble(qrow, g * G + j);
        abssum += v < 0 ? -v : v;
      }
      e += fabs(rint_d((double)h2f(srow[g]) * amp)) * (double)abssum;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) e += __shfl_xor_sync(0xffffffffu, e, o);
    if (127.0 * e < 2147483648.0) break;
  }
  if (k < 0) {
    if (lane == 0) atomicExch(bad, n + 1);
    return;
  }
  const double amp = (double)(1u << k);
  for (int g = lane; g < groups; g += 32) iscales[(u64)n * groups + g] = (int)rint_d((double)h2f(srow[g]) * amp);
  if (lane == 0) shift[n] = (signed char)k;
}

// One thread per 16-byte chunk (n8 row, k-tile kt, lane l) of repack.ts's layout.
extern "C" __global__ void __launch_bounds__(256)
    repack_w4(const unsigned char* __restrict__ canon, U4* __restrict__ out, int N, int K, int layout) {
  const int kTiles = K >> 7;
  const u64 c = (u64)blockIdx.x * 256 + threadIdx.x;
  if (c >= (u64)(N >> 3) * kTiles * 32) return;
  const int l = (int)(c & 31);
  const u64 rest = c >> 5;
  const int kt = (int)(rest % kTiles), n8 = (int)(rest / kTiles);
  const int block = n8 >> 4, rowsInBlock = (N >> 3) - block * 16 < 16 ? (N >> 3) - block * 16 : 16;
  const u64 chunk = ((u64)block * 16 * kTiles + (u64)kt * rowsInBlock + (n8 & 15)) * 32 + l;
  const int row = n8 * 8 + (l >> 2), t = l & 3;
  const unsigned char* r = canon + (u64)row * (K >> 1);
  u32 words[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int base = kt * 128 + j * 32;
    u32 word = 0;
    if (layout == 0) {
#pragma unroll
      for (int b = 0; b < 4; ++b) {
        const u32 lo = (u32)nibble(r, base + 4 * t + b) & 0xF, hi = (u32)nibble(r, base + 16 + 4 * t + b) & 0xF;
        word |= (lo | (hi << 4)) << (8 * b);
      }
    } else {
#pragma unroll
      for (int h = 0; h < 4; ++h) {
        const u32 u0 = ((u32)nibble(r, base + 8 * h + 2 * t) & 0xF) ^ 8u, u1 = ((u32)nibble(r, base + 8 * h + 2 * t + 1) & 0xF) ^ 8u;
        word |= (u0 << (4 * h)) | (u1 << (16 + 4 * h));
      }
    }
    words[j] = word;
  }
  U4 v;
  v.x = words[0]; v.y = words[1]; v.z = words[2]; v.w = words[3];
  out[chunk] = v;
}

extern "C" __global__ void __launch_bounds__(256)
    transpose_scales(const void* __restrict__ in, void* __restrict__ out, int N, int groups, int mode) {
  const u64 i = (u64)blockIdx.x * 256 + threadIdx.x;
  if (i >= (u64)N * groups) return;
  const int g = (int)(i / N), n = (int)(i - (u64)g * N);  // output index i = g·N + n
  const u64 src = (u64)n * groups + g;
  switch (mode) {
    case 0: ((int*)out)[i] = ((const int*)in)[src]; break;
    case 1: ((float*)out)[i] = h2f(((const u16*)in)[src]); break;
    case 2: ((u16*)out)[i] = ((const u16*)in)[src]; break;
    default: ((int*)out)[i] = (int)((const short*)in)[src]; break;
  }
}
