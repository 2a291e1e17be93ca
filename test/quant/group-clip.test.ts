// The per-group clip search (group-clip.ts, used by AWQ and by GPTQ's --clip) against a float64
// brute force over the same ratios, and GPTQ --clip against independent expectations: with a
// diagonal Hessian GPTQ propagates nothing, so GPTQ + clip must equal RTN with the brute-force
// clip scales; with act-order its static group scales are the clip search's on the original
// weights. Seeded random inputs, small shapes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/core/rng.ts';
import { clipGroupScales, CLIP_SEARCH_RATIOS, hessianBlock } from '../../src/quant/group-clip.ts';
import { gptqQuantize, prepareHessian } from '../../src/quant/gptq.ts';
import { InputStats } from '../../src/quant/hessian.ts';
import { rintClamp } from '../../src/quant/fp32.ts';
import { scaleFromAbsmax } from '../../src/quant/rtn.ts';
import { randomWeights } from './helpers.ts';

/** A chosen scale's error may exceed the brute-force minimum by this relative amount (fp32 matmul vs float64 sums). */
const ERR_TOL = 1e-5;

/** float64 output error dᵀ·H_g·d of quantizing w[k0..k0+G) with scale s. */
function groupError(w: ArrayLike<number>, k0: number, G: number, s: number, h: Float64Array, K: number): number {
  const d = Array.from({ length: G }, (_, k) => {
    const x = Math.fround(w[k0 + k]!);
    return (s === 0 ? 0 : rintClamp(Math.fround(x / s), -7, 7) * s) - x;
  });
  let e = 0;
  for (let i = 0; i < G; i++) for (let j = 0; j < G; j++) e += d[i]! * h[(k0 + i) * K + k0 + j]! * d[j]!;
  return e;
}

function bruteForce(w: ArrayLike<number>, k0: number, G: number, h: Float64Array, K: number): { best: number; errs: Map<number, number> } {
  let m = 0;
  for (let k = 0; k < G; k++) m = Math.max(m, Math.abs(Math.fround(w[k0 + k]!)));
  const errs = new Map<number, number>();
  let best = Infinity;
  for (const r of CLIP_SEARCH_RATIOS) {
    const s = scaleFromAbsmax(Math.fround(r * m));
    const e = groupError(w, k0, G, s, h, K);
    errs.set(s, e);
    best = Math.min(best, e);
  }
  return { best, errs };
}

function correlatedHessian(rng: Rng, K: number, rows: number): Float64Array {
  const z = rng.normals(rows * 8, 1), a = rng.normals(8 * K, 1), x = new Float32Array(rows * K);
  for (let t = 0; t < rows; t++) for (let k = 0; k < K; k++) {
    let s = 0.2 * rng.normal();
    for (let j = 0; j < 8; j++) s += z[t * 8 + j]! * a[j * K + k]!;
    x[t * K + k] = s;
  }
  const st = new InputStats(K, true, false);
  st.add(x, rows);
  return st.hessian();
}

test('clip search: each row\'s scale is a brute-force minimum of the group\'s output error', () => {
  const rng = new Rng(8100);
  const N = 24, K = 96, G = 32;
  const w = randomWeights(rng, N, K, 0.05), h = correlatedHessian(rng, K, 300);
  let clipped = 0;
  for (let k0 = 0; k0 < K; k0 += G) {
    const s = clipGroupScales(w, N, K, k0, G, hessianBlock(h, K, k0, G));
    for (let n = 0; n < N; n++) {
      const { best, errs } = bruteForce(w.subarray(n * K), k0, G, h, K);
      const got = errs.get(s[n]!);
      assert.ok(got !== undefined, `row ${n}: scale ${s[n]} is not one of the ratios' scales`);
      assert.ok(got <= best * (1 + ERR_TOL) + 1e-30, `row ${n} group ${k0 / G}: ${got} vs best ${best}`);
      let m = 0;
      for (let k = 0; k < G; k++) m = Math.max(m, Math.abs(w[n * K + k0 + k]!));
      if (s[n]! < scaleFromAbsmax(m)) clipped++;
    }
  }
  assert.ok(clipped > 0, 'some group is clipped below absmax on correlated inputs');
});

test('GPTQ --clip with a diagonal Hessian is RTN with the brute-force clip scales (natural order and act-order)', () => {
  const rng = new Rng(8200);
  const N = 10, K = 64, G = 32;
  const w = randomWeights(rng, N, K, 0.05);
  const h = new Float64Array(K * K);
  for (let k = 0; k < K; k++) h[k * K + k] = 0.5 + 3 * rng.next();
  for (const actOrder of [false, true]) {
    const ph = prepareHessian(h, K, { actOrder });
    const got = gptqQuantize(w, N, K, ph, { group: G, actOrder, clip: true }).qw;
    for (let n = 0; n < N; n++)
      for (let g = 0; g < K / G; g++) {
        const s = got.scales[n * (K / G) + g]!;
        const { best, errs } = bruteForce(w.subarray(n * K), g * G, G, ph.h!, K);
        assert.ok(errs.get(s)! <= best * (1 + ERR_TOL) + 1e-30, `act-order ${actOrder} row ${n} group ${g}`);
        for (let k = g * G; k < (g + 1) * G; k++)
          assert.equal(got.q[n * K + k], s === 0 ? 0 : rintClamp(Math.fround(w[n * K + k]! / s), -7, 7) | 0, `q at row ${n} col ${k}`);
      }
  }
});

test('GPTQ --clip with act-order: static group scales are the clip search\'s on the original weights, and differ from absmax scales', () => {
  const rng = new Rng(8300);
  const N = 16, K = 64, G = 32;
  const w = randomWeights(rng, N, K, 0.05), h = correlatedHessian(rng, K, 400);
  const ph = prepareHessian(h, K, { actOrder: true });
  const clip = gptqQuantize(w, N, K, ph, { group: G, actOrder: true, clip: true });
  for (let g = 0; g < K / G; g++) {
    const s = clipGroupScales(w, N, K, g * G, G, hessianBlock(ph.h!, K, g * G, G));
    for (let n = 0; n < N; n++) assert.equal(clip.qw.scales[n * (K / G) + g], s[n]);
  }
  const plain = gptqQuantize(w, N, K, ph, { group: G, actOrder: true });
  assert.ok(clip.qw.scales.some((s, i) => s !== plain.qw.scales[i]), 'the clip changes some scale');
});
