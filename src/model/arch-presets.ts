// Shape-true configurations of well-known models for speed work (`--arch`): the real dimensions,
// head counts, vocabulary and RoPE of each, so random weights of these shapes cost exactly what the
// real checkpoints cost. Values from the models' published config.json files.
import { fail } from '../core/errors.ts';
import type { ModelConfig } from './config.ts';

const llama = (o: Partial<ModelConfig> & Pick<ModelConfig, 'dim' | 'hiddenDim' | 'nLayers' | 'nHeads' | 'nKvHeads' | 'vocabSize'>): ModelConfig => ({
  arch: 'llama', headDim: o.dim / o.nHeads, maxSeq: 4096, normEps: 1e-5, rope: { theta: 10000, layout: 'half' },
  tieEmbeddings: false, qkvBias: false, bosId: 1, eosId: 2, ...o,
});

export const ARCH_PRESETS: Readonly<Record<string, ModelConfig>> = {
  'llama2-7b': llama({ dim: 4096, hiddenDim: 11008, nLayers: 32, nHeads: 32, nKvHeads: 32, vocabSize: 32000 }),
  'llama2-13b': llama({ dim: 5120, hiddenDim: 13824, nLayers: 40, nHeads: 40, nKvHeads: 40, vocabSize: 32000 }),
  'llama3-8b': llama({
    dim: 4096, hiddenDim: 14336, nLayers: 32, nHeads: 32, nKvHeads: 8, vocabSize: 128256, maxSeq: 8192,
    rope: { theta: 500000, layout: 'half', scaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPos: 8192 } },
    bosId: 128000, eosId: 128001,
  }),
  'mistral-7b': llama({
    arch: 'mistral', dim: 4096, hiddenDim: 14336, nLayers: 32, nHeads: 32, nKvHeads: 8, vocabSize: 32000, maxSeq: 32768,
    slidingWindow: 4096,
  }),
  // 8 experts of Mistral-7B's MLP shape, 2 per token: 46.7B parameters (FP16 ~94 GB, W4 ~24 GB)
  'mixtral-8x7b': llama({
    arch: 'mixtral', dim: 4096, hiddenDim: 14336, nLayers: 32, nHeads: 32, nKvHeads: 8, vocabSize: 32000, maxSeq: 32768,
    rope: { theta: 1e6, layout: 'half' }, nExperts: 8, nExpertsPerTok: 2,
  }),
};

/** The preset `name`, optionally with fewer layers (tests: a 2-layer LLaMA-3-8B-shaped model). */
export function archPreset(name: string, layers?: number): ModelConfig {
  const c = ARCH_PRESETS[name];
  if (!c) fail('--arch', `unknown architecture '${name}' (known: ${Object.keys(ARCH_PRESETS).join(', ')})`);
  return layers === undefined ? c : { ...c, nLayers: layers };
}
