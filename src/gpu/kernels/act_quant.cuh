// act_quant.cuh — per-token int8 activation quantization of fp32 values (quant/act-quant,
// docs/QUANT_SPEC.md), the device half the row kernels share (layer_ops.cu, quantize_act.cu,
// attention_decode.cu): amax = max |y|, sx = fp32(amax/127), inv = fp32(127/amax) (IEEE division),
// q = clamp(rint(fp32(y·inv)), ±127); amax = 0 → sx = 0, q = 0. Include after ptx.cuh.

struct alignas(8) U2 { u32 x, y; };

DEVI int quant1(float y, float inv) {
  const int q = f2i_rni(fmul_rn(y, inv));
  return q > 127 ? 127 : (q < -127 ? -127 : q);
}
// 8 fp32 values → 8 int8 (little-endian)
DEVI U2 quantize8(const float (&y)[8], float inv) {
  u32 o[2] = {0, 0};
#pragma unroll
  for (int j = 0; j < 8; ++j) o[j >> 2] |= ((u32)quant1(y[j], inv) & 0xFF) << ((j & 3) * 8);
  U2 r;
  r.x = o[0];
  r.y = o[1];
  return r;
}
DEVI float max_abs8(const float (&y)[8]) {
  float m = 0.f;
#pragma unroll
  for (int j = 0; j < 8; ++j) m = fmaxf(m, fabsf(y[j]));
  return m;
}
// The row's per-token scale and the quantization multiplier from its max |y|.
DEVI float scale_of(float amax, float* inv) {
  *inv = amax > 0.f ? fdiv_rn(127.f, amax) : 0.f;
  return amax > 0.f ? fdiv_rn(amax, 127.f) : 0.f;
}
