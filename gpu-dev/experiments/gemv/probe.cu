// Timing probe for the small-M tiles (src/gpu/kernels/w4_gemv.cu) under compile-time variants (-D
// flags, see ../probe.sh): random operands (correctness: the GPU tests), weights rotated through 8
// copies (> 2x L2) so every launch streams from HBM, cudaEvent timing over 50 launches, median of 7.
// Prints "<variant> <kernel> M N K us GB/s" for IS g128 and W4A16 (build with -DW4_SELECT
// -DW4_SELECT_IS_G128 -DW4_SELECT_W4A16 for fast builds).
#include <cuda_runtime.h>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "../probe_util.h"
#include "../../../src/gpu/kernels/w4_gemv.cu"

int main(int argc, char** argv) {
  const char* variant = argc > 1 ? argv[1] : "base";
  const int COPIES = 8;
  int shapes[][2] = {{4096, 4096}, {12288, 4096}, {4096, 11008}, {22016, 4096}, {6144, 4096}, {4096, 14336}};
  for (auto& s : shapes) {
    const int N = s[0], K = s[1];
    // the weights once per shape (a host-side fill of 8 copies is slow), the scales once per kind
    unsigned char* W = fill<unsigned char>((size_t)N * K / 2 * COPIES, 2, 0, 255);
    for (int a16 = 0; a16 < 2; ++a16) {
      void* S = a16 ? (void*)fill<unsigned short>((size_t)(K / 128) * N * COPIES, 3, 0x2000, 0x2c00) : (void*)fill<int>((size_t)(K / 128) * N * COPIES, 3, 1, 400);
      for (int M : {1, 16}) {
        // W4A16: fp16 activations and scales (bit patterns 0x3000..0x3c00: small positive halves)
        void* A = a16 ? (void*)fill<unsigned short>((size_t)M * K, 1, 0x3000, 0x3c00) : (void*)fill<signed char>((size_t)M * K, 1, -127, 127);
        const size_t sBytes = a16 ? 2 : 4;
        signed char* shift = fill<signed char>(N, 4, 8, 16);
        float* sx; CK(cudaMalloc(&sx, M * 4)); CK(cudaMemset(sx, 0, M * 4));
        unsigned short* out; CK(cudaMalloc(&out, (size_t)M * N * 2));
        const int threads = a16 || M <= 8 ? GV_THREADS : 32 * GV_WARPS_V16;  // W4A8's v16: the ring's block
        auto fn = a16 ? (M <= 8 ? w4a16_gemm_g128_v8 : w4a16_gemm_g128_v16) : (M <= 8 ? w4a8_gemm_is_g128_v8 : w4a8_gemm_is_g128_v16);
        cudaEvent_t e0, e1; cudaEventCreate(&e0); cudaEventCreate(&e1);
        std::vector<float> t;
        for (int r = 0; r < 8; ++r) {
          cudaEventRecord(e0);
          for (int l = 0; l < 50; ++l) {
            const int c = l % COPIES;
            fn<<<N / 16, threads>>>(A, sx, (const U4*)(W + (size_t)c * N * K / 2), (const char*)S + (size_t)c * (K / 128) * N * sBytes, shift,
                                        nullptr, out, nullptr, nullptr, M, N, K);
          }
          cudaEventRecord(e1); CK(cudaEventSynchronize(e1));
          float ms; cudaEventElapsedTime(&ms, e0, e1);
          if (r > 0) t.push_back(ms * 1000 / 50);
        }
        CK(cudaGetLastError());
        std::sort(t.begin(), t.end());
        const float us = t[t.size() / 2];
        const double bytes = (double)N * K / 2 + (double)(K / 128) * N * sBytes;
        printf("%-10s %-7s %3d %6d %6d %8.2f %7.0f\n", variant, a16 ? "a16" : "is_g128", M, N, K, us, bytes / us / 1e3);
        cudaFree(A); cudaFree(shift); cudaFree(sx); cudaFree(out);
      }
      cudaFree(S);
    }
    cudaFree(W);
  }
}
