// The pool tasks' pointer arithmetic above 2 GiB (the regression of the >>> fix): heap byte offsets
// travel as int32 words, so an offset ≥ 2^31 arrives negative and must be shifted unsigned to index
// the heap. The pure-JavaScript tasks (SwiGLU, transpose, the Cholesky panel, GPTQ's columns) run
// here over a 2 GiB + 1 MiB zero-filled buffer (untouched pages stay unallocated) standing in for the
// WebAssembly memory, on arrays placed just above 2 GiB, against the same tasks on arrays near 0.
// A signed shift (the old bug) gives negative indices: undefined reads, NaN or wrong results.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/core/rng.ts';
import { GPTQ_PARAM_WORDS, POOL_TASKS_SOURCE, TASK_GPTQ_COLUMNS, TASK_PANEL64, TASK_SWIGLU, TASK_TRANSPOSE } from '../../src/core/pool-tasks.ts';

type Task = (a: Int32Array, lo: number, hi: number, thread: number) => void;
const HIGH = 2 ** 31 + 4096, LOW = 4096, BYTES = 2 ** 31 + 2 ** 20;

const buffer = new ArrayBuffer(BYTES);
const noKernel = { mm: () => assert.fail('no GEMM here'), mm64: () => assert.fail('no GEMM here') };
const tasks = (new Function(`return ${POOL_TASKS_SOURCE};`)() as (m: { buffer: ArrayBuffer }, k: unknown) => (Task | null)[])({ buffer }, noKernel);
const run = (kind: number, args: number[], extent: number) => tasks[kind]!(Int32Array.from(args), 0, extent, 0);
const f32 = (byte: number, n: number) => new Float32Array(buffer, byte, n);
const f64 = (byte: number, n: number) => new Float64Array(buffer, byte, n);

test('heap offsets above 2 GiB arrive as negative int32 words', () => {
  assert.ok(Int32Array.from([HIGH])[0]! < 0);
  assert.equal(Int32Array.from([HIGH])[0]! >>> 2, HIGH / 4);
});

/** Runs `body(base)` at both bases and returns the two results. */
function atBoth<T>(body: (base: number) => T): [T, T] {
  return [body(LOW), body(HIGH)];
}

test('SwiGLU and transpose tasks read and write arrays above 2 GiB', () => {
  const rng = new Rng(41), n = 257, M = 9, K = 13;
  const gate = rng.normals(n, 2), up = rng.normals(n, 1), src = rng.normals(M * K, 1);
  const [lo, hi] = atBoth((base) => {
    f32(base, n).set(gate); f32(base + 4 * n, n).set(up);
    run(TASK_SWIGLU, [base, base + 4 * n, n], n);
    const t0 = base + 8 * n + 64;
    f32(t0, M * K).set(src);
    run(TASK_TRANSPOSE, [t0, M, K, t0 + 4 * M * K], K);
    return [Array.from(f32(base, n)), Array.from(f32(t0 + 4 * M * K, M * K))];
  });
  assert.ok(lo[0]!.every(Number.isFinite));
  assert.deepEqual(hi, lo);
  assert.equal(lo[1]![3 * M + 2], src[2 * K + 3]); // dst[k, m] = src[m, k]
});

test('Cholesky panel and GPTQ column tasks (float64, a parameter block of pointers) above 2 GiB', () => {
  const rng = new Rng(42), n = 24, j0 = 0, j1 = 8;
  // a symmetric positive definite A; its first block column factored by the caller (here: the task's input as given)
  const x = rng.normals(n * n, 1), a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) { let s = i === j ? n : 0; for (let k = 0; k < n; k++) s += x[i * n + k]! * x[j * n + k]!; a[i * n + j] = s; }
  const N = 5, K = 16, G = 8, B = 8, groups = K / G;
  const w = Float64Array.from(rng.normals(N * K, 0.5)), u = new Float64Array(B * B);
  for (let i = 0; i < B; i++) for (let j = i; j < B; j++) u[i * B + j] = i === j ? 1 + rng.normal() ** 2 : 0.1 * rng.normal();
  const scales = Float32Array.from({ length: N * groups }, () => 0.1 + 0.05 * Math.abs(rng.normal()));
  const [lo, hi] = atBoth((base) => {
    f64(base, n * n).set(a);
    run(TASK_PANEL64, [base, n, j0, j1], n - j1);
    const panel = Array.from(f64(base, n * n));
    // GPTQ: [wp, u, err, scales, perm, qp, loss, K, G, groups, B], the words at p0
    const p0 = base + 8 * n * n, wp = p0 + 64, up = wp + 8 * N * K, err = up + 8 * B * B, sc = err + 8 * N * B;
    const perm = sc + 4 * N * groups, qp = perm + 4 * K, loss = qp + N * K + 64 - ((qp + N * K) % 64);
    f64(wp, N * K).set(w); f64(up, B * B).set(u); f32(sc, N * groups).set(scales);
    new Int32Array(buffer, perm, K).set(Int32Array.from({ length: K }, (_, i) => i));
    new Int32Array(buffer, p0, GPTQ_PARAM_WORDS).set([wp, up, err, sc, perm, qp, loss, K, G, groups, B]);
    run(TASK_GPTQ_COLUMNS, [p0, 0, B, 0, B], N);
    return [panel, Array.from(new Int8Array(buffer, qp, N * K)), Array.from(f64(wp, N * K)), Array.from(f64(loss, N))];
  });
  assert.ok(lo[0]!.every(Number.isFinite) && lo[3]!.every((v) => v > 0));
  assert.ok(lo[1]!.slice(0, B).some((q) => q !== 0), 'columns quantized');
  assert.deepEqual(hi, lo);
});
