// The pieces of one decoder layer's forward pass over a stack of calibration sequences (S
// sequences of T positions each, rows stacked [S·T, ·], every sequence starting at position 0),
// for the layer-by-layer calibration pipeline (calibrate.ts). Same math as the CPU engine
// (src/model/llama.ts and src/backends/cpu/ops.ts: RMSNorm — shared —, RoPE, causal GQA attention, SwiGLU), written over plain fp32
// weight arrays so that a stage can run with some linears already quantized (dequantized), over
// all rows at once or over chunks of whole windows (windowChunks).
import { fail } from '../core/errors.ts';
import { rmsNorm } from '../backends/cpu/ops.ts';
import { heapFree, isInHeap, matmulF32, toHeap } from '../core/matmul.ts';
import { poolThreads, runTasks } from '../core/matmul-pool.ts';
import { attentionScratchFloats, TASK_ATTENTION, TASK_SWIGLU } from '../core/pool-tasks.ts';
import { ptr, scratchF32 } from '../core/wasm-heap.ts';
import type { ModelConfig } from '../model/config.ts';
import { applyRope, ropeTables, type RopeTables } from '../model/rope.ts';

/** Rows per matmul call (keeps the shared-heap scratch small). */
const ROW_CHUNK = 4096;

/** out[r] = x[r] / sqrt(mean(x[r]²) + eps) · weight: the CPU engine's rmsNorm, into a new array (or `into`). */
export function rmsNormRows(x: Float32Array, weight: Float32Array, rows: number, dim: number, eps: number, into?: Float32Array): Float32Array {
  if (into && into.length !== rows * dim) fail('calibration', `norm output has ${into.length} values, expected ${rows}x${dim}`);
  const out = into ?? new Float32Array(rows * dim);
  rmsNorm(out, x, weight, rows, dim, eps);
  return out;
}

/** y[rows, N] = x[rows, K]·Wᵀ (+ bias), W [N, K] fp32, in row chunks; into `out` when given (a heap array is written in place). */
export function linearRows(x: Float32Array, rows: number, K: number, w: Float32Array, N: number, bias?: Float32Array, out?: Float32Array): Float32Array {
  if (w.length !== N * K) fail('calibration', `weight has ${w.length} values, expected ${N}x${K}`);
  if (out && out.length !== rows * N) fail('calibration', `output has ${out.length} values, expected ${rows}x${N}`);
  const y = out ?? new Float32Array(rows * N);
  const direct = isInHeap(y), hw = isInHeap(w) ? w : toHeap(w); // the weight copied into the heap once, not per chunk
  for (let r0 = 0; r0 < rows; r0 += ROW_CHUNK) {
    const m = Math.min(ROW_CHUNK, rows - r0);
    const xs = x.subarray(r0 * K, (r0 + m) * K);
    if (direct) matmulF32(xs, m, K, hw, N, y.subarray(r0 * N, (r0 + m) * N));
    else y.set(matmulF32(xs, m, K, hw, N), r0 * N);
  }
  if (hw !== w) heapFree(hw);
  if (bias) for (let r = 0; r < rows; r++) for (let n = 0; n < N; n++) y[r * N + n]! += bias[n]!;
  return y;
}

/** Elements per SwiGLU task on the pool's threads. */
const SWIGLU_TASK = 1 << 16;

/** gate ← silu(gate)·up (SwiGLU), in place; returns gate. Heap arrays run on the pool's threads. */
export function swigluRows(gate: Float32Array, up: Float32Array): Float32Array {
  if (up.length !== gate.length) fail('calibration', `SwiGLU inputs differ in length (${gate.length}, ${up.length})`);
  if (isInHeap(gate) && isInHeap(up)) {
    runTasks(TASK_SWIGLU, [ptr(gate), ptr(up), gate.length], gate.length, SWIGLU_TASK);
    return gate;
  }
  for (let i = 0; i < gate.length; i++) {
    const g = gate[i]!;
    gate[i] = (g / (1 + Math.exp(-g))) * up[i]!;
  }
  return gate;
}

export function addRows(x: Float32Array, y: Float32Array): Float32Array {
  for (let i = 0; i < x.length; i++) x[i]! += y[i]!;
  return x;
}

/** RoPE tables for sequences of T positions. */
export function calibRope(c: ModelConfig, T: number): RopeTables {
  return ropeTables(c.rope, c.headDim, T);
}

/**
 * Causal grouped-query attention of S sequences of T positions: q [S·T, nHeads·hd], k and v
 * [S·T, nKv·hd] (q and k are rotated in place). Returns the attention output [S·T, nHeads·hd].
 * The (sequence, KV head) pairs run as tasks on the matmul pool's threads (pool-tasks.ts: scores
 * only for keys up to each block of query rows, the causal part), over q, k, v in the heap (copied
 * there unless they already are).
 */
export function attentionRows(q: Float32Array, k: Float32Array, v: Float32Array, S: number, T: number,
                              c: ModelConfig, rope: RopeTables, into?: Float32Array): Float32Array {
  const hd = c.headDim, qDim = c.nHeads * hd, kvDim = c.nKvHeads * hd;
  for (let s = 0; s < S; s++)
    for (let t = 0; t < T; t++) {
      applyRope(q, (s * T + t) * qDim, c.nHeads, t, rope, c.rope.layout);
      applyRope(k, (s * T + t) * kvDim, c.nKvHeads, t, rope, c.rope.layout);
    }
  const inHeap = (a: Float32Array, slot: string) => { if (isInHeap(a)) return a; const h = scratchF32(slot, a.length); h.set(a); return h; };
  const hq = inHeap(q, 'attn.q'), hk = inHeap(k, 'attn.k'), hv = inHeap(v, 'attn.v');
  if (into && into.length !== S * T * qDim) fail('calibration', `attention output has ${into.length} values, expected ${S * T}x${qDim}`);
  const ho = into && isInHeap(into) ? into : scratchF32('attn.out', S * T * qDim); // a heap `into` is written in place
  const per = attentionScratchFloats(T, hd), scratch = scratchF32('attn.scratch', per * poolThreads());
  const W = c.slidingWindow ?? 0;
  runTasks(TASK_ATTENTION, [ptr(hq), ptr(hk), ptr(hv), ptr(ho), S, T, c.nHeads, c.nKvHeads, hd, W, ptr(scratch), per * 4], S * c.nKvHeads, 1);
  if (!into) return Float32Array.from(ho);
  if (ho !== into) into.set(ho);
  return into;
}

/** A run of whole calibration windows [s0, s1), i.e. rows [r0, r1) of the stacked activations. */
export interface RowChunk { s0: number; s1: number; r0: number; r1: number; rows: number }

/** The S windows of T rows cut into chunks of at most `maxRows` rows (at least one window each). */
export function windowChunks(S: number, T: number, maxRows: number): RowChunk[] {
  if (!(Number.isInteger(maxRows) && maxRows >= 1)) fail('calibration', `chunk rows ${maxRows} must be a positive integer`);
  const per = Math.max(1, Math.floor(maxRows / T)), out: RowChunk[] = [];
  for (let s0 = 0; s0 < S; s0 += per) {
    const s1 = Math.min(S, s0 + per);
    out.push({ s0, s1, r0: s0 * T, r1: s1 * T, rows: (s1 - s0) * T });
  }
  return out;
}
