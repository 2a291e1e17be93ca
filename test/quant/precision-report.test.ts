// When the int32 bound holds the shift down, the lost precision is reported, not hidden: a channel
// whose groups' scales spread over many octaves (one huge group, the rest tiny) over a large K gets
// coarse and zero integer scales, and the report and warnings say so; a well-behaved layer has none.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/core/rng.ts';
import { quantizeRtn } from '../../src/quant/rtn.ts';
import { computeIntegerScales } from '../../src/quant/integer-scale.ts';
import { COARSE_ISCALE, integerScaleReport, precisionWarnings } from '../../src/quant/is-report.ts';

test('a wide spread of scales in a channel is reported as coarse/zero integer scales, with a warning', () => {
  const rng = new Rng(11);
  const N = 4, K = 16384, G = 32;
  const w = rng.normals(N * K, 1e-4);
  // channel 0: its first group is ~10^4 times larger than the rest → the bound caps k_0 so the
  // small groups' ŝ round to (almost) nothing
  for (let k = 0; k < G; k++) w[k] = rng.normal() * 2;
  const qw = quantizeRtn(w, N, K, { group: G });
  const is = computeIntegerScales(qw, 'auto', 'spread');
  const r = integerScaleReport('spread', qw, is, w);
  assert.ok(r.coarse_scales > 0, `coarse ${r.coarse_scales}`);
  assert.ok(r.headroom < 1, 'still proven overflow-free');
  // independent count of the coarse scales of channel 0
  const groups = K / G;
  let coarse0 = 0;
  for (let g = 0; g < groups; g++) if (qw.scales[g] !== 0 && Math.abs(is.iscales[g]!) < COARSE_ISCALE) coarse0++;
  assert.ok(coarse0 > groups / 2, `channel 0 coarse scales ${coarse0} of ${groups}`);
  const warnings = precisionWarnings([r]);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /^spread: the int32 bound limits the shift: \d+ scale\(s\) have \|ŝ\| < 64/);
});

test('a layer with ordinary scales has no coarse integer scales and no warning', () => {
  const rng = new Rng(12);
  const N = 64, K = 4096;
  const w = rng.normals(N * K, 0.02);
  const qw = quantizeRtn(w, N, K, { group: 128 });
  const r = integerScaleReport('plain', qw, computeIntegerScales(qw, 'auto', 'plain'), w);
  assert.equal(r.coarse_scales, 0);
  assert.equal(r.zero_scales, 0);
  assert.deepEqual(precisionWarnings([r]), []);
});
