// The quantized checkpoint: an HF-style directory = the original config.json plus
// `quantization_config`, safetensors holding per quantized linear `<name>.qweight` (U8 [N, K/2],
// canonical packing), `<name>.scales` (F16 [N, K/G]), `<name>.iscales` (I16 when it fits, else I32,
// [N, K/G]), `<name>.shift` (I8 [N]) and every other tensor unchanged, the tokenizer files copied,
// and quantization_report.json (per-layer integer-scale report). Written to a temp dir, then renamed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../core/errors.ts';
import { f16ArrayToF32, f32ArrayToF16 } from '../core/dtype.ts';
import type { Linear } from '../model/linear.ts';
import { openSafetensorsDir, writeSafetensorsSharded, type TensorSource, type TensorToWrite } from './safetensors.ts';
import { quantizeRtn, resolveGroupSize, SUPPORTED_GROUPS, type QuantizedWeight } from '../quant/rtn.ts';
import { packInt4, unpackInt4 } from '../quant/pack-int4.ts';
import { assertNoOverflow, computeIntegerScales, type Amplifier, type IntegerScales } from '../quant/integer-scale.ts';
import { integerScaleReport, type IsLayerReport } from '../quant/is-report.ts';
import { IsLinear } from '../quant/linear-is.ts';
import { FsLinear } from '../quant/linear-fs.ts';
import { PcLinear } from '../quant/linear-pc.ts';
import { W4A16Linear } from '../quant/linear-w4a16.ts';

export const QUANT_METHOD = 'intscale';
export const REPORT_FILE = 'quantization_report.json';
/** Architectures whose decoder linears we know how to find (`model.layers.L.{self_attn,mlp}.*_proj`). */
export const SUPPORTED_MODEL_TYPES = ['llama', 'mistral', 'qwen2'] as const;
const LINEAR_PATTERN = /^model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight$/;

export interface QuantizationConfig {
  quant_method: 'intscale';
  bits: 4;
  group_size: number;
  sym: true;
  act_bits: 8 | 16;
  scale: 'int' | 'float';
  amplifier: Amplifier;
  method: 'rtn';
}

export interface QuantizeOptions {
  method: string;
  wbits: number;
  group: number;
  abits: number;
  scale: 'int' | 'float';
  amplifier: Amplifier;
  clip: boolean;
}

/** One quantized linear, in memory. */
export interface QuantizedLayer {
  name: string; // e.g. model.layers.0.self_attn.q_proj
  qw: QuantizedWeight;
  is: IntegerScales;
}

/** How a quantized layer runs on the CPU. */
export type QuantMode = 'w4a16' | 'w4a8-fs' | 'w4a8-is' | 'w4a8-pc';

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

/** Check options before any work; returns the config to store. */
export function checkQuantizeOptions(opts: QuantizeOptions): QuantizationConfig {
  if (opts.method !== 'rtn') fail('--method', `unknown method '${opts.method}' (supported: rtn)`);
  if (opts.wbits !== 4) fail('--wbits', `unsupported weight bits ${opts.wbits} (supported: 4)`);
  if (!(SUPPORTED_GROUPS as readonly number[]).includes(opts.group)) fail('--group', `unsupported group size ${opts.group} (use 32, 64, 128, 256 or -1)`);
  if (opts.abits !== 8 && opts.abits !== 16) fail('--abits', `unsupported activation bits ${opts.abits} (use 8 or 16)`);
  if (opts.scale !== 'int' && opts.scale !== 'float') fail('--scale', `expected int or float, got '${String(opts.scale)}'`);
  return { quant_method: QUANT_METHOD, bits: 4, group_size: opts.group, sym: true, act_bits: opts.abits, scale: opts.scale, amplifier: opts.amplifier, method: 'rtn' };
}

/** Names (without `.weight`) of the linears to quantize; fails on unsupported architectures. */
export function quantizableLinears(config: Record<string, unknown>, src: TensorSource, where: string): string[] {
  const type = config['model_type'];
  if (!(SUPPORTED_MODEL_TYPES as readonly unknown[]).includes(type)) {
    fail(where, `unsupported architecture model_type=${JSON.stringify(type)} (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
  }
  const layerIndex = (n: string) => Number(n.split('.')[2]);
  const names = src.names().filter((n) => LINEAR_PATTERN.test(n)).map((n) => n.slice(0, -'.weight'.length))
    .sort((a, b) => layerIndex(a) - layerIndex(b) || (a < b ? -1 : a > b ? 1 : 0)); // layer 2 before layer 10
  if (names.length === 0) fail(where, 'no decoder linear weights (model.layers.N.*_proj.weight) found');
  return names;
}

/** Quantize one linear weight from a tensor source. */
export function quantizeLayer(src: TensorSource, name: string, opts: QuantizeOptions): { layer: QuantizedLayer; report: IsLayerReport } {
  const info = src.info(`${name}.weight`);
  if (info.shape.length !== 2) fail(name, `expected a 2-D weight, got shape [${info.shape.join(', ')}]`);
  const [N, K] = info.shape as [number, number];
  resolveGroupSize(opts.group, K, name);
  const w = src.readF32(`${name}.weight`);
  const qw = quantizeRtn(w, N, K, { group: opts.group, clip: opts.clip, name });
  const is = computeIntegerScales(qw, opts.amplifier, name);
  return { layer: { name, qw, is }, report: integerScaleReport(name, qw, is, w) };
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

/**
 * Quantize the model in `srcDir` into `outDir` (which must not exist). Calls onLayer after each
 * quantized linear. Nothing appears at `outDir` unless everything succeeded.
 */
export function writeQuantizedModel(srcDir: string, outDir: string, opts: QuantizeOptions,
                                    onLayer?: (report: IsLayerReport, index: number, total: number) => void): IsLayerReport[] {
  const qconfig = checkQuantizeOptions(opts);
  if (!fs.existsSync(path.join(srcDir, 'config.json'))) fail(srcDir, 'no config.json (expected a Hugging Face model directory)');
  const config = readJson(path.join(srcDir, 'config.json'));
  if (config['quantization_config'] !== undefined) fail(srcDir, 'is already quantized (config.json has quantization_config)');
  if (fs.existsSync(outDir)) fail(outDir, 'already exists (choose a new --out directory)');
  const src = openSafetensorsDir(srcDir);
  const tmp = path.join(path.dirname(path.resolve(outDir)), `.${path.basename(outDir)}.tmp-${process.pid}`);
  try {
    const linears = quantizableLinears(config, src, srcDir);
    const linearSet = new Set(linears.map((n) => `${n}.weight`));
    const tensors: TensorToWrite[] = [];
    const reports: IsLayerReport[] = [];
    linears.forEach((name, i) => {
      const { layer, report } = quantizeLayer(src, name, opts);
      tensors.push(...layerTensors(layer));
      reports.push(report);
      onLayer?.(report, i, linears.length);
    });
    for (const name of src.names()) {
      if (linearSet.has(name)) continue;
      const info = src.info(name);
      tensors.push({ name, dtype: info.dtype, shape: info.shape, data: src.read(name) });
    }
    fs.rmSync(tmp, { recursive: true, force: true });
    writeSafetensorsSharded(tmp, tensors, { metadata: { format: 'pt', quant_method: QUANT_METHOD } });
    for (const entry of fs.readdirSync(srcDir, { withFileTypes: true })) {
      const skip = entry.name === 'config.json' || entry.name.endsWith('.safetensors') || entry.name === 'model.safetensors.index.json';
      if (!entry.isFile() || skip) continue;
      fs.copyFileSync(path.join(srcDir, entry.name), path.join(tmp, entry.name));
      fs.chmodSync(path.join(tmp, entry.name), 0o644); // sources may be read-only
    }
    fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify({ ...config, quantization_config: qconfig }, null, 2) + '\n');
    fs.writeFileSync(path.join(tmp, REPORT_FILE), JSON.stringify({ layers: reports }, null, 1) + '\n');
    fs.renameSync(tmp, outDir);
    return reports;
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    src.close();
  }
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

/** The CPU Linear running a quantized layer in a given mode. */
export function quantizedLinear(layer: QuantizedLayer, mode: QuantMode): Linear {
  switch (mode) {
    case 'w4a16': return new W4A16Linear(layer.qw);
    case 'w4a8-fs': return new FsLinear(layer.qw);
    case 'w4a8-is': return new IsLinear(layer.qw, layer.is, layer.name);
    case 'w4a8-pc': return new PcLinear(layer.qw, layer.name);
  }
}

/** The mode a checkpoint's quantization_config asks for. */
export function modeOf(q: QuantizationConfig): QuantMode {
  if (q.act_bits === 16) return 'w4a16';
  return q.scale === 'int' ? 'w4a8-is' : 'w4a8-fs';
}

/**
 * The loader hook: every quantized linear of the checkpoint in `dir`, as a Linear keyed by name
 * (e.g. 'model.layers.0.self_attn.q_proj'), running in the config's mode unless `mode` is given.
 */
export function loadQuantizedLinears(dir: string, mode?: QuantMode): Map<string, Linear> {
  const configFile = path.join(dir, 'config.json');
  const q = quantizationConfigOf(readJson(configFile), configFile);
  if (!q) fail(configFile, 'has no quantization_config (not an intscale checkpoint)');
  const src = openSafetensorsDir(dir);
  try {
    const out = new Map<string, Linear>();
    for (const name of quantizedLayerNames(src)) out.set(name, quantizedLinear(readQuantizedLayer(src, name, q.group_size), mode ?? modeOf(q)));
    return out;
  } finally {
    src.close();
  }
}

/**
 * The hook src/io/model-dir.ts calls while loading a Hugging Face directory: undefined for an
 * ordinary checkpoint; for an intscale checkpoint, a function giving the quantized Linear of a
 * projection by name ('model.layers.0.self_attn.q_proj'), in the config's mode (or `mode`).
 */
export function quantizedLinearHook(dir: string, src: TensorSource, mode?: QuantMode): ((name: string) => Linear | undefined) | undefined {
  const configFile = path.join(dir, 'config.json');
  const q = quantizationConfigOf(readJson(configFile), configFile);
  if (!q) return undefined;
  const runAs = mode ?? modeOf(q);
  return (name) => (src.has(`${name}.qweight`) ? quantizedLinear(readQuantizedLayer(src, name, q.group_size), runAs) : undefined);
}
