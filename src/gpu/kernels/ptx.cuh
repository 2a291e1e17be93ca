// ptx.cuh — the small device helpers every intscale kernel shares: fixed-width typedefs, 16-byte
// vector, shared-memory addressing, cp.async / ldmatrix / mbarrier wrappers, fp32 arithmetic with
// explicit IEEE rounding (.rn: no FMA contraction, so GPU results match the CPU spec bit for bit),
// conversions, and the int4 → int8 unpack of the repacked weights (src/gpu/repack.ts).
// Included once by each kernel source. No include guard on purpose: gpu-dev/bench.cu includes
// several kernel sources, each inside its own namespace, and each needs its own copy. NVRTC
// builds get this file inlined by src/gpu/compile.ts (so the compile cache key covers it).

typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned long long u64;  // NVRTC has no size_t or vector types without headers

#define DEVI static __device__ __forceinline__

struct alignas(16) U4 { u32 x, y, z, w; };

// int32 accumulators for IS and PC, fp32 for FS and W4A16
template <bool F> struct AccT { typedef int type; };
template <> struct AccT<true> { typedef float type; };

// ---- global loads ---------------------------------------------------------------------------------
// 16 bytes of data read once (weights): non-coherent path, kept out of L1
DEVI U4 ldg_stream16(const U4* p) {
  U4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// ---- shared memory, async copies ---------------------------------------------------------------
DEVI u32 smem_addr(const void* p) {
  u32 r;
  asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(r) : "l"(p));
  return r;
}
DEVI void cp_async16(u32 dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
}
// src_bytes = 0 fills the 16 destination bytes with zeros (rows past M)
DEVI void cp_async16_zfill(u32 dst, const void* src, u32 src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}
DEVI void ldsm_x4(u32 addr, u32 (&r)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
DEVI u32 lds_u32(u32 addr) {
  u32 v;
  asm volatile("ld.shared.b32 %0, [%1];" : "=r"(v) : "r"(addr));
  return v;
}
// The dynamic shared memory this launch was given (kernels whose ring size is a build constant
// check it: a launch with less would overrun the ring).
DEVI u32 dynamic_smem_bytes() {
  u32 r;
  asm("mov.u32 %0, %%dynamic_smem_size;" : "=r"(r));
  return r;
}
DEVI void lds_v4(u32 addr, u32 (&r)[4]) {
  asm volatile("ld.shared.v4.b32 {%0,%1,%2,%3}, [%4];" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
// ---- mbarriers and the bulk copy engine (sm_90+) -------------------------------------------------
DEVI void mbar_init(u32 bar, u32 count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
DEVI void mbar_fence_init() { asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory"); }
DEVI void mbar_arrive_expect_tx(u32 bar, u32 bytes) {
  asm volatile("{ .reg .b64 st; mbarrier.arrive.expect_tx.shared::cta.b64 st, [%0], %1; }" ::"r"(bar), "r"(bytes)
               : "memory");
}
DEVI void mbar_wait(u32 bar, u32 parity) {
  asm volatile(
      "{ .reg .pred p;\n"
      "MBAR_WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
      "@!p bra MBAR_WAIT;\n}" ::"r"(bar),
      "r"(parity)
      : "memory");
}
// `bytes` from global to shared by the bulk copy engine, completing on mbarrier `bar` (whose
// expected transaction count must include them)
DEVI void bulk_copy(u32 dst, const void* src, u32 bytes, u32 bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(dst),
               "l"(src), "r"(bytes), "r"(bar)
               : "memory");
}
DEVI void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }
#endif

// ---- split-K across blocks: partials through L2, a per-tile arrival counter ---------------------
DEVI void fence_gpu() { asm volatile("fence.acq_rel.gpu;" ::: "memory"); }
DEVI u32 atom_add_u32(u32* p, u32 v) {
  u32 old;
  asm volatile("atom.global.acq_rel.gpu.add.u32 %0, [%1], %2;" : "=r"(old) : "l"(p), "r"(v) : "memory");
  return old;
}
// .cg: the non-coherent L1 must not serve a stale copy of another block's partial
DEVI void st_cg_v4(U4* p, U4 v) {
  asm volatile("st.global.cg.v4.u32 [%0], {%1,%2,%3,%4};" ::"l"(p), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w) : "memory");
}
DEVI U4 ld_cg_v4(const U4* p) {
  U4 v;
  asm volatile("ld.global.cg.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p) : "memory");
  return v;
}

// ---- Hopper warpgroup MMA (sm_90a: w4_gemm_wgmma.cu and its probes; inline, so emitted only where used)
DEVI void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
DEVI void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N> DEVI void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory"); }
// K-major operand in 128B-swizzle mode: 128-byte rows, 8-row atoms 1024 B apart (SBO), LBO unused.
DEVI u64 desc_sw128(u32 addr) {
  return (u64)((addr & 0x3FFFF) >> 4) | ((u64)1 << 16) | ((u64)(1024 >> 4) << 32) | ((u64)1 << 62);
}

// ---- fp16 tensor-core MMA and f16x2 arithmetic (the W4A16 kernels) -------------------------------
// m16n8k16 f16·f16 → f32, accumulating into c
DEVI void mma_f16(float (&c)[4], const u32 (&a)[4], u32 b0, u32 b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
DEVI u32 hsub2(u32 a, u32 b) {
  u32 d;
  asm("sub.rn.f16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
  return d;
}
DEVI u32 hmul2(u32 a, u32 b) {
  u32 d;
  asm("mul.rn.f16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
  return d;
}
DEVI u32 hfma2(u32 a, u32 b, u32 c) {
  u32 d;
  asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}
// int4 of the W4A16 layout → fp16 weights: nibble pair j of w (offset binary u = q + 8 at bits 4j
// and 16 + 4j, repack.ts) as a half2 of q·s, q exact, one rounding (the multiply by the half2
// scale). Marlin's magic numbers: 0x6400|u is 1024 + u in fp16, minus 1032 (0x6408) is q; a nibble
// left at bits 4..7, 0x6400|16u, is 1024 + 16u, and fma(·, 1/16, −72) = u − 8 is exact too. So the
// pairs 0, 1 of w and 2, 3 of w >> 8 (one shift, shared by the four calls on w) cost a LOP3 and
// one f16x2 op each before the multiply (was a shift, a LOP3 and a subtraction for pairs 1–3).
DEVI u32 dequant_a16(u32 w, int j, u32 s2) {
  const u32 v = j >= 2 ? w >> 8 : w;
  const u32 q = (j & 1) ? hfma2((v & 0x00F000F0u) | 0x64006400u, 0x2C002C00u /* 1/16 */, 0xD480D480u /* -72 */)
                        : hsub2((v & 0x000F000Fu) | 0x64006400u, 0x64086408u);
  return hmul2(q, s2);
}

// ---- programmatic dependent launch (sm_90+; no-ops elsewhere and when launched normally) --------
// pdl_wait: wait until the preceding kernel in the stream has completed and its memory is visible
// (call it before the first read of anything a predecessor wrote). pdl_trigger: let the next
// kernel launch now (its blocks run up to their own pdl_wait), so its launch and prologue overlap
// this kernel's tail.
DEVI void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
DEVI void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

// ---- grouped GEMMs of a mixture of experts ----------------------------------------------------
// One expert's operands in a mixture of experts' grouped GEMMs (w4_gemv.cu's _moe entries,
// f16_gemv.cu's): its weights, group scales and channel factors (the last two unused by FP16);
// the engine writes tables of these (src/gpu/kernels/grouped-gemm.ts, expertTable: 24 bytes each).
struct GvExpert {
  const void* wp;
  const void* gsc;
  const void* chan;
};

// The block's expert and its rows in a grouped launch: blockIdx.y = i runs expert e = active[i]
// (moe_align's list of the experts with rows, then -1), rows [r0, r0 + m) = [offsets[e],
// offsets[e + 1]). Both come from the preceding kernels, so it waits (pdl_wait) first. False: no
// expert for this block (it exits); an expert with more rows than the tile holds (CAP) traps.
template <int CAP> DEVI bool grouped_expert_rows(const int* __restrict__ active, const int* __restrict__ offsets, int& e, int& r0, int& m) {
  pdl_wait();
  e = active[blockIdx.y];
  if (e < 0) return false;
  r0 = offsets[e];
  m = offsets[e + 1] - r0;
  if (m <= 0) return false;
  if (m > CAP) __trap();
  return true;
}

// ---- fp32 arithmetic and conversions with explicit rounding -------------------------------------
DEVI float fmul_rn(float a, float b) {
  float d;
  asm("mul.rn.f32 %0, %1, %2;" : "=f"(d) : "f"(a), "f"(b));
  return d;
}
DEVI float fadd_rn(float a, float b) {
  float d;
  asm("add.rn.f32 %0, %1, %2;" : "=f"(d) : "f"(a), "f"(b));
  return d;
}
DEVI float ffma_rn(float a, float b, float c) {
  float d;
  asm("fma.rn.f32 %0, %1, %2, %3;" : "=f"(d) : "f"(a), "f"(b), "f"(c));
  return d;
}
DEVI float i2f_rn(int a) {
  float d;
  asm("cvt.rn.f32.s32 %0, %1;" : "=f"(d) : "r"(a));
  return d;
}
DEVI float fdiv_rn(float a, float b) {
  float d;
  asm("div.rn.f32 %0, %1, %2;" : "=f"(d) : "f"(a), "f"(b));
  return d;
}
DEVI int f2i_rni(float a) {  // round half to even, like rint
  int d;
  asm("cvt.rni.s32.f32 %0, %1;" : "=r"(d) : "f"(a));
  return d;
}
DEVI u16 f2h_rn(float a) {
  u16 h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(a));
  return h;
}
DEVI float h2f(u16 h) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}
DEVI float bits_to_float(u32 b) {
  float f;
  asm("mov.b32 %0, %1;" : "=f"(f) : "r"(b));
  return f;
}
DEVI u32 float_bits(float f) {
  u32 b;
  asm("mov.b32 %0, %1;" : "=r"(b) : "f"(f));
  return b;
}
// a 32-bit word as an int32 (IS/PC partial sums) or fp32 (FS/W4A16) accumulator, bit for bit, and back
DEVI void bits_to_acc(u32 b, int& v) { v = (int)b; }
DEVI void bits_to_acc(u32 b, float& v) { v = bits_to_float(b); }
DEVI u32 acc_bits(int v) { return (u32)v; }
DEVI u32 acc_bits(float v) { return float_bits(v); }
// 2^-k for k in [0, 30] (normal fp32, so multiplying by it is exact unless the result is subnormal)
DEVI float exp2_neg(int k) { return bits_to_float((u32)(127 - k) << 23); }

// ---- hashing and block reductions -------------------------------------------------------------
DEVI u64 splitmix64(u64 x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
// Sum / max over a block of NT threads; `red` holds NT/32 floats. Every thread gets the result; the
// warps' partials are combined in warp order (deterministic).
template <int NT>
DEVI float block_sum(float v, float* red) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // `red` may still be read by a previous reduction
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < NT / 32; ++i) s += red[i];
  return s;
}
template <int NT>
DEVI float block_max(float m, float* red) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) red[warp] = m;
  __syncthreads();
  float r = red[0];
#pragma unroll
  for (int i = 1; i < NT / 32; ++i) r = fmaxf(r, red[i]);
  return r;
}

// ---- int4 weights ----------------------------------------------------------------------------
// The W4 GEMM kinds (w4_gemm.cu, w4_gemm_wgmma.cu, w4_gemv.cu): integer group scales, float group
// scales, per channel, W4A16.
enum { MODE_IS = 0, MODE_FS = 1, MODE_PC = 2, MODE_A16 = 3 };
// The per-row output factor of row n (`chan` as the kernels take it): 2^-k_n (IS, int8 shifts),
// s_n (PC, fp32 channel scales), 1 (FS, W4A16).
template <int MODE>
DEVI float row_factor(const void* chan, int n) {
  if constexpr (MODE == MODE_IS) return exp2_neg(((const signed char*)chan)[n]);
  else if constexpr (MODE == MODE_PC) return ((const float*)chan)[n];
  else return 1.0f;
}
// int4 x8 (two's complement) → two int8x4 registers: `lo` from the low nibbles, `hi` from the high
// ones. Byte j of w holds value j of `lo` in its low nibble and value j of `hi` in its high nibble
// (repackWeights 'w4a8'). Sign extension of a nibble: (x & 0x0F) | (bit3 ? 0xF0 : 0) =
// (x & 0x0F) | ((x & 0x08) * 0x1E), carry-free per byte: 3 LOP3/IMAD per register.
DEVI void unpack_s4(u32 w, u32& lo, u32& hi) {
  lo = (w & 0x0F0F0F0Fu) | ((w & 0x08080808u) * 0x1Eu);
  const u32 v = w >> 4;
  hi = (v & 0x0F0F0F0Fu) | ((v & 0x08080808u) * 0x1Eu);
}
