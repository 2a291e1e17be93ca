// The quantized checkpoint: an HF-style directory = the original config.json plus
// `quantization_config`, safetensors holding per quantized linear `<name>.qweight` (U8 [N, K/2],
// canonical packing), `<name>.scales` (F16 [N, K/G]), `<name>.iscales` (I16 when it fits, else I32,
// [N, K/G]), `<name>.shift` (I8 [N]) and every other tensor unchanged, the tokenizer files copied,
// and quantization_report.json (per-layer integer-scale report). The safetensors metadata records a
// SHA-256 per quantized layer (src/io/qformat-digest.ts).
// This file owns the format only: the tensors of a layer, reading and validating them (the int32
// bound, the integer scales against the float scales, the checksum). Quantizing a model is
// src/quant/quantize-model.ts; which Linear runs a layer is src/quant/quantized-linears.ts.
import * as fs from 'node:fs';
import { fail } from '../core/errors.ts';
import { fsProblem } from '../core/fs-errors.ts';
import { f16ArrayToF32, f32ArrayToF16 } from '../core/dtype.ts';
import type { TensorSource, TensorToWrite } from './safetensors.ts';
import { SUPPORTED_GROUPS, type QuantizedWeight } from '../quant/rtn.ts';
import { packInt4, unpackInt4 } from '../quant/pack-int4.ts';
import { assertIntegerScalesMatch, assertNoOverflow, MAX_SHIFT, type Amplifier, type IntegerScales } from '../quant/integer-scale.ts';
import { DIGEST_KEY, digestMetadata, LAYER_SUFFIXES, recordedDigests, verifyLayerDigest } from './qformat-digest.ts';

export const QUANT_METHOD = 'intscale';
export const REPORT_FILE = 'quantization_report.json';
/** Architectures whose decoder linears we know how to find (`model.layers.L.{self_attn,mlp}.*_proj`). */
export const SUPPORTED_MODEL_TYPES = ['llama', 'mistral', 'qwen2', 'mixtral'] as const;
/** HF names of the decoder projections a quantizer replaces. */
export const LINEAR_PATTERN = /^model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj|block_sparse_moe\.experts\.\d+\.w[123])\.weight$/;

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
  /** The method's parameters (calibration, GPTQ/AWQ/SmoothQuant settings, convert's source); absent for plain RTN. */
  method_params?: MethodParams;
}

export const QUANT_METHODS = ['rtn', 'gptq', 'awq'] as const;
export type QuantMethodName = (typeof QUANT_METHODS)[number];

export interface MethodParams {
  /** calibration text (file name only), windows, positions per window, sampling seed */
  calib?: { file: string; samples: number; len: number; seed: number };
  /** SmoothQuant migration strength α */
  smooth?: number;
  /** rtn: weight-space clip search; gptq: output-error clip search of each group's scale */
  clip?: boolean;
  act_order?: boolean;
  /** gptq: AWQ's per-input-channel scales searched and folded before GPTQ */
  awq_scales?: boolean;
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

/** A checkpoint converted from another tool may hold q = -8 (two's-complement int4; the int32 bound covers it). */
function allowsMinus8(config: QuantizationConfig): boolean {
  return config.method_params?.converted_from !== undefined;
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
  } catch (e) {
    fail(file, `cannot read the file: ${fsProblem(e) ?? String(e)}`);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(file, 'expected a JSON object');
    return v as Record<string, unknown>;
  } catch (e) {
    if (e instanceof SyntaxError) fail(file, `not valid JSON (${e.message})`);
    throw e;
  }
}

/** The safetensors metadata of a checkpoint: its quantized layers' tensors (by layer) checksummed. */
export function checkpointMetadata(tensorsByLayer: ReadonlyMap<string, readonly TensorToWrite[]>): Record<string, string> {
  return { format: 'pt', quant_method: QUANT_METHOD, ...digestMetadata(tensorsByLayer) };
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
  if (typeof q !== 'object' || q === null || Array.isArray(q)) fail(where, 'quantization_config is not an object');
  const c = q as Record<string, unknown>;
  const bad = (key: string, v: unknown, supported: string): never =>
    fail(where, `quantization_config.${key} ${JSON.stringify(v) ?? String(v)} is not supported (${supported})`);
  if (c['quant_method'] !== QUANT_METHOD) fail(where, `quant_method ${JSON.stringify(c['quant_method'])} is not supported (expected "${QUANT_METHOD}")`);
  if (c['bits'] !== 4) bad('bits', c['bits'], '4 only');
  if (!(SUPPORTED_GROUPS as readonly unknown[]).includes(c['group_size'])) bad('group_size', c['group_size'], SUPPORTED_GROUPS.join(', '));
  if (c['act_bits'] !== 8 && c['act_bits'] !== 16) bad('act_bits', c['act_bits'], '8 or 16');
  if (c['scale'] !== 'int' && c['scale'] !== 'float') bad('scale', c['scale'], '"int" or "float"');
  if (c['sym'] !== true) bad('sym', c['sym'], 'true only: weights are symmetric');
  if (!(QUANT_METHODS as readonly unknown[]).includes(c['method'])) bad('method', c['method'], QUANT_METHODS.map((m) => `"${m}"`).join(', '));
  const mp = c['method_params'];
  if (mp !== undefined && (typeof mp !== 'object' || mp === null || Array.isArray(mp))) bad('method_params', mp, 'an object');
  const a = c['amplifier'];
  if (!(a === 'auto' || a === 'layer' || (typeof a === 'number' && Number.isInteger(a) && a >= 0 && a <= MAX_SHIFT))) {
    bad('amplifier', a, `"auto", "layer" or an integer shift 0..${MAX_SHIFT}`);
  }
  return c as unknown as QuantizationConfig;
}

/** Read the quantized layer `name` from an open quantized checkpoint, refusing (naming the tensor)
 *  anything this quantizer would not have written: shapes and dtypes, int4 values outside [-7, 7],
 *  non-finite or negative scales, the int32 bound, integer scales and shifts that are not derived
 *  from the stored scales under the config's amplifier, and tensors that fail their checksum. */
export function readQuantizedLayer(src: TensorSource, name: string, config: QuantizationConfig): QuantizedLayer {
  const groupSize = config.group_size;
  const qi = src.info(`${name}.qweight`);
  if (qi.dtype !== 'U8' || qi.shape.length !== 2) fail(name, `qweight must be U8 [N, K/2], got ${qi.dtype} [${qi.shape.join(', ')}]`);
  const N = qi.shape[0]!, K = qi.shape[1]! * 2;
  if (N === 0 || K === 0) fail(name, `qweight has an empty shape [${qi.shape.join(', ')}]`);
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
  const raw = LAYER_SUFFIXES.map((suffix) => {
    const info = src.info(`${name}.${suffix}`);
    return { name: `${name}.${suffix}`, dtype: info.dtype, shape: info.shape, data: src.read(`${name}.${suffix}`) };
  });
  const [packed, scalesRaw, iscalesRaw, shiftRaw] = raw.map((t) => t.data) as [Uint8Array, Uint16Array, Int16Array | Int32Array, Int8Array];
  const q = unpackInt4(packed, N, K);
  const minus8 = q.indexOf(-8);
  if (minus8 >= 0 && !allowsMinus8(config)) fail(`${name}.qweight`, `value -8 at row ${Math.floor(minus8 / K)} column ${minus8 % K}: symmetric RTN weights are in [-7, 7]`);
  const scales = f16ArrayToF32(scalesRaw);
  for (let i = 0; i < scales.length; i++) {
    const s = scales[i]!;
    if (!Number.isFinite(s) || s < 0) fail(`${name}.scales`, `output channel ${Math.floor(i / groups)} group ${i % groups}: scale ${s} (must be finite and ≥ 0)`);
  }
  if (config.method === 'rtn') assertRtnGroups(q, scales, N, K, G, name);
  const is: IntegerScales = { iscales: iscalesRaw instanceof Int32Array ? iscalesRaw : Int32Array.from(iscalesRaw), shift: shiftRaw };
  const qw: QuantizedWeight = { outFeatures: N, inFeatures: K, groupSize: G, q, scales };
  assertNoOverflow(is, qw, name);
  assertIntegerScalesMatch(is, qw, config.amplifier, name);
  verifyLayerDigest(src, name, raw, name);
  return { name, qw, is };
}

/** The smallest normal fp16 value: scales at or above it are exact to 2^-11 relative. */
const F16_MIN_NORMAL = 2 ** -14;

/**
 * RTN's own invariants per group (with or without the clip search): s = fp16(r·absmax/7) with r ≤ 1
 * maps the group's largest weight to ±7, so a group whose scale is a normal fp16 value holds a
 * |q| = 7 (rel. error of s ≤ 2^-11); a group with s = 0 is all zeros. A zeroed or rescaled block of
 * qweight fails here even where no checksum protects it.
 */
function assertRtnGroups(q: Int8Array, scales: Float32Array, N: number, K: number, G: number, name: string): void {
  const groups = K / G;
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < groups; g++) {
      const s = scales[n * groups + g]!;
      let maxAbs = 0;
      for (let k = n * K + g * G, end = k + G; k < end; k++) maxAbs = Math.max(maxAbs, Math.abs(q[k]!));
      if (s === 0 && maxAbs !== 0) fail(`${name}.qweight`, `output channel ${n} group ${g}: nonzero weights under a zero scale (RTN writes zeros there)`);
      if (s >= F16_MIN_NORMAL && maxAbs !== 7) fail(`${name}.qweight`, `output channel ${n} group ${g}: largest |q| is ${maxAbs}, but RTN maps each group's largest weight to ±7`);
    }
  }
}

/** The names (without suffix) of the quantized linears in a checkpoint. */
export function quantizedLayerNames(src: TensorSource): string[] {
  const layerIndex = (n: string) => Number(n.split('.')[2]) || 0;
  return src.names().filter((n) => n.endsWith('.qweight')).map((n) => n.slice(0, -'.qweight'.length))
    .sort((a, b) => layerIndex(a) - layerIndex(b) || (a < b ? -1 : a > b ? 1 : 0));
}

/** Every recorded quantized layer must be in the file (a deleted layer is refused by name). A file
 *  with no record at all is refused layer by layer, after each layer's own checks. */
export function assertRecordedLayersPresent(src: TensorSource, where: string): void {
  if (src.metadata[DIGEST_KEY] === undefined) return;
  for (const name of recordedDigests(src, where).keys()) {
    if (!src.has(`${name}.qweight`)) fail(where, `quantized layer ${name} is missing from the checkpoint (it was recorded when the model was quantized)`);
  }
}
