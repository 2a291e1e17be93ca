// The CPU twins of moe_route.cu (src/backends/cuda/twins.ts: moeTopkTwin, moeAlignTwin), which the
// GPU test holds the kernels to, against the float64 routing the CPU engine is checked with
// (test/model/tiny-model.ts: softmax over the experts, top K, renormalized): the same experts in
// the same order and the same weights; and the grouping: offsets count each expert's entries, perm
// and slot are inverse, rows ascend within an expert.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { f16ToF32, f32ArrayToF16 } from '../../src/core/dtype.ts';
import { Rng } from '../../src/core/rng.ts';
import { moeAlignTwin, moeTopkTwin } from '../../src/backends/cuda/twins.ts';
import { referenceRouting } from '../model/tiny-model.ts';

for (const [M, dim, E, K] of [[9, 64, 8, 2], [40, 32, 4, 1], [17, 48, 16, 4], [5, 16, 3, 3]] as const) {
  test(`moe twins = the CPU engine's routing (M ${M}, dim ${dim}, ${E} experts, top ${K}); grouping consistent`, () => {
    const rng = new Rng(M * 100 + E);
    const h = f32ArrayToF16(rng.normals(M * dim, 1)), router = f32ArrayToF16(rng.normals(E * dim, 0.3));
    const got = moeTopkTwin(h, router, M, dim, E, K);
    const routerF32 = Float32Array.from(router, f16ToF32);
    for (let r = 0; r < M; r++) {
      const row = Array.from(h.subarray(r * dim, (r + 1) * dim), f16ToF32);
      referenceRouting(routerF32, E, K, row).forEach(([e, w], k) => {
        assert.equal(got.experts[r * K + k], e, `row ${r} k ${k}`);
        assert.ok(Math.abs(got.weights[r * K + k]! - w) <= 1e-12, `row ${r} k ${k}: ${got.weights[r * K + k]} vs ${w}`);
      });
      assert.ok(got.margins[r]! > 0, `row ${r}: no exact tie in this seed`);
    }
    const g = moeAlignTwin(got.experts, M, E, K);
    assert.equal(g.offsets[0], 0);
    assert.equal(g.offsets[E], M * K);
    for (let e = 0; e < E; e++) {
      const entries = [...got.experts].filter((x) => x === e).length;
      assert.equal(g.offsets[e + 1]! - g.offsets[e]!, entries, `expert ${e}: its block holds its entries`);
      const rows = Array.from(g.perm.subarray(g.offsets[e]!, g.offsets[e + 1]!));
      assert.deepEqual(rows, [...rows].sort((a, b) => a - b), `expert ${e}: rows ascend`);
    }
    g.slot.forEach((s, i) => {
      assert.equal(g.perm[s], Math.floor(i / K), `entry ${i}: perm[slot] is its row`);
      assert.ok(s >= g.offsets[got.experts[i]!]! && s < g.offsets[got.experts[i]! + 1]!, `entry ${i}: slot inside its expert's block`);
    });
  });
}
