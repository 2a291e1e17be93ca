// Timing probe for decode attention (src/gpu/kernels/attention_decode.cu; reference path: attention.cu,
// one block per (sequence, KV head), + quantize_f32) under compile-time variants (-D flags, ../probe.sh).
// Per arch (LLaMA-2-7B MHA 32/32, LLaMA-3-8B GQA 32/8; head size 128), batch B and KV length L:
//   check: one launch of each path on the same cache: fp32/fp16 rows within 2e-3, int8 within 1,
//          scales within 1e-3 relative (the fused kernel's warps keep their own running maxima).
//   time:  NL layers (distinct caches, > 2x L2 in all) in one CUDA graph with programmatic dependent
//          launch, each layer as the engine's decode step runs it:
//          "<variant> <arch> B L path splits us/layer GB/s" (GB/s of the K/V bytes read), for
//          path old (rope_kv + attention.cu unsplit + quantize_f32), fused (this kernel with RoPE and
//          the KV append inside, int8 out), fused16 (fp16 out), rope (rope_kv alone) and read (a plain
//          read of the same K/V bytes).
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include "../probe_util.h"
namespace old_k {
#include "../../../src/gpu/kernels/attention.cu"
}
namespace lo {
#include "../../../src/gpu/kernels/layer_ops.cu"
}
namespace rk {
#include "../../../src/gpu/kernels/rope_kv.cu"
}
namespace nd {
#include "../../../src/gpu/kernels/attention_decode.cu"
}
namespace sr {
#include "../../../src/gpu/kernels/stream_read.cu"
}
typedef unsigned short u16;
typedef unsigned int u32;

__global__ void fill_f16(u16* p, size_t n, u32 seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    u32 h = (u32)i * 2654435761u ^ seed;
    h ^= h >> 15; h *= 2246822519u; h ^= h >> 13;
    const float v = ((float)(h & 0xFFFF) / 32768.f) - 1.f;
    p[i] = __half_as_ushort(__float2half(v));
  }
}
static u16* dev_f16(size_t n, u32 seed) {
  u16* p; CK(cudaMalloc(&p, n * 2));
  fill_f16<<<1024, 256>>>(p, n, seed);
  CK(cudaGetLastError());
  return p;
}

template <typename... P, typename... A> static void launch(void (*fn)(P...), dim3 grid, int threads, int smem, cudaStream_t st, A... args) {
  cudaLaunchConfig_t lc = {};
  lc.gridDim = grid; lc.blockDim = dim3(threads); lc.dynamicSmemBytes = smem; lc.stream = st;
  cudaLaunchAttribute at[1];
  at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization; at[0].val.programmaticStreamSerializationAllowed = 1;
  lc.attrs = at; lc.numAttrs = 1;
  CK(cudaLaunchKernelEx(&lc, fn, (P)args...));
}

struct Layer { u16 *k, *v; };
struct Case { int nH, nKv, B, L, maxSeq; };
struct Bufs {
  u16 *qkv, *out16; float *out32, *ws_o, *ws_ml, *amax, *sx, *cos, *sin; signed char* q8; u32* counters;
  int *rowSeq, *seqStart, *seqLen, *pos0, *slot; u32* sink; u16* readSrc;
};
static const int HD = 128, SMEM_OLD = 4 * 64 * HD * 2, SMEM_NEW = AD_STAGES * 2 * 64 * HD * 2;
static const int AD_BLOCK = AD_THREADS;

// path: 0 rope_kv + attention.cu + quantize_f32 (int8 out), 1 fused (RoPE inside, int8), 2 fused (fp16),
// 3 rope_kv only, 4 a plain read of the layer's K/V bytes; old16 (path 0 with fp16 out, no quantize) = 5
static void layer(int path, const Case& c, const Layer& L, const Bufs& b, int splits, cudaStream_t st) {
  const int qkvPairs = (c.nH + 2 * c.nKv) * HD / 2;
  if (path == 0 || path == 3 || path == 5) launch(rk::rope_kv, dim3(c.B, (qkvPairs + 127) / 128), 128, 0, st, b.qkv, (const u16*)nullptr, (const float*)b.cos, (const float*)b.sin,
         (const int*)b.rowSeq, (const int*)b.seqStart, (const int*)b.pos0, (const int*)b.slot, L.k, L.v, c.nH, c.nKv, HD, c.maxSeq, 0);
  const float sl2 = 1.4426950408889634f / sqrtf((float)HD);
  if (path == 0 || path == 5) {  // attention.cu (one block per (sequence, KV head): no split) + quantize_f32
    launch(old_k::attention_hd128_w1, dim3(1, c.nKv, c.B), 32, SMEM_OLD, st, (const u16*)b.qkv, b.out16, path == 0 ? b.out32 : nullptr,
           (const u16*)L.k, (const u16*)L.v, (const int*)b.seqStart, (const int*)b.seqLen, (const int*)b.pos0, (const int*)b.slot, c.nH, c.nKv,
           c.maxSeq, 0, sl2);
    if (path == 0) launch(lo::quantize_f32, dim3(c.B), 256, 0, st, (const float*)b.out32, b.q8, b.sx, c.nH * HD);
  } else if (path == 1 || path == 2) {
    launch(nd::attention_decode_hd128, dim3(splits, c.nKv, c.B), AD_BLOCK, SMEM_NEW, st, (const u16*)b.qkv, b.out16, path == 1 ? b.out32 : nullptr,
           path == 1 ? b.q8 : nullptr, path == 1 ? b.sx : nullptr, b.ws_o, b.ws_ml, b.amax, b.counters, L.k, L.v, (const u16*)nullptr,
           (const float*)b.cos, (const float*)b.sin, (const int*)b.pos0, (const int*)b.slot, c.nH, c.nKv, c.maxSeq, 0, 0, splits, sl2);
  } else if (path == 4) {
    const unsigned long long n16 = (unsigned long long)c.B * c.nKv * c.L * HD * 2 * 2 / 16;
    launch(sr::stream_read, dim3(132 * 8), 256, 0, st, (const sr::U4*)b.readSrc, n16, b.sink);
  }
}

int main(int argc, char** argv) {
  const char* variant = argc > 1 ? argv[1] : "base";
  CK(cudaFuncSetAttribute(old_k::attention_hd128_w1, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM_OLD));
  CK(cudaFuncSetAttribute(nd::attention_decode_hd128, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM_NEW));
  cudaStream_t st; CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  struct Arch { const char* name; int nH, nKv; } archs[] = {{"llama2-7b", 32, 32}, {"llama3-8b", 32, 8}};
  const int cases[][2] = {{1, 576}, {16, 576}, {64, 576}, {1, 4096}, {16, 2048}};
  const int MAXS = 32;
  for (auto& a : archs) {
    for (auto& cs : cases) {
      Case c{a.nH, a.nKv, cs[0], cs[1], cs[1] + 64};
      const size_t cacheElems = (size_t)c.B * c.nKv * c.maxSeq * HD;
      const double layerBytes = (double)cacheElems * 2 * 2;
      const int NL = std::max(2, std::min(32, (int)ceil(240e6 / layerBytes)));
      std::vector<Layer> Ls(NL);
      for (int l = 0; l < NL; ++l) Ls[l] = {dev_f16(cacheElems, 11 + 2 * l), dev_f16(cacheElems, 12 + 2 * l)};
      Bufs b;
      const int qkvDim = (c.nH + 2 * c.nKv) * HD, qDim = c.nH * HD;
      b.qkv = dev_f16((size_t)c.B * qkvDim, 7);
      CK(cudaMalloc(&b.out16, (size_t)c.B * qDim * 2)); CK(cudaMalloc(&b.out32, (size_t)c.B * qDim * 4));
      CK(cudaMalloc(&b.q8, (size_t)c.B * qDim)); CK(cudaMalloc(&b.sx, c.B * 4));
      CK(cudaMalloc(&b.ws_o, (size_t)c.B * c.nH * MAXS * HD * 4)); CK(cudaMalloc(&b.ws_ml, (size_t)c.B * c.nH * MAXS * 8));
      CK(cudaMalloc(&b.amax, c.B * c.nKv * 4)); CK(cudaMalloc(&b.counters, (c.B * c.nKv + c.B) * 4));
      CK(cudaMemset(b.counters, 0, (c.B * c.nKv + c.B) * 4));
      std::vector<float> cosv((size_t)c.maxSeq * HD / 2), sinv(cosv.size());
      for (int p = 0; p < c.maxSeq; ++p)
        for (int i = 0; i < HD / 2; ++i) {
          const double ang = p * pow(10000.0, -2.0 * i / HD);
          cosv[(size_t)p * HD / 2 + i] = (float)cos(ang), sinv[(size_t)p * HD / 2 + i] = (float)sin(ang);
        }
      CK(cudaMalloc(&b.cos, cosv.size() * 4)); CK(cudaMemcpy(b.cos, cosv.data(), cosv.size() * 4, cudaMemcpyHostToDevice));
      CK(cudaMalloc(&b.sin, sinv.size() * 4)); CK(cudaMemcpy(b.sin, sinv.data(), sinv.size() * 4, cudaMemcpyHostToDevice));
      std::vector<int> iota(c.B), ones(c.B, 1), pos(c.B, c.L - 1);
      for (int i = 0; i < c.B; ++i) iota[i] = i;
      auto up = [&](const std::vector<int>& v) { int* d; CK(cudaMalloc(&d, v.size() * 4)); CK(cudaMemcpy(d, v.data(), v.size() * 4, cudaMemcpyHostToDevice)); return d; };
      b.rowSeq = up(iota); b.seqStart = up(iota); b.seqLen = up(ones); b.pos0 = up(pos); b.slot = up(iota);
      CK(cudaMalloc(&b.sink, 132 * 8 * 4));
      b.readSrc = dev_f16((size_t)c.B * c.nKv * c.L * HD * 2, 99);
      CK(cudaDeviceSynchronize());  // the fills run on the legacy stream
      const int wideSplits = std::min(8, (c.maxSeq + 63) / 64);  // the most the engine's rule takes (decode-splits.ts)

      // check: old vs fused from the same unrotated qkv and cache
      u16* qkv0; CK(cudaMalloc(&qkv0, (size_t)c.B * qkvDim * 2));
      CK(cudaMemcpy(qkv0, b.qkv, (size_t)c.B * qkvDim * 2, cudaMemcpyDeviceToDevice));
      for (int splits : {1, 3, wideSplits}) {
        std::vector<float> o32[2], s[2]; std::vector<signed char> q[2]; std::vector<u16> h16[2];
        for (int p = 0; p < 2; ++p) {
          CK(cudaMemsetAsync(b.out32, 0xff, (size_t)c.B * qDim * 4, st)); CK(cudaMemsetAsync(b.q8, 0x55, (size_t)c.B * qDim, st)); CK(cudaMemsetAsync(b.sx, 0xff, c.B * 4, st));
          CK(cudaMemcpyAsync(b.qkv, qkv0, (size_t)c.B * qkvDim * 2, cudaMemcpyDeviceToDevice, st));
          layer(p == 0 ? 0 : 1, c, Ls[0], b, splits, st);
          CK(cudaStreamSynchronize(st));
          o32[p].resize((size_t)c.B * qDim); q[p].resize((size_t)c.B * qDim); s[p].resize(c.B);
          CK(cudaMemcpy(o32[p].data(), b.out32, o32[p].size() * 4, cudaMemcpyDeviceToHost));
          CK(cudaMemcpy(q[p].data(), b.q8, q[p].size(), cudaMemcpyDeviceToHost));
          CK(cudaMemcpy(s[p].data(), b.sx, c.B * 4, cudaMemcpyDeviceToHost));
          CK(cudaMemsetAsync(b.out16, 0xff, (size_t)c.B * qDim * 2, st));
          CK(cudaMemcpyAsync(b.qkv, qkv0, (size_t)c.B * qkvDim * 2, cudaMemcpyDeviceToDevice, st));
          layer(p == 0 ? 5 : 2, c, Ls[0], b, splits, st);
          CK(cudaStreamSynchronize(st));
          h16[p].resize((size_t)c.B * qDim);
          CK(cudaMemcpy(h16[p].data(), b.out16, h16[p].size() * 2, cudaMemcpyDeviceToHost));
        }
        // the fused kernel's warps keep their own running max (P rounds to fp16 differently): compare
        // within 2e-3 of max |v| (values in [-1, 1]), int8 within 1, scales within 1e-3 relative
        double d32 = 0, d16 = 0, dsx = 0;
        size_t badq = 0;
        for (size_t i = 0; i < o32[0].size(); ++i) {
          d32 = std::max(d32, (double)fabsf(o32[0][i] - o32[1][i]));
          d16 = std::max(d16, (double)fabsf(__half2float(__ushort_as_half(h16[0][i])) - __half2float(__ushort_as_half(h16[1][i]))));
          badq += abs(q[0][i] - q[1][i]) > 1;
        }
        for (int i = 0; i < c.B; ++i) dsx = std::max(dsx, (double)fabsf(s[0][i] - s[1][i]) / fabsf(s[0][i]));
        const bool ok = d32 <= 2e-3 && d16 <= 2e-3 && badq == 0 && dsx <= 1e-3;
        printf("check %-10s %-9s B %3d L %5d splits %2d: %s  max |d| fp32 %.2e fp16 %.2e, |dq| > 1: %zu, sx rel %.1e\n", variant, a.name, c.B, c.L, splits,
               ok ? "ok  " : "FAIL", d32, d16, badq, dsx);
      }
#ifdef AD_TRACE
      // per-block phase stamps of one launch (after a warm-up): where a launch's time goes
      for (int splits : {1, 2, 4, 8}) {
        const int nb = splits * c.nKv * c.B;
        unsigned long long* tr; CK(cudaMalloc(&tr, (size_t)nb * 8 * 8));
        CK(cudaMemcpyToSymbol(nd::ad_trace, &tr, sizeof(tr)));
        layer(1, c, Ls[0], b, splits, st);
        CK(cudaMemsetAsync(tr, 0, (size_t)nb * 64, st));
        layer(0, c, Ls[1], b, 1, st);  // a predecessor to wait for (the engine's is the q|k|v GEMM)
        layer(1, c, Ls[1], b, splits, st);
        CK(cudaStreamSynchronize(st));
        std::vector<unsigned long long> h((size_t)nb * 8);
        CK(cudaMemcpy(h.data(), tr, h.size() * 8, cudaMemcpyDeviceToHost));
        unsigned long long t0 = ~0ull, t1 = 0;
        for (int i = 0; i < nb; ++i) { t0 = std::min(t0, h[i * 8]); for (int j = 0; j < 8; ++j) t1 = std::max(t1, h[i * 8 + j]); }
        auto med = [&](int a, int z) {
          std::vector<float> v;
          for (int i = 0; i < nb; ++i) if (h[i * 8 + a] && h[i * 8 + z]) v.push_back((h[i * 8 + z] - h[i * 8 + a]) / 1e3f);
          return v.empty() ? -1.f : median(v);
        };
        std::vector<float> ent;
        for (int i = 0; i < nb; ++i) ent.push_back((h[i * 8] - t0) / 1e3f);
        std::sort(ent.begin(), ent.end());
        printf("trace %-9s B %3d L %5d splits %2d blocks %5d: span %6.2f us; entry p50 %5.2f max %5.2f; wait %5.2f loop %5.2f partial %5.2f merge %5.2f quant %5.2f\n",
               a.name, c.B, c.L, splits, nb, (t1 - t0) / 1e3, ent[nb / 2], ent[nb - 1], med(0, 1), med(1, 2), med(2, 3), med(3, 4), med(4, 5));
        unsigned long long* none = nullptr;
        CK(cudaMemcpyToSymbol(nd::ad_trace, &none, sizeof(none)));
        cudaFree(tr);
      }
#endif
      // time
      std::vector<std::pair<int, int>> runs = {{3, 1}, {4, 1}, {0, 1}};
      for (int sp : {1, 2, 3, 4, 6, 8, 12, 16, 24, 32}) if (sp <= (c.L + 63) / 64) runs.push_back({1, sp});
      runs.push_back({2, 1});
      const char* PATH[5] = {"old", "fused", "fused16", "rope", "read"};
      for (const auto& run : runs) {
        const int path = run.first, splits = run.second;
        const float us = graph_us(st, [&](cudaStream_t s) { for (int l = 0; l < NL; ++l) layer(path, c, Ls[l], b, splits, s); }, 2, 10, NL);
        const double bytes = (double)c.B * c.nKv * c.L * HD * 2 * 2;
        printf("%-10s %-9s B %3d L %5d %-7s splits %2d %8.2f us/layer %7.0f GB/s\n", variant, a.name, c.B, c.L, PATH[path], splits, us, bytes / us / 1e3);
      }
      for (auto& l : Ls) { cudaFree(l.k); cudaFree(l.v); }
      cudaFree(qkv0);
      for (void* p : {(void*)b.qkv, (void*)b.out16, (void*)b.out32, (void*)b.q8, (void*)b.sx, (void*)b.ws_o, (void*)b.ws_ml, (void*)b.amax, (void*)b.counters,
                      (void*)b.cos, (void*)b.sin, (void*)b.rowSeq, (void*)b.seqStart, (void*)b.seqLen, (void*)b.pos0, (void*)b.slot, (void*)b.sink, (void*)b.readSrc})
        cudaFree(p);
    }
  }
  return 0;
}
