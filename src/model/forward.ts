// The LLaMA-family forward pass (llama, mistral, qwen2, mixtral), written once against a backend's ops.
// The CPU reference engine (src/backends/cpu/ops.ts) and the CUDA engine (src/backends/cuda/) both
// run exactly this function; a backend decides how each op is computed, where activations live,
// which representation a linear consumes (fp16, or int8 + per-token scale for W4A8), and whether
// the launches are captured into a CUDA graph. The model code never sees a stream or a buffer.
//
// One step advances a batch of sequences by their new tokens (prefill chunks and decode tokens
// alike; the backend's step context knows the rows, positions and KV slots). A mixture-of-experts
// feed-forward (Mixtral) is the `moe` kind: the router and every expert's SwiGLU behind one op, so
// a backend routes and groups the rows its own way (the CPU: per expert; a GPU: grouped GEMMs over
// experts inside the captured step). Continuous batching / a paged KV cache change only the step
// context the backend builds, not this file.

/** A projection as the backend holds it (fused q|k|v and gate|up are single linears). */
export interface LinearHandle {
  readonly inFeatures: number;
  readonly outFeatures: number;
}

/** One SwiGLU MLP: down(silu(gate) · up) of the fused gate|up projection. */
export interface SwigluFeedForward<L> {
  kind: 'swiglu';
  gateUp: L;
  down: L;
}

/** Mixtral's sparse mixture of experts: each row goes to the topK experts of highest router
 *  probability (softmax over all experts), weighted by those probabilities renormalized to sum 1. */
export interface MoeFeedForward<L> {
  kind: 'moe';
  /** the router: hidden → nExperts logits (dense in every mode) */
  router: L;
  experts: { gateUp: L; down: L }[];
  topK: number;
}

export type FeedForward<L> = SwigluFeedForward<L> | MoeFeedForward<L>;

export interface LayerHandles<L, N> {
  attnNorm: N;
  /** q | k | v projections stacked along the output (rows of the fused weight), biases included. */
  qkv: L;
  o: L;
  ffnNorm: N;
  ffn: FeedForward<L>;
}

export interface ModelHandles<L, N> {
  layers: LayerHandles<L, N>[];
  finalNorm: N;
  head: L;
}

/**
 * The ops a backend provides for one step. `A` is an activation (rows × features) in whatever
 * representation the backend chose; ops that produce the input of a linear get that linear, so a
 * backend can fuse the conversion it needs (RMSNorm → int8 for W4A8, for example).
 */
export interface StepOps<A, L extends LinearHandle, N> {
  /** The step's token embeddings: the residual stream. */
  embed(): A;
  /** RMSNorm of x, prepared as the input of `consumer`. */
  rmsnorm(x: A, weight: N, consumer: L): A;
  /** x · Wᵀ (+ bias). */
  linear(x: A, w: L): A;
  /** residual += x · Wᵀ (in place). */
  linearAdd(x: A, w: L, residual: A): void;
  /** RoPE of q and k, append k and v to layer `layer`'s KV cache, causal grouped-query attention, prepared as the input of `consumer`. */
  attention(qkv: A, layer: number, consumer: L): A;
  /** silu(gate) · up of the fused gate|up activation, prepared as the input of `consumer`. */
  swiglu(gateUp: A, consumer: L): A;
  /** residual += the mixture of experts `ffn` of h (h: the RMSNorm output, prepared for `ffn.router`), in place. */
  moeAdd(h: A, ffn: MoeFeedForward<L>, residual: A): void;
  /** Final norm and classifier for the rows the step wants logits of (the backend keeps them). */
  logits(x: A, finalNorm: N, head: L): void;
}

export function forwardStep<A, L extends LinearHandle, N>(ops: StepOps<A, L, N>, model: ModelHandles<L, N>): void {
  const x = ops.embed();
  model.layers.forEach((layer, l) => {
    const qkv = ops.linear(ops.rmsnorm(x, layer.attnNorm, layer.qkv), layer.qkv);
    ops.linearAdd(ops.attention(qkv, l, layer.o), layer.o, x);
    feedForward(ops, x, layer);
  });
  ops.logits(x, model.finalNorm, model.head);
}

function feedForward<A, L extends LinearHandle, N>(ops: StepOps<A, L, N>, x: A, layer: LayerHandles<L, N>): void {
  const ffn = layer.ffn;
  switch (ffn.kind) {
    case 'swiglu': {
      const gateUp = ops.linear(ops.rmsnorm(x, layer.ffnNorm, ffn.gateUp), ffn.gateUp);
      ops.linearAdd(ops.swiglu(gateUp, ffn.down), ffn.down, x);
      return;
    }
    case 'moe':
      ops.moeAdd(ops.rmsnorm(x, layer.ffnNorm, ffn.router), ffn, x);
      return;
  }
}
