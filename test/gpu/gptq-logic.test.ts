// The GPU GPTQ's host-side logic, no GPU needed: the row-major → column-major cuBLASLt mapping
// against a column-major GEMM emulator, the blocked factor's step plan run in float64 against
// linalg.ts's U (H⁻¹ = UᵀU), the column loop's fp32 data flow (gptq_block's arithmetic, operation
// for operation, and the lazy fp32 update) within the GPU test's tolerances of the float64 CPU
// GPTQ on the GPU test's cases, prepareHessian's diagonal rules on a hand-worked case, the
// --calib-device decision table and the benchmark's layer shapes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IntscaleError } from '../../src/core/errors.ts';
import { Rng } from '../../src/core/rng.ts';
import { alignmentOf, columnMajorCall, type RowMajorGemm } from '../../src/gpu/gptq/lt-matmul.ts';
import { factorSteps, type Ref } from '../../src/gpu/gptq/factor-steps.ts';
import { gpuGptqUnsupported } from '../../src/gpu/gptq/solver.ts';
import { diagonalPlan, gptqQuantize, prepareHessian, type PreparedHessian } from '../../src/quant/gptq.ts';
import { InputStats } from '../../src/quant/hessian.ts';
import { rintClamp } from '../../src/quant/fp32.ts';
import { resolveGroupSize, scaleFromAbsmax, type QuantizedWeight } from '../../src/quant/rtn.ts';
import { CASE_ROWS, CASES, DEAD, inputs, MIN_SAME_Q, objective, OBJECTIVE_REL_TOL, sameFraction, U_REL_TOL, weights } from './gptq-fixtures.ts';
import { inverseCholeskyUpper } from '../../src/quant/linalg.ts';
import { chooseCalibDevice, parseCalibDevice } from '../../src/cli/calib-device.ts';
import { layerGroups } from '../../src/bench/gptq.ts';

/** Float64 in a different summation order only. */
const F64_TOL = 1e-9;

/** `rd`: the rounding after each operation (identity: float64; Math.fround: fp32). */
function rowMajorReference(g: RowMajorGemm, a: Float64Array, b: Float64Array, c: Float64Array, alpha: number, beta: number, rd = (v: number) => v): void {
  for (let r = 0; r < g.m; r++)
    for (let col = 0; col < g.n; col++) {
      let s = 0;
      for (let k = 0; k < g.k; k++) s = rd(s + rd((g.transA ? a[k * g.lda + r]! : a[r * g.lda + k]!) * (g.transB ? b[col * g.ldb + k]! : b[k * g.ldb + col]!)));
      c[r * g.ldc + col] = rd(rd(alpha * s) + rd(beta * c[r * g.ldc + col]!));
    }
}

/** What cuBLASLt computes for the call (column-major, op N/T): D = α·op(A')·op(B') + β·C. */
function columnMajorEmulator(g: RowMajorGemm, a: Float64Array, b: Float64Array, c: Float64Array, alpha: number, beta: number): void {
  const call = columnMajorCall(g);
  const A = b, B = a; // A' = the row-major B, B' = the row-major A
  const el = (buf: Float64Array, op: 'N' | 'T', ld: number, i: number, j: number) => (op === 'N' ? buf[i + j * ld]! : buf[j + i * ld]!);
  for (const [what, l, op] of [['A', call.a, call.a.op], ['B', call.b, call.b.op]] as const) {
    // op(A') is [m', k'], op(B') is [k', n']: stored as such for N, transposed for T
    const [r, c] = what === 'A' ? [call.m, call.k] : [call.k, call.n];
    const [rows, cols] = op === 'N' ? [r, c] : [c, r];
    assert.deepEqual([l.rows, l.cols], [rows, cols], `${what}' layout matches its op`);
    assert.ok(l.ld >= l.rows, `${what}' ld ${l.ld} ≥ rows ${l.rows}`);
  }
  assert.ok(call.c.ld >= call.c.rows);
  for (let i = 0; i < call.m; i++)
    for (let j = 0; j < call.n; j++) {
      let s = 0;
      for (let k = 0; k < call.k; k++) s += el(A, call.a.op, call.a.ld, i, k) * el(B, call.b.op, call.b.ld, k, j);
      c[i + j * call.c.ld] = alpha * s + beta * c[i + j * call.c.ld]!;
    }
}

test('row-major GEMMs map to column-major cuBLASLt calls that compute them (all four op pairs, padded leading dimensions)', () => {
  const rng = new Rng(3);
  for (const transA of [false, true]) for (const transB of [false, true]) {
    const m = 5, n = 7, k = 3;
    const lda = (transA ? m : k) + 2, ldb = (transB ? k : n) + 1, ldc = n + 3;
    const g: RowMajorGemm = { m, n, k, transA, transB, lda, ldb, ldc, inType: 'f32' };
    const a = Float64Array.from(rng.normals((transA ? k : m) * lda));
    const b = Float64Array.from(rng.normals((transB ? n : k) * ldb));
    const c0 = Float64Array.from(rng.normals(m * ldc));
    const want = Float64Array.from(c0), got = Float64Array.from(c0);
    rowMajorReference(g, a, b, want, -1.5, 0.5);
    columnMajorEmulator(g, a, b, got, -1.5, 0.5);
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs(want[i]! - got[i]!) < 1e-12, `transA ${transA} transB ${transB}: element ${i}`);
  }
});

test('alignmentOf: the largest power of two up to 256 dividing the address', () => {
  assert.equal(alignmentOf(0x1000n), 256);
  assert.equal(alignmentOf(0x1004n), 4);
  assert.equal(alignmentOf(0x1080n), 128);
  assert.equal(alignmentOf(0x1001n), 1);
});

/** Runs the factor's steps in float64 the way factor.ts runs them on the GPU (chol as gptq_chol_diag). */
function runSteps(aIn: Float64Array, K: number, nb: number, rd = (v: number) => v): Float64Array {
  const bufs = { A: Float64Array.from(aIn), X: new Float64Array(K * K), P: new Float64Array(K * nb) };
  const view = (r: Ref) => bufs[r.buf].subarray(r.row * r.ld + r.col);
  for (const s of factorSteps(K, nb)) {
    if (s.op === 'gemm') rowMajorReference(s.g, view(s.a), view(s.b), view(s.c), s.alpha, s.beta, rd);
    else if (s.op === 'copy') {
      const src = view(s.src), dst = view(s.dst);
      for (let r = 0; r < s.rows; r++) for (let c = 0; c < s.cols; c++) dst[r * s.dst.ld + c] = src[r * s.src.ld + c]!;
    } else {
      const A = bufs.A, X = bufs.X, { j0, nb: b } = s, at = (r: number, c: number) => (j0 + r) * K + j0 + c;
      for (let j = 0; j < b; j++) {
        A[at(j, j)] = rd(Math.sqrt(A[at(j, j)]!));
        for (let i = j + 1; i < b; i++) A[at(i, j)] = rd(A[at(i, j)]! / A[at(j, j)]!);
        for (let i = j + 1; i < b; i++) for (let k = j + 1; k <= i; k++) A[at(i, k)] = rd(A[at(i, k)]! - rd(A[at(i, j)]! * A[at(k, j)]!));
      }
      for (let c = 0; c < b; c++)
        for (let i = c; i < b; i++) {
          let sum = i === c ? 1 : 0;
          for (let k = c; k < i; k++) sum = rd(sum - rd(A[at(i, k)]! * X[at(k, c)]!));
          X[at(i, c)] = rd(sum / A[at(i, i)]!);
        }
    }
  }
  return bufs.X;
}

test('the blocked factor steps give linalg.ts\'s U (H⁻¹ = UᵀU) after the index reversal, K not a multiple of the block', () => {
  const rng = new Rng(5);
  for (const [K, nb] of [[200, 64], [130, 128], [96, 32]] as const) {
    const rows = K + 20, x = rng.normals(rows * K);
    const h = new Float64Array(K * K);
    for (let r = 0; r < rows; r++) for (let i = 0; i < K; i++) { const xi = x[r * K + i]!; for (let j = 0; j < K; j++) h[i * K + j]! += xi * x[r * K + j]!; }
    for (let i = 0; i < K; i++) h[i * K + i]! += 1;
    const a = new Float64Array(K * K); // J·H·J
    for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) a[i * K + j] = h[(K - 1 - i) * K + (K - 1 - j)]!;
    const X = runSteps(a, K, nb), want = inverseCholeskyUpper(h, K);
    let worst = 0, scale = 0;
    for (let r = 0; r < K; r++) for (let c = 0; c < K; c++) {
      const u = c >= r ? X[(K - 1 - r) * K + (K - 1 - c)]! : 0;
      worst = Math.max(worst, Math.abs(u - want[r * K + c]!));
      scale = Math.max(scale, Math.abs(want[r * K + c]!));
    }
    assert.ok(worst <= F64_TOL * scale, `K=${K} nb=${nb}: max |ΔU| = ${worst} (max |U| ${scale})`);
  }
});

test('diagonalPlan: dead inputs get 1, act-order sorts the fixed diagonal (stable), damp = percdamp·mean', () => {
  const p = diagonalPlan(Float64Array.from([0, 3, 1, 3, 2]), { percdamp: 0.01, actOrder: true });
  assert.deepEqual([...p.dead], [1, 0, 0, 0, 0]);
  assert.deepEqual([...p.perm], [1, 3, 4, 0, 2]);
  assert.ok(Math.abs(p.damp - 0.02) < 1e-15);
  assert.deepEqual([...diagonalPlan(Float64Array.from([2, 1]), { actOrder: false }).perm], [0, 1]);
  assert.throws(() => diagonalPlan(Float64Array.from([1, NaN])), /non-finite Hessian diagonal at 1/);
  assert.throws(() => diagonalPlan(Float64Array.from([1]), { percdamp: 1 }), /percdamp 1 outside \[0, 1\)/);
});

test('diagonalPlan agrees with prepareHessian (dead inputs, permutation, dampened diagonal) on random Hessians', () => {
  const rng = new Rng(8);
  for (const actOrder of [false, true]) {
    const K = 48, rows = 64, x = rng.normals(rows * K);
    for (let r = 0; r < rows; r++) for (const k of [5, 30]) x[r * K + k] = 0; // two dead inputs
    const h = new Float64Array(K * K);
    for (let r = 0; r < rows; r++) for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) h[i * K + j]! += (2 * x[r * K + i]! * x[r * K + j]!) / rows;
    const ph = prepareHessian(h, K, { actOrder, percdamp: 0.05 });
    const plan = diagonalPlan(Float64Array.from({ length: K }, (_, k) => h[k * K + k]!), { actOrder, percdamp: 0.05 });
    assert.deepEqual([...plan.dead], [...ph.dead]);
    assert.deepEqual([...plan.perm], [...ph.perm]);
    for (let k = 0; k < K; k++) assert.equal(ph.h![k * K + k], (plan.dead[k] ? 1 : h[k * K + k]!) + plan.damp, `diagonal ${k}`);
  }
});

test('--calib-device: cpu/cuda/auto decisions, one-line refusals for cuda', () => {
  const noGpu = () => 'no GPU: no NVIDIA driver found';
  const gpu = () => undefined;
  assert.equal(parseCalibDevice('auto'), 'auto');
  assert.throws(() => parseCalibDevice('gpu'), /--calib-device: expected cpu, cuda or auto, got 'gpu'/);
  assert.deepEqual(chooseCalibDevice('auto', { usesGptq: true }, gpu), { device: 'cuda' });
  assert.deepEqual(chooseCalibDevice('auto', { usesGptq: true }, noGpu), { device: 'cpu' });
  assert.deepEqual(chooseCalibDevice('cpu', { usesGptq: true }, () => assert.fail('no GPU probe for cpu')), { device: 'cpu' });
  assert.deepEqual(chooseCalibDevice('auto', { usesGptq: false }, () => assert.fail('no GPU probe without GPTQ')), { device: 'cpu' });
  const clip = chooseCalibDevice('auto', { usesGptq: true, clip: true }, gpu);
  assert.equal(clip.device, 'cpu');
  assert.match(clip.note ?? '', /clip search \(--clip\) runs on the CPU only/);
  const oneLine = (re: RegExp) => (e: unknown) => e instanceof IntscaleError && re.test(e.message) && !e.message.includes('\n');
  assert.throws(() => chooseCalibDevice('cuda', { usesGptq: true }, noGpu), oneLine(/^--calib-device cuda: no GPU/));
  assert.throws(() => chooseCalibDevice('cuda', { usesGptq: false }, gpu), oneLine(/only GPTQ has a CUDA backend/));
  assert.throws(() => chooseCalibDevice('cuda', { usesGptq: true, blockSize: 256 }, gpu), oneLine(/at most 128 columns \(got --block-size 256\)/));
  assert.equal(gpuGptqUnsupported({ blockSize: 128 }), undefined);
  const moe = chooseCalibDevice('auto', { usesGptq: true, moe: true }, gpu);
  assert.equal(moe.device, 'cpu');
  assert.match(moe.note ?? '', /mixture of experts .* calibrates on the CPU only/);
  assert.throws(() => chooseCalibDevice('cuda', { usesGptq: true, moe: true }, gpu), oneLine(/^--calib-device cuda: a mixture of experts/));
});

test('bench gptq: the LLaMA-2-7B layer\'s input groups and shapes', () => {
  const g = layerGroups('llama2-7b');
  assert.deepEqual(g.map((x) => x.K), [4096, 4096, 4096, 11008]);
  assert.deepEqual(g.map((x) => x.linears.map((l) => `${l.name}:${l.N}`).join(',')),
    ['q_proj:4096,k_proj:4096,v_proj:4096', 'o_proj:4096', 'gate_proj:11008,up_proj:11008', 'down_proj:4096']);
  assert.deepEqual(layerGroups('llama3-8b')[0]!.linears.map((l) => l.N), [4096, 1024, 1024]);
});

/** gptq.cu's column loop in TypeScript, fp32 operation for operation (gptq_permute_weights,
 *  gptq_static_scales, gptq_block per row, the lazy fp32 GEMM, gptq_unpermute_q), against an fp32 U. */
function emulateGpuColumnLoop(w: Float32Array, N: number, K: number, ph: PreparedHessian, group: number, B: number): QuantizedWeight {
  const f = Math.fround, { perm, dead } = ph, u = Float32Array.from(ph.u);
  const G = resolveGroupSize(group, K), groups = K / G, actOrder = perm.some((p, i) => p !== i);
  const wp = new Float32Array(N * K), qp = new Int8Array(N * K), scales = new Float32Array(N * groups);
  for (let n = 0; n < N; n++) for (let i = 0; i < K; i++) wp[n * K + i] = dead[perm[i]!] ? 0 : w[n * K + perm[i]!]!;
  if (actOrder) {
    const inv = new Int32Array(K);
    perm.forEach((k, i) => { inv[k] = i; });
    for (let n = 0; n < N; n++) for (let g = 0; g < groups; g++) {
      let m = 0;
      for (let k = g * G; k < (g + 1) * G; k++) m = Math.max(m, Math.abs(wp[n * K + inv[k]!]!));
      scales[n * groups + g] = scaleFromAbsmax(m);
    }
  }
  for (let i1 = 0; i1 < K; i1 += B) {
    const cnt = Math.min(B, K - i1), i2 = i1 + cnt, err = new Float32Array(N * cnt);
    for (let n = 0; n < N; n++) {
      const row = n * K, wr = wp.slice(row + i1, row + i2);
      let s = !actOrder && i1 % G !== 0 ? scales[n * groups + ((i1 / G) | 0)]! : 0;
      for (let c = 0; c < cnt; c++) {
        const i = i1 + c;
        if (actOrder) s = scales[n * groups + ((perm[i]! / G) | 0)]!;
        else if (i % G === 0) {
          let m = 0;
          for (let c2 = c; c2 < Math.min(cnt, c + G); c2++) m = Math.max(m, Math.abs(wr[c2]!));
          for (let k = i2; k < i + G; k++) m = Math.max(m, Math.abs(wp[row + k]!));
          s = scaleFromAbsmax(m);
          scales[n * groups + i / G] = s;
        }
        const x = wr[c]!, q = s === 0 ? 0 : rintClamp(f(x / s), -7, 7);
        qp[row + i] = q;
        const e = f(f(x - f(q * s)) / u[i * K + i]!);
        err[n * cnt + c] = e;
        for (let c2 = c + 1; c2 < cnt; c2++) wr[c2] = f(wr[c2]! - f(e * u[i * K + i1 + c2]!));
      }
    }
    for (let n = 0; n < N; n++) for (let j = i2; j < K; j++) {
      let acc = 0;
      for (let c = 0; c < cnt; c++) acc = f(acc + f(err[n * cnt + c]! * u[(i1 + c) * K + j]!));
      wp[n * K + j] = f(wp[n * K + j]! - acc);
    }
  }
  const q = new Int8Array(N * K);
  for (let n = 0; n < N; n++) for (let i = 0; i < K; i++) q[n * K + perm[i]!] = qp[n * K + i]!;
  return { outFeatures: N, inFeatures: K, groupSize: G, q, scales };
}

test('the GPU column loop\'s fp32 arithmetic stays within the GPU test\'s tolerances of the float64 CPU GPTQ (its cases)', (t) => {
  CASES.forEach((c, ci) => {
    const rng = new Rng(100 + ci), x = inputs(rng, CASE_ROWS, c.K, DEAD), w = weights(rng, c.N, c.K);
    const stats = new InputStats(c.K, true, false);
    stats.add(x, CASE_ROWS);
    const h = stats.hessian(), ph = prepareHessian(h, c.K, { actOrder: c.actOrder });
    const B = c.blockSize ?? 128;
    const cpu = gptqQuantize(w, c.N, c.K, ph, { group: c.group, actOrder: c.actOrder, blockSize: B }).qw;
    const emu = emulateGpuColumnLoop(w, c.N, c.K, ph, c.group, B);
    const sameQ = sameFraction(emu.q, cpu.q), og = objective(w, emu, h, c.N, c.K), oc = objective(w, cpu, h, c.N, c.K);
    t.diagnostic(`${c.name}: same q ${(100 * sameQ).toFixed(2)}%, objective fp32/f64 ${(og / oc).toFixed(5)}`);
    assert.ok(sameQ >= MIN_SAME_Q, `${c.name}: ${(100 * sameQ).toFixed(2)}% equal`);
    assert.ok(Math.abs(og - oc) <= OBJECTIVE_REL_TOL * oc, `${c.name}: objective ${og} vs ${oc}`);
    if (c.actOrder) assert.equal(sameFraction(emu.scales, cpu.scales), 1, `${c.name}: static scales`);
  });
});

test('the blocked factor in fp32 (what the GPU runs) stays within the GPU test\'s U tolerance on its Hessians', (t) => {
  for (const ci of [0, 1]) { // K = 512, natural and act-order
    const c = CASES[ci]!, rng = new Rng(100 + ci), x = inputs(rng, CASE_ROWS, c.K, DEAD);
    const stats = new InputStats(c.K, true, false);
    stats.add(x, CASE_ROWS);
    const ph = prepareHessian(stats.hessian(), c.K, { actOrder: c.actOrder }), K = c.K;
    const hp = ph.h!, f = Math.fround, a = new Float64Array(K * K); // J·P·H·Pᵀ·J in fp32
    for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) a[i * K + j] = f(hp[ph.perm[K - 1 - i]! * K + ph.perm[K - 1 - j]!]!);
    const X = runSteps(a, K, 128, f);
    let num = 0, den = 0;
    for (let r = 0; r < K; r++) for (let col = r; col < K; col++) {
      const d = X[(K - 1 - r) * K + (K - 1 - col)]! - ph.u[r * K + col]!;
      num += d * d;
      den += ph.u[r * K + col]! ** 2;
    }
    const err = Math.sqrt(num / den);
    t.diagnostic(`${c.name}: fp32 factor, ‖ΔU‖/‖U‖ = ${err.toExponential(2)}`);
    assert.ok(err <= U_REL_TOL / 4, `${c.name}: ${err} (the GPU test allows ${U_REL_TOL}; its GEMMs sum in another order)`);
  }
});
