// Canonical, kernel-independent int4 packing (docs/QUANT_SPEC.md): U8 [N, K/2], byte j of a row
// holds k = 2j in its low nibble and k = 2j+1 in its high nibble, two's complement.
// Kernel-specific layouts are derived from this by the GPU code.
import { fail } from '../core/errors.ts';

/** Pack int4 values q[N, K] (each in [-8, 7]) into bytes [N, K/2]. */
export function packInt4(q: Int8Array, rows: number, cols: number): Uint8Array {
  if (cols % 2 !== 0) fail('packInt4', `K = ${cols} must be even`);
  if (q.length !== rows * cols) fail('packInt4', `got ${q.length} values, expected ${rows}x${cols}`);
  const out = new Uint8Array((rows * cols) / 2);
  for (let i = 0; i < out.length; i++) {
    const lo = q[2 * i]!;
    const hi = q[2 * i + 1]!;
    if (lo < -8 || lo > 7 || hi < -8 || hi > 7) fail('packInt4', `value out of int4 range at index ${lo < -8 || lo > 7 ? 2 * i : 2 * i + 1}`);
    out[i] = (lo & 0x0f) | ((hi & 0x0f) << 4);
  }
  return out;
}

/** Unpack bytes [N, K/2] into int4 values q[N, K] in [-8, 7]. */
export function unpackInt4(packed: Uint8Array, rows: number, cols: number): Int8Array {
  if (cols % 2 !== 0) fail('unpackInt4', `K = ${cols} must be even`);
  if (packed.length !== (rows * cols) / 2) fail('unpackInt4', `got ${packed.length} bytes, expected ${rows}x${cols / 2}`);
  const out = new Int8Array(rows * cols);
  for (let i = 0; i < packed.length; i++) {
    const b = packed[i]!;
    out[2 * i] = ((b & 0x0f) << 28) >> 28;
    out[2 * i + 1] = (b << 24) >> 28;
  }
  return out;
}
