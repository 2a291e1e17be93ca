// The one check of a Hugging Face model directory against its config.json, run by every command
// that reads a model before it does any work (src/model/load.ts, src/quant/quantize-model.ts,
// src/quant/quantized-linears.ts): every tensor the config implies is present with its shape and
// an allowed dtype (F32/F16/BF16; an intscale checkpoint's projections as qweight/scales/iscales/
// shift), and no decoder layer beyond num_hidden_layers exists. A mismatch (a tensor missing from
// the index, a wrong shape, a bad hidden_size/vocab_size, an I16 weight, a layer count that does
// not match) is one line naming the directory and the tensor.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../core/errors.ts';
import type { ModelConfig } from '../model/config.ts';
import { expertLinearName, ROUTER_NAME } from '../model/weights.ts';
import { parseHfConfig } from './hf-config.ts';
import { openSafetensorsDir, type TensorSource } from './safetensors.ts';
import { assertRecordedLayersPresent, quantizationConfigOf, readJson, type QuantizationConfig } from './qformat.ts';

/** A model directory whose config and tensors agree (the caller closes `src`). */
export interface ValidatedModelDir {
  dir: string;
  /** config.json as written (kept for writing a quantized copy) */
  raw: Record<string, unknown>;
  config: ModelConfig;
  /** the intscale quantization_config, for a quantized checkpoint */
  quant: QuantizationConfig | undefined;
  src: TensorSource;
}

/** config.json of `dir` parsed (and its quantization_config), without opening the tensors. */
export function readModelConfig(dir: string): Omit<ValidatedModelDir, 'src'> {
  const configFile = path.join(dir, 'config.json');
  if (!fs.existsSync(dir)) fail(dir, 'no such file or directory');
  if (!fs.existsSync(configFile)) fail(dir, 'no config.json (expected a Hugging Face model directory)');
  const raw = readJson(configFile);
  return { dir, raw, config: parseHfConfig(raw, configFile), quant: quantizationConfigOf(raw, configFile) };
}

/** Read config.json of `dir`, open its tensors and check them against it (validateModelTensors). */
export function openValidatedModelDir(dir: string): ValidatedModelDir {
  const { raw, config, quant } = readModelConfig(dir);
  const src = openSafetensorsDir(dir);
  try {
    validateModelTensors(src, config, dir, quant);
    if (quant) assertRecordedLayersPresent(src, dir);
  } catch (e) {
    src.close();
    throw e;
  }
  return { dir, raw, config, quant, src };
}

export const FLOAT_DTYPES: readonly string[] = ['F32', 'F16', 'BF16'];

/** Projections of one decoder layer: HF name (without .weight) → [out, in]. The order matches
 *  layerLinearSlots (src/model/weights.ts): q, k, v, o, gate, up, down; a mixture of experts
 *  (Mixtral): per expert w1 (gate), w3 (up), w2 (down). The router is a dense tensor (denseTensors). */
export function layerProjections(c: ModelConfig, layer: number): [string, number, number][] {
  const p = `model.layers.${layer}.`;
  const qDim = c.nHeads * c.headDim, kvDim = c.nKvHeads * c.headDim;
  const attention: [string, number, number][] = [
    [`${p}self_attn.q_proj`, qDim, c.dim], [`${p}self_attn.k_proj`, kvDim, c.dim], [`${p}self_attn.v_proj`, kvDim, c.dim],
    [`${p}self_attn.o_proj`, c.dim, qDim],
  ];
  const mlp = (gate: string, up: string, down: string): [string, number, number][] =>
    [[gate, c.hiddenDim, c.dim], [up, c.hiddenDim, c.dim], [down, c.dim, c.hiddenDim]];
  if (c.arch === 'mixtral') {
    return [...attention, ...Array.from({ length: experts(c) }, (_, e) =>
      mlp(`${p}${expertLinearName(e, 'w1')}`, `${p}${expertLinearName(e, 'w3')}`, `${p}${expertLinearName(e, 'w2')}`)).flat()];
  }
  return [...attention, ...mlp(`${p}mlp.gate_proj`, `${p}mlp.up_proj`, `${p}mlp.down_proj`)];
}

/** A Mixtral config's expert count (parsed by hf-config.ts). */
function experts(c: ModelConfig): number {
  if (c.nExperts === undefined || c.nExpertsPerTok === undefined) fail('config', 'a mixture-of-experts config without num_local_experts / num_experts_per_tok');
  return c.nExperts;
}

/** Every projection of the model, in layer order. */
export function allProjections(c: ModelConfig): [string, number, number][] {
  return Array.from({ length: c.nLayers }, (_, l) => layerProjections(c, l)).flat();
}

/** The dense (non-projection) tensors the config implies, with their shapes. */
export function denseTensors(c: ModelConfig, src: TensorSource): [string, number[]][] {
  const qDim = c.nHeads * c.headDim, kvDim = c.nKvHeads * c.headDim;
  const out: [string, number[]][] = [['model.embed_tokens.weight', [c.vocabSize, c.dim]], ['model.norm.weight', [c.dim]]];
  // tied models usually omit lm_head.weight; when present it must still have the right shape
  if (!c.tieEmbeddings || src.has('lm_head.weight')) out.push(['lm_head.weight', [c.vocabSize, c.dim]]);
  for (let l = 0; l < c.nLayers; l++) {
    const p = `model.layers.${l}.`;
    out.push([`${p}input_layernorm.weight`, [c.dim]], [`${p}post_attention_layernorm.weight`, [c.dim]]);
    if (c.qkvBias) out.push([`${p}self_attn.q_proj.bias`, [qDim]], [`${p}self_attn.k_proj.bias`, [kvDim]], [`${p}self_attn.v_proj.bias`, [kvDim]]);
    if (c.arch === 'mixtral') out.push([`${p}${ROUTER_NAME}.weight`, [experts(c), c.dim]]);
  }
  return out;
}

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * Check the tensors of `src` (the directory `where`) against config `c`. With `quant` (an intscale
 * checkpoint) every projection must be quantized; without it every projection is a dense weight.
 */
export function validateModelTensors(src: TensorSource, c: ModelConfig, where: string, quant?: QuantizationConfig): void {
  const expect = (name: string, shape: readonly number[], dtypes: readonly string[], hint = '') => {
    if (!src.has(name)) fail(where, `missing tensor ${name}${hint}`);
    const info = src.info(name);
    if (!dtypes.includes(info.dtype)) fail(where, `tensor ${name} has dtype ${info.dtype}, expected ${dtypes.join(', ')}`);
    if (info.shape.join(',') !== shape.join(',')) {
      fail(where, `tensor ${name} has shape ${shapeText(info.shape)}, expected ${shapeText(shape)} from config.json${hint}`);
    }
  };
  const sizes = ` (hidden_size ${c.dim}, intermediate_size ${c.hiddenDim}, vocab_size ${c.vocabSize})`;
  for (const [name, shape] of denseTensors(c, src)) expect(name, shape, FLOAT_DTYPES, sizes);
  for (const [name, out, inp] of allProjections(c)) {
    if (!quant) {
      if (!src.has(`${name}.weight`) && src.has(`${name}.qweight`)) fail(where, `${name} is quantized but config.json has no quantization_config`);
      expect(`${name}.weight`, [out, inp], FLOAT_DTYPES, sizes);
      continue;
    }
    if (!src.has(`${name}.qweight`)) {
      fail(where, src.has(`${name}.weight`) ? `projection ${name} is not quantized (a quantized checkpoint has ${name}.qweight)` : `quantized layer ${name} is missing (no ${name}.qweight)`);
    }
    const G = quant.group_size === -1 ? inp : quant.group_size;
    if (inp % G !== 0) fail(where, `${name}: in_features ${inp} is not divisible by group_size ${G}`);
    expect(`${name}.qweight`, [out, inp / 2], ['U8'], sizes);
    expect(`${name}.scales`, [out, inp / G], ['F16']);
    expect(`${name}.iscales`, [out, inp / G], ['I16', 'I32']);
    expect(`${name}.shift`, [out], ['I8']);
  }
  for (const name of src.names()) {
    const m = /^model\.layers\.(\d+)\./.exec(name);
    if (m && Number(m[1]) >= c.nLayers) {
      fail(where, `config.json says num_hidden_layers = ${c.nLayers}, but the checkpoint has tensors of layer ${m[1]} (${name})`);
    }
  }
}
