// w4_gemm_wgmma.cu — the large-M W4 GEMMs on Hopper tensor cores (sm_90a `wgmma`): W4A8 with
// integer group scales (IS g128), float group scales (FS g128) and per channel (PC), one kernel body
// whose only difference between those kinds is the group fold; and W4A16 g128 (fp16 activations,
// Marlin/Machete style: the weights dequantized to fp16 in registers, f16 wgmma, fp32 accumulation).
// nvcc and NVRTC; shared helpers in ptx.cuh. On any other target the entry points compile to a trap
// (CI builds this file for sm_80 too).
//
// ABI: w4_gemm.cu's (docs/KERNELS.md), same repacked weights and scales, plus A's TMA descriptor:
//   (A, sx, Wp, gscales, chan, residual, out, workspace, counters, M, N, K, tmx), tmx a CUtensorMap
//   by value of A as M rows of K elements (int8; W4A16 fp16), box 128 B × BT rows, 128-byte
//   swizzle, zero fill (src/gpu/tensor-map.ts; W4GemmLaunch encodes it per launch). Persistent: grid =
//   (B, S) with S the split-K factor; the B blocks of split z loop over the (N/128)·ceil(M/BT)
//   tiles, each over k-tiles [K/128·z/S, K/128·(z+1)/S). S > 1 needs workspace (S·N·ceil(M/BT)·BT 4-byte
//   values, any contents; a (tile, split) slice in the consumers' register order, see split-K below)
//   and counters (u32 per tile, zero before the first launch, left zero), as
//   w4_gemm.cu's split-K. block = 384, dynamic smem = WStage<BT, A16>::SMEM (below). Token tile BT = 128
//   (entries *_w) or 64 (entries *_w64, for M <= 64: half the MMA work of a 128-token tile).
//   Limits: N % 128 == 0, K % 128 == 0, M >= 1.
//   W4A16 (entries w4a16_gemm_g128_w, _w64): A fp16 [M, K], sx unused, Wp in the 'w4a16' repack
//   layout (src/gpu/repack.ts), gscales fp16 [K/128, N], chan unused; split-K partials fp32.
//
// Design (docs/KERNELS.md, "Tile w"):
// - Transposed product D[n, t] = Σ_k W[n,k]·X[t,k]: the weights are wgmma's A operand, taken from
//   registers, so the int4 → int8 unpack happens in registers (no unpacked copy in smem). The
//   repacked 16-byte chunk of n8 rows 2w, 2w+1 is exactly the A fragment of warp w
//   (a0,a2 | a1,a3 = the mma.sync B fragments of the two rows), so w4_gemm.cu's layout is reused.
//   Activations are the B operand: a 128-token × 128-byte k-tile, 128B-swizzled in smem.
// - Warp specialization: one thread of warpgroup 0 produces (a TMA load of the activation k-tile,
//   zero-filled past M, one bulk copy of the 8 KB weight k-tile and one of the 512 B of group
//   scales, all completing on the stage's `full` mbarrier; the TMA unit writes in the async proxy the
//   wgmmas read, so no proxy fence), warpgroups 1 and 2 consume (64 weight rows × 128 tokens each).
//   Consumers release a stage on its `empty` mbarrier; there is no block-wide barrier in the main
//   loop, so the two consumers drift and one's group fold runs while the other's wgmmas do.
// - Per k-tile (= one g128 group) a consumer issues its 128 tokens as two halves of
//   4 × wgmma.m64n64k32 (the first of each with scale-d = 0) and folds one half while the other
//   runs: IS acc += P·ŝ[n] (one IMAD), FS acc = fma(fp32(P), s[n], acc), PC keeps accumulating in
//   P. In the transposed layout a thread's outputs cover only 2 weight rows, so the fold needs 2
//   scales per thread and group.
// - Persistent blocks loop over tiles in a grouped raster; the producer runs ahead into the next
//   tile while the consumers finish the current one.
// - Epilogue: y in fp32 (QUANT_SPEC order), transposed through smem per warp, 16-byte stores
//   (+ fp16 residual, one rounding).
// - W4A16: the same producer, ring, raster, split-K and epilogue; a k-tile's activations are two
//   128B-swizzled sub-tiles (k 0-63, 64-127) of BT rows. The 'w4a16' repack's 16-byte chunk is the
//   f16 A fragment directly (nibble h of word j: k = 32j + 8h + 2t, its pair in nibble 4 + h), so a
//   thread dequantizes its 8 words into 8 k16 steps: w = fp16(q)·s (exact q, one rounding, as the
//   mma.sync tiles do). No fold: the wgmmas of all k-tiles accumulate into one fp32 tile, so a k-tile
//   is one batch of 8 × m64n{BT}k16 and its stage is released as soon as the next batch is issued.
// Knobs with #ifndef defaults, set only by gpu-dev/experiments/probe.sh: W4W_STAGES, W4W_UNROLL(_A16),
// W4W_GROUP_M, W4W_PRODUCER_REGS + W4W_CONSUMER_REGS; W4W_PROBE_SKIP_X / _SKIP_W (drop the loads:
// the main loop's compute ceiling), W4W_PROBE_SKIP_EPI (no epilogue) and W4W_PROBE_TRACE (clock64
// marks of block (0, 0) in w4w_trace: where a tile's time goes; tile_w/small.cu prints them).

#include "ptx.cuh"

#ifdef W4W_PROBE_TRACE
__device__ long long w4w_trace[16];
__device__ unsigned long long w4w_ctrace[2048 * 4];  // per block (x + gridDim.x·y): globaltimer at W4W_CMARK(0..3)
#define W4W_MARK(i) do { if (blockIdx.x == 0 && blockIdx.y == 0) w4w_trace[i] = clock64(); } while (0)
#define W4W_CMARK(i) do { unsigned long long t_; asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t_)); \
    w4w_ctrace[(blockIdx.x + gridDim.x * blockIdx.y) * 4 + (i)] = t_; } while (0)
#else
#define W4W_MARK(i) do { } while (0)
#define W4W_CMARK(i) do { } while (0)
#endif


// Tile and pipeline (host mirror: W4_TILES.w and w4SmemBytes in w4-gemm-plan.ts)
#define W4W_BN 128        // weight rows per block (2 consumer warpgroups × 64)
#define W4W_BT 128        // tokens per block
#ifndef W4W_STAGES
#define W4W_STAGES 7
#endif
#define W4W_THREADS 384
// Register split after launch (setmaxnreg; ptxas allocates each role within its budget): the block
// gets 168 per thread (65536 / 384, rounded down to 8), so 128·P + 256·C must stay <= 384·168.
#ifndef W4W_PRODUCER_REGS
#define W4W_PRODUCER_REGS 40
#define W4W_CONSUMER_REGS 232
#endif
static_assert(128 * W4W_PRODUCER_REGS + 256 * W4W_CONSUMER_REGS <= 384 * 168,
              "setmaxnreg.inc would wait forever for registers the block does not have");
#ifndef W4W_UNROLL
#define W4W_UNROLL 4      // k-tiles per main-loop body (wgmma batches drain once per body): 4 or 8
#endif
#ifndef W4W_UNROLL_A16
#define W4W_UNROLL_A16 8  // the same for W4A16 (8: 1.3-1.7% faster at M >= 1024 on the H200)
#endif
#ifndef W4W_GROUP_M
#define W4W_GROUP_M 8     // raster: a wave walks 8 token tiles per weight column (L2 reuse of W)
#endif
enum {
  W_BYTES = W4W_BN * 64,                  // packed int4 weight k-tile
  EPI_STRIDE = 20,                        // floats per token row in the epilogue transpose (16 + pad)
  EPI_BYTES = 8 * 64 * EPI_STRIDE * 4,    // 8 consumer warps × 64 tokens
};
// A stage of a BT-token tile (W4W_BT = 128, or 64 for tile w64): the activation k-tile (BT rows of
// 128 B, 128B-swizzled; W4A16: two such sub-tiles), the weight k-tile and the group scales (IS int32
// / FS fp32 / W4A16 fp16), rounded up to 1024 B (swizzled tiles need 1024-B bases); dynamic smem =
// 1024 (alignment) + STAGES stages + the epilogue. W4A16's 128-token stage (41 KB) fits 4 stages.
// (Host mirror: w4SmemBytes in w4-gemm-plan.ts.)
template <int BT, bool A16> struct WStage {
  static constexpr int X_BYTES = BT * 128 * (A16 ? 2 : 1);
  static constexpr int S_BYTES = W4W_BN * (A16 ? 2 : 4);
  static constexpr int BYTES = (X_BYTES + W_BYTES + S_BYTES + 1023) / 1024 * 1024;
  static constexpr int STAGES = A16 && BT == 128 ? 4 : W4W_STAGES;
  static constexpr int SMEM = 1024 + STAGES * BYTES + EPI_BYTES;
};

// The activations' TMA descriptor (a CUtensorMap, encoded by the host: src/gpu/tensor-map.ts), passed
// by value as the last kernel parameter (__grid_constant__: the TMA unit reads it in param space).
struct __align__(64) W4TensorMap { unsigned long long q[16]; };

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define W4W_ENABLED 1
#endif

#ifdef W4W_ENABLED
// ---- PTX helpers of this kernel only (the shared ones are in ptx.cuh) ---------------------------
DEVI void mbar_arrive(u32 bar) {
  asm volatile("{ .reg .b64 st; mbarrier.arrive.shared::cta.b64 st, [%0]; }" ::"r"(bar) : "memory");
}
// expect `bytes` more on mbarrier `bar` in its current phase without arriving
DEVI void mbar_expect_tx(u32 bar, u32 bytes) {
  asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
// the box at element (x, y) of a 2-D tensor map into smem dst (its swizzle applied), completing on `bar`;
// rows past the tensor's end are zero-filled (and still counted in the transaction bytes)
DEVI void tma_load_2d(u32 dst, const W4TensorMap* map, int x, int y, u32 bar) {
  asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];"
               ::"r"(dst), "l"(map), "r"(bar), "r"(x), "r"(y) : "memory");
}
// the box at element (x, y) of a 2-D tensor map from smem src (swizzle applied; rows past the
// tensor's end are not written), in this thread's bulk async-group
DEVI void tma_store_2d(const W4TensorMap* map, u32 src, int x, int y) {
  asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.tile.bulk_group [%0, {%2, %3}], [%1];"
               ::"l"(map), "r"(src), "r"(x), "r"(y) : "memory");
}
DEVI void bulk_commit() { asm volatile("cp.async.bulk.commit_group;" ::: "memory"); }
DEVI void bulk_wait_read_all() { asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory"); }  // smem sources free
DEVI void bulk_wait_all() { asm volatile("cp.async.bulk.wait_group 0;" ::: "memory"); }            // writes done
// four 8×8 b16 matrices from fragments (thread i: row i/4, columns 2(i%4), +1) stored transposed:
// lane l gives the smem address of row l % 8 of matrix l / 8 (of the transposed matrix)
DEVI void stmatrix_x4_trans(u32 addr, const u32 (&r)[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1, %2, %3, %4};"
               ::"r"(addr), "r"(r[0]), "r"(r[1]), "r"(r[2]), "r"(r[3]) : "memory");
}
DEVI void tma_prefetch_map(const W4TensorMap* map) { asm volatile("prefetch.tensormap [%0];" ::"l"(map) : "memory"); }
template <int R> DEVI void setmaxnreg_inc() { asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(R)); }
template <int R> DEVI void setmaxnreg_dec() { asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(R)); }
DEVI void lds_v4f(u32 addr, float* r) {
  asm volatile("ld.shared.v4.f32 {%0,%1,%2,%3}, [%4];" : "=f"(r[0]), "=f"(r[1]), "=f"(r[2]), "=f"(r[3]) : "r"(addr));
}
DEVI void consumer_sync() { asm volatile("bar.sync 1, 256;" ::: "memory"); }  // the 2 consumer warpgroups
DEVI void warpgroup_sync(int cw) {  // one consumer warpgroup (barriers 2, 3; immediates keep ptxas's count at 4)
  if (cw == 0) asm volatile("bar.sync 2, 128;" ::: "memory");
  else asm volatile("bar.sync 3, 128;" ::: "memory");
}
// wgmma m64n64k32 s8·s8 → s32: A (the int4 → int8 weights) from 4 registers, B (64 tokens of
// activations) by smem descriptor; scale_d = 0 starts from zero. (Operand list generated once.)
DEVI void wgmma_rs_m64n64k32(int (&d)[32], const u32 (&a)[4], u64 desc_b, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k32.s32.s8.s8 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p;\n}\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]),
        "+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]),
        "+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]),
        "+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d));
}

// wgmma m64n64k16 f16·f16 → f32: A (the dequantized W4A16 weights) from 4 registers, B (64 tokens
// of fp16 activations, K-major) by smem descriptor; scale_d = 0 starts from zero.
DEVI void wgmma_rs_m64n64k16_f16(float (&d)[32], const u32 (&a)[4], u64 desc_b, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d));
}
// wgmma m64n128k16 f16·f16 → f32: A (the dequantized W4A16 weights) from 4 registers, B (128 tokens
// of fp16 activations, K-major) by smem descriptor; scale_d = 0 starts from zero.
DEVI void wgmma_rs_m64n128k16_f16(float (&d)[64], const u32 (&a)[4], u64 desc_b, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d));
}
DEVI u32 lds_u16(u32 addr) {
  unsigned short v;
  asm volatile("ld.shared.u16 %0, [%1];" : "=h"(v) : "r"(addr));
  return v;
}

template <int V> struct IC { static constexpr int value = V; };  // compile-time int for generic lambdas

// Tile id → (weight rows n0, tokens t0) in a grouped raster: consecutive ids walk up to
// W4W_GROUP_M token tiles down one weight column before moving on, so the ~132 tiles in flight
// read each weight k-tile from HBM once for W4W_GROUP_M token tiles (the rest hit L2).
template <int BT>
DEVI void tile_coords(int tile, int nN, int nT, int& n0, int& t0) {
  const int span = W4W_GROUP_M * nN, first = (tile / span) * W4W_GROUP_M;
  const int rows = nT - first < W4W_GROUP_M ? nT - first : W4W_GROUP_M, r = tile % span;
  t0 = (first + r % rows) * BT;
  n0 = (r / rows) * W4W_BN;
}

extern __shared__ __attribute__((aligned(16))) unsigned char w4w_smem[];  // stage bases aligned by hand

template <int MODE, int BT>
DEVI void w4w_body(const signed char* __restrict__ X, const float* __restrict__ sx, const unsigned char* __restrict__ Wp,
                   const void* __restrict__ gsc, const void* __restrict__ chan, const u16* __restrict__ residual,
                   u16* __restrict__ out, void* __restrict__ ws, u32* __restrict__ counters, int M, int N, int K,
                   const W4TensorMap* tmx, const W4TensorMap* tmo) {
  constexpr bool A16 = MODE == MODE_A16;
  typedef typename AccT<MODE == MODE_FS || A16>::type Acc;
  constexpr bool GROUPED = MODE != MODE_PC;            // group scales in every stage
  constexpr bool FOLD = GROUPED && !A16;               // a group fold per k-tile (IS, FS)
  static_assert(BT == 128 || BT == 64, "token tile: 128 (two n64 halves per k-tile) or 64 (one)");
  typedef WStage<BT, A16> Stage;
  constexpr int X_BYTES = Stage::X_BYTES, S_BYTES = Stage::S_BYTES, STAGE_BYTES = Stage::BYTES;
  constexpr int STAGES = Stage::STAGES;
  constexpr int EB = A16 ? 2 : 1;  // bytes per activation element
  constexpr int KS = A16 ? 8 : 4;  // MMA k-steps per k-tile: k16 (f16) or k32 (s8)
  constexpr int NV = BT / 2;  // accumulators per thread: 64 (BT = 128) or 32
  __shared__ __attribute__((aligned(8))) u64 s_full[STAGES], s_empty[STAGES];
  __shared__ u32 s_last;  // split-K: this block finished the tile last
  const int tid = threadIdx.x, wg = tid >> 7, lane = tid & 31;
  const int nN = N / W4W_BN, nT = (M + BT - 1) / BT, tiles = nN * nT;  // persistent: tile += gridDim.x
  // split-K: block row blockIdx.y of gridDim.y takes k-tiles [ktBegin, ktBegin + KT) of every tile
  const int KTall = K >> 7;
  const int ktBegin = (int)((long long)KTall * (int)blockIdx.y / (int)gridDim.y);
  const int KT = (int)((long long)KTall * ((int)blockIdx.y + 1) / (int)gridDim.y) - ktBegin;
  const u32 base = (smem_addr(w4w_smem) + 1023) & ~1023u;
  if (tid == 0) { W4W_MARK(0); W4W_CMARK(0); }
  if (tid == 0) {
    for (int s = 0; s < STAGES; ++s) {
      mbar_init(smem_addr(&s_full[s]), 1);    // the producer thread's arrive (with the activation bytes)
      mbar_init(smem_addr(&s_empty[s]), 256);     // every consumer thread
    }
    mbar_fence_init();
  }
  __syncthreads();

  if (wg == 0) {
    // ---------------- producer warpgroup ----------------
    setmaxnreg_dec<W4W_PRODUCER_REGS>();
    // Programmatic dependent launch: the weights and group scales of the first tile's first stages
    // do not depend on the preceding kernel, so thread 0 requests them before pdl_wait; the
    // activations (and, in the consumers' epilogue, sx and the residual) come after it.
    // (thread 0) the bulk copies of weight k-tile kt and its group scales into stage st, completing on `full`
    // (they only add their bytes to the stage's expected count: its one arrive comes with the activations)
    auto issue_weights = [&](u32 st, u32 full, u64 wtile, int kt, int n0) {
#ifndef W4W_PROBE_SKIP_W
      const u32 bytes = W_BYTES + (GROUPED ? S_BYTES : 0);
#else
      const u32 bytes = GROUPED ? S_BYTES : 0;
#endif
      mbar_expect_tx(full, bytes);
#ifndef W4W_PROBE_SKIP_W
      bulk_copy(st + X_BYTES, Wp + wtile + (u64)kt * W_BYTES, W_BYTES, full);
#endif
      if (GROUPED) bulk_copy(st + X_BYTES + W_BYTES, (const char*)gsc + ((u64)kt * N + n0) * (S_BYTES / W4W_BN), S_BYTES, full);  // SB bytes a scale
    };
    int pre = 0;  // stages whose weight copies are already issued (thread 0 only)
    if (tid == 0) tma_prefetch_map(tmx);
    if (tid == 0 && (int)blockIdx.x < tiles) {
      int n0, t0;
      tile_coords<BT>(blockIdx.x, nN, nT, n0, t0);
      const u64 wtile = (u64)(n0 >> 3) * KTall * 512;
      pre = KT < STAGES ? KT : STAGES;
      for (int j = 0; j < pre; ++j) {
        const u32 st = base + j * STAGE_BYTES, full = smem_addr(&s_full[j]);
        const int kt = ktBegin + j;
        issue_weights(st, full, wtile, kt, n0);
      }
    }
    if (tid == 0) W4W_MARK(1);
    pdl_wait();
    pdl_trigger();
    if (tid != 0) return;  // thread 0 produces alone (the other 127 only gave up their registers)
    int it = 0;  // k-tiles produced so far (all tiles): ring slot it % STAGES, its use count it / STAGES
    for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    int n0, t0;
    tile_coords<BT>(tile, nN, nT, n0, t0);
    const u64 wtile = (u64)(n0 >> 3) * KTall * 512;          // this column block's first weight k-tile
    for (int kt = ktBegin; kt < ktBegin + KT; ++kt, ++it) {
      const int s = it % STAGES;
      const u32 st = base + s * STAGE_BYTES;
      const u32 full = smem_addr(&s_full[s]);
      if (it >= STAGES) mbar_wait(smem_addr(&s_empty[s]), (u32)((it / STAGES) - 1) & 1u);
      if (it >= pre) {
        issue_weights(st, full, wtile, kt, n0);
      }
      // one arrive per stage, with the activation bytes: EB boxes of 128 B × BT tokens (W4A16: k 0-63
      // and 64-127 of the k-tile), 128B-swizzled by the TMA unit exactly as the consumers read them
#ifndef W4W_PROBE_SKIP_X
      mbar_arrive_expect_tx(full, X_BYTES);
#pragma unroll
      for (int h = 0; h < EB; ++h) tma_load_2d(st + h * BT * 128, tmx, kt * 128 + 64 * h, t0, full);
#else
      mbar_arrive_expect_tx(full, 0);
#endif
    }
    }
    W4W_MARK(2);
    return;
  }

  // ---------------- consumer warpgroups 1, 2 ----------------
  setmaxnreg_inc<W4W_CONSUMER_REGS>();
  pdl_wait();  // (returns at once after the producer's: the epilogue reads sx and the residual)
  pdl_trigger();
  if (tid == 128) W4W_MARK(3);
  const int cw = wg - 1;                  // consumer index: weight rows 64·cw .. 64·cw + 63 of the tile
  const int warp = (tid >> 5) & 3;        // warp within the warpgroup: rows 16·warp ..
  const int rowA = 64 * cw + 16 * warp + (lane >> 2);  // this thread's rows rowA and rowA + 8 (tile-local)
  // weight fragments: n8 rows 2·(4·cw + warp) and +1 of the tile, this lane's 16-byte chunk
  const u32 wOff = X_BYTES + ((2 * (4 * cw + warp)) * 32 + lane) * 16;
  // The k-tile's 128 tokens run as two n64 halves, A then B, with partial sums PA and PB. While
  // half B of k-tile kt runs, half A is folded; while half A of kt+1 runs, half B of kt is folded:
  // a wgmma batch is in flight during every fold but one per W4W_UNROLL k-tiles. ptxas tracks
  // wgmma completion only in straight-line code (an in-flight batch across the loop back-edge or a
  // branch serializes every wgmma: C7514), so the loop body is W4W_UNROLL k-tiles and drains at its
  // end. Two A-fragment sets (k-tile parity): half B of kt still reads its set while kt+1 is
  // unpacked. PC: no fold, PA and PB just accumulate.
  // BT = 64 (tile w64, M <= 64): one n64 batch per k-tile, into PA for even and PB for odd k-tiles
  // of the body, so k-tile kt-1 is folded while kt runs (step64). PC: PA + PB at the end.
  int PA[32], PB[32];
  Acc acc[NV];  // IS/FS: Σ over groups; acc[i] (i < 32) belongs to PA[i], acc[32 + i] to PB[i] (BT = 128)
  u32 a[2][KS][4];
  Acc sc0, sc1;  // the latest k-tile's group scales of rows rowA, rowA + 8
  // The ring position of the next k-tile to arrive, continued across tiles: its slot, the slot's
  // base address and the parity of its use. Stepped by one per k-tile (no division by STAGES).
  int slot = 0;
  u32 slotBase = base, slotPhase = 0;
  constexpr int SB = S_BYTES / W4W_BN;  // bytes per group scale
  const u32 scOff = X_BYTES + W_BYTES + rowA * SB;  // row rowA's scale in a stage; rowA + 8's at + 8·SB
  auto fold = [&](const int (&Ph)[32], int accBase, Acc s0, Acc s1) {
    if constexpr (FOLD) {
#pragma unroll
      for (int i = 0; i < 32; ++i) {
        const Acc sc = (i & 2) ? s1 : s0;  // d[4j + 0,1]: row rowA; d[4j + 2,3]: row rowA + 8
        if constexpr (MODE == MODE_IS)
          acc[accBase + i] = (int)((u32)acc[accBase + i] + (u32)Ph[i] * (u32)sc);  // wraps: never (QUANT_SPEC)
        else
          acc[accBase + i] = ffma_rn(i2f_rn(Ph[i]), sc, acc[accBase + i]);
      }
    }
  };
#ifdef W4W_PROBE_TRACE
  int traceArrivals = 0;
#endif
  auto release = [&](int s) { mbar_arrive(smem_addr(&s_empty[s])); };
  auto previous = [](int s) { return s == 0 ? STAGES - 1 : s - 1; };  // the slot of the k-tile before
  // Wait for the next k-tile's stage and unpack its weights into A-fragment set PAR (W4A16:
  // dequantize with the stage's fp16 group scales of rows rowA, rowA + 8); returns the stage base
  // and its slot (for release), and steps the ring.
  auto arrive = [&](auto par_c, int& s) -> u32 {
    constexpr int PAR = decltype(par_c)::value;
    const u32 st = slotBase;
    s = slot;
    mbar_wait(smem_addr(&s_full[s]), slotPhase);
    if (++slot == STAGES) {
      slot = 0;
      slotBase = base;
      slotPhase ^= 1u;
    } else {
      slotBase += STAGE_BYTES;
    }
    // (no proxy fence: the TMA unit wrote the tile in the async proxy, which the wgmmas read)
#ifdef W4W_PROBE_TRACE
    if (tid == 128 && traceArrivals < 2) W4W_MARK(5 + traceArrivals++);  // the first two k-tiles arrived (marks 5, 6)
#endif
    u32 w0[4], w1[4];
    lds_v4(st + wOff, w0);
    lds_v4(st + wOff + 512, w1);
    if constexpr (A16) {
      const u32 hA = lds_u16(st + scOff), hB = lds_u16(st + scOff + 8 * SB);
      const u32 sA = hA | (hA << 16), sB = hB | (hB << 16);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {  // k16 step 2j + e: nibbles 2e (k 2t, 2t+1) and 2e + 1 (k 8 + 2t, ..)
          a[PAR][2 * j + e][0] = dequant_a16(w0[j], 2 * e, sA);
          a[PAR][2 * j + e][2] = dequant_a16(w0[j], 2 * e + 1, sA);
          a[PAR][2 * j + e][1] = dequant_a16(w1[j], 2 * e, sB);
          a[PAR][2 * j + e][3] = dequant_a16(w1[j], 2 * e + 1, sB);
        }
      }
    } else {
#pragma unroll
      for (int ks = 0; ks < 4; ++ks) {
        unpack_s4(w0[ks], a[PAR][ks][0], a[PAR][ks][2]);
        unpack_s4(w1[ks], a[PAR][ks][1], a[PAR][ks][3]);
      }
    }
    return st;
  };
  // One k-tile. PAR: A-fragment set; FIRST: the previous k-tile was drained (nothing to fold first);
  // DRAIN: wait for everything and fold half B before returning.
  auto step = [&](int kt, auto par_c, auto first_c, auto drain_c) {
    constexpr int PAR = decltype(par_c)::value;
    constexpr bool FIRST = decltype(first_c)::value, DRAIN = decltype(drain_c)::value;
    int s;
    const u32 st = arrive(par_c, s);
    const u64 d = desc_sw128(st);  // + (byte offset >> 4): the descriptor of a sub-tile of the stage
    const int keep = FOLD ? 0 : kt > 0;  // scale-d of the k-tile's first wgmma (PC: accumulate)
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < 4; ++ks) wgmma_rs_m64n64k32(PA, a[PAR][ks], d + 2 * ks, ks ? 1 : keep);
    wgmma_commit();
    if constexpr (!FIRST) {
      wgmma_wait<1>();  // half B of kt-1 is done: fold it while half A of kt runs
      release(previous(s));
      fold(PB, 32, sc0, sc1);  // (still k-tile kt-1's scales)
    }
    if constexpr (GROUPED) {
      const u32 b0 = lds_u32(st + scOff), b1 = lds_u32(st + scOff + 8 * SB);  // rows rowA, rowA + 8
      sc0 = MODE == MODE_FS ? (Acc)bits_to_float(b0) : (Acc)(int)b0;
      sc1 = MODE == MODE_FS ? (Acc)bits_to_float(b1) : (Acc)(int)b1;
    }
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < 4; ++ks)
      wgmma_rs_m64n64k32(PB, a[PAR][ks], d + (64 * 128 >> 4) + 2 * ks, ks ? 1 : keep);
    wgmma_commit();
    wgmma_wait<1>();  // half A of kt is done: fold it while half B of kt runs
    fold(PA, 0, sc0, sc1);
    if constexpr (DRAIN) {
      wgmma_wait<0>();
      release(s);
      fold(PB, 32, sc0, sc1);
    }
  };
  auto step64 = [&](int kt, auto par_c, auto first_c, auto drain_c) {
    constexpr int PAR = decltype(par_c)::value;
    constexpr bool FIRST = decltype(first_c)::value, DRAIN = decltype(drain_c)::value;
    int (&P)[32] = *(PAR ? &PB : &PA);      // this k-tile's partial sums
    int (&Pprev)[32] = *(PAR ? &PA : &PB);  // k-tile kt-1's
    int s;
    const u32 st = arrive(par_c, s);
    const u64 d = desc_sw128(st);
    // scale-d of the k-tile's first wgmma: 0 (grouped: a fresh partial sum); PC accumulates once
    // its set holds a k-tile (PA from kt = 1 on, PB from kt = 2 on; the drained tail uses PA only)
    const int keep = FOLD ? 0 : PAR ? kt > 1 : kt > 0;
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < 4; ++ks) wgmma_rs_m64n64k32(P, a[PAR][ks], d + 2 * ks, ks ? 1 : keep);
    wgmma_commit();
    if constexpr (!FIRST) {
      wgmma_wait<1>();  // k-tile kt-1 is done: fold it while kt runs
      release(previous(s));
      fold(Pprev, 0, sc0, sc1);  // (still k-tile kt-1's scales)
    }
    if constexpr (GROUPED) {
      const u32 b0 = lds_u32(st + scOff), b1 = lds_u32(st + scOff + 8 * SB);
      sc0 = MODE == MODE_FS ? (Acc)bits_to_float(b0) : (Acc)(int)b0;
      sc1 = MODE == MODE_FS ? (Acc)bits_to_float(b1) : (Acc)(int)b1;
    }
    if constexpr (DRAIN) {
      wgmma_wait<0>();
      release(s);
      fold(P, 0, sc0, sc1);
    }
  };
  // W4A16: one batch of KS × m64n{BT}k16 per k-tile into acc (fp32, the whole K); k-tile kt-1's
  // stage is released once kt's batch is issued and kt-1's has completed.
  auto stepA16 = [&](int kt, auto par_c, auto first_c, auto drain_c) {
    constexpr int PAR = decltype(par_c)::value;
    constexpr bool FIRST = decltype(first_c)::value, DRAIN = decltype(drain_c)::value;
    int s;
    const u32 st = arrive(par_c, s);
    const u64 d = desc_sw128(st);
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < KS; ++ks) {
      const u64 desc = d + (((ks >> 2) * BT * 128 + (ks & 3) * 32) >> 4);  // sub-tile ks / 4, 16 k at (ks % 4)·32 B
      if constexpr (BT == 128) wgmma_rs_m64n128k16_f16(*(float(*)[64])acc, a[PAR][ks], desc, ks ? 1 : kt > 0);
      else wgmma_rs_m64n64k16_f16(*(float(*)[32])acc, a[PAR][ks], desc, ks ? 1 : kt > 0);
    }
    wgmma_commit();
    if constexpr (!FIRST) {
      wgmma_wait<1>();  // k-tile kt-1's batch is done: its stage (and A-fragment set) are free
      release(previous(s));
    }
    if constexpr (DRAIN) {
      wgmma_wait<0>();
      release(s);
    }
  };
  auto run = [&](int kt, auto par_c, auto first_c, auto drain_c) {
    if constexpr (A16) stepA16(kt, par_c, first_c, drain_c);
    else if constexpr (BT == 64) step64(kt, par_c, first_c, drain_c);
    else step(kt, par_c, first_c, drain_c);
  };
  const u32 epi = base + STAGES * STAGE_BYTES + (4 * cw + warp) * (64 * EPI_STRIDE * 4);
  for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
  if (tid == 128 && tile == (int)(blockIdx.x + gridDim.x)) W4W_MARK(8);  // the second tile starts
#pragma unroll
  for (int i = 0; i < 32; ++i) PA[i] = PB[i] = 0;
#pragma unroll
  for (int i = 0; i < NV; ++i) acc[i] = 0;
  sc0 = sc1 = 0;
  int kt = 0;
  constexpr int UNROLL = A16 ? W4W_UNROLL_A16 : W4W_UNROLL;
  static_assert(UNROLL == 4 || UNROLL == 8, "the body below is written out for 4 or 8 k-tiles");
  for (; kt + UNROLL <= KT; kt += UNROLL) {
    run(kt, IC<0>(), IC<1>(), IC<0>());
    run(kt + 1, IC<1>(), IC<0>(), IC<0>());
    run(kt + 2, IC<0>(), IC<0>(), IC<0>());
    run(kt + 3, IC<1>(), IC<0>(), IC<UNROLL == 4>());
    if constexpr (UNROLL == 8) {
      run(kt + 4, IC<0>(), IC<0>(), IC<0>());
      run(kt + 5, IC<1>(), IC<0>(), IC<0>());
      run(kt + 6, IC<0>(), IC<0>(), IC<0>());
      run(kt + 7, IC<1>(), IC<0>(), IC<1>());
    }
  }
  for (; kt < KT; ++kt) run(kt, IC<0>(), IC<1>(), IC<1>());  // K/128 % UNROLL tail: drained each
  if (tid == 128 && tile == (int)blockIdx.x) { W4W_MARK(7); W4W_CMARK(1); }
  if constexpr (MODE == MODE_PC && BT == 64) {
#pragma unroll
    for (int i = 0; i < 32; ++i) PA[i] = (int)((u32)PA[i] + (u32)PB[i]);  // even + odd k-tiles (exact)
  }

  int n0, t0;  // (computed here, not kept live across the main loop: registers)
  tile_coords<BT>(tile, nN, nT, n0, t0);
  const int q = lane & 3, rl = lane >> 2;

  // ---------------- split-K: partial tiles through the workspace ----------------
  // Every split stores its partial sums (int32 IS/PC, fp32 FS / W4A16) in the tile's slice of its
  // split; the last split to finish the tile (per-tile counter) adds the slices in split order
  // (int32: exact; fp32: deterministic) and runs the epilogue. A slice is in the consumers'
  // register order, not [M][N]: consumer thread c (0..255) keeps values 4j .. 4j + 3 at 16-byte
  // chunk j·256 + c of its (tile, split) slice, so every store and load is a coalesced 16-byte
  // access of a warp (512 B an instruction) and the thread that adds a position is the one that
  // stored it; rows past M are stored and added like any other (never written out).
  if (gridDim.y > 1) {
    const int S = gridDim.y, split = blockIdx.y;  // (read here, not kept live across the main loop)
    // value i: token t0 + 8·(i/4) + 2q + (i%2), row rowA + 8·((i/2)%2); PC keeps it in PA/PB
    auto get = [&](int i) -> Acc {
      if constexpr (MODE == MODE_PC) return i < 32 ? PA[i] : PB[i - 32];
      else return acc[i];
    };
    auto set = [&](int i, Acc v) {
      if constexpr (MODE == MODE_PC) (i < 32 ? PA[i] : PB[i - 32]) = v;
      else acc[i] = v;
    };
    constexpr int SLICE16 = NV / 4 * 256;  // 16-byte chunks of one (tile, split) slice
    U4* const mine = (U4*)ws + (u64)tile * S * SLICE16 + (tid - 128);  // + z·SLICE16 + j·256
#pragma unroll
    for (int j = 0; j < NV / 4; ++j)
      st_cg_v4(mine + split * SLICE16 + j * 256, U4{acc_bits(get(4 * j)), acc_bits(get(4 * j + 1)), acc_bits(get(4 * j + 2)), acc_bits(get(4 * j + 3))});
    // Release / acquire through one thread's acq_rel atomic (CUTLASS's split-K semaphore): the barrier
    // orders every consumer's stores before it, and its acquire before every consumer's loads; no
    // per-thread fence (each waited for its own stores: ~2 µs a tile at S = 4 on the H200).
    consumer_sync();
    if (tid == 128) {
      const u32 prev = atom_add_u32(counters + tile, 1u);
      s_last = prev == (u32)S - 1;
      if (s_last) counters[tile] = 0;  // self-cleaning for the next launch
    }
    consumer_sync();
    if (tid == 128 && tile == (int)blockIdx.x) W4W_CMARK(2);
    if (!s_last) continue;
    // Sum the slices in split order (int32: exact; fp32: this fixed order), the block's own from
    // registers. reduce_fixed (S known at compile time): a 16-value chunk's loads of all S - 1
    // other slices issue back to back before any add, one L2 round trip per chunk (w64: 2 chunks;
    // w: 4, so only at S = 4 is that fewer than the loop's 2·(S - 1)). Otherwise (and for forced
    // S > 4) 32 values of one slice at a time.
    auto add = [](Acc a, Acc b) -> Acc { return MODE == MODE_FS || A16 ? (Acc)fadd_rn(a, b) : (Acc)(int)((u32)a + (u32)b); };
    auto load4 = [&](int z, int j) { return ld_cg_v4(mine + z * SLICE16 + j * 256); };  // slice z: values 4j .. 4j + 3
    auto reduce_fixed = [&](auto s_c) {
      constexpr int SS = decltype(s_c)::value, CH = 16;  // CH values a chunk: (SS - 1)·CH registers of loads
#pragma unroll
      for (int c = 0; c < NV / CH; ++c) {
        Acc w[SS - 1][CH];  // the other slices, by rank: slice z is w[z] below split, w[z - 1] above
#pragma unroll
        for (int r = 0; r < SS - 1; ++r) {
          const int z = r < split ? r : r + 1;
#pragma unroll
          for (int j = 0; j < CH / 4; ++j) {
            const U4 v = load4(z, CH / 4 * c + j);
            bits_to_acc(v.x, w[r][4 * j]), bits_to_acc(v.y, w[r][4 * j + 1]), bits_to_acc(v.z, w[r][4 * j + 2]), bits_to_acc(v.w, w[r][4 * j + 3]);
          }
        }
#pragma unroll
        for (int e = 0; e < CH; ++e) {
          const int i = CH * c + e;
          const Acc own = get(i);
          Acc sum = split == 0 ? own : w[0][e];
#pragma unroll
          for (int z = 1; z < SS; ++z) sum = add(sum, z == split ? own : z < split ? w[z < SS - 1 ? z : SS - 2][e] : w[z - 1][e]);
          set(i, sum);
        }
      }
    };
    if (BT == 64 && S == 2) reduce_fixed(IC<2>());
    else if (BT == 64 && S == 3) reduce_fixed(IC<3>());
    else if (S == 4) reduce_fixed(IC<4>());
    else {
      constexpr int CH = 32;
#pragma unroll
      for (int c = 0; c < NV / CH; ++c) {
        Acc sum[CH];
        for (int z = 0; z < S; ++z) {
          Acc w[CH];
          if (z == split) {
#pragma unroll
            for (int e = 0; e < CH; ++e) w[e] = get(CH * c + e);
          } else {
#pragma unroll
            for (int j = 0; j < CH / 4; ++j) {
              const U4 v = load4(z, CH / 4 * c + j);
              bits_to_acc(v.x, w[4 * j]), bits_to_acc(v.y, w[4 * j + 1]), bits_to_acc(v.z, w[4 * j + 2]), bits_to_acc(v.w, w[4 * j + 3]);
            }
          }
#pragma unroll
          for (int e = 0; e < CH; ++e) sum[e] = z == 0 ? w[e] : add(sum[e], w[e]);
        }
#pragma unroll
        for (int e = 0; e < CH; ++e) set(CH * c + e, sum[e]);
      }
    }
  }

#ifdef W4W_PROBE_SKIP_EPI
  if (M < 0) {  // never: keeps the accumulators (and the folds) alive without an epilogue
#pragma unroll
    for (int i = 0; i < NV; ++i) ((Acc*)out)[i] = MODE == MODE_PC ? (Acc)(i < 32 ? PA[i] : PB[i - 32]) : acc[i];
  }
  continue;
#endif
  // ---------------- epilogue ----------------
  // y[t, n] in fp32: IS fp32(fp32(acc)·sx[t])·2^-k_n; FS acc·sx[t]; PC fp32(fp32(P)·sx[t])·s_n;
  // W4A16 acc.
  const int nA = n0 + rowA, nB = nA + 8;
  const float cA = row_factor<MODE>(chan, nA), cB = row_factor<MODE>(chan, nB);  // 2^-k_n (IS), s_n (PC), 1
  // y of accumulator i (token 8·(i/4) + 2q + i%2, row rowA + 8·((i/2)%2)) with its token's scale s
  auto y_of = [&](int i, float s) -> float {
    const float c = (i & 2) ? cB : cA;
    if constexpr (MODE == MODE_IS) return fmul_rn(fmul_rn(i2f_rn(acc[i]), s), c);
    else if constexpr (MODE == MODE_PC) return fmul_rn(fmul_rn(i2f_rn(i < 32 ? PA[i] : PB[i - 32]), s), c);
    else if constexpr (A16) return acc[i];
    else return fmul_rn(acc[i], s);
  };
  if (residual == nullptr) {
    // Without a residual: the fp16 outputs go by TMA store. Each consumer warpgroup owns the box of
    // its 64 weight rows × BT tokens (128 B per token row, 128B-swizzled) in the epilogue region: its
    // fragments (rows rowA, rowA + 8 × token pairs) are exactly stmatrix's, stored transposed into
    // token rows, then one thread stores the box and the warpgroup goes on to its next tile while
    // the copy runs. The box is rewritten only after that store has read it.
    const u32 box = base + STAGES * STAGE_BYTES + cw * (BT * 128);
    const bool leader = (tid & 127) == 0;
    if (leader) bulk_wait_read_all();
    warpgroup_sync(cw);
#pragma unroll
    for (int jp = 0; jp < BT / 16; ++jp) {  // token blocks 2jp, 2jp + 1 of 8
      u32 r[4];                               // matrices (block 2jp + m/2, rows rowA (+8 if m odd))
#pragma unroll
      for (int jj = 0; jj < 2; ++jj) {
        const int j = 2 * jp + jj;
        float yv[2][2];
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const int t = t0 + 8 * j + 2 * q + c;
          const float s = A16 ? 1.0f : t < M ? sx[t] : 0.0f;
          yv[0][c] = y_of(4 * j + c, s);
          yv[1][c] = y_of(4 * j + 2 + c, s);
        }
        r[2 * jj] = f2h_rn(yv[0][0]) | (f2h_rn(yv[0][1]) << 16);
        r[2 * jj + 1] = f2h_rn(yv[1][0]) | (f2h_rn(yv[1][1]) << 16);
      }
      const int m = lane >> 3, tok = 8 * (2 * jp + (m >> 1)) + (lane & 7), chunk = 2 * warp + (m & 1);
      stmatrix_x4_trans(box + tok * 128 + ((chunk ^ (tok & 7)) << 4), r);
    }
    fence_proxy_async();  // the generic-proxy smem writes, before the TMA unit reads them
    warpgroup_sync(cw);
    if (leader) {
      tma_store_2d(tmo, box, n0 + 64 * cw, t0);
      bulk_commit();
    }
    continue;
  }
  // Per warp: 16 weight rows × 64 tokens of fp32 through smem (two halves), then 16-byte stores
  // of 8 consecutive outputs of one token row.
  float* epiF = (float*)(w4w_smem + (epi - smem_addr(w4w_smem)));
#pragma unroll
  for (int half = 0; half < BT / 64; ++half) {
#pragma unroll
    for (int jj = 0; jj < 8; ++jj) {
      const int j = half * 8 + jj;
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int tl = jj * 8 + 2 * q + c;  // token within this half
        const int t = t0 + half * 64 + tl;
        const float s = A16 ? 1.0f : t < M ? sx[t] : 0.0f;  // (W4A16 has no sx)
        float yA, yB;
        if constexpr (MODE == MODE_IS) {
          yA = fmul_rn(fmul_rn(i2f_rn(acc[4 * j + c]), s), cA);
          yB = fmul_rn(fmul_rn(i2f_rn(acc[4 * j + 2 + c]), s), cB);
        } else if constexpr (MODE == MODE_PC) {
          const int* Ph = j < 8 ? PA : PB;
          yA = fmul_rn(fmul_rn(i2f_rn(Ph[4 * (j & 7) + c]), s), cA);
          yB = fmul_rn(fmul_rn(i2f_rn(Ph[4 * (j & 7) + 2 + c]), s), cB);
        } else if constexpr (A16) {
          yA = acc[4 * j + c];
          yB = acc[4 * j + 2 + c];
        } else {
          yA = fmul_rn(acc[4 * j + c], s);
          yB = fmul_rn(acc[4 * j + 2 + c], s);
        }
        epiF[tl * EPI_STRIDE + rl] = yA;
        epiF[tl * EPI_STRIDE + rl + 8] = yB;
      }
    }
    __syncwarp();
    // 64 tokens × 2 chunks of 8 rows: lane → (token tl = lane/2 + 16 i, chunk lane % 2)
    const int ch = lane & 1;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int tl = (lane >> 1) + 16 * i, t = t0 + half * 64 + tl;
      if (t < M) {
        float src[8];
        lds_v4f(epi + (tl * EPI_STRIDE + ch * 8) * 4, src);
        lds_v4f(epi + (tl * EPI_STRIDE + ch * 8 + 4) * 4, src + 4);
        const u64 o = (u64)t * N + n0 + 64 * cw + 16 * warp + ch * 8;
        u32 r[4] = {0, 0, 0, 0};
        if (residual) {
          const U4 rv = *(const U4*)(residual + o);
          r[0] = rv.x; r[1] = rv.y; r[2] = rv.z; r[3] = rv.w;
        }
        u32 h[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          float y0 = src[2 * e], y1 = src[2 * e + 1];
          if (residual) {
            y0 = fadd_rn(y0, h2f(r[e] & 0xFFFF));
            y1 = fadd_rn(y1, h2f(r[e] >> 16));
          }
          h[e] = f2h_rn(y0) | (f2h_rn(y1) << 16);
        }
        *(U4*)(out + o) = U4{h[0], h[1], h[2], h[3]};
      }
    }
    __syncwarp();
  }
  }  // tiles
  if ((tid & 127) == 0) bulk_wait_all();  // this warpgroup's last output store has landed
  if (tid == 128) { W4W_MARK(9); W4W_CMARK(3); }
}
#endif  // W4W_ENABLED

#define W4W_PARAMS                                                                                      \
  const void *__restrict__ A, const float *__restrict__ sx, const void *__restrict__ Wp,                 \
      const void *__restrict__ gsc, const void *__restrict__ chan, const u16 *__restrict__ residual,      \
      u16 *__restrict__ out, void *__restrict__ ws, u32 *__restrict__ counters, int M, int N, int K,       \
      const __grid_constant__ W4TensorMap tmx, const __grid_constant__ W4TensorMap tmo
#ifdef W4W_ENABLED
#define W4W_ENTRY(NAME, MODE, BT)                                                                       \
  extern "C" __global__ void __launch_bounds__(W4W_THREADS, 1) NAME(W4W_PARAMS) {                      \
    w4w_body<MODE, BT>((const signed char*)A, sx, (const unsigned char*)Wp, gsc, chan, residual, out, ws, counters, M, N, K, &tmx, &tmo); \
  }
#else
#define W4W_ENTRY(NAME, MODE, BT) \
  extern "C" __global__ void NAME(W4W_PARAMS) { __trap(); }
#endif

// -DW4_SELECT plus -DW4_SELECT_IS_G128, _FS_G128 or _PC (w4_gemm.cu's defines, w4SelectDefines in
// w4-gemm-plan.ts) compiles only that kernel; without W4_SELECT every entry point is built.
#if !defined(W4_SELECT) || defined(W4_SELECT_IS_G128)
W4W_ENTRY(w4a8_gemm_is_g128_w, MODE_IS, 128)
W4W_ENTRY(w4a8_gemm_is_g128_w64, MODE_IS, 64)
#endif
#if !defined(W4_SELECT) || defined(W4_SELECT_FS_G128)
W4W_ENTRY(w4a8_gemm_fs_g128_w, MODE_FS, 128)
W4W_ENTRY(w4a8_gemm_fs_g128_w64, MODE_FS, 64)
#endif
#if !defined(W4_SELECT) || defined(W4_SELECT_PC)
W4W_ENTRY(w4a8_gemm_pc_w, MODE_PC, 128)
W4W_ENTRY(w4a8_gemm_pc_w64, MODE_PC, 64)
#endif
#if !defined(W4_SELECT) || defined(W4_SELECT_W4A16)
W4W_ENTRY(w4a16_gemm_g128_w, MODE_A16, 128)
W4W_ENTRY(w4a16_gemm_g128_w64, MODE_A16, 64)
#endif
