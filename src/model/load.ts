// Loading a model into the CPU engine: config, tokenizer and weights of a Hugging Face directory
// (dense fp32 linears, or the quantized linears of an intscale checkpoint) or a llama2.c checkpoint.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../core/errors.ts';
import { progress, type Progress } from '../core/progress.ts';
import { assertFiniteTensor } from '../core/finite.ts';
import { loadLlama2c } from '../io/llama2c.ts';
import { detectModel } from '../io/model-dir.ts';
import type { TensorSource } from '../io/safetensors.ts';
import { openValidatedModelDir } from '../io/validate-model.ts';
import { loadHfTokenizer, loadLlama2cTokenizer, type Tokenizer } from '../io/tokenizer.ts';
import { quantizedLinearHook } from '../quant/quantized-linears.ts';
import type { ModelConfig } from './config.ts';
import type { Linear } from './linear.ts';
import { denseLinear, expertLinearName, MLP_LINEAR_NAMES, ROUTER_NAME, type LayerWeights, type ModelWeights, type SwigluWeights } from './weights.ts';

export interface LoadedModel {
  config: ModelConfig;
  tokenizer: Tokenizer;
  weights: ModelWeights;
  /** 'hf' or 'llama2c' */
  format: 'hf' | 'llama2c';
  path: string;
}

export interface LoadOptions {
  /** llama2.c: the tokenizer .bin when it is not next to the checkpoint. */
  tokenizerPath?: string;
  /** Called once per layer while loading. */
  onProgress?: (done: number, total: number) => void;
}

/** Load config, tokenizer and fp32 weights. */
export function loadModel(p: string, opts: LoadOptions = {}): LoadedModel {
  const kind = detectModel(p);
  if (kind.format === 'llama2c') {
    const tokPath = opts.tokenizerPath ?? kind.tokenizer;
    if (!tokPath) fail(p, 'llama2.c checkpoint without a tokenizer .bin next to it (tokenizer.bin or tok*.bin)');
    const { config, weights } = loadLlama2c(kind.checkpoint);
    opts.onProgress?.(config.nLayers, config.nLayers);
    return { config, weights, tokenizer: loadLlama2cTokenizer(tokPath, config.vocabSize), format: 'llama2c', path: p };
  }
  const dir = kind.dir;
  // config and tensors checked against each other before anything is loaded (src/io/validate-model.ts)
  const { config, quant, src } = openValidatedModelDir(dir);
  try {
    const tokenizer = loadDirTokenizer(dir, config);
    const weights = loadHfWeights(src, config, dir, opts.onProgress, quant ? quantizedLinearHook(src, quant) : undefined);
    return { config, tokenizer, weights, format: 'hf', path: p };
  } finally {
    src.close();
  }
}

/** The tokenizer of a Hugging Face directory (tokenizer.json), checked against the config's vocabulary. */
export function loadDirTokenizer(dir: string, config: ModelConfig): Tokenizer {
  const tokJson = path.join(dir, 'tokenizer.json');
  if (!fs.existsSync(tokJson)) fail(dir, 'no tokenizer.json');
  const tokenizer = loadHfTokenizer(tokJson, path.join(dir, 'tokenizer_config.json'));
  if (tokenizer.vocabSize > config.vocabSize) {
    fail(dir, `the tokenizer has ${tokenizer.vocabSize} tokens but config.json says vocab_size ${config.vocabSize} (ids past the embedding)`);
  }
  return tokenizer;
}

/** Read the standard HF LLaMA (and Mixtral) tensor names into ModelWeights (fp32, shapes checked). */
export function loadHfWeights(src: TensorSource, c: ModelConfig, where: string,
                              onProgress?: (done: number, total: number) => void,
                              quantized?: (name: string) => Linear | undefined): ModelWeights {
  const read = (name: string, shape: number[]): Float32Array => {
    if (!src.has(name)) fail(where, `missing tensor ${name}`);
    const info = src.info(name);
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i]))
      fail(where, `tensor ${name} has shape [${info.shape.join(', ')}], expected [${shape.join(', ')}]`);
    const data = src.readF32(name);
    assertFiniteTensor(name, data, shape[1] ?? shape[0]);
    return data;
  };
  const { dim, hiddenDim, headDim } = c;
  const qDim = c.nHeads * headDim, kvDim = c.nKvHeads * headDim;
  const embedding = read('model.embed_tokens.weight', [c.vocabSize, dim]);
  const layers: LayerWeights[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const pre = `model.layers.${l}.`;
    const lin = (name: string, out: number, inp: number): Linear => {
      // intscale: a quantized checkpoint's projection (src/quant/quantized-linears.ts quantizedLinearHook)
      const q = quantized?.(`${pre}${name}`);
      if (q && (q.outFeatures !== out || q.inFeatures !== inp))
        fail(where, `quantized ${pre}${name} is ${q.outFeatures}×${q.inFeatures}, expected ${out}×${inp}`);
      return q ?? denseLinear(read(`${pre}${name}.weight`, [out, inp]), out, inp);
    };
    const mlp = (name: (field: keyof SwigluWeights) => string): SwigluWeights =>
      ({ w1: lin(name('w1'), hiddenDim, dim), w2: lin(name('w2'), dim, hiddenDim), w3: lin(name('w3'), hiddenDim, dim) });
    const attention = {
      attnNorm: read(`${pre}input_layernorm.weight`, [dim]),
      wq: lin('self_attn.q_proj', qDim, dim),
      wk: lin('self_attn.k_proj', kvDim, dim),
      wv: lin('self_attn.v_proj', kvDim, dim),
      wo: lin('self_attn.o_proj', dim, qDim),
      ffnNorm: read(`${pre}post_attention_layernorm.weight`, [dim]),
    };
    let layer: LayerWeights;
    if (c.arch === 'mixtral') {
      const E = c.nExperts!, topK = c.nExpertsPerTok!;
      const router = denseLinear(read(`${pre}${ROUTER_NAME}.weight`, [E, dim]), E, dim);  // dense in every mode
      layer = { ...attention, moe: { router, topK, experts: Array.from({ length: E }, (_, e) => mlp((f) => expertLinearName(e, f))) } };
    } else {
      layer = { ...attention, ...mlp((f) => MLP_LINEAR_NAMES[f]) };
    }
    if (c.qkvBias) {
      layer.bq = read(`${pre}self_attn.q_proj.bias`, [qDim]);
      layer.bk = read(`${pre}self_attn.k_proj.bias`, [kvDim]);
      layer.bv = read(`${pre}self_attn.v_proj.bias`, [kvDim]);
    }
    layers.push(layer);
    onProgress?.(l + 1, c.nLayers);
  }
  const finalNorm = read('model.norm.weight', [dim]);
  // tied models usually omit lm_head.weight; an untied model without it is a broken checkpoint
  const head = c.tieEmbeddings && !src.has('lm_head.weight') ? embedding : read('lm_head.weight', [c.vocabSize, dim]);
  return { embedding, layers, finalNorm, lmHead: denseLinear(head, c.vocabSize, dim) };
}

/** loadModel with a progress bar (or plain lines) on stderr, one tick per layer, shown only once
 *  loading has taken over a second (small models load silently): for the CLI. */
export function loadModelWithProgress(p: string, opts: Omit<LoadOptions, 'onProgress'> = {}): LoadedModel {
  const started = Date.now();
  let bar: Progress | undefined;
  let shown = 0;
  const model = loadModel(p, {
    ...opts,
    onProgress: (done, total) => {
      if (!bar && Date.now() - started < 1000) return;
      bar ??= progress(`loading ${path.basename(path.resolve(p))}`, total);
      bar.tick(done - shown);
      shown = done;
    },
  });
  bar?.done();
  return model;
}
