// The calibration forward on the GPU (src/gpu/calib/layer-ops.ts, calib_forward.cu) against the CPU's
// (src/quant/calib-ops-cpu.ts over layer-forward.ts), op by op on seeded random rows: RMSNorm, SwiGLU,
// the residual add and the dequantization within FP32_ULPS ulps (the same double-then-fp32 rounding,
// a different summation order for Σx²); the linears within the fp32 dot-product bound; the attention
// (GQA, both RoPE layouts, a sliding window, windows not a multiple of the kernel's tiles, head sizes
// not a multiple of 32) within ATTN_REL_TOL of the output's magnitude; the device Gram of device rows
// against the host rows' within the fp32 bound. Poisoned outputs: every output buffer starts as NaN.
// Skipped without a GPU.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../../src/core/rng.ts';
import { Gpu } from '../../src/gpu/runtime.ts';
import { GpuGptq, type RowsGram } from '../../src/gpu/gptq/solver.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import type { Act, LayerOps } from '../../src/quant/calib-ops.ts';
import { CpuLayerOps } from '../../src/quant/calib-ops-cpu.ts';
import { quantizeRtn } from '../../src/quant/rtn.ts';

const reason = Gpu.unavailableReason();
const skip = reason ? `skipped: ${reason}` : false;

/** Elementwise ops: at most this many fp32 ulps apart (exp and the Σx² order). */
const FP32_ULPS = 2;
/** fp32 unit roundoff */
const FP32_EPS = 2 ** -24;
/** Attention: |gpu − cpu| ≤ ATTN_REL_TOL · max |cpu| (fp32 dot products of hd and T terms in other orders). */
const ATTN_REL_TOL = 1e-5;

const config = (o: Partial<ModelConfig>): ModelConfig => ({
  arch: 'llama', dim: 96, hiddenDim: 160, nLayers: 1, nHeads: 4, nKvHeads: 2, headDim: 48,
  vocabSize: 64, maxSeq: 256, normEps: 1e-5, rope: { theta: 10000, layout: 'half' }, tieEmbeddings: false, qkvBias: false, ...o,
});

const ulps = (a: number, b: number) => {
  if (a === b) return 0;
  const f = new Float32Array([a, b]), i = new Int32Array(f.buffer);
  return Math.abs(i[0]! - i[1]!);
};

/** The same host rows on both: returns [cpu act, gpu act]. */
function both(cpu: LayerOps, gpu: LayerOps, data: Float32Array, rows: number, width: number): [Act, Act] {
  return [cpu.fromHost(Float32Array.from(data), rows, width), gpu.fromHost(data, rows, width)];
}

/** An output buffer on the GPU poisoned with NaN. */
function poisoned(gpu: LayerOps, rows: number, width: number): Act {
  return gpu.fromHost(new Float32Array(rows * width).fill(NaN), rows, width);
}

function maxUlps(got: Float32Array, want: Float32Array): number {
  assert.equal(got.length, want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    if (Number.isNaN(got[i]!)) return Infinity;
    worst = Math.max(worst, ulps(got[i]!, want[i]!));
  }
  return worst;
}

test('CUDA calibration ops: RMSNorm, SwiGLU, residual add and dequantization match the CPU within a few ulps', { skip }, () => {
  const solver = new GpuGptq(Gpu.open()), rng = new Rng(41);
  const c = config({}), cpu = new CpuLayerOps(c), gpu = solver.layerOps(c);
  try {
    const rows = 37, dim = c.dim;
    const [xc, xg] = both(cpu, gpu, rng.normals(rows * dim, 3), rows, dim), gamma = rng.normals(dim, 1);
    const want = cpu.read(cpu.rmsNorm(xc, gamma, 1e-5, cpu.alloc(rows, dim)));
    assert.ok(maxUlps(gpu.read(gpu.rmsNorm(xg, gamma, 1e-5, poisoned(gpu, rows, dim))), want) <= FP32_ULPS, 'rmsNorm');
    // a view of rows: the norm of rows [5, 9) only
    const part = gpu.read(gpu.rmsNorm(gpu.rows(xg, 5, 9), gamma, 1e-5, poisoned(gpu, 4, dim)));
    assert.ok(maxUlps(part, want.subarray(5 * dim, 9 * dim)) <= FP32_ULPS, 'rmsNorm of a row view');

    const n = 53 * 160, g = rng.normals(n, 4), u = rng.normals(n, 2);
    const [gc, gg] = both(cpu, gpu, g, 53, 160), [uc, ug] = both(cpu, gpu, u, 53, 160);
    assert.ok(maxUlps(gpu.read(gpu.swiglu(gg, ug)), cpu.read(cpu.swiglu(gc, uc))) <= FP32_ULPS, 'swiglu');
    gpu.addInto(ug, gg);
    cpu.addInto(uc, gc);
    assert.equal(maxUlps(gpu.read(ug), cpu.read(uc)), 0, 'x += y: one fp32 rounding each');

    const w = rng.normals(24 * 64, 0.1), qw = quantizeRtn(w, 24, 64, { group: 32 });
    const eye = new Float32Array(64 * 64);
    for (let k = 0; k < 64; k++) eye[k * 64 + k] = 1;
    const [ec, eg] = both(cpu, gpu, eye, 64, 64);
    const dq = cpu.read(cpu.linear(ec, cpu.dequantized(qw), undefined, cpu.alloc(64, 24)));
    assert.equal(maxUlps(gpu.read(gpu.linear(eg, gpu.dequantized(qw), undefined, poisoned(gpu, 64, 24))), dq), 0, 'dequantized weights (through I·Wᵀ)');
  } finally {
    gpu.releaseAll();
    cpu.releaseAll();
    solver.dispose();
  }
});

test('CUDA calibration ops: linears with bias within the fp32 dot-product bound, and the device Gram of device rows', { skip }, () => {
  const solver = new GpuGptq(Gpu.open()), rng = new Rng(42);
  const c = config({}), cpu = new CpuLayerOps(c), gpu = solver.layerOps(c);
  try {
    for (const [rows, K, N] of [[5, 64, 96], [1030, 320, 200]] as const) {
      const x = rng.normals(rows * K), w = rng.normals(N * K, 0.05), bias = rng.normals(N);
      const [xc, xg] = both(cpu, gpu, x, rows, K);
      const want = cpu.read(cpu.linear(xc, cpu.weight(w, N, K), bias, cpu.alloc(rows, N)));
      const got = gpu.read(gpu.linear(xg, gpu.weight(w, N, K), bias, poisoned(gpu, rows, N)));
      let worst = 0;
      for (let r = 0; r < rows; r++) for (let n = 0; n < N; n++) {
        let mag = Math.abs(bias[n]!);
        for (let k = 0; k < K; k++) mag += Math.abs(x[r * K + k]! * w[n * K + k]!);
        worst = Math.max(worst, Math.abs(got[r * N + n]! - want[r * N + n]!) / (mag * K * FP32_EPS));
      }
      assert.ok(worst <= 2, `rows ${rows} K ${K} N ${N}: error ${worst} × K·eps·Σ|x·w|`);
    }
    const K = 48, rows = 300, x = rng.normals(rows * K, 2);
    const onDevice = solver.gram(K), fromHost = solver.gram(K), xg = gpu.fromHost(x, rows, K);
    gpu.accumulate(gpu.rows(xg, 0, 100), undefined, onDevice);
    gpu.accumulate(gpu.rows(xg, 100, rows), undefined, onDevice);
    fromHost.add(x, rows);
    assert.equal(onDevice.rows, rows);
    const a = solver.gpu.download((onDevice as RowsGram).matrix(), new Float32Array(K * K));
    const b = solver.gpu.download((fromHost as RowsGram).matrix(), new Float32Array(K * K));
    for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) {
      let mag = 0;
      for (let r = 0; r < rows; r++) mag += Math.abs(x[r * K + i]! * x[r * K + j]!);
      assert.ok(Math.abs(a[i * K + j]! - b[i * K + j]!) <= 2 * rows * FP32_EPS * mag, `gram[${i}, ${j}]`);
    }
    onDevice.free();
    fromHost.free();
  } finally {
    gpu.releaseAll();
    cpu.releaseAll();
    solver.dispose();
  }
});

test('CUDA calibration ops: causal GQA attention with RoPE matches the CPU (both layouts, a sliding window, odd window lengths, head sizes 16/48/128)', { skip }, () => {
  const solver = new GpuGptq(Gpu.open()), rng = new Rng(43);
  try {
    const cases: Partial<ModelConfig>[] = [
      { headDim: 48 },
      { headDim: 16, rope: { theta: 10000, layout: 'interleaved' } },
      { headDim: 128, nHeads: 8, nKvHeads: 8, slidingWindow: 9 },
      { headDim: 64, nHeads: 6, nKvHeads: 2, rope: { theta: 500000, layout: 'half' } },
    ];
    for (const [ci, o] of cases.entries()) {
      const c = config(o), cpu = new CpuLayerOps(c), gpu = solver.layerOps(c);
      try {
        for (const [S, T] of [[3, 37], [2, 64], [1, 1]] as const) {
          const rows = S * T, qDim = c.nHeads * c.headDim, kvDim = c.nKvHeads * c.headDim;
          const q = rng.normals(rows * qDim, 2), k = rng.normals(rows * kvDim, 2), v = rng.normals(rows * kvDim);
          const [qc, qg] = both(cpu, gpu, q, rows, qDim), [kc, kg] = both(cpu, gpu, k, rows, kvDim), [vc, vg] = both(cpu, gpu, v, rows, kvDim);
          const want = cpu.read(cpu.attention(qc, kc, vc, S, T, cpu.alloc(rows, qDim)));
          const got = gpu.read(gpu.attention(qg, kg, vg, S, T, poisoned(gpu, rows, qDim)));
          let mag = 0, worst = 0;
          for (let i = 0; i < want.length; i++) mag = Math.max(mag, Math.abs(want[i]!));
          for (let i = 0; i < want.length; i++) worst = Math.max(worst, Number.isNaN(got[i]!) ? Infinity : Math.abs(got[i]! - want[i]!));
          assert.ok(worst <= ATTN_REL_TOL * mag, `case ${ci} (${JSON.stringify(o)}) S ${S} T ${T}: error ${worst} vs max |out| ${mag}`);
        }
      } finally {
        gpu.releaseAll();
        cpu.releaseAll();
      }
    }
  } finally {
    solver.dispose();
  }
});
