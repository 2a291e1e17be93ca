// rope.cuh — the rotary embedding of one pair of a head's values, the arithmetic rope_kv.cu (every
// step) and attention_decode.cu (decode steps, RoPE fused) share so both write the same bits (the
// calibration forward, calib_forward.cu, shares the pairing only: it rotates fp32 in float64):
// pair i of a head of 2·half values is (i, i + half) for layout 0 (HF rotate_half) or (2i, 2i + 1)
// for layout 1 (llama2.c); on the fp16 values (+ bias) in fp32, with the CPU's angle tables,
//   y0 = fp16(x0·c − x1·s), y1 = fp16(x1·c + x0·s)   (.rn, no contraction).
// Include after ptx.cuh.

DEVI void rope_pair(int i, int half, int layout, int& a, int& b) {
  a = layout == 0 ? i : 2 * i;
  b = layout == 0 ? i + half : 2 * i + 1;
}
// Pair (a, b) of a head's values (x: the head's first value, bias: its bias or 0) rotated by (c, s).
DEVI void rope_rotate(const u16* x, const u16* bias, int a, int b, float c, float s, u16& y0, u16& y1) {
  float x0 = h2f(x[a]), x1 = h2f(x[b]);
  if (bias) x0 = fadd_rn(x0, h2f(bias[a])), x1 = fadd_rn(x1, h2f(bias[b]));
  y0 = f2h_rn(fadd_rn(fmul_rn(x0, c), -fmul_rn(x1, s)));
  y1 = f2h_rn(fadd_rn(fmul_rn(x1, c), fmul_rn(x0, s)));
}
// A v value with its bias (one fp16 rounding), as appended to the cache.
DEVI u16 with_bias(u16 v, const u16* bias, int at) { return bias ? f2h_rn(fadd_rn(h2f(v), h2f(bias[at]))) : v; }
