import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/core/rng.ts';
import { f16ToF32, f32ToF16 } from '../../src/core/dtype.ts';
import { quantizeRtn, dequantize } from '../../src/quant/rtn.ts';
import { packInt4, unpackInt4 } from '../../src/quant/pack-int4.ts';
import { IntscaleError } from '../../src/core/errors.ts';
import { randomWeights } from './helpers.ts';

test('RTN: fp16 scales, symmetric [-7, 7], error within half a step', () => {
  const rng = new Rng(1);
  for (const group of [32, 64, 128, 256, -1]) {
    const N = 24, K = 512;
    const w = randomWeights(rng, N, K);
    const qw = quantizeRtn(w, N, K, { group });
    const G = group === -1 ? K : group;
    assert.equal(qw.groupSize, G);
    for (let n = 0; n < N; n++) {
      for (let g = 0; g < K / G; g++) {
        let absmax = 0;
        for (let k = g * G; k < (g + 1) * G; k++) absmax = Math.max(absmax, Math.abs(w[n * K + k]!));
        const s = qw.scales[n * (K / G) + g]!;
        assert.equal(f16ToF32(f32ToF16(s)), s, 'scale is an fp16 value');
        assert.ok(Math.abs(s - absmax / 7) <= (absmax / 7) * 2 ** -11 * 1.0001, `scale ${s} vs absmax/7 ${absmax / 7}`);
        for (let k = g * G; k < (g + 1) * G; k++) {
          const q = qw.q[n * K + k]!;
          assert.ok(q >= -7 && q <= 7, 'never -8');
          // within half a step, except where fp16 rounding of s pushed the absmax just past 7·s (then clamped)
          assert.ok(Math.abs(q * s - w[n * K + k]!) <= s / 2 + absmax * 2 ** -10, `q=${q} s=${s} w=${w[n * K + k]}`);
        }
      }
    }
  }
});

test('RTN --clip never increases any group\'s squared error and keeps scales fp16', () => {
  const rng = new Rng(2);
  const N = 16, K = 256;
  const w = randomWeights(rng, N, K);
  const plain = dequantize(quantizeRtn(w, N, K, { group: 64 }));
  const clippedQ = quantizeRtn(w, N, K, { group: 64, clip: true });
  const clipped = dequantize(clippedQ);
  let improved = 0;
  for (let grp = 0; grp < (N * K) / 64; grp++) {
    let e1 = 0, e2 = 0;
    for (let i = grp * 64; i < (grp + 1) * 64; i++) {
      e1 += (plain[i]! - w[i]!) ** 2;
      e2 += (clipped[i]! - w[i]!) ** 2;
    }
    assert.ok(e2 <= e1 + 1e-12, `group ${grp}: ${e2} > ${e1}`);
    if (e2 < e1) improved++;
  }
  assert.ok(improved > 0, 'outlier groups should improve with clipping');
  for (const s of clippedQ.scales) assert.equal(f16ToF32(f32ToF16(s)), s);
});

test('quantizeRtn into reused arrays gives RTN\'s values', () => {
  const rng = new Rng(4103), N = 12, K = 64, w = randomWeights(rng, N, K, 0.05);
  const want = quantizeRtn(w, N, K, { group: 32 }), into = { q: new Int8Array(N * K).fill(5), scales: new Float32Array(2 * N).fill(3) };
  const got = quantizeRtn(w, N, K, { group: 32 }, into);
  assert.equal(got.q, into.q);
  assert.deepEqual(got.q, want.q);
  assert.deepEqual(got.scales, want.scales);
  assert.throws(() => quantizeRtn(w, N, K, { group: 32 }, { q: new Int8Array(1), scales: into.scales }), /output arrays have 1 values/);
});

test('RTN rejects unsupported group sizes and K not divisible by the group', () => {
  const w = new Float32Array(4 * 96).fill(0.5);
  assert.throws(() => quantizeRtn(w, 4, 96, { group: 48, name: 'L' }), (e: unknown) => e instanceof IntscaleError && /unsupported group size 48/.test(e.message));
  assert.throws(() => quantizeRtn(w, 4, 96, { group: 64, name: 'L' }), (e: unknown) => e instanceof IntscaleError && /not divisible/.test(e.message));
});

test('int4 packing: spec layout (low nibble = even k) and round trip incl. -8', () => {
  const q = Int8Array.from([1, -1, -8, 7, 0, -2]);
  assert.deepEqual([...packInt4(q, 1, 6)], [0xf1, 0x78, 0xe0]);
  const rng = new Rng(3);
  const big = new Int8Array(64 * 128).map(() => rng.int(-8, 7));
  assert.deepEqual(unpackInt4(packInt4(big, 64, 128), 64, 128), big);
  assert.throws(() => packInt4(Int8Array.from([8, 0]), 1, 2), IntscaleError);
});
