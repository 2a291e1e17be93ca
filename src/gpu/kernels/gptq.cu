// gptq.cu — the GPU kernels of GPTQ (src/gpu/gptq/): the Hessian's preparation (permuted,
// index-reversed, dampened copy), the diagonal blocks of the blocked Cholesky factorization and
// their inverses, the reversal that turns L⁻¹ into U (H⁻¹ = UᵀU), the weights' permutation, static
// group scales and the per-block column loop. The large products (XᵀX, the Cholesky panels and
// trailing updates, the inverse's block rows, the lazy weight updates) are cuBLASLt GEMMs in
// src/gpu/gptq/. CPU twin: src/quant/gptq.ts (float64 there, fp32 here). nvcc (sm_80, sm_90a) and NVRTC.
//
// Matrices are row-major; K×K matrices have leading dimension K. ABI (all 1-D grids):
//   gptq_hessian_diag(const float* H, float* diag, int K)                        grid ceil(K/256), block 256
//   gptq_prepare_hessian(const float* H, float* A, const int* perm, const unsigned char* dead,
//                        float scale, float damp, int K)                        grid ceil(K·K/256), block 256
//       A[i, j] = scale·H[p(i), p(j)] with p(i) = perm[K−1−i] (J·P·H·Pᵀ·J: permuted, index-reversed);
//       on the diagonal a dead input gives 1 instead, then + damp.
//   gptq_chol_diag(float* A, float* X, int* bad, int K, int j0, int nb)          grid 1, block 512,
//       smem 2·nb·(nb+1)·4: the diagonal block A[j0:j0+nb, j0:j0+nb] (trailing updates done) is
//       factored in place (lower L₁₁, A = L·Lᵀ; the upper part is left alone) and L₁₁⁻¹ (lower, zeros
//       above) is written to X at the same block. A pivot ≤ 0: *bad = 1 + its row (first one wins,
//       the factorization goes on with pivot 1 so nothing turns NaN). nb ≤ 128.
//   gptq_copy_block(const float* src, int lds, float* dst, int ldd, int rows, int cols)  grid ceil(rows·cols/256)
//   gptq_reverse_upper(const float* X, float* U, int K)                         grid ceil(K·K/256), block 256
//       U[r, c] = X[K−1−r, K−1−c] for c ≥ r, else 0 (X = L⁻¹ lower: U = J·X·J upper).
//   gptq_permute_weights(const void* w, int w_f16, float* wp, const int* perm,
//                        const unsigned char* dead, int* bad, int N, int K)      grid ceil(N·K/256), block 256
//       wp[n, i] = w[n, perm[i]] (fp16 or fp32 source), 0 for a dead input; non-finite: bad[0] = 1 + row.
//   gptq_static_scales(const float* wp, const int* inv_perm, float* scales, int* bad, int N, int K, int G)
//       grid ceil(N·(K/G)/8), block 256: a warp per (row, natural group): s = fp16(fp32(absmax/7)) of the
//       permuted weights' natural columns; a non-finite scale: bad[1] = 1 + row.
//   gptq_block(float* wp, const float* U, float* err, float* scales, signed char* qp, double* loss,
//              const int* perm, int* bad, int N, int K, int G, int i1, int cnt, int act_order)
//       grid ceil(N/8), block 256, smem cnt·128·4: GPTQ's columns [i1, i1+cnt) (cnt ≤ 128) for every
//       row, a warp per row with the block's weights in registers (lane l holds columns l + 32t):
//       for column i, q = clamp(rint(fp32(w/s)), ±7) into qp [N, K], e = (w − q·s)/U[i, i] into
//       err [N, 128], the later columns of the block get −e·U[i, j], loss[n] += Σ e²/2. Without
//       act-order a group's scale is set when its first column is reached, from the weights as they
//       are then (this block's columns updated in registers, later ones as in wp); with act-order
//       the static scale of column i's natural group perm[i]/G. A non-finite scale: bad[1] = 1 + row.
//       wp is only read (the block's columns are not written back: nothing reads them again).
//   gptq_unpermute_q(const signed char* qp, signed char* q, const int* perm, int N, int K)  grid ceil(N·K/256)
//       q[n, perm[i]] = qp[n, i].

#include "ptx.cuh"

#define GPTQ_MAX_BLOCK 128

extern "C" __global__ void __launch_bounds__(256) gptq_hessian_diag(const float* __restrict__ H, float* __restrict__ diag, int K) {
  const int i = blockIdx.x * 256 + threadIdx.x;
  if (i < K) diag[i] = H[(u64)i * K + i];
}

extern "C" __global__ void __launch_bounds__(256)
    gptq_prepare_hessian(const float* __restrict__ H, float* __restrict__ A, const int* __restrict__ perm,
                         const unsigned char* __restrict__ dead, float scale, float damp, int K) {
  const u64 idx = (u64)blockIdx.x * 256 + threadIdx.x;
  if (idx >= (u64)K * K) return;
  const int i = (int)(idx / K), j = (int)(idx - (u64)i * K);
  const int pi = perm[K - 1 - i], pj = perm[K - 1 - j];
  float v = fmul_rn(scale, H[(u64)pi * K + pj]);
  if (i == j) v = fadd_rn(dead[pi] ? 1.f : v, damp);
  A[idx] = v;
}

// Unblocked right-looking Cholesky of the block (in shared memory), then its inverse by forward
// substitution, one thread per column.
extern "C" __global__ void __launch_bounds__(512)
    gptq_chol_diag(float* __restrict__ A, float* __restrict__ X, int* __restrict__ bad, int K, int j0, int nb) {
  extern __shared__ float sm[];
  const int P = nb + 1;  // padded pitch
  float* a = sm;          // [nb][P]
  float* x = sm + nb * P;  // [nb][P]
  const int tid = threadIdx.x;
  for (int e = tid; e < nb * nb; e += 512) {
    const int r = e / nb, c = e - r * nb;
    a[r * P + c] = c <= r ? A[(u64)(j0 + r) * K + j0 + c] : 0.f;
  }
  __syncthreads();
  for (int j = 0; j < nb; ++j) {
    if (tid == 0) {
      float d = a[j * P + j];
      if (!(d > 0.f)) {
        atomicCAS(bad, 0, 1 + j0 + j);
        d = 1.f;
      }
      a[j * P + j] = sqrtf(d);
    }
    __syncthreads();
    const float piv = a[j * P + j];
    for (int i = j + 1 + tid; i < nb; i += 512) a[i * P + j] = fdiv_rn(a[i * P + j], piv);
    __syncthreads();
    const int m = nb - j - 1;
    for (int e = tid; e < m * m; e += 512) {
      const int i = j + 1 + e / m, k = j + 1 + e % m;
      if (k <= i) a[i * P + k] = fadd_rn(a[i * P + k], -fmul_rn(a[i * P + j], a[k * P + j]));
    }
    __syncthreads();
  }
  // X = L⁻¹: column c by forward substitution (X[k][c] = 0 for k < c, so every thread runs the same k)
  if (tid < nb) {
    const int c = tid;
    for (int i = 0; i < nb; ++i) {
      float s = i == c ? 1.f : 0.f;
      for (int k = 0; k < i; ++k) s = fadd_rn(s, -fmul_rn(a[i * P + k], x[k * P + c]));
      x[i * P + c] = i < c ? 0.f : fdiv_rn(s, a[i * P + i]);
    }
  }
  __syncthreads();
  for (int e = tid; e < nb * nb; e += 512) {
    const int r = e / nb, c = e - r * nb;
    if (c <= r) A[(u64)(j0 + r) * K + j0 + c] = a[r * P + c];
    X[(u64)(j0 + r) * K + j0 + c] = x[r * P + c];
  }
}

extern "C" __global__ void __launch_bounds__(256)
    gptq_copy_block(const float* __restrict__ src, int lds, float* __restrict__ dst, int ldd, int rows, int cols) {
  const u64 idx = (u64)blockIdx.x * 256 + threadIdx.x;
  if (idx >= (u64)rows * cols) return;
  const int r = (int)(idx / cols), c = (int)(idx - (u64)r * cols);
  dst[(u64)r * ldd + c] = src[(u64)r * lds + c];
}

extern "C" __global__ void __launch_bounds__(256) gptq_reverse_upper(const float* __restrict__ X, float* __restrict__ U, int K) {
  const u64 idx = (u64)blockIdx.x * 256 + threadIdx.x;
  if (idx >= (u64)K * K) return;
  const int r = (int)(idx / K), c = (int)(idx - (u64)r * K);
  U[idx] = c >= r ? X[(u64)(K - 1 - r) * K + (K - 1 - c)] : 0.f;
}

DEVI bool finite_f32(float v) { return (__float_as_uint(v) & 0x7F800000u) != 0x7F800000u; }

extern "C" __global__ void __launch_bounds__(256)
    gptq_permute_weights(const void* __restrict__ w, int w_f16, float* __restrict__ wp, const int* __restrict__ perm,
                         const unsigned char* __restrict__ dead, int* __restrict__ bad, int N, int K) {
  const u64 idx = (u64)blockIdx.x * 256 + threadIdx.x;
  if (idx >= (u64)N * K) return;
  const int n = (int)(idx / K), i = (int)(idx - (u64)n * K);
  const int k = perm[i];
  const u64 src = (u64)n * K + k;
  const float v = w_f16 ? h2f(((const u16*)w)[src]) : ((const float*)w)[src];
  if (!finite_f32(v)) atomicCAS(bad, 0, n + 1);
  wp[idx] = dead[k] ? 0.f : v;
}

DEVI float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

DEVI float scale_of(float absmax) { return h2f(f2h_rn(fdiv_rn(absmax, 7.f))); }

extern "C" __global__ void __launch_bounds__(256)
    gptq_static_scales(const float* __restrict__ wp, const int* __restrict__ inv_perm, float* __restrict__ scales,
                       int* __restrict__ bad, int N, int K, int G) {
  const int groups = K / G;
  const u64 task = (u64)blockIdx.x * 8 + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (task >= (u64)N * groups) return;
  const int n = (int)(task / groups), g = (int)(task - (u64)n * groups);
  const float* row = wp + (u64)n * K;
  float m = 0.f;
  for (int k = g * G + lane; k < (g + 1) * G; k += 32) m = fmaxf(m, fabsf(row[inv_perm[k]]));
  m = warp_max(m);
  const float s = scale_of(m);
  if (lane == 0) {
    scales[task] = s;
    if (!finite_f32(s)) atomicCAS(bad + 1, 0, n + 1);
  }
}

extern "C" __global__ void __launch_bounds__(256)
    gptq_block(const float* __restrict__ wp, const float* __restrict__ U, float* __restrict__ err, float* __restrict__ scales,
               signed char* __restrict__ qp, double* __restrict__ loss, const int* __restrict__ perm, int* __restrict__ bad,
               int N, int K, int G, int i1, int cnt, int act_order) {
  extern __shared__ float ub[];  // U[i1:i1+cnt, i1:i1+cnt], pitch GPTQ_MAX_BLOCK
  for (int e = threadIdx.x; e < cnt * cnt; e += 256) {
    const int r = e / cnt, c = e - r * cnt;
    ub[r * GPTQ_MAX_BLOCK + c] = c >= r ? U[(u64)(i1 + r) * K + i1 + c] : 0.f;
  }
  __syncthreads();
  const int n = blockIdx.x * 8 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (n >= N) return;
  const int groups = K / G, i2 = i1 + cnt;
  const float* row = wp + (u64)n * K;
  float w[4];
#pragma unroll
  for (int t = 0; t < 4; ++t) w[t] = lane + 32 * t < cnt ? row[i1 + lane + 32 * t] : 0.f;
  float s = 0.f, lossLane = 0.f;
  if (!act_order && i1 % G != 0) s = scales[(u64)n * groups + i1 / G];  // the group began in an earlier block
#pragma unroll
  for (int t = 0; t < 4; ++t) {
    for (int l = 0; l < 32; ++l) {
      const int c = 32 * t + l;
      if (c >= cnt) break;
      const int i = i1 + c;
      if (act_order) {
        s = scales[(u64)n * groups + perm[i] / G];
      } else if (i % G == 0) {
        // the group's absmax over [i, i+G): this block's columns from registers, later ones from wp
        float m = 0.f;
#pragma unroll
        for (int t2 = 0; t2 < 4; ++t2) {
          const int c2 = lane + 32 * t2;
          if (c2 >= c && c2 < cnt && c2 < c + G) m = fmaxf(m, fabsf(w[t2]));
        }
        for (int k = i2 + lane; k < i + G; k += 32) m = fmaxf(m, fabsf(row[k]));
        s = scale_of(warp_max(m));
        if (lane == 0) {
          scales[(u64)n * groups + i / G] = s;
          if (!finite_f32(s)) atomicCAS(bad + 1, 0, n + 1);
        }
      }
      float e = 0.f;
      if (lane == l) {
        const float x = w[t];
        int q = s == 0.f ? 0 : f2i_rni(fdiv_rn(x, s));
        q = q > 7 ? 7 : (q < -7 ? -7 : q);
        qp[(u64)n * K + i] = (signed char)q;
        e = fdiv_rn(fadd_rn(x, -fmul_rn(i2f_rn(q), s)), ub[c * GPTQ_MAX_BLOCK + c]);
        err[(u64)n * GPTQ_MAX_BLOCK + c] = e;
        lossLane = fadd_rn(lossLane, fmul_rn(0.5f, fmul_rn(e, e)));
      }
      e = __shfl_sync(0xffffffffu, e, l);
      const float* urow = ub + c * GPTQ_MAX_BLOCK;
#pragma unroll
      for (int t2 = 0; t2 < 4; ++t2) {
        const int c2 = lane + 32 * t2;
        if (c2 > c && c2 < cnt) w[t2] = fadd_rn(w[t2], -fmul_rn(e, urow[c2]));
      }
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) lossLane += __shfl_xor_sync(0xffffffffu, lossLane, o);
  if (lane == 0) loss[n] += (double)lossLane;
}

extern "C" __global__ void __launch_bounds__(256)
    gptq_unpermute_q(const signed char* __restrict__ qp, signed char* __restrict__ q, const int* __restrict__ perm, int N, int K) {
  const u64 idx = (u64)blockIdx.x * 256 + threadIdx.x;
  if (idx >= (u64)N * K) return;
  const int n = (int)(idx / K), i = (int)(idx - (u64)n * K);
  q[(u64)n * K + perm[i]] = qp[idx];
}
