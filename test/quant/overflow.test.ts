// The no-overflow proof, checked exactly: for every linear of docs-llama-30m (random layers when
// ../shared is absent), with `--amplifier auto`, the worst-case activation q_x = ±127 aligned with
// sign(ŝ·q_w) gives |acc| < 2^31, computed with BigInt; and a fixed amplifier that would overflow
// is refused by the bound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/core/rng.ts';
import { IntscaleError } from '../../src/core/errors.ts';
import { openSafetensorsDir } from '../../src/io/safetensors.ts';
import { quantizeRtn, type QuantizedWeight } from '../../src/quant/rtn.ts';
import { computeIntegerScales, exactBounds, type IntegerScales } from '../../src/quant/integer-scale.ts';
import { MODEL_30M, randomWeights, sharedMissing } from './helpers.ts';

/** max over channels of |Σ_g P_g·ŝ_g| for the worst-case activation, exactly (BigInt). */
function worstCaseAcc(qw: QuantizedWeight, is: IntegerScales): { worst: bigint; matchesBound: boolean } {
  const { outFeatures: N, inFeatures: K, groupSize: G } = qw;
  const groups = K / G;
  const bounds = exactBounds(is.iscales, qw);
  let worst = 0n, matchesBound = true;
  for (let n = 0; n < N; n++) {
    let acc = 0n;
    for (let g = 0; g < groups; g++) {
      const hat = is.iscales[n * groups + g]!;
      let p = 0;
      for (let k = g * G; k < (g + 1) * G; k++) {
        const qwv = qw.q[n * K + k]!;
        const qx = 127 * Math.sign(hat * qwv); // the adversarial activation
        p += qx * qwv;
      }
      acc += BigInt(p) * BigInt(hat);
    }
    if (acc > worst) worst = acc;
    if (acc !== BigInt(bounds[n]!)) matchesBound = false;
  }
  return { worst, matchesBound };
}

const LINEARS = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];

test('auto amplifier: worst-case activation never overflows int32 (docs-llama-30m, every linear, g128)', { skip: sharedMissing }, () => {
  const src = openSafetensorsDir(MODEL_30M);
  try {
    let layers = 0, minShift = 99;
    for (let l = 0; l < 8; l++) {
      for (const lin of LINEARS) {
        const name = `model.layers.${l}.${lin}.weight`;
        const [N, K] = src.info(name).shape as [number, number];
        const qw = quantizeRtn(src.readF32(name), N, K, { group: 128 });
        const is = computeIntegerScales(qw, 'auto', name);
        const { worst, matchesBound } = worstCaseAcc(qw, is);
        assert.ok(worst < 2n ** 31n, `${name}: worst case ${worst}`);
        assert.ok(matchesBound, `${name}: the exact bound is attained by the adversarial activation`);
        for (const k of is.shift) minShift = Math.min(minShift, k);
        layers++;
      }
    }
    assert.equal(layers, 56);
    assert.ok(minShift >= 10, `shifts stay large on this model (min ${minShift})`);
  } finally {
    src.close();
  }
});

test('auto amplifier on random layers with large K and wide scale spread: bound holds and is tight', () => {
  const rng = new Rng(31);
  for (const [N, K, G] of [[16, 8192, 32], [8, 4096, 128], [12, 2048, -1]] as const) {
    const w = randomWeights(rng, N, K, 4); // large weights → large scales → the bound binds
    const qw = quantizeRtn(w, N, K, { group: G });
    const is = computeIntegerScales(qw, 'auto', 'random');
    const { worst, matchesBound } = worstCaseAcc(qw, is);
    assert.ok(worst < 2n ** 31n);
    assert.ok(matchesBound);
    // maximality: per channel, either every scale is already exact (min s·2^k ≥ 2^10, or k = 30)
    // or one more bit of shift would break the bound
    const groups = K / qw.groupSize;
    let boundLimited = 0;
    for (let n = 0; n < N; n++) {
      const k = is.shift[n]!;
      const row = qw.scales.subarray(n * groups, (n + 1) * groups);
      const exact = k === 30 || row.every((s) => s === 0 || s * 2 ** k >= 1024);
      let next = 0;
      for (let g = 0; g < groups; g++) {
        let absSum = 0;
        for (let j = g * qw.groupSize; j < (g + 1) * qw.groupSize; j++) absSum += Math.abs(qw.q[n * K + j]!);
        next += Math.abs(Math.round(row[g]! * 2 ** (k + 1))) * absSum * 127;
      }
      if (!exact) {
        assert.ok(next >= 2 ** 31, `channel ${n}: shift ${k} is not maximal`);
        boundLimited++;
      }
    }
    if (G !== -1) assert.ok(boundLimited > 0, 'these grouped layers are chosen so the bound binds');
  }
});

test('a fixed 2^16 amplifier that would overflow is caught by the bound, naming the layer', () => {
  const rng = new Rng(32);
  const N = 4, K = 4096;
  const qw = quantizeRtn(randomWeights(rng, N, K, 0.5), N, K, { group: 128 });
  assert.throws(
    () => computeIntegerScales(qw, 16, 'model.layers.3.mlp.down_proj'),
    (e: unknown) => e instanceof IntscaleError && /^model\.layers\.3\.mlp\.down_proj: amplifier 2\^16 can overflow int32/.test(e.message),
  );
  // the overflow is real: without the check, the worst-case activation exceeds int32
  const groups = K / 128;
  const iscales = new Int32Array(N * groups).map((_, i) => Math.round(qw.scales[i]! * 2 ** 16));
  const { worst } = worstCaseAcc(qw, { iscales, shift: new Int8Array(N).fill(16) });
  assert.ok(worst >= 2n ** 31n, `constructed layer must overflow at 2^16 (worst ${worst})`);
  // 'auto' and 'layer' pick a smaller amplifier instead of failing
  for (const amp of ['auto', 'layer'] as const) {
    const is = computeIntegerScales(qw, amp, 'L');
    assert.ok(worstCaseAcc(qw, is).worst < 2n ** 31n, amp);
  }
});

test('amplifier rules on a hand-made layer: auto cap (exact scales), layer rule, bound-limited shift', () => {
  const s001 = Math.fround(0.0099945068359375); // fp16(0.01)
  const qw = {
    outFeatures: 3, inFeatures: 64, groupSize: 32,
    q: new Int8Array(3 * 64).fill(7),
    scales: Float32Array.from([0.5, s001, 0.25, 0.125, 1, 1]),
  };
  const auto = computeIntegerScales(qw, 'auto', 'hand');
  // ch0: cap = 17 (0.00999·2^17 = 1310 ≥ 1024), bound 127·224·(65536 + 1310) = 1.90e9 < 2^31
  // ch1: cap = 13 (0.125·2^13 = 1024); ch2: cap = 10, bound 127·448·1024 = 5.8e7
  assert.deepEqual([...auto.shift], [17, 13, 10]);
  assert.deepEqual([...auto.iscales], [65536, 1310, 2048, 1024, 1024, 1024]);
  // layer: smallest k with min s·2^k ≥ 1 → 0.00999·2^7 = 1.28
  const layer = computeIntegerScales(qw, 'layer', 'hand');
  assert.deepEqual([...layer.shift], [7, 7, 7]);
  assert.deepEqual([...layer.iscales], [64, 1, 32, 16, 128, 128]);
  // bound-limited: scale 8 on 64 weights of 7 → k must satisfy 127·448·8·2^k < 2^31 → k ≤ 12 (cap would be 7)
  const big = { ...qw, outFeatures: 1, q: new Int8Array(64).fill(7), scales: Float32Array.from([8, 0.0078125]) };
  const b = computeIntegerScales(big, 'auto', 'big');
  // cap 17 (2^-7·2^17 = 1024); bound 127·224·(8·2^k + 2^(k-7)) < 2^31 → k = 13
  assert.deepEqual([...b.shift], [13]);
  assert.throws(() => computeIntegerScales(big, 14, 'big'), /big: amplifier 2\^14 can overflow int32 on output channel 0/);
});
