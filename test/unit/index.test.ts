// The public API (src/index.ts) loads without a GPU and carries the entry points the README names;
// a quick end-to-end use of it: quantize a random layer with integer scales and run the IS linear.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as intscale from '../../src/index.ts';
import { Rng } from '../../src/core/rng.ts';

test('the public API exports the documented entry points', () => {
  for (const name of ['loadModel', 'openSafetensorsDir', 'writeQuantizedModel', 'quantizeRtn', 'computeIntegerScales',
    'exactBounds', 'IsLinear', 'FsLinear', 'Session', 'forwardBatch', 'perplexity', 'compareModes', 'Gpu', 'W4GemmLaunch'] as const) {
    assert.equal(typeof intscale[name], 'function', name);
  }
});

test('quantize → integer scales → IS linear through the public API, proven overflow-free', () => {
  const rng = new Rng(5);
  const N = 32, K = 256, M = 3;
  const qw = intscale.quantizeRtn(rng.normals(N * K, 0.02), N, K, { group: 64 });
  const is = intscale.computeIntegerScales(qw, 'auto', 'api');
  assert.ok(Math.max(...intscale.exactBounds(is.iscales, qw)) < 2 ** 31);
  const x = rng.normals(M * K);
  const y = new intscale.IsLinear(qw, is).forward(x, M);
  const ref = new intscale.FsLinear(qw).forward(x, M);
  for (let i = 0; i < y.length; i++) assert.ok(Math.abs(y[i]! - ref[i]!) <= 1e-5 * (1 + Math.abs(ref[i]!)), `${i}: ${y[i]} vs ${ref[i]}`);
});
