// attention.cu — causal grouped-query attention over the fp16 KV cache, flash style (FA2): fp16
// tensor cores (mma.sync m16n8k16, fp32 accumulation), online softmax in registers, no [T, T]
// matrix anywhere. One kernel serves prefill and decode; decode splits the KV length over blocks
// (split-KV, FlashDecoding) so one sequence fills the GPU, and attention_combine merges the splits.
// CPU twin: src/backends/cuda/twins.ts (attentionTwin, float64). nvcc (sm_80, sm_90a) and NVRTC.
//
// Query rows. For sequence s and KV head g, the queries that share g's keys are numbered
// r = t·rep + j (token t of the step, query head g·rep + j, rep = nH/nKv): a block takes RB = 16·W
// consecutive rows (W warps × 16), so in decode (T = 1) the rep heads of one KV head share one
// pass over the keys, and in prefill a block covers RB/rep tokens × rep heads (GQA-efficient).
// Row r sees keys k ≤ p (p = seq_pos0[s] + t), and k > p − window when window > 0 (Mistral).
//
// Operands. qkv fp16 rows [q heads | k heads | v heads] (q already rotated by rope_kv.cu); token t of
// sequence s is row seq_start[s] + t. K/V cache [slots][nKv][maxSeq][HD] fp16, keys < pos0 + T
// valid. Output fp16 (or fp32) [rows][nH·HD] (token-major, head h at h·HD), or with splits > 1 the fp32
// partials ws_o [(token·nH + h)·splits + split][HD] and ws_ml [...][2] = (running max m in log2
// units, sum l) for attention_combine.
//
// Tiling. 64-key tiles of K and V go to shared memory by cp.async, double-buffered (2 stages;
// keys past the range are zero-filled so P·V never meets garbage), stored with 16-byte chunks
// XOR-swizzled by (key & 7) for conflict-free ldmatrix. S = Q·Kᵀ: Q fragments live in registers
// (loaded once), K fragments by ldmatrix (K rows are the col-major B operand as stored). P is
// rounded to fp16 and reused as the A operand straight from the S accumulators (FA2's register
// layout identity); V fragments by ldmatrix.trans.
//
// ABI: attention_hd{64,128}_w{1,4}(const u16* qkv, u16* out, float* out32, float* ws_o, float* ws_ml,
//        const u16* kcache, const u16* vcache, const int* seq_start, const int* seq_len,
//        const int* seq_pos0, const int* seq_slot, int nH, int nKv, int maxSeq, int window,
//        int splits, float scale_log2)
//   grid = (ceil(maxRows / RB), nKv, nSeq·splits), block = 32·W, dynamic smem = 4·64·HD·2 bytes
//   (2 stages × K and V). scale_log2 = log2(e)/sqrt(HD).
//   out32 (when not 0) takes the output in fp32 instead of `out` (the input of a W4A8 o projection,
//   quantized from fp32 like the CPU engine's).
// attention_combine(const float* ws_o, const float* ws_ml, u16* out, float* out32, int rowsTotal, int splits, int hd)
//   grid = (ceil(rowsTotal / 4)), block = 128 (a warp per (token, head) row).

#include "ptx.cuh"

#define KT 64  // keys per tile

DEVI void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
DEVI void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }
DEVI void ldsm_x4_trans(u32 addr, u32 (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
DEVI u32 pack_f16x2(float lo, float hi) {
  u32 r;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}
DEVI float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
DEVI u32 ld_u32(const u16* p) { return *(const u32*)p; }

#define NEG_INF bits_to_float(0xff800000u)
struct alignas(8) F2 { float x, y; };
DEVI void st_f2(float* p, float x, float y) { F2 v; v.x = x; v.y = y; *(F2*)p = v; }

template <int HD, int W>
DEVI void attention_body(const u16* __restrict__ qkv, u16* __restrict__ out, float* __restrict__ out32, float* __restrict__ ws_o,
                         float* __restrict__ ws_ml, const u16* __restrict__ kcache, const u16* __restrict__ vcache,
                         const int* __restrict__ seq_start, const int* __restrict__ seq_len,
                         const int* __restrict__ seq_pos0, const int* __restrict__ seq_slot, int nH, int nKv,
                         int maxSeq, int window, int splits, float scale_log2) {
  constexpr int RB = 16 * W, THREADS = 32 * W, KS = HD / 16, NT = HD / 8, CH = HD / 8;  // CH: 16-byte chunks per row
  constexpr int TILE_BYTES = KT * HD * 2;
  extern __shared__ __attribute__((aligned(128))) unsigned char smem[];
  const int s = blockIdx.z / splits, sp = blockIdx.z - s * splits, g = blockIdx.y;
  const int rep = nH / nKv, T = seq_len[s], rows = T * rep, rb0 = blockIdx.x * RB;
  if (rb0 >= rows) return;
  const int p0 = seq_pos0[s], start = seq_start[s], slot = seq_slot[s];
  const int qkvDim = (nH + 2 * nKv) * HD, qDim = nH * HD;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gq = lane >> 2, q4 = lane & 3;

  // keys this block needs: [kBegin, kEnd), split into 64-key tiles; this split takes [tBeg, tEnd)
  const int rLast = (rb0 + RB < rows ? rb0 + RB : rows) - 1;
  const int qmin = p0 + rb0 / rep, qmax = p0 + rLast / rep;
  const int kEnd = qmax + 1;
  int kBegin = window > 0 && qmin - window + 1 > 0 ? qmin - window + 1 : 0;
  kBegin &= ~(KT - 1);
  const int nTiles = (kEnd - kBegin + KT - 1) / KT;
  const int perSplit = (nTiles + splits - 1) / splits;
  const int tBeg = sp * perSplit, tEnd = tBeg + perSplit < nTiles ? tBeg + perSplit : nTiles;

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

  if (tBeg < tEnd) {
    // Q fragments (A operand, row-major 16 rows × HD): a0/a2 from row ra, a1/a3 from row rb
    u32 qf[KS][4];
    {
      const u16* qa = qkv + (u64)(rowId[0] / nH) * qkvDim + (rowId[0] % nH) * HD;
      const u16* qb = qkv + (u64)(rowId[1] / nH) * qkvDim + (rowId[1] % nH) * HD;
#pragma unroll
      for (int ks = 0; ks < KS; ++ks) {
        const int c = ks * 16 + 2 * q4;
        qf[ks][0] = ld_u32(qa + c);
        qf[ks][1] = ld_u32(qb + c);
        qf[ks][2] = ld_u32(qa + c + 8);
        qf[ks][3] = ld_u32(qb + c + 8);
      }
    }
    const u16* kbase = kcache + ((u64)slot * nKv + g) * maxSeq * HD;
    const u16* vbase = vcache + ((u64)slot * nKv + g) * maxSeq * HD;
    const u32 sbase = smem_addr(smem);
    auto load_tile = [&](int ti, int stage) {
      const int j0 = kBegin + ti * KT;
      const u32 kdst = sbase + stage * 2 * TILE_BYTES, vdst = kdst + TILE_BYTES;
#pragma unroll 4
      for (int c = tid; c < KT * CH; c += THREADS) {
        const int key = c / CH, ch = c - key * CH, kk = j0 + key;
        const bool in = kk < kEnd;
        const u64 off = (u64)(in ? kk : 0) * HD + ch * 8;
        const u32 sw = key * HD * 2 + ((ch ^ (key & 7)) << 4);
        cp_async16_zfill(kdst + sw, kbase + off, in ? 16u : 0u);
        cp_async16_zfill(vdst + sw, vbase + off, in ? 16u : 0u);
      }
    };
    load_tile(tBeg, 0);
    cp_async_commit();
    for (int ti = tBeg; ti < tEnd; ++ti) {
      const int stage = (ti - tBeg) & 1;
      if (ti + 1 < tEnd) {
        load_tile(ti + 1, stage ^ 1);
        cp_async_commit();
        cp_async_wait<1>();
      } else {
        cp_async_wait<0>();
      }
      __syncthreads();
      const u32 ks_addr = sbase + stage * 2 * TILE_BYTES, vs_addr = ks_addr + TILE_BYTES;
      const int j0 = kBegin + ti * KT;

      // S = Q·Kᵀ for 16 rows × 64 keys (8 n8 tiles of keys)
      float sacc[8][4];
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        sacc[nt][0] = sacc[nt][1] = sacc[nt][2] = sacc[nt][3] = 0.f;
        const int key = nt * 8 + (lane & 7);
#pragma unroll
        for (int ks = 0; ks < KS; ks += 2) {
          const int ch = 2 * ks + (lane >> 3);  // matrices: (ks, lo), (ks, hi), (ks+1, lo), (ks+1, hi)
          u32 b[4];
          ldsm_x4(ks_addr + key * HD * 2 + ((ch ^ (key & 7)) << 4), b);
          mma_f16(sacc[nt], qf[ks], b[0], b[1]);
          mma_f16(sacc[nt], qf[ks + 1], b[2], b[3]);
        }
      }
      // mask, online softmax (log2 domain), P in fp16 as the A operand of P·V
      float mx[2] = {m[0], m[1]};
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int i = e >> 1, key = j0 + nt * 8 + 2 * q4 + (e & 1);
          const bool vis = key <= pos[i] && (window <= 0 || key > pos[i] - window);
          const float x = vis ? sacc[nt][e] * scale_log2 : NEG_INF;
          sacc[nt][e] = x;
          mx[i] = fmaxf(mx[i], x);
        }
      float corr[2], msub[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
        mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
        msub[i] = mx[i] == NEG_INF ? 0.f : mx[i];
        corr[i] = fast_exp2(m[i] - msub[i]);  // m = -inf → 0
        m[i] = mx[i];
        l[i] *= corr[i];
      }
#pragma unroll
      for (int n = 0; n < NT; ++n) {
        o[n][0] *= corr[0];
        o[n][1] *= corr[0];
        o[n][2] *= corr[1];
        o[n][3] *= corr[1];
      }
      u32 pf[4][4];  // A fragments of P for the 4 k-steps of 16 keys
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        const float e0 = fast_exp2(sacc[nt][0] - msub[0]), e1 = fast_exp2(sacc[nt][1] - msub[0]);
        const float e2 = fast_exp2(sacc[nt][2] - msub[1]), e3 = fast_exp2(sacc[nt][3] - msub[1]);
        l[0] += e0 + e1;
        l[1] += e2 + e3;
        pf[nt >> 1][(nt & 1) * 2 + 0] = pack_f16x2(e0, e1);
        pf[nt >> 1][(nt & 1) * 2 + 1] = pack_f16x2(e2, e3);
      }
      // O += P·V: V fragments by ldmatrix.trans (keys are the k dimension)
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        const int mi = lane >> 3, key = kk * 16 + (mi & 1) * 8 + (lane & 7);
#pragma unroll
        for (int dn = 0; dn < NT; dn += 2) {
          const int ch = dn + (mi >> 1);
          u32 b[4];
          ldsm_x4_trans(vs_addr + key * HD * 2 + ((ch ^ (key & 7)) << 4), b);
          mma_f16(o[dn], pf[kk], b[0], b[1]);
          mma_f16(o[dn + 1], pf[kk], b[2], b[3]);
        }
      }
      __syncthreads();  // the stage is refilled next iteration
    }
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
  }
  if (splits == 1) {
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
  } else {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      if (!valid[i]) continue;
      const u64 slotIdx = (u64)rowId[i] * splits + sp;
      float* dst = ws_o + slotIdx * HD + 2 * q4;
#pragma unroll
      for (int n = 0; n < NT; ++n) st_f2(dst + n * 8, o[n][2 * i], o[n][2 * i + 1]);
      if (q4 == 0) st_f2(ws_ml + slotIdx * 2, m[i], l[i]);
    }
  }
}

#define ATTN_PARAMS                                                                                          \
  const u16 *qkv, u16 *out, float *out32, float *ws_o, float *ws_ml, const u16 *kcache, const u16 *vcache,               \
      const int *seq_start, const int *seq_len, const int *seq_pos0, const int *seq_slot, int nH, int nKv, \
      int maxSeq, int window, int splits, float scale_log2
#define ATTN_ARGS \
  qkv, out, out32, ws_o, ws_ml, kcache, vcache, seq_start, seq_len, seq_pos0, seq_slot, nH, nKv, maxSeq, window, splits, scale_log2
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

// The weight of split i of a row: 2^(m_i - M) (0 for an empty split), M = max_i m_i.
DEVI float split_weight(float mi, float M) { return mi == NEG_INF ? 0.f : exp2f(mi - M); }

extern "C" __global__ void __launch_bounds__(128)
    attention_combine(const float* __restrict__ ws_o, const float* __restrict__ ws_ml, u16* __restrict__ out,
                      float* __restrict__ out32, int rowsTotal, int splits, int hd) {
  pdl_wait();
  pdl_trigger();
  const int row = blockIdx.x * 4 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (row >= rowsTotal) return;
  const float* ml = ws_ml + (u64)row * splits * 2;
  // lanes read the splits' (m, l) in parallel; the warp reduces M, then L
  float M = NEG_INF;
  for (int i = lane; i < splits; i += 32) M = fmaxf(M, ml[2 * i]);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o));
  float L = 0.f;
  for (int i = lane; i < splits; i += 32) L += split_weight(ml[2 * i], M) * ml[2 * i + 1];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) L += __shfl_xor_sync(0xffffffffu, L, o);
  const float invL = L > 0.f ? 1.f / L : 0.f;
  const float* o0 = ws_o + (u64)row * splits * hd;
  for (int d = lane; d < hd; d += 32) {
    float acc = 0.f;
#pragma unroll 4
    for (int i = 0; i < splits; ++i) acc += split_weight(ml[2 * i], M) * o0[(u64)i * hd + d];
    if (out32) out32[(u64)row * hd + d] = acc * invL;
    else out[(u64)row * hd + d] = f2h_rn(acc * invL);
  }
}
