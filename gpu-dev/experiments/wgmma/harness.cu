// Host harness for the wgmma W4A8-IS prototype: seeded random data, naive GPU reference of the
// QUANT_SPEC formula (itself spot-checked on the CPU), bit-exact compare, cudaEvent timing.
// Usage: harness M N K [reps]   (M, N, K multiples of 128, K multiple of 256)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "w4a8_wgmma.cu"

#define CK(x)                                                                                   \
  do {                                                                                          \
    cudaError_t e_ = (x);                                                                       \
    if (e_ != cudaSuccess) {                                                                    \
      std::fprintf(stderr, "CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); \
      std::exit(2);                                                                             \
    }                                                                                           \
  } while (0)

// Reference: one thread per (sampled row t, n); independent of tiling and smem layout.
__global__ void ref_kernel(const int8_t* A, const float* sx, const int8_t* B, const int32_t* S, const int8_t* shift,
                           __half* out, int M, int N, int K, int rowStep) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  const int t = blockIdx.y * rowStep;
  if (n >= N || t >= M) return;
  unsigned acc = 0;
  for (int g = 0; g < K / 128; ++g) {
    int P = 0;
    for (int k = g * 128; k < g * 128 + 128; ++k) P += int(A[size_t(t) * K + k]) * int(B[size_t(n) * K + k]);
    acc += unsigned(P) * unsigned(S[size_t(g) * N + n]);
  }
  const float y = __fmul_rn(__fmul_rn(__int2float_rn(int(acc)), sx[t]), ldexpf(1.0f, -int(shift[n])));
  out[size_t(t) * N + n] = __float2half_rn(y);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd() {
  rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
  return uint32_t(rng_state >> 16);
}

static float cpu_y(const std::vector<int8_t>& A, const std::vector<float>& sx, const std::vector<int8_t>& B,
                   const std::vector<int32_t>& S, const std::vector<int8_t>& sh, int N, int K, int t, int n) {
  unsigned acc = 0;
  for (int g = 0; g < K / 128; ++g) {
    int P = 0;
    for (int k = g * 128; k < g * 128 + 128; ++k) P += int(A[size_t(t) * K + k]) * int(B[size_t(n) * K + k]);
    acc += unsigned(P) * unsigned(S[size_t(g) * N + n]);
  }
  volatile float a = float(int(acc));  // rn, no contraction
  volatile float b = a * sx[t];
  return b * std::ldexp(1.0f, -int(sh[n]));
}

static float h2f(uint16_t h) { __half_raw r; r.x = h; return __half2float(__half(r)); }

int main(int argc, char** argv) {
  if (argc < 4) { std::fprintf(stderr, "usage: harness M N K [reps]\n"); return 1; }
  const int M = std::atoi(argv[1]), N = std::atoi(argv[2]), K = std::atoi(argv[3]);
  const int reps = argc > 4 ? std::atoi(argv[4]) : 20;
  if (M % 128 || N % 128 || K % 256) { std::fprintf(stderr, "M,N must be multiples of 128, K of 256\n"); return 1; }
  std::printf("== M=%d N=%d K=%d\n", M, N, K);
  std::vector<int8_t> A(size_t(M) * K), B(size_t(N) * K), sh(N);
  std::vector<float> sx(M);
  std::vector<int32_t> S(size_t(K / 128) * N);
  for (auto& v : A) v = int8_t(int(rnd() % 255) - 127);
  for (auto& v : B) v = int8_t(int(rnd() % 16) - 8);
  for (auto& v : S) v = int32_t(1 + rnd() % 4095);
  for (auto& v : sh) v = int8_t(8 + rnd() % 13);
  for (auto& v : sx) v = 1e-4f + (rnd() % 10000) * 1e-6f;

  int8_t *dA, *dB, *dsh; float* dsx; int32_t* dS; __half *dOut, *dRef;
  CK(cudaMalloc(&dA, A.size())); CK(cudaMalloc(&dB, B.size())); CK(cudaMalloc(&dsh, N));
  CK(cudaMalloc(&dsx, M * 4)); CK(cudaMalloc(&dS, S.size() * 4));
  CK(cudaMalloc(&dOut, size_t(M) * N * 2)); CK(cudaMalloc(&dRef, size_t(M) * N * 2));
  CK(cudaMemcpy(dA, A.data(), A.size(), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dB, B.data(), B.size(), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dsh, sh.data(), N, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dsx, sx.data(), M * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dS, S.data(), S.size() * 4, cudaMemcpyHostToDevice));

  const int rowStep = M > 1024 ? 8 : 1;
  CK(cudaMemset(dRef, 0xFF, size_t(M) * N * 2));
  ref_kernel<<<dim3(N / 128, M / rowStep), 128>>>(dA, dsx, dB, dS, dsh, dRef, M, N, K, rowStep);
  CK(cudaGetLastError());
  CK(cudaDeviceSynchronize());
  std::vector<uint16_t> ref(size_t(M) * N), got(size_t(M) * N);
  CK(cudaMemcpy(ref.data(), dRef, ref.size() * 2, cudaMemcpyDeviceToHost));
  int cpuBad = 0;
  for (int i = 0; i < 16; ++i) {
    const int t = (rnd() % (M / rowStep)) * rowStep, n = rnd() % N;
    const float y = cpu_y(A, sx, B, S, sh, N, K, t, n);
    __half hy = __float2half_rn(y);
    uint16_t bits; std::memcpy(&bits, &hy, 2);
    if (bits != ref[size_t(t) * N + n]) { ++cpuBad; std::printf("  ref-vs-cpu mismatch t=%d n=%d\n", t, n); }
  }
  std::printf("  reference spot-check vs CPU: %s (16 points)\n", cpuBad ? "FAIL" : "ok");

  struct Kern { const char* name; decltype(&w4a8_is_wgmma_serial) fn; };
  std::vector<Kern> kerns = {{"serial", w4a8_is_wgmma_serial}};
  if (K == 1024) kerns.push_back({"dbl", w4a8_is_wgmma_dbl<8>});  // dbl is compiled per K (full unroll)
  if (K == 4096) kerns.push_back({"dbl", w4a8_is_wgmma_dbl<32>});
  const dim3 grid(N / wg::BN, M / wg::BM), block(wg::THREADS);
  int fails = cpuBad;
  for (auto& k0 : kerns)
  for (int gm : {1, 8, 16}) {
    const auto& k = k0;
    CK(cudaFuncSetAttribute(k.fn, cudaFuncAttributeMaxDynamicSharedMemorySize, wg::SMEM_BYTES));
    CK(cudaMemset(dOut, 0xFF, size_t(M) * N * 2));
    k.fn<<<grid, block, wg::SMEM_BYTES>>>(dA, dsx, dB, dS, dsh, dOut, M, N, K, gm);
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(got.data(), dOut, got.size() * 2, cudaMemcpyDeviceToHost));
    long bad = 0, checked = 0;
    for (int t = 0; t < M; t += rowStep)
      for (int n = 0; n < N; ++n) {
        ++checked;
        const size_t i = size_t(t) * N + n;
        if (got[i] != ref[i]) {
          if (bad < 5) std::printf("  %s mismatch t=%d n=%d got %g ref %g\n", k.name, t, n, h2f(got[i]), h2f(ref[i]));
          ++bad;
        }
      }
    if (bad) ++fails;
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
    for (int w = 0; w < 3; ++w) k.fn<<<grid, block, wg::SMEM_BYTES>>>(dA, dsx, dB, dS, dsh, dOut, M, N, K, gm);
    std::vector<float> ms;
    for (int r = 0; r < reps; ++r) {
      CK(cudaEventRecord(e0));
      k.fn<<<grid, block, wg::SMEM_BYTES>>>(dA, dsx, dB, dS, dsh, dOut, M, N, K, gm);
      CK(cudaEventRecord(e1));
      CK(cudaEventSynchronize(e1));
      float t; CK(cudaEventElapsedTime(&t, e0, e1)); ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    const double us = ms[ms.size() / 2] * 1e3;
    std::printf("  %-6s groupM=%-2d %s (%ld/%ld outputs bit-exact)  median %.1f us  %.0f TOP/s\n", k.name, gm,
                bad ? "FAIL" : "PASS",
                checked - bad, checked, us, 2.0 * M * N * double(K) / (us * 1e-6) / 1e12);
  }
  return fails ? 3 : 0;
}
