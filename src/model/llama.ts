// The CPU reference engine for LLaMA-family models (llama, mistral, qwen2), fp32, readable top to
// bottom like llama2.c's run.c. One Session holds one sequence's KV cache; `forward` runs a chunk of
// T new tokens at once (prefill: one M=T matmul per linear) or one token (decode), and returns the
// logits of the positions asked for.
import { fail } from '../core/errors.ts';
import { matmulStridedHeap } from '../core/matmul.ts';
import { heapF32, heapFree, scratchF32 } from '../core/wasm-heap.ts';
import type { ModelConfig } from './config.ts';
import { applyRope, ropeTables, type RopeTables } from './rope.ts';
import type { ModelWeights } from './weights.ts';

export interface Model {
  config: ModelConfig;
  weights: ModelWeights;
}

// ── building blocks ─────────────────────────────────────────────────────────────────────────

/** out[r] = x[r] / sqrt(mean(x[r]²) + eps) · weight, for `rows` rows of length dim. */
export function rmsNorm(out: Float32Array, x: Float32Array, weight: Float32Array, rows: number, dim: number, eps: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[o + i]! * x[o + i]!;
    const inv = Math.fround(1 / Math.sqrt(Math.fround(ss / dim) + eps));
    for (let i = 0; i < dim; i++) out[o + i] = weight[i]! * Math.fround(x[o + i]! * inv);
  }
}

/** gate ← silu(gate) · up, elementwise (SwiGLU). */
function swiglu(gate: Float32Array, up: Float32Array): void {
  for (let i = 0; i < gate.length; i++) {
    const g = gate[i]!;
    gate[i] = (g / (1 + Math.exp(-g))) * up[i]!;
  }
}

function addInPlace(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < x.length; i++) x[i]! += y[i]!;
}

function addBias(y: Float32Array, bias: Float32Array | undefined, rows: number): void {
  if (!bias) return;
  const n = bias.length;
  for (let r = 0; r < rows; r++) for (let i = 0; i < n; i++) y[r * n + i]! += bias[i]!;
}

/** softmax(scale · a[off .. off+n)) in place, numerically safe (scale > 0). */
function softmaxScaled(a: Float32Array, off: number, n: number, scale: number): void {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (a[off + i]! > max) max = a[off + i]!;
  let sum = 0;
  for (let i = 0; i < n; i++) { const e = Math.exp((a[off + i]! - max) * scale); a[off + i] = e; sum += e; }
  const inv = 1 / sum;
  for (let i = 0; i < n; i++) a[off + i]! *= inv;
}

// ── the session: KV cache + forward ─────────────────────────────────────────────────────────

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
  private disposed = false;

  /**
   * maxSeq: cache length (default: the model's context, at most DEFAULT_MAX_SEQ, since the cache
   * lives in the 4 GiB shared heap); attentionBlock: query rows per attention block (tests).
   */
  constructor(readonly model: Model, opts: { maxSeq?: number; attentionBlock?: number } = {}) {
    const c = model.config;
    if (c.arch === 'mixtral') fail('model', 'MixtralForCausalLM (mixture of experts) is not supported by the CPU engine yet');
    this.config = c;
    this.maxSeq = Math.min(opts.maxSeq ?? DEFAULT_MAX_SEQ, c.maxSeq);
    this.attentionBlock = Math.max(1, opts.attentionBlock ?? ATTN_BLOCK);
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
   * [T, vocab] with allLogits, else [vocab] of the last position.
   */
  forward(tokens: readonly number[], opts: ForwardOptions = {}): Float32Array {
    const c = this.config, w = this.model.weights;
    const T = tokens.length, dim = c.dim, hd = c.headDim;
    if (this.disposed) fail('forward', 'session used after dispose()');
    if (T === 0) fail('forward', 'no tokens');
    if (this.pos + T > this.maxSeq) fail('forward', `sequence of ${this.pos + T} positions exceeds the context of ${this.maxSeq}`);
    const p0 = this.pos;

    // token embeddings
    const x = new Float32Array(T * dim);
    tokens.forEach((id, t) => {
      if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) fail('forward', `token id ${id} outside the vocabulary of ${c.vocabSize}`);
      x.set(w.embedding.subarray(id * dim, (id + 1) * dim), t * dim);
    });
    const h = new Float32Array(T * dim);

    for (let l = 0; l < c.nLayers; l++) {
      const layer = w.layers[l]!;

      // attention: norm, q/k/v projections, RoPE, cache, attend, output projection, residual
      rmsNorm(h, x, layer.attnNorm, T, dim, c.normEps);
      const q = layer.wq.forward(h, T);
      const k = layer.wk.forward(h, T);
      const v = layer.wv.forward(h, T);
      addBias(q, layer.bq, T);
      addBias(k, layer.bk, T);
      addBias(v, layer.bv, T);
      for (let t = 0; t < T; t++) {
        applyRope(q, t * c.nHeads * hd, c.nHeads, p0 + t, this.rope, c.rope.layout);
        applyRope(k, t * c.nKvHeads * hd, c.nKvHeads, p0 + t, this.rope, c.rope.layout);
      }
      this.storeKv(l, k, v, T, p0);
      const att = this.attend(l, q, T, p0);
      addInPlace(x, layer.wo.forward(att, T));

      // feed-forward: norm, SwiGLU, down projection, residual
      rmsNorm(h, x, layer.ffnNorm, T, dim, c.normEps);
      const gate = layer.w1.forward(h, T);
      swiglu(gate, layer.w3.forward(h, T));
      addInPlace(x, layer.w2.forward(gate, T));
    }
    this.pos += T;

    // final norm and classifier (only the rows asked for)
    const rows = opts.allLogits ? T : 1;
    const last = x.subarray((T - rows) * dim);
    const normed = new Float32Array(rows * dim);
    rmsNorm(normed, last, w.finalNorm, rows, dim, c.normEps);
    return w.lmHead.forward(normed, rows);
  }

  private storeKv(l: number, k: Float32Array, v: Float32Array, T: number, p0: number): void {
    const c = this.config, hd = c.headDim, kvDim = c.nKvHeads * hd;
    for (let g = 0; g < c.nKvHeads; g++) {
      const K = this.keys[l]![g]!, VT = this.valuesT[l]![g]!;
      for (let t = 0; t < T; t++) {
        const src = t * kvDim + g * hd, pos = p0 + t;
        K.set(k.subarray(src, src + hd), pos * hd);
        for (let d = 0; d < hd; d++) VT[d * this.maxSeq + pos] = v[src + d]!;
      }
    }
  }

  /**
   * Causal grouped-query attention of the T new queries over the cache [0, p0+T), per head h
   * (reading KV head h / rep). Queries are read in place from a heap copy of q (row stride qDim),
   * in blocks of ATTN_BLOCK rows that each see only the keys up to their last row:
   * scores = Q·Kᵀ (one matmul), softmax(scores / sqrt(hd)) with the causal mask, out = P·V (one
   * matmul on the transposed V cache), written in place into the output rows.
   */
  private attend(l: number, q: Float32Array, T: number, p0: number): Float32Array {
    const c = this.config, hd = c.headDim, rep = c.nHeads / c.nKvHeads;
    const qDim = c.nHeads * hd;
    const Q = scratchF32('attn.q', T * qDim);
    Q.set(q.subarray(0, T * qDim));
    const out = scratchF32('attn.out', T * qDim);
    const block = Math.min(T, this.attentionBlock);
    const P = scratchF32('attn.scores', block * (p0 + T));
    const scale = 1 / Math.sqrt(hd);
    for (let h = 0; h < c.nHeads; h++) {
      const g = Math.floor(h / rep);
      const keys = this.keys[l]![g]!, valuesT = this.valuesT[l]![g]!;
      for (let t0 = 0; t0 < T; t0 += block) {
        const rows = Math.min(block, T - t0), S = p0 + t0 + rows; // keys visible to the block's last row
        const at = t0 * qDim + h * hd;
        matmulStridedHeap(Q.subarray(at), qDim, keys, hd, P, S, rows, S, hd);
        for (let r = 0; r < rows; r++) {
          const visible = p0 + t0 + r + 1, o = r * S;
          softmaxScaled(P, o, visible, scale);
          P.fill(0, o + visible, o + S);
        }
        matmulStridedHeap(P, S, valuesT, this.maxSeq, out.subarray(at), qDim, rows, hd, S);
      }
    }
    return out;
  }
}

/** Default cache length of a Session (a 128k-context model would otherwise ask for a huge cache). */
const DEFAULT_MAX_SEQ = 4096;

/** Query rows per attention block: smaller blocks skip more of the masked half, larger ones keep
 *  each matmul big enough for the worker threads. */
const ATTN_BLOCK = 256;
