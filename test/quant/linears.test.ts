// W4A8 linears against INDEPENDENT references: IS bit-exact vs a BigInt evaluation of the spec
// formula; FS within 1e-6 (relative to Σ|terms|) of float64; fast paths equal their plain loops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/core/rng.ts';
import { quantizeRtn, dequantize, type QuantizedWeight } from '../../src/quant/rtn.ts';
import { quantizeActivations } from '../../src/quant/act-quant.ts';
import { computeIntegerScales, type IntegerScales } from '../../src/quant/integer-scale.ts';
import { IsLinear, isLinearRef } from '../../src/quant/linear-is.ts';
import { FsLinear, fsLinearRef } from '../../src/quant/linear-fs.ts';
import { PcLinear, pcLinearRef } from '../../src/quant/linear-pc.ts';
import { W4A16Linear } from '../../src/quant/linear-w4a16.ts';
import { randomActivations, randomWeights } from './helpers.ts';

/** FS tolerance: fp32 rounding of a few-term sum, relative to the sum of |terms|. */
const FS_REL_TOL = 1e-6;

/** The IS formula evaluated with BigInt (int32 accumulation checked), then the fp32 epilogue. */
function isBigIntRef(qx: Int8Array, sx: Float32Array, M: number, qw: QuantizedWeight, is: IntegerScales): Float32Array {
  const { outFeatures: N, inFeatures: K, groupSize: G } = qw;
  const groups = K / G;
  const y = new Float32Array(M * N);
  for (let t = 0; t < M; t++) {
    for (let n = 0; n < N; n++) {
      let acc = 0n;
      for (let g = 0; g < groups; g++) {
        let p = 0n;
        for (let k = g * G; k < (g + 1) * G; k++) p += BigInt(qx[t * K + k]!) * BigInt(qw.q[n * K + k]!);
        acc += p * BigInt(is.iscales[n * groups + g]!);
        assert.ok(acc < 2n ** 31n && acc >= -(2n ** 31n), 'int32 accumulator overflow');
      }
      const accF = Math.fround(Number(acc));
      y[t * N + n] = Math.fround(Math.fround(accF * sx[t]!) / 2 ** is.shift[n]!);
    }
  }
  return y;
}

function randomCase(rng: Rng) {
  const G = [32, 64, 128, 256][rng.int(0, 3)]!;
  const K = G * rng.int(1, 6);
  const N = rng.int(1, 40);
  const M = rng.int(1, 9);
  const w = randomWeights(rng, N, K, 0.02 * 2 ** rng.int(-3, 3));
  const qw = quantizeRtn(w, N, K, { group: G });
  const x = randomActivations(rng, M, K);
  return { G, K, N, M, qw, x };
}

test('IS: fast linear and plain loop are bit-exact vs BigInt on random shapes, groups and shifts', () => {
  const rng = new Rng(21);
  for (let c = 0; c < 40; c++) {
    const { M, qw, x } = randomCase(rng);
    const amp = c % 3 === 0 ? 'auto' : c % 3 === 1 ? 'layer' : rng.int(0, 8);
    const is = computeIntegerScales(qw, amp, `case${c}`);
    const { q, scale } = quantizeActivations(x, M, qw.inFeatures);
    const want = isBigIntRef(q, scale, M, qw, is);
    assert.deepEqual(isLinearRef(x, M, qw, is), want, `plain loop, case ${c}`);
    assert.deepEqual(new IsLinear(qw, is).forward(x, M), want, `fast path, case ${c}`);
  }
});

test('FS: within 1e-6 of float64 (relative to Σ|terms|); fast path equals the plain loop', () => {
  const rng = new Rng(22);
  for (let c = 0; c < 40; c++) {
    const { M, N, K, G, qw, x } = randomCase(rng);
    const groups = K / G;
    const { q, scale } = quantizeActivations(x, M, K);
    const got = fsLinearRef(x, M, qw);
    assert.deepEqual(new FsLinear(qw).forward(x, M), got, `fast path, case ${c}`);
    for (let t = 0; t < M; t++) {
      for (let n = 0; n < N; n++) {
        let exact = 0, mag = 0;
        for (let g = 0; g < groups; g++) {
          let p = 0;
          for (let k = g * G; k < (g + 1) * G; k++) p += q[t * K + k]! * qw.q[n * K + k]!;
          exact += p * qw.scales[n * groups + g]! * scale[t]!;
          mag += Math.abs(p * qw.scales[n * groups + g]! * scale[t]!);
        }
        const err = Math.abs(got[t * N + n]! - exact);
        assert.ok(err <= FS_REL_TOL * mag + 1e-30, `case ${c} [${t},${n}]: ${got[t * N + n]} vs ${exact}`);
      }
    }
  }
});

test('PC and W4A16: fast paths vs plain loops / float64 dequantized reference', () => {
  const rng = new Rng(23);
  const N = 33, K = 320, M = 5;
  const w = randomWeights(rng, N, K);
  const x = randomActivations(rng, M, K);
  const pcq = quantizeRtn(w, N, K, { group: -1 });
  assert.deepEqual(new PcLinear(pcq).forward(x, M), pcLinearRef(x, M, pcq));
  const qw = quantizeRtn(w, N, K, { group: 64 });
  const deq = dequantize(qw);
  const y = new W4A16Linear(qw).forward(x, M);
  for (let t = 0; t < M; t++) {
    for (let n = 0; n < N; n++) {
      let exact = 0, mag = 0;
      for (let k = 0; k < K; k++) {
        exact += x[t * K + k]! * deq[n * K + k]!;
        mag += Math.abs(x[t * K + k]! * deq[n * K + k]!);
      }
      assert.ok(Math.abs(y[t * N + n]! - exact) <= 1e-5 * mag, `W4A16 [${t},${n}]`);
    }
  }
});
