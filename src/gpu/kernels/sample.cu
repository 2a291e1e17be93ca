// sample.cu — choosing next tokens on the GPU so that only token ids cross to the host: greedy
// argmax, temperature + top-p (nucleus) sampling, and the step advance of a captured decode graph.
// CPU twin: src/backends/cuda/twins.ts (sampleTwin). nvcc (sm_80, sm_90a) and NVRTC.
//
// Every sampler reads fp32 logits [B][V], writes ids[b] (the next step's input) and
// history[step·B + b] (step = *step, a device counter), so a graph replayed n times leaves n
// steps of ids on the device for one copy to the host.
//   sample_argmax: the first index of the largest logit (the CPU's argmax).
//   sample_topp:   e_i = exp((l_i − max)/T); the nucleus is {i : l_i ≥ τ} for the largest τ (found by
//                  bisection, 32 halvings of [max − 30·T, max]) whose mass Σ e_i / Σ_all e reaches
//                  top_p (top_p ≥ 1: every token); the id is the first i, in index order, whose
//                  running nucleus sum exceeds u·Σ_nucleus e, u = uniform(seed, b, step) (splitmix64).
//   advance_step:  seq_pos0[b] += 1 for b < B, *step += 1 (after the sampler, inside the graph).
// ABI: sample_argmax(const float* logits, int V, int* ids, int* history, const int* step, int B)
//      sample_topp(const float* logits, int V, int* ids, int* history, const int* step, int B,
//                  float temperature, float top_p, u64 seed)
//        both: grid = (B), block = 256.
//      advance_step(int* seq_pos0, int* step, int B): grid = (ceil(B/256)), block = 256.

#include "ptx.cuh"

#define SM_THREADS 256

// uniform in [0, 1) with 24 random bits (exactly representable in fp32)
DEVI float uniform01(u64 seed, int b, int step) {
  const u64 h = splitmix64(seed ^ splitmix64(((u64)(u32)b << 32) | (u32)step));
  return (float)(u32)(h >> 40) * (1.0f / 16777216.0f);
}

// (value, index) max with ties to the lower index, over the block; every thread gets the result
DEVI void block_argmax(float& v, int& idx, float* redv, int* redi) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
    if (ov > v || (ov == v && oi < idx)) v = ov, idx = oi;
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) redv[warp] = v, redi[warp] = idx;
  __syncthreads();
  v = redv[0];
  idx = redi[0];
#pragma unroll
  for (int i = 1; i < SM_THREADS / 32; ++i)
    if (redv[i] > v || (redv[i] == v && redi[i] < idx)) v = redv[i], idx = redi[i];
}

extern "C" __global__ void __launch_bounds__(SM_THREADS)
    sample_argmax(const float* __restrict__ logits, int V, int* __restrict__ ids, int* __restrict__ history,
                  const int* __restrict__ step, int B) {
  pdl_wait();
  pdl_trigger();
  __shared__ float redv[SM_THREADS / 32];
  __shared__ int redi[SM_THREADS / 32];
  const int b = blockIdx.x;
  const float* row = logits + (u64)b * V;
  float best = bits_to_float(0xff800000u);
  int idx = 0x7fffffff;
  for (int i = threadIdx.x; i < V; i += SM_THREADS) {
    const float x = row[i];
    if (x > best) best = x, idx = i;  // i increases: the first maximum of this thread's indices
  }
  block_argmax(best, idx, redv, redi);
  if (idx == 0x7fffffff) idx = 0;  // all NaN / -inf: token 0
  if (threadIdx.x == 0) {
    ids[b] = idx;
    history[(u64)(*step) * B + b] = idx;
  }
}

extern "C" __global__ void __launch_bounds__(SM_THREADS)
    sample_topp(const float* __restrict__ logits, int V, int* __restrict__ ids, int* __restrict__ history,
                const int* __restrict__ step, int B, float temperature, float top_p, u64 seed) {
  pdl_wait();
  pdl_trigger();
  __shared__ float redv[SM_THREADS / 32];
  __shared__ int redi[SM_THREADS / 32];
  __shared__ float chunk_sum[SM_THREADS];
  const int b = blockIdx.x, tid = threadIdx.x;
  const float* row = logits + (u64)b * V;
  float mx = bits_to_float(0xff800000u);
  int mi = 0x7fffffff;
  for (int i = tid; i < V; i += SM_THREADS)
    if (row[i] > mx) mx = row[i], mi = i;
  block_argmax(mx, mi, redv, redi);
  const float invT = 1.f / temperature;
  // unnormalized probabilities e_i = exp((l_i - max)/T); mass of {l >= x}
  auto mass_above = [&](float x) {
    float s = 0.f;
    for (int i = tid; i < V; i += SM_THREADS) {
      const float l = row[i];
      if (l >= x) s += expf((l - mx) * invT);
    }
    return block_sum<SM_THREADS>(s, redv);
  };
  const float total = mass_above(bits_to_float(0xff800000u));
  float thr = bits_to_float(0xff800000u);
  if (top_p < 1.f) {
    float lo = mx - 30.f * temperature, hi = mx;
    if (mass_above(hi) >= top_p * total) {
      lo = hi;
    } else {
      for (int it = 0; it < 32; ++it) {
        const float mid = 0.5f * (lo + hi);
        if (mass_above(mid) >= top_p * total) lo = mid; else hi = mid;
      }
    }
    thr = lo;
  }
  // first index (in index order) whose running nucleus sum exceeds u·S: contiguous chunks per thread
  const int per = (V + SM_THREADS - 1) / SM_THREADS, i0 = tid * per, i1 = i0 + per < V ? i0 + per : V;
  float cs = 0.f;
  for (int i = i0; i < i1; ++i) {
    const float l = row[i];
    if (l >= thr) cs += expf((l - mx) * invT);
  }
  chunk_sum[tid] = cs;
  __syncthreads();
  if (tid == 0) {  // exclusive scan (fixed order), kept in chunk_sum
    float acc = 0.f;
    for (int t = 0; t < SM_THREADS; ++t) {
      const float v = chunk_sum[t];
      chunk_sum[t] = acc;
      acc += v;
    }
    redv[0] = acc;  // the nucleus sum S
  }
  __syncthreads();
  const float S = redv[0];
  const float target = uniform01(seed, b, *step) * S;
  int pick = 0x7fffffff;
  float run = chunk_sum[tid];
  for (int i = i0; i < i1; ++i) {
    const float l = row[i];
    if (l >= thr) {
      run += expf((l - mx) * invT);
      if (run > target) { pick = i; break; }
    }
  }
  float dummy = 0.f;
  block_argmax(dummy, pick, redv, redi);  // the lowest index that crossed
  __syncthreads();
  if (tid == 0) {
    const int id = pick == 0x7fffffff ? mi : pick;  // rounding left no crossing: the top token
    ids[b] = id;
    history[(u64)(*step) * B + b] = id;
  }
}

extern "C" __global__ void __launch_bounds__(SM_THREADS) advance_step(int* __restrict__ seq_pos0, int* __restrict__ step, int B) {
  pdl_wait();
  pdl_trigger();
  const int b = blockIdx.x * SM_THREADS + threadIdx.x;
  if (b < B) seq_pos0[b] += 1;
  if (b == 0) *step += 1;
}
