// Timing probe for the wgmma tile w (src/gpu/kernels/w4_gemm_wgmma.cu) under compile-time
// variants (-D flags, see ../probe.sh): random operands (no correctness check: the GPU tests do that),
// cudaEvent timing, median of 15 after 3 warm-ups. Prints "<variant> <kind> M N K us TOP/s".
#include <cuda.h>
#include <cuda_runtime.h>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <vector>
#include <algorithm>
#include "../probe_util.h"
// -DW4W_PROBE_SOURCE='"path"' times another copy of the kernel (an A/B against a change; it must sit
// beside ptx.cuh, e.g. src/gpu/kernels/w4_gemm_wgmma_old.cu, untracked)
#ifndef W4W_PROBE_SOURCE
#define W4W_PROBE_SOURCE "../../../src/gpu/kernels/w4_gemm_wgmma.cu"
#endif
#include W4W_PROBE_SOURCE

#include "tensor_map.h"

int main(int argc, char** argv) {
  const char* variant = argc > 1 ? argv[1] : "base";
  int shapes[][3] = {{4096, 28672, 4096}, {4096, 4096, 14336}, {1024, 22016, 4096}};
  for (auto& s : shapes) {
    const int M = s[0], N = s[1], K = s[2];
    signed char* A = fill<signed char>((size_t)M * K, 1, -127, 127);
    unsigned char* W = fill<unsigned char>((size_t)N * K / 2, 2, 0, 255);
    int* S = fill<int>((size_t)(K / 128) * N, 3, 1, 400);
    signed char* shift = fill<signed char>(N, 4, 8, 16);
    float* sx; CK(cudaMalloc(&sx, M * 4)); CK(cudaMemset(sx, 0, M * 4));
    unsigned short* out; CK(cudaMalloc(&out, (size_t)M * N * 2));
    // W4A16: fp16 activations and scales in [2^-4, 1) (bit patterns 0x2C00..0x3BFF: finite, positive)
    unsigned short* A16 = fill<unsigned short>((size_t)M * K, 5, 0x2C00, 0x3BFF);
    unsigned short* S16 = fill<unsigned short>((size_t)(K / 128) * N, 6, 0x2C00, 0x3BFF);
    float* SF = fill<float>((size_t)(K / 128) * N, 7, 1, 4);  // FS: float scales (values are not checked)
    const W4TensorMap map8 = tensor_map(A, false, M, K, W4W_BT), map16 = tensor_map(A16, true, M, K, W4W_BT);
    const W4TensorMap mapOut = tensor_map(out, true, M, N, W4W_BT);  // the fp16 output's (64 × BT boxes)
    // (a kernel's address: __grid_constant__ parameters keep it out of a plain function-pointer type)
    struct { const char* name; const void* fn; const void* a; const void* g; const void* c; int smem; const W4TensorMap* map; } ks[] = {
      {"is", (const void*)w4a8_gemm_is_g128_w, A, S, shift, WStage<W4W_BT, false>::SMEM, &map8},
      {"fs", (const void*)w4a8_gemm_fs_g128_w, A, SF, nullptr, WStage<W4W_BT, false>::SMEM, &map8},
      {"pc", (const void*)w4a8_gemm_pc_w, A, nullptr, S, WStage<W4W_BT, false>::SMEM, &map8},
      {"a16", (const void*)w4a16_gemm_g128_w, A16, S16, nullptr, WStage<W4W_BT, true>::SMEM, &map16}};
    for (auto& k : ks) {
      CK(cudaFuncSetAttribute(k.fn, cudaFuncAttributeMaxDynamicSharedMemorySize, k.smem));
      int sms; cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
      const int tiles = (N / 128) * ((M + 127) / 128);
      dim3 grid(tiles < sms ? tiles : sms);  // persistent
      std::vector<float> t;
      cudaEvent_t e0, e1; cudaEventCreate(&e0); cudaEventCreate(&e1);
      for (int r = 0; r < 18; ++r) {
        cudaEventRecord(e0);
        const void* res = nullptr; void* ws = nullptr; unsigned* cnt = nullptr; int m = M, n = N, kk = K;
        void* args[] = {(void*)&k.a, (void*)&sx, (void*)&W, (void*)&k.g, (void*)&k.c, (void*)&res, (void*)&out,
                        (void*)&ws, (void*)&cnt, &m, &n, &kk, (void*)k.map, (void*)&mapOut};
        CK(cudaLaunchKernel(k.fn, grid, dim3(W4W_THREADS), args, k.smem, 0));
        cudaEventRecord(e1); CK(cudaEventSynchronize(e1));
        float ms; cudaEventElapsedTime(&ms, e0, e1);
        if (r >= 3) t.push_back(ms * 1000);
      }
      CK(cudaGetLastError());
      const float us = median(t);
      printf("%-14s %s %5d %6d %6d %9.1f %7.0f\n", variant, k.name, M, N, K, us, 2.0 * M * N * K / us / 1e6);
    }
    cudaFree(A); cudaFree(A16); cudaFree(S16); cudaFree(W); cudaFree(S); cudaFree(SF); cudaFree(shift); cudaFree(sx); cudaFree(out);
  }
}
