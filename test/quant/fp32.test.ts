import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rint, fmaF32 } from '../../src/quant/fp32.ts';
import { Rng } from '../../src/core/rng.ts';

test('rint rounds half to even', () => {
  const cases: [number, number][] = [[0.5, 0], [1.5, 2], [2.5, 2], [-0.5, -0], [-1.5, -2], [-2.5, -2], [2.4999, 2], [-3.5000001, -4], [7, 7]];
  for (const [v, want] of cases) assert.equal(rint(v) + 0, want + 0, `rint(${v})`);
});

/** Independent exact fp32 rounding of a rational given as BigInt numerator / 2^shift. */
function exactFma(a: number, b: number, c: number): number {
  const SH = 400n; // every fp32 is an integer times 2^-149; products need 2^-298
  const toFixed = (v: number) => {
    const [m, e] = decompose(v);
    return m * 2n ** (BigInt(e) + SH);
  };
  const prod = (toFixed(a) * toFixed(b)) / 2n ** SH; // exact: both have ≥ 149 spare bits
  const sum = prod + toFixed(c);
  return roundToF32(sum, SH);
}
function decompose(v: number): [bigint, number] {
  // v = m · 2^e with integer m (v is an fp32, so |m| < 2^24 after normalisation)
  if (v === 0) return [0n, 0];
  let e = 0;
  while (!Number.isInteger(v * 2 ** -e)) e--;
  return [BigInt(v * 2 ** -e), e];
}
function roundToF32(num: bigint, sh: bigint): number {
  if (num === 0n) return 0;
  const neg = num < 0n;
  let mag = neg ? -num : num;
  // find exponent: value = mag·2^-sh; want 24 significant bits (fp32 normal range only here)
  const bits = mag.toString(2).length;
  const drop = BigInt(bits - 24);
  let m: bigint;
  if (drop > 0n) {
    const q = mag >> drop;
    const r = mag - (q << drop);
    const half = 1n << (drop - 1n);
    m = r > half || (r === half && (q & 1n) === 1n) ? q + 1n : q;
  } else m = mag;
  const value = Number(m) * 2 ** (Number(drop) - Number(sh));
  return neg ? -value : value;
}

test('fmaF32 matches an exact BigInt fma on random and midpoint-heavy inputs', () => {
  const rng = new Rng(11);
  for (let i = 0; i < 3000; i++) {
    const a = rng.int(-(2 ** 18), 2 ** 18);
    const b = Math.fround((rng.next() - 0.5) * 2 ** rng.int(-12, 4));
    let c = Math.fround((rng.next() - 0.5) * 2 ** rng.int(-4, 20));
    if (i % 3 === 0) c = Math.fround(c + Math.fround(a * b) * (rng.next() < 0.5 ? -1 : 1)); // cancellation
    assert.equal(fmaF32(a, b, c), exactFma(a, b, c), `fma(${a}, ${b}, ${c})`);
  }
  // a double sum that lands exactly on an fp32 midpoint while the exact sum does not
  assert.equal(fmaF32(1, 1, 2 ** -24 + 2 ** -60), Math.fround(1 + 2 ** -23));
});
