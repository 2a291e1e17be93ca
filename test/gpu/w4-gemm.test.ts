// The W4 GEMM kernels (src/gpu/kernels/w4_gemm.cu) and per-token activation quantization on a real
// GPU against the CPU semantics of docs/QUANT_SPEC.md: IS and PC bit-exact (fp16 of the CPU fp32
// output), FS and W4A16 within their fp32 summation bounds. Fresh seeded data per case; outputs are
// poisoned (0xffff = fp16 NaN) before every launch and scanned whole afterwards; sampled positions
// (w4-reference.ts) are compared. M ∈ {1,3,16,17,64,127,256,1000}, K ∈ {4096,11008,14336},
// N ∈ {4096,12288,22016} are each covered (a sample of the cross product). Skipped without a GPU.
import type { QuantMode } from '../../src/core/modes.ts';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { f16ToF32 } from '../../src/core/dtype.ts';
import { Rng } from '../../src/core/rng.ts';
import { QUANTIZE_ACT, type W4Tile } from '../../src/gpu/kernels/w4-gemm-plan.ts';
import { Gpu } from '../../src/gpu/runtime.ts';
import { quantizeActivations } from '../../src/quant/act-quant.ts';
import { makeW4Case, samplePositions } from './w4-reference.ts';
import { checkOutputs, freeAll, runKind, uploadCase } from './w4-device-case.ts';

const reason = Gpu.unavailableReason();
const skip = reason ? `skipped: ${reason}` : false;

/** Weight shapes (K, N, G) with the M values run on each: every required K, N and M appears. */
const CASES: { K: number; N: number; G: number; Ms: number[]; kinds: QuantMode[] }[] = [
  { K: 4096, N: 22016, G: 128, Ms: [1, 17, 256], kinds: ['w4a8-is', 'w4a8-fs', 'w4a8-pc', 'w4a16'] },
  { K: 11008, N: 4096, G: 128, Ms: [3, 64, 1000], kinds: ['w4a8-is', 'w4a8-fs', 'w4a8-pc', 'w4a16'] },
  { K: 14336, N: 12288, G: 128, Ms: [16, 127], kinds: ['w4a8-is', 'w4a8-fs', 'w4a8-pc', 'w4a16'] },
  { K: 4096, N: 4096, G: 64, Ms: [5, 100], kinds: ['w4a8-is', 'w4a8-fs'] },
  { K: 4096, N: 4096, G: 32, Ms: [2, 100], kinds: ['w4a8-is', 'w4a8-fs'] },
];

test('W4A8 IS/PC bit-exact, FS and W4A16 within fp32 bounds, over M, K, N, G (sampled cross product)', { skip, timeout: 600_000 }, () => {
  const gpu = Gpu.open();
  let seed = 100;
  for (const shape of CASES) {
    const rng = new Rng(seed++);
    const c = makeW4Case(rng, Math.max(...shape.Ms), shape.K, shape.N, shape.G);
    const d = uploadCase(gpu, c, rng);
    try {
      for (const M of shape.Ms) {
        const positions = samplePositions(rng, M, shape.N);
        const outs = new Map(shape.kinds.map((kind) => [kind, runKind(gpu, c, d, kind, M)] as const));
        checkOutputs(c, M, outs, positions);
      }
    } finally {
      freeAll(d);
    }
  }
});

test('split-K forced on and off gives the same bit-exact IS result, twice in a row (workspace re-zeroed); residual add', { skip, timeout: 300_000 }, () => {
  const gpu = Gpu.open();
  const rng = new Rng(200);
  const c = makeW4Case(rng, 33, 4096, 1024, 128);
  const d = uploadCase(gpu, c, rng);
  try {
    const positions = samplePositions(rng, 33, 1024);
    const base = runKind(gpu, c, d, 'w4a8-is', 33, { splits: 1 });
    checkOutputs(c, 33, new Map([['w4a8-is', base]]), positions);
    for (const splits of [2, 4, 32]) {
      for (let rep = 0; rep < 2; rep++) assert.deepEqual(runKind(gpu, c, d, 'w4a8-is', 33, { splits }), base, `splits=${splits} rep ${rep}`);
    }
    const withResidual = new Map((['w4a8-is', 'w4a8-pc'] as const).map((kind) => [kind, runKind(gpu, c, d, kind, 33, { residual: true })] as const));
    checkOutputs(c, 33, withResidual, positions, d.residualHost);
  } finally {
    freeAll(d);
  }
});

const hopper = reason ? skip : Gpu.open().arch === 'sm_90a' ? false : `skipped: the wgmma tile needs sm_90a (this GPU is ${Gpu.open().arch})`;

test('wgmma tile w64 (sm_90a; M <= 64, and several token tiles up to M = 200): IS and PC bit-exact, FS and W4A16 within bounds, = tile l; K/128 of 3, 5 and 32 k-tiles; split-K identical', { skip: hopper, timeout: 300_000 }, () => {
  const gpu = Gpu.open();
  let seed = 350;
  // K = 384: 3 k-tiles (the drained tail only); 640: one 4-k-tile body + a tail; 4096: 8 bodies
  for (const { K, N } of [{ K: 384, N: 256 }, { K: 640, N: 1024 }, { K: 4096, N: 4096 }]) {
    const rng = new Rng(seed++);
    const c = makeW4Case(rng, 200, K, N, 128);
    const d = uploadCase(gpu, c, rng);
    try {
      for (const M of [200, 129, 64, 33, 17]) {
        const positions = samplePositions(rng, M, N);
        const kinds: QuantMode[] = ['w4a8-is', 'w4a8-fs', 'w4a8-pc', 'w4a16'];
        const outs = new Map(kinds.map((kind) => [kind, runKind(gpu, c, d, kind, M, { tile: 'w64', splits: 1 })] as const));
        checkOutputs(c, M, outs, positions);
        for (const kind of ['w4a8-is', 'w4a8-pc'] as const) {
          assert.deepEqual(outs.get(kind), runKind(gpu, c, d, kind, M, { tile: 'l' }), `${kind} tile w64 = tile l bit for bit (M=${M}, K=${K})`);
        }
        const withResidual = new Map((['w4a8-is', 'w4a8-pc', 'w4a16'] as const).map((kind) => [kind, runKind(gpu, c, d, kind, M, { tile: 'w64', splits: 1, residual: true })] as const));
        checkOutputs(c, M, withResidual, positions, d.residualHost);
        if (K >= 640) {  // uneven splits (odd k-tiles per split), twice each: counters self-clean
          for (const splits of [2, 3, 4]) {  // 2-4: the compile-time reductions (reduce_fixed)
            for (let rep = 0; rep < 2; rep++) {
              for (const kind of ['w4a8-is', 'w4a8-pc'] as const) {
                assert.deepEqual(runKind(gpu, c, d, kind, M, { tile: 'w64', splits }), outs.get(kind), `${kind} w64 splits=${splits} rep ${rep} (M=${M}, K=${K})`);
              }
            }
            checkOutputs(c, M, new Map((['w4a8-fs', 'w4a16'] as const).map((kind) => [kind, runKind(gpu, c, d, kind, M, { tile: 'w64', splits })] as const)), positions);
          }
        }
      }
    } finally {
      freeAll(d);
    }
  }
});

test('wgmma tile w (sm_90a): IS and PC bit-exact, FS and W4A16 within bounds, M tails and residual add, same as tile l; split-K identical', { skip: hopper, timeout: 300_000 }, () => {
  const gpu = Gpu.open();
  let seed = 300;
  for (const { M, K, N } of [{ M: 300, K: 4096, N: 4096 }, { M: 129, K: 1024, N: 12288 }, { M: 1, K: 512, N: 256 }]) {
    const rng = new Rng(seed++);
    const c = makeW4Case(rng, M, K, N, 128);
    const d = uploadCase(gpu, c, rng);
    try {
      const positions = samplePositions(rng, M, N);
      const kinds: QuantMode[] = ['w4a8-is', 'w4a8-fs', 'w4a8-pc', 'w4a16'];
      const outs = new Map(kinds.map((kind) => [kind, runKind(gpu, c, d, kind, M, { tile: 'w' })] as const));
      checkOutputs(c, M, outs, positions);
      assert.deepEqual(outs.get('w4a8-is'), runKind(gpu, c, d, 'w4a8-is', M, { tile: 'l' }), `IS tile w = tile l bit for bit (M=${M})`);
      assert.deepEqual(outs.get('w4a8-pc'), runKind(gpu, c, d, 'w4a8-pc', M, { tile: 'l' }), `PC tile w = tile l bit for bit (M=${M})`);
      const withResidual = new Map((['w4a8-is', 'w4a8-pc', 'w4a16'] as const).map((kind) => [kind, runKind(gpu, c, d, kind, M, { tile: 'w', residual: true })] as const));
      checkOutputs(c, M, withResidual, positions, d.residualHost);
      if (K >= 1024) {  // split-K through the workspace: uneven splits, twice each (counters must self-clean)
        for (const splits of [3, 4, 5]) {  // 4: reduce_fixed; 3, 5: the slice-by-slice loop
          for (let rep = 0; rep < 2; rep++) {
            for (const kind of ['w4a8-is', 'w4a8-pc'] as const) {
              assert.deepEqual(runKind(gpu, c, d, kind, M, { tile: 'w', splits }), outs.get(kind), `${kind} w splits=${splits} rep ${rep} (M=${M})`);
            }
          }
          checkOutputs(c, M, new Map((['w4a8-fs', 'w4a16'] as const).map((kind) => [kind, runKind(gpu, c, d, kind, M, { tile: 'w', splits })] as const)), positions);
          checkOutputs(c, M, new Map([['w4a8-is', runKind(gpu, c, d, 'w4a8-is', M, { tile: 'w', splits, residual: true })]]), positions, d.residualHost);
        }
      }
    } finally {
      freeAll(d);
    }
  }
});

test('small-M tiles v8/v16: IS and PC bit-exact, FS and W4A16 within bounds, = tile s bit for bit; partial last column block; residual; persistent blocks of many row tiles', { skip, timeout: 300_000 }, () => {
  const gpu = Gpu.open();
  let seed = 400;
  for (const { K, N, G } of [{ K: 4096, N: 4112, G: 128 }, { K: 1152, N: 2048, G: 64 }, { K: 640, N: 512, G: 32 }]) {
    const rng = new Rng(seed++);
    const c = makeW4Case(rng, 16, K, N, G);
    const d = uploadCase(gpu, c, rng);
    try {
      for (const M of [1, 8, 9, 16]) {
        const tile: W4Tile = M <= 8 ? 'v8' : 'v16';
        const positions = samplePositions(rng, M, N);
        const kinds: QuantMode[] = G === 128 ? ['w4a8-is', 'w4a8-fs', 'w4a8-pc', 'w4a16'] : ['w4a8-is', 'w4a8-fs'];
        const outs = new Map(kinds.map((kind) => [kind, runKind(gpu, c, d, kind, M, { tile })] as const));
        checkOutputs(c, M, outs, positions);
        assert.deepEqual(outs.get('w4a8-is'), runKind(gpu, c, d, 'w4a8-is', M, { tile: 's' }), `IS ${tile} = tile s (M=${M}, N=${N}, G=${G})`);
        const residualKinds: QuantMode[] = G === 128 ? ['w4a8-is', 'w4a16'] : ['w4a8-is'];
        const withResidual = new Map(residualKinds.map((kind) => [kind, runKind(gpu, c, d, kind, M, { tile, residual: true })] as const));
        checkOutputs(c, M, withResidual, positions, d.residualHost);
        // the persistent ring (v16, W4A16's v8) on few blocks (3 and 1: up to N/16 row tiles each,
        // the ring running across tile boundaries): output identical to the full grid's, bit for bit
        for (const blocks of [3, 1]) {
          for (const kind of kinds) {
            if (tile !== 'v16' && kind !== 'w4a16') continue;  // W4A8's v8: the rounds, one block per row tile
            const few = runKind(gpu, c, d, kind, M, { tile, smCount: 1, gemvBlocksPerSm: blocks });
            assert.deepEqual(few, outs.get(kind), `${kind} ${tile} on ${blocks} block(s) = full grid (M=${M}, N=${N}, G=${G})`);
          }
        }
      }
    } finally {
      freeAll(d);
    }
  }
});

test('per-token activation quantization kernel is bit-exact with the CPU (incl. an all-zero row)', { skip }, () => {
  const gpu = Gpu.open();
  const kernel = gpu.compile(QUANTIZE_ACT.source).fn(QUANTIZE_ACT.entry);
  const rng = new Rng(300);
  for (const [M, K] of [[1, 4096], [3, 14336], [1000, 11008], [17, 4096]] as const) {
    const c = makeW4Case(rng, M, K, 8, 128);
    const x16 = c.x16.slice();
    if (M > 2) x16.fill(0, K, 2 * K); // row 1 all zero: s_x = 0, q = 0
    const x = new Float32Array(x16.length);
    for (let i = 0; i < x.length; i++) x[i] = f16ToF32(x16[i]!);
    const want = quantizeActivations(x, M, K);
    const dx = gpu.upload(x16);
    const dq = gpu.alloc(M * K);
    const ds = gpu.alloc(M * 4);
    gpu.memset(dq, 0x80);
    gpu.memset(ds, 0xff);
    kernel.launch({ grid: M, block: QUANTIZE_ACT.block }, [{ ptr: dx }, { ptr: dq }, { ptr: ds }, { i32: M }, { i32: K }]);
    const q = gpu.download(dq, new Int8Array(M * K));
    const s = gpu.download(ds, new Float32Array(M));
    assert.deepEqual(s, want.scale, `s_x M=${M} K=${K}`);
    const bad = q.findIndex((v, i) => v !== want.q[i]);
    assert.equal(bad, -1, `q M=${M} K=${K}: q[${bad}] = ${q[bad]}, expected ${want.q[bad]}`);
    for (const b of [dx, dq, ds]) b.free();
  }
});
