// probe_util.h — what the timing probes (tile_w/, gemv/, attention/) share: a CUDA status check,
// seeded random device buffers, the median and the timing of a captured graph. Host code only;
// include after <cuda_runtime.h>.
#pragma once
#include <algorithm>
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

static float median(std::vector<float> t) { std::sort(t.begin(), t.end()); return t[t.size() / 2]; }

// µs per `per` (e.g. per layer) of a graph of what `record(stream)` launches: the median of `runs`
// replays after `warm` more, each timed by CUDA events on `st`.
template <typename F> static float graph_us(cudaStream_t st, F record, int warm, int runs, int per) {
  cudaGraph_t graph; cudaGraphExec_t exec;
  CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
  record(st);
  CK(cudaStreamEndCapture(st, &graph));
  CK(cudaGraphInstantiate(&exec, graph, 0));
  cudaEvent_t e0, e1; cudaEventCreate(&e0); cudaEventCreate(&e1);
  std::vector<float> t;
  for (int r = 0; r < warm + runs; ++r) {
    cudaEventRecord(e0, st);
    CK(cudaGraphLaunch(exec, st));
    cudaEventRecord(e1, st); CK(cudaEventSynchronize(e1));
    float ms; cudaEventElapsedTime(&ms, e0, e1);
    if (r >= warm) t.push_back(ms * 1000 / per);
  }
  CK(cudaGetLastError());
  cudaEventDestroy(e0); cudaEventDestroy(e1);
  cudaGraphExecDestroy(exec); cudaGraphDestroy(graph);
  return median(t);
}
