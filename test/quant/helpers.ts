// Shared helpers for the quantization tests: seeded random layers and the shared-model location.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '../../src/core/rng.ts';
import { f32ArrayToF16 } from '../../src/core/dtype.ts';
import { writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const SHARED = path.resolve(repoRoot, '../shared');
export const MODEL_30M = path.join(SHARED, 'models/docs-llama-30m');
export const PERSUASION = path.join(SHARED, 'data/eval/persuasion.txt');
/** A skip reason when the shared model or data is absent, else undefined. */
export const sharedMissing: string | undefined =
  fs.existsSync(path.join(MODEL_30M, 'config.json')) && fs.existsSync(PERSUASION)
    ? undefined
    : `needs ${MODEL_30M} and ${PERSUASION} (../shared is absent)`;

/** Random weights with per-row magnitude variation and a few outliers (never all zeros). */
export function randomWeights(rng: Rng, rows: number, cols: number, std = 0.05): Float32Array {
  const w = new Float32Array(rows * cols);
  for (let n = 0; n < rows; n++) {
    const rowStd = std * (0.25 + 2 * rng.next());
    for (let k = 0; k < cols; k++) {
      let v = rng.normal() * rowStd;
      if (rng.next() < 0.01) v *= 8;
      w[n * cols + k] = v;
    }
  }
  return w;
}

/** Random activations with some outlier channels, as in LLMs. */
export function randomActivations(rng: Rng, rows: number, cols: number): Float32Array {
  const x = rng.normals(rows * cols, 1);
  for (let k = 0; k < cols; k += 17) for (let t = 0; t < rows; t++) x[t * cols + k] = x[t * cols + k]! * 20;
  return x;
}

export const D = 64, I = 192, V = 50, LAYERS = 2;

const ARCHITECTURES: Record<string, string> = { llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM', mixtral: 'MixtralForCausalLM' };
/** makeModelDir's Mixtral: experts per layer and per token. */
export const EXPERTS = 3, EXPERTS_PER_TOK = 2;

/** The config.json of makeModelDir's model (an unknown model_type gets an unsupported architecture). */
export function tinyConfig(modelType = 'llama', inter = I, layers = LAYERS, dim = D): Record<string, unknown> {
  return {
    architectures: [ARCHITECTURES[modelType] ?? `${modelType.toUpperCase()}LMHeadModel`], model_type: modelType,
    hidden_size: dim, intermediate_size: inter, num_hidden_layers: layers, num_attention_heads: 4, vocab_size: V,
    ...(modelType === 'qwen2' ? { attention_bias: false } : {}),
    ...(modelType === 'mixtral' ? { num_local_experts: EXPERTS, num_experts_per_tok: EXPERTS_PER_TOK } : {}),
  };
}

/** A tiny Llama-shaped HF directory with random fp16 weights (hidden size `dim`, `layers` layers;
 *  'mixtral': a router and EXPERTS experts per layer instead of the MLP). */
export function makeModelDir(root: string, modelType = 'llama', inter = I, dim = D, layers = LAYERS): string {
  const dir = fs.mkdtempSync(path.join(root, 'model-'));
  const rng = new Rng(41);
  const t = (name: string, shape: number[]): TensorToWrite => ({ name, dtype: 'F16', shape, data: f32ArrayToF16(randomWeights(rng, shape[0]!, shape[1] ?? 1)) });
  const tensors: TensorToWrite[] = [t('model.embed_tokens.weight', [V, dim]), t('lm_head.weight', [V, dim]), t('model.norm.weight', [dim])];
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}`;
    for (const x of ['q', 'k', 'v', 'o']) tensors.push(t(`${p}.self_attn.${x}_proj.weight`, [dim, dim]));
    if (modelType === 'mixtral') {
      tensors.push(t(`${p}.block_sparse_moe.gate.weight`, [EXPERTS, dim]));
      for (let e = 0; e < EXPERTS; e++) {
        const x = `${p}.block_sparse_moe.experts.${e}`;
        tensors.push(t(`${x}.w1.weight`, [inter, dim]), t(`${x}.w3.weight`, [inter, dim]), t(`${x}.w2.weight`, [dim, inter]));
      }
    } else tensors.push(t(`${p}.mlp.gate_proj.weight`, [inter, dim]), t(`${p}.mlp.up_proj.weight`, [inter, dim]), t(`${p}.mlp.down_proj.weight`, [dim, inter]));
    tensors.push(t(`${p}.input_layernorm.weight`, [dim]), t(`${p}.post_attention_layernorm.weight`, [dim]));
  }
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(tinyConfig(modelType, inter, layers, dim)));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{"fake": true}');
  return dir;
}


/** A working tokenizer.json of 29 tokens (<unk>, <s>, </s>, a-z as single-character BPE tokens),
 *  small enough for makeModelDir's vocabulary of V = 50: makes such a directory loadable. */
export function writeTinyTokenizer(dir: string): void {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  'abcdefghijklmnopqrstuvwxyz'.split('').forEach((c, i) => { vocab[c] = 3 + i; });
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({
    version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null,
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: [] },
  }));
}
