// The weights of a LLaMA-family model as the CPU engine sees them: every projection behind the
// `Linear` interface (so quantized linears can replace dense ones), norms and embeddings as fp32.
// A layer's feed-forward is one SwiGLU MLP (w1, w2, w3) or, in a mixture-of-experts model
// (Mixtral), a router and several SwiGLU experts. `denseLinear` is the fp32 Linear; `mapLinears`
// swaps projections (experts included, the router never) by their HF tensor names.
import { fail } from '../core/errors.ts';
import { matmulF32 } from '../core/matmul.ts';
import { heapFree, isInHeap, toHeap } from '../core/wasm-heap.ts';
import type { Linear } from './linear.ts';

/** One SwiGLU MLP: down(silu(gate(x)) · up(x)). */
export interface SwigluWeights {
  /** gate_proj (Mixtral: w1) */
  w1: Linear;
  /** down_proj (Mixtral: w2) */
  w2: Linear;
  /** up_proj (Mixtral: w3) */
  w3: Linear;
}

/** A mixture-of-experts feed-forward (Mixtral's block_sparse_moe). */
export interface MoeWeights {
  /** the router (gate): [nExperts, dim], kept dense (fp32) in every mode */
  router: Linear;
  experts: SwigluWeights[];
  /** experts per token (num_experts_per_tok) */
  topK: number;
}

interface AttentionWeights {
  attnNorm: Float32Array;
  wq: Linear;
  wk: Linear;
  wv: Linear;
  wo: Linear;
  ffnNorm: Float32Array;
  /** q/k/v biases (Qwen2), added by the engine after the projection so that they survive quantization */
  bq?: Float32Array;
  bk?: Float32Array;
  bv?: Float32Array;
}

/** A decoder layer with one SwiGLU MLP (LLaMA, Mistral, Qwen2). */
export interface DenseLayerWeights extends AttentionWeights, SwigluWeights {}

/** A decoder layer whose feed-forward is a mixture of experts (Mixtral). */
export interface MoeLayerWeights extends AttentionWeights {
  moe: MoeWeights;
}

export type LayerWeights = DenseLayerWeights | MoeLayerWeights;

export function isMoeLayer(layer: LayerWeights): layer is MoeLayerWeights {
  return 'moe' in layer;
}

export interface ModelWeights {
  /** [vocabSize, dim] */
  embedding: Float32Array;
  layers: LayerWeights[];
  finalNorm: Float32Array;
  /** [vocabSize, dim]; shares the embedding's storage when the model ties them */
  lmHead: Linear;
}

/** The fp32 Linear: y = x · Wᵀ + b. `weight` is kept (in the shared heap) for re-quantization. */
export class DenseLinear implements Linear {
  readonly weight: Float32Array;
  readonly bias: Float32Array | undefined;
  /** true when the constructor copied the weight into the heap (then release() frees it) */
  private readonly ownsHeapCopy: boolean;
  private released = false;

  constructor(weight: Float32Array, readonly outFeatures: number, readonly inFeatures: number, bias?: Float32Array) {
    if (weight.length !== outFeatures * inFeatures)
      fail('denseLinear', `weight has ${weight.length} floats, expected ${outFeatures}×${inFeatures}`);
    if (bias && bias.length !== outFeatures) fail('denseLinear', `bias has ${bias.length} floats, expected ${outFeatures}`);
    this.ownsHeapCopy = !isInHeap(weight);
    this.weight = toHeap(weight);
    this.bias = bias;
  }

  forward(x: Float32Array, rows: number): Float32Array {
    if (this.released) fail('denseLinear', 'used after releaseWeights()');
    const y = matmulF32(x, rows, this.inFeatures, this.weight, this.outFeatures);
    const b = this.bias;
    if (b) {
      const N = this.outFeatures;
      for (let r = 0; r < rows; r++) for (let n = 0; n < N; n++) y[r * N + n]! += b[n]!;
    }
    return y;
  }

  /** Give the heap copy of the weight back (the linear and `weight` are unusable afterwards). */
  release(): void {
    if (this.released) return;
    this.released = true;
    if (this.ownsHeapCopy) heapFree(this.weight);
  }
}

/** Dense fp32 linear over W [outFeatures, inFeatures] row-major (+ optional bias). */
export function denseLinear(weight: Float32Array, outFeatures: number, inFeatures: number, bias?: Float32Array): Linear {
  return new DenseLinear(weight, outFeatures, inFeatures, bias);
}

/** The dense weight behind a Linear, if it is one. */
export function rawWeightOf(linear: Linear): Float32Array | undefined {
  return linear instanceof DenseLinear ? linear.weight : undefined;
}

/** HF tensor names (without ".weight") of the attention projections in one layer, keyed by field. */
export const ATTENTION_LINEAR_NAMES = {
  wq: 'self_attn.q_proj',
  wk: 'self_attn.k_proj',
  wv: 'self_attn.v_proj',
  wo: 'self_attn.o_proj',
} as const;
/** HF tensor names of a dense layer's MLP projections, keyed by field. */
export const MLP_LINEAR_NAMES = { w1: 'mlp.gate_proj', w2: 'mlp.down_proj', w3: 'mlp.up_proj' } as const;
/** HF name (without ".weight") of expert e's projection `field` in a Mixtral layer (prefix 'model.layers.L.'). */
export const expertLinearName = (e: number, field: keyof SwigluWeights) => `block_sparse_moe.experts.${e}.${field}`;
/** HF name (without ".weight") of a Mixtral layer's router. */
export const ROUTER_NAME = 'block_sparse_moe.gate';

/** A projection slot of the model: its HF name (without ".weight"), what it holds, how to replace it. */
export interface LinearSlot {
  name: string;
  linear: Linear;
  set(linear: Linear): void;
}

/** Every projection of `layer` (index `l`), in the order of the checkpoint's layerProjections:
 *  q, k, v, o, then gate, up, down (a mixture of experts: per expert w1, w3, w2). Not the router. */
export function layerLinearSlots(layer: LayerWeights, l: number): LinearSlot[] {
  const pre = `model.layers.${l}.`;
  const slot = <T extends object, K extends keyof T & string>(owner: T, field: K, name: string): LinearSlot =>
    ({ name: pre + name, linear: owner[field] as Linear, set: (v) => { (owner as Record<K, Linear>)[field] = v; } });
  const attention = (Object.keys(ATTENTION_LINEAR_NAMES) as (keyof typeof ATTENTION_LINEAR_NAMES)[])
    .map((f) => slot(layer, f, ATTENTION_LINEAR_NAMES[f]));
  const mlp = (owner: SwigluWeights, name: (f: keyof SwigluWeights) => string) =>
    (['w1', 'w3', 'w2'] as const).map((f) => slot(owner, f, name(f)));
  if (isMoeLayer(layer)) return [...attention, ...layer.moe.experts.flatMap((x, e) => mlp(x, (f) => expertLinearName(e, f)))];
  return [...attention, ...mlp(layer, (f) => MLP_LINEAR_NAMES[f])];
}

/**
 * Replace every projection (not the embedding, lm_head nor a router: they stay dense) with fn's
 * result. `name` is the HF tensor name without ".weight", e.g. 'model.layers.0.self_attn.q_proj'
 * or 'model.layers.0.block_sparse_moe.experts.3.w1'; `rawWeight` is the fp32 [out, in] weight when
 * the current linear is dense. Mutates and returns `weights`.
 */
export function mapLinears(weights: ModelWeights,
                           fn: (name: string, linear: Linear, rawWeight?: Float32Array) => Linear): ModelWeights {
  weights.layers.forEach((layer, i) => {
    for (const s of layerLinearSlots(layer, i)) {
      const old = s.linear;
      const replaced = fn(s.name, old, rawWeightOf(old));
      if (replaced.inFeatures !== old.inFeatures || replaced.outFeatures !== old.outFeatures)
        fail('mapLinears', `${s.name}: replacement is ${replaced.outFeatures}×${replaced.inFeatures}, expected ${old.outFeatures}×${old.inFeatures}`);
      s.set(replaced);
    }
  });
  return weights;
}

/**
 * Free the shared-heap copies of every dense linear in `weights` (the model is unusable afterwards).
 * Weights live in a 4 GiB WebAssembly heap that is not garbage collected: a process that loads
 * many models (or many dense variants of one) should release the ones it is done with.
 */
export function releaseWeights(weights: ModelWeights): void {
  weights.layers.forEach((layer, i) => {
    for (const { linear } of layerLinearSlots(layer, i)) if (linear instanceof DenseLinear) linear.release();
    if (isMoeLayer(layer) && layer.moe.router instanceof DenseLinear) layer.moe.router.release();
  });
  if (weights.lmHead instanceof DenseLinear) weights.lmHead.release();
}
