// The sampled references used by the GPU W4 tests agree with src/quant's plain-loop references
// (IS and PC bit-exact, FS in-order bit-exact and its any-order bound holding). Runs without a GPU.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../../src/core/rng.ts';
import { fsLinearRef } from '../../src/quant/linear-fs.ts';
import { isLinearRef } from '../../src/quant/linear-is.ts';
import { pcLinearRef } from '../../src/quant/linear-pc.ts';
import { fsAt, groupPartials, isAt, makeW4Case, pcAt, samplePositions, w4a16At } from './w4-reference.ts';

test('sampled IS/FS/PC/W4A16 references match src/quant on every position', () => {
  const rng = new Rng(31);
  for (const [M, K, N, G] of [[3, 256, 40, 32], [5, 384, 24, 128], [2, 512, 16, 64]] as const) {
    const c = makeW4Case(rng, M, K, N, G);
    const is = isLinearRef(c.x, M, c.qw, c.is);
    const fs = fsLinearRef(c.x, M, c.qw);
    const pc = pcLinearRef(c.x, M, c.qwPc);
    let nonzero = 0;
    for (let t = 0; t < M; t++) {
      for (let n = 0; n < N; n++) {
        const p = groupPartials(c, t, n);
        assert.equal(isAt(c, t, n, p), is[t * N + n], `IS (${t},${n})`);
        const f = fsAt(c, t, n, p);
        assert.equal(f.inOrder, fs[t * N + n], `FS (${t},${n})`);
        assert.ok(Math.abs(f.inOrder - f.exact) <= f.bound + 1e-30, `FS bound (${t},${n})`);
        assert.equal(pcAt(c, t, n, p), pc[t * N + n], `PC (${t},${n})`);
        const w = w4a16At(c, t, n);
        assert.ok(Number.isFinite(w.exact) && w.bound > 0);
        if (is[t * N + n] !== 0) nonzero++;
      }
    }
    assert.ok(nonzero > (M * N) / 2, 'reference outputs are mostly non-zero');
  }
});

test('samplePositions covers every row, both edge columns and whole rows 0 and M-1, without duplicates', () => {
  const rng = new Rng(32);
  const M = 20, N = 300;
  const pos = samplePositions(rng, M, N);
  const keys = new Set(pos.map(([t, n]) => `${t},${n}`));
  assert.equal(keys.size, pos.length);
  for (let t = 0; t < M; t++) assert.ok(keys.has(`${t},0`) && keys.has(`${t},${N - 1}`));
  for (let n = 0; n < N; n++) assert.ok(keys.has(`0,${n}`) && keys.has(`${M - 1},${n}`));
});
