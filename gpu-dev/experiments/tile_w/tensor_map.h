// tensor_map.h — the tile w probes' TMA descriptor (probe.cu, small.cu): a row-major [rows, cols]
// int8 / fp16 tensor in boxes of 128 B × boxRows, 128B swizzle, as src/gpu/tensor-map.ts encodes it
// (no -lcuda: the driver's entry point). Include after the kernel source (W4TensorMap) and probe_util.h.
#pragma once
#include <cstring>

static W4TensorMap tensor_map(const void* a, bool fp16, int rows, int cols, int boxRows) {
  static decltype(&cuTensorMapEncodeTiled) encode = nullptr;
  if (!encode) CK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", (void**)&encode, 12000, cudaEnableDefault, nullptr));
  CUtensorMap m;
  cuuint64_t dims[2] = {(cuuint64_t)cols, (cuuint64_t)rows}, strides[1] = {(cuuint64_t)cols * (fp16 ? 2 : 1)};
  cuuint32_t box[2] = {fp16 ? 64u : 128u, (cuuint32_t)boxRows}, es[2] = {1, 1};
  if (encode(&m, fp16 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, (void*)a, dims, strides, box, es,
             CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
             CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) != CUDA_SUCCESS) { printf("cuTensorMapEncodeTiled failed\n"); exit(1); }
  W4TensorMap t;
  memcpy(&t, &m, sizeof t);
  return t;
}
