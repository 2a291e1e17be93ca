// Seeded RNG: determinism and rough distribution checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/core/rng.ts';

test('same seed gives the same sequence; different seeds differ', () => {
  const a = new Rng(42), b = new Rng(42), c = new Rng(43);
  const xa = Array.from({ length: 8 }, () => a.nextU32());
  const xb = Array.from({ length: 8 }, () => b.nextU32());
  const xc = Array.from({ length: 8 }, () => c.nextU32());
  assert.deepEqual(xa, xb);
  assert.notDeepEqual(xa, xc);
});

test('normals have mean ~0 and std ~1', () => {
  const x = new Rng(7).normals(100_000);
  let s = 0, s2 = 0;
  for (const v of x) { s += v; s2 += v * v; }
  const mean = s / x.length, std = Math.sqrt(s2 / x.length - mean * mean);
  assert.ok(Math.abs(mean) < 0.02, `mean ${mean}`);
  assert.ok(Math.abs(std - 1) < 0.02, `std ${std}`);
});
