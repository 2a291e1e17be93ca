// attention_decode.cu — a decode step's attention in one kernel: RoPE of q and k and the KV append,
// split-KV flash decoding over the fp16 KV cache, the merge of the splits and, for a W4A8 o
// projection, the per-token int8 quantization of the result (formerly four kernels: rope_kv, split
// attention, merge, fp32 → int8). CPU twins: src/backends/cuda/twins.ts (ropeTwin, attentionTwin,
// float64; the int8 is quant/act-quant of the fp32 output). nvcc (sm_80, sm_90a) and NVRTC.
//
// Work. Block (split sp, KV head g, sequence s) has 4 warps; the rep = nH/nKv ≤ 16 query heads of g
// are the rows of every warp's m16n8k16 tiles (attention_tile.cuh). The block walks its share of
// the sequence's 64-key tiles [kBegin, p0] (p0 = seq_pos0[s], the step's token; kBegin > 0 only
// under a sliding window) through an AD_STAGES-deep cp.async ring: split sp takes tiles
// [sp·per, (sp+1)·per), per = ceil(tiles / splits); splits past the last tile have no work (a
// decode step's graph fixes `splits` for the longest sequence the cache holds; the count:
// src/backends/cuda/decode-splits.ts). Warp w attends to keys 16w .. 16w+15 of every tile with its
// own online softmax, and the block merges its 4 warps through shared memory at the end: 4 warps
// per tile instead of one keep the tensor-core chains short (one warp per block ran latency-bound
// at ~3 µs a tile, gpu-dev/experiments/attention).
//
// RoPE and the KV append are fused (rope.cuh: rope_kv.cu's arithmetic, so the cache holds the same
// bits): a block rotates its rep q heads and the k head of g at position p0 into shared memory, and
// the block whose split holds the tile of p0 appends k and v (+ bias) to the cache and writes them
// over that tile's zeros; every tile load stops before p0. q stays unrotated in qkv.
//
// Programmatic dependent launch. The keys before p0 were written by earlier steps, so the first
// AD_STAGES − 1 tiles are requested before pdl_wait; only qkv comes from the preceding kernel (the
// q|k|v GEMM).
//
// Merge. With splits > 1 each block writes its unnormalized partial (o, running max m in log2
// units, sum l) to ws_o / ws_ml, and the last of the (s, g) blocks to arrive (a counter: barrier,
// then thread 0's acq_rel atomic) merges the splits in split order — deterministic — into the output
// rows of g's heads. Quantized output: each (s, g) writer also stores max |y| of its heads in amax;
// the last of the nKv head groups of s quantizes the fp32 row it reads back (quant/act-quant,
// act_quant.cuh: bit-exact with quantize_f32 of the same fp32 row). Counters return to zero, so the
// kernel can be replayed in a graph.
//
// ABI: attention_decode_hd{64,128}(const u16* qkv, u16* out, float* out32, signed char* q8, float* sx,
//        float* ws_o, float* ws_ml, float* amax, u32* counters, u16* kcache, u16* vcache,
//        const u16* bias /*[qkvDim] or 0*/, const float* cos_t, const float* sin_t /*[maxSeq][HD/2]*/,
//        const int* seq_pos0, const int* seq_slot, int nH, int nKv, int maxSeq, int window,
//        int layout /*0 rotate_half, 1 interleaved*/, int splits, float scale_log2)
//   grid = (splits, nKv, B), block = 128, dynamic smem = AD_STAGES·2·64·HD·2 bytes (checked: a
//   smaller launch traps); rep ≤ 16, splits ≤ AD_MAX_SPLITS, nH·HD ≤ AD_ROW_MAX for an int8 output.
//   qkv: row s = sequence s's token, [q heads | k heads | v heads] fp16. K/V cache [slot][nKv][maxSeq][HD].
//   Output (row s = [nH·HD], head h at h·HD): q8 and sx set → int8 + scale (out32 then holds the fp32
//   rows, staging); else out32 set → fp32; else out → fp16.
//   ws_o [(s·nH + h)·splits + sp][HD] fp32, ws_ml [...][2], amax [B·nKv], counters u32 [B·nKv + B]
//   (zero before the first launch; left zero). ws_o/ws_ml are unused when splits = 1.

#include "ptx.cuh"
#include "act_quant.cuh"
#include "attention_tile.cuh"
#include "rope.cuh"

#ifndef AD_STAGES
#define AD_STAGES 3  // 64-key K/V tiles in flight per block (the ring depth)
#endif
// AD_TRACE (probe builds only): thread 0 of each block stamps %globaltimer at its phases into
// ad_trace[block·8 + i] (0 entry, 1 after pdl_wait, 2 main loop done, 3 block partial written,
// 4 splits merged, 5 int8 written; a stamp stays 0 where the block stops before it).
#ifdef AD_TRACE
__device__ u64* ad_trace;
#define AD_STAMP(i)                                                                                      \
  do {                                                                                                   \
    if (threadIdx.x == 0 && ad_trace) {                                                                 \
      u64 t;                                                                                             \
      asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));                                             \
      ad_trace[((blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x) * 8 + (i)] = t;          \
    }                                                                                                    \
  } while (0)
#else
#define AD_STAMP(i) do {} while (0)
#endif
#define AD_WARPS 4                // warp w takes keys 16w .. 16w+15 of every tile
#define AD_THREADS (32 * AD_WARPS)
#define AD_KW (KT / AD_WARPS)     // keys per warp per tile
#define AD_MAX_SPLITS 64          // splits the merge stages in shared memory
#define AD_ROW_MAX 8192           // nH·HD of a quantized row (held in registers by the last block)

// Block-wide max of v ≥ 0 (AD_THREADS threads; red: AD_WARPS floats of shared memory).
DEVI float block_max_nonneg(float v, float* red) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  v = red[0];
#pragma unroll
  for (int w = 1; w < AD_WARPS; ++w) v = fmaxf(v, red[w]);
  return v;
}

// One arrival at `counter` after this block's global writes; true in every thread of the block that
// arrives last, which also resets the counter for the next launch. The barrier orders the block's
// writes before thread 0's acq_rel atomic (release), and the atomic's acquire before the barrier
// that lets the last block read what the others wrote (the split-K semaphore pattern).
DEVI bool arrive_last(u32* counter, u32 expected, u32* flag) {
  __syncthreads();
  if (threadIdx.x == 0) {
    const u32 prev = atom_add_u32(counter, 1u);
    *flag = prev == expected - 1;
    if (*flag) *counter = 0;
  }
  __syncthreads();
  return *flag;
}

template <int HD>
DEVI void attention_decode_body(const u16* __restrict__ qkv, u16* __restrict__ out, float* __restrict__ out32,
                                signed char* __restrict__ q8, float* __restrict__ sx, float* __restrict__ ws_o,
                                float* __restrict__ ws_ml, float* __restrict__ amax, u32* __restrict__ counters,
                                u16* __restrict__ kcache, u16* __restrict__ vcache, const u16* __restrict__ bias,
                                const float* __restrict__ cos_t, const float* __restrict__ sin_t,
                                const int* __restrict__ seq_pos0, const int* __restrict__ seq_slot, int nH, int nKv,
                                int maxSeq, int window, int layout, int splits, float scale_log2) {
  constexpr int KS = HD / 16, NT = HD / 8, CH = HD / 8, TILE_BYTES = KT * HD * 2, STAGE_BYTES = 2 * TILE_BYTES;
  static_assert(AD_STAGES >= 2, "the ring needs a tile in flight while one is attended to");
  static_assert(AD_WARPS * 16 * (HD + 2) * 4 <= AD_STAGES * STAGE_BYTES && 2 * 16 * AD_MAX_SPLITS * 4 + 64 <= AD_STAGES * STAGE_BYTES,
                "the warps' merge and the splits' (m, l) reuse the ring");
  extern __shared__ __attribute__((aligned(128))) unsigned char smem[];
  __shared__ float red[AD_WARPS];
  __shared__ u32 lastFlag;
  __shared__ __attribute__((aligned(16))) u16 sq[16 * HD], skv[2 * HD];  // this step's rotated q heads of g, its k and v
  const int sp = blockIdx.x, g = blockIdx.y, s = blockIdx.z, B = gridDim.z;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gq = lane >> 2, q4 = lane & 3;
  const int rep = nH / nKv, qDim = nH * HD, qkvDim = (nH + 2 * nKv) * HD;

  // seq_pos0 / seq_slot were written by the previous step (complete before this step's first kernel ran)
  const int p0 = seq_pos0[s], slot = seq_slot[s];
  const int kBegin = (window > 0 && p0 - window + 1 > 0 ? p0 - window + 1 : 0) & ~(KT - 1), kEnd = p0 + 1;
  const int nTiles = (kEnd - kBegin + KT - 1) / KT, per = (nTiles + splits - 1) / splits;
  const int used = (nTiles + per - 1) / per;  // splits with work
  const int tBeg = sp * per, tEnd = tBeg + per < nTiles ? tBeg + per : nTiles;
  u16* kbase = kcache + ((u64)slot * nKv + g) * maxSeq * HD;
  u16* vbase = vcache + ((u64)slot * nKv + g) * maxSeq * HD;
  const u32 sbase = smem_addr(smem);
  if (dynamic_smem_bytes() < (u32)(AD_STAGES * STAGE_BYTES)) __trap();  // the launch's smem disagrees with this build

  AD_STAMP(0);
  // the first STAGES − 1 tiles before the wait: keys < p0 only
#pragma unroll
  for (int i = 0; i < AD_STAGES - 1; ++i) {
    if (tBeg + i < tEnd) load_kv_tile<HD, AD_THREADS>(sbase + i * STAGE_BYTES, kbase, vbase, kBegin + (tBeg + i) * KT, p0, tid);
    cp_async_commit();
  }
  pdl_wait();
  pdl_trigger();
  AD_STAMP(1);

  // ---- RoPE (rope.cuh, rope_kv.cu's arithmetic) of the step's q heads of g and of k, v + bias -----
  if (tBeg < tEnd) {  // (block-uniform)
    const u16* row = qkv + (u64)s * qkvDim;
    const float* cs = cos_t + (u64)p0 * (HD / 2);
    const float* sn = sin_t + (u64)p0 * (HD / 2);
    const int pairs = (rep + 1) * (HD / 2);  // rep q heads, then k; then the v values in pairs
    for (int e = tid; e < pairs + HD / 2; e += AD_THREADS) {
      if (e < pairs) {
        const int r = e / (HD / 2), i = e - r * (HD / 2), h = r < rep ? g * rep + r : nH + g;
        int a, b;
        rope_pair(i, HD / 2, layout, a, b);
        u16* dst = r < rep ? sq + r * HD : skv;
        rope_rotate(row + h * HD, bias ? bias + h * HD : nullptr, a, b, cs[i], sn[i], dst[a], dst[b]);
      } else {
        const int d = 2 * (e - pairs), at = (nH + nKv + g) * HD + d;
        skv[HD + d] = with_bias(row[at], bias, at);
        skv[HD + d + 1] = with_bias(row[at + 1], bias, at + 1);
      }
    }
    __syncthreads();
  }
  // the block with the tile of p0 appends k, v to the cache and writes them over that tile's zeros
  // (every tile load stops before p0: the cache row is this kernel's to write)
  const int tP0 = nTiles - 1;
  const bool owner = tBeg < tEnd && tEnd == nTiles;
  U4 row16 = {0u, 0u, 0u, 0u};  // threads < CH: a K chunk, the next CH: a V chunk
  if (owner && tid < 2 * CH) {
    row16 = *(const U4*)(skv + (tid < CH ? 0 : HD) + (tid % CH) * 8);
    *(U4*)((tid < CH ? kbase : vbase) + (u64)p0 * HD + (tid % CH) * 8) = row16;
  }

  // this lane's two query rows: head g·rep + r for r = gq, gq + 8 (rows ≥ rep repeat the last head)
  int qr[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) qr[i] = gq + 8 * i < rep ? gq + 8 * i : rep - 1;
  float o[NT][4];
#pragma unroll
  for (int n = 0; n < NT; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {NEG_INF, NEG_INF}, l[2] = {0.f, 0.f};

  if (tBeg < tEnd) {
    u32 qf[KS][4];
    load_q_frags<HD>(sq + qr[0] * HD, sq + qr[1] * HD, q4, qf);
    const int pos[2] = {p0, p0};
    for (int ti = tBeg; ti < tEnd; ++ti) {
      const int ahead = ti + AD_STAGES - 1;
      if (ahead < tEnd)
        load_kv_tile<HD, AD_THREADS>(sbase + ((ahead - tBeg) % AD_STAGES) * STAGE_BYTES, kbase, vbase, kBegin + ahead * KT, p0, tid);
      cp_async_commit();
      cp_async_wait<AD_STAGES - 1>();
      __syncthreads();
      const u32 ks_addr = sbase + ((ti - tBeg) % AD_STAGES) * STAGE_BYTES, vs_addr = ks_addr + TILE_BYTES;
      const int j0 = kBegin + ti * KT;
      if (owner && ti == tP0) {
        if (tid < 2 * CH) {
          const u32 at = (tid < CH ? ks_addr : vs_addr) + tile_offset<HD>(p0 - j0, tid % CH);
          asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};" ::"r"(at), "r"(row16.x), "r"(row16.y), "r"(row16.z), "r"(row16.w) : "memory");
        }
        __syncthreads();
      }
      attend_tile<HD, AD_KW>(qf, ks_addr, vs_addr, j0, warp * AD_KW, pos, window, scale_log2, lane, o, m, l);
      __syncthreads();  // the stage is refilled next iteration
    }
  }
  reduce_row_sums(l);
  AD_STAMP(2);

  // ---- the block's (m, l, o) per row: the warps' key subsets merged through shared memory ------------
  // (the ring is free: every warp passed the loop's last barrier)
  float* so = (float*)smem;                     // [AD_WARPS][16][HD]
  float* sml = so + AD_WARPS * 16 * HD;         // [AD_WARPS][16][2]
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int r = gq + 8 * i;
#pragma unroll
    for (int n = 0; n < NT; ++n) st_f2(so + (warp * 16 + r) * HD + n * 8 + 2 * q4, o[n][2 * i], o[n][2 * i + 1]);
    if (q4 == 0) st_f2(sml + (warp * 16 + r) * 2, m[i], l[i]);
  }
  __syncthreads();
  const int nOut = rep * HD;  // this block's outputs: rows r < rep (heads g·rep + r) × HD
  float* rows32 = out32 + (u64)s * qDim;
  float headMax = 0.f;  // max |y| over g's heads (this thread's part)
  for (int e = tid; e < nOut; e += AD_THREADS) {
    const int r = e / HD, d = e - r * HD;
    float M = NEG_INF;
#pragma unroll
    for (int w = 0; w < AD_WARPS; ++w) M = fmaxf(M, sml[(w * 16 + r) * 2]);
    float L = 0.f, O = 0.f;
#pragma unroll
    for (int w = 0; w < AD_WARPS; ++w) {
      const float wt = split_weight(sml[(w * 16 + r) * 2], M);
      L += wt * sml[(w * 16 + r) * 2 + 1];
      O += wt * so[(w * 16 + r) * HD + d];
    }
    const int h = g * rep + r;
    if (splits == 1) {
      const float y = O * (L > 0.f ? 1.f / L : 0.f);
      headMax = fmaxf(headMax, fabsf(y));
      if (out32) rows32[h * HD + d] = y;
      else out[(u64)s * qDim + h * HD + d] = f2h_rn(y);
    } else if (tBeg < tEnd) {
      const u64 slotIdx = ((u64)s * nH + h) * splits + sp;
      ws_o[slotIdx * HD + d] = O;
      if (d == 0) st_f2(ws_ml + slotIdx * 2, M, L);
    }
  }

  AD_STAMP(3);
  // ---- splits > 1: the last split of (s, g) to arrive merges them, in split order --------------------
  if (splits > 1) {
    if (!arrive_last(counters + s * nKv + g, (u32)splits, &lastFlag)) return;
    // the splits' (m, l) of g's rows, then each row's weights 2^(m_i − M) and 1/Σ w_i·l_i, in shared
    // memory (the partials' loads are one wave each, not a chain per split)
    float* sm = (float*)smem;           // [16][AD_MAX_SPLITS] m, then the weights
    float* sl = sm + 16 * AD_MAX_SPLITS;  // [16][AD_MAX_SPLITS] l
    float* sinv = sl + 16 * AD_MAX_SPLITS;  // [16]
    const u64 row0 = (u64)s * nH + g * rep;
    for (int e = tid; e < rep * used; e += AD_THREADS) {
      const int r = e / used, i = e - r * used;
      const float2 ml = __ldcg((const float2*)(ws_ml + ((row0 + r) * splits + i) * 2));
      sm[r * AD_MAX_SPLITS + i] = ml.x;
      sl[r * AD_MAX_SPLITS + i] = ml.y;
    }
    __syncthreads();
    if (tid < rep) {
      float M = NEG_INF, L = 0.f;
      for (int i = 0; i < used; ++i) M = fmaxf(M, sm[tid * AD_MAX_SPLITS + i]);
      for (int i = 0; i < used; ++i) {
        const float wt = split_weight(sm[tid * AD_MAX_SPLITS + i], M);
        L += wt * sl[tid * AD_MAX_SPLITS + i];
        sm[tid * AD_MAX_SPLITS + i] = wt;
      }
      sinv[tid] = L > 0.f ? 1.f / L : 0.f;
    }
    __syncthreads();
    for (int e = tid; e < nOut; e += AD_THREADS) {
      const int r = e / HD, d = e - r * HD, h = g * rep + r;
      const float* src = ws_o + (row0 + r) * splits * HD + d;
      const float* wts = sm + r * AD_MAX_SPLITS;
      float O = 0.f;
      for (int i0 = 0; i0 < used; i0 += 8) {  // 8 loads in flight per thread
        float v[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) v[j] = i0 + j < used ? __ldcg(src + (u64)(i0 + j) * HD) : 0.f;
#pragma unroll
        for (int j = 0; j < 8; ++j) if (i0 + j < used) O += wts[i0 + j] * v[j];
      }
      const float y = O * sinv[r];
      headMax = fmaxf(headMax, fabsf(y));
      if (out32) rows32[h * HD + d] = y;
      else out[(u64)s * qDim + h * HD + d] = f2h_rn(y);
    }
  }
  AD_STAMP(4);
  if (!q8) return;

  // ---- int8 of row s: the last of its nKv head groups quantizes it ----------------------------------
  headMax = block_max_nonneg(headMax, red);
  if (tid == 0) amax[s * nKv + g] = headMax;
  if (!arrive_last(counters + B * nKv + s, (u32)nKv, &lastFlag)) return;
  // the row's values and the head groups' maxima in one wave of loads; the row stays in registers
  constexpr int QC = 8 * AD_THREADS;  // values per pass of the block
  float rowMax = 0.f;
  for (int i = tid; i < nKv; i += AD_THREADS) rowMax = fmaxf(rowMax, __ldcg(amax + s * nKv + i));
  float y[AD_ROW_MAX / QC][8];
#pragma unroll
  for (int c = 0; c < AD_ROW_MAX / QC; ++c) {
    const int at = c * QC + tid * 8;
    if (at < qDim) {
      const float4 a = __ldcg((const float4*)(rows32 + at)), b = __ldcg((const float4*)(rows32 + at + 4));
      y[c][0] = a.x, y[c][1] = a.y, y[c][2] = a.z, y[c][3] = a.w, y[c][4] = b.x, y[c][5] = b.y, y[c][6] = b.z, y[c][7] = b.w;
    }
  }
  rowMax = block_max_nonneg(rowMax, red);
  float inv;
  const float scale = scale_of(rowMax, &inv);
  if (tid == 0) sx[s] = scale;
  signed char* qrow8 = q8 + (u64)s * qDim;
#pragma unroll
  for (int c = 0; c < AD_ROW_MAX / QC; ++c) {
    const int at = c * QC + tid * 8;
    if (at < qDim) *(U2*)(qrow8 + at) = quantize8(y[c], inv);
  }
  AD_STAMP(5);
}

#define AD_ENTRY(HD)                                                                                                \
  extern "C" __global__ void __launch_bounds__(AD_THREADS) attention_decode_hd##HD(                                \
      const u16* qkv, u16* out, float* out32, signed char* q8, float* sx, float* ws_o, float* ws_ml, float* amax,   \
      u32* counters, u16* kcache, u16* vcache, const u16* bias, const float* cos_t, const float* sin_t,             \
      const int* seq_pos0, const int* seq_slot, int nH, int nKv, int maxSeq, int window, int layout, int splits,     \
      float scale_log2) {                                                                                           \
    attention_decode_body<HD>(qkv, out, out32, q8, sx, ws_o, ws_ml, amax, counters, kcache, vcache, bias, cos_t,     \
                              sin_t, seq_pos0, seq_slot, nH, nKv, maxSeq, window, layout, splits, scale_log2);      \
  }
AD_ENTRY(64)
AD_ENTRY(128)
