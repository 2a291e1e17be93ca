// attention.cu — causal grouped-query attention over the fp16 KV cache for steps of any length
// (prefill, scoring), flash style (FA2): fp16 tensor cores (mma.sync m16n8k16, fp32 accumulation),
// online softmax in registers, no [T, T] matrix anywhere. A decode step (one token per sequence)
// runs attention_decode.cu instead (split-KV with the merge and the int8 output in one kernel).
// CPU twin: src/backends/cuda/twins.ts (attentionTwin, float64). nvcc (sm_80, sm_90a) and NVRTC.
//
// Query rows. For sequence s and KV head g, the queries that share g's keys are numbered
// r = t·rep + j (token t of the step, query head g·rep + j, rep = nH/nKv): a block takes RB = 16·W
// consecutive rows (W warps × 16), so a block covers RB/rep tokens × rep heads (GQA-efficient) and
// the rep heads of one KV head share one pass over the keys.
// Row r sees keys k ≤ p (p = seq_pos0[s] + t), and k > p − window when window > 0 (Mistral).
//
// Operands. qkv fp16 rows [q heads | k heads | v heads] (q already rotated by rope_kv.cu); token t of
// sequence s is row seq_start[s] + t. K/V cache [slots][nKv][maxSeq][HD] fp16, keys < pos0 + T
// valid. Output fp16 (or fp32) [rows][nH·HD] (token-major, head h at h·HD).
//
// Tiling (attention_tile.cuh). 64-key tiles of K and V go to shared memory by cp.async,
// double-buffered, 16-byte chunks XOR-swizzled for conflict-free ldmatrix. S = Q·Kᵀ: Q fragments
// live in registers (loaded once), K fragments by ldmatrix (K rows are the col-major B operand as
// stored). P is rounded to fp16 and reused as the A operand straight from the S accumulators (FA2's
// register layout identity); V fragments by ldmatrix.trans.
//
// ABI: attention_hd{64,128}_w{1,4}(const u16* qkv, u16* out, float* out32, const u16* kcache,
//        const u16* vcache, const int* seq_start, const int* seq_len, const int* seq_pos0,
//        const int* seq_slot, int nH, int nKv, int maxSeq, int window, float scale_log2)
//   grid = (ceil(maxRows / RB), nKv, nSeq), block = 32·W, dynamic smem = 4·64·HD·2 bytes
//   (2 stages × K and V). scale_log2 = log2(e)/sqrt(HD).
//   out32 (when not 0) takes the output in fp32 instead of `out` (the input of a W4A8 o projection,
//   quantized from fp32 like the CPU engine's).

#include "ptx.cuh"
#include "attention_tile.cuh"

template <int HD, int W>
DEVI void attention_body(const u16* __restrict__ qkv, u16* __restrict__ out, float* __restrict__ out32,
                         const u16* __restrict__ kcache, const u16* __restrict__ vcache,
                         const int* __restrict__ seq_start, const int* __restrict__ seq_len,
                         const int* __restrict__ seq_pos0, const int* __restrict__ seq_slot, int nH, int nKv,
                         int maxSeq, int window, float scale_log2) {
  constexpr int RB = 16 * W, THREADS = 32 * W, KS = HD / 16, NT = HD / 8;
  constexpr int TILE_BYTES = KT * HD * 2;
  extern __shared__ __attribute__((aligned(128))) unsigned char smem[];
  const int s = blockIdx.z, g = blockIdx.y;
  const int rep = nH / nKv, T = seq_len[s], rows = T * rep, rb0 = blockIdx.x * RB;
  if (rb0 >= rows) return;
  const int p0 = seq_pos0[s], start = seq_start[s], slot = seq_slot[s];
  const int qkvDim = (nH + 2 * nKv) * HD, qDim = nH * HD;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gq = lane >> 2, q4 = lane & 3;

  // keys this block needs: [kBegin, kEnd), in 64-key tiles
  const int rLast = (rb0 + RB < rows ? rb0 + RB : rows) - 1;
  const int qmin = p0 + rb0 / rep, qmax = p0 + rLast / rep;
  const int kEnd = qmax + 1;
  int kBegin = window > 0 && qmin - window + 1 > 0 ? qmin - window + 1 : 0;
  kBegin &= ~(KT - 1);
  const int nTiles = (kEnd - kBegin + KT - 1) / KT;  // ≥ 1

  // this thread's two query rows (ra: c0,c1 of the accumulators; rb: c2,c3)
  int rowId[2], pos[2];
  bool valid[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int r = rb0 + warp * 16 + gq + 8 * i;
    valid[i] = r < rows;
    const int rr = valid[i] ? r : rLast, t = rr / rep, h = g * rep + (rr - t * rep);
    rowId[i] = (start + t) * nH + h;  // (token, head) row of the output
    pos[i] = p0 + t;
  }

  float o[NT][4];
#pragma unroll
  for (int n = 0; n < NT; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {NEG_INF, NEG_INF}, l[2] = {0.f, 0.f};

  // Q fragments (A operand, row-major 16 rows × HD): a0/a2 from row ra, a1/a3 from row rb
  u32 qf[KS][4];
  load_q_frags<HD>(qkv + (u64)(rowId[0] / nH) * qkvDim + (rowId[0] % nH) * HD,
                   qkv + (u64)(rowId[1] / nH) * qkvDim + (rowId[1] % nH) * HD, q4, qf);
  const u16* kbase = kcache + ((u64)slot * nKv + g) * maxSeq * HD;
  const u16* vbase = vcache + ((u64)slot * nKv + g) * maxSeq * HD;
  const u32 sbase = smem_addr(smem);
  auto load_tile = [&](int ti, int stage) {
    load_kv_tile<HD, THREADS>(sbase + stage * 2 * TILE_BYTES, kbase, vbase, kBegin + ti * KT, kEnd, tid);
  };
  load_tile(0, 0);
  cp_async_commit();
  for (int ti = 0; ti < nTiles; ++ti) {
    const int stage = ti & 1;
    if (ti + 1 < nTiles) {
      load_tile(ti + 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const u32 ks_addr = sbase + stage * 2 * TILE_BYTES, vs_addr = ks_addr + TILE_BYTES;
    attend_tile<HD>(qf, ks_addr, vs_addr, kBegin + ti * KT, 0, pos, window, scale_log2, lane, o, m, l);
    __syncthreads();  // the stage is refilled next iteration
  }
  reduce_row_sums(l);
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    if (!valid[i]) continue;
    const float inv = l[i] > 0.f ? 1.f / l[i] : 0.f;
    const u64 at = (u64)(rowId[i] / nH) * qDim + (rowId[i] % nH) * HD + 2 * q4;
    if (out32) {
#pragma unroll
      for (int n = 0; n < NT; ++n) st_f2(out32 + at + n * 8, o[n][2 * i] * inv, o[n][2 * i + 1] * inv);
    } else {
#pragma unroll
      for (int n = 0; n < NT; ++n) *(u32*)(out + at + n * 8) = pack_f16x2(o[n][2 * i] * inv, o[n][2 * i + 1] * inv);
    }
  }
}

#define ATTN_PARAMS                                                                                          \
  const u16 *qkv, u16 *out, float *out32, const u16 *kcache, const u16 *vcache, const int *seq_start,        \
      const int *seq_len, const int *seq_pos0, const int *seq_slot, int nH, int nKv, int maxSeq, int window, \
      float scale_log2
#define ATTN_ARGS qkv, out, out32, kcache, vcache, seq_start, seq_len, seq_pos0, seq_slot, nH, nKv, maxSeq, window, scale_log2
#define ATTN_ENTRY(HD, W)                                                                             \
  extern "C" __global__ void __launch_bounds__(32 * W) attention_hd##HD##_w##W(ATTN_PARAMS) {      \
    pdl_wait();                                                                                       \
    pdl_trigger();                                                                                    \
    attention_body<HD, W>(ATTN_ARGS);                                                                 \
  }
ATTN_ENTRY(64, 1)
ATTN_ENTRY(64, 4)
ATTN_ENTRY(128, 1)
ATTN_ENTRY(128, 4)
