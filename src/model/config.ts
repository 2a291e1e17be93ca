// The one normalized description of a LLaMA-family model that every loader produces and the
// engines consume (HF config.json variants and llama2.c headers all end up here).

export type Arch = 'llama' | 'mistral' | 'qwen2' | 'mixtral';

/** How RoPE pairs the dimensions of a head: HF "rotate_half" (i, i+d/2) or llama2.c's (2i, 2i+1). */
export type RopeLayout = 'half' | 'interleaved';

export type RopeScaling =
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPos: number }
  | { type: 'linear'; factor: number };

export interface RopeConfig {
  theta: number;
  scaling?: RopeScaling;
  layout: RopeLayout;
}

export interface ModelConfig {
  arch: Arch;
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  vocabSize: number;
  maxSeq: number;
  normEps: number;
  rope: RopeConfig;
  tieEmbeddings: boolean;
  /** q/k/v projections carry biases (Qwen2). */
  qkvBias: boolean;
  /** Mixtral: experts per layer and experts used per token. */
  nExperts?: number;
  nExpertsPerTok?: number;
  bosId?: number;
  /** First EOS id when the config lists several. */
  eosId?: number;
  /** Mistral: a query at position p attends to keys in (p - slidingWindow, p] (the CPU engine honours it). */
  slidingWindow?: number;
}
