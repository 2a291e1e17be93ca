// The CPU backend of the one model definition (src/model/forward.ts): fp32 activations, every
// projection behind the `Linear` interface (dense, W4A16, W4A8-FS/IS/PC: each quantizes its own
// input), KV caches and attention per sequence in the `Session`s of src/model/llama.ts. The ops
// compute exactly what the CPU engine always has, in the same order, so it stays the exact
// reference: fused projections (q|k|v, gate|up) run as their separate linears and only their
// outputs are laid side by side. A mixture of experts (Mixtral) routes in fp32 and runs each
// expert once on the rows routed to it.
import { fail } from '../../core/errors.ts';
import { scratchF32 } from '../../core/wasm-heap.ts';
import type { LinearHandle, ModelHandles, MoeFeedForward, StepOps } from '../../model/forward.ts';
import type { Linear } from '../../model/linear.ts';
import { isMoeLayer, type LayerWeights, type ModelWeights } from '../../model/weights.ts';
import { noRows, routeRows } from '../../model/moe-routing.ts';
import type { ModelConfig } from '../../model/config.ts';
import type { Session } from '../../model/llama.ts';

/** A projection of the CPU backend: one or more linears whose outputs are concatenated. */
export interface CpuLinear extends LinearHandle {
  readonly parts: readonly Linear[];
  /** Per part, a bias added to its output (Qwen2's q/k/v). */
  readonly biases: readonly (Float32Array | undefined)[];
}

function cpuLinear(parts: Linear[], biases: (Float32Array | undefined)[] = []): CpuLinear {
  const inFeatures = parts[0]!.inFeatures;
  if (parts.some((p) => p.inFeatures !== inFeatures)) fail('cpu backend', 'fused linears must share their input size');
  return { parts, biases, inFeatures, outFeatures: parts.reduce((n, p) => n + p.outFeatures, 0) };
}

/** The model as the CPU ops see it (built per step: mapLinears may have swapped projections). */
export function cpuModelHandles(w: ModelWeights): ModelHandles<CpuLinear, Float32Array> {
  const ffn = (l: LayerWeights) => isMoeLayer(l)
    ? {
        kind: 'moe' as const, router: cpuLinear([l.moe.router]), topK: l.moe.topK,
        experts: l.moe.experts.map((x) => ({ gateUp: cpuLinear([x.w1, x.w3]), down: cpuLinear([x.w2]) })),
      }
    : { kind: 'swiglu' as const, gateUp: cpuLinear([l.w1, l.w3]), down: cpuLinear([l.w2]) };
  return {
    layers: w.layers.map((l) => ({
      attnNorm: l.attnNorm,
      qkv: cpuLinear([l.wq, l.wk, l.wv], [l.bq, l.bk, l.bv]),
      o: cpuLinear([l.wo]),
      ffnNorm: l.ffnNorm,
      ffn: ffn(l),
    })),
    finalNorm: w.finalNorm,
    head: cpuLinear([w.lmHead]),
  };
}

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
function swigluInPlace(gate: Float32Array, up: Float32Array): void {
  for (let i = 0; i < gate.length; i++) {
    const g = gate[i]!;
    gate[i] = (g / (1 + Math.exp(-g))) * up[i]!;
  }
}

function addInPlace(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < x.length; i++) x[i]! += y[i]!;
}

/** Columns [c0, c0 + width) of a row-major [rows, cols] matrix, as a new [rows, width] matrix. */
function columns(a: Float32Array, rows: number, cols: number, c0: number, width: number): Float32Array {
  if (c0 === 0 && width === cols) return a;
  const out = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) out.set(a.subarray(r * cols + c0, r * cols + c0 + width), r * width);
  return out;
}

/** x[M, K] · the projection's parts (+ biases), their outputs side by side: [M, outFeatures]. */
function project(x: Float32Array, w: CpuLinear, M: number): Float32Array {
  const outs = w.parts.map((p, i) => {
    const y = p.forward(x, M);
    const b = w.biases[i];
    if (b) for (let r = 0; r < M; r++) for (let n = 0; n < b.length; n++) y[r * b.length + n]! += b[n]!;
    return y;
  });
  if (outs.length === 1) return outs[0]!;
  const N = w.outFeatures, out = new Float32Array(M * N);
  let c0 = 0;
  outs.forEach((y, i) => {
    const n = w.parts[i]!.outFeatures;
    for (let r = 0; r < M; r++) out.set(y.subarray(r * n, (r + 1) * n), r * N + c0);
    c0 += n;
  });
  return out;
}

export interface CpuStepOptions {
  /** Logits for every new position ([T_i, vocab] per sequence) instead of each sequence's last. */
  allLogits?: boolean;
}

/**
 * One step of the CPU engine over `sessions` (sequence i gets tokens[i] at its positions
 * sessions[i].pos ..); after forwardStep, `result` holds the logits per sequence.
 */
export class CpuStepOps implements StepOps<Float32Array, CpuLinear, Float32Array> {
  readonly result: Float32Array[] = [];
  private readonly c: ModelConfig;
  private readonly M: number;
  private readonly starts: number[] = [];
  private readonly lengths: number[];

  constructor(private readonly weights: ModelWeights, config: ModelConfig, private readonly sessions: readonly Session[],
    private readonly tokens: readonly (readonly number[])[], private readonly opts: CpuStepOptions = {}) {
    this.c = config;
    this.lengths = tokens.map((t) => t.length);
    let M = 0;
    for (const T of this.lengths) { this.starts.push(M); M += T; }
    this.M = M;
  }

  embed(): Float32Array {
    const { c, M } = this, dim = c.dim, table = this.weights.embedding;
    const x = new Float32Array(M * dim);
    this.tokens.forEach((chunk, i) => chunk.forEach((id, t) => {
      if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) fail('forward', `token id ${id} outside the vocabulary of ${c.vocabSize}`);
      x.set(table.subarray(id * dim, (id + 1) * dim), (this.starts[i]! + t) * dim);
    }));
    return x;
  }

  rmsnorm(x: Float32Array, weight: Float32Array): Float32Array {
    const h = new Float32Array(this.M * this.c.dim);
    rmsNorm(h, x, weight, this.M, this.c.dim, this.c.normEps);
    return h;
  }

  linear(x: Float32Array, w: CpuLinear): Float32Array {
    return project(x, w, this.M);
  }

  linearAdd(x: Float32Array, w: CpuLinear, residual: Float32Array): void {
    addInPlace(residual, this.linear(x, w));
  }

  /** Per sequence: RoPE, KV append and attention (Session), on the q, k, v column blocks of qkv. */
  attention(qkv: Float32Array, l: number): Float32Array {
    const { c, M } = this, qDim = c.nHeads * c.headDim, kvDim = c.nKvHeads * c.headDim, all = qDim + 2 * kvDim;
    const q = columns(qkv, M, all, 0, qDim), k = columns(qkv, M, all, qDim, kvDim), v = columns(qkv, M, all, qDim + kvDim, kvDim);
    const Q = scratchF32('attn.q', M * qDim);
    const att = scratchF32('attn.out', M * qDim);
    this.sessions.forEach((s, i) => {
      const r0 = this.starts[i]!, T = this.lengths[i]!;
      const qi = q.subarray(r0 * qDim, (r0 + T) * qDim), ki = k.subarray(r0 * kvDim, (r0 + T) * kvDim);
      s.rotate(qi, ki, T);
      s.storeKv(l, ki, v.subarray(r0 * kvDim, (r0 + T) * kvDim), T);
      Q.set(qi, r0 * qDim);
      s.attend(l, Q.subarray(r0 * qDim), att.subarray(r0 * qDim), T);
    });
    return att;
  }

  /**
   * Mixtral's sparse MoE block, as transformers computes it: router logits in fp32 and the routing
   * rule of src/model/moe-routing.ts (softmax, top K with ties to the lower index, renormalized);
   * each expert runs once on its rows (its linears quantize their input per
   * row, so grouping does not change a row's result), and a row's output is Σ weight · expert
   * output in expert order, added to the residual.
   */
  moeAdd(h: Float32Array, ffn: MoeFeedForward<CpuLinear>, residual: Float32Array): void {
    const { M } = this, dim = this.c.dim, E = ffn.experts.length, k = ffn.topK;
    if (!(Number.isInteger(k) && k >= 1 && k <= E)) fail('forward', `experts per token ${k} must be in 1..${E}`);
    const routed = noRows(E);
    routeRows(project(h, ffn.router, M), M, E, k, 0, routed);
    const out = new Float32Array(M * dim);
    ffn.experts.forEach((expert, e) => {
      const { rows, weights } = routed[e]!;
      const m = rows.length;
      if (m === 0) return;
      const x = new Float32Array(m * dim);
      rows.forEach((r, i) => x.set(h.subarray(r * dim, (r + 1) * dim), i * dim));
      const H = expert.down.inFeatures, gateUp = project(x, expert.gateUp, m);
      const gate = columns(gateUp, m, 2 * H, 0, H);
      swigluInPlace(gate, columns(gateUp, m, 2 * H, H, H));
      const y = project(gate, expert.down, m);
      rows.forEach((r, i) => {
        const w = weights[i]!;
        for (let j = 0; j < dim; j++) out[r * dim + j]! += w * y[i * dim + j]!;
      });
    });
    addInPlace(residual, out);
  }

  swiglu(gateUp: Float32Array): Float32Array {
    const H = this.c.hiddenDim, M = this.M;
    const gate = columns(gateUp, M, 2 * H, 0, H);
    swigluInPlace(gate, columns(gateUp, M, 2 * H, H, H));
    return gate;
  }

  /** Final norm and classifier, once for the rows asked for (each sequence's last, or all). */
  logits(x: Float32Array, finalNorm: Float32Array, head: CpuLinear): void {
    const { c, M } = this, dim = c.dim, all = this.opts.allLogits ?? false;
    const lengths = this.lengths, n = lengths.length;
    const picked = all ? x : new Float32Array(n * dim);
    if (!all) this.starts.forEach((r0, i) => picked.set(x.subarray((r0 + lengths[i]! - 1) * dim, (r0 + lengths[i]!) * dim), i * dim));
    const R = all ? M : n;
    const normed = new Float32Array(R * dim);
    rmsNorm(normed, picked, finalNorm, R, dim, c.normEps);
    const logits = head.parts[0]!.forward(normed, R);
    if (n === 1) { this.result.push(logits); return; }
    const V = c.vocabSize, rowsOut = all ? lengths : lengths.map(() => 1);
    let row = 0;
    for (const k of rowsOut) { this.result.push(logits.slice(row * V, (row + k) * V)); row += k; }
  }
}
