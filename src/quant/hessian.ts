// Calibration statistics of one linear input: the Gram matrix XᵀX (float64 sum over every
// calibration row), the per-channel mean and max |x| (AWQ, SmoothQuant), and the row count.
// Rows may come in any number of add() calls (the pipeline's row chunks): the Gram matrix is always
// summed over the same chunks of GRAM_CHUNK_ROWS consecutive rows (rows left over from a call wait in
// a pending buffer), so the result does not depend on how the rows were split. Each chunk's XᵀX is an
// fp32 product (the WebAssembly SIMD kernel), computed in bands of 64 output rows up to the diagonal
// and added into one float64 accumulator in the shared heap, so fp32 rounding stays per chunk; the
// transpose and the bands run as tasks on the matmul pool's threads (pool-tasks.ts). The first read
// (gram, hessian(), absMean()) adds the pending rows, copies the accumulator out and gives its heap
// space back; takeGram() hands the accumulator itself over instead (GPTQ's factorization reads it in
// place, gptq-gram.ts); dispose() gives it back without reading (errors, abandoned
// statistics).
import { fail } from '../core/errors.ts';
import { heapFree, isInHeap } from '../core/matmul.ts';
import { poolThreads, runTasks } from '../core/matmul-pool.ts';
import { TASK_GRAM_BAND, TASK_TRANSPOSE } from '../core/pool-tasks.ts';
import { heapF32, ptr, scratchF32 } from '../core/wasm-heap.ts';

/** Rows per fp32 Gram chunk (its rounding error grows with the rows summed in fp32). */
export const GRAM_CHUNK_ROWS = 512;
/** Output rows per matmul band: only the parts of bands on or below the diagonal are computed. */
const BAND = 64;

export class InputStats {
  private gramData: Float64Array;
  readonly absSum: Float64Array;
  readonly absMax: Float32Array;
  rows = 0;
  /** float64 [K, K] in the heap while rows are added (its lower triangle), then copied to gramData */
  private acc: Float32Array | undefined;
  /** up to GRAM_CHUNK_ROWS − 1 rows not yet in the accumulator, [pendingRows, K] fp32 in the heap */
  private pending: Float32Array | undefined;
  private pendingRows = 0;
  private finished = false;
  private consumed = false;

  /** withChannels: also the per-channel mean/max |x| (AWQ, SmoothQuant); GPTQ needs only the Gram matrix. */
  constructor(readonly K: number, readonly withGram = true, readonly withChannels = true) {
    this.gramData = new Float64Array(0); // K×K once read (finish); never, when takeGram hands the accumulator over
    this.absSum = new Float64Array(withChannels ? K : 0);
    this.absMax = new Float32Array(withChannels ? K : 0);
  }

  /** Σ xᵀx [K, K]: its lower triangle (the upper one is 0). Ends the adding. */
  get gram(): Float64Array {
    this.finish();
    if (this.consumed) fail('calibration', 'the Gram matrix was consumed by hessian()');
    return this.gramData;
  }

  /** Add `rows` rows of x [rows, K] (after earlier calls' rows). */
  add(x: Float32Array, rows: number): void {
    const K = this.K;
    if (this.finished) fail('calibration', 'statistics were already read; no rows can be added');
    if (x.length < rows * K) fail('calibration', `input has ${x.length} values, expected ${rows}x${K}`);
    if (this.withChannels) {
      for (let r = 0; r < rows; r++)
        for (let k = 0; k < K; k++) {
          const a = Math.abs(x[r * K + k]!);
          this.absSum[k]! += a;
          if (a > this.absMax[k]!) this.absMax[k] = a;
        }
    }
    this.rows += rows;
    if (!this.withGram || rows === 0) return;
    let r = 0;
    if (this.pendingRows > 0) {
      const take = Math.min(rows, GRAM_CHUNK_ROWS - this.pendingRows);
      this.pending!.set(x.subarray(0, take * K), this.pendingRows * K);
      this.pendingRows += take;
      r = take;
      if (this.pendingRows === GRAM_CHUNK_ROWS) { this.addGram(this.pending!, 0, GRAM_CHUNK_ROWS); this.pendingRows = 0; }
    }
    for (; rows - r >= GRAM_CHUNK_ROWS; r += GRAM_CHUNK_ROWS) this.addGram(x, r, r + GRAM_CHUNK_ROWS);
    if (r < rows) {
      this.pending ??= heapF32(GRAM_CHUNK_ROWS * K);
      this.pending.set(x.subarray(r * K, rows * K));
      this.pendingRows = rows - r;
    }
  }

  /** The accumulator's float64 view (allocated, zeroed, on first use). */
  private accumulator(): Float64Array {
    const K = this.K;
    this.acc ??= heapF32(2 * K * K);
    return new Float64Array(this.acc.buffer, this.acc.byteOffset, K * K);
  }

  private addGram(x: Float32Array, r0: number, r1: number): void {
    const K = this.K, M = r1 - r0, acc = this.accumulator();
    const chunk = x.subarray(r0 * K, r1 * K);
    const src = isInHeap(chunk) ? chunk : scratchF32('gram.x', M * K);
    if (src !== chunk) src.set(chunk);
    const xt = scratchF32('gram.xt', K * M); // xᵀ [K, M]
    runTasks(TASK_TRANSPOSE, [ptr(src), M, K, ptr(xt)], K, 16);
    const per = BAND * K, blocks = scratchF32('gram.blocks', per * poolThreads());
    runTasks(TASK_GRAM_BAND, [ptr(xt), M, K, ptr(acc), BAND, ptr(blocks), per * 4], Math.ceil(K / BAND), 1);
  }

  /** Adds the pending rows and moves the accumulator out of the heap (idempotent). */
  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    try {
      if (!this.withGram) return;
      if (this.pendingRows > 0) this.addGram(this.pending!, 0, this.pendingRows);
      const K = this.K, g = this.gramData = new Float64Array(K * K);
      if (!this.acc) return;
      const acc = this.accumulator();
      for (let i = 0; i < K; i++) g.set(acc.subarray(i * K, i * K + i + 1), i * K);
    } finally {
      this.dispose();
    }
  }

  /** The Gram matrix's lower triangle as the heap accumulator itself (no JS copy), handed to the
   *  caller, who gives it back with heapFree (a no-op for the JS array it is once the statistics were
   *  read, e.g. scaled by AWQ's fold); these statistics then have no Gram matrix. */
  takeGram(): Float64Array {
    if (!this.withGram) fail('calibration', 'statistics were collected without the Gram matrix');
    if (this.consumed) fail('calibration', 'the Gram matrix was consumed');
    if (this.finished) {
      const g = this.gramData;
      this.gramData = new Float64Array(0);
      this.consumed = true;
      return g;
    }
    if (this.pendingRows > 0) this.addGram(this.pending!, 0, this.pendingRows);
    const g = this.accumulator();
    this.acc = undefined;
    this.consumed = true;
    this.gramData = new Float64Array(0);
    this.dispose();
    return g;
  }

  /** Gives the heap parts back (the statistics stay readable only if they were read before). */
  dispose(): void {
    this.finished = true;
    if (this.acc) heapFree(this.acc);
    if (this.pending) heapFree(this.pending);
    this.acc = this.pending = undefined;
    this.pendingRows = 0;
  }

  /** GPTQ's Hessian 2·XᵀX/n as a full symmetric [K, K] matrix. `consume`: computed in place in the
   *  Gram matrix's array (no K×K copy: 970 MB at K = 11008), which these statistics then no longer have. */
  hessian(consume = false): Float64Array {
    if (!this.withGram) fail('calibration', 'statistics were collected without the Gram matrix');
    if (this.rows === 0) fail('calibration', 'no calibration rows');
    const K = this.K, g = this.gram, h = consume ? g : new Float64Array(K * K), f = 2 / this.rows;
    for (let k = 0; k < K; k++) if (!Number.isFinite(g[k * K + k]!)) fail('calibration', `non-finite activations in input channel ${k}`);
    // in place too: (i, j ≤ i) is read before (j, i), an upper entry, is written; upper entries are never read
    for (let i = 0; i < K; i++)
      for (let j = 0; j <= i; j++) { const v = g[i * K + j]! * f; h[i * K + j] = v; h[j * K + i] = v; }
    if (consume) { this.gramData = new Float64Array(0); this.consumed = true; }
    return h;
  }

  /** mean |x| per channel */
  absMean(): Float64Array {
    if (!this.withChannels) fail('calibration', 'statistics were collected without per-channel magnitudes');
    return Float64Array.from(this.absSum, (v) => v / Math.max(1, this.rows));
  }
}

/** tr(ΔW·H·ΔWᵀ) = Σ_n Δw_n H Δw_nᵀ for ΔW [N, K] (float64): the output error of ΔW on the calibration inputs (for H = XᵀX). */
export function hessianError(dw: Float64Array | Float32Array, N: number, K: number, h: Float64Array): number {
  let total = 0;
  const t = new Float64Array(K);
  for (let n = 0; n < N; n++) {
    const o = n * K;
    t.fill(0);
    for (let i = 0; i < K; i++) {
      const d = dw[o + i]!;
      if (d === 0) continue;
      const hi = i * K;
      for (let j = 0; j < K; j++) t[j]! += d * h[hi + j]!;
    }
    for (let j = 0; j < K; j++) total += t[j]! * dw[o + j]!;
  }
  return total;
}
