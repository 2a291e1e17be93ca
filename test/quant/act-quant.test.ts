import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/core/rng.ts';
import { quantizeActivations } from '../../src/quant/act-quant.ts';

test('per-token int8: hand-computed row, zero row, and the spec formula on random rows', () => {
  // amax = 2.54 → s = 0.02, inv = 50: 1.27·50 = 63.5 → 64 (half to even), -0.01·50 = -0.5 → -0
  const x = Float32Array.from([2.54, -2.54, 1.27, -0.01, 0, 0, 0, 0]);
  const { q, scale } = quantizeActivations(x, 2, 4);
  assert.deepEqual([...q], [127, -127, 64, 0, 0, 0, 0, 0]);
  assert.equal(scale[0], Math.fround(Math.fround(2.54) / 127));
  assert.equal(scale[1], 0);

  const rng = new Rng(4);
  const M = 8, K = 300;
  const xs = rng.normals(M * K, 3);
  const r = quantizeActivations(xs, M, K);
  for (let t = 0; t < M; t++) {
    let amax = 0;
    for (let k = 0; k < K; k++) amax = Math.max(amax, Math.abs(xs[t * K + k]!));
    assert.equal(r.scale[t], Math.fround(amax / 127));
    let hits127 = false;
    for (let k = 0; k < K; k++) {
      const v = r.q[t * K + k]!;
      assert.ok(v >= -127 && v <= 127);
      if (Math.abs(v) === 127) hits127 = true;
      assert.ok(Math.abs(v * (amax / 127) - xs[t * K + k]!) <= (amax / 127) * 0.5001);
    }
    assert.ok(hits127, 'the absmax element maps to ±127');
  }
});
