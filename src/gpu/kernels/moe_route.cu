// moe_route.cu — Mixtral's router on the GPU, the first piece of the engine's mixture of experts
// (docs/ENGINE.md): which experts each row goes to, with what weight, and the rows grouped by expert
// so that one grouped GEMM per projection can run every expert's rows as a contiguous block.
// CPU twins: src/backends/cuda/twins.ts (moeTopkTwin, moeAlignTwin); semantics = the CPU engine's moeAdd
// (src/backends/cpu/ops.ts): softmax over the E experts, the K most probable (ties: the lower
// index), their probabilities renormalized, i.e. w_k = exp(l_k − l_max) / Σ_top exp(l_j − l_max)
// over the top logits. nvcc (sm_80, sm_90a) and NVRTC.
//
// ABI: moe_topk(const u16* h, const u16* router, int M, int dim, int E, int K, int* experts, float* weights)
//        h fp16 [M, dim] (the RMSNorm output), router fp16 [E, dim]; logits in fp32 (each thread
//        sums its strided 8-element chunks, then a warp tree and the 16 warps' sums in warp order);
//        experts / weights [M, K], most probable first. grid = (M), block = 512 (a block per row:
//        every router load of a thread is issued before the first FMA that uses one, so a decode
//        step's router costs ~2 memory round trips, not one per expert and chunk). E <=
//        MOE_MAX_EXPERTS, K <= E, dim % 8 == 0.
//      moe_align(const int* experts, int M, int E, int K, int* offsets, int* perm, int* slot, int* active)
//        groups the M·K (row, k) entries by expert, rows ascending within an expert (deterministic:
//        warp ballots, no atomics): offsets [E + 1] (expert e's block is [offsets[e], offsets[e+1])),
//        perm [M·K] (the row of each grouped slot), slot [M, K] (the grouped slot of each entry),
//        active [E] (the experts with rows, ascending, then -1: the grouped GEMMs' blocks of
//        y-index i run expert active[i], so a step's launch needs only min(E, M·K) of them).
//        grid = (1), block = 1024; any M·K (chunks of 1024 entries).

#include "ptx.cuh"

#define MOE_MAX_EXPERTS 16
#define MOE_TOPK_THREADS 512  // dim 4096 (Mixtral) in one round of loads per thread
#define MOE_ALIGN_THREADS 1024

extern "C" __global__ void __launch_bounds__(MOE_TOPK_THREADS)
    moe_topk(const u16* __restrict__ h, const u16* __restrict__ router, int M, int dim, int E, int K,
             int* __restrict__ experts, float* __restrict__ weights) {
  pdl_wait();
  pdl_trigger();
  constexpr int WARPS = MOE_TOPK_THREADS / 32;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, r = blockIdx.x;
  if (r >= M) return;
  float acc[MOE_MAX_EXPERTS];
#pragma unroll
  for (int e = 0; e < MOE_MAX_EXPERTS; ++e) acc[e] = 0.0f;
  const u16* x = h + (u64)r * dim;
  for (int i = threadIdx.x * 8; i < dim; i += MOE_TOPK_THREADS * 8) {
    const U4 xv = *(const U4*)(x + i);
    U4 wv[MOE_MAX_EXPERTS];
#pragma unroll
    for (int e = 0; e < MOE_MAX_EXPERTS; ++e) wv[e] = *(const U4*)(router + (u64)(e < E ? e : E - 1) * dim + i);  // (e >= E: a real row, never used)
    const u32 xw[4] = {xv.x, xv.y, xv.z, xv.w};
#pragma unroll
    for (int e = 0; e < MOE_MAX_EXPERTS; ++e) {
      const u32 ww[4] = {wv[e].x, wv[e].y, wv[e].z, wv[e].w};
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        acc[e] = ffma_rn(h2f(xw[j] & 0xFFFF), h2f(ww[j] & 0xFFFF), acc[e]);
        acc[e] = ffma_rn(h2f(xw[j] >> 16), h2f(ww[j] >> 16), acc[e]);
      }
    }
  }
  __shared__ float part[WARPS][MOE_MAX_EXPERTS];
#pragma unroll
  for (int e = 0; e < MOE_MAX_EXPERTS; ++e) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc[e] = fadd_rn(acc[e], __shfl_xor_sync(0xffffffffu, acc[e], o));
    if (lane == 0) part[warp][e] = acc[e];
  }
  __syncthreads();
  if (threadIdx.x != 0) return;
#pragma unroll
  for (int e = 0; e < MOE_MAX_EXPERTS; ++e) {
    acc[e] = part[0][e];
#pragma unroll
    for (int w = 1; w < WARPS; ++w) acc[e] = fadd_rn(acc[e], part[w][e]);
  }
  // top K by logit (softmax is monotone), ties to the lower index; then the renormalized weights.
  // (acc is only ever indexed by unrolled constants: it stays in registers.)
  u32 taken = 0;
  int idx[MOE_MAX_EXPERTS];
  float val[MOE_MAX_EXPERTS];
  for (int k = 0; k < K; ++k) {
    int best = -1;
    float bv = 0.0f;
#pragma unroll
    for (int e = 0; e < MOE_MAX_EXPERTS; ++e)
      if (e < E && !(taken >> e & 1u) && (best < 0 || acc[e] > bv)) best = e, bv = acc[e];
    // (NaN logits compare false: a NaN first untaken expert stays chosen, so an entry is never -1)
    taken |= 1u << best;
    idx[k] = best;
    val[k] = bv;
  }
  float sum = 0.0f;
  for (int k = 0; k < K; ++k) sum = fadd_rn(sum, expf(val[k] - val[0]));
  for (int k = 0; k < K; ++k) {
    experts[(u64)r * K + k] = idx[k];
    weights[(u64)r * K + k] = fdiv_rn(expf(val[k] - val[0]), sum);
  }
}

extern "C" __global__ void __launch_bounds__(MOE_ALIGN_THREADS)
    moe_align(const int* __restrict__ experts, int M, int E, int K, int* __restrict__ offsets,
              int* __restrict__ perm, int* __restrict__ slot, int* __restrict__ active) {
  pdl_wait();
  pdl_trigger();
  constexpr int WARPS = MOE_ALIGN_THREADS / 32;
  __shared__ int count[MOE_MAX_EXPERTS];                 // entries of each expert in the chunks so far
  __shared__ int warpCount[WARPS][MOE_MAX_EXPERTS];      // this chunk: entries of expert e in warp w
  __shared__ int base[MOE_MAX_EXPERTS];                  // expert e's first grouped slot
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, total = M * K;
  if (tid < MOE_MAX_EXPERTS) count[tid] = 0;
  __syncthreads();
  // Chunk c (1024 entries): every warp's entries per expert into warpCount; returns this thread's
  // rank among its warp's entries of its own expert. Then count += the chunk's entries per expert.
  auto tally = [&](int e) -> int {
    int rank = 0;
    for (int x = 0; x < E; ++x) {
      const u32 m = __ballot_sync(0xffffffffu, e == x);
      if (lane == 0) warpCount[warp][x] = __popc(m);
      if (e == x) rank = __popc(m & ((1u << lane) - 1u));
    }
    __syncthreads();
    return rank;
  };
  auto accumulate = [&] {
    if (tid < E) {
      int s = 0;
      for (int w = 0; w < WARPS; ++w) s += warpCount[w][tid];
      count[tid] += s;
    }
    __syncthreads();
  };
  auto entry = [&](int c) { return c + tid < total ? experts[c + tid] : -1; };
  // pass 1: entries per expert
  for (int c = 0; c < total; c += MOE_ALIGN_THREADS) {
    tally(entry(c));
    accumulate();
  }
  if (tid == 0) {
    int s = 0;
    int n = 0;
    for (int x = 0; x < E; ++x) {
      base[x] = s;
      offsets[x] = s;
      s += count[x];
      if (count[x] > 0) active[n++] = x;
      count[x] = 0;
    }
    offsets[E] = s;
    while (n < E) active[n++] = -1;
  }
  __syncthreads();
  // pass 2: an entry's slot = its expert's base + entries of that expert before it (earlier chunks,
  // earlier warps of this chunk, lower lanes of this warp); entries are row-major, so rows ascend
  for (int c = 0; c < total; c += MOE_ALIGN_THREADS) {
    const int i = c + tid, e = entry(c), rank = tally(e);
    if (e >= 0) {
      int before = count[e];
      for (int w = 0; w < warp; ++w) before += warpCount[w][e];
      const int s = base[e] + before + rank;
      perm[s] = i / K;
      slot[i] = s;
    }
    __syncthreads();
    accumulate();
  }
}
