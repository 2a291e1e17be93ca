// probe_util.h — what the timing probes (tile_w/, gemv/, attention/) share: a CUDA status check and seeded
// random device buffers. Host code only; include after <cuda_runtime.h>.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("CUDA %s at %d\n", cudaGetErrorString(e), __LINE__); exit(1); } } while (0)

// n values uniform in [lo, hi] (seeded rand), uploaded to a new device buffer
template <typename T> T* fill(size_t n, unsigned seed, int lo, int hi) {
  std::vector<T> h(n);
  srand(seed);
  for (auto& v : h) v = (T)(lo + rand() % (hi - lo + 1));
  T* d; CK(cudaMalloc(&d, n * sizeof(T))); CK(cudaMemcpy(d, h.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}
