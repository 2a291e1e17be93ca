// The small random LLaMA the calibration tests share: 2 layers, dims divisible by 32, grouped-query
// attention (4 query heads, 2 KV heads), and a few loud residual channels (every 13th norm weight ~8,
// as real LLMs have). Seeded; with `qkvBias` the q/k/v biases are drawn after each layer's weights;
// with `experts` each layer's MLP is a Mixtral mixture of that many experts (top `topK`, default 2;
// a router with logits of order 1), drawn after the attention weights.
import { Rng } from '../../src/core/rng.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import type { Model } from '../../src/model/llama.ts';
import { denseLinear, type LayerWeights, type ModelWeights } from '../../src/model/weights.ts';

export function smallLlama(seed: number, opts: { maxSeq?: number; qkvBias?: boolean; experts?: number; topK?: number } = {}): Model {
  const qkvBias = opts.qkvBias ?? false, E = opts.experts, topK = opts.topK ?? 2;
  const config: ModelConfig = {
    arch: E ? 'mixtral' : 'llama', dim: 64, hiddenDim: 128, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 16,
    vocabSize: 64, maxSeq: opts.maxSeq ?? 64, normEps: 1e-5, rope: { theta: 10000, layout: 'half' }, tieEmbeddings: false, qkvBias,
    ...(E ? { nExperts: E, nExpertsPerTok: topK } : {}),
  };
  const rng = new Rng(seed);
  const m = (r: number, c: number, std: number) => rng.normals(r * c, std);
  const lin = (r: number, c: number, std: number) => denseLinear(m(r, c, std), r, c);
  const norm = () => Float32Array.from({ length: 64 }, (_, i) => (i % 13 === 0 ? 8 : 1) * (1 + 0.1 * rng.normal()));
  const weights: ModelWeights = {
    embedding: m(64, 64, 1), finalNorm: norm(), lmHead: lin(64, 64, 0.2),
    layers: Array.from({ length: 2 }, (): LayerWeights => {
      const attention = {
        attnNorm: norm(), ffnNorm: norm(), wq: lin(64, 64, 0.15), wk: lin(32, 64, 0.15), wv: lin(32, 64, 0.15), wo: lin(64, 64, 0.15),
      };
      const mlp = () => ({ w1: lin(128, 64, 0.15), w2: lin(64, 128, 0.1), w3: lin(128, 64, 0.15) });
      const layer: LayerWeights = E
        ? { ...attention, moe: { router: lin(E, 64, 0.05), topK, experts: Array.from({ length: E }, mlp) } }
        : { ...attention, ...mlp() };
      return qkvBias ? { ...layer, bq: m(1, 64, 0.1), bk: m(1, 32, 0.1), bv: m(1, 32, 0.1) } : layer;
    }),
  };
  return { config, weights };
}
