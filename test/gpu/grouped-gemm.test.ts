// The grouped GEMMs of a mixture of experts (src/gpu/kernels/grouped-gemm.ts: w4_gemv.cu's and
// f16_gemv.cu's _moe entries) on a real GPU: E experts, each with its own weights, multiply their
// blocks of rows (offsets and the routed experts' list on the device, some experts without rows) in
// one launch whose grid has all E expert slots or only the routed ones. W4: every
// expert's rows against the CPU reference of w4-reference.ts (IS / PC bit-exact, FS / W4A16 within
// their fp32 bounds) and bit for bit equal to the dense kernel of the same tile on that expert
// alone (except FS at v8, where the grouped ring and the dense rounds sum in different orders). FP16: within the fp32 summation bound of a float64 reference, and equal to the dense
// f16_gemv entry bit for bit. Seeded random data; outputs poisoned and scanned whole.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { f16ArrayToF32, f16ToF32, f32ArrayToF16 } from '../../src/core/dtype.ts';
import type { QuantMode } from '../../src/core/modes.ts';
import { Rng } from '../../src/core/rng.ts';
import { expertTable, f16GemvKernel, GroupedGemmLaunch } from '../../src/gpu/kernels/grouped-gemm.ts';
import { Gpu, type DeviceBuffer } from '../../src/gpu/runtime.ts';
import { FP16_OUT_REL_TOL, FP32_UNIT, makeW4Case, samplePositions, type W4Case } from './w4-reference.ts';
import { checkOutputs, freeAll, kindOperands, POISON, runKind, uploadCase, type DeviceCase } from './w4-device-case.ts';

const reason = Gpu.unavailableReason();
const skip = reason ? `skipped: ${reason}` : false;
const E = 4;

/** Rows per expert for a step of `rows` rows: each in 0..rows, expert 1 always empty, at least one row in all. */
function expertRows(rng: Rng, rows: number): number[] {
  const counts = Array.from({ length: E }, (_, e): number => (e === 1 ? 0 : rng.int(0, rows)));
  if (!counts.some((c) => c > 0)) counts[0] = rows;
  return counts;
}
const offsetsOf = (counts: number[]) => Int32Array.from([0, ...counts.map((_, e) => counts.slice(0, e + 1).reduce((a, b) => a + b, 0))]);
/** moe_align's `active` for these counts (experts with rows, then -1) and the grid's slots: all E
 *  (so -1 entries are met) on odd step sizes, exactly the routed experts on even ones. */
function activeOf(counts: number[], rows: number): { active: Int32Array; slots: number } {
  const routed = counts.flatMap((c, e) => (c > 0 ? [e] : []));
  return { active: Int32Array.from({ length: E }, (_, i) => routed[i] ?? -1), slots: rows % 2 ? E : routed.length };
}

function downloadChecked(gpu: Gpu, buf: DeviceBuffer, elems: number, label: string): Uint16Array {
  const out = gpu.download(buf, new Uint16Array(elems));
  const bad = out.findIndex((h) => h === POISON || (h & 0x7c00) === 0x7c00);
  assert.equal(bad, -1, `${label}: output ${bad} is NaN/Inf or never written`);
  return out;
}

test('grouped W4 GEMMs (v8, v16): each expert\'s rows = the CPU reference (IS / PC bit-exact, FS / W4A16 within bounds) = the dense kernel on that expert alone (FS: at v16)', { skip, timeout: 300_000 }, () => {
  const gpu = Gpu.open();
  let seed = 900;
  for (const { K, N, G } of [{ K: 1152, N: 528, G: 128 }, { K: 640, N: 256, G: 64 }]) {
    const rng = new Rng(seed++);
    const cases: W4Case[] = Array.from({ length: E }, () => makeW4Case(rng, 16, K, N, G));
    const dev: DeviceCase[] = cases.map((c) => uploadCase(gpu, c, rng));
    const kinds: QuantMode[] = G === 128 ? ['w4a8-is', 'w4a8-fs', 'w4a8-pc', 'w4a16'] : ['w4a8-is', 'w4a8-fs'];
    try {
      for (const rows of [1, 5, 8, 12, 16]) {
        const counts = expertRows(rng, rows), off = offsetsOf(counts), total = off[E]!;
        // the step's rows in expert order: expert e's first counts[e] rows of its own case
        const qx = new Int8Array(total * K), x16 = new Uint16Array(total * K), sx = new Float32Array(total);
        counts.forEach((m, e) => {
          qx.set(cases[e]!.qx.subarray(0, m * K), off[e]! * K);
          x16.set(cases[e]!.x16.subarray(0, m * K), off[e]! * K);
          sx.set(cases[e]!.sx.subarray(0, m), off[e]!);
        });
        const { active, slots } = activeOf(counts, rows);
        const bufs = [gpu.upload(qx), gpu.upload(x16), gpu.upload(sx), gpu.upload(off), gpu.alloc(total * N * 2), gpu.upload(active)];
        const [dq, dx16, dsx, doff, dout, dact] = bufs as [DeviceBuffer, DeviceBuffer, DeviceBuffer, DeviceBuffer, DeviceBuffer, DeviceBuffer];
        try {
          for (const kind of kinds) {
            const label = `${kind} K=${K} N=${N} G=${G} step of ${rows} rows (${counts.join('/')})`;
            const table = expertTable(gpu, dev.map((d) => kindOperands(d, kind)));
            try {
              const g = new GroupedGemmLaunch(gpu, kind, G, rows, N, K, slots);
              gpu.memset(dout, 0xff);
              g.launch({ a: kind === 'w4a16' ? dx16 : dq, sx: dsx, table, active: dact, offsets: doff, out: dout });
              const out = downloadChecked(gpu, dout, total * N, label);
              counts.forEach((m, e) => {
                if (m === 0) return;
                const mine = out.subarray(off[e]! * N, (off[e]! + m) * N);
                checkOutputs(cases[e]!, m, new Map([[kind, mine]]), samplePositions(rng, m, N));
                // grouped v8 runs the ring, W4A8's dense v8 the rounds (8 warps, not 4): FS sums in another order there
                if (kind === 'w4a8-fs' && rows <= 8) return;
                const dense = runKind(gpu, cases[e]!, dev[e]!, kind, m, { tile: rows <= 8 ? 'v8' : 'v16' });
                assert.deepEqual(mine, dense, `${label}: expert ${e} = the dense ${rows <= 8 ? 'v8' : 'v16'} kernel`);
              });
            } finally {
              table.free();
            }
          }
        } finally {
          for (const b of bufs) b.free();
        }
      }
    } finally {
      for (const d of dev) freeAll(d);
    }
  }
});

test('grouped FP16 GEMM (f16_gemv.cu): each expert\'s rows within the fp32 bound of float64, = the dense f16_gemv entry bit for bit', { skip, timeout: 300_000 }, () => {
  const gpu = Gpu.open();
  const rng = new Rng(950);
  const dense = { v8: f16GemvKernel(gpu, 'f16_gemv_v8'), v16: f16GemvKernel(gpu, 'f16_gemv_v16') };
  for (const [K, N] of [[1056, 272], [4096, 512]] as const) {
    const w16 = Array.from({ length: E }, () => f32ArrayToF16(rng.normals(N * K, 0.05)));
    const w = w16.map((b) => f16ArrayToF32(b));
    const dw = w16.map((b) => gpu.upload(b));
    const table = expertTable(gpu, dw.map((weight) => ({ weight })));
    try {
      for (const rows of [1, 7, 8, 13, 16]) {
        const counts = expertRows(rng, rows), off = offsetsOf(counts), total = off[E]!;
        const x16 = f32ArrayToF16(rng.normals(total * K, 1)), x = f16ArrayToF32(x16);
        const { active, slots } = activeOf(counts, rows);
        const bufs = [gpu.upload(x16), gpu.upload(off), gpu.alloc(total * N * 2), gpu.alloc(16 * N * 2), gpu.upload(active)];
        const [dx, doff, dout, dref, dact] = bufs as [DeviceBuffer, DeviceBuffer, DeviceBuffer, DeviceBuffer, DeviceBuffer];
        const label = `fp16 K=${K} N=${N} step of ${rows} rows (${counts.join('/')})`;
        try {
          gpu.memset(dout, 0xff);
          new GroupedGemmLaunch(gpu, 'fp16', 0, rows, N, K, slots).launch({ a: dx, table, active: dact, offsets: doff, out: dout });
          const out = downloadChecked(gpu, dout, total * N, label);
          counts.forEach((m, e) => {
            if (m === 0) return;
            for (let t = 0; t < m; t++) {
              const r = off[e]! + t;
              for (let n = 0; n < N; n++) {
                let exact = 0, mag = 0;
                for (let k = 0; k < K; k++) {
                  const p = x[r * K + k]! * w[e]![n * K + k]!;
                  exact += p;
                  mag += Math.abs(p);
                }
                const got = f16ToF32(out[r * N + n]!), tol = FP16_OUT_REL_TOL * Math.abs(exact) + 2 * K * FP32_UNIT * mag + 2 ** -24;
                if (!(Math.abs(got - exact) <= tol)) assert.fail(`${label}: expert ${e} y[${t},${n}] = ${got}, float64 ${exact}, tol ${tol}`);
              }
            }
            const tile = rows <= 8 ? 'v8' : 'v16';
            gpu.memset(dref, 0xff);
            dense[tile].kernel.launch({ grid: [dense[tile].rowBlocks(N), 1, 1], block: [256, 1, 1] }, [
              { ptr: dx.ptr + BigInt(off[e]! * K * 2) }, { ptr: dw[e]! }, { ptr: 0n }, { ptr: dref }, { i32: m }, { i32: N }, { i32: K }]);
            assert.deepEqual(out.subarray(off[e]! * N, (off[e]! + m) * N), downloadChecked(gpu, dref, m * N, `${label} dense`), `${label}: expert ${e} = dense ${tile}`);
          });
        } finally {
          for (const b of bufs) b.free();
        }
      }
    } finally {
      table.free();
      for (const b of dw) b.free();
    }
  }
});
