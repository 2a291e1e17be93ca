// Quantized linears give their shared-heap weights back: W4A16's dequantized copy, and the q_w copy
// that FS/IS/PC linears of one QuantizedWeight share (freed with its last user); compareModes
// releases each mode's linears once that mode is measured, so repeated compares do not grow the heap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/core/rng.ts';
import { heapLiveBytes } from '../../src/core/wasm-heap.ts';
import { quantizeRtn } from '../../src/quant/rtn.ts';
import { computeIntegerScales } from '../../src/quant/integer-scale.ts';
import { FsLinear } from '../../src/quant/linear-fs.ts';
import { IsLinear } from '../../src/quant/linear-is.ts';
import { PcLinear } from '../../src/quant/linear-pc.ts';
import { W4A16Linear } from '../../src/quant/linear-w4a16.ts';
import { compareModes } from '../../src/eval/compare.ts';
import { tinyModel } from '../model/tiny-model.ts';
import { randomActivations, randomWeights } from './helpers.ts';

test('W4A16, FS, IS, PC: dispose() returns the heap weights; a shared q_w lives until its last user', () => {
  const rng = new Rng(5);
  const N = 48, K = 128, M = 3;
  const qw = quantizeRtn(randomWeights(rng, N, K), N, K, { group: 64, clip: false, name: 'l' });
  const pcq = quantizeRtn(randomWeights(rng, N, K), N, K, { group: -1, clip: false, name: 'pc' });
  const x = randomActivations(rng, M, K);
  // warm-up: the matmul and quantization scratch slots grow once and stay
  for (const l of [new W4A16Linear(qw), new FsLinear(qw), new PcLinear(pcq)]) { l.forward(x, M); l.dispose(); }
  const before = heapLiveBytes();

  const w4a16 = new W4A16Linear(qw);
  const y16 = w4a16.forward(x, M);
  assert.ok(heapLiveBytes() > before);
  w4a16.dispose();
  w4a16.dispose(); // twice is harmless
  assert.equal(heapLiveBytes(), before);
  assert.throws(() => w4a16.forward(x, M), /used after dispose/);
  const second = new W4A16Linear(qw);
  assert.deepEqual(second.forward(x, M), y16);
  second.dispose();


  const fs = new FsLinear(qw), is = new IsLinear(qw, computeIntegerScales(qw, 'auto', 'l'));
  const yIs = is.forward(x, M);
  const shared = heapLiveBytes();
  fs.dispose();
  assert.equal(heapLiveBytes(), shared, 'IS still uses the shared q_w');
  assert.deepEqual(is.forward(x, M), yIs);
  assert.throws(() => fs.forward(x, M), /used after dispose/);
  is.dispose();
  assert.equal(heapLiveBytes(), before);
  // a new linear on the same weight uploads q_w again and computes the same
  const again = new IsLinear(qw, computeIntegerScales(qw, 'auto', 'l'));
  assert.deepEqual(again.forward(x, M), yIs);
  again.dispose();
  const pc = new PcLinear(pcq);
  pc.forward(x, M);
  pc.dispose();
  assert.equal(heapLiveBytes(), before);
});

test('compareModes releases every mode\'s quantized linears: a second compare leaves the heap as it was', () => {
  const { model } = tinyModel('half', false);
  const rng = new Rng(9);
  const ids = Array.from({ length: 60 }, () => rng.int(2, model.config.vocabSize - 1));
  const opts = { group: -1, ctx: 16, modes: ['fp16', 'w4a16', 'w4a8-fs', 'w4a8-is', 'w4a8-pc'] as const };
  const first = compareModes(model, ids, { ...opts, modes: [...opts.modes] }); // warm-up: scratch slots grow
  const before = heapLiveBytes();
  const second = compareModes(model, ids, { ...opts, modes: [...opts.modes] });
  assert.equal(heapLiveBytes(), before);
  assert.deepEqual(second.rows.map((r) => r.ppl), first.rows.map((r) => r.ppl));
  assert.deepEqual(second.rows.map((r) => r.mode), opts.modes);  // rows carry the modes' one spelling (src/core/modes.ts)
  assert.ok(second.rows.every((r) => Number.isFinite(r.ppl) && r.ppl > 1));
});
