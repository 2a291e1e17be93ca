// gpu-dev/bench.cu — standalone dev bench for the mma.sync W4 GEMMs of src/gpu/kernels/w4_gemm.cu and
// quantize_act.cu (not part of the npm package). Builds both into this binary (each .cu in its own
// namespace, plus the bench-only tiles below), then:
//   nvrtc   : compiles the GEMM-path kernel sources with NVRTC (include path src/gpu/kernels for
//             ptx.cuh; the TS runtime inlines that header instead, src/gpu/kernel-source.ts)
//   check   : correctness sweep vs naive GPU references (independent of the tiled kernels' layout;
//             spot-checked against a CPU evaluation of the spec): IS/PC bit-exact, FS/W4A16 within
//             fp32 rounding, act-quant bit-exact; poisoned outputs, fresh seeded data per shape
//   time    : timings (CUDA events, median of repeats, weights rotated through > 2x L2)
//   rocheck, rotime : the same for the reordered g128 tiles r/q/t (gpu-dev/ro-run.sh)
// Usage: bench [all|check|time|nvrtc|rocheck|rotime] [--quick]
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace kg {
#include "../src/gpu/kernels/w4_gemm.cu"
// Tiles explored by this bench only, built from w4_gemm.cu's gemm_body and W4_ENTRY (tile configs:
// WM, WN, MT, NT, STAGES[, RO chains, RO load-ahead]); none is shipped, their numbers are in
// docs/KERNELS.md and results/. x: the s tile with 8 stages; y: BM = 32; L: 16 warps (512 threads);
// q, t: the reordered r tile with 2 / 4 MMA chains in flight per warp (t: B loaded 4 chains ahead,
// spills 8 bytes).
#define TILE_x 1, 4, 1, 4, 8
#define TILE_y 1, 4, 2, 4, 4
#define TILE_L 4, 4, 2, 4, 4
#define TILE_q 2, 4, 4, 4, 4, 2, 2
#define TILE_t 2, 4, 4, 4, 4, 4, 4
#define THREADS_x 128
#define THREADS_y 128
#define THREADS_L 512
#define THREADS_q 256
#define THREADS_t 256
W4_ENTRY(w4a8_gemm_is_g128, MODE_IS, 128, x, 1)
W4_ENTRY(w4a8_gemm_is_g128, MODE_IS, 128, y, 1)
W4_ENTRY(w4a8_gemm_is_g128, MODE_IS, 128, L, 1)
W4_ENTRY(w4a8_gemm_fs_g128, MODE_FS, 128, L, 1)
W4_ENTRY(w4a8_gemm_is_g128, MODE_IS, 128, q, W4_R_MINB)
W4_ENTRY(w4a8_gemm_is_g128, MODE_IS, 128, t, W4_R_MINB)
W4_ENTRY(w4a8_gemm_fs_g128, MODE_FS, 128, q, W4_R_MINB)
W4_ENTRY(w4a8_gemm_fs_g128, MODE_FS, 128, t, W4_R_MINB)
}
namespace kq {
#include "../src/gpu/kernels/quantize_act.cu"
}

#define CK(x)                                                                              \
  do {                                                                                     \
    cudaError_t e_ = (x);                                                                  \
    if (e_ != cudaSuccess) {                                                               \
      fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorString(e_), __FILE__, __LINE__, #x); \
      exit(2);                                                                             \
    }                                                                                      \
  } while (0)

// ---------------------------------------------------------------- host helpers
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  int range(int lo, int hi) { return lo + (int)(next() % (uint64_t)(hi - lo + 1)); }
  float uni() { return (float)((next() >> 40) * (1.0 / 16777216.0)); }
  float normal() {
    float u1 = std::max(uni(), 1e-7f), u2 = uni();
    return sqrtf(-2.f * logf(u1)) * cosf(6.2831853f * u2);
  }
};

static uint16_t f2h(float f) {  // round to nearest even (host)
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7FFFFFFF;
  if (ax >= 0x7F800000) return sign | 0x7C00 | (ax > 0x7F800000 ? 0x200 : 0);
  if (ax >= 0x477FF000) return sign | 0x7C00;  // rounds to inf
  if (ax < 0x33000001) return sign;            // < half of smallest subnormal → 0 (ties to 0)
  int e = (int)(ax >> 23) - 127;
  uint32_t m = (ax & 0x7FFFFF) | 0x800000;
  int shift = e < -14 ? (13 + (-14 - e)) : 13;
  uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (r & 1))) r++;
  if (e < -14) return sign | r;
  return sign | (uint16_t)((((uint32_t)(e + 15)) << 10) + (r - 0x400));
}
static float h2f(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 31, m = h & 0x3FF, x;
  if (e == 0) {
    float f = ldexpf((float)m, -24);
    return (h & 0x8000) ? -f : f;
  }
  if (e == 31) x = sign | 0x7F800000 | (m << 13);
  else x = sign | ((e + 112) << 23) | (m << 13);
  float f;
  memcpy(&f, &x, 4);
  return f;
}

// Repack (mirror of src/gpu/repack.ts; layout in docs/KERNELS.md).
static int nib(const uint8_t* q, int rowBytes, int n, int k) {
  uint8_t b = q[(size_t)n * rowBytes + (k >> 1)];
  return (k & 1) ? (b >> 4) : (b & 15);
}
static std::vector<uint8_t> repack(const std::vector<uint8_t>& q, int N, int K, bool a16) {
  std::vector<uint8_t> out(q.size());
  const int rowBytes = K / 2, KT = K / 128;
#pragma omp parallel for
  for (int n8 = 0; n8 < N / 8; n8++)
    for (int kt = 0; kt < KT; kt++)
      for (int lane = 0; lane < 32; lane++) {
        int row = n8 * 8 + (lane >> 2), t = lane & 3;
        for (int j = 0; j < 4; j++) {
          int base = kt * 128 + j * 32;
          uint32_t w = 0;
          if (!a16) {
            for (int b = 0; b < 4; b++)
              w |= (uint32_t)(nib(q.data(), rowBytes, row, base + 4 * t + b) | (nib(q.data(), rowBytes, row, base + 16 + 4 * t + b) << 4)) << (8 * b);
          } else {
            for (int h = 0; h < 4; h++)
              w |= ((uint32_t)(nib(q.data(), rowBytes, row, base + 8 * h + 2 * t) ^ 8) << (4 * h)) |
                   ((uint32_t)(nib(q.data(), rowBytes, row, base + 8 * h + 2 * t + 1) ^ 8) << (16 + 4 * h));
          }
          int blk = n8 / 16, rows8 = std::min(16, N / 8 - blk * 16);  // tile-contiguous (repack.ts)
          size_t off = ((((size_t)blk * 16 * KT + (size_t)kt * rows8 + n8 % 16) * 32 + lane) * 4 + j) * 4;
          memcpy(&out[off], &w, 4);
        }
      }
  return out;
}

template <class T> static T* dev_upload(const std::vector<T>& v) {
  T* p;
  CK(cudaMalloc(&p, v.size() * sizeof(T) + 16));
  CK(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return p;
}

// ---------------------------------------------------------------- one weight set
struct Weights {
  int N, K, G;
  std::vector<uint8_t> q;         // canonical [N, K/2]
  std::vector<float> s;           // fp16-exact scales [N, K/G]
  std::vector<int32_t> is;        // ŝ [N, K/G]
  std::vector<int8_t> kn;         // shifts [N]
  std::vector<float> spc;         // per-channel scales [N] (PC uses a separate G=K quantization)
  // device
  uint8_t *d_q = 0, *d_w8 = 0, *d_w16 = 0;
  float *d_s = 0, *d_sT = 0, *d_spc = 0;
  int32_t *d_is = 0, *d_isT = 0;
  uint16_t* d_shT = 0;
  int8_t* d_kn = 0;
  void free_all() {
    for (void* p : {(void*)d_q, (void*)d_w8, (void*)d_w16, (void*)d_s, (void*)d_sT, (void*)d_spc, (void*)d_is,
                    (void*)d_isT, (void*)d_shT, (void*)d_kn})
      if (p) cudaFree(p);
  }
};

static Weights make_weights(int N, int K, int G, uint64_t seed) {
  Weights w;
  w.N = N, w.K = K, w.G = G;
  const int groups = K / G;
  w.q.resize((size_t)N * K / 2);
  w.s.resize((size_t)N * groups);
  w.is.resize((size_t)N * groups);
  w.kn.resize(N);
  w.spc.resize(N);
#pragma omp parallel for
  for (int n = 0; n < N; n++) {
    Rng r(seed * 1000003ull + n);
    for (int j = 0; j < K / 2; j++) {
      uint64_t v = r.next();
      // int4 in [-8, 7] (includes -8, which files from other tools may hold)
      w.q[(size_t)n * K / 2 + j] = (uint8_t)(v & 0xFF);
    }
    double sum = 0;
    for (int g = 0; g < groups; g++) {
      float sc = h2f(f2h(0.0005f + 0.03f * r.uni()));
      w.s[(size_t)n * groups + g] = sc;
      sum += sc;
    }
    // largest k with Σ|ŝ|·127·8·G < 2^31 (spec), ŝ = rint(s·2^k)
    int kk = 30;
    for (; kk >= 0; kk--) {
      double tot = 0;
      for (int g = 0; g < groups; g++) tot += fabs(nearbyint(ldexp((double)w.s[(size_t)n * groups + g], kk)));
      if (tot * 127.0 * 8.0 * G < 2147483648.0) break;
    }
    if (kk < 0) kk = 0;
    w.kn[n] = (int8_t)kk;
    for (int g = 0; g < groups; g++) w.is[(size_t)n * groups + g] = (int32_t)nearbyint(ldexp((double)w.s[(size_t)n * groups + g], kk));
    w.spc[n] = h2f(f2h(0.002f + 0.01f * r.uni()));
  }
  std::vector<uint8_t> w8 = repack(w.q, N, K, false), w16 = repack(w.q, N, K, true);
  std::vector<float> sT((size_t)N * groups);
  std::vector<int32_t> isT((size_t)N * groups);
  std::vector<uint16_t> shT((size_t)N * groups);
  for (int n = 0; n < N; n++)
    for (int g = 0; g < groups; g++) {
      sT[(size_t)g * N + n] = w.s[(size_t)n * groups + g];
      isT[(size_t)g * N + n] = w.is[(size_t)n * groups + g];
      shT[(size_t)g * N + n] = f2h(w.s[(size_t)n * groups + g]);
    }
  w.d_q = dev_upload(w.q);
  w.d_w8 = dev_upload(w8);
  w.d_w16 = dev_upload(w16);
  w.d_s = dev_upload(w.s);
  w.d_sT = dev_upload(sT);
  w.d_is = dev_upload(w.is);
  w.d_isT = dev_upload(isT);
  w.d_shT = dev_upload(shT);
  w.d_kn = dev_upload(w.kn);
  w.d_spc = dev_upload(w.spc);
  return w;
}

// ---------------------------------------------------------------- naive GPU references
// One thread per (sampled row, n). Reads the canonical layout directly.
enum { R_IS = 0, R_FS = 1, R_PC = 2, R_A16 = 3 };
__global__ void ref_kernel(int mode, const int8_t* A, const uint16_t* X, const float* sx, const uint8_t* q,
                           const float* s, const int32_t* is, const int8_t* kn, const float* spc, const int* rows,
                           int nrows, int N, int K, int G, float* y, float* mag) {
  int n = blockIdx.x * blockDim.x + threadIdx.x, ri = blockIdx.y;
  if (n >= N || ri >= nrows) return;
  int r = rows[ri];
  const uint8_t* qr = q + (size_t)n * K / 2;
  const int groups = K / G;
  int acc = 0, P_all = 0;
  float accf = 0.f, m = 0.f;
  for (int g = 0; g < groups; g++) {
    int P = 0;
    float pf = 0.f, pm = 0.f;
    float sc = s[(size_t)n * groups + g];
    for (int k = g * G; k < (g + 1) * G; k++) {
      uint8_t b = qr[k >> 1];
      int qv = (k & 1) ? (int)(int8_t)(b & 0xF0) >> 4 : (int)(int8_t)(b << 4) >> 4;
      if (mode == R_A16) {
        float xv = __half2float(__ushort_as_half(X[(size_t)r * K + k]));
        float wv = __half2float(__float2half_rn(__fmul_rn((float)qv, sc)));
        pf = __fmaf_rn(xv, wv, pf);
        pm += fabsf(xv * wv);
      } else {
        P += (int)A[(size_t)r * K + k] * qv;
      }
    }
    if (mode == R_IS) acc += P * is[(size_t)n * groups + g];
    else if (mode == R_FS) { accf = __fmaf_rn((float)P, sc, accf); m += fabsf((float)P * sc); }
    else if (mode == R_A16) { accf += pf; m += pm; }
    P_all += P;
  }
  float out;
  if (mode == R_IS) out = __fmul_rn(__fmul_rn(__int2float_rn(acc), sx[r]), ldexpf(1.f, -kn[n]));
  else if (mode == R_FS) { out = __fmul_rn(accf, sx[r]); m *= sx[r]; }
  else if (mode == R_PC) out = __fmul_rn(__fmul_rn(__int2float_rn(P_all), sx[r]), spc[n]);
  else out = accf;
  y[(size_t)ri * N + n] = out;
  mag[(size_t)ri * N + n] = m;
}

// ---------------------------------------------------------------- launching the tiled kernels
typedef void (*W4Fn)(const void*, const float*, const kg::U4*, const void*, const void*, const uint16_t*, uint16_t*,
                     void*, unsigned*, int, int, int);
struct Entry {
  const char* name;
  W4Fn fn;
};
#define E2(base) {#base "_s", kg::base##_s}, {#base "_m", kg::base##_m}
#define E3(base) E2(base), {#base "_l", kg::base##_l}
static Entry g_entries[] = {{"w4a8_gemm_is_g128_r", kg::w4a8_gemm_is_g128_r}, {"w4a8_gemm_fs_g128_r", kg::w4a8_gemm_fs_g128_r},
                            {"w4a8_gemm_is_g128_q", kg::w4a8_gemm_is_g128_q}, {"w4a8_gemm_fs_g128_q", kg::w4a8_gemm_fs_g128_q},
                            {"w4a8_gemm_is_g128_t", kg::w4a8_gemm_is_g128_t}, {"w4a8_gemm_fs_g128_t", kg::w4a8_gemm_fs_g128_t},
                            {"w4a8_gemm_is_g128_x", kg::w4a8_gemm_is_g128_x}, {"w4a8_gemm_is_g128_y", kg::w4a8_gemm_is_g128_y},
                            {"w4a8_gemm_is_g128_L", kg::w4a8_gemm_is_g128_L}, {"w4a8_gemm_fs_g128_L", kg::w4a8_gemm_fs_g128_L}, E3(w4a8_gemm_is_g128), E2(w4a8_gemm_is_g64), E2(w4a8_gemm_is_g32), E3(w4a8_gemm_fs_g128),
                            E2(w4a8_gemm_fs_g64),  E2(w4a8_gemm_fs_g32), E3(w4a8_gemm_pc),      E3(w4a16_gemm_g128)};
static W4Fn find_entry(const std::string& name) {
  for (auto& e : g_entries)
    if (name == e.name) return e.fn;
  fprintf(stderr, "no entry %s\n", name.c_str());
  exit(2);
}

// Mirror of src/gpu/kernels/w4-gemm-plan.ts
struct Plan {
  std::string entry;
  char tile;
  int bm, bn, threads, gx, gy, splits, smem;
};
static Plan plan(const char* kind, int G, int M, int N, int K, char tile = 0, int splits = 0, int sm = 132) {
  Plan p;
  std::string k = kind;
  p.tile = tile ? tile : (M <= 16 ? 's' : (M <= 128 || ((k == "is" || k == "fs") && G != 128)) ? 'm' : 'l');
  if (!tile && p.tile == 'l' && k == "is" && G == 128 &&
      (M >= 1024 || (M >= 512 && (long)((N + 127) / 128) * ((M + 127) / 128) >= 4L * sm)))
    p.tile = 'r';  // reordered g128 IS tile, 2 blocks/SM (w4-gemm-plan.ts)
  p.bm = (p.tile == 's' || p.tile == 'x') ? 16 : p.tile == 'y' ? 32 : p.tile == 'm' ? 64 : 128;
  p.bn = 128;
  if (p.tile == 'L' || p.tile == 'r' || p.tile == 'q' || p.tile == 't') p.bm = 128;  // r/q/t: l, reordered
  p.threads = (p.tile == 's' || p.tile == 'x' || p.tile == 'y') ? 128 : p.tile == 'L' ? 512 : 256;
  const int stages = p.tile == 'x' ? 8 : p.tile == 's' ? 6 : 4;
  int eb = k == "w4a16" ? 2 : 1, sb = k == "pc" ? 0 : k == "w4a16" ? 2 : 4, gpt = k == "pc" ? 0 : 128 / G;
  p.smem = stages * (p.bm * 128 * eb + p.bn * 64) + (stages + 1) * gpt * p.bn * sb;
  if (k == "is" || k == "fs") p.entry = "w4a8_gemm_" + k + "_g" + std::to_string(G) + "_" + p.tile;
  else if (k == "pc") p.entry = std::string("w4a8_gemm_pc_") + p.tile;
  else p.entry = std::string("w4a16_gemm_g128_") + p.tile;
  p.gx = (N + p.bn - 1) / p.bn;
  p.gy = (M + p.bm - 1) / p.bm;
  int KT = K / 128;
  if (splits) p.splits = splits;
  else {
    double target = ((p.tile == 's' || p.tile == 'x' || p.tile == 'y') ? 2.5 : p.tile == 'm' ? 2 : 1) * sm;
    p.splits = std::max(1, std::min((int)lround(target / (p.gx * p.gy)), KT / 2));
  }
  return p;
}

struct Ctx {
  void* ws = 0;
  unsigned* counters = 0;
  size_t ws_bytes = 0, cnt_n = 0;
  void ensure(size_t bytes, size_t cnt) {
    if (bytes > ws_bytes) {
      if (ws) CK(cudaFree(ws));
      CK(cudaMalloc(&ws, bytes));
      CK(cudaMemset(ws, 0xA5, bytes));  // contents must not matter
      ws_bytes = bytes;
    }
    if (cnt > cnt_n) {
      if (counters) CK(cudaFree(counters));
      CK(cudaMalloc(&counters, cnt * 4));
      CK(cudaMemset(counters, 0, cnt * 4));
      cnt_n = cnt;
    }
  }
} g_ctx;

static void launch(const Plan& p, const void* A, const float* sx, const void* W, const void* gs, const void* chan,
                   const uint16_t* res, uint16_t* out, int M, int N, int K, cudaStream_t st = 0) {
  W4Fn fn = find_entry(p.entry);
  static std::vector<std::string> configured;
  if (std::find(configured.begin(), configured.end(), p.entry) == configured.end()) {
    CK(cudaFuncSetAttribute((const void*)fn, cudaFuncAttributeMaxDynamicSharedMemorySize, p.smem));
    configured.push_back(p.entry);
  }
  if (p.splits > 1) g_ctx.ensure((size_t)p.splits * M * N * 4, (size_t)p.gx * p.gy);
  fn<<<dim3(p.gx, p.gy, p.splits), p.threads, p.smem, st>>>(A, sx, (const kg::U4*)W, gs, chan, res, out, g_ctx.ws,
                                                         g_ctx.counters, M, N, K);
  CK(cudaGetLastError());
}

// ---------------------------------------------------------------- correctness
static int g_fail = 0;

static std::vector<int> sample_rows(int M, Rng& r) {
  std::vector<int> rows;
  if (M <= 64) {
    for (int i = 0; i < M; i++) rows.push_back(i);
    return rows;
  }
  int fixed[] = {0, 1, 15, 16, 17, 63, 64, 127, 128, 255, 256, 511, 512, M - 2, M - 1};
  for (int f : fixed)
    if (f >= 0 && f < M) rows.push_back(f);
  while ((int)rows.size() < 48) rows.push_back(r.range(0, M - 1));
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return rows;
}

// Compare a kernel's fp16 output with the reference on sampled rows; every element must be written.
static bool compare(const char* what, const std::vector<uint16_t>& out, int M, int N, const std::vector<int>& rows,
                    const std::vector<float>& ref, const std::vector<float>& mag, bool exact, double rtol, double mtol) {
  size_t nan = 0;
  for (size_t i = 0; i < (size_t)M * N; i++)
    if ((out[i] & 0x7C00) == 0x7C00 && (out[i] & 0x3FF)) nan++;
  size_t bad = 0;
  double worst = 0;
  long first = -1;
  for (size_t ri = 0; ri < rows.size(); ri++)
    for (int n = 0; n < N; n++) {
      uint16_t o = out[(size_t)rows[ri] * N + n];
      float rv = ref[ri * N + n];
      bool ok;
      if (exact) ok = o == f2h(rv);
      else {
        double d = fabs((double)h2f(o) - rv), tol = rtol * fabs(rv) + mtol * mag[ri * N + n] + 6e-8;
        ok = d <= tol;
        worst = std::max(worst, d / (fabs(rv) + 1e-30));
      }
      if (!ok) {
        if (first < 0) first = (long)(rows[ri] * (long)N + n);
        bad++;
      }
    }
  bool pass = nan == 0 && bad == 0;
  if (!pass) {
    g_fail++;
    long r = first >= 0 ? first / N : -1, c = first >= 0 ? first % N : -1;
    printf("  FAIL %-34s M=%d N=%d: %zu unwritten/NaN, %zu mismatches (first at [%ld,%ld]: got %g, ref %g)\n", what, M, N,
           nan, bad, r, c, first >= 0 ? h2f(out[first]) : 0.0, first >= 0 ? ref[0] : 0.0);
  }
  return pass;
}

static void cpu_spot_check(const Weights& w, const std::vector<int8_t>& A, const std::vector<float>& sx, int K,
                           const std::vector<int>& rows, const std::vector<float>& refIS, Rng& r) {
  // IS per the spec, on the CPU, for a few (row, n): must equal the naive GPU reference bit for bit.
  const int groups = K / w.G;
  for (int t = 0; t < 6; t++) {
    int ri = r.range(0, (int)rows.size() - 1), n = r.range(0, w.N - 1), row = rows[ri];
    int32_t acc = 0;
    for (int g = 0; g < groups; g++) {
      int P = 0;
      for (int k = g * w.G; k < (g + 1) * w.G; k++) {
        int qv = nib(w.q.data(), K / 2, n, k);
        qv = qv >= 8 ? qv - 16 : qv;
        P += A[(size_t)row * K + k] * qv;
      }
      acc = (int32_t)((uint32_t)acc + (uint32_t)(P * w.is[(size_t)n * groups + g]));
    }
    volatile float a = (float)acc * sx[row];
    float y = a * ldexpf(1.f, -w.kn[n]);
    if (y != refIS[(size_t)ri * w.N + n]) {
      g_fail++;
      printf("  FAIL CPU spot check IS [%d,%d]: cpu %g, gpu-ref %g\n", row, n, y, refIS[(size_t)ri * w.N + n]);
    }
  }
}

static void check_act_quant(uint64_t seed) {
  int shapes[][2] = {{1, 4096}, {3, 11008}, {17, 14336}, {127, 4096}, {5, 136}};
  for (auto& sh : shapes) {
    int M = sh[0], K = sh[1];
    Rng r(seed + M * 7 + K);
    std::vector<uint16_t> X((size_t)M * K);
    for (size_t i = 0; i < X.size(); i++) X[i] = f2h(r.normal() * (i % 97 == 0 ? 8.f : 1.f));
    if (M > 2) for (int k = 0; k < K; k++) X[(size_t)1 * K + k] = (k % 3) ? 0 : 0x8000;  // an all-zero row
    uint16_t* dX = dev_upload(X);
    int8_t* dQ;
    float* dS;
    CK(cudaMalloc(&dQ, (size_t)M * K));
    CK(cudaMalloc(&dS, M * 4));
    CK(cudaMemset(dQ, 0x55, (size_t)M * K));
    CK(cudaMemset(dS, 0xFF, M * 4));
    kq::quantize_act_per_token<<<M, 256>>>(dX, (signed char*)dQ, dS, M, K);
    CK(cudaGetLastError());
    std::vector<int8_t> Q((size_t)M * K);
    std::vector<float> S(M);
    CK(cudaMemcpy(Q.data(), dQ, Q.size(), cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(S.data(), dS, M * 4, cudaMemcpyDeviceToHost));
    size_t bad = 0;
    for (int t = 0; t < M; t++) {
      float amax = 0;
      for (int k = 0; k < K; k++) amax = std::max(amax, fabsf(h2f(X[(size_t)t * K + k])));
      volatile float s = amax / 127.f, inv = 127.f / amax;
      float sref = amax == 0 ? 0.f : (float)s;
      if (memcmp(&sref, &S[t], 4) != 0) bad++;
      for (int k = 0; k < K; k++) {
        int q = 0;
        if (amax > 0) {
          volatile float p = h2f(X[(size_t)t * K + k]) * (float)inv;
          q = (int)nearbyintf(p);
          q = std::min(127, std::max(-127, q));
        }
        if (Q[(size_t)t * K + k] != q) bad++;
      }
    }
    printf("  act-quant M=%-4d K=%-6d %s\n", M, K, bad ? "FAIL" : "ok (bit-exact)");
    if (bad) g_fail++;
    cudaFree(dX), cudaFree(dQ), cudaFree(dS);
  }
}

static bool g_with_L = true;
static void run_check(bool quick, bool ro = false) {
  printf("== correctness sweep (IS/PC bit-exact, FS/W4A16 within fp32 rounding) ==\n");
  check_act_quant(11);
  std::vector<int> Ms = {1, 3, 16, 17, 64, 127, 256, 1000};
  std::vector<int> Ks = {4096, 11008, 14336};
  std::vector<int> Ns = {4096, 12288, 22016};
  if (quick) Ms = {1, 17, 127}, Ks = {4096, 11008}, Ns = {4096};
  if (ro) Ms = {1, 3, 17, 64, 127, 256, 1000}, Ks = {4096, 11008}, Ns = {4096, 22016}, g_with_L = false;
  uint64_t seed = 1;
  for (int K : Ks)
    for (int N : Ns) {
      Weights w = make_weights(N, K, 128, seed++);
      // PC weights: reuse q with per-channel scales w.spc (any int4 data tests the kernel)
      int passed = 0, total = 0;
      for (int M : Ms) {
        Rng r(seed * 31 + M);
        std::vector<int8_t> A((size_t)M * K);
        std::vector<float> sx(M);
        std::vector<uint16_t> X((size_t)M * K);
        for (auto& v : A) v = (int8_t)r.range(-127, 127);
        for (auto& v : sx) v = 1e-3f + 0.05f * r.uni();
        for (auto& v : X) v = f2h(r.normal());
        std::vector<int> rows = sample_rows(M, r);
        int8_t* dA = dev_upload(A);
        float* dsx = dev_upload(sx);
        uint16_t* dX = dev_upload(X);
        int* drows = dev_upload(rows);
        uint16_t *dout, *dres;
        float *dref, *dmag;
        CK(cudaMalloc(&dout, (size_t)M * N * 2));
        CK(cudaMalloc(&dref, rows.size() * N * 4));
        CK(cudaMalloc(&dmag, rows.size() * N * 4));
        std::vector<uint16_t> out((size_t)M * N), out2((size_t)M * N);
        std::vector<float> ref(rows.size() * N), mag(rows.size() * N);
        struct Case { const char* kind; int mode; const void* W; const void* gs; const void* chan; bool exact; double rtol, mtol; };
        Case cases[] = {{"is", R_IS, w.d_w8, w.d_isT, w.d_kn, true, 0, 0},
                        {"fs", R_FS, w.d_w8, w.d_sT, nullptr, false, 1.0 / 1024, 2e-6},
                        {"pc", R_PC, w.d_w8, nullptr, w.d_spc, true, 0, 0},
                        {"w4a16", R_A16, w.d_w16, w.d_shT, nullptr, false, 1.0 / 1024, 1e-5}};
        for (auto& c : cases) {
          ref_kernel<<<dim3((N + 127) / 128, rows.size()), 128>>>(c.mode, dA, dX, dsx, w.d_q, w.d_s, w.d_is, w.d_kn,
                                                                  w.d_spc, drows, (int)rows.size(), N, K,
                                                                  c.mode == R_PC ? K : 128, dref, dmag);
          CK(cudaGetLastError());
          CK(cudaMemcpy(ref.data(), dref, ref.size() * 4, cudaMemcpyDeviceToHost));
          CK(cudaMemcpy(mag.data(), dmag, mag.size() * 4, cudaMemcpyDeviceToHost));
          if (c.mode == R_IS && M <= 17) cpu_spot_check(w, A, sx, K, rows, ref, r);
          Plan p = plan(c.kind, 128, M, N, K);
          const void* Ain = c.mode == R_A16 ? (const void*)dX : (const void*)dA;
          for (int rep = 0; rep < 2; rep++) {  // twice: the split-K workspace must be left clean
            CK(cudaMemset(dout, 0xFF, (size_t)M * N * 2));
            launch(p, Ain, dsx, c.W, c.gs, c.chan, nullptr, dout, M, N, K);
            CK(cudaDeviceSynchronize());
            CK(cudaMemcpy(rep ? out2.data() : out.data(), dout, (size_t)M * N * 2, cudaMemcpyDeviceToHost));
          }
          char what[96];
          snprintf(what, sizeof what, "%s (%s, splits %d) K=%d", p.entry.c_str(), c.kind, p.splits, K);
          bool ok = compare(what, out, M, N, rows, ref, mag, c.exact, c.rtol, c.mtol);
          // the reordered g128 tiles (r = 3 MMA chains, q = 2, t = 4) at every M, planner splits and 3
          for (char rt : {'r', 'q', 't'}) {
            if (c.mode != R_IS && c.mode != R_FS) continue;
            for (int sp : {0, 3}) {
              Plan pR = plan(c.kind, 128, M, N, K, rt, sp);
              CK(cudaMemset(dout, 0xFF, (size_t)M * N * 2));
              launch(pR, Ain, dsx, c.W, c.gs, c.chan, nullptr, dout, M, N, K);
              CK(cudaDeviceSynchronize());
              std::vector<uint16_t> outR((size_t)M * N);
              CK(cudaMemcpy(outR.data(), dout, (size_t)M * N * 2, cudaMemcpyDeviceToHost));
              char whatR[96];
              snprintf(whatR, sizeof whatR, "%s (splits %d) K=%d", pR.entry.c_str(), pR.splits, K);
              bool okR = compare(whatR, outR, M, N, rows, ref, mag, c.exact, c.rtol, c.mtol);
              if (okR && c.exact && outR != out) {  // IS: identical to the l/m/s kernel's output
                g_fail++, okR = false;
                printf("  FAIL %s M=%d N=%d: differs from %s\n", whatR, M, N, p.entry.c_str());
              }
              ok = okR && ok;
            }
          }
          if (g_with_L && M >= 127 && (c.mode == R_IS || c.mode == R_FS)) {  // the bench-only 512-thread tile
            Plan pL = plan(c.kind, 128, M, N, K, 'L');
            CK(cudaMemset(dout, 0xFF, (size_t)M * N * 2));
            launch(pL, Ain, dsx, c.W, c.gs, c.chan, nullptr, dout, M, N, K);
            CK(cudaDeviceSynchronize());
            std::vector<uint16_t> outL((size_t)M * N);
            CK(cudaMemcpy(outL.data(), dout, (size_t)M * N * 2, cudaMemcpyDeviceToHost));
            char whatL[96];
            snprintf(whatL, sizeof whatL, "%s (splits %d) K=%d", pL.entry.c_str(), pL.splits, K);
            ok = compare(whatL, outL, M, N, rows, ref, mag, c.exact, c.rtol, c.mtol) && ok;
          }
          if (ok && c.exact && out != out2) {
            g_fail++, ok = false;
            printf("  FAIL %s M=%d N=%d: second launch differs (workspace not clean?)\n", what, M, N);
          }
          passed += ok;
          total++;
        }
        // other group sizes and the residual path, on a few shapes
        if (M == 3 || M == 127) {
          for (int G : {32, 64}) {
            Weights wg = make_weights(N, std::min(K, 4096), G, seed * 7 + G);
            int Kg = wg.K;
            std::vector<int> rows2;
            for (int i = 0; i < std::min(M, 8); i++) rows2.push_back(i);
            int* drows2 = dev_upload(rows2);
            std::vector<float> ref2(rows2.size() * N), mag2(rows2.size() * N);
            for (int mode : {R_IS, R_FS}) {
              // A rows have stride K (not Kg): use a compact copy
              std::vector<int8_t> Ag((size_t)M * Kg);
              for (int i = 0; i < M; i++) memcpy(&Ag[(size_t)i * Kg], &A[(size_t)i * K], Kg);
              int8_t* dAg = dev_upload(Ag);
              ref_kernel<<<dim3((N + 127) / 128, rows2.size()), 128>>>(mode, dAg, dX, dsx, wg.d_q, wg.d_s, wg.d_is,
                                                                       wg.d_kn, wg.d_spc, drows2, (int)rows2.size(), N,
                                                                       Kg, G, dref, dmag);
              CK(cudaMemcpy(ref2.data(), dref, ref2.size() * 4, cudaMemcpyDeviceToHost));
              CK(cudaMemcpy(mag2.data(), dmag, mag2.size() * 4, cudaMemcpyDeviceToHost));
              Plan p = plan(mode == R_IS ? "is" : "fs", G, M, N, Kg);
              CK(cudaMemset(dout, 0xFF, (size_t)M * N * 2));
              launch(p, dAg, dsx, wg.d_w8, mode == R_IS ? (const void*)wg.d_isT : (const void*)wg.d_sT,
                     mode == R_IS ? (const void*)wg.d_kn : nullptr, nullptr, dout, M, N, Kg);
              CK(cudaDeviceSynchronize());
              CK(cudaMemcpy(out.data(), dout, (size_t)M * N * 2, cudaMemcpyDeviceToHost));
              char what[96];
              snprintf(what, sizeof what, "%s (splits %d) K=%d", p.entry.c_str(), p.splits, Kg);
              // only rows2 are compared; others must still be written
              passed += compare(what, out, M, N, rows2, ref2, mag2, mode == R_IS, 1.0 / 1024, 2e-6);
              total++;
              cudaFree(dAg);
            }
            cudaFree(drows2);
            wg.free_all();
          }
          // residual: out = fp16(y + res), IS
          std::vector<uint16_t> res((size_t)M * N);
          for (auto& v : res) v = f2h(r.normal());
          dres = dev_upload(res);
          ref_kernel<<<dim3((N + 127) / 128, rows.size()), 128>>>(R_IS, dA, dX, dsx, w.d_q, w.d_s, w.d_is, w.d_kn, w.d_spc,
                                                                  drows, (int)rows.size(), N, K, 128, dref, dmag);
          CK(cudaMemcpy(ref.data(), dref, ref.size() * 4, cudaMemcpyDeviceToHost));
          for (size_t ri = 0; ri < rows.size(); ri++)
            for (int n = 0; n < N; n++) ref[ri * N + n] = ref[ri * N + n] + h2f(res[(size_t)rows[ri] * N + n]);
          Plan p = plan("is", 128, M, N, K);
          CK(cudaMemset(dout, 0xFF, (size_t)M * N * 2));
          launch(p, dA, dsx, w.d_w8, w.d_isT, w.d_kn, dres, dout, M, N, K);
          CK(cudaDeviceSynchronize());
          CK(cudaMemcpy(out.data(), dout, (size_t)M * N * 2, cudaMemcpyDeviceToHost));
          passed += compare("is + residual", out, M, N, rows, ref, mag, true, 0, 0);
          total++;
          cudaFree(dres);
        }
        cudaFree(dA), cudaFree(dsx), cudaFree(dX), cudaFree(drows), cudaFree(dout), cudaFree(dref), cudaFree(dmag);
      }
      printf("  K=%-6d N=%-6d: %d/%d kernel checks passed\n", K, N, passed, total);
      fflush(stdout);
      w.free_all();
    }
}

// ---------------------------------------------------------------- timing
static float time_it(int iters, int nbuf, const std::function<void(int)>& body) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  for (int i = 0; i < 3; i++) body(i % nbuf);
  std::vector<float> ts;
  for (int rep = 0; rep < 5; rep++) {
    CK(cudaEventRecord(a));
    for (int i = 0; i < iters; i++) body(i % nbuf);
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float ms;
    CK(cudaEventElapsedTime(&ms, a, b));
    ts.push_back(ms * 1000.f / iters);
  }
  std::sort(ts.begin(), ts.end());
  cudaEventDestroy(a), cudaEventDestroy(b);
  return ts[2];
}

static void run_time(bool quick) {
  printf("== timings (us, median of 5 x N iters, weights rotated through >= 200 MB) ==\n");
  int shapes[][2] = {{4096, 12288}, {4096, 4096}, {4096, 22016}, {11008, 4096}, {4096, 6144}, {4096, 28672}, {14336, 4096}};
  std::vector<int> Ms = {1, 16, 128, 512, 4096};
  if (quick) Ms = {1, 128};
  FILE* csv = fopen(getenv("OUT") ? (std::string(getenv("OUT")) + "/kernels.csv").c_str() : "kernels.csv", "w");
  fprintf(csv, "M,K,N,kind,entry,splits,us\n");
  for (auto& sh : shapes) {
    int K = sh[0], N = sh[1];
    size_t wbytes = (size_t)N * K / 2;
    int nbuf = (int)std::max<size_t>(2, (200u << 20) / wbytes + 1);
    // weights: random bytes, scales: valid small values (no overflow concerns for timing: IS int32
    // wraps harmlessly), nbuf copies
    std::vector<uint8_t> wb(wbytes);
    Rng r(K * 7 + N);
    for (auto& v : wb) v = (uint8_t)r.next();
    std::vector<uint8_t*> W(nbuf);
    for (int i = 0; i < nbuf; i++) W[i] = dev_upload(wb);
    std::vector<int32_t> isT((size_t)N * K / 128);
    for (auto& v : isT) v = r.range(1, 2000);
    std::vector<float> sT((size_t)N * K / 128);
    for (auto& v : sT) v = 0.01f * r.uni();
    std::vector<uint16_t> shT(sT.size());
    for (size_t i = 0; i < sT.size(); i++) shT[i] = f2h(sT[i]);
    std::vector<int8_t> kn(N, 10);
    std::vector<float> spc(N, 0.01f);
    int32_t* d_isT = dev_upload(isT);
    float* d_sT = dev_upload(sT);
    uint16_t* d_shT = dev_upload(shT);
    int8_t* d_kn = dev_upload(kn);
    float* d_spc = dev_upload(spc);
    for (int M : Ms) {
      std::vector<int8_t> A((size_t)M * K);
      for (auto& v : A) v = (int8_t)r.range(-127, 127);
      std::vector<uint16_t> X((size_t)M * K);
      for (auto& v : X) v = f2h(r.normal());
      std::vector<float> sx(M, 0.01f);
      int8_t* dA = dev_upload(A);
      uint16_t* dX = dev_upload(X);
      float* dsx = dev_upload(sx);
      uint16_t* dout;
      CK(cudaMalloc(&dout, (size_t)M * N * 2));
      int iters = M >= 4096 ? 10 : 50;
      struct K4 { const char* kind; const void* gs; const void* chan; };
      K4 kinds[] = {{"is", d_isT, d_kn}, {"fs", d_sT, nullptr}, {"pc", nullptr, d_spc}, {"w4a16", d_shT, nullptr}};
      float t_is = 0, t_fs = 0, t_pc = 0, t_16 = 0;
      for (auto& kd : kinds) {
        Plan p = plan(kd.kind, 128, M, N, K);
        bool a16 = !strcmp(kd.kind, "w4a16");
        float us = time_it(iters, nbuf, [&](int i) {
          launch(p, a16 ? (const void*)dX : (const void*)dA, dsx, W[i], kd.gs, kd.chan, nullptr, dout, M, N, K);
        });
        fprintf(csv, "%d,%d,%d,%s,%s,%d,%.2f\n", M, K, N, kd.kind, p.entry.c_str(), p.splits, us);
        if (!strcmp(kd.kind, "is")) t_is = us;
        if (!strcmp(kd.kind, "fs")) t_fs = us;
        if (!strcmp(kd.kind, "pc")) t_pc = us;
        if (a16) t_16 = us;
      }
      // split-K exploration for IS at small M
      std::string best = "";
      if (M <= 4096) {
        float bt = 1e30f;
        int bs = 0;
        char btile = 0;
        std::vector<char> tiles = M <= 16 ? std::vector<char>{'s', 'x'} : M <= 32 ? std::vector<char>{'y', 'm'} : M < 512 ? std::vector<char>{'m', 'l', 'L'} : std::vector<char>{'l', 'L'};
        for (char tl : tiles)
          for (int s : {1, 2, 3, 4, 6, 8, 12, 16}) {
            if (s > K / 128 || (M > 16 && s > 6) || (M >= 512 && s > 2) || (M >= 4096 && s > 1)) continue;
            Plan p = plan("is", 128, M, N, K, tl, s);
            float us = time_it(iters, nbuf, [&](int i) { launch(p, dA, dsx, W[i], d_isT, d_kn, nullptr, dout, M, N, K); });
            fprintf(csv, "%d,%d,%d,is-explore,%s,%d,%.2f\n", M, K, N, p.entry.c_str(), s, us);
            if (us < bt) bt = us, bs = s, btile = tl;
          }
        char b[64];
        snprintf(b, sizeof b, "best: tile %c splits %d: %.1f", btile, bs, bt);
        best = b;
      }
      Plan p = plan("is", 128, M, N, K);
      double gbps = (double)wbytes / (t_is * 1e-6) / 1e9;
      printf("M=%-5d K=%-6d N=%-6d IS %8.1f  FS %8.1f  PC %8.1f  W4A16 %8.1f  (IS %s s=%d, %.0f GB/s of weights) %s\n", M,
             K, N, t_is, t_fs, t_pc, t_16, p.entry.c_str(), p.splits, gbps, best.c_str());
      fflush(stdout);
      cudaFree(dA), cudaFree(dX), cudaFree(dsx), cudaFree(dout);
    }
    for (auto p : W) cudaFree(p);
    cudaFree(d_isT), cudaFree(d_sT), cudaFree(d_shT), cudaFree(d_kn), cudaFree(d_spc);
  }
  fclose(csv);
}

// ---------------------------------------------------------------- reordered tile timing
// IS/FS l vs the reordered r/q/t tiles (same grid and splits), PC (planned), at M >= 256.
static void run_time_ro() {
  printf("== reordered g128 tiles (us, median of 5 x N iters, weights rotated through >= 200 MB) ==\n");
  int shapes[][2] = {{4096, 22016}, {4096, 4096}, {11008, 4096}};
  std::vector<int> Ms = {256, 512, 1024, 2048, 4096};
  FILE* csv = fopen(getenv("OUT") ? (std::string(getenv("OUT")) + "/ro.csv").c_str() : "ro.csv", "w");
  fprintf(csv, "M,K,N,entry,splits,us\n");
  printf("%5s %6s %6s | %8s %8s %8s %8s | %8s %8s %8s %8s | %8s | %6s %6s\n", "M", "K", "N", "IS l", "IS r", "IS q",
         "IS t", "FS l", "FS r", "FS q", "FS t", "PC", "l/r", "PC/r");
  for (auto& sh : shapes) {
    int K = sh[0], N = sh[1];
    size_t wbytes = (size_t)N * K / 2;
    int nbuf = (int)std::max<size_t>(2, (200u << 20) / wbytes + 1);
    std::vector<uint8_t> wb(wbytes);
    Rng r(K * 7 + N);
    for (auto& v : wb) v = (uint8_t)r.next();
    std::vector<uint8_t*> W(nbuf);
    for (int i = 0; i < nbuf; i++) W[i] = dev_upload(wb);
    std::vector<int32_t> isT((size_t)N * K / 128);
    for (auto& v : isT) v = r.range(1, 2000);
    std::vector<float> sT((size_t)N * K / 128);
    for (auto& v : sT) v = 0.01f * r.uni();
    std::vector<int8_t> kn(N, 10);
    std::vector<float> spc(N, 0.01f);
    int32_t* d_isT = dev_upload(isT);
    float* d_sT = dev_upload(sT);
    int8_t* d_kn = dev_upload(kn);
    float* d_spc = dev_upload(spc);
    for (int M : Ms) {
      std::vector<int8_t> A((size_t)M * K);
      for (auto& v : A) v = (int8_t)r.range(-127, 127);
      std::vector<float> sx(M, 0.01f);
      int8_t* dA = dev_upload(A);
      float* dsx = dev_upload(sx);
      uint16_t* dout;
      CK(cudaMalloc(&dout, (size_t)M * N * 2));
      int iters = M >= 4096 ? 10 : M >= 1024 ? 20 : 50;
      auto t = [&](const char* kind, char tile) {
        bool is = !strcmp(kind, "is"), pc = !strcmp(kind, "pc");
        Plan p = plan(kind, 128, M, N, K, tile);
        float us = time_it(iters, nbuf, [&](int i) {
          launch(p, dA, dsx, W[i], pc ? nullptr : is ? (const void*)d_isT : (const void*)d_sT,
                 pc ? (const void*)d_spc : is ? (const void*)d_kn : nullptr, nullptr, dout, M, N, K);
        });
        fprintf(csv, "%d,%d,%d,%s,%d,%.2f\n", M, K, N, p.entry.c_str(), p.splits, us);
        return us;
      };
      float isl = t("is", 'l'), isr = t("is", 'r'), isq = t("is", 'q'), ist = t("is", 't');
      float fsl = t("fs", 'l'), fsr = t("fs", 'r'), fsq = t("fs", 'q'), fst = t("fs", 't'), pcl = t("pc", 0);
      printf("%5d %6d %6d | %8.1f %8.1f %8.1f %8.1f | %8.1f %8.1f %8.1f %8.1f | %8.1f | %6.2f %6.2f\n", M, K, N, isl, isr,
             isq, ist, fsl, fsr, fsq, fst, pcl, isl / isr, pcl / isr);
      fflush(stdout);
      cudaFree(dA), cudaFree(dsx), cudaFree(dout);
    }
    for (auto p : W) cudaFree(p);
    cudaFree(d_isT), cudaFree(d_sT), cudaFree(d_kn), cudaFree(d_spc);
  }
  fclose(csv);
}

// ---------------------------------------------------------------- NVRTC compile check
// libnvrtc is loaded with dlopen (no nvrtc.h needed to build the bench): $NVRTC_LIB or the usual names.
typedef int (*nvrtcCreate_t)(void**, const char*, const char*, int, const char* const*, const char* const*);
typedef int (*nvrtcCompile_t)(void*, int, const char* const*);
typedef int (*nvrtcLogSize_t)(void*, size_t*);
typedef int (*nvrtcLog_t)(void*, char*);
typedef int (*nvrtcDestroy_t)(void**);
static void run_nvrtc(const char* root) {
  printf("== NVRTC compile (include path: src/gpu/kernels, for ptx.cuh) ==\n");
  void* lib = nullptr;
  const char* env = getenv("NVRTC_LIB");
  for (const char* name : {env, "libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"})
    if (name && (lib = dlopen(name, RTLD_NOW))) break;
  if (!lib) {
    printf("  FAILED: cannot dlopen libnvrtc (set NVRTC_LIB)\n");
    g_fail++;
    return;
  }
  auto create = (nvrtcCreate_t)dlsym(lib, "nvrtcCreateProgram");
  auto compile = (nvrtcCompile_t)dlsym(lib, "nvrtcCompileProgram");
  auto logsize = (nvrtcLogSize_t)dlsym(lib, "nvrtcGetProgramLogSize");
  auto getlog = (nvrtcLog_t)dlsym(lib, "nvrtcGetProgramLog");
  auto destroy = (nvrtcDestroy_t)dlsym(lib, "nvrtcDestroyProgram");
  const char* files[] = {"src/gpu/kernels/w4_gemm.cu", "src/gpu/kernels/w4_gemm_wgmma.cu", "src/gpu/kernels/w4_gemv.cu",
                         "src/gpu/kernels/quantize_act.cu"};
  const std::string include = std::string("--include-path=") + root + "/src/gpu/kernels";
  for (const char* f : files) {
    std::ifstream in(std::string(root) + "/" + f);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string src = ss.str();
    for (const char* arch : {"--gpu-architecture=sm_90a", "--gpu-architecture=sm_80"}) {
      void* prog;
      create(&prog, src.c_str(), f, 0, nullptr, nullptr);
      const char* opts[] = {arch, "--std=c++17", include.c_str()};
      int res = compile(prog, 3, opts);
      size_t logn = 0;
      logsize(prog, &logn);
      std::string log(logn + 1, 0);
      getlog(prog, &log[0]);
      printf("  %-34s %-28s %s\n", f, arch, res == 0 ? "ok" : "FAILED");
      if (res != 0) {
        g_fail++;
        printf("%s\n", log.c_str());
      }
      destroy(&prog);
    }
  }
}

int main(int argc, char** argv) {
  std::string what = argc > 1 ? argv[1] : "all";
  bool quick = argc > 2 && !strcmp(argv[2], "--quick");
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  printf("device: %s, %d SMs, L2 %d MB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
  if (what == "nvrtc" || what == "all") run_nvrtc(".");
  if (what == "check" || what == "all") run_check(quick);
  if (what == "time" || what == "all") run_time(quick);
  if (what == "rocheck") run_check(false, true);
  if (what == "rotime") run_time_ro();
  printf("%s: %d failure(s)\n", g_fail ? "FAILED" : "PASSED", g_fail);
  return g_fail ? 1 : 0;
}
