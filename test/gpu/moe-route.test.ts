// moe_route.cu on a real GPU against its CPU twins (src/backends/cuda/twins.ts): moe_topk's experts
// of each row, in order, equal moeTopkTwin's wherever the row's logit gaps (the twin's margin) are
// far above the fp32 sums' error, and elsewhere pick logits within that error of the twin's; its
// renormalized weights are within 1e-5 (fp32 logits and expf against float64); moe_align's grouping
// (offsets, perm, slot, active) equals moeAlignTwin of the kernel's own experts exactly (deterministic).
// moe_rows.cu: gather_rows = its twin exactly (int8 rows, 4-byte scales, fp16 rows); moe_combine
// ≤ 1 fp16 ulp of its float64 twin. Seeded random inputs; M·K up to several of moe_align's
// 1024-entry chunks; outputs poisoned.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { f16ToF32, f32ArrayToF16 } from '../../src/core/dtype.ts';
import { Rng } from '../../src/core/rng.ts';
import { Gpu, type DeviceBuffer } from '../../src/gpu/runtime.ts';
import { EngineKernels } from '../../src/backends/cuda/kernels.ts';
import { gatherRowsTwin, moeAlignTwin, moeCombineTwin, moeTopkTwin } from '../../src/backends/cuda/twins.ts';

const reason = Gpu.unavailableReason();
const skip = reason ? `skipped: ${reason}` : false;
/** fp32 sums of `dim` fp16 products against float64: far below this for these magnitudes */
const LOGIT_ERR = 1e-3;

// [M, dim, experts, top K]: Mixtral decode rows at batch 1 and 64, a prefill-sized M (5 align chunks), 16 experts top 4, top 1
const CASES = [[1, 4096, 8, 2], [64, 4096, 8, 2], [2500, 1024, 8, 2], [300, 512, 16, 4], [77, 256, 4, 1]] as const;

test('moe_topk = moeTopkTwin (exact experts where no near tie, weights within 1e-5); moe_align = moeAlignTwin exactly', { skip }, () => {
  const gpu = Gpu.open();
  const k = new EngineKernels(gpu);
  const rng = new Rng(5);
  const poisoned = (bytes: number): DeviceBuffer => { const b = gpu.alloc(bytes); gpu.memset(b, 0xff); return b; };
  for (const [M, dim, E, K] of CASES) {
    const h = f32ArrayToF16(rng.normals(M * dim, 1)), router = f32ArrayToF16(rng.normals(E * dim, 0.05));
    const want = moeTopkTwin(h, router, M, dim, E, K);
    const dh = gpu.upload(h), dr = gpu.upload(router);
    const experts = poisoned(M * K * 4), weights = poisoned(M * K * 4), offsets = poisoned((E + 1) * 4), perm = poisoned(M * K * 4), slot = poisoned(M * K * 4);
    const active = poisoned(E * 4);
    try {
      k.moeTopk(dh, dr, M, dim, E, K, experts, weights);
      k.moeAlign(experts, M, E, K, offsets, perm, slot, active);
      const label = `M ${M} dim ${dim} E ${E} K ${K}`;
      const ge = gpu.download(experts, new Int32Array(M * K)), gw = gpu.download(weights, new Float32Array(M * K));
      let exactRows = 0;
      for (let r = 0; r < M; r++) {
        const row = ge.subarray(r * K, (r + 1) * K), wantRow = want.experts.subarray(r * K, (r + 1) * K);
        if (want.margins[r]! >= LOGIT_ERR) {
          exactRows++;
          assert.deepEqual(row, wantRow, `${label} row ${r}: experts`);
          for (let j = 0; j < K; j++) assert.ok(Math.abs(gw[r * K + j]! - want.weights[r * K + j]!) <= 1e-5, `${label} row ${r}: weight ${j} ${gw[r * K + j]} vs ${want.weights[r * K + j]}`);
        } else {
          // a near tie: each chosen logit within LOGIT_ERR of the twin's logit at that rank, no expert twice
          assert.equal(new Set(row).size, K, `${label} row ${r}: distinct experts`);
          row.forEach((e, j) => assert.ok(Math.abs(want.logits[r * E + e]! - want.logits[r * E + wantRow[j]!]!) <= LOGIT_ERR, `${label} row ${r} rank ${j}: expert ${e} vs ${wantRow[j]}`));
        }
      }
      assert.ok(exactRows >= M * 0.9, `${label}: ${exactRows} of ${M} rows clear of near ties`);
      const g = moeAlignTwin(ge, M, E, K);
      assert.deepEqual(gpu.download(offsets, new Int32Array(E + 1)), g.offsets, `${label}: offsets`);
      assert.deepEqual(gpu.download(perm, new Int32Array(M * K)), g.perm, `${label}: perm`);
      assert.deepEqual(gpu.download(slot, new Int32Array(M * K)), g.slot, `${label}: slot`);
      assert.deepEqual(gpu.download(active, new Int32Array(E)), g.active, `${label}: active`);
    } finally {
      for (const b of [dh, dr, experts, weights, offsets, perm, slot, active]) b.free();
    }
  }
});

test('gather_rows = its twin exactly (16- and 4-byte rows); moe_combine ≤ 1 fp16 ulp of float64', { skip }, () => {
  const gpu = Gpu.open();
  const k = new EngineKernels(gpu);
  const rng = new Rng(6);
  const poisoned = (bytes: number): DeviceBuffer => { const b = gpu.alloc(bytes); gpu.memset(b, 0xff); return b; };
  const [M, K, E, dim] = [37, 2, 8, 4096];
  const experts = Int32Array.from({ length: M * K }, (_, i) => (i % K === 0 ? rng.int(0, E - 1) : 0));
  for (let r = 0; r < M; r++) experts[r * K + 1] = (experts[r * K]! + 1 + rng.int(0, E - 2)) % E;  // distinct per row
  const g = moeAlignTwin(experts, M, E, K);
  const dPerm = gpu.upload(g.perm), dSlot = gpu.upload(g.slot);
  try {
    for (const rowBytes of [dim, 4, 2 * dim]) {  // int8 rows, their scales, fp16 rows
      const src = Uint8Array.from({ length: M * rowBytes }, () => rng.int(0, 255));
      const dSrc = gpu.upload(src), dDst = poisoned(M * K * rowBytes);
      k.gatherRows(dSrc, dPerm, dDst, M * K, rowBytes);
      assert.deepEqual(gpu.download(dDst, new Uint8Array(M * K * rowBytes)), gatherRowsTwin(src, g.perm, rowBytes), `rows of ${rowBytes} B`);
      dSrc.free(); dDst.free();
    }
    const y = f32ArrayToF16(rng.normals(M * K * dim, 1)), residual = f32ArrayToF16(rng.normals(M * dim, 2));
    const w = Float32Array.from({ length: M * K }, (_, i) => (i % K === 0 ? 0.3 + 0.7 * rng.next() : 0));
    for (let r = 0; r < M; r++) w[r * K + 1] = 1 - w[r * K]!;
    const dY = gpu.upload(y), dW = gpu.upload(w), dR = gpu.upload(residual);
    k.moeCombine(dY, dSlot, dW, dR, M, K, dim);
    const got = gpu.download(dR, new Uint16Array(M * dim)), want = moeCombineTwin(y, g.slot, w, residual, M, K, dim);
    got.forEach((h, i) => assert.ok(Math.abs(f16ToF32(h) - f16ToF32(want[i]!)) <= 2 ** -10 * Math.abs(f16ToF32(want[i]!)) + 2 ** -24, `[${i}]: ${f16ToF32(h)} vs ${f16ToF32(want[i]!)}`));
    for (const b of [dY, dW, dR]) b.free();
  } finally {
    dPerm.free(); dSlot.free();
  }
});

