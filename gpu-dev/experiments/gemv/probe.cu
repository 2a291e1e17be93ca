// Timing probe for the small-M tiles (src/gpu/kernels/w4_gemv.cu) under compile-time variants (-D
// flags, see ../probe.sh): random operands (correctness: the GPU tests), weights rotated through
// copies (> 2x L2) so every launch streams from HBM, cudaEvent timing, median of 7.
// 1. single launches: "<variant> <kind> M N K grid us GB/s" for IS g128, W4A16 and FS g128, back to back;
//    the persistent ring at several grids (blocks per SM: resident, one fewer, 3; W4A8's v8, the
//    rounds, has one: a block per row tile).
// 2. layer chains: "<variant> chain <arch> M grid us/layer GB/s": 32 layers of qkv -> o -> gate_up
//    -> down in one CUDA graph with programmatic dependent launch, o and down adding a residual, as
//    the engine runs them; "chain0" lines: IS and FS on the resident grid without the residual
//    (as bench gemm --layer times them; on 2026-12-02 IS trailed FS by 1–2% at M = 1 in this probe's
//    chains but not in bench gemm --layer's: does the residual make the difference?).
// 3. (variant "base" only) "pattern": the rounds' weight reads alone, no compute, in the repacked
//    layout, a 16-row-tile-contiguous one and with the .L2::256B hint: what the access order costs.
// PROBE_ONLY=NxK: part 1 for that shape alone (for ncu).
// Build with -DW4_SELECT -DW4_SELECT_IS_G128 -DW4_SELECT_FS_G128 -DW4_SELECT_W4A16 for fast builds.
#include <cuda_runtime.h>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include "../probe_util.h"
#ifndef GV_PROBE_SOURCE  // another copy of the kernel source (an A/B against an untracked old copy)
#define GV_PROBE_SOURCE "../../../src/gpu/kernels/w4_gemv.cu"
#endif
#include GV_PROBE_SOURCE

typedef void (*GvFn)(GV_PARAMS);
struct Cfg { GvFn fn; int threads, smem, grid; };
static int g_sms = 132;

// kernel and launch configuration of kind (0 IS g128, 1 W4A16, 2 FS g128) at M; perSm = persistent blocks per
// SM (0: as many as are resident, -1: one fewer than that; never more than the N/16 row tiles)
static const char* KIND_NAME[3] = {"is_g128", "a16", "fs_g128"};
static Cfg config(int kind, int M, int N, int K, int perSm) {
  Cfg c;
  const bool v8 = M <= 8, a16 = kind == 1;
  c.fn = a16 ? (v8 ? w4a16_gemm_g128_v8 : w4a16_gemm_g128_v16)
       : kind == 2 ? (v8 ? w4a8_gemm_fs_g128_v8 : w4a8_gemm_fs_g128_v16) : (v8 ? w4a8_gemm_is_g128_v8 : w4a8_gemm_is_g128_v16);
  (void)K;
  if (v8 && !a16) {  // W4A8's v8: the rounds, one block per 16 weight rows
    c.threads = GV_THREADS;
    c.smem = 0;
    c.grid = N / 16;
    return c;
  }
  c.threads = 32 * GV_PWARPS;
  c.smem = a16 ? (v8 ? GvRing<MODE_A16, 128, 1, GV_PWARPS, GV_PSTAGES_V8>::SMEM : GvRing<MODE_A16, 128, 2, GV_PWARPS, GV_PSTAGES_V16>::SMEM)
               : kind == 2 ? GvRing<MODE_FS, 128, 2, GV_PWARPS, GV_PSTAGES_V16>::SMEM : GvRing<MODE_IS, 128, 2, GV_PWARPS, GV_PSTAGES_V16>::SMEM;
  CK(cudaFuncSetAttribute(c.fn, cudaFuncAttributeMaxDynamicSharedMemorySize, c.smem));
  int occ = 0;
  CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, c.fn, c.threads, c.smem));
  const int T = N / 16, blocks = perSm < 0 ? occ - 1 : perSm == 0 || perSm > occ ? occ : perSm;
  c.grid = std::min(T, blocks * g_sms);
  return c;
}

struct Operands { void* A; float* sx; unsigned char* W; void* S; signed char* shift; unsigned short* out; unsigned short* residual = nullptr; };

static void launch(const Cfg& c, const Operands& o, size_t wOff, size_t sOff, int M, int N, int K, cudaStream_t st, bool pdl) {
  cudaLaunchConfig_t lc = {};
  lc.gridDim = dim3(c.grid); lc.blockDim = dim3(c.threads); lc.dynamicSmemBytes = c.smem; lc.stream = st;
  cudaLaunchAttribute at[1];
  at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization; at[0].val.programmaticStreamSerializationAllowed = 1;
  lc.attrs = at; lc.numAttrs = pdl ? 1 : 0;
  CK(cudaLaunchKernelEx(&lc, c.fn, (const void*)o.A, (const float*)o.sx, (const U4*)(o.W + wOff), (const void*)((const char*)o.S + sOff),
                        (const void*)o.shift, (const u16*)o.residual, (u16*)o.out, (void*)nullptr, (u32*)nullptr, M, N, K));
}

// n values uniform in [lo, hi] from a hash of (seed, index), made on the device (fast for GBs)
template <typename T> __global__ void dfill_kernel(T* p, size_t n, unsigned seed, int lo, int span) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    p[i] = (T)(lo + (int)(splitmix64(((u64)seed << 40) ^ i) % (u64)span));
}
template <typename T> T* dfill(size_t n, unsigned seed, int lo, int hi) {
  T* d; CK(cudaMalloc(&d, n * sizeof(T)));
  dfill_kernel<T><<<1024, 256>>>(d, n, seed, lo, hi - lo + 1);
  CK(cudaGetLastError());
  return d;
}

DEVI U4 ldg_stream16_l2(const U4* p) {  // with the L2 256-byte prefetch hint
  U4 v;
  asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}
// Weight-read patterns without compute (the GEMV's DRAM access order, part 3): a block of 8 warps per
// 16 weight rows, warp w reading k-tiles w, w + 8, ... two at a time (2 × 16 B per lane each), as
// the v8 round loop does. tiled = 0: the repacked layout (a k-tile's 16 rows 1 KB inside an 8 KB
// run of 128 rows); 1: a 16-row tile's k-tiles contiguous (1 KB apart); 2: as 0 with .L2::256B.
__global__ void __launch_bounds__(256) pattern_read(const U4* __restrict__ W, int N, int K, int tiled, u32* sink) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, KT = K >> 7, n8 = blockIdx.x * 2, blk = n8 >> 4;
  u32 x = 0;
  for (int kt0 = warp; kt0 < KT; kt0 += 16) {
    U4 v[2][2];
#pragma unroll
    for (int u = 0; u < 2; ++u) {
      const int kt = kt0 + u * 8;
      if (kt < KT) {
        const U4* p = tiled == 1 ? W + ((u64)blockIdx.x * KT + kt) * 64 + lane : W + ((u64)blk * 16 * KT + (u64)kt * 16 + (n8 & 15)) * 32 + lane;
        if (tiled == 2) {
          v[u][0] = ldg_stream16_l2(p);
          v[u][1] = ldg_stream16_l2(p + 32);
        } else {
          v[u][0] = ldg_stream16(p);
          v[u][1] = ldg_stream16(p + 32);
        }
      } else v[u][0] = v[u][1] = U4{0, 0, 0, 0};
    }
#pragma unroll
    for (int u = 0; u < 2; ++u) x ^= v[u][0].x ^ v[u][0].w ^ v[u][1].y ^ v[u][1].z;
  }
  if (x == 0x12345678u) sink[blockIdx.x] = x;
}


int main(int argc, char** argv) {
  const char* variant = argc > 1 ? argv[1] : "base";
  CK(cudaDeviceGetAttribute(&g_sms, cudaDevAttrMultiProcessorCount, 0));
  const int COPIES = 8;
  const int grids[] = {0, -1, 3};  // (the rounds ignore it: one grid)
  int shapes[][2] = {{4096, 4096}, {12288, 4096}, {4096, 11008}, {22016, 4096}, {6144, 4096}, {4096, 14336}};
  const char* only = getenv("PROBE_ONLY");  // "NxK": that shape alone, no chains (for ncu)
  for (auto& s : shapes) {
    const int N = s[0], K = s[1];
    char name[32]; snprintf(name, sizeof name, "%dx%d", N, K);
    if (only && strcmp(only, name) != 0) continue;
    unsigned char* W = dfill<unsigned char>((size_t)N * K / 2 * COPIES, 2, 0, 255);
    for (int kind = 0; kind < 3; ++kind) {
      const bool a16 = kind == 1;
      const size_t sBytes = a16 ? 2 : 4;
      void* S = a16 ? (void*)dfill<unsigned short>((size_t)(K / 128) * N * COPIES, 3, 0x2000, 0x2c00)
              : kind == 2 ? (void*)dfill<float>((size_t)(K / 128) * N * COPIES, 3, 1, 400) : (void*)dfill<int>((size_t)(K / 128) * N * COPIES, 3, 1, 400);
      for (int M : {1, 16}) {
        // W4A16: fp16 activations and scales (bit patterns 0x3000..0x3c00: small positive halves)
        Operands o;
        o.A = a16 ? (void*)fill<unsigned short>((size_t)M * K, 1, 0x3000, 0x3c00) : (void*)fill<signed char>((size_t)M * K, 1, -127, 127);
        o.shift = fill<signed char>(N, 4, 8, 16);
        CK(cudaMalloc(&o.sx, M * 4)); CK(cudaMemset(o.sx, 0, M * 4));
        CK(cudaMalloc(&o.out, (size_t)M * N * 2));
        o.W = W; o.S = S;
        for (int perSm : grids) {
          const Cfg c = config(kind, M, N, K, perSm);
          if (perSm != 0 && c.grid == config(kind, M, N, K, 0).grid) continue;  // same grid as "resident"
          cudaEvent_t e0, e1; cudaEventCreate(&e0); cudaEventCreate(&e1);
          std::vector<float> t;
          for (int r = 0; r < 8; ++r) {
            cudaEventRecord(e0);
            for (int l = 0; l < 50; ++l) {
              const int cp = l % COPIES;
              launch(c, o, (size_t)cp * N * K / 2, (size_t)cp * (K / 128) * N * sBytes, M, N, K, 0, false);
            }
            cudaEventRecord(e1); CK(cudaEventSynchronize(e1));
            float ms; cudaEventElapsedTime(&ms, e0, e1);
            if (r > 0) t.push_back(ms * 1000 / 50);
          }
          CK(cudaGetLastError());
          const float us = median(t);
          const double bytes = (double)N * K / 2 + (double)(K / 128) * N * sBytes;
          printf("%-10s %-7s %3d %6d %6d %5d %8.2f %7.0f\n", variant, KIND_NAME[kind], M, N, K, c.grid, us, bytes / us / 1e3);
        }
        cudaFree(o.A); cudaFree(o.shift); cudaFree(o.sx); cudaFree(o.out);
      }
      cudaFree(S);
    }
    cudaFree(W);
  }

  // layer chains: 2 copies of a layer's weights alternate (a layer's W4 bytes exceed L2 already)
  struct Arch { const char* name; int shapes[4][2]; } archs[] = {
      {"llama2-7b", {{12288, 4096}, {4096, 4096}, {22016, 4096}, {4096, 11008}}},
      {"llama3-8b", {{6144, 4096}, {4096, 4096}, {28672, 4096}, {4096, 14336}}}};
  if (only) return 0;
  if (strcmp(variant, "base") == 0) {  // part 3: DRAM order of the weight reads
    u32* sink; CK(cudaMalloc(&sink, 4 << 16));
    for (auto& s : shapes) {
      const int N = s[0], K = s[1];
      unsigned char* W = dfill<unsigned char>((size_t)N * K / 2 * COPIES, 2, 0, 255);
      for (int tiled = 0; tiled < 3; ++tiled) {
        cudaEvent_t e0, e1; cudaEventCreate(&e0); cudaEventCreate(&e1);
        std::vector<float> t;
        for (int r = 0; r < 8; ++r) {
          cudaEventRecord(e0);
          for (int l = 0; l < 50; ++l) pattern_read<<<N / 16, 256>>>((const U4*)(W + (size_t)(l % COPIES) * N * K / 2), N, K, tiled, sink);
          cudaEventRecord(e1); CK(cudaEventSynchronize(e1));
          float ms; cudaEventElapsedTime(&ms, e0, e1);
          if (r > 0) t.push_back(ms * 1000 / 50);
        }
        CK(cudaGetLastError());
        const float us = median(t);
        printf("pattern %-8s %6d %6d %8.2f us %7.0f GB/s\n", tiled == 1 ? "tiled" : tiled ? "l2-256" : "repacked", N, K, us, (double)N * K / 2 / us / 1e3);
      }
      cudaFree(W);
    }
  }
  cudaStream_t st; CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  for (auto& a : archs) {
    Operands ops[3][2][4];  // [kind][M = 1, 16][projection]
    for (int i = 0; i < 4; ++i) {
      const int N = a.shapes[i][0], K = a.shapes[i][1];
      unsigned char* W = dfill<unsigned char>((size_t)N * K / 2 * 2, 5 + i, 0, 255);
      void* S[3] = {dfill<int>((size_t)(K / 128) * N * 2, 6 + i, 1, 400), dfill<unsigned short>((size_t)(K / 128) * N * 2, 6 + i, 0x2000, 0x2c00),
                    dfill<float>((size_t)(K / 128) * N * 2, 6 + i, 1, 400)};
      signed char* shift = dfill<signed char>(N, 4, 8, 16);
      for (int kind = 0; kind < 3; ++kind)
        for (int mi = 0; mi < 2; ++mi) {
          const int M = mi ? 16 : 1;
          const bool a16 = kind == 1;
          Operands& o = ops[kind][mi][i];
          o.W = W; o.S = S[kind]; o.shift = shift;
          // o-proj and down add the residual stream, as the engine's do
          o.residual = i == 1 || i == 3 ? dfill<unsigned short>((size_t)M * N, 9, 0x3000, 0x3c00) : nullptr;
          o.A = a16 ? (void*)dfill<unsigned short>((size_t)M * K, 1, 0x3000, 0x3c00) : (void*)dfill<signed char>((size_t)M * K, 1, -127, 127);
          CK(cudaMalloc(&o.sx, M * 4)); CK(cudaMemset(o.sx, 0, M * 4));
          CK(cudaMalloc(&o.out, (size_t)M * N * 2));
          }
    }
    for (int kind = 0; kind < 3; ++kind)
      for (int mi = 0; mi < 2; ++mi)
        for (int perSm : grids) {
          const int M = mi ? 16 : 1;
          const size_t sBytes = kind == 1 ? 2 : 4;
          double bytes = 0;
          Cfg cs[4];
          for (int i = 0; i < 4; ++i) {
            const int N = a.shapes[i][0], K = a.shapes[i][1];
            bytes += (double)N * K / 2 + (double)(K / 128) * N * sBytes;
            cs[i] = config(kind, M, N, K, perSm);
          }
          const float us = graph_us(st, [&](cudaStream_t s) {
            for (int layer = 0; layer < 32; ++layer)
              for (int i = 0; i < 4; ++i) {
                const int N = a.shapes[i][0], K = a.shapes[i][1], cp = layer & 1;
                launch(cs[i], ops[kind][mi][i], (size_t)cp * N * K / 2, (size_t)cp * (K / 128) * N * sBytes, M, N, K, s, layer + i > 0);
              }
          }, 1, 7, 32);
          printf("%-10s chain   %-9s %s M %2d grid/SM %2d %8.2f us/layer %7.0f GB/s\n", variant, a.name, KIND_NAME[kind], M, perSm, us, bytes / us / 1e3);
          if (perSm == 0 && kind != 1) {  // IS and FS once more without the residual adds (bench gemm --layer's chain)
            const float us0 = graph_us(st, [&](cudaStream_t s) {
              for (int layer = 0; layer < 32; ++layer)
                for (int i = 0; i < 4; ++i) {
                  const int N = a.shapes[i][0], K = a.shapes[i][1], cp = layer & 1;
                  Operands o = ops[kind][mi][i];
                  o.residual = nullptr;
                  launch(cs[i], o, (size_t)cp * N * K / 2, (size_t)cp * (K / 128) * N * sBytes, M, N, K, s, layer + i > 0);
                }
            }, 1, 7, 32);
            printf("%-10s chain0  %-9s %s M %2d grid/SM %2d %8.2f us/layer %7.0f GB/s (no residual)\n", variant, a.name, KIND_NAME[kind], M, perSm, us0, bytes / us0 / 1e3);
          }
        }
    for (int i = 0; i < 4; ++i) {
      cudaFree(ops[0][0][i].W); cudaFree(ops[0][0][i].S); cudaFree(ops[1][0][i].S); cudaFree(ops[2][0][i].S); cudaFree(ops[0][0][i].shift);
      for (int kind = 0; kind < 3; ++kind)
        for (int mi = 0; mi < 2; ++mi) {
          Operands& o = ops[kind][mi][i];
          cudaFree(o.residual);
          cudaFree(o.A); cudaFree(o.sx); cudaFree(o.out);
        }
    }
  }
}
