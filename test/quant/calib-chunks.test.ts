// The row-chunked calibration pipeline: every stage over chunks of whole windows gives bit for bit
// what one chunk of all rows gives (int4 values, scales, folded norms; GPTQ with and without
// act-order and --clip, AWQ, GPTQ + AWQ scales, RTN + SmoothQuant; down_proj's input kept or recomputed
// for the layer output), with 600 rows so that the Gram
// matrix's 512-row chunks straddle the pipeline's chunks; the statistics (hessian.ts) are the same for
// any split of their rows; GPTQ's factor written into the Hessian's array (keepHessian: false), and
// the one read straight from the Gram accumulator in the heap, are the kept path's. Seeded random model with q/k/v biases and loud channels. Small shapes: fast.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/core/rng.ts';
import { heapLiveBytes } from '../../src/core/wasm-heap.ts';
import type { Model } from '../../src/model/llama.ts';
import { calibrateModel, type MethodOptions } from '../../src/quant/calibrate.ts';
import { prepareHessian } from '../../src/quant/gptq.ts';
import { prepareHessianFromGram, releasePrepared } from '../../src/quant/gptq-gram.ts';
import { GRAM_CHUNK_ROWS, InputStats } from '../../src/quant/hessian.ts';
import { windowChunks } from '../../src/quant/layer-forward.ts';
import { smallLlama } from './small-llama.ts';

const S = 6, T = 100; // 600 rows: one full Gram chunk of 512 and a partial one

const smallModel = (seed: number): Model => smallLlama(seed, { maxSeq: 128, qkvBias: true });

const windows = (rng: Rng) => Array.from({ length: S }, () => [1, ...Array.from({ length: T - 1 }, () => rng.int(0, 63))]);

const METHODS: [string, MethodOptions][] = [
  ['gptq act-order', { method: 'gptq', group: 32, actOrder: true }],
  ['gptq --clip', { method: 'gptq', group: 32, clip: true }],
  ['gptq --awq-scales', { method: 'gptq', group: 32, actOrder: true, awqScales: true, previewSamples: 3 }],
  ['awq', { method: 'awq', group: 32, previewSamples: 5 }],
  ['rtn --smooth 0.5', { method: 'rtn', group: 32, smooth: 0.5 }],
];

for (const [label, o] of METHODS) {
  test(`chunked calibration (${label}) equals one chunk of all rows, bit for bit`, () => {
    const model = smallModel(11), w = windows(new Rng(12));
    const whole = calibrateModel(model, w, { ...o, chunkRows: S * T });
    // one window per chunk with down_proj's input recomputed for the output; two windows (200 rows) per chunk, kept
    for (const [chunkRows, mlpKeepBytes] of [[T, 0], [250, 2 ** 30]] as const) {
      const chunked = calibrateModel(model, w, { ...o, chunkRows, mlpKeepBytes });
      assert.deepEqual([...chunked.weights.keys()], [...whole.weights.keys()]);
      for (const [name, want] of whole.weights) {
        const got = chunked.weights.get(name)!;
        assert.deepEqual(got.q, want.q, `${name} q (chunks of ${chunkRows} rows)`);
        assert.deepEqual(got.scales, want.scales, `${name} scales (chunks of ${chunkRows} rows)`);
      }
      assert.deepEqual(chunked.norms, whole.norms);
      assert.deepEqual(chunked.notes.map((n) => n.awqAlpha), whole.notes.map((n) => n.awqAlpha));
      // a second run leaves the heap as the first did (the scratch slots, kept for reuse, aside, nothing stays)
      const heapAfter = heapLiveBytes();
      calibrateModel(model, w, { ...o, chunkRows, mlpKeepBytes });
      assert.equal(heapLiveBytes(), heapAfter, 'chunk buffers, dequantized weights, accumulators and factors are given back');
    }
  });
}

test('windowChunks: whole windows, at most maxRows rows (at least one window)', () => {
  assert.deepEqual(windowChunks(5, 100, 250).map((c) => [c.s0, c.s1, c.r0, c.r1]), [[0, 2, 0, 200], [2, 4, 200, 400], [4, 5, 400, 500]]);
  assert.deepEqual(windowChunks(2, 512, 100).map((c) => c.rows), [512, 512]);
  assert.throws(() => windowChunks(2, 8, 0), /chunk rows 0 must be a positive integer/);
});

test('InputStats: any split of the rows into add() calls gives the same Gram matrix and channel statistics', () => {
  const rng = new Rng(21), K = 48, rows = 2 * GRAM_CHUNK_ROWS + 77;
  const x = rng.normals(rows * K, 1);
  for (let r = 0; r < rows; r += 37) x[r * K + 5] = 40 * rng.normal(); // a loud channel
  const one = new InputStats(K);
  one.add(x, rows);
  for (const cuts of [[1, 511, 512, 513, 1100], [300, 700], Array.from({ length: 20 }, () => rng.int(0, rows)).sort((a, b) => a - b)]) {
    const st = new InputStats(K);
    let r0 = 0;
    for (const r1 of [...cuts, rows]) { st.add(x.subarray(r0 * K, r1 * K), r1 - r0); r0 = r1; }
    assert.equal(st.rows, rows);
    assert.deepEqual(st.gram, one.gram, `cuts ${cuts.join(',')}`);
    assert.deepEqual(st.absSum, one.absSum);
    assert.deepEqual(st.absMax, one.absMax);
    assert.deepEqual(st.hessian(), one.hessian());
  }
  assert.throws(() => one.add(x, 1), /statistics were already read/);
  const h = one.hessian(), consumed = one.hessian(true);
  assert.deepEqual(consumed, h);
  assert.throws(() => one.gram, /consumed/);
});

test('prepareHessian keepHessian: false writes the kept path\'s factor into the Hessian\'s array', () => {
  const rng = new Rng(31);
  for (const K of [40, 200]) { // unblocked and blocked factorization
    const rows = 3 * K, x = rng.normals(rows * K, 1);
    const st = new InputStats(K);
    st.add(x, rows);
    const h = st.hessian();
    for (let k = 0; k < K; k++) h[7 * K + k] = h[k * K + 7] = 0; // a dead input
    for (const actOrder of [false, true]) {
      const kept = prepareHessian(h, K, { actOrder });
      const mine = Float64Array.from(h), lean = prepareHessian(mine, K, { actOrder, consume: true, keepHessian: false });
      assert.equal(lean.u, mine);
      assert.equal(lean.h, undefined);
      assert.deepEqual(lean.u, kept.u, `K=${K} act-order ${actOrder}`);
      assert.deepEqual(lean.perm, kept.perm);
      assert.deepEqual(lean.dead, kept.dead);
    }
  }
  assert.throws(() => prepareHessian(new Float64Array(4).fill(1), 2, { keepHessian: false }), /keepHessian: false needs consume: true/);
});

test('prepareHessianFromGram: the factor read from the heap Gram accumulator is prepareHessian\'s, bit for bit', () => {
  const rng = new Rng(32);
  for (const K of [40, 200]) { // below and above the blocked factorization's threshold
    const rows = 3 * K, x = rng.normals(rows * K, 1);
    for (let r = 0; r < rows; r++) x[r * K + 9] = 0; // a dead input
    const half = rows >> 1, stats = () => { const st = new InputStats(K); st.add(x, half); st.add(x.subarray(half * K), rows - half); return st; };
    for (const actOrder of [false, true]) {
      const ref = prepareHessian(stats().hessian(), K, { actOrder });
      const before = heapLiveBytes(), st = stats(), got = prepareHessianFromGram(st.takeGram(), st.rows, K, { actOrder });
      assert.deepEqual(Array.from(got.u), Array.from(ref.u), `K=${K} act-order ${actOrder}`);
      assert.deepEqual(got.perm, ref.perm);
      assert.deepEqual(got.dead, ref.dead);
      assert.equal(got.dead[9], 1);
      releasePrepared(got);
      assert.ok(heapLiveBytes() <= before, 'the Gram accumulator and U are given back');
    }
  }
  const st = new InputStats(4);
  st.add(Float32Array.from({ length: 8 }, () => NaN), 2);
  assert.throws(() => prepareHessianFromGram(st.takeGram(), st.rows, 4), /non-finite activations in input channel 0/);
});
