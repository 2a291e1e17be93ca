// w4_gemv.cu — the small-M W4 GEMMs (M ≤ 16 tokens, decode): W4A8 IS and FS with g32/g64/g128,
// per channel (PC), and W4A16 g128. Memory bound: the job is to stream the int4 weights at HBM
// speed. nvcc (sm_80, sm_90a) and NVRTC; shared helpers in ptx.cuh.
//
// ABI: exactly w4_gemm.cu's (docs/KERNELS.md), same repacked weights and scales:
//   (A, sx, Wp, gscales, chan, residual, out, workspace, counters, M, N, K); workspace and counters
//   are unused. Limits: M ≤ 8 (tile v8) or M ≤ 16 (tile v16), N % 16 == 0, K % 128 == 0.
//   - W4A8 v8 (rounds): grid (N/16), block 32·GV_WARPS = 256, no dynamic smem.
//   - v16 of every mode and W4A16 v8 (persistent ring): grid min(N/16, resident blocks), block
//     32·GV_PWARPS = 128, dynamic smem GvRing::SMEM (the planner's gemvRingSmemBytes).
//   Grouped entries NAME_v8_moe / NAME_v16_moe (a mixture of experts; -DW4_SELECT_GROUPED), both on
//   the persistent ring (a block reads the step's routing once for many row tiles; the rounds' short
//   blocks would each wait for it): (A, sx, experts, active, offsets, out, N, K), grid (min(N/16,
//   resident blocks), routed-expert slots): expert
//   e = active[blockIdx.y]'s rows [offsets[e], offsets[e+1]) of A / sx / out, its operands
//   GvExpert experts[e]; no residual (see GvExpert).
//
// Design: a 16-row weight tile (one m16 MMA tile: the weights are the A operand, so the repacked
// chunks of n8 rows r, r+1 are the A fragments, as in w4_gemm_wgmma.cu) against all tokens (one or
// two n8 tiles of the B operand); a block's warps split its K: warp w of W takes k-tiles w, w+W, ...
// Two ways to stream them (docs/KERNELS.md has the measurements that chose each):
// - rounds (gemv_rounds, W4A8 v8: 8 warps, one tile per block): GV_UNROLL k-tiles per warp per
//   round, weights (2 × 16 B per lane per k-tile) straight into registers, activations by cp.async
//   into a per-warp smem buffer (read back as MMA fragments with ldmatrix) and group scales, all
//   requested before any is computed; 3–4 blocks per SM keep enough bytes in flight.
// - the persistent ring (gemv_persist, the rest): weights, activations and scales of each k-tile
//   arrive by cp.async in a per-warp smem stage, several k-tiles in flight per warp, across the
//   row tiles a block loops over.
// W4A8: mma.sync m16n8k32 per 32-wide k-step; at the end of each group the int32 partial sums are
// folded (IS: one IMAD with ŝ; FS: fma(fp32(P), s)). W4A16: the int4 weights dequantized in
// registers to fp16(q·s) (dequant_a16), m16n8k16 f16 MMAs into fp32. The warps' sums are added in
// warp order through smem (int32: exact; fp32: a fixed order), then the fp16 outputs (QUANT_SPEC
// epilogue, optional residual; its sx, per-row factors and residual are requested before the
// reduction's barrier, so they arrive while it runs).
// Programmatic dependent launch (sm_90): weights (the ring: and their scales) are requested before
// pdl_wait, activations after; the next kernel is triggered once the (last) main loop is done.
// Knobs with #ifndef defaults, set only by gpu-dev/experiments/probe.sh: GV_WARPS + GV_THREADS,
// GV_MINB, GV_UNROLL (rounds); GV_PWARPS, GV_PSTAGES_V8, GV_PSTAGES_V16, GV_PMINB (ring);
// GV_ACT_L1; GV_NOCOMPUTE (ring without its MMAs: what the stream alone costs).

#include "ptx.cuh"

#define GV_ROWS 16
#ifndef GV_WARPS
#define GV_WARPS 8  // rounds
#define GV_THREADS 256
#endif
#ifndef GV_MINB
#define GV_MINB 3  // blocks per SM (__launch_bounds__): caps registers at 80
#endif
#ifndef GV_UNROLL
#define GV_UNROLL 2  // k-tiles loaded per warp before any is computed (H100: 2 beat 4 by ~5%)
#endif
#ifndef GV_PWARPS
#define GV_PWARPS 4  // warps of a persistent-ring block
#endif
#ifndef GV_PSTAGES_V8
#define GV_PSTAGES_V8 4  // ring depth (k-tiles in smem per warp) of v8 (W4A16)
#endif
#ifndef GV_PSTAGES_V16
#define GV_PSTAGES_V16 3  // and of v16 (H200: 4 no faster; 3 keeps 4 blocks per SM)
#endif
#ifndef GV_PMINB
#define GV_PMINB 4
#endif
#ifndef GV_ACT_L1
#define GV_ACT_L1 0  // 1: activations through L1 (cp.async.ca): the blocks of an SM share their reads
#endif

DEVI u32 ldg_u32(const void* p) {  // group scales: small, read by many blocks (L1/L2)
  u32 v;
  asm volatile("ld.global.nc.u32 %0, [%1];" : "=r"(v) : "l"(p));
  return v;
}
// activations (16 bytes, zero fill past M): L2 only (cp.async.cg), or L1 too with GV_ACT_L1
DEVI void cp_act16(u32 dst, const void* src, u32 src_bytes) {
  if (GV_ACT_L1) asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
  else cp_async16_zfill(dst, src, src_bytes);
}
DEVI void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }
DEVI void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> DEVI void cp_async_wait_group() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

DEVI void mma_s8(int (&c)[4], const u32 (&a)[4], u32 b0, u32 b1, bool fresh) {
  if (fresh)
    asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%10,%10,%10};\n"
        : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "r"(0));
  else
    asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// One W4A8 k-tile of a 16-row weight tile: the activations' B fragments (ldmatrix.x4 from the
// per-warp buffer at xk, 16-byte chunk c of token t at c ^ t; lane l addresses token lt = l % 8 of
// matrix lm = l / 8), 4 k32 steps of MMAs on the two n8 rows' weight words w0 / w1, and at the end
// of each group the fold with the scales s of rows g and g + 8 (IS: one IMAD; FS: fma(fp32(P), s);
// PC: none, P accumulates the whole K).
// Zero a tile's accumulators and its per-group partial sums (both bodies, every tile).
template <int NT, typename Acc>
DEVI void zero_acc(Acc (&acc)[NT][4], int (&P)[NT][4]) {
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[j][e] = 0, P[j][e] = 0;
}

template <int MODE, int G, int NT, typename Acc>
DEVI void w4a8_ktile(Acc (&acc)[NT][4], int (&P)[NT][4], const u32 (&w0)[4], const u32 (&w1)[4], u32 xk, int lt, int lm,
                     const u32 (&s)[MODE == MODE_PC ? 1 : 128 / G][2]) {
  constexpr bool GROUPED = MODE != MODE_PC;
  constexpr int KS_PER_G = GROUPED ? G / 32 : 4;  // k32 steps per group
  u32 x[NT][8];  // [j][2·ks + h]: B fragments b0 (h = 0), b1 (h = 1) of k32 step ks
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int p = 0; p < 2; ++p) {
      u32 r[4];
      ldsm_x4(xk + (j * 8 + lt) * 128 + (((4 * p + lm) ^ lt) << 4), r);
#pragma unroll
      for (int i = 0; i < 4; ++i) x[j][4 * p + i] = r[i];
    }
#pragma unroll
  for (int ks = 0; ks < 4; ++ks) {
    u32 a[4];
    unpack_s4(w0[ks], a[0], a[2]);
    unpack_s4(w1[ks], a[1], a[3]);
#pragma unroll
    for (int j = 0; j < NT; ++j) mma_s8(P[j], a, x[j][2 * ks], x[j][2 * ks + 1], GROUPED && ks % KS_PER_G == 0);
    if constexpr (GROUPED) {
      if ((ks + 1) % KS_PER_G == 0) {  // group ends: fold
        const int gi = ks / KS_PER_G;
        const Acc s0 = MODE == MODE_FS ? (Acc)bits_to_float(s[gi][0]) : (Acc)(int)s[gi][0];
        const Acc s1 = MODE == MODE_FS ? (Acc)bits_to_float(s[gi][1]) : (Acc)(int)s[gi][1];
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const Acc sv = e < 2 ? s0 : s1;
            if constexpr (MODE == MODE_IS)
              acc[j][e] = (int)((u32)acc[j][e] + (u32)P[j][e] * (u32)sv);  // wraps: never (QUANT_SPEC)
            else
              acc[j][e] = ffma_rn(i2f_rn(P[j][e]), sv, acc[j][e]);
          }
      }
    }
  }
}

// Activation copy sources of lane l: 16-byte chunk l % 8 (of a 128-byte k-tile half) of tokens
// l / 8 and l / 8 + 4 in each n8 token tile j; tokens past M read token 0 with a zero fill (bytes 0).
template <int NT, int EB>
DEVI void act_sources(const void* X, int M, int K, int lane, const unsigned char* (&src)[NT][2], u32 (&bytes)[NT][2]) {
  const int ct = lane >> 3, cc = lane & 7;
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int t = j * 8 + ct + 4 * h;
      bytes[j][h] = t < M ? 16u : 0u;
      src[j][h] = (const unsigned char*)X + ((u64)(t < M ? t : 0) * K + cc * 16 / EB) * EB;
    }
}

template <int MODE, int G>
DEVI void gemv_rounds(const signed char* __restrict__ X, const float* __restrict__ sx, const U4* __restrict__ Wp,
                    const void* __restrict__ gsc, const void* __restrict__ chan, const u16* __restrict__ residual,
                    u16* __restrict__ out, int M, int N, int K) {
  typedef typename AccT<MODE == MODE_FS>::type Acc;
  constexpr int NT = 1, WARPS = GV_WARPS;  // one n8 token tile (M <= 8)
  constexpr bool GROUPED = MODE != MODE_PC;
  constexpr int GPT = GROUPED ? 128 / G : 0;      // groups per k-tile
  static_assert(!GROUPED || G == 32 || G == 64 || G == 128, "group size must be 32, 64 or 128");
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, q = lane & 3, g = lane >> 2;
  const int n0 = blockIdx.x * GV_ROWS, KT = K >> 7;
  // repacked chunk of (n8 row, k-tile kt, lane) = ((blk·16·KT + kt·rows + n8 % 16)·32 + lane) (repack.ts)
  const int n8 = n0 >> 3, blk = n8 >> 4, rows = (N >> 3) - blk * 16 < 16 ? (N >> 3) - blk * 16 : 16;
  const U4* wrow = Wp + ((u64)blk * 16 * KT + (n8 & 15)) * 32 + lane;  // + kt·rows·32; row n8+1: + 32
  // Activations go through a per-warp smem buffer: [u or stage][token tile j][token 0..7][128 B],
  // 16-byte chunk c of a token row stored at chunk c ^ token (conflict-free ldmatrix). Lane l copies
  // chunks (l % 8) of tokens l / 8 and l / 8 + 4 with cp.async (zero fill past M); ldmatrix.x4 then
  // hands lane (g, q) the MMA B fragments (bytes 4q.. and 16 + 4q.. of token g) of two k-steps.
  const int ct = lane >> 3, cc = lane & 7;  // copy: tokens ct, ct + 4; chunk cc
  const unsigned char* xsrc[NT][2];
  u32 xbytes[NT][2];
  act_sources<NT, 1>(X, M, K, lane, xsrc, xbytes);
  // ldmatrix row address of lane l: matrix l / 8 (chunk 4p + l / 8 for the p-th x4), token l % 8
  const int lt = lane & 7, lm = lane >> 3;
  const int rA = n0 + g, rB = rA + 8;  // this thread's output rows (c[0,1] and c[2,3])

  Acc acc[NT][4];
  int P[NT][4];
  zero_acc(acc, P);


  __shared__ __attribute__((aligned(128))) unsigned char xs[WARPS][GV_UNROLL][NT][8][128];
  const u32 xw = smem_addr(&xs[warp][0][0][0][0]);
  for (int kt0 = warp; kt0 < KT; kt0 += WARPS * GV_UNROLL) {
    U4 w[GV_UNROLL][2];
    u32 sc[GV_UNROLL][GPT > 0 ? GPT : 1][2];
    // weights first: they do not depend on the preceding kernel, so under programmatic dependent
    // launch the first round streams while that kernel finishes
#pragma unroll
    for (int u = 0; u < GV_UNROLL; ++u) {
      const int kt = kt0 + u * WARPS;
      if (kt < KT) {
        const U4* wp = wrow + (u64)kt * rows * 32;
        w[u][0] = ldg_stream16(wp);
        w[u][1] = ldg_stream16(wp + 32);
      }
    }
    if (kt0 == warp) pdl_wait();  // the activations are the preceding kernel's output
#pragma unroll
    for (int u = 0; u < GV_UNROLL; ++u) {
      const int kt = kt0 + u * WARPS;
      if (kt < KT) {
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int tok = ct + 4 * h;
            cp_act16(xw + (((u * NT + j) * 8 + tok) * 128) + ((cc ^ tok) << 4), xsrc[j][h] + kt * 128, xbytes[j][h]);
          }
        if constexpr (GROUPED) {
#pragma unroll
          for (int gi = 0; gi < GPT; ++gi) {
            const u32* sp = (const u32*)gsc + (u64)(kt * GPT + gi) * N;
            sc[u][gi][0] = ldg_u32(sp + rA);
            sc[u][gi][1] = ldg_u32(sp + rB);
          }
        }
      }
    }
    cp_async_wait_all();
    __syncwarp();
#pragma unroll
    for (int u = 0; u < GV_UNROLL; ++u) {
      if (kt0 + u * WARPS < KT) {
        const u32 w0[4] = {w[u][0].x, w[u][0].y, w[u][0].z, w[u][0].w};
        const u32 w1[4] = {w[u][1].x, w[u][1].y, w[u][1].z, w[u][1].w};
        w4a8_ktile<MODE, G, NT>(acc, P, w0, w1, xw + u * NT * 8 * 128, lt, lm, sc[u]);
      }
    }
    __syncwarp();  // every lane's ldmatrix is done before the next round's cp.async refills the buffer
  }

  pdl_wait();     // (warps past the last k-tile) sx and residual come from preceding kernels too
  pdl_trigger();  // the next kernel may launch while this one reduces and writes
  // warp 0 writes the outputs: its sx, per-row factors (2^-k_n for IS, s_n for PC, 1 for FS) and
  // residuals are requested now, so the loads overlap the barrier and the reduction below
  float cA = 1.0f, cB = 1.0f, es[2] = {0.0f, 0.0f}, er[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  if (warp == 0) {
    cA = row_factor<MODE>(chan, rA);
    cB = row_factor<MODE>(chan, rB);
#pragma unroll
    for (int i = 0; i < 2; ++i) es[i] = 2 * q + i < M ? sx[2 * q + i] : 0.0f;
    if (residual) {
#pragma unroll
      for (int e = 0; e < 4; ++e) er[e] = 2 * q + (e & 1) < M ? h2f(residual[(u64)(2 * q + (e & 1)) * N + (e < 2 ? rA : rB)]) : 0.0f;
    }
  }
  // the 8 warps' sums, added in warp order
  __shared__ Acc red[WARPS][NT * 4][32];
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) red[warp][j * 4 + e][lane] = MODE == MODE_PC ? (Acc)P[j][e] : acc[j][e];
  __syncthreads();
  if (warp != 0) return;
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      Acc v = red[0][j * 4 + e][lane];
#pragma unroll
      for (int w = 1; w < WARPS; ++w) {
        if constexpr (MODE == MODE_FS) v = fadd_rn(v, red[w][j * 4 + e][lane]);
        else v = (int)((u32)v + (u32)red[w][j * 4 + e][lane]);
      }
      const int t = j * 8 + 2 * q + (e & 1), n = e < 2 ? rA : rB;
      if (t >= M) continue;
      const float s = es[e & 1], c = e < 2 ? cA : cB;
      float y = MODE == MODE_FS ? fmul_rn((float)v, s) : fmul_rn(fmul_rn(i2f_rn((int)v), s), c);
      if (residual) y = fadd_rn(y, er[e]);
      out[(u64)t * N + n] = f2h_rn(y);
    }
}

// ---- the persistent ring: v16 of every mode, W4A16 v8 ----------------------------------------------
// grid = min(row tiles, resident blocks): block b takes row tiles b, b + grid, ... Each warp walks
// one flat sequence of (row tile, k-tile) items (k-tiles warp, warp + WARPS, ... of each tile) on
// a STAGES-deep cp.async ring in dynamic smem: weights (2 × 16 B per lane), activations and the
// row tile's scales of an item arrive together, one commit group per item, so a warp keeps
// STAGES − 1 items in flight while it computes one, across row-tile boundaries: a tile's
// cross-warp reduction and epilogue run while the next tile's loads stream. One __syncthreads per
// tile; the reduction buffers alternate by tile parity, so one barrier suffices.
// Dynamic smem (GvRing::SMEM; the planner's gemvRingSmemBytes must agree, the kernel traps if
// given less): per warp STAGES × [activations NT·H·1 KB | weights 1 KB | scales], then the
// reduction buffers 2 × WARPS × NT·4 × 32 × 4 B. H = 2 for W4A16 (a k-tile of fp16 is 256 B).
template <int MODE, int G, int NT, int WARPS, int STAGES> struct GvRing {
  static constexpr int H = MODE == MODE_A16 ? 2 : 1;                 // 128-byte halves per token and k-tile
  static constexpr int X_BYTES = NT * H * 8 * 128;
  static constexpr int W_BYTES = 2 * 32 * 16;
  static constexpr int S_RAW = MODE == MODE_A16 ? 32 : MODE == MODE_PC ? 0 : (128 / G) * 16 * 4;
  static constexpr int S_BYTES = (S_RAW + 127) / 128 * 128;
  static constexpr int STAGE = X_BYTES + W_BYTES + S_BYTES;
  static constexpr int RED = 2 * WARPS * NT * 4 * 32 * 4;
  static constexpr int SMEM = WARPS * STAGES * STAGE + RED;
};
DEVI u32 lds_u16(u32 addr) {
  unsigned short v;
  asm volatile("ld.shared.u16 %0, [%1];" : "=h"(v) : "r"(addr));
  return v;
}

template <int MODE, int G, int NT, int WARPS, int STAGES>
DEVI void gemv_persist(const void* __restrict__ X, const float* __restrict__ sx, const U4* __restrict__ Wp,
                       const void* __restrict__ gsc, const void* __restrict__ chan, const u16* __restrict__ residual,
                       u16* __restrict__ out, int M, int N, int K) {
  using R = GvRing<MODE, G, NT, WARPS, STAGES>;
  typedef typename AccT<MODE == MODE_FS || MODE == MODE_A16>::type Acc;
  constexpr bool GROUPED = MODE == MODE_IS || MODE == MODE_FS;
  constexpr int EB = MODE == MODE_A16 ? 2 : 1;    // activation bytes per element
  constexpr int GPT = GROUPED ? 128 / G : 1;      // groups per k-tile
  static_assert(!GROUPED || G == 32 || G == 64 || G == 128, "group size must be 32, 64 or 128");
  extern __shared__ __align__(128) unsigned char gv_smem[];
  if (dynamic_smem_bytes() < (u32)R::SMEM) __trap();  // the launch's smem disagrees with this build
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2;
  const int KT = K >> 7, T = N >> 4;
  const int nk = KT > warp ? (KT - warp + WARPS - 1) / WARPS : 0;  // this warp's k-tiles per row tile
  const u32 ring = smem_addr(gv_smem) + warp * STAGES * R::STAGE;
  Acc* red = (Acc*)(gv_smem + WARPS * STAGES * R::STAGE);  // [2][WARPS][NT·4][32]
  // activation copy: lane l copies 16-byte chunk l % 8 of tokens l / 8 and l / 8 + 4 of each
  // token tile (zero fill past M), stored at chunk c ^ token (conflict-free ldmatrix)
  const int ct = lane >> 3, cc = lane & 7;
  const unsigned char* xsrc[NT][2];
  u32 xbytes[NT][2];
  act_sources<NT, EB>(X, M, K, lane, xsrc, xbytes);
  const int lt = lane & 7, lm = lane >> 3;  // ldmatrix: token lt of matrix lm

  // item (tile, i): k-tile kt = warp + i·WARPS of row tile `tile` into stage st
  auto issue_weights = [&](int tile, int i, int st) {  // weights and scales: independent of the preceding kernel
    if (tile >= T) return;
    const int kt = warp + i * WARPS, n8 = tile * 2, blk = n8 >> 4;
    const int rows = (N >> 3) - blk * 16 < 16 ? (N >> 3) - blk * 16 : 16;
    // repacked chunk of (n8 row, k-tile kt, lane) = ((blk·16·KT + kt·rows + n8 % 16)·32 + lane) (repack.ts)
    const U4* wp = Wp + ((u64)blk * 16 * KT + (u64)kt * rows + (n8 & 15)) * 32 + lane;
    const u32 sw = ring + st * R::STAGE + R::X_BYTES;
    cp_async16(sw + lane * 16, wp);
    cp_async16(sw + 512 + lane * 16, wp + 32);
    const u32 ss = sw + R::W_BYTES;
    if constexpr (GROUPED) {
      if (lane < GPT * 4) {  // 4 lanes per group: rows tile·16 .. + 15, 16 B each
        const int gi = lane >> 2, part = lane & 3;
        cp_async16(ss + (gi * 16 + part * 4) * 4, (const u32*)gsc + (u64)(kt * GPT + gi) * N + tile * 16 + part * 4);
      }
    } else if constexpr (MODE == MODE_A16) {
      if (lane < 2) cp_async16(ss + lane * 16, (const u16*)gsc + (u64)kt * N + tile * 16 + lane * 8);
    }
  };
  auto issue_acts = [&](int tile, int i, int st) {  // activations: the preceding kernel's output
    if (tile >= T) return;
    const int kt = warp + i * WARPS;
    const u32 sx0 = ring + st * R::STAGE;
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int hh = 0; hh < R::H; ++hh)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int tok = ct + 4 * h;
          cp_act16(sx0 + ((j * R::H + hh) * 8 + tok) * 128 + ((cc ^ tok) << 4), xsrc[j][h] + kt * 128 * EB + hh * 128, xbytes[j][h]);
        }
  };
  // the issue cursor runs STAGES − 1 items ahead of the compute
  int itile = nk > 0 ? (int)blockIdx.x : T, ii = 0;
  auto advance = [&](int& tile, int& i) {
    if (++i == nk) i = 0, tile += gridDim.x;
  };
  {
    int t = itile, i = ii;
    for (int s = 0; s < STAGES - 1; ++s) issue_weights(t, i, s), advance(t, i);
  }
  pdl_wait();  // activations, sx and the residual come from preceding kernels
  for (int s = 0; s < STAGES - 1; ++s) {
    issue_acts(itile, ii, s);
    cp_async_commit();
    advance(itile, ii);
  }

  int sti = STAGES - 1, stc = 0, buf = 0;
  for (int tile = blockIdx.x; tile < T; tile += gridDim.x) {
    Acc acc[NT][4];
    int P[NT][4];
    zero_acc(acc, P);
    for (int i = 0; i < nk; ++i) {
      issue_weights(itile, ii, sti);  // into the stage item i − 1 used (its reads ended at the last __syncwarp)
      issue_acts(itile, ii, sti);
      cp_async_commit();
      advance(itile, ii);
      sti = sti + 1 == STAGES ? 0 : sti + 1;
      cp_async_wait_group<STAGES - 1>();  // item i's group is complete
      __syncwarp();
      const u32 xk = ring + stc * R::STAGE, sw = xk + R::X_BYTES, ss = sw + R::W_BYTES;
      u32 w0[4], w1[4];
      lds_v4(sw + lane * 16, w0);
      lds_v4(sw + 512 + lane * 16, w1);
#ifdef GV_NOCOMPUTE  // probe only: the loads and the ring without the MMAs (what the stream alone costs)
      if (true) {
        P[0][0] ^= w0[0] ^ w0[1] ^ w0[2] ^ w0[3] ^ w1[0] ^ w1[1] ^ w1[2] ^ w1[3] ^ lds_u32(xk + lane * 4) ^ lds_u32(ss);
        if constexpr (MODE == MODE_FS || MODE == MODE_A16) acc[0][0] += (float)P[0][0];
        else acc[0][0] += P[0][0];
      } else
#endif
      if constexpr (MODE == MODE_A16) {
        const u32 s0 = lds_u16(ss + g * 2), s1 = lds_u16(ss + (g + 8) * 2);
        const u32 sc0 = s0 | (s0 << 16), sc1 = s1 | (s1 << 16);
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {  // k 0-63, 64-127 of the k-tile: words 2hh, 2hh + 1
          u32 x[NT][8];  // [j][2·s + b]: B fragments b0, b1 of k16 step s (4 steps per half)
#pragma unroll
          for (int j = 0; j < NT; ++j)
#pragma unroll
            for (int p = 0; p < 2; ++p) {
              u32 r[4];
              ldsm_x4(xk + ((j * 2 + hh) * 8 + lt) * 128 + (((4 * p + lm) ^ lt) << 4), r);
#pragma unroll
              for (int e = 0; e < 4; ++e) x[j][4 * p + e] = r[e];
            }
#pragma unroll
          for (int wi = 0; wi < 2; ++wi) {  // word 2hh + wi: k16 steps 2wi, 2wi + 1 of this half
            u32 lo[4], hi[4];                 // rows g (n8 row 0) and g + 8 (n8 row 1): half2 pairs
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              lo[e] = dequant_a16(w0[2 * hh + wi], e, sc0);
              hi[e] = dequant_a16(w1[2 * hh + wi], e, sc1);
            }
#pragma unroll
            for (int s = 0; s < 2; ++s) {
              const u32 a[4] = {lo[2 * s], hi[2 * s], lo[2 * s + 1], hi[2 * s + 1]};
              const int ks = 2 * wi + s;
#pragma unroll
              for (int j = 0; j < NT; ++j) mma_f16(acc[j], a, x[j][2 * ks], x[j][2 * ks + 1]);
            }
          }
        }
      } else {
        u32 sc[GPT][2];  // the group scales of rows g, g + 8
#pragma unroll
        for (int gi = 0; gi < GPT; ++gi) {
          sc[gi][0] = GROUPED ? lds_u32(ss + (gi * 16 + g) * 4) : 0u;
          sc[gi][1] = GROUPED ? lds_u32(ss + (gi * 16 + g + 8) * 4) : 0u;
        }
        w4a8_ktile<MODE, G, NT>(acc, P, w0, w1, xk, lt, lm, sc);
      }
      __syncwarp();  // every lane's reads of this stage are done before it is refilled
      stc = stc + 1 == STAGES ? 0 : stc + 1;
    }
    if (tile + (int)gridDim.x >= T) pdl_trigger();  // this block's last tile: the next kernel may launch
    // This thread's outputs v = tid + r·32·WARPS (element je = v / 32 of lane v % 32's fragments):
    // their sx, per-row factor and residual are requested now, so the loads overlap the barrier and
    // the reduction below (live only across them, not across the k-loop).
    constexpr int VPT = NT * 4 / WARPS;
    static_assert(NT * 4 % WARPS == 0, "the block's threads share a tile's NT·4·32 outputs evenly");
    float es[VPT], ec[VPT], er[VPT];
#pragma unroll
    for (int r = 0; r < VPT; ++r) {
      const int v = tid + r * WARPS * 32, je = v >> 5, l = v & 31, e = je & 3, j = je >> 2;
      const int t = j * 8 + 2 * (l & 3) + (e & 1), n = tile * 16 + (l >> 2) + (e < 2 ? 0 : 8);
      const bool ok = t < M;
      es[r] = MODE != MODE_A16 && ok ? sx[t] : 0.0f;
      ec[r] = row_factor<MODE>(chan, n);
      er[r] = residual && ok ? h2f(residual[(u64)t * N + n]) : 0.0f;
    }
    // the warps' sums, added in warp order (int32: exact; fp32: a fixed order) by all threads
    Acc* rb = red + buf * WARPS * NT * 4 * 32;
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) rb[(warp * NT * 4 + j * 4 + e) * 32 + lane] = MODE == MODE_PC ? (Acc)P[j][e] : acc[j][e];
    __syncthreads();
    buf ^= 1;
#pragma unroll
    for (int r = 0; r < VPT; ++r) {
      const int v = tid + r * WARPS * 32, je = v >> 5, l = v & 31, e = je & 3, j = je >> 2;
      Acc s = rb[v];
#pragma unroll
      for (int w = 1; w < WARPS; ++w) {
        if constexpr (MODE == MODE_FS || MODE == MODE_A16) s = fadd_rn(s, rb[w * NT * 4 * 32 + v]);
        else s = (int)((u32)s + (u32)rb[w * NT * 4 * 32 + v]);
      }
      const int t = j * 8 + 2 * (l & 3) + (e & 1), n = tile * 16 + (l >> 2) + (e < 2 ? 0 : 8);
      if (t >= M) continue;
      float y;
      if constexpr (MODE == MODE_A16) y = s;
      else if constexpr (MODE == MODE_FS) y = fmul_rn(s, es[r]);
      else y = fmul_rn(fmul_rn(i2f_rn((int)s), es[r]), ec[r]);  // per-row factor: 2^-k_n (IS), s_n (PC)
      if (residual) y = fadd_rn(y, er[r]);
      out[(u64)t * N + n] = f2h_rn(y);
    }
  }
}

// ---- grouped: the experts of one mixture-of-experts projection in one launch ------------------------
// blockIdx.y = i picks expert e = active[i] (moe_route.cu's moe_align: the experts with rows,
// ascending, then -1; the grid has min(E, rows · top-K) y-indices, so at batch 1 only the two routed
// experts' blocks exist); its rows are [offsets[e], offsets[e + 1]) of A, sx and out (the expert
// order of moe_align), its weights, scales and channel factors experts[e]. No host ever reads the
// counts: the engine captures the launch in the decode graph. active and offsets come from the
// preceding kernels, so the block waits (pdl_wait) before it reads them; a block of more rows than
// its tile holds traps (the planner sizes the tile by the step's rows, which bound any expert's: a
// row's top-K experts are distinct). The expert table's entries: GvExpert (ptx.cuh). The v16
// entry runs an expert of at most 8 rows as one n8 token tile (half the activation stages and
// MMAs: at batch 16, top 2 of 8, an expert gets ~4 rows): same sums, so the same bits.
template <int EB, int CAP> DEVI bool gv_expert_rows(const void*& A, const float*& sx, u16*& out, int& M, int& e,
                                                      const int* __restrict__ active, const int* __restrict__ offsets, int N, int K) {
  int r0 = 0, m = 0;
  if (!grouped_expert_rows<CAP>(active, offsets, e, r0, m)) return false;
  A = (const unsigned char*)A + (u64)r0 * K * EB;
  if (sx) sx += r0;
  out += (u64)r0 * N;
  M = m;
  return true;
}

#define GV_PARAMS                                                                                       \
  const void *__restrict__ A, const float *__restrict__ sx, const U4 *__restrict__ Wp,                   \
      const void *__restrict__ gsc, const void *__restrict__ chan, const u16 *__restrict__ residual,      \
      u16 *__restrict__ out, void *__restrict__ ws, u32 *__restrict__ counters, int M, int N, int K
#define GV_ENTRY(NAME, MODE, G)                                                                         \
  extern "C" __global__ void __launch_bounds__(GV_THREADS, GV_MINB) NAME##_v8(GV_PARAMS) {              \
    gemv_rounds<MODE, G>((const signed char*)A, sx, Wp, gsc, chan, residual, out, M, N, K);             \
  }                                                                                                     \
  extern "C" __global__ void __launch_bounds__(32 * GV_PWARPS, GV_PMINB) NAME##_v16(GV_PARAMS) {        \
    gemv_persist<MODE, G, 2, GV_PWARPS, GV_PSTAGES_V16>(A, sx, Wp, gsc, chan, residual, out, M, N, K);  \
  }
#define GV_ENTRY_A16(NAME)                                                                              \
  extern "C" __global__ void __launch_bounds__(32 * GV_PWARPS, GV_PMINB) NAME##_v8(GV_PARAMS) {         \
    gemv_persist<MODE_A16, 128, 1, GV_PWARPS, GV_PSTAGES_V8>(A, sx, Wp, gsc, chan, residual, out, M, N, K); \
  }                                                                                                     \
  extern "C" __global__ void __launch_bounds__(32 * GV_PWARPS, GV_PMINB) NAME##_v16(GV_PARAMS) {        \
    gemv_persist<MODE_A16, 128, 2, GV_PWARPS, GV_PSTAGES_V16>(A, sx, Wp, gsc, chan, residual, out, M, N, K); \
  }

#define GV_GROUPED_PARAMS                                                                               \
  const void *__restrict__ A, const float *__restrict__ sx, const GvExpert *__restrict__ experts,        \
      const int *__restrict__ active, const int *__restrict__ offsets, u16 *__restrict__ out, int N, int K
#define GV_GROUPED_BODY(EB, CAP, CALL)                                                                  \
  const void* a = A;                                                                                    \
  const float* xs = sx;                                                                                 \
  u16* y = out;                                                                                         \
  int M = 0, e = 0;                                                                                     \
  if (!gv_expert_rows<EB, CAP>(a, xs, y, M, e, active, offsets, N, K)) return;                          \
  const GvExpert ex = experts[e];                                                                       \
  CALL;
// built with the dense entries when W4_SELECT is unset, else only with -DW4_SELECT_GROUPED
#if !defined(W4_SELECT) || defined(W4_SELECT_GROUPED)
#define GV_ENTRY_MOE(NAME, MODE, G)                                                                     \
  extern "C" __global__ void __launch_bounds__(32 * GV_PWARPS, GV_PMINB) NAME##_v8_moe(GV_GROUPED_PARAMS) { \
    GV_GROUPED_BODY(MODE == MODE_A16 ? 2 : 1, 8, (gemv_persist<MODE, G, 1, GV_PWARPS, GV_PSTAGES_V8>(a, xs, (const U4*)ex.wp, ex.gsc, ex.chan, nullptr, y, M, N, K))) \
  }                                                                                                     \
  extern "C" __global__ void __launch_bounds__(32 * GV_PWARPS, GV_PMINB) NAME##_v16_moe(GV_GROUPED_PARAMS) { \
    GV_GROUPED_BODY(MODE == MODE_A16 ? 2 : 1, 16, (M <= 8 ? gemv_persist<MODE, G, 1, GV_PWARPS, GV_PSTAGES_V16>(a, xs, (const U4*)ex.wp, ex.gsc, ex.chan, nullptr, y, M, N, K) \
                                                         : gemv_persist<MODE, G, 2, GV_PWARPS, GV_PSTAGES_V16>(a, xs, (const U4*)ex.wp, ex.gsc, ex.chan, nullptr, y, M, N, K))) \
  }
#else
#define GV_ENTRY_MOE(NAME, MODE, G)
#endif

// -DW4_SELECT plus -DW4_SELECT_<KIND> (IS_G128, IS_G64, IS_G32, FS_G128, FS_G64, FS_G32, PC: w4_gemm.cu's
// defines) compiles only that kind's v8 and v16 kernels; without W4_SELECT every entry point is built.
#if !defined(W4_SELECT) || defined(W4_SELECT_IS_G128)
GV_ENTRY(w4a8_gemm_is_g128, MODE_IS, 128)
GV_ENTRY_MOE(w4a8_gemm_is_g128, MODE_IS, 128)
#endif
#if !defined(W4_SELECT) || defined(W4_SELECT_IS_G64)
GV_ENTRY(w4a8_gemm_is_g64, MODE_IS, 64)
GV_ENTRY_MOE(w4a8_gemm_is_g64, MODE_IS, 64)
#endif
#if !defined(W4_SELECT) || defined(W4_SELECT_IS_G32)
GV_ENTRY(w4a8_gemm_is_g32, MODE_IS, 32)
GV_ENTRY_MOE(w4a8_gemm_is_g32, MODE_IS, 32)
#endif
#if !defined(W4_SELECT) || defined(W4_SELECT_FS_G128)
GV_ENTRY(w4a8_gemm_fs_g128, MODE_FS, 128)
GV_ENTRY_MOE(w4a8_gemm_fs_g128, MODE_FS, 128)
#endif
#if !defined(W4_SELECT) || defined(W4_SELECT_FS_G64)
GV_ENTRY(w4a8_gemm_fs_g64, MODE_FS, 64)
GV_ENTRY_MOE(w4a8_gemm_fs_g64, MODE_FS, 64)
#endif
#if !defined(W4_SELECT) || defined(W4_SELECT_FS_G32)
GV_ENTRY(w4a8_gemm_fs_g32, MODE_FS, 32)
GV_ENTRY_MOE(w4a8_gemm_fs_g32, MODE_FS, 32)
#endif
#if !defined(W4_SELECT) || defined(W4_SELECT_W4A16)
GV_ENTRY_A16(w4a16_gemm_g128)
GV_ENTRY_MOE(w4a16_gemm_g128, MODE_A16, 128)
#endif
#if !defined(W4_SELECT) || defined(W4_SELECT_PC)
GV_ENTRY(w4a8_gemm_pc, MODE_PC, 128)
GV_ENTRY_MOE(w4a8_gemm_pc, MODE_PC, 128)
#endif
