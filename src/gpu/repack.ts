// Weight and scale repacking for the GPU kernels of src/gpu/kernels/w4_gemm.cu: from the canonical,
// kernel-independent formats (docs/QUANT_SPEC.md: int4 U8 [N, K/2], scales [N, K/G]) into the
// layouts the kernels load with 16-byte accesses. docs/KERNELS.md draws the layouts.
//
// Packed weights: 16-byte chunks, tile-contiguous: [N/128 column blocks][K/128 k-tiles][16 n8 rows]
// [lane 0..31] (the last column block has N/8 mod 16 rows when N % 128 != 0), so one block's k-tile
// is one contiguous 8 KB run (packedChunkIndex). A chunk = 4 little-endian u32 words j = 0..3 (one
// per 32-wide k-step of the 128-wide k-tile). For lane l of n8 row r: n = 8r + (l >> 2), t = l & 3,
// k-base = 128·kt + 32·j. That is exactly the B fragment of one MMA per word:
//   W4A8 (mma m16n8k32 s8): byte b of the word holds q[n, base + 4t + b] in its low nibble
//         and q[n, base + 16 + 4t + b] in its high nibble (two's complement int4).
//   W4A16 (2× mma m16n8k16 f16): nibble h (bits 4h..4h+3) holds u[n, base + 8h + 2t] and nibble
//         4+h (bits 16+4h..) holds u[n, base + 8h + 2t + 1], with u = q + 8 (offset binary).
import { fail } from '../core/errors.ts';
import { f32ToF16 } from '../core/dtype.ts';

/** Which packed weight layout. */
export type WeightLayout = 'w4a8' | 'w4a16';

function checkWeightShape(where: string, packed: Uint8Array, n: number, k: number): void {
  if (!Number.isInteger(n) || !Number.isInteger(k) || n <= 0 || k <= 0) fail(where, `bad shape N=${n} K=${k}`);
  if (n % 8 !== 0) fail(where, `N = ${n} must be a multiple of 8`);
  if (k % 128 !== 0) fail(where, `K = ${k} must be a multiple of 128`);
  if (packed.length !== (n * k) / 2) fail(where, `got ${packed.length} bytes, expected N*K/2 = ${(n * k) / 2}`);
}

/** Index of the 16-byte chunk for (n8 row, k-tile, lane) in the packed layout (see the header). */
export function packedChunkIndex(n8: number, kt: number, lane: number, n: number, k: number): number {
  const kTiles = k / 128;
  const block = Math.floor(n8 / 16);
  const rowsInBlock = Math.min(16, n / 8 - block * 16);
  return (block * 16 * kTiles + kt * rowsInBlock + (n8 % 16)) * 32 + lane;
}

/** Signed int4 value of column k in canonical row n. */
function nibbleAt(packed: Uint8Array, rowBytes: number, n: number, k: number): number {
  const byte = packed[n * rowBytes + (k >> 1)]!;
  return (k & 1) === 0 ? byte & 0x0f : byte >> 4;
}

/**
 * Canonical int4 U8 [N, K/2] → the kernel layout (N·K/2 bytes, see the header).
 * `layout` 'w4a8' for the W4A8 kernels (IS, FS, PC), 'w4a16' for w4a16_gemm_g128.
 */
export function repackWeights(packed: Uint8Array, n: number, k: number, layout: WeightLayout): Uint8Array {
  const where = `repackWeights(${layout})`;
  checkWeightShape(where, packed, n, k);
  const out = new Uint8Array(packed.length);
  const view = new DataView(out.buffer);
  const rowBytes = k / 2;
  const kTiles = k / 128;
  for (let n8 = 0; n8 < n / 8; n8++) {
    for (let kt = 0; kt < kTiles; kt++) {
      for (let lane = 0; lane < 32; lane++) {
        const chunk = packedChunkIndex(n8, kt, lane, n, k);
        const row = n8 * 8 + (lane >> 2);
        const t = lane & 3;
        for (let j = 0; j < 4; j++) {
          const base = kt * 128 + j * 32;
          let word = 0;
          if (layout === 'w4a8') {
            for (let b = 0; b < 4; b++) {
              const lo = nibbleAt(packed, rowBytes, row, base + 4 * t + b);
              const hi = nibbleAt(packed, rowBytes, row, base + 16 + 4 * t + b);
              word |= (lo | (hi << 4)) << (8 * b);
            }
          } else {
            for (let h = 0; h < 4; h++) {
              const u0 = nibbleAt(packed, rowBytes, row, base + 8 * h + 2 * t) ^ 8;
              const u1 = nibbleAt(packed, rowBytes, row, base + 8 * h + 2 * t + 1) ^ 8;
              word |= (u0 << (4 * h)) | (u1 << (16 + 4 * h));
            }
          }
          view.setUint32(chunk * 16 + j * 4, word >>> 0, true);
        }
      }
    }
  }
  return out;
}

function checkScales(where: string, length: number, n: number, groups: number): void {
  if (!Number.isInteger(groups) || groups <= 0) fail(where, `bad group count ${groups}`);
  if (length !== n * groups) fail(where, `got ${length} scales, expected N*K/G = ${n}*${groups}`);
}

/** [N, groups] → [groups, N] (the kernels read one row of N scales per group). */
function transpose<T extends Int32Array | Float32Array | Uint16Array>(src: ArrayLike<number>, n: number, groups: number, out: T): T {
  for (let r = 0; r < n; r++) for (let g = 0; g < groups; g++) out[g * n + r] = src[r * groups + g]!;
  return out;
}

/** IS: ŝ int32 [N, K/G] → int32 [K/G, N]. */
export function packIntScales(iscales: Int32Array, n: number, groups: number): Int32Array {
  checkScales('packIntScales', iscales.length, n, groups);
  return transpose(iscales, n, groups, new Int32Array(n * groups));
}

/** FS: fp16-exact scales [N, K/G] → fp32 [K/G, N]. */
export function packFloatScales(scales: Float32Array, n: number, groups: number): Float32Array {
  checkScales('packFloatScales', scales.length, n, groups);
  return transpose(scales, n, groups, new Float32Array(n * groups));
}

/** W4A16: fp16-exact scales [N, K/G] → fp16 bits [K/G, N]. */
export function packHalfScales(scales: Float32Array, n: number, groups: number): Uint16Array {
  checkScales('packHalfScales', scales.length, n, groups);
  const out = transpose(scales, n, groups, new Float32Array(n * groups));
  const bits = new Uint16Array(out.length);
  for (let i = 0; i < out.length; i++) bits[i] = f32ToF16(out[i]!);
  return bits;
}
