// probe.cu — the compute ceiling of W4A8 wgmma main-loop schemes on Hopper: the consumers' loop of
// tile w (src/gpu/kernels/w4_gemm_wgmma.cu) with no global memory and no producer at all, one block
// per SM, smem operands left as they are (timing only). What varies (template arguments):
//   NW     tokens per wgmma instruction (m64nNWk32): 64, 128 or 256
//   BT     tokens per k-tile and consumer (BT / NW batches of 4 wgmmas per k-tile)
//   SS     A (weights) from smem by descriptor instead of registers
//   UNPACK A from registers: two 16-byte LDS and 8 int4 → int8 unpacks per k-tile (else constant)
//   MODE   PC: accumulate in the wgmma accumulators; IS: fresh partial sums per batch, folded into
//          int32 sums with one IMAD each; FS: the same with I2F + FFMA. IS / FS rotate NSETS
//          partial-sum sets, so batch j is folded while batches j + 1 .. j + NSETS - 1 run (tile w: 2).
//   CONS   consumer warpgroups per block (64 weight rows each)
//   FENCE  a fence.proxy.async per k-tile (tile w needs one: cp.async-written activations)
// Prints "<name> TOP/s %peak" with peak = 8192 int8 ops per SM and cycle at the reported clock.
// Build and run: nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -o /tmp/ceil probe.cu && /tmp/ceil
#include <cuda_runtime.h>
#include "../probe_util.h"
#include "../../../src/gpu/kernels/ptx.cuh"
#include "wgmma_s8.cuh"

enum { PC = 0, IS = 1, FS = 2 };
constexpr int SMEM = 1024 + 256 * 128 + 3 * 8192 + 3 * 4096 + 3 * 512;

template <int NW, int BT, bool SS, bool UNPACK, int MODE, int CONS, bool FENCE, int NSETS>
__global__ void __launch_bounds__(CONS * 128, 1) ceiling(int KT, int* sink) {
  extern __shared__ __attribute__((aligned(16))) unsigned char sm[];
  constexpr int H = BT / NW, ND = NW / 2, NACC = BT / 2;
  typedef typename AccT<MODE == FS>::type Acc;
  const u32 base = (smem_addr(sm) + 1023) & ~1023u;
  const int tid = threadIdx.x, cw = tid >> 7, lane = tid & 31, warp = (tid >> 5) & 3;
  const u32 xBase = base, aBase = base + 256 * 128 + cw * 8192;
  const u32 wOff = base + 256 * 128 + 3 * 8192 + (cw * 4 + warp) * 1024 + lane * 16;
  const u32 scOff = base + 256 * 128 + 3 * 8192 + 3 * 4096 + cw * 512 + (16 * warp + (lane >> 2)) * 4;
  static_assert(NSETS == 2 || H > 1, "3 sets with one batch per k-tile would overwrite A registers in use");
  constexpr int NP = MODE == PC ? H : NSETS;
  int P[NP][ND];
  Acc acc[MODE == PC ? 1 : NACC];
  u32 a[2][4][4];
  Acc sc[2][2];
#pragma unroll
  for (int s = 0; s < NP; ++s)
#pragma unroll
    for (int i = 0; i < ND; ++i) P[s][i] = 0;
#pragma unroll
  for (int i = 0; i < (MODE == PC ? 1 : NACC); ++i) acc[i] = 0;
#pragma unroll
  for (int s = 0; s < 2; ++s) {
    sc[s][0] = sc[s][1] = 0;
#pragma unroll
    for (int ks = 0; ks < 4; ++ks)
#pragma unroll
      for (int r = 0; r < 4; ++r) a[s][ks][r] = 0x01010101u * (u32)(lane + ks + r + s);
  }
  auto fold = [&](int j) {  // batch j of the body: k-tile j / H, token batch j % H, partial-sum set j % NSETS
    if constexpr (MODE != PC) {
      const int b = j % H, par = (j / H) & 1;
#pragma unroll
      for (int i = 0; i < ND; ++i) {
        const Acc s = (i & 2) ? sc[par][1] : sc[par][0];
        if constexpr (MODE == IS) acc[b * ND + i] = (int)((u32)acc[b * ND + i] + (u32)P[j % NSETS][i] * (u32)s);
        else acc[b * ND + i] = ffma_rn(i2f_rn(P[j % NSETS][i]), s, acc[b * ND + i]);
      }
    }
  };
  for (int kt0 = 0; kt0 < KT; kt0 += 4) {
#pragma unroll
    for (int j = 0; j < 4 * H; ++j) {
      const int kt = j / H, b = j % H, par = kt & 1;
      if (b == 0) {
        if constexpr (FENCE) asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
        if constexpr (UNPACK && !SS) {
          u32 w0[4], w1[4];
          lds_v4(wOff + par * 512, w0);
          lds_v4(wOff + 256 + par * 512, w1);
#pragma unroll
          for (int ks = 0; ks < 4; ++ks) {
            unpack_s4(w0[ks], a[par][ks][0], a[par][ks][2]);
            unpack_s4(w1[ks], a[par][ks][1], a[par][ks][3]);
          }
        }
        if constexpr (MODE != PC) {
          const u32 b0 = lds_u32(scOff + par * 256), b1 = lds_u32(scOff + par * 256 + 32);
          sc[par][0] = MODE == FS ? (Acc)bits_to_float(b0) : (Acc)(int)b0;
          sc[par][1] = MODE == FS ? (Acc)bits_to_float(b1) : (Acc)(int)b1;
        }
      }
      int (&D)[ND] = P[MODE == PC ? b : j % NSETS];
      const int keep = MODE == PC ? 1 : 0;
      wgmma_fence();
#pragma unroll
      for (int ks = 0; ks < 4; ++ks) {
        const u64 db = desc_sw128(xBase + b * NW * 128 + ks * 32);
        if constexpr (SS) wgmma_ss(D, desc_sw128(aBase + ks * 32), db, ks ? 1 : keep);
        else wgmma_rs(D, a[par][ks], db, ks ? 1 : keep);
      }
      wgmma_commit();
      if (j >= NSETS - 1) {
        wgmma_wait<NSETS - 1>();
        fold(j - (NSETS - 1));
      }
    }
    wgmma_wait<0>();
#pragma unroll
    for (int j = 4 * H - (NSETS - 1); j < 4 * H; ++j) fold(j);
  }
  int sum = 0;
#pragma unroll
  for (int s = 0; s < NP; ++s)
#pragma unroll
    for (int i = 0; i < ND; ++i) sum += P[s][i];
#pragma unroll
  for (int i = 0; i < (MODE == PC ? 1 : NACC); ++i) sum += (int)acc[i];
  sink[blockIdx.x * blockDim.x + tid] = sum;
}

struct Variant { const char* name; void (*fn)(int, int*); int cons, bt; };
#define V(name, NW, BT, SS, UN, MODE, CONS, FENCE) {name, ceiling<NW, BT, SS, UN, MODE, CONS, FENCE, 2>, CONS, BT}
#define V3(name, NW, BT, MODE, CONS) {name, ceiling<NW, BT, false, true, MODE, CONS, false, 3>, CONS, BT}

int main() {
  Variant vs[] = {
      V("pc_n64_const", 64, 128, false, false, PC, 2, false),
      V("pc_n64_unpack", 64, 128, false, true, PC, 2, false),
      V("pc_n64_unpack_fence", 64, 128, false, true, PC, 2, true),
      V("pc_n64_unpack_1cons", 64, 128, false, true, PC, 1, false),
      V("pc_n64_unpack_3cons", 64, 128, false, true, PC, 3, false),
      V("pc_n64_bt256_unpack", 64, 256, false, true, PC, 2, false),
      V("pc_n128_const", 128, 128, false, false, PC, 2, false),
      V("pc_n128_unpack", 128, 128, false, true, PC, 2, false),
      V("pc_n256_const", 256, 256, false, false, PC, 2, false),
      V("pc_n256_unpack", 256, 256, false, true, PC, 2, false),
      V("pc_n128_ss", 128, 128, true, false, PC, 2, false),
      V("pc_n256_ss", 256, 256, true, false, PC, 2, false),
      V("is_n64_unpack", 64, 128, false, true, IS, 2, false),
      V("is_n64_unpack_fence", 64, 128, false, true, IS, 2, true),
      V("is_n64_unpack_1cons", 64, 128, false, true, IS, 1, false),
      V("is_n128_unpack", 128, 128, false, true, IS, 2, false),
      V("is_n64_bt256_unpack", 64, 256, false, true, IS, 2, false),
      V("fs_n64_unpack", 64, 128, false, true, FS, 2, false),
      V("fs_n128_unpack", 128, 128, false, true, FS, 2, false),
      V("fs_n64_bt256_unpack", 64, 256, false, true, FS, 2, false),
      V("pc_n64_bt256_1cons", 64, 256, false, true, PC, 1, false),
      V("is_n64_bt256_1cons", 64, 256, false, true, IS, 1, false),
      V("is_n64_bt192_unpack", 64, 192, false, true, IS, 2, false),
      V3("is_n64_3sets", 64, 128, IS, 2),
      V3("is_n64_bt192_3sets", 64, 192, IS, 2),
      V3("is_n64_bt256_3sets_1cons", 64, 256, IS, 1),
      V3("fs_n64_3sets", 64, 128, FS, 2),
      V("is_n64_const", 64, 128, false, false, IS, 2, false),
      V("is_n64_ss", 64, 128, true, false, IS, 2, false),
      V("is_n64_bt256_ss", 64, 256, true, false, IS, 2, false),
      V("is_n128_ss", 128, 128, true, false, IS, 2, false),
      V("fs_n64_ss", 64, 128, true, false, FS, 2, false),
      V("fs_n64_bt256_ss", 64, 256, true, false, FS, 2, false),
  };
  int sms, khz;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, 0);
  const double peak = 8192.0 * sms * khz * 1e3 / 1e12;
  printf("SMs %d clock %d MHz peak %.0f TOP/s\n", sms, khz / 1000, peak);
  int* sink; CK(cudaMalloc(&sink, sms * 384 * 4));
  const int KT = 2048;
  for (auto& v : vs) {
    CK(cudaFuncSetAttribute(v.fn, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM));
    std::vector<float> t;
    cudaEvent_t e0, e1; cudaEventCreate(&e0); cudaEventCreate(&e1);
    for (int r = 0; r < 9; ++r) {
      cudaEventRecord(e0);
      v.fn<<<sms, v.cons * 128, SMEM>>>(KT, sink);
      cudaEventRecord(e1); CK(cudaEventSynchronize(e1));
      float ms; cudaEventElapsedTime(&ms, e0, e1);
      if (r >= 2) t.push_back(ms * 1000);
    }
    CK(cudaGetLastError());
    const double us = median(t), ops = 2.0 * sms * v.cons * 64.0 * v.bt * 128.0 * KT;
    printf("%-22s %8.1f us %7.0f TOP/s %5.1f%%\n", v.name, us, ops / us / 1e6, 100 * ops / us / 1e6 / peak);
  }
}
