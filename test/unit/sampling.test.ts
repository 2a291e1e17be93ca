// Sampling: greedy is argmax, a seed reproduces the same draws, top-p keeps only the nucleus,
// and temperature sampling follows the softmax distribution.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { argmax, sampleToken, sampleTokenFullSort } from '../../src/model/sampling.ts';
import { Rng } from '../../src/core/rng.ts';
import fc from 'fast-check';

test('temperature 0 is argmax (first index on ties)', () => {
  const logits = Float32Array.from([0.5, 3, -1, 3, 2]);
  assert.equal(argmax(logits), 1);
  assert.equal(sampleToken(logits, new Rng(1), { temperature: 0 }), 1);
});

test('same seed, same tokens; different seed, different tokens', () => {
  const logits = new Rng(9).normals(200, 2);
  const draw = (seed: number) => { const r = new Rng(seed); return Array.from({ length: 50 }, () => sampleToken(logits, r, { temperature: 1, topP: 0.95 })); };
  assert.deepEqual(draw(42), draw(42));
  assert.notDeepEqual(draw(42), draw(43));
});

test('top-p keeps only the smallest set reaching the mass', () => {
  // probabilities ∝ e^logit: 0.6, 0.3, 0.1 (roughly) → top-p 0.5 keeps only the first
  const logits = Float32Array.from([Math.log(0.6), Math.log(0.3), Math.log(0.1)]);
  const rng = new Rng(3);
  for (let i = 0; i < 200; i++) assert.equal(sampleToken(logits, rng, { temperature: 1, topP: 0.5 }), 0);
  const seen = new Set<number>();
  for (let i = 0; i < 500; i++) seen.add(sampleToken(logits, rng, { temperature: 1, topP: 0.85 }));
  assert.deepEqual([...seen].sort(), [0, 1]);
});

test('temperature 1, top-p 1 follows softmax frequencies', () => {
  const probs = [0.5, 0.25, 0.125, 0.125];
  const logits = Float32Array.from(probs.map(Math.log));
  const rng = new Rng(17), counts = [0, 0, 0, 0], n = 20000;
  for (let i = 0; i < n; i++) counts[sampleToken(logits, rng, { temperature: 1, topP: 1 })]!++;
  // 5 standard deviations of a binomial count
  probs.forEach((p, i) => assert.ok(Math.abs(counts[i]! / n - p) < 5 * Math.sqrt((p * (1 - p)) / n), `token ${i}: ${counts[i]! / n} vs ${p}`));
});

test('bad parameters fail', () => {
  assert.throws(() => sampleToken(new Float32Array(3), new Rng(1), { temperature: -1 }), /temperature/);
  assert.throws(() => sampleToken(new Float32Array(3), new Rng(1), { temperature: 1, topP: 0 }), /top-p/);
});

test('top-p draws equal the full-sort definition token for token (peaked, flat, tied and wide-range logits)', () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    fc.constantFrom('flat', 'gauss', 'peaked', 'ties', 'wide'),
    fc.constantFrom(0.05, 0.3, 0.8, 1, 2.5), fc.constantFrom(1e-6, 0.1, 0.5, 0.9, 0.95, 0.999, 0.999999, 1),
    (n, seed, shape, temperature, topP) => {
      const g = new Rng(seed);
      const logits = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const x = g.next();
        logits[i] = shape === 'flat' ? x : shape === 'gauss' ? 3 * (x + g.next() + g.next() - 1.5)
          : shape === 'peaked' ? (i % 97 === 0 ? 12 : 0) + 2 * x : shape === 'ties' ? Math.floor(x * 5) : 200 * x - 100;
      }
      const a = new Rng(seed ^ 0x5bd1e995), b = new Rng(seed ^ 0x5bd1e995);
      for (let k = 0; k < 5; k++) {
        assert.equal(sampleToken(logits, a, { temperature, topP }), sampleTokenFullSort(logits, b, temperature, topP), `draw ${k}`);
      }
    }), { numRuns: 400, seed: 20261202 });
});
