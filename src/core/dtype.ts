// Half-precision conversions: IEEE fp16 and bfloat16 <-> fp32, scalar and bulk.
// Encoding rounds to nearest, ties to even; NaN encodes as a quiet NaN; overflow gives ±inf.
// Inputs to the f32→16-bit encoders are first rounded to fp32 (Math.fround), matching the spec's
// "computed in fp32, then rounded to fp16" and a GPU's __float2half on the same fp32 value.

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Bits of Math.fround(x) as an unsigned 32-bit integer. */
function f32Bits(x: number): number {
  scratchF32[0] = x;
  return scratchU32[0]!;
}

/** Encode fp32 bits as fp16 bits (round to nearest even). */
function f32BitsToF16(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | (mant !== 0 ? 0x7e00 : 0x7c00);
  const e = exp - 112; // fp16 biased exponent (127 - 15)
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // fp16 subnormal (or zero): value = m · 2^(exp-150), in units of 2^-24 → m >> (14 - e).
    if (e < -10) return sign; // below half the smallest subnormal: rounds to ±0
    const m = mant | 0x800000;
    const shift = 14 - e; // 14..24
    let q = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (q & 1) !== 0)) q++;
    return sign | q; // a carry into 0x400 is exactly the smallest normal
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++; // carry may reach 0x7c00 = inf
  return sign | h;
}

let f16Table: Uint32Array | undefined;

/** fp32 bit pattern of every fp16 value (NaN payloads preserved). */
function f16ToF32BitsTable(): Uint32Array {
  if (f16Table) return f16Table;
  const table = new Uint32Array(65536);
  const asF32 = new Float32Array(table.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0x1f) table[h] = (sign | 0x7f800000 | (mant << 13)) >>> 0;
    else if (exp !== 0) table[h] = (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
    else asF32[h] = (sign ? -1 : 1) * mant * 2 ** -24; // zero or subnormal (exact in fp32)
  }
  f16Table = table;
  return table;
}

/** fp16 bits (0..65535) → number. */
export function f16ToF32(bits: number): number {
  scratchU32[0] = f16ToF32BitsTable()[bits & 0xffff]!;
  return scratchF32[0]!;
}

/** number → fp16 bits, via fp32; round to nearest even. */
export function f32ToF16(x: number): number {
  return f32BitsToF16(f32Bits(x));
}

/** bfloat16 bits (0..65535) → number. */
export function bf16ToF32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0]!;
}

/** fp32 bits → bf16 bits; round to nearest even, NaN stays (quiet) NaN. */
function f32BitsToBf16(b: number): number {
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) return (b >>> 16) | 0x0040;
  return ((b + 0x7fff + ((b >>> 16) & 1)) / 65536) & 0xffff;
}

/** number → bfloat16 bits, via fp32; round to nearest even. */
export function f32ToBf16(x: number): number {
  return f32BitsToBf16(f32Bits(x));
}

/** The fp16 value nearest to x (as fp32): f16ToF32(f32ToF16(x)). */
export function roundToF16(x: number): number {
  return f16ToF32(f32ToF16(x));
}

function u32View(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

function outputFor(n: number, dst: Float32Array | undefined): Float32Array {
  if (!dst) return new Float32Array(n);
  if (dst.length < n) throw new RangeError(`destination holds ${dst.length} values, need ${n}`);
  return dst;
}

/** Bulk fp16 bits → fp32 (table lookup, bit-exact incl. NaN payloads). */
export function f16ArrayToF32(src: Uint16Array, dst?: Float32Array): Float32Array {
  const out = outputFor(src.length, dst);
  const table = f16ToF32BitsTable();
  const out32 = u32View(out);
  for (let i = 0; i < src.length; i++) out32[i] = table[src[i]!]!;
  return out;
}

/** Bulk fp32 → fp16 bits. */
export function f32ArrayToF16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  const bits = u32View(src);
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToF16(bits[i]!);
  return out;
}

/** Bulk bf16 bits → fp32 (exact). */
export function bf16ArrayToF32(src: Uint16Array, dst?: Float32Array): Float32Array {
  const out = outputFor(src.length, dst);
  const out32 = u32View(out);
  for (let i = 0; i < src.length; i++) out32[i] = src[i]! << 16;
  return out;
}

/** Bulk fp32 → bf16 bits. */
export function f32ArrayToBf16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  const bits = u32View(src);
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToBf16(bits[i]!);
  return out;
}
