// The quantized checkpoint: an HF-style directory = the original config.json plus
// `quantization_config`, safetensors holding per quantized linear `<name>.qweight` (U8 [N, K/2],
// canonical packing), `<name>.scales` (F16 [N, K/G]), `<name>.iscales` (I16 when it fits, else I32,
// [N, K/G]), `<name>.shift` (I8 [N]) and every other tensor unchanged, the tokenizer files copied,
// and quantization_report.json (per-layer integer-scale report).
// This file owns the format only: the tensors of a layer, reading and validating them (the int32
// bound included). Quantizing a model is src/quant/quantize-model.ts; which Linear runs a layer is
// src/quant/quantized-linears.ts.
import * as fs from 'node:fs';
import { fail } from '../core/errors.ts';
import { f16ArrayToF32, f32ArrayToF16 } from '../core/dtype.ts';
import type { TensorSource, TensorToWrite } from './safetensors.ts';
import { SUPPORTED_GROUPS, type QuantizedWeight } from '../quant/rtn.ts';
import { packInt4, unpackInt4 } from '../quant/pack-int4.ts';
import { assertNoOverflow, type Amplifier, type IntegerScales } from '../quant/integer-scale.ts';

export const QUANT_METHOD = 'intscale';
export const REPORT_FILE = 'quantization_report.json';
/** Architectures whose decoder linears we know how to find (`model.layers.L.{self_attn,mlp}.*_proj`). */
export const SUPPORTED_MODEL_TYPES = ['llama', 'mistral', 'qwen2'] as const;
/** HF names of the decoder projections a quantizer replaces. */
export const LINEAR_PATTERN = /^model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight$/;

export interface QuantizationConfig {
  quant_method: 'intscale';
  bits: 4;
  group_size: number;
  sym: true;
  act_bits: 8 | 16;
  scale: 'int' | 'float';
  amplifier: Amplifier;
  /** How the int4 weights and float scales were chosen; integer scales always follow from those. */
  method: QuantMethodName;
  /** The method's parameters (calibration, GPTQ/AWQ/SmoothQuant settings); absent for plain RTN. */
  method_params?: MethodParams;
}

export const QUANT_METHODS = ['rtn', 'gptq', 'awq'] as const;
export type QuantMethodName = (typeof QUANT_METHODS)[number];

export interface MethodParams {
  /** calibration text (file name only), windows, positions per window, sampling seed */
  calib?: { file: string; samples: number; len: number; seed: number };
  /** SmoothQuant migration strength α */
  smooth?: number;
  clip?: boolean;
  act_order?: boolean;
  percdamp?: number;
  block_size?: number;
  /** per-input-channel scale folds used (AWQ, SmoothQuant) */
  folds?: string;
  /** `intscale convert`: the source format, its symmetry/act-order, and how many layers converted exactly */
  converted_from?: 'autogptq' | 'autoawq';
  source_sym?: boolean;
  source_desc_act?: boolean;
  exact_layers?: number;
  requantized_layers?: number;
}


/** One quantized linear, in memory. */
export interface QuantizedLayer {
  name: string; // e.g. model.layers.0.self_attn.q_proj
  qw: QuantizedWeight;
  is: IntegerScales;
}


export function readJson(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    fail(file, 'cannot read file');
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(file, 'expected a JSON object');
    return v as Record<string, unknown>;
  } catch (e) {
    if (e instanceof SyntaxError) fail(file, `invalid JSON (${e.message})`);
    throw e;
  }
}

/** Tensors of one quantized layer in the file format. */
export function layerTensors(layer: QuantizedLayer): TensorToWrite[] {
  const { name, qw, is } = layer;
  const N = qw.outFeatures, K = qw.inFeatures, groups = K / qw.groupSize;
  let maxHat = 0;
  for (const v of is.iscales) maxHat = Math.max(maxHat, Math.abs(v));
  const iscales = maxHat <= 32767
    ? { name: `${name}.iscales`, dtype: 'I16' as const, shape: [N, groups], data: Int16Array.from(is.iscales) }
    : { name: `${name}.iscales`, dtype: 'I32' as const, shape: [N, groups], data: is.iscales };
  return [
    { name: `${name}.qweight`, dtype: 'U8', shape: [N, K / 2], data: packInt4(qw.q, N, K) },
    { name: `${name}.scales`, dtype: 'F16', shape: [N, groups], data: f32ArrayToF16(qw.scales) },
    iscales,
    { name: `${name}.shift`, dtype: 'I8', shape: [N], data: is.shift },
  ];
}

/** The validated quantization_config of a config.json object, or undefined when it has none. */
export function quantizationConfigOf(config: Record<string, unknown>, where: string): QuantizationConfig | undefined {
  const q = config['quantization_config'];
  if (q === undefined) return undefined;
  if (typeof q !== 'object' || q === null) fail(where, 'quantization_config is not an object');
  const c = q as Record<string, unknown>;
  if (c['quant_method'] !== QUANT_METHOD) fail(where, `quant_method ${JSON.stringify(c['quant_method'])} is not supported (expected "${QUANT_METHOD}")`);
  if (c['bits'] !== 4) fail(where, `quantization_config.bits ${JSON.stringify(c['bits'])} is not supported (4 only)`);
  if (!(SUPPORTED_GROUPS as readonly unknown[]).includes(c['group_size'])) fail(where, `quantization_config.group_size ${JSON.stringify(c['group_size'])} is not supported`);
  if (c['act_bits'] !== 8 && c['act_bits'] !== 16) fail(where, `quantization_config.act_bits ${JSON.stringify(c['act_bits'])} is not supported`);
  if (c['scale'] !== 'int' && c['scale'] !== 'float') fail(where, `quantization_config.scale ${JSON.stringify(c['scale'])} is not supported`);
  if (c['method'] !== undefined && !(QUANT_METHODS as readonly unknown[]).includes(c['method']))
    fail(where, `quantization_config.method ${JSON.stringify(c['method'])} is not supported (${QUANT_METHODS.join(', ')})`);
  const mp = c['method_params'];
  if (mp !== undefined && (typeof mp !== 'object' || mp === null || Array.isArray(mp))) fail(where, 'quantization_config.method_params is not an object');
  return c as unknown as QuantizationConfig;
}

/** Read the quantized layer `name` from an open quantized checkpoint (validated, incl. the bound). */
export function readQuantizedLayer(src: TensorSource, name: string, groupSize: number): QuantizedLayer {
  const qi = src.info(`${name}.qweight`);
  if (qi.dtype !== 'U8' || qi.shape.length !== 2) fail(name, `qweight must be U8 [N, K/2], got ${qi.dtype} [${qi.shape.join(', ')}]`);
  const N = qi.shape[0]!, K = qi.shape[1]! * 2;
  const G = groupSize === -1 ? K : groupSize;
  if (K % G !== 0) fail(name, `K = ${K} is not divisible by group_size ${G}`);
  const groups = K / G;
  const expectShape = (suffix: string, dtypes: string[], shape: number[]) => {
    const info = src.info(`${name}.${suffix}`);
    if (!dtypes.includes(info.dtype) || info.shape.join(',') !== shape.join(',')) {
      fail(name, `${suffix} must be ${dtypes.join('/')} [${shape.join(', ')}], got ${info.dtype} [${info.shape.join(', ')}]`);
    }
  };
  expectShape('scales', ['F16'], [N, groups]);
  expectShape('iscales', ['I16', 'I32'], [N, groups]);
  expectShape('shift', ['I8'], [N]);
  const q = unpackInt4(src.read(`${name}.qweight`) as Uint8Array, N, K);
  const scales = f16ArrayToF32(src.read(`${name}.scales`) as Uint16Array);
  const iscalesRaw = src.read(`${name}.iscales`) as Int16Array | Int32Array;
  const is: IntegerScales = {
    iscales: iscalesRaw instanceof Int32Array ? iscalesRaw : Int32Array.from(iscalesRaw),
    shift: src.read(`${name}.shift`) as Int8Array,
  };
  const qw: QuantizedWeight = { outFeatures: N, inFeatures: K, groupSize: G, q, scales };
  assertNoOverflow(is, qw, name);
  return { name, qw, is };
}

/** The names (without suffix) of the quantized linears in a checkpoint. */
export function quantizedLayerNames(src: TensorSource): string[] {
  const layerIndex = (n: string) => Number(n.split('.')[2]) || 0;
  return src.names().filter((n) => n.endsWith('.qweight')).map((n) => n.slice(0, -'.qweight'.length))
    .sort((a, b) => layerIndex(a) - layerIndex(b) || (a < b ? -1 : a > b ? 1 : 0));
}
