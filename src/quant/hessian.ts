// Calibration statistics of one linear input: the Gram matrix XᵀX (float64 sum over every
// calibration row), the per-channel mean and max |x| (AWQ, SmoothQuant), and the row count.
// Rows may come in any number of add() calls (the pipeline's row chunks): the Gram matrix is always
// summed over the same chunks of GRAM_CHUNK_ROWS consecutive rows (rows left over from a call wait in
// a pending buffer), so the result does not depend on how the rows were split. Each chunk's XᵀX is an
// fp32 product (the WebAssembly SIMD kernel), computed in bands of 64 output rows up to the diagonal
// and added into one float64 accumulator in the shared heap, so fp32 rounding stays per chunk; the
// transpose and the bands run as tasks on the matmul pool's threads (pool-tasks.ts). The accumulator
// stays in the heap, where scale() rescales it (folded per-channel scales) and the calibration methods
// read it without a JavaScript K×K copy: takeGram() hands it over (GPTQ's factorization, gptq-gram.ts),
// hessianF32() gives AWQ's search its fp32 Hessian (in place when consumed), hessianBlocksF32() the
// clip search's diagonal blocks. The first JavaScript read (gram, hessian()) copies it out and gives
// its heap space back; dispose() gives it back without reading (errors, abandoned statistics).
import { fail } from '../core/errors.ts';
import { heapFree, isInHeap } from '../core/matmul.ts';
import { poolThreads, runTasks } from '../core/matmul-pool.ts';
import { TASK_GRAM_BAND, TASK_TRANSPOSE } from '../core/pool-tasks.ts';
import { heapF32, ptr, scratchF32 } from '../core/wasm-heap.ts';
import { hessianBlocksF32, hessianF32InPlace, hessianFromLower } from './hessian-f32.ts';

/** Rows per fp32 Gram chunk (its rounding error grows with the rows summed in fp32). */
export const GRAM_CHUNK_ROWS = 512;
/** Output rows per matmul band: only the parts of bands on or below the diagonal are computed. */
const BAND = 64;

export class InputStats {
  /** the JavaScript copy once read (gram, hessian()); empty before */
  private gramData: Float64Array;
  readonly absSum: Float64Array;
  readonly absMax: Float32Array;
  rows = 0;
  /** float64 [K, K] in the heap (its lower triangle) until it is read, handed over or disposed */
  private acc: Float32Array | undefined;
  /** up to GRAM_CHUNK_ROWS − 1 rows not yet in the accumulator, [pendingRows, K] fp32 in the heap */
  private pending: Float32Array | undefined;
  private pendingRows = 0;
  /** no more rows: the pending ones are in the accumulator */
  private sealed = false;
  private consumed = false;

  /** withChannels: also the per-channel mean/max |x| (AWQ, SmoothQuant); GPTQ needs only the Gram matrix. */
  constructor(readonly K: number, readonly withGram = true, readonly withChannels = true) {
    this.gramData = new Float64Array(0); // K×K once read (copyOut); never, when the heap's accumulator is used
    this.absSum = new Float64Array(withChannels ? K : 0);
    this.absMax = new Float32Array(withChannels ? K : 0);
  }

  /** Σ xᵀx [K, K]: its lower triangle (the upper one is 0), as a JavaScript copy. Ends the adding. */
  get gram(): Float64Array {
    if (this.consumed) fail('calibration', 'the Gram matrix was consumed by hessian()');
    this.copyOut();
    return this.gramData;
  }

  /** Add `rows` rows of x [rows, K] (after earlier calls' rows). */
  add(x: Float32Array, rows: number): void {
    const K = this.K;
    if (this.sealed) fail('calibration', 'statistics were already read; no rows can be added');
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

  /** Ends the adding: the pending rows go into the accumulator and their buffer back to the heap (idempotent). */
  private seal(): void {
    if (this.sealed) return;
    this.sealed = true;
    if (this.pendingRows > 0) this.addGram(this.pending!, 0, this.pendingRows);
    if (this.pending) heapFree(this.pending);
    this.pending = undefined;
    this.pendingRows = 0;
  }

  /** The Gram matrix's lower triangle: the heap accumulator, or the JavaScript copy once it was read. */
  private lower(): Float64Array {
    if (!this.withGram) fail('calibration', 'statistics were collected without the Gram matrix');
    if (this.consumed) fail('calibration', 'the Gram matrix was consumed');
    this.seal();
    return this.gramData.length > 0 ? this.gramData : this.accumulator();
  }

  /** Copies the Gram matrix out of the heap into gramData and gives the heap space back (idempotent). */
  private copyOut(): void {
    this.seal();
    if (!this.withGram || this.gramData.length > 0) return;
    const K = this.K, g = this.gramData = new Float64Array(K * K);
    if (this.acc) {
      const acc = this.accumulator();
      for (let i = 0; i < K; i++) g.set(acc.subarray(i * K, i * K + i + 1), i * K);
    }
    this.dispose();
  }

  /** These statistics give up their Gram matrix (handed over, or read in a form that replaced it). */
  private consume(): void {
    this.consumed = true;
    this.gramData = new Float64Array(0);
    this.dispose();
  }

  /** The Gram matrix's lower triangle as the heap accumulator itself (no JS copy), handed to the
   *  caller, who gives it back with heapFree (a no-op for the JS array it is once the statistics were
   *  read); these statistics then have no Gram matrix. */
  takeGram(): Float64Array {
    const g = this.lower();
    this.acc = undefined;
    this.consume();
    return g;
  }

  /** Gives the heap parts back (the statistics stay readable only if they were read before). */
  dispose(): void {
    this.sealed = true;
    if (this.acc) heapFree(this.acc);
    if (this.pending) heapFree(this.pending);
    this.acc = this.pending = undefined;
    this.pendingRows = 0;
  }

  /** The input becomes x·r (a folded per-channel scale): the channel statistics and the Gram matrix
   *  (in the heap, or its copy once read; G[i, j] ·= r_i·r_j) are scaled to match; a consumed Gram
   *  matrix is not. */
  scale(r: Float32Array): void {
    const K = this.K;
    if (this.withChannels) for (let k = 0; k < K; k++) { this.absSum[k]! *= r[k]!; this.absMax[k]! *= r[k]!; }
    if (!this.withGram || this.consumed) return;
    const g = this.lower();
    for (let i = 0; i < K; i++) for (let j = 0; j <= i; j++) g[i * K + j]! *= r[i]! * r[j]!;
  }

  /** Checks before the Hessian is formed from the Gram matrix's lower triangle g. */
  private checkHessian(g: Float64Array): void {
    const K = this.K;
    if (this.rows === 0) fail('calibration', 'no calibration rows');
    for (let k = 0; k < K; k++) if (!Number.isFinite(g[k * K + k]!)) fail('calibration', `non-finite activations in input channel ${k}`);
  }

  /** GPTQ's Hessian 2·XᵀX/n as a full symmetric [K, K] matrix. `consume`: computed in place in the
   *  Gram matrix's array (no K×K copy: 970 MB at K = 11008), which these statistics then no longer have. */
  hessian(consume = false): Float64Array {
    if (!this.withGram) fail('calibration', 'statistics were collected without the Gram matrix');
    const K = this.K, g = this.gram, h = consume ? g : new Float64Array(K * K), f = 2 / this.rows;
    this.checkHessian(g);
    hessianFromLower(g, K, f, h); // in place when consumed
    if (consume) { this.gramData = new Float64Array(0); this.consumed = true; }
    return h;
  }

  /** The Hessian 2·XᵀX/n as a full symmetric fp32 [K, K] matrix in the heap (AWQ's scale search; the
   *  caller gives it back with heapFree), the values of Float32Array.from(hessian()). `consume`: written
   *  over the Gram accumulator (no second K×K array), which these statistics then no longer have. */
  hessianF32(consume = false): Float32Array {
    const g = this.lower(), K = this.K, f = 2 / this.rows;
    this.checkHessian(g);
    if (!consume) return hessianFromLower(g, K, f, heapF32(K * K));
    const h = hessianF32InPlace(g, K, f);
    this.acc = undefined; // now h's block, the caller's to give back
    this.consume();
    return h;
  }

  /** The Hessian's diagonal [G, G] blocks, fp32 [K/G, G, G] (the clip search's, group-clip.ts); the Gram
   *  matrix is then consumed and its heap space given back. */
  hessianBlocksF32(G: number): Float32Array {
    const g = this.lower();
    this.checkHessian(g);
    const blocks = hessianBlocksF32(g, this.K, G, 2 / this.rows);
    this.consume();
    return blocks;
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
