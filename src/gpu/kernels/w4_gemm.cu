// w4_gemm.cu — intscale's W4 GEMM kernels: W4A8 with integer group scales (IS), the same kernel
// with float group scales (FS), per-channel W4A8 (PC), and W4A16 g128 (fp16 activations).
// Compiles under nvcc (sm_80, sm_90a) and NVRTC; shared helpers in ptx.cuh.
//
// ABI (every entry point has the same parameter list; pointers are device pointers):
//   (const void* A, const float* sx, const void* Wp, const void* gscales, const void* chan,
//    const unsigned short* residual, unsigned short* out, void* workspace, unsigned* counters,
//    int M, int N, int K)
//   A         W4A8: int8 [M,K] row-major (per-token quantized); W4A16: fp16 [M,K] row-major
//   sx        W4A8: fp32 [M] per-token scales; W4A16: unused (pass 0)
//   Wp        int4 weights repacked by src/gpu/repack.ts (repackWeights 'w4a8' / 'w4a16'), N*K/2 bytes
//   gscales   IS: int32 [K/G, N] (ŝ, transposed); FS: fp32 [K/G, N]; W4A16: fp16 [K/G, N]; PC: 0
//   chan      IS: int8 [N] shifts k_n; PC: fp32 [N] channel scales; FS, W4A16: unused (0)
//   residual  fp16 [M,N] or 0: out = fp16(y + residual)
//   out       fp16 [M,N]
//   workspace 4-byte [splits, M, N] (any contents) and counters u32 [gridDim.x*gridDim.y]: needed
//             only when gridDim.z > 1 (split-K); counters must be ZERO before the first launch and
//             every launch leaves them zero again. Split partials are summed in split order, so
//             FS and W4A16 results are deterministic too.
//   grid = (ceil(N/BN), ceil(M/BM), splits), block = (THREADS), dynamic smem = SMEM bytes (set
//   CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES to it), splits in [1, K/128].
//   Limits: K % 128 == 0, N % 8 == 0 (tiles guard N % BN), M >= 1 arbitrary; 16-byte aligned pointers.
//
// Entry points: <kind>_<tile> with kind in w4a8_gemm_is_g{32,64,128}, w4a8_gemm_fs_g{32,64,128},
// w4a8_gemm_pc, w4a16_gemm_g128 and tile in
//   s: BM=16,  BN=128, THREADS=128   (small M, memory bound; use split-K)
//   m: BM=64,  BN=128, THREADS=256
//   l: BM=128, BN=128, THREADS=256
//   r: the l tile with the reordered g128 main loop (w4a8_gemm_{is,fs}_g128_r only): one live
//      4-register partial sum instead of a second accumulator set, 128 registers, 2 blocks/SM
// SMEM = STAGES*(BM*128*EB + BN*64) + (STAGES+1)*(128/G)*BN*SB with STAGES = 6 (s) or 4 (m, l, r),
// EB = 1 (W4A8) or 2 (W4A16), SB = 4 (IS, FS), 2 (W4A16), 0 (PC). docs/KERNELS.md has the table.
//
// Semantics (docs/QUANT_SPEC.md): IS acc = Σ_g P_g·ŝ[g,n] in int32 (one IMAD per group),
// y = fp32(fp32(acc)·sx[t])·2^-k_n; FS acc = fma(fp32(P_g), s[g,n], acc), y = acc·sx[t];
// PC y = fp32(fp32(P)·sx[t])·s[n]; W4A16 y = Σ X·fp16((q)·s) with fp32 accumulation.

#include "ptx.cuh"


// ---- PTX helpers of these kernels only (the shared ones are in ptx.cuh) -------------------------
DEVI int min_i(int a, int b) { return a < b ? a : b; }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define W4_BULK 1  // sm_90+: weights by the bulk copy engine (one instruction per stage, mbarrier)
DEVI void bulk_load(u32 dst, const void* src, u32 bytes, u32 bar) {
  mbar_arrive_expect_tx(bar, bytes);
  bulk_copy(dst, src, bytes, bar);
}
#endif
DEVI void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> DEVI void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }
DEVI void bar_sync() { asm volatile("bar.sync 0;\n" ::: "memory"); }

DEVI void lds_v2(u32 addr, int& a, int& b) {
  asm volatile("ld.shared.v2.b32 {%0,%1}, [%2];" : "=r"(a), "=r"(b) : "r"(addr));
}
DEVI void lds_v2(u32 addr, float& a, float& b) {
  asm volatile("ld.shared.v2.f32 {%0,%1}, [%2];" : "=f"(a), "=f"(b) : "r"(addr));
}
DEVI void mma_s8(int (&c)[4], const u32 (&a)[4], u32 b0, u32 b1) {
  asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// C = 0: the first MMA of a group starts the partial sum (RZ operand, no register reset).
DEVI void mma_s8_first(int (&c)[4], const u32 (&a)[4], u32 b0, u32 b1) {
  asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%10,%10,%10};\n"
      : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "r"(0));
}
DEVI void mma_s8_first_c(int (&c)[4], const u32 (&a)[4], u32 b0, u32 b1, int c0) {
  asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%10,%10,%10};\n"
      : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "r"(c0));
}
// 2^-k for k in [0, 30] (normal fp32, so multiplying by it is exact unless the result is subnormal)

// int4 x8 (two's complement) → two int8x4 MMA B registers. Byte j of w holds the b0 value j in
// its low nibble and the b1 value j in its high nibble (see repackW4A8). Sign extension of a
// nibble: (x & 0x0F) | (bit3 ? 0xF0 : 0) = (x & 0x0F) | ((x & 0x08) * 0x1E), carry-free per byte.

// The same B registers times 16 (RO path): byte j = q << 4 as int8, i.e. 16·q exactly, in 3 ALU
// ops. volatile: the unrolled m16 loop must not CSE the unpack and keep all NT·8 unpacked
// registers live (the point of RO is to hold only the 16 packed ones).
DEVI void unpack_s4_x16(u32 w, u32& b0, u32& b1) {
  asm volatile("{ .reg .b32 t; shl.b32 t, %2, 4; and.b32 %0, t, 0xF0F0F0F0; and.b32 %1, %2, 0xF0F0F0F0; }"
               : "=r"(b0), "=r"(b1)
               : "r"(w));
}

// Split-K partial tiles through the workspace (L2; .cg bypasses the non-coherent L1).
DEVI void st_cg2(int* p, int a, int b) { asm volatile("st.global.cg.v2.s32 [%0], {%1,%2};" ::"l"(p), "r"(a), "r"(b) : "memory"); }
DEVI void st_cg2(float* p, float a, float b) { asm volatile("st.global.cg.v2.f32 [%0], {%1,%2};" ::"l"(p), "f"(a), "f"(b) : "memory"); }
DEVI void ld_cg2(const int* p, int& a, int& b) {
  asm volatile("ld.global.cg.v2.s32 {%0,%1}, [%2];" : "=r"(a), "=r"(b) : "l"(p) : "memory");
}
DEVI void ld_cg2(const float* p, float& a, float& b) {
  asm volatile("ld.global.cg.v2.f32 {%0,%1}, [%2];" : "=f"(a), "=f"(b) : "l"(p) : "memory");
}
DEVI int add_acc(int a, int b) { return a + b; }
DEVI float add_acc(float a, float b) { return fadd_rn(a, b); }

// ---- the kernel body --------------------------------------------------------------------------

template <int MODE, int G, int WM, int WN, int MT, int NT, int STAGES>
struct GemmCfg {
  static constexpr bool A16 = MODE == MODE_A16;
  static constexpr bool GROUPED = MODE != MODE_PC;
  static constexpr int EB = A16 ? 2 : 1;              // bytes per activation element
  static constexpr int ROWB = 128 * EB;               // bytes of one A row per 128-wide k-tile
  static constexpr int BM = WM * MT * 16;
  static constexpr int BN = WN * NT * 8;
  static constexpr int THREADS = WM * WN * 32;
  static constexpr int GPT = GROUPED ? 128 / G : 0;   // groups per k-tile
  static constexpr int SB = A16 ? 2 : 4;              // bytes per group scale
  static constexpr int A_BYTES = BM * ROWB;
  static constexpr int W_BYTES = BN * 64;
  static constexpr int S_BYTES = GPT * BN * SB;
  static constexpr int STAGE = A_BYTES + W_BYTES;               // A and W ring: STAGES slots
  static constexpr int SMEM = STAGES * STAGE + (STAGES + 1) * S_BYTES;  // scales: STAGES+1 slots
};

extern __shared__ __attribute__((aligned(128))) unsigned char g_smem[];

template <int MODE, int G, int WM, int WN, int MT, int NT, int STAGES, int RO = 0, int RO_LD = 2>
DEVI void gemm_body(const void* __restrict__ A, const float* __restrict__ sx, const U4* __restrict__ Wp,
                    const void* __restrict__ gsc, const void* __restrict__ chan,
                    const u16* __restrict__ residual, u16* __restrict__ out, void* __restrict__ ws,
                    u32* __restrict__ counters, int M, int N, int K) {
  typedef GemmCfg<MODE, G, WM, WN, MT, NT, STAGES> C;
  constexpr bool A16 = C::A16, GROUPED = C::GROUPED;
  constexpr int BM = C::BM, BN = C::BN, THREADS = C::THREADS, ROWB = C::ROWB, EB = C::EB;
  constexpr int GPT = C::GPT, SB = C::SB, A_BYTES = C::A_BYTES;
  constexpr int STAGE = C::STAGE, S_BYTES = C::S_BYTES;
  static_assert(!GROUPED || G == 32 || G == 64 || G == 128, "group size must be 32, 64 or 128");
  static_assert(!A16 || G == 128, "W4A16 is g128 only");
  static_assert(!RO || ((MODE == MODE_IS || MODE == MODE_FS) && G == 128), "reordered loop: IS/FS g128 only");
  typedef typename AccT<MODE == MODE_FS || MODE == MODE_A16>::type Acc;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / WN, wn = warp % WN;
  const int n0 = blockIdx.x * BN, m0 = blockIdx.y * BM;
  const int KT = K >> 7;
  const int kt0 = (int)(((long long)KT * blockIdx.z) / gridDim.z);
  const int kt1 = (int)(((long long)KT * (blockIdx.z + 1)) / gridDim.z);
  const int nkt = kt1 - kt0;
  const u32 s0 = smem_addr(g_smem);
  // Programmatic dependent launch (sm_90; a no-op otherwise): everything below may read what the
  // preceding kernel wrote; let the next kernel launch and reach its own wait meanwhile.
  pdl_wait();
  pdl_trigger();
#ifdef W4_BULK
  __shared__ __attribute__((aligned(8))) unsigned long long s_bar[STAGES];
  if (tid == 0) {
#pragma unroll
    for (int i = 0; i < STAGES; ++i) mbar_init(smem_addr(&s_bar[i]), 1);
    mbar_fence_init();
    fence_proxy_async();
  }
  bar_sync();
#endif

  // -- producer: one k-tile (128 of K) of A, W and the group scales into stage st, via cp.async
  auto load_stage = [&](int st, int kt) {
    const u32 sb = s0 + st * STAGE;
    constexpr int CPR = ROWB / 16, ACH = BM * CPR;
    if constexpr (RO && THREADS % CPR == 0) {
      // RO: one 64-bit row pointer stepped by THREADS/CPR rows (the generic loop below keeps one
      // per chunk live across the main loop: registers the RO tile does not have)
      constexpr int RSTEP = THREADS / CPR;
      const int r0 = tid / CPR, c = tid % CPR;
      const char* src = (const char*)A + ((u64)(m0 + r0) * K + (u64)kt * 128) * EB + c * 16;
#pragma unroll
      for (int j = 0; j < ACH / THREADS; ++j) {
        const int r = r0 + j * RSTEP;
        if (m0 + r < M) cp_async16(sb + r * ROWB + ((c ^ (r & 7)) << 4), src);
        src += (u64)RSTEP * K * EB;
      }
    } else {
#pragma unroll
      for (int i = tid; i < ACH; i += THREADS) {
        const int r = i / CPR, c = i % CPR, gr = m0 + r;
        if (gr < M)  // rows past M feed only output rows that are never written: no zero fill
          cp_async16(sb + r * ROWB + ((c ^ (r & 7)) << 4),
                     (const char*)A + ((u64)gr * K + (u64)kt * 128) * EB + c * 16);
      }
    }
    // weights: tile-contiguous layout, this block's k-tile is (rows8 x 512) contiguous bytes
    const int rows8 = min_i(BN / 8, (N >> 3) - (n0 >> 3));
    const U4* wt = Wp + ((u64)(n0 >> 3) * KT + (u64)kt * rows8) * 32;
#ifdef W4_BULK
    if (tid == 0) {
      fence_proxy_async();  // earlier generic-proxy reads of this stage are ordered by the barrier
      bulk_load(sb + A_BYTES, wt, rows8 * 512, smem_addr(&s_bar[st]));
    }
#else
    constexpr int WCH = BN * 4;
#pragma unroll
    for (int i = tid; i < WCH; i += THREADS)
      if ((i >> 5) < rows8) cp_async16(sb + A_BYTES + i * 16, wt + i);
#endif
    if constexpr (GROUPED) {
      constexpr int CPRS = BN * SB / 16, EPC = 16 / SB;
#pragma unroll
      for (int i = tid; i < GPT * CPRS; i += THREADS) {
        const int gi = i / CPRS, c = i % CPRS, col = n0 + c * EPC;
        if (col < N)
          cp_async16(s0 + STAGES * STAGE + ((kt - kt0) % (STAGES + 1)) * S_BYTES + i * 16,
                     (const char*)gsc + ((u64)(kt * GPT + gi) * N + col) * SB);
      }
    }
  };

  int P[MT][NT][4];  // (RO: unused, its one live 4-register partial sum is in compute_stage_ro)
   // int32 MMA partial sums of the current group (W4A8)
  Acc acc[MT][NT][4];  // IS: int32 Σ P·ŝ; FS: fp32; W4A16: fp32 MMA accumulators; PC: unused
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        if (!RO) P[mt][nt][e] = 0;
        acc[mt][nt][e] = 0;
      }

  // -- the group epilogue for group gi of the k-tile with ring slot `slot`: acc += P·ŝ (IS: ONE
  //    IMAD per output and group) or acc = fma(fp32(P), s, acc) (FS); then P = 0
  auto apply_group = [&](int slot, int gi) {
    if constexpr ((MODE == MODE_IS || MODE == MODE_FS) && !RO) {
      const unsigned char* sS = g_smem + STAGES * STAGE + slot * S_BYTES;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const Acc* sp = (const Acc*)(sS + (gi * BN + (wn * NT + nt) * 8 + (lane & 3) * 2) * SB);
        const Acc c0 = sp[0], c1 = sp[1];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            if constexpr (MODE == MODE_IS) acc[mt][nt][e] += P[mt][nt][e] * ((e & 1) ? c1 : c0);
            else acc[mt][nt][e] = ffma_rn(i2f_rn(P[mt][nt][e]), (e & 1) ? c1 : c0, acc[mt][nt][e]);
          }
        }
      }
    }
  };

  // -- consumer, reordered for g128 IS/FS (RO): a group is the whole k-tile, so per m16 tile the
  //    A fragments of all 4 k-steps (16 regs) are loaded once, and per n8 tile the group's 4 MMAs
  //    run into ONE 4-register partial sum that is folded into acc right away (IS: 4 IMAD, FS:
  //    I2F+FFMA). B is re-read (one LDS.128) and unpacked as 16·q (3 ALU ops per word) per
  //    (m16, n8) tile, so no B registers stay live across the m16 loop. No second accumulator
  //    set, no deferred epilogue: ~128 registers, 2 blocks/SM.
  // ptxas would otherwise hoist every shared load of the k-tile and interleave all MT·NT chains
  // to hide latency (~220 registers, spills under the 128 cap): a false dependency through a
  // value it cannot prove zero (M >= 1) lets only RO_CHAINS chains run side by side, loads B and
  // the scales of a chain only once the chain RO_CHAINS back is done, and A of an m16 tile once
  // the previous tile's chains are.
  // link[nt] = 0 from the latest chain of n8 tile nt, i.e. the chain (NT + nt - j) % NT is j back
  constexpr int RO_CHAINS = RO > 0 ? RO : 1;  // four-MMA chains in flight per warp (<= NT)
  constexpr int RO_LOAD_AHEAD = RO_CHAINS < RO_LD ? RO_CHAINS : RO_LD;  // B loads wait for the chain this far back
  static_assert(RO_CHAINS <= NT && NT >= 2, "RO chains");
  const int opaque_zero = -(int)(M < 0);
  int link[NT];
#pragma unroll
  for (int i = 0; i < NT; ++i) link[i] = 0;
  auto compute_stage_ro = [&](int it) {
    if constexpr (RO) {
      const int st = it % STAGES;
      const u32 sA = s0 + st * STAGE;
      const u32 sS = s0 + STAGES * STAGE + (it % (STAGES + 1)) * S_BYTES;
      const u32 sW = s0 + st * STAGE + A_BYTES + (wn * NT * 32 + lane) * 16;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        u32 a[4][4];
#pragma unroll
        for (int ks = 0; ks < 4; ++ks) {
          const int r = (wm * MT + mt) * 16 + (lane & 15), c = 2 * ks + (lane >> 4);
          ldsm_x4(sA + r * ROWB + ((c ^ (r & 7)) << 4) + link[NT - 2], a[ks]);  // + 0, after a chain
        }
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          u32 w[4], b[4][2];  // re-read per m16 tile: keeps no B registers live across the mt loop
          lds_v4(sW + nt * 512 + link[(nt + NT - RO_LOAD_AHEAD) % NT], w);  // + 0, RO_LOAD_AHEAD chains back
#pragma unroll
          for (int ks = 0; ks < 4; ++ks) unpack_s4_x16(w[ks], b[ks][0], b[ks][1]);
          int p[4];  // = 16·P (B is 16·q); C = link (0) ties this chain after the one RO_CHAINS back
          mma_s8_first_c(p, a[0], b[0][0], b[0][1], link[(nt + NT - RO_CHAINS) % NT]);
          mma_s8(p, a[1], b[1][0], b[1][1]);
          mma_s8(p, a[2], b[2][0], b[2][1]);
          mma_s8(p, a[3], b[3][0], b[3][1]);
          link[nt] = p[0] & opaque_zero;
          Acc c0, c1;  // group scales, loaded once this chain is done (hoisted: 32 registers)
          lds_v2(sS + ((wn * NT + nt) * 8 + (lane & 3) * 2) * SB + link[nt], c0, c1);
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int pe = p[e] >> 4;  // exact: 16·P is a multiple of 16 and |16·P| < 2^22
            if constexpr (MODE == MODE_IS) acc[mt][nt][e] += pe * ((e & 1) ? c1 : c0);
            else acc[mt][nt][e] = ffma_rn(i2f_rn(pe), (e & 1) ? c1 : c0, acc[mt][nt][e]);
          }
        }
      }
    }
  };

  // -- consumer: MMAs over one stage
  // it = k-tile index within this split; its A/W stage is it % STAGES, its scale slot it % (STAGES+1)
  auto compute_stage = [&](int it) {
    const int st = it % STAGES;
    // the previous k-tile's last group: applied here, after the barrier, so its MMAs drained while
    // the pipeline waited and refilled (its scale slot is not refilled before the next barrier)
    if (it > 0) apply_group((it - 1) % (STAGES + 1), GPT - 1);
    const u32 sA = s0 + st * STAGE;
    const unsigned char* sW = g_smem + st * STAGE + A_BYTES;
    U4 bw[NT];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) bw[nt] = *(const U4*)(sW + ((wn * NT + nt) * 32 + lane) * 16);
    if constexpr (!A16) {
#pragma unroll
      for (int ks = 0; ks < 4; ++ks) {
        u32 a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          const int r = (wm * MT + mt) * 16 + (lane & 15), c = 2 * ks + (lane >> 4);
          ldsm_x4(sA + r * ROWB + ((c ^ (r & 7)) << 4), a[mt]);
        }
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          const u32 w = ks == 0 ? bw[nt].x : ks == 1 ? bw[nt].y : ks == 2 ? bw[nt].z : bw[nt].w;
          u32 b0, b1;
          unpack_s4(w, b0, b1);
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            if (GROUPED && ks % (G / 32) == 0) mma_s8_first(P[mt][nt], a[mt], b0, b1);  // new group
            else mma_s8(P[mt][nt], a[mt], b0, b1);
          }
        }
        if constexpr (GROUPED) {  // a group that ends inside the k-tile (G < 128): apply now
          if ((ks + 1) % (G / 32) == 0 && ks != 3) apply_group(it % (STAGES + 1), (ks * 32) / G);
        }
      }
    } else {
      // W4A16: dequantize w = fp16(q · s) (Marlin style) and run m16n8k16 f16 MMAs, fp32 accumulate
      u32 ss[NT];
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const u32 s = *(const u16*)(g_smem + STAGES * STAGE + (it % (STAGES + 1)) * S_BYTES +
                                    ((wn * NT + nt) * 8 + (lane >> 2)) * 2);
        ss[nt] = s | (s << 16);
      }
#pragma unroll
      for (int ks = 0; ks < 4; ++ks) {
        u32 a[2][MT][4];
#pragma unroll
        for (int j = 0; j < 2; ++j)
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            const int r = (wm * MT + mt) * 16 + (lane & 15), c = 4 * ks + 2 * j + (lane >> 4);
            ldsm_x4(sA + r * ROWB + ((c ^ (r & 7)) << 4), a[j][mt]);
          }
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          const u32 w = ks == 0 ? bw[nt].x : ks == 1 ? bw[nt].y : ks == 2 ? bw[nt].z : bw[nt].w;
          u32 h[4];
#pragma unroll
          for (int j = 0; j < 4; ++j) h[j] = dequant_a16(w, j, ss[nt]);
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma_f16(acc[mt][nt], a[0][mt], h[0], h[1]);
            mma_f16(acc[mt][nt], a[1][mt], h[2], h[3]);
          }
        }
      }
    }
  };

  // -- multistage cp.async pipeline over this split's k-tiles
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < nkt) load_stage(s, kt0 + s);
    cp_async_commit();
  }
  for (int it = 0; it < nkt; ++it) {
    cp_async_wait<STAGES - 2>();
    bar_sync();
    const int nx = it + STAGES - 1;
    if (nx < nkt) load_stage(nx % STAGES, kt0 + nx);
    cp_async_commit();
#ifdef W4_BULK
    mbar_wait(smem_addr(&s_bar[it % STAGES]), (u32)(it / STAGES) & 1u);
#endif
    if constexpr (RO) compute_stage_ro(it);
    else compute_stage(it);
  }
  cp_async_wait<0>();
  if (nkt > 0) apply_group((nkt - 1) % (STAGES + 1), GPT - 1);  // the last k-tile's last group

  // -- epilogue
  // split-K: every split stores its partial tile into its own workspace slice [z][M][N]; the last
  // block of the tile (counter) sums the slices in split order (deterministic, exact for int32)
  Acc* wsp = (Acc*)ws;
  if (gridDim.z > 1) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int r = m0 + (wm * MT + mt) * 16 + (lane >> 2) + 8 * h;
          const int c = n0 + (wn * NT + nt) * 8 + (lane & 3) * 2;
          if (r < M && c < N) {
            Acc* p = wsp + ((u64)blockIdx.z * M + r) * N + c;
            if constexpr (MODE == MODE_PC) st_cg2(p, P[mt][nt][2 * h], P[mt][nt][2 * h + 1]);
            else st_cg2(p, acc[mt][nt][2 * h], acc[mt][nt][2 * h + 1]);
          }
        }
    fence_gpu();
    bar_sync();
    __shared__ u32 s_last;
    const u32 tile = blockIdx.y * gridDim.x + blockIdx.x;
    if (tid == 0) {
      const u32 prev = atom_add_u32(counters + tile, 1u);
      s_last = prev == gridDim.z - 1;
      if (s_last) counters[tile] = 0;  // self-cleaning for the next launch
    }
    bar_sync();
    if (!s_last) return;
    fence_gpu();
  }
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = m0 + (wm * MT + mt) * 16 + (lane >> 2) + 8 * h;
        const int c = n0 + (wn * NT + nt) * 8 + (lane & 3) * 2;
        if (r >= M || c >= N) continue;
        Acc v0, v1;
        if constexpr (MODE == MODE_PC) {
          v0 = P[mt][nt][2 * h];
          v1 = P[mt][nt][2 * h + 1];
        } else {
          v0 = acc[mt][nt][2 * h];
          v1 = acc[mt][nt][2 * h + 1];
        }
        if (gridDim.z > 1) {
          const Acc* p = wsp + (u64)r * N + c;
          ld_cg2(p, v0, v1);
          for (u32 z = 1; z < gridDim.z; ++z) {
            Acc t0, t1;
            ld_cg2(p + (u64)z * M * N, t0, t1);
            v0 = add_acc(v0, t0);
            v1 = add_acc(v1, t1);
          }
        }
        float y0, y1;
        if constexpr (MODE == MODE_IS) {
          const float s = sx[r];
          const signed char* kn = (const signed char*)chan;
          y0 = fmul_rn(fmul_rn(i2f_rn(v0), s), exp2_neg(kn[c]));
          y1 = fmul_rn(fmul_rn(i2f_rn(v1), s), exp2_neg(kn[c + 1]));
        } else if constexpr (MODE == MODE_PC) {
          const float s = sx[r];
          const float* cs = (const float*)chan;
          y0 = fmul_rn(fmul_rn(i2f_rn(v0), s), cs[c]);
          y1 = fmul_rn(fmul_rn(i2f_rn(v1), s), cs[c + 1]);
        } else if constexpr (MODE == MODE_FS) {
          const float s = sx[r];
          y0 = fmul_rn(v0, s);
          y1 = fmul_rn(v1, s);
        } else {
          y0 = v0;
          y1 = v1;
        }
        if (residual) {
          const u32 rr = *(const u32*)(residual + (u64)r * N + c);
          y0 = fadd_rn(y0, h2f((u16)(rr & 0xFFFF)));
          y1 = fadd_rn(y1, h2f((u16)(rr >> 16)));
        }
        *(u32*)(out + (u64)r * N + c) = (u32)f2h_rn(y0) | ((u32)f2h_rn(y1) << 16);
      }
}

// ---- entry points -----------------------------------------------------------------------------
#define W4_PARAMS                                                                                 \
  const void *__restrict__ A, const float *__restrict__ sx, const U4 *__restrict__ Wp,            \
      const void *__restrict__ gsc, const void *__restrict__ chan, const u16 *__restrict__ residual, \
      u16 *__restrict__ out, void *__restrict__ ws, u32 *__restrict__ counters, int M, int N, int K
#define W4_ARGS A, sx, Wp, gsc, chan, residual, out, ws, counters, M, N, K

// tile configs: WM, WN, MT, NT, STAGES
#define TILE_s 1, 4, 1, 4, 6
#define TILE_m 2, 4, 2, 4, 4
#define TILE_l 2, 4, 4, 4, 4
#define THREADS_s 128
#define THREADS_m 256
#define THREADS_l 256

// MINB = minimum resident blocks per SM (__launch_bounds__): 2 caps registers at 128 so two
// 256-thread blocks share an SM; chosen per kernel so that nothing spills (scripts/check-kernels.sh).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
#define W4_PC_L_MINB 1  // sm_80: 128 registers spill, and 2 x 96 KB smem do not fit anyway
#else
#define W4_PC_L_MINB 2
#endif
// r: the l tile with the reordered g128 loop (RO): ~half the registers of IS/FS l, 2 blocks/SM on sm_90
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
#define W4_R_MINB 1  // sm_80: 2 x 99 KB smem do not fit an SM anyway
#else
#define W4_R_MINB 2
#endif
#define TILE_r 2, 4, 4, 4, 4, 3, 2
#define THREADS_r 256
#define W4_ENTRY(NAME, MODE, G, T, MINB)                                                    \
  extern "C" __global__ void __launch_bounds__(THREADS_##T, MINB) NAME##_##T(W4_PARAMS) { \
    gemm_body<MODE, G, TILE_##T>(W4_ARGS);                                               \
  }

// -DW4_SELECT plus -DW4_SELECT_<KIND> (IS_G128, IS_G64, IS_G32, FS_G128, FS_G64, FS_G32, PC, W4A16)
// compiles only those kernels (NVRTC time); without W4_SELECT every entry point is built.
#if !defined(W4_SELECT) || defined(W4_SELECT_IS_G128)
W4_ENTRY(w4a8_gemm_is_g128, MODE_IS, 128, s, 1)
W4_ENTRY(w4a8_gemm_is_g128, MODE_IS, 128, m, 2)
W4_ENTRY(w4a8_gemm_is_g128, MODE_IS, 128, l, 1)
W4_ENTRY(w4a8_gemm_is_g128, MODE_IS, 128, r, W4_R_MINB)
#endif
#if !defined(W4_SELECT) || defined(W4_SELECT_IS_G64)
W4_ENTRY(w4a8_gemm_is_g64, MODE_IS, 64, s, 1)
W4_ENTRY(w4a8_gemm_is_g64, MODE_IS, 64, m, 1)
#endif
#if !defined(W4_SELECT) || defined(W4_SELECT_IS_G32)
W4_ENTRY(w4a8_gemm_is_g32, MODE_IS, 32, s, 1)
W4_ENTRY(w4a8_gemm_is_g32, MODE_IS, 32, m, 1)
#endif
#if !defined(W4_SELECT) || defined(W4_SELECT_FS_G128)
W4_ENTRY(w4a8_gemm_fs_g128, MODE_FS, 128, s, 1)
W4_ENTRY(w4a8_gemm_fs_g128, MODE_FS, 128, m, 2)
W4_ENTRY(w4a8_gemm_fs_g128, MODE_FS, 128, l, 1)
W4_ENTRY(w4a8_gemm_fs_g128, MODE_FS, 128, r, W4_R_MINB)
#endif
#if !defined(W4_SELECT) || defined(W4_SELECT_FS_G64)
W4_ENTRY(w4a8_gemm_fs_g64, MODE_FS, 64, s, 1)
W4_ENTRY(w4a8_gemm_fs_g64, MODE_FS, 64, m, 1)
#endif
#if !defined(W4_SELECT) || defined(W4_SELECT_FS_G32)
W4_ENTRY(w4a8_gemm_fs_g32, MODE_FS, 32, s, 1)
W4_ENTRY(w4a8_gemm_fs_g32, MODE_FS, 32, m, 1)
#endif
#if !defined(W4_SELECT) || defined(W4_SELECT_PC)
W4_ENTRY(w4a8_gemm_pc, MODE_PC, 128, s, 1)
W4_ENTRY(w4a8_gemm_pc, MODE_PC, 128, m, 2)
W4_ENTRY(w4a8_gemm_pc, MODE_PC, 128, l, W4_PC_L_MINB)
#endif
#if !defined(W4_SELECT) || defined(W4_SELECT_W4A16)
W4_ENTRY(w4a16_gemm_g128, MODE_A16, 128, s, 1)
W4_ENTRY(w4a16_gemm_g128, MODE_A16, 128, m, 2)
W4_ENTRY(w4a16_gemm_g128, MODE_A16, 128, l, 1)
#endif
