// fp16 / bf16 conversions checked against independent references: decoding by the textbook
// formula over every bit pattern, encoding by nearest search in the sorted list of all finite
// values (ties to the even bit pattern), on random fp32 bit patterns and on exact halfway points.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  bf16ArrayToF32, bf16ToF32, f16ArrayToF32, f16ToF32, f32ArrayToBf16, f32ArrayToF16, f32ToBf16,
  f32ToF16, roundToF16,
} from '../../src/core/dtype.ts';
import { Rng } from '../../src/core/rng.ts';

/** Value of a 16-bit float with `expBits` exponent bits and `mantBits` mantissa bits, by formula. */
function decodeByFormula(bits: number, expBits: number, mantBits: number): number {
  const sign = bits >> (expBits + mantBits) & 1 ? -1 : 1;
  const e = (bits >> mantBits) & ((1 << expBits) - 1);
  const m = bits & ((1 << mantBits) - 1);
  const bias = (1 << (expBits - 1)) - 1;
  if (e === (1 << expBits) - 1) return m === 0 ? sign * Infinity : NaN;
  if (e === 0) return sign * 2 ** (1 - bias) * (m / 2 ** mantBits);
  return sign * 2 ** (e - bias) * (1 + m / 2 ** mantBits);
}
const f16Ref = (b: number) => decodeByFormula(b, 5, 10);
const bf16Ref = (b: number) => decodeByFormula(b, 8, 7);

/**
 * Reference encoder: nearest of all non-negative finite values of the format (sorted by bit
 * pattern), plus the +inf pattern standing for 2^(emax+1) so overflow rounds like IEEE; ties go
 * to the even bit pattern. NaN → any NaN pattern (checked separately).
 */
function makeNearestEncoder(decode: (b: number) => number, infBits: number, infAsValue: number) {
  const values = new Float64Array(infBits + 1);
  for (let b = 0; b < infBits; b++) values[b] = decode(b);
  values[infBits] = infAsValue;
  const signBit = 0x8000;
  return (xIn: number): number => {
    const x = Math.fround(xIn);
    const sign = x < 0 || Object.is(x, -0) ? signBit : 0;
    const a = Math.abs(x);
    if (a >= infAsValue) return sign | infBits;
    let lo = 0, hi = infBits; // values[lo] <= a < values[hi]
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (values[mid]! <= a) lo = mid; else hi = mid;
    }
    const twiceA = 2 * a, sum = values[lo]! + values[hi]!; // both exact in float64
    const pick = twiceA < sum ? lo : twiceA > sum ? hi : (lo % 2 === 0 ? lo : hi);
    return sign | pick;
  };
}
const f16Encode = makeNearestEncoder(f16Ref, 0x7c00, 65536);
const bf16Encode = makeNearestEncoder(bf16Ref, 0x7f80, 2 ** 128);

const f32FromBits = (u: number) => new Float32Array(new Uint32Array([u >>> 0]).buffer)[0]!;
const f32BitsOf = (x: number) => new Uint32Array(new Float32Array([x]).buffer)[0]!;

function sameNumber(actual: number, expected: number, what: string): void {
  if (Number.isNaN(expected)) assert.ok(Number.isNaN(actual), `${what}: expected NaN, got ${actual}`);
  else assert.ok(Object.is(actual, expected), `${what}: expected ${expected}, got ${actual}`);
}

function checkEncoded(actual: number, x: number, ref: (x: number) => number, expBits: number, mantBits: number): void {
  if (Number.isNaN(x)) {
    const expMask = ((1 << expBits) - 1) << mantBits, mantMask = (1 << mantBits) - 1;
    assert.equal(actual & expMask, expMask, `NaN must encode to exponent all ones, got 0x${actual.toString(16)}`);
    assert.ok((actual & mantMask) !== 0, `NaN must keep a non-zero mantissa, got 0x${actual.toString(16)}`);
    assert.ok((actual & (1 << (mantBits - 1))) !== 0, `NaN must be quiet, got 0x${actual.toString(16)}`);
    return;
  }
  const want = ref(x);
  assert.equal(actual, want, `encode(${x} = 0x${f32BitsOf(x).toString(16)}): got 0x${actual.toString(16)}, want 0x${want.toString(16)}`);
}

/** Every f32 around each halfway point between adjacent 16-bit values: midpoint and ±1 ulp. */
function halfwayCases(decode: (b: number) => number, infBits: number, infAsValue: number): number[] {
  const out: number[] = [];
  for (let b = 0; b < infBits; b++) {
    const next = b + 1 === infBits ? infAsValue : decode(b + 1);
    const mid = (decode(b) + next) / 2;
    const midBits = f32BitsOf(mid);
    if (f32FromBits(midBits) !== mid) continue; // midpoint not representable in fp32 (never for these formats)
    for (const d of [-1, 0, 1]) {
      const v = f32FromBits(midBits + d);
      out.push(v, -v);
    }
  }
  return out;
}

test('f16ToF32 and f16ArrayToF32 match the formula for all 65536 bit patterns', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const bulk = f16ArrayToF32(all);
  const bulkBits = new Uint32Array(bulk.buffer);
  for (let b = 0; b < 65536; b++) {
    sameNumber(f16ToF32(b), f16Ref(b), `f16ToF32(0x${b.toString(16)})`);
    sameNumber(bulk[b]!, f16Ref(b), `f16ArrayToF32[0x${b.toString(16)}]`);
    if (Number.isNaN(f16Ref(b))) {
      // NaN payload and sign kept bit-exactly: sign<<31 | all-ones exponent | mantissa<<13
      assert.equal(bulkBits[b], (((b & 0x8000) << 16) | 0x7f800000 | ((b & 0x3ff) << 13)) >>> 0);
    }
  }
});

test('f16ArrayToF32 writes into a given destination', () => {
  const dst = new Float32Array(4).fill(123);
  const out = f16ArrayToF32(new Uint16Array([0x3c00, 0xc000, 0x0001, 0x7bff]), dst);
  assert.equal(out, dst);
  assert.deepEqual([...dst], [1, -2, 2 ** -24, 65504]);
});

test('f32ToF16 round-trips every f16 value (incl. ±0, subnormals, ±inf)', () => {
  for (let b = 0; b < 65536; b++) {
    const v = f16Ref(b);
    if (Number.isNaN(v)) continue;
    assert.equal(f32ToF16(v), b, `0x${b.toString(16)}`);
    sameNumber(roundToF16(v), v, `roundToF16(${v})`);
  }
});

test('f32ToF16 matches nearest search at every halfway point ±1 ulp (ties to even, overflow to inf)', () => {
  const cases = halfwayCases(f16Ref, 0x7c00, 65536);
  assert.ok(cases.length > 180_000);
  for (const x of cases) checkEncoded(f32ToF16(x), x, f16Encode, 5, 10);
  assert.equal(f32ToF16(65519.99), 0x7bff);
  assert.equal(f32ToF16(65520), 0x7c00); // halfway to the next (virtual) value, max mantissa is odd
  assert.equal(f32ToF16(2 ** -25), 0x0000); // tie between 0 and the smallest subnormal → 0
  assert.equal(f32ToF16(-(2 ** -25) * 1.5), 0x8001);
  assert.equal(f32ToF16(1e9), 0x7c00);
  assert.equal(f32ToF16(-Infinity), 0xfc00);
  assert.equal(f32ToF16(-0), 0x8000);
});

test('f32ToF16 matches nearest search on random fp32 bit patterns (fast-check)', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), (u) => {
      const x = f32FromBits(u);
      checkEncoded(f32ToF16(x), x, f16Encode, 5, 10);
    }),
    { numRuns: 50_000, seed: 1234 },
  );
  // patterns concentrated in the fp16 range (exponents 100..145: subnormal to overflow)
  fc.assert(
    fc.property(fc.boolean(), fc.integer({ min: 100, max: 145 }), fc.integer({ min: 0, max: 0x7fffff }), (neg, e, m) => {
      const x = f32FromBits(((neg ? 0x80000000 : 0) | (e << 23) | m) >>> 0);
      checkEncoded(f32ToF16(x), x, f16Encode, 5, 10);
    }),
    { numRuns: 50_000, seed: 99 },
  );
});

test('f32ToF16 turns every NaN (signalling, quiet, any payload) into a quiet NaN', () => {
  for (const u of [0x7f800001, 0x7fc00000, 0xffffffff, 0x7f802000, 0xff800001, 0x7fbfffff]) {
    const x = f32FromBits(u);
    checkEncoded(f32ToF16(x), x, f16Encode, 5, 10);
  }
  assert.ok(Number.isNaN(roundToF16(NaN)));
});

test('bf16ToF32 and bf16ArrayToF32 match the formula for all 65536 bit patterns', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const bulk = bf16ArrayToF32(all);
  for (let b = 0; b < 65536; b++) {
    sameNumber(bf16ToF32(b), bf16Ref(b), `bf16ToF32(0x${b.toString(16)})`);
    sameNumber(bulk[b]!, bf16Ref(b), `bf16ArrayToF32[0x${b.toString(16)}]`);
    if (!Number.isNaN(bf16Ref(b))) assert.equal(f32ToBf16(bf16Ref(b)), b);
  }
});

test('f32ToBf16 matches nearest search at halfway points and on random bit patterns', () => {
  const cases = halfwayCases(bf16Ref, 0x7f80, 2 ** 128);
  assert.ok(cases.length > 190_000);
  for (const x of cases) checkEncoded(f32ToBf16(x), x, bf16Encode, 8, 7);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), (u) => {
      const x = f32FromBits(u);
      checkEncoded(f32ToBf16(x), x, bf16Encode, 8, 7);
    }),
    { numRuns: 50_000, seed: 4321 },
  );
  // NaN whose payload lives only in the low 16 bits must not become infinity
  checkEncoded(f32ToBf16(f32FromBits(0x7f800001)), NaN, bf16Encode, 8, 7);
  assert.equal(f32ToBf16(f32FromBits(0x7f7fffff)), 0x7f80); // max fp32 rounds up to inf
});

test('bulk encoders equal the scalar ones on random bit patterns', () => {
  const rng = new Rng(5);
  const bits = new Uint32Array(100_000);
  for (let i = 0; i < bits.length; i++) bits[i] = rng.nextU32();
  const x = new Float32Array(bits.buffer);
  const h = f32ArrayToF16(x), bh = f32ArrayToBf16(x);
  for (let i = 0; i < x.length; i++) {
    assert.equal(h[i], f32ToF16(x[i]!));
    assert.equal(bh[i], f32ToBf16(x[i]!));
  }
  // subarray views with a byte offset work too
  const sub = x.subarray(3, 11);
  assert.deepEqual([...f32ArrayToF16(sub)], [...h.subarray(3, 11)]);
});
