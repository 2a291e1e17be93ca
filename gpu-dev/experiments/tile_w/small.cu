// Fixed-cost probe for the wgmma tiles w / w64 on small problems (M = 64–256, where bench gemm shows
// ~10 µs more than the weight stream needs): one IS kernel per line, timed as a single launch (events
// around one launch) and as a CUDA graph of 20 launches rotating over weight copies (bench gemm's
// method: weights from HBM), for given token tile (64: w64, 128: w) and split-K factors.
// Prints "<variant> bt M N K splits grid single_us graph_us". Compile-time variants via ../probe.sh
// flags (W4W_PROBE_SKIP_W / _X / _EPI); PROBE_EMPTY=1 (env) also times an empty kernel with the same
// launch shape (384 threads, the same dynamic smem): the launch's own cost.
#include <cuda.h>
#include <cuda_runtime.h>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <vector>
#include "../probe_util.h"
#ifndef W4W_PROBE_SOURCE
#define W4W_PROBE_SOURCE "../../../src/gpu/kernels/w4_gemm_wgmma.cu"
#endif
#include W4W_PROBE_SOURCE

extern "C" __global__ void __launch_bounds__(W4W_THREADS, 1) empty_w(int* p) { if (p) *p = 0; }

#include "tensor_map.h"

int main(int argc, char** argv) {
  const char* variant = argc > 1 ? argv[1] : "base";
  // bt M N K splits
  const int cases[][5] = {
      {64, 64, 4096, 1024, 1}, {64, 64, 4096, 16384, 1},
      {64, 64, 4096, 4096, 1}, {64, 64, 4096, 4096, 2}, {64, 64, 4096, 4096, 4}, {64, 64, 4096, 4096, 8},
      {64, 64, 28672, 4096, 1}, {64, 64, 28672, 4096, 2},
      {128, 128, 4096, 4096, 1}, {128, 128, 4096, 4096, 4}, {128, 256, 4096, 4096, 2}, {128, 256, 12288, 4096, 1},
      {128, 1024, 4096, 4096, 1}};
  int sms; cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  const int COPIES = 20;
  for (auto& c : cases) {
    const int BT = c[0], M = c[1], N = c[2], K = c[3], S = c[4];
    signed char* A = fill<signed char>((size_t)M * K, 1, -127, 127);
    std::vector<unsigned char*> W(COPIES);
    W[0] = fill<unsigned char>((size_t)N * K / 2, 2, 0, 255);
    for (int i = 1; i < COPIES; ++i) {  // copies of the first (host-side random fill is slow); HBM traffic is what counts
      CK(cudaMalloc(&W[i], (size_t)N * K / 2));
      CK(cudaMemcpy(W[i], W[0], (size_t)N * K / 2, cudaMemcpyDeviceToDevice));
    }
    int* Sc = fill<int>((size_t)(K / 128) * N, 3, 1, 400);
    signed char* shift = fill<signed char>(N, 4, 8, 16);
    float* sx = fill<float>(M, 5, 1, 1);
    unsigned short* out; CK(cudaMalloc(&out, (size_t)M * N * 2));
    void* ws; CK(cudaMalloc(&ws, (size_t)S * ((M + 127) / 128 * 128) * N * 4));  // whole token tiles (BT <= 128)
    const int tiles = (N / 128) * ((M + BT - 1) / BT);
    unsigned* cnt; CK(cudaMalloc(&cnt, tiles * 4)); CK(cudaMemset(cnt, 0, tiles * 4));
    const W4TensorMap mapA = tensor_map(A, false, M, K, BT), mapOut = tensor_map(out, true, M, N, BT);
    const void* fn = BT == 64 ? (const void*)w4a8_gemm_is_g128_w64 : (const void*)w4a8_gemm_is_g128_w;
    const int smem = BT == 64 ? WStage<64, false>::SMEM : WStage<128, false>::SMEM;
    CK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    CK(cudaFuncSetAttribute((const void*)empty_w, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    const dim3 grid(tiles < sms ? tiles : sms, S);
    auto launch = [&](cudaStream_t st, int copy) {
      const void* res = nullptr; void* wp = W[copy]; void* wsp = S > 1 ? ws : nullptr; unsigned* cp = cnt;
      int m = M, n = N, kk = K;
      const void* a = A; const void* g = Sc; const void* ch = shift;
      void* args[] = {(void*)&a, (void*)&sx, (void*)&wp, (void*)&g, (void*)&ch, (void*)&res, (void*)&out,
                      (void*)&wsp, (void*)&cp, &m, &n, &kk, (void*)&mapA, (void*)&mapOut};
      CK(cudaLaunchKernel(fn, grid, dim3(W4W_THREADS), args, smem, st));
    };
    cudaStream_t st; CK(cudaStreamCreate(&st));
    std::vector<float> t;
    cudaEvent_t e0, e1; cudaEventCreate(&e0); cudaEventCreate(&e1);
    for (int r = 0; r < 18; ++r) {
      cudaEventRecord(e0, st);
      launch(st, r % COPIES);
      cudaEventRecord(e1, st); CK(cudaEventSynchronize(e1));
      float ms; cudaEventElapsedTime(&ms, e0, e1);
      if (r >= 3) t.push_back(ms * 1000);
    }
    CK(cudaGetLastError());
    const float single = median(t);
#ifdef W4W_PROBE_TRACE
    {  // one more launch with the marks cleared: cycles of block (0, 0) from its entry (mark 0)
      long long z[16] = {0}, m[16];
      CK(cudaMemcpyToSymbol(w4w_trace, z, sizeof z));
      launch(st, 0);
      CK(cudaStreamSynchronize(st));
      CK(cudaMemcpyFromSymbol(m, w4w_trace, sizeof m));
      // every block: globaltimer (ns) at entry, first tile's loop done, split partials counted, end
      const int nb = grid.x * grid.y;
      std::vector<unsigned long long> ct(2048 * 4);
      CK(cudaMemcpyFromSymbol(ct.data(), w4w_ctrace, ct.size() * 8));
      unsigned long long t0 = ~0ull;
      for (int b = 0; b < nb; ++b) t0 = std::min(t0, ct[4 * b]);
      double mn[4] = {1e18, 1e18, 1e18, 1e18}, mx[4] = {0, 0, 0, 0};
      for (int b = 0; b < nb; ++b)
        for (int i = 0; i < 4; ++i) {
          if (i == 2 && S == 1) continue;
          const double v = (double)(ct[4 * b + i] - t0) / 1000.0;
          mn[i] = std::min(mn[i], v); mx[i] = std::max(mx[i], v);
        }
      printf("%-14s blocks (µs from the first entry, min-max): entry %.2f-%.2f | loop done %.2f-%.2f | split counted %.2f-%.2f | end %.2f-%.2f\n",
             variant, mn[0], mx[0], mn[1], mx[1], S > 1 ? mn[2] : 0.0, S > 1 ? mx[2] : 0.0, mn[3], mx[3]);
      printf("%-14s trace bt%d M=%d N=%d K=%d S=%d, cycles from entry: syncthreads+pre %lld | producer done %lld | consumer start %lld | "
             "k-tile 0 %lld, 1 %lld | loop done %lld | 2nd tile %lld | end %lld\n", variant, BT, M, N, K, S, m[1] - m[0],
             m[2] - m[0], m[3] - m[0], m[5] - m[0], m[6] - m[0], m[7] - m[0], m[8] ? m[8] - m[0] : -1, m[9] - m[0]);
    }
#endif
    const float graph = graph_us(st, [&](cudaStream_t s) { for (int i = 0; i < COPIES; ++i) launch(s, i); }, 3, 15, COPIES);
    printf("%-14s bt%-3d %5d %6d %6d S=%d grid %4dx%d %8.1f %8.1f\n", variant, BT, M, N, K, S, grid.x, grid.y, single, graph);
    if (getenv("PROBE_EMPTY") && c == cases[0]) {
      const float e = graph_us(st, [&](cudaStream_t s) {
        for (int i = 0; i < COPIES; ++i) { int* p = nullptr; void* args[] = {&p}; CK(cudaLaunchKernel((const void*)empty_w, grid, dim3(W4W_THREADS), args, smem, s)); }
      }, 3, 15, COPIES);
      const float e0s = graph_us(st, [&](cudaStream_t s) {
        for (int i = 0; i < COPIES; ++i) { int* p = nullptr; void* args[] = {&p}; CK(cudaLaunchKernel((const void*)empty_w, grid, dim3(W4W_THREADS), args, 0, s)); }
      }, 3, 15, COPIES);
      printf("%-14s empty kernel, grid %dx%d, 384 threads: %.2f us with %d B dynamic smem, %.2f us with none\n", variant, grid.x, grid.y, e, smem, e0s);
    }
    cudaStreamDestroy(st);
    for (auto w : W) cudaFree(w);
    cudaFree(A); cudaFree(Sc); cudaFree(shift); cudaFree(sx); cudaFree(out); cudaFree(ws); cudaFree(cnt);
  }
}
