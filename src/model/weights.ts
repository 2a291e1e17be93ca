// The weights of a LLaMA-family model as the CPU engine sees them: every projection behind the
// `Linear` interface (so quantized linears can replace dense ones), norms and embeddings as fp32.
// `denseLinear` is the fp32 Linear; `mapLinears` swaps projections by their HF tensor names.
import { fail } from '../core/errors.ts';
import { matmulF32 } from '../core/matmul.ts';
import { heapFree, isInHeap, toHeap } from '../core/wasm-heap.ts';
import type { Linear } from './linear.ts';

export interface LayerWeights {
  attnNorm: Float32Array;
  wq: Linear;
  wk: Linear;
  wv: Linear;
  wo: Linear;
  ffnNorm: Float32Array;
  /** gate_proj */
  w1: Linear;
  /** down_proj */
  w2: Linear;
  /** up_proj */
  w3: Linear;
  /** q/k/v biases (Qwen2), added by the engine after the projection so that they survive quantization */
  bq?: Float32Array;
  bk?: Float32Array;
  bv?: Float32Array;
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

/** HF tensor names (without ".weight") of the projections in one layer, keyed by field. */
export const LAYER_LINEAR_NAMES = {
  wq: 'self_attn.q_proj',
  wk: 'self_attn.k_proj',
  wv: 'self_attn.v_proj',
  wo: 'self_attn.o_proj',
  w1: 'mlp.gate_proj',
  w2: 'mlp.down_proj',
  w3: 'mlp.up_proj',
} as const;

export type LinearField = keyof typeof LAYER_LINEAR_NAMES;

/**
 * Replace every projection (not the embedding nor lm_head: they stay dense) with fn's result.
 * `name` is the HF tensor name without ".weight", e.g. 'model.layers.0.self_attn.q_proj';
 * `rawWeight` is the fp32 [out, in] weight when the current linear is dense. Mutates and returns `weights`.
 */
export function mapLinears(weights: ModelWeights,
                           fn: (name: string, linear: Linear, rawWeight?: Float32Array) => Linear): ModelWeights {
  weights.layers.forEach((layer, i) => {
    for (const field of Object.keys(LAYER_LINEAR_NAMES) as LinearField[]) {
      const old = layer[field];
      const replaced = fn(`model.layers.${i}.${LAYER_LINEAR_NAMES[field]}`, old, rawWeightOf(old));
      if (replaced.inFeatures !== old.inFeatures || replaced.outFeatures !== old.outFeatures)
        fail('mapLinears', `${field} of layer ${i}: replacement is ${replaced.outFeatures}×${replaced.inFeatures}, expected ${old.outFeatures}×${old.inFeatures}`);
      layer[field] = replaced;
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
  for (const layer of weights.layers)
    for (const field of Object.keys(LAYER_LINEAR_NAMES) as LinearField[]) {
      const l = layer[field];
      if (l instanceof DenseLinear) l.release();
    }
  if (weights.lmHead instanceof DenseLinear) weights.lmHead.release();
}
