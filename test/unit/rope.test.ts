// RoPE against the textbook complex-rotation formula, in both pairing layouts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyRope, ropeTables } from '../../src/model/rope.ts';
import { Rng } from '../../src/core/rng.ts';

const TOL = 2e-6; // fp32 rounding of cos/sin and products, relative to |x| ~ 1..4

/** Independent reference: pair (a, b) is the complex a + ib times e^{i·pos·θ^{-2i/d}}, float64. */
function reference(v: Float64Array, pos: number, theta: number, layout: 'half' | 'interleaved'): Float64Array {
  const d = v.length, half = d / 2, out = new Float64Array(d);
  for (let i = 0; i < half; i++) {
    const angle = pos * Math.pow(theta, (-2 * i) / d);
    const [ia, ib] = layout === 'half' ? [i, i + half] : [2 * i, 2 * i + 1];
    const re = v[ia]!, im = v[ib]!;
    out[ia] = re * Math.cos(angle) - im * Math.sin(angle);
    out[ib] = re * Math.sin(angle) + im * Math.cos(angle);
  }
  return out;
}

for (const layout of ['half', 'interleaved'] as const) {
  test(`applyRope (${layout}) matches the complex rotation, 3 heads, several positions`, () => {
    const rng = new Rng(5);
    const hd = 16, heads = 3, theta = 10000;
    const t = ropeTables({ theta, layout }, hd, 64);
    for (const pos of [0, 1, 7, 63]) {
      const v = rng.normals(heads * hd + 4);
      const orig = Float64Array.from(v);
      applyRope(v, 2, heads, pos, t, layout);
      assert.equal(v[0], Math.fround(orig[0]!), 'before the heads: untouched');
      for (let h = 0; h < heads; h++) {
        const want = reference(orig.subarray(2 + h * hd, 2 + (h + 1) * hd), pos, theta, layout);
        for (let i = 0; i < hd; i++) assert.ok(Math.abs(v[2 + h * hd + i]! - want[i]!) <= TOL * 4, `pos ${pos} head ${h} dim ${i}`);
      }
      if (pos === 0) for (let i = 0; i < v.length; i++) assert.equal(v[i], Math.fround(orig[i]!), 'position 0 is the identity');
    }
  });
}

test('the two layouts differ (a model with the wrong layout would not work)', () => {
  const t = ropeTables({ theta: 10000, layout: 'half' }, 8, 4);
  const a = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]), b = Float32Array.from(a);
  applyRope(a, 0, 1, 3, t, 'half');
  applyRope(b, 0, 1, 3, t, 'interleaved');
  assert.notDeepEqual([...a], [...b]);
});
