// The CPU reference engine for LLaMA-family models (llama, mistral, qwen2, mixtral), fp32: the sequences'
// KV caches and attention (Session), and the batched step, which runs the one model definition
// (src/model/forward.ts) on the CPU backend's ops (src/backends/cpu/ops.ts). One Session holds one
// sequence's KV cache; `forwardBatch` advances several sessions at once: every linear runs ONCE on the stacked rows of all their new tokens
// (prefill chunks and decode steps alike, M = Σ T_i), while RoPE positions, KV caches and attention
// stay per sequence. `Session.forward` is the batch of one. Mistral's sliding window is honoured.
import { fail } from '../core/errors.ts';
import { matmulStridedHeap } from '../core/matmul.ts';
import { CpuStepOps, cpuModelHandles } from '../backends/cpu/ops.ts';
import { forwardStep } from './forward.ts';
import { heapF32, heapFree, scratchF32 } from '../core/wasm-heap.ts';
import type { ModelConfig } from './config.ts';
import { applyRope, ropeTables, type RopeTables } from './rope.ts';
import type { ModelWeights } from './weights.ts';

export interface Model {
  config: ModelConfig;
  weights: ModelWeights;
}

// ── building blocks ─────────────────────────────────────────────────────────────────────────

/** softmax(scale · a[off .. off+n)) in place, numerically safe (scale > 0). */
function softmaxScaled(a: Float32Array, off: number, n: number, scale: number): void {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (a[off + i]! > max) max = a[off + i]!;
  let sum = 0;
  for (let i = 0; i < n; i++) { const e = Math.exp((a[off + i]! - max) * scale); a[off + i] = e; sum += e; }
  const inv = 1 / sum;
  for (let i = 0; i < n; i++) a[off + i]! *= inv;
}

// ── the session: one sequence's KV cache and attention ─────────────────────────────────────

export interface ForwardOptions {
  /** Return logits for every position of the chunk ([T, vocab]) instead of only the last one. */
  allLogits?: boolean;
}

export class Session {
  readonly config: ModelConfig;
  /** Positions already in the cache; the next token goes at `pos`. */
  pos = 0;
  readonly maxSeq: number;
  private readonly rope: RopeTables;
  // K cache per layer and KV head: [maxSeq, headDim]; V cache transposed: [headDim, maxSeq],
  // both in the shared heap so attention runs on the matmul kernel without copies.
  private readonly keys: Float32Array[][];
  private readonly valuesT: Float32Array[][];
  private readonly attentionBlock: number;
  /** Keys a query at position p sees: (p - window, p] (Mistral's sliding window; else all). */
  private readonly window: number;
  private disposed = false;

  /**
   * maxSeq: cache length (default: the model's context, at most DEFAULT_MAX_SEQ, since the cache
   * lives in the 4 GiB shared heap); attentionBlock: query rows per attention block (tests).
   */
  constructor(readonly model: Model, opts: { maxSeq?: number; attentionBlock?: number } = {}) {
    const c = model.config;
    if (c.slidingWindow !== undefined && !(Number.isInteger(c.slidingWindow) && c.slidingWindow >= 1))
      fail('model', `sliding window must be a positive integer (got ${c.slidingWindow})`);
    this.config = c;
    this.maxSeq = Math.min(opts.maxSeq ?? DEFAULT_MAX_SEQ, c.maxSeq);
    this.attentionBlock = Math.max(1, opts.attentionBlock ?? ATTN_BLOCK);
    this.window = c.slidingWindow ?? Infinity;
    this.rope = ropeTables(c.rope, c.headDim, this.maxSeq);
    const per = this.maxSeq * c.headDim;
    this.keys = Array.from({ length: c.nLayers }, () => Array.from({ length: c.nKvHeads }, () => heapF32(per)));
    this.valuesT = Array.from({ length: c.nLayers }, () => Array.from({ length: c.nKvHeads }, () => heapF32(per)));
  }

  /** Forget the sequence (the cache is overwritten from position 0). */
  reset(): void {
    this.pos = 0;
  }

  /** Give the KV cache back to the shared heap; the session is unusable afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const perLayer of [...this.keys, ...this.valuesT]) for (const a of perLayer) heapFree(a);
  }

  /**
   * Run `tokens` at positions pos .. pos+T-1 and append them to the cache. Returns logits
   * [T, vocab] with allLogits, else [vocab] of the last position. (The batch of one.)
   */
  forward(tokens: readonly number[], opts: ForwardOptions = {}): Float32Array {
    return forwardBatch([this], [tokens], opts)[0]!;
  }

  // The per-sequence steps of a forward pass, called by forwardBatch on this session's rows.

  /** Refuse a chunk of T new tokens that this session cannot take. */
  checkChunk(T: number, where: string): void {
    if (this.disposed) fail(where, 'session used after dispose()');
    if (T === 0) fail(where, 'no tokens');
    if (this.pos + T > this.maxSeq) fail(where, `sequence of ${this.pos + T} positions exceeds the context of ${this.maxSeq}`);
  }

  /** RoPE on T rows of q [T, nHeads·hd] and k [T, nKvHeads·hd] at positions pos .. pos+T-1. */
  rotate(q: Float32Array, k: Float32Array, T: number): void {
    const c = this.config, hd = c.headDim;
    for (let t = 0; t < T; t++) {
      applyRope(q, t * c.nHeads * hd, c.nHeads, this.pos + t, this.rope, c.rope.layout);
      applyRope(k, t * c.nKvHeads * hd, c.nKvHeads, this.pos + t, this.rope, c.rope.layout);
    }
  }

  /** Append T rows of k and v (after RoPE) to layer l's cache at positions pos .. pos+T-1. */
  storeKv(l: number, k: Float32Array, v: Float32Array, T: number): void {
    const c = this.config, hd = c.headDim, kvDim = c.nKvHeads * hd;
    for (let g = 0; g < c.nKvHeads; g++) {
      const K = this.keys[l]![g]!, VT = this.valuesT[l]![g]!;
      for (let t = 0; t < T; t++) {
        const src = t * kvDim + g * hd, pos = this.pos + t;
        K.set(k.subarray(src, src + hd), pos * hd);
        for (let d = 0; d < hd; d++) VT[d * this.maxSeq + pos] = v[src + d]!;
      }
    }
  }

  /**
   * Causal grouped-query attention of the T new queries at positions pos .. pos+T-1 over the
   * cache, per head h (reading KV head h / rep). Q: the T query rows [T, nHeads·hd] and out: where
   * the T output rows go, both in the shared heap. Queries go in blocks of `attentionBlock` rows
   * that each see only the keys from the first one visible to their first row (sliding window) up
   * to their last row: scores = Q·Kᵀ (one matmul), softmax(scores / sqrt(hd)) over each row's
   * visible keys (the rest zeroed), out = P·V (one matmul on the transposed V cache).
   */
  attend(l: number, Q: Float32Array, out: Float32Array, T: number): void {
    const c = this.config, hd = c.headDim, rep = c.nHeads / c.nKvHeads;
    const qDim = c.nHeads * hd, p0 = this.pos, W = this.window;
    const firstVisible = (p: number) => Math.max(0, p - W + 1);
    const block = Math.min(T, this.attentionBlock);
    const P = scratchF32('attn.scores', block * (p0 + T - firstVisible(p0)));
    const scale = 1 / Math.sqrt(hd);
    for (let h = 0; h < c.nHeads; h++) {
      const g = Math.floor(h / rep);
      const keys = this.keys[l]![g]!, valuesT = this.valuesT[l]![g]!;
      for (let t0 = 0; t0 < T; t0 += block) {
        const rows = Math.min(block, T - t0);
        const first = firstVisible(p0 + t0), S = p0 + t0 + rows - first; // keys [first, first+S)
        const at = t0 * qDim + h * hd;
        matmulStridedHeap(Q.subarray(at), qDim, keys.subarray(first * hd), hd, P, S, rows, S, hd);
        for (let r = 0; r < rows; r++) {
          const p = p0 + t0 + r, o = r * S;
          const lo = firstVisible(p) - first, hi = p + 1 - first; // this row's keys [lo, hi)
          P.fill(0, o, o + lo);
          softmaxScaled(P, o + lo, hi - lo, scale);
          P.fill(0, o + hi, o + S);
        }
        matmulStridedHeap(P, S, valuesT.subarray(first), this.maxSeq, out.subarray(at), qDim, rows, hd, S);
      }
    }
  }
}

// ── the forward pass: a batch of sequences, one matmul per projection ─────────────────────────

/**
 * Advance each session by its chunk of new tokens (tokens[i] for sessions[i]; any lengths ≥ 1, any
 * positions), all in one pass: the rows of every chunk are stacked, so each linear runs once with
 * M = Σ T_i rows. Returns per session the logits of its last new position [vocab], or of all its
 * new positions [T_i, vocab] with allLogits. The sessions must be distinct and share one model.
 * The pass itself is the one model definition (src/model/forward.ts) on the CPU ops.
 */
export function forwardBatch(sessions: readonly Session[], tokens: readonly (readonly number[])[],
                             opts: ForwardOptions = {}): Float32Array[] {
  if (sessions.length === 0) fail('forward', 'empty batch');
  if (tokens.length !== sessions.length) fail('forward', `${sessions.length} sessions but ${tokens.length} token chunks`);
  const model = sessions[0]!.model;
  if (sessions.some((s) => s.model !== model)) fail('forward', 'the sessions of a batch must share one model');
  if (new Set(sessions).size !== sessions.length) fail('forward', 'a session appears twice in the batch');
  sessions.forEach((s, i) => s.checkChunk(tokens[i]!.length, 'forward'));
  const ops = new CpuStepOps(model.weights, model.config, sessions, tokens, opts);
  forwardStep(ops, cpuModelHandles(model.weights));
  sessions.forEach((s, i) => { s.pos += tokens[i]!.length; });
  return ops.result;
}

/** Default cache length of a Session (a 128k-context model would otherwise ask for a huge cache). */
const DEFAULT_MAX_SEQ = 4096;

/** Query rows per attention block: smaller blocks skip more of the masked half, larger ones keep
 *  each matmul big enough for the worker threads. */
const ATTN_BLOCK = 256;
