// calib_forward.cu — the fp32 layer forward of the calibration pipeline on the GPU
// (src/gpu/calib/layer-ops.ts; the CPU's is src/quant/layer-forward.ts): RMSNorm, bias, RoPE, causal
// grouped-query attention over stacked windows, SwiGLU, the residual add, and the dequantization of
// a quantized linear (q·scale) for the next stage's GEMMs (cuBLASLt, fp32). nvcc (sm_80, sm_90a) and NVRTC.
//
// Semantics: the CPU pipeline's, operation by operation. Where the CPU computes in double and rounds
// once to fp32 (JS numbers stored into a Float32Array), so does this: RMSNorm's Σx² (double, a tree
// instead of a loop), RoPE's x0·c − x1·s, SwiGLU's g/(1 + e^−g)·u and the softmax's e^x and Σ. The
// dot products (scores q·k, p·v) are fp32 in another order than the CPU's SIMD kernel.
// Activations are row-major [rows, width] fp32; element counts may exceed 2^31 (64-bit indices).
// ABI (block CF_THREADS unless said; no dynamic smem unless said):
//   calib_rmsnorm(const float* x, const float* w, float* out, int dim, float eps)      grid = rows
//   calib_bias(float* y, const float* b, i64 n, int N)                                  y[i] += b[i % N]
//   calib_rope(float* v, const float* cos, const float* sin, int rows, int nHeads, int half, int T, int interleaved)
//       rotates each head of row r at position r % T; cos/sin [T, half]; pairs (i, i + half) or (2i, 2i + 1)
//   calib_attention(const float* q, const float* k, const float* v, float* out, int T, int nHeads, int nKv,
//                   int hd, int window)   grid = (ceil(T / AT_ROWS), nHeads, S), block 32 · AT_ROWS,
//       dynamic smem attentionSmemBytes(T, hd) (layer-ops.ts): one warp per query row; keys j ≤ t
//       (and j > t − window when window > 0) of the row's own window; scale 1/sqrt(hd); hd ≤ 256
//   calib_swiglu(float* g, const float* u, i64 n)                                       g ← silu(g)·u
//   calib_add(float* x, const float* y, i64 n)                                          x += y
//   calib_dequant(const signed char* q, const float* scales, float* out, int N, int K, int G)
//       out[n, k] = q[n, k] · scales[n, k / G] (exact: |q| ≤ 7, fp16-exact scales)

#include "ptx.cuh"
#include "rope.cuh"

#define CF_THREADS 256
#define AT_ROWS 8     // query rows (warps) per attention block: they share each K/V tile
#define AT_KEYS 32    // keys per K/V tile: one per lane
#define AT_MAX_HD 256

typedef long long i64;

__device__ __forceinline__ i64 grid_index() { return (i64)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ i64 grid_stride() { return (i64)gridDim.x * blockDim.x; }

extern "C" __global__ void __launch_bounds__(CF_THREADS)
calib_rmsnorm(const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ out, int dim, float eps) {
  __shared__ double part[CF_THREADS / 32];
  const float* xr = x + (i64)blockIdx.x * dim;
  float* yr = out + (i64)blockIdx.x * dim;
  double ss = 0;
  for (int i = threadIdx.x; i < dim; i += CF_THREADS) { const double v = xr[i]; ss += v * v; }
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = ss;
  __syncthreads();
  if (threadIdx.x < 32) {
    double v = threadIdx.x < CF_THREADS / 32 ? part[threadIdx.x] : 0.0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (threadIdx.x == 0) part[0] = v;
  }
  __syncthreads();
  const float inv = (float)(1.0 / sqrt((double)(float)(part[0] / dim) + (double)eps));
  for (int i = threadIdx.x; i < dim; i += CF_THREADS) yr[i] = __fmul_rn(w[i], __fmul_rn(xr[i], inv));
}

extern "C" __global__ void __launch_bounds__(CF_THREADS)
calib_bias(float* __restrict__ y, const float* __restrict__ b, i64 n, int N) {
  for (i64 i = grid_index(); i < n; i += grid_stride()) y[i] = __fadd_rn(y[i], b[i % N]);
}

extern "C" __global__ void __launch_bounds__(CF_THREADS)
calib_rope(float* __restrict__ v, const float* __restrict__ cos_t, const float* __restrict__ sin_t,
           int rows, int nHeads, int half, int T, int interleaved) {
  const i64 pairs = (i64)rows * nHeads * half;
  for (i64 e = grid_index(); e < pairs; e += grid_stride()) {
    const int i = (int)(e % half);
    const i64 rh = e / half;                 // row · nHeads + head
    const int t = (int)((rh / nHeads) % T);
    float* head = v + rh * 2 * half;
    int a, b;
    rope_pair(i, half, interleaved, a, b);  // the engine's pairing; fp32 values, float64 arithmetic here
    const double c = cos_t[t * half + i], s = sin_t[t * half + i], x0 = head[a], x1 = head[b];
    head[a] = (float)(x0 * c - x1 * s);
    head[b] = (float)(x1 * c + x0 * s);
  }
}

// Rows j0 .. j0 + AT_KEYS − 1 of KV head g of one window's k or v (zeros past tLast) into a shared
// tile with row stride ld; the whole block copies.
__device__ __forceinline__ void load_kv_tile(float* tile, int ld, const float* __restrict__ src, i64 r0, int j0, int tLast,
                                             int kvDim, int g, int hd) {
  for (int e = threadIdx.x; e < AT_KEYS * hd; e += 32 * AT_ROWS) {
    const int j = e / hd, d = e % hd;
    tile[j * ld + d] = j0 + j <= tLast ? src[(r0 + j0 + j) * kvDim + (i64)g * hd + d] : 0.0f;
  }
}

// One warp per query row t of head h in window s; the block's AT_ROWS rows t0.. share each tile of
// AT_KEYS keys (and values) in shared memory. Three passes per row, as the CPU: the scores of every
// key the row sees into shared memory, the softmax (max, e = exp((x − max)·scale) in double, Σe in
// double, p = fp32(fp32(e)·(1/Σ))), then Σ p·v, each lane owning head dims lane, lane + 32, ...
extern "C" __global__ void __launch_bounds__(32 * AT_ROWS)
calib_attention(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, float* __restrict__ out,
                int T, int nHeads, int nKv, int hd, int window) {
  extern __shared__ float smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int h = blockIdx.y, g = h / (nHeads / nKv), s = blockIdx.z;
  const int t0 = blockIdx.x * AT_ROWS, t = t0 + warp, tLast = min(T, t0 + AT_ROWS) - 1;
  const int qDim = nHeads * hd, kvDim = nKv * hd, ld = hd + 1;  // K tile rows padded: lane j reads row j
  float* kt = smem;                                // [AT_KEYS][hd + 1]
  float* vt = kt + AT_KEYS * ld;                   // [AT_KEYS][hd]
  float* qs = vt + AT_KEYS * hd;                   // [AT_ROWS][hd]
  float* ps = qs + AT_ROWS * hd;                   // [AT_ROWS][T]: scores, then probabilities
  const i64 r0 = (i64)s * T;
  const int jFirst = window > 0 ? max(0, t0 - window + 1) : 0;
  const int jLo = window > 0 ? max(0, t - window + 1) : 0;   // this row's keys: [jLo, t]
  const bool live = t < T;
  if (live) for (int d = lane; d < hd; d += 32) qs[warp * hd + d] = q[(r0 + t) * qDim + (i64)h * hd + d];

  const double scale = 1.0 / sqrt((double)hd);
  for (int j0 = jFirst - jFirst % AT_KEYS; j0 <= tLast; j0 += AT_KEYS) {
    __syncthreads();
    load_kv_tile(kt, ld, k, r0, j0, tLast, kvDim, g, hd);
    __syncthreads();
    const int j = j0 + lane;
    if (live && j >= jLo && j <= t) {
      float acc = 0.0f;
      for (int d = 0; d < hd; d++) acc = fmaf(qs[warp * hd + d], kt[lane * ld + d], acc);
      ps[warp * T + j] = acc;
    }
  }

  if (live) {
    float mx = __int_as_float(0xff800000);  // -inf (NVRTC has no math.h)
    for (int j = jLo + lane; j <= t; j += 32) mx = fmaxf(mx, ps[warp * T + j]);
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    double sum = 0;
    for (int j = jLo + lane; j <= t; j += 32) {
      const double e = exp(((double)ps[warp * T + j] - (double)mx) * scale);
      ps[warp * T + j] = (float)e;
      sum += e;
    }
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    const double inv = 1.0 / sum;
    for (int j = jLo + lane; j <= t; j += 32) ps[warp * T + j] = (float)((double)ps[warp * T + j] * inv);
  }

  float acc[AT_MAX_HD / 32];
#pragma unroll
  for (int i = 0; i < AT_MAX_HD / 32; i++) acc[i] = 0.0f;
  for (int j0 = jFirst - jFirst % AT_KEYS; j0 <= tLast; j0 += AT_KEYS) {
    __syncthreads();
    load_kv_tile(vt, hd, v, r0, j0, tLast, kvDim, g, hd);
    __syncthreads();
    if (!live) continue;
    const int jEnd = min(AT_KEYS, t - j0 + 1);
    for (int jj = max(0, jLo - j0); jj < jEnd; jj++) {
      const float p = ps[warp * T + j0 + jj];
#pragma unroll
      for (int i = 0; i < AT_MAX_HD / 32; i++)
        if (i * 32 + lane < hd) acc[i] = fmaf(p, vt[jj * hd + i * 32 + lane], acc[i]);
    }
  }
  if (live) {
    float* o = out + (r0 + t) * qDim + (i64)h * hd;
#pragma unroll
    for (int i = 0; i < AT_MAX_HD / 32; i++)
      if (i * 32 + lane < hd) o[i * 32 + lane] = acc[i];
  }
}

extern "C" __global__ void __launch_bounds__(CF_THREADS)
calib_swiglu(float* __restrict__ gate, const float* __restrict__ up, i64 n) {
  for (i64 i = grid_index(); i < n; i += grid_stride()) {
    const double x = gate[i];
    gate[i] = (float)((x / (1.0 + exp(-x))) * (double)up[i]);
  }
}

extern "C" __global__ void __launch_bounds__(CF_THREADS)
calib_add(float* __restrict__ x, const float* __restrict__ y, i64 n) {
  for (i64 i = grid_index(); i < n; i += grid_stride()) x[i] = __fadd_rn(x[i], y[i]);
}

extern "C" __global__ void __launch_bounds__(CF_THREADS)
calib_dequant(const signed char* __restrict__ q, const float* __restrict__ scales, float* __restrict__ out, int N, int K, int G) {
  const i64 n = (i64)N * K;
  const int groups = K / G;
  for (i64 e = grid_index(); e < n; e += grid_stride()) {
    const i64 row = e / K;
    const int col = (int)(e % K);
    out[e] = __fmul_rn((float)q[e], scales[row * groups + col / G]);
  }
}
