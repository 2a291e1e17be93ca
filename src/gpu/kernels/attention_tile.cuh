// attention_tile.cuh — the warp-level pieces of flash attention that prefill (attention.cu) and the
// fused decode kernel (attention_decode.cu) share: 64-key K/V tiles into XOR-swizzled shared memory
// by cp.async, a warp's Q fragments, and one tile's S = Q·Kᵀ → mask → online softmax → O += P·V
// on mma.sync m16n8k16 (fp16 in, fp32 accumulate). Include after ptx.cuh.
//
// A warp owns 16 query rows; lane (gq = lane/4, q4 = lane%4) holds rows gq and gq + 8 (index i = 0,
// 1 below) in the m16n8 accumulator layout: o[n][2i], o[n][2i+1] are columns n·8 + 2·q4 + {0, 1}.
// Tiles: key j of a tile at byte j·HD·2 + ((chunk ^ (j & 7)) << 4) (16-byte chunks), so ldmatrix
// (and ldmatrix.trans for V) is conflict-free; keys past the valid range are zero-filled so P·V never
// meets garbage.

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

// Byte offset of 16-byte chunk ch of key `key` within a tile.
template <int HD>
DEVI u32 tile_offset(int key, int ch) { return key * HD * 2 + ((ch ^ (key & 7)) << 4); }

// Keys j0 .. j0+63 of one head's K and V rows (kbase, vbase: key 0 of the head) into the tile pair
// at kdst (K) and kdst + KT·HD·2 (V), by the block's THREADS threads; keys ≥ kEnd become zeros.
template <int HD, int THREADS>
DEVI void load_kv_tile(u32 kdst, const u16* kbase, const u16* vbase, int j0, int kEnd, int tid) {
  constexpr int CH = HD / 8, TILE_BYTES = KT * HD * 2;
#pragma unroll 4
  for (int c = tid; c < KT * CH; c += THREADS) {
    const int key = c / CH, ch = c - key * CH, kk = j0 + key;
    const bool in = kk < kEnd;
    const u64 off = (u64)(in ? kk : 0) * HD + ch * 8;
    const u32 sw = tile_offset<HD>(key, ch);
    cp_async16_zfill(kdst + sw, kbase + off, in ? 16u : 0u);
    cp_async16_zfill(kdst + TILE_BYTES + sw, vbase + off, in ? 16u : 0u);
  }
}

// The A fragments of this lane's two query rows qa (row gq) and qb (row gq + 8), HD fp16 each.
template <int HD>
DEVI void load_q_frags(const u16* qa, const u16* qb, int q4, u32 (&qf)[HD / 16][4]) {
#pragma unroll
  for (int ks = 0; ks < HD / 16; ++ks) {
    const int c = ks * 16 + 2 * q4;
    qf[ks][0] = ld_u32(qa + c);
    qf[ks][1] = ld_u32(qb + c);
    qf[ks][2] = ld_u32(qa + c + 8);
    qf[ks][3] = ld_u32(qb + c + 8);
  }
}

// Keys k0 .. k0+NK−1 of one tile (tile keys j0 .. j0+63 at ks_addr / vs_addr; NK a multiple of 16)
// for the warp's 16 rows: row i sees keys ≤ pos[i] (and > pos[i] − window when window > 0).
// m: running max in log2 units, l: this lane's part of the running sum (reduce over the 4 lanes of
// a row at the end), o: unnormalized output. Prefill takes whole tiles (NK = 64, k0 = 0); decode
// warps take a quarter each (NK = 16).
template <int HD, int NK = KT>
DEVI void attend_tile(const u32 (&qf)[HD / 16][4], u32 ks_addr, u32 vs_addr, int j0, int k0, const int (&pos)[2],
                      int window, float scale_log2, int lane, float (&o)[HD / 8][4], float (&m)[2], float (&l)[2]) {
  constexpr int KS = HD / 16, NT = HD / 8, N8 = NK / 8;
  const int q4 = lane & 3;
  // S = Q·Kᵀ for 16 rows × NK keys (N8 n8 tiles of keys)
  float sacc[N8][4];
#pragma unroll
  for (int nt = 0; nt < N8; ++nt) {
    sacc[nt][0] = sacc[nt][1] = sacc[nt][2] = sacc[nt][3] = 0.f;
    const int key = k0 + nt * 8 + (lane & 7);
#pragma unroll
    for (int ks = 0; ks < KS; ks += 2) {
      const int ch = 2 * ks + (lane >> 3);  // matrices: (ks, lo), (ks, hi), (ks+1, lo), (ks+1, hi)
      u32 b[4];
      ldsm_x4(ks_addr + tile_offset<HD>(key, ch), b);
      mma_f16(sacc[nt], qf[ks], b[0], b[1]);
      mma_f16(sacc[nt], qf[ks + 1], b[2], b[3]);
    }
  }
  // mask, online softmax (log2 domain), P in fp16 as the A operand of P·V
  float mx[2] = {m[0], m[1]};
#pragma unroll
  for (int nt = 0; nt < N8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int i = e >> 1, key = j0 + k0 + nt * 8 + 2 * q4 + (e & 1);
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
  u32 pf[NK / 16][4];  // A fragments of P for the k-steps of 16 keys
#pragma unroll
  for (int nt = 0; nt < N8; ++nt) {
    const float e0 = fast_exp2(sacc[nt][0] - msub[0]), e1 = fast_exp2(sacc[nt][1] - msub[0]);
    const float e2 = fast_exp2(sacc[nt][2] - msub[1]), e3 = fast_exp2(sacc[nt][3] - msub[1]);
    l[0] += e0 + e1;
    l[1] += e2 + e3;
    pf[nt >> 1][(nt & 1) * 2 + 0] = pack_f16x2(e0, e1);
    pf[nt >> 1][(nt & 1) * 2 + 1] = pack_f16x2(e2, e3);
  }
  // O += P·V: V fragments by ldmatrix.trans (keys are the k dimension)
#pragma unroll
  for (int kk = 0; kk < NK / 16; ++kk) {
    const int mi = lane >> 3, key = k0 + kk * 16 + (mi & 1) * 8 + (lane & 7);
#pragma unroll
    for (int dn = 0; dn < NT; dn += 2) {
      const int ch = dn + (mi >> 1);
      u32 b[4];
      ldsm_x4_trans(vs_addr + tile_offset<HD>(key, ch), b);
      mma_f16(o[dn], pf[kk], b[0], b[1]);
      mma_f16(o[dn + 1], pf[kk], b[2], b[3]);
    }
  }
}

// The running sums of a row, reduced over its 4 lanes.
DEVI void reduce_row_sums(float (&l)[2]) {
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
  }
}

// The weight of split i of a row when merging: 2^(m_i − M) (0 for an empty split), M = max_i m_i.
DEVI float split_weight(float mi, float M) { return mi == NEG_INF ? 0.f : exp2f(mi - M); }
