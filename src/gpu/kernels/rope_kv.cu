// rope_kv.cu — after the fused q/k/v projection: optional q/k/v bias (Qwen2), rotary position
// embedding of q and k, and the append of k and v to the fp16 KV cache. CPU twin:
// src/backends/cuda/twins.ts (ropeKvTwin). nvcc (sm_80, sm_90a) and NVRTC.
//
// Layout: qkv row r = [q heads (nH·hd) | k heads (nKv·hd) | v heads (nKv·hd)], fp16. Row r belongs to
// sequence s = row_seq[r], at position p = seq_pos0[s] + (r − seq_start[s]), in cache slot
// seq_slot[s]. The cache of one layer is K [slots][nKv][maxSeq][hd] and V alike (fp16).
// RoPE: angle tables cos/sin fp32 [maxSeq][hd/2] (src/model/rope.ts ropeTables, the CPU engine's
// own); the pair arithmetic is rope.cuh's (shared with attention_decode.cu, which fuses it in decode):
//   x0' = x0·c − x1·s, x1' = x1·c + x0·s   (fp32, on the fp16 value + bias, rounded once to fp16)
// q is rotated in place (attention reads it from qkv); k and v go to the cache only.
//
// ABI: rope_kv(u16* qkv, const u16* bias /*[qkvDim] or 0*/, const float* cos_t, const float* sin_t,
//              const int* row_seq, const int* seq_start, const int* seq_pos0, const int* seq_slot,
//              u16* kcache, u16* vcache, int nH, int nKv, int hd, int maxSeq, int layout)
//   grid = (rows, ceil((nH + 2·nKv)·hd/2 / 128)), block = 128, no dynamic smem; hd even. One thread
//   per rotary pair (q and k heads) or per two v values, so a decode row's whole q|k|v is one wave
//   of independent loads (a per-row loop was ~30 dependent round trips per layer).

#include "ptx.cuh"
#include "rope.cuh"

extern "C" __global__ void __launch_bounds__(128)
    rope_kv(u16* __restrict__ qkv, const u16* __restrict__ bias, const float* __restrict__ cos_t,
            const float* __restrict__ sin_t, const int* __restrict__ row_seq, const int* __restrict__ seq_start,
            const int* __restrict__ seq_pos0, const int* __restrict__ seq_slot, u16* __restrict__ kcache,
            u16* __restrict__ vcache, int nH, int nKv, int hd, int maxSeq, int layout) {
  pdl_wait();
  pdl_trigger();
  const int r = blockIdx.x, s = row_seq[r];
  const int pos = seq_pos0[s] + (r - seq_start[s]), slot = seq_slot[s];
  const int half = hd >> 1, qkvDim = (nH + 2 * nKv) * hd;
  u16* row = qkv + (u64)r * qkvDim;
  const int pairs = (nH + nKv) * half, j = blockIdx.y * 128 + threadIdx.x;
  if (j < pairs) {  // rotary pair i of head h (q heads first, then k heads)
    const int h = j / half, i = j - h * half;
    int a, b;
    rope_pair(i, half, layout, a, b);
    u16 y0, y1;
    rope_rotate(row + h * hd, bias ? bias + h * hd : nullptr, a, b, cos_t[(u64)pos * half + i], sin_t[(u64)pos * half + i], y0, y1);
    if (h < nH) {
      row[h * hd + a] = y0;
      row[h * hd + b] = y1;
    } else {
      u16* kd = kcache + (((u64)slot * nKv + (h - nH)) * maxSeq + pos) * hd;
      kd[a] = y0;
      kd[b] = y1;
    }
  } else if (j < pairs + nKv * half) {  // two v values, copied (bias added) into the cache
    const int e = 2 * (j - pairs), g = e / hd, d = e - g * hd, at = (nH + nKv) * hd + e;
    u16* vd = vcache + (((u64)slot * nKv + g) * maxSeq + pos) * hd + d;
    vd[0] = with_bias(row[at], bias, at);
    vd[1] = with_bias(row[at + 1], bias, at + 1);
  }
}
