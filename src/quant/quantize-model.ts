// Quantizing a whole Hugging Face model directory into an intscale checkpoint (W4 per group by RTN,
// or by GPTQ / AWQ / SmoothQuant from calibration windows through the layer-by-layer pipeline of
// calibrate.ts, then integer scales from the method's float scales): option checks, which linears
// to quantize, one layer at a time with shards streamed as they fill (safetensors-stream.ts; the
// calibrated methods read each decoder layer's dense weights only when the pipeline reaches it,
// calib-source.ts, and write its linears before the next layer is read), and
// the write of the output directory through a temp dir (src/io/output-dir.ts; qformat.ts owns the format).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../core/errors.ts';
import { assertFiniteTensor } from '../core/finite.ts';
import { withFsErrors } from '../core/fs-errors.ts';
import { collectDropped } from '../core/gc.ts';
import { yieldForSignals } from '../core/interrupt.ts';
import type { ModelConfig } from '../model/config.ts';
import type { TensorSource } from '../io/safetensors.ts';
import { ShardStreamWriter, STREAM_SHARD_BYTES } from '../io/safetensors-stream.ts';
import { DIGEST_KEY, layerDigest } from '../io/qformat-digest.ts';
import { f32ArrayToF16 } from '../core/dtype.ts';
import { loadDirTokenizer } from '../model/load.ts';
import { loadCalibration, type CalibOptions } from './calib-data.ts';
import { calibrationLayers, foldsChannelScales, needsCalibration, type LayerNote, type LayerResult, type MethodOptions } from './calibrate.ts';
import { tensorCalibrationSource } from './calib-source.ts';
import { GPTQ_DEFAULTS } from './gptq.ts';
import type { QuantizedWeight } from './rtn.ts';
import { toF32 } from '../io/safetensors-reader.ts';
import {
  QUANT_METHOD, QUANT_METHODS, REPORT_FILE, SUPPORTED_MODEL_TYPES, layerTensors,
  type MethodParams, type QuantizationConfig, type QuantizedLayer, type QuantMethodName,
} from '../io/qformat.ts';
import { allProjections, FLOAT_DTYPES, openValidatedModelDir, type ValidatedModelDir } from '../io/validate-model.ts';
import { beginOutputDir, type PendingOutputDir } from '../io/output-dir.ts';
import { quantizeRtn, resolveGroupSize, SUPPORTED_GROUPS } from './rtn.ts';
import { computeIntegerScales, type Amplifier } from './integer-scale.ts';
import { integerScaleReport, type IsLayerReport } from './is-report.ts';
import type { GptqDevice } from './gptq-device.ts';

export interface QuantizeOptions {
  method: string;
  wbits: number;
  group: number;
  abits: number;
  scale: 'int' | 'float';
  amplifier: Amplifier;
  clip: boolean;
  /** calibration windows (required by gptq, awq and --smooth) */
  calib?: CalibOptions;
  /** SmoothQuant α */
  smooth?: number;
  actOrder?: boolean;
  percdamp?: number;
  blockSize?: number;
  /** GPTQ: AWQ's per-input-channel scale search first (folded like AWQ's), then GPTQ */
  awqScales?: boolean;
  /** streaming shard size (default STREAM_SHARD_BYTES) */
  maxShardBytes?: number;
  /** GPTQ's heavy parts on a GPU (src/cli/calib-device.ts); default: the CPU */
  gptqDevice?: GptqDevice;
}

/** Where the per-channel scales of AWQ / SmoothQuant go (recorded in method_params.folds). */
export const FOLDS = 'q/k/v: input_layernorm; gate/up: post_attention_layernorm; down: up_proj rows; o: none';

/** The calibration pipeline's options for a quantize run. */
export function methodOptionsOf(opts: QuantizeOptions): MethodOptions {
  return {
    method: opts.method as QuantMethodName, group: opts.group, clip: opts.clip,
    ...(opts.smooth !== undefined ? { smooth: opts.smooth } : {}),
    ...(opts.actOrder !== undefined ? { actOrder: opts.actOrder } : {}),
    ...(opts.percdamp !== undefined ? { percdamp: opts.percdamp } : {}),
    ...(opts.blockSize !== undefined ? { blockSize: opts.blockSize } : {}),
    ...(opts.awqScales ? { awqScales: true } : {}),
    ...(opts.gptqDevice ? { gptqDevice: opts.gptqDevice } : {}),
  };
}

function methodParams(opts: QuantizeOptions): MethodParams | undefined {
  const p: MethodParams = {};
  if (opts.calib && needsCalibration(methodOptionsOf(opts)))
    p.calib = { file: path.basename(opts.calib.file), samples: opts.calib.samples, len: opts.calib.len, seed: opts.calib.seed };
  if (opts.smooth !== undefined) p.smooth = opts.smooth;
  if (opts.clip) p.clip = true;
  if (opts.method === 'gptq') {
    p.act_order = opts.actOrder ?? false;
    p.percdamp = opts.percdamp ?? GPTQ_DEFAULTS.percdamp;
    p.block_size = opts.blockSize ?? GPTQ_DEFAULTS.blockSize;
    if (opts.awqScales) p.awq_scales = true;
  }
  if (foldsChannelScales(methodOptionsOf(opts))) p.folds = FOLDS;
  return Object.keys(p).length > 0 ? p : undefined;
}

/** Check options before any work; returns the config to store. */
export function checkQuantizeOptions(opts: QuantizeOptions): QuantizationConfig {
  if (!(QUANT_METHODS as readonly string[]).includes(opts.method)) fail('--method', `unknown method '${opts.method}' (supported: ${QUANT_METHODS.join(', ')})`);
  if (opts.smooth !== undefined && !(opts.smooth >= 0 && opts.smooth <= 1)) fail('--smooth', `alpha must be in [0, 1] (got ${opts.smooth})`);
  if (opts.percdamp !== undefined && !(opts.percdamp >= 0 && opts.percdamp < 1)) fail('--percdamp', `must be in [0, 1) (got ${opts.percdamp})`);
  if (opts.awqScales && opts.method !== 'gptq') fail('--awq-scales', `applies to --method gptq (AWQ's scales before GPTQ), not ${opts.method}`);
  if (needsCalibration(methodOptionsOf(opts)) && !opts.calib)
    fail('--calib', `${opts.method}${opts.smooth !== undefined ? ' with --smooth' : ''} needs calibration text (--calib FILE)`);
  if (opts.wbits !== 4) fail('--wbits', `unsupported weight bits ${opts.wbits} (supported: 4)`);
  if (!(SUPPORTED_GROUPS as readonly number[]).includes(opts.group)) fail('--group', `unsupported group size ${opts.group} (use 32, 64, 128, 256 or -1)`);
  if (opts.abits !== 8 && opts.abits !== 16) fail('--abits', `unsupported activation bits ${opts.abits} (use 8 or 16)`);
  if (opts.scale !== 'int' && opts.scale !== 'float') fail('--scale', `expected int or float, got '${String(opts.scale)}'`);
  const params = methodParams(opts);
  return {
    quant_method: QUANT_METHOD, bits: 4, group_size: opts.group, sym: true, act_bits: opts.abits, scale: opts.scale,
    amplifier: opts.amplifier, method: opts.method as QuantMethodName, ...(params ? { method_params: params } : {}),
  };
}

/** Names (without `.weight`) of the linears to quantize, in layer order; fails on unsupported
 *  architectures. The directory was validated against its config (src/io/validate-model.ts). */
export function quantizableLinears(raw: Record<string, unknown>, config: ModelConfig, where: string): string[] {
  const type = raw['model_type'];
  if (!(SUPPORTED_MODEL_TYPES as readonly unknown[]).includes(type)) {
    fail(where, `unsupported architecture model_type=${JSON.stringify(type)} (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
  }
  return allProjections(config).map(([name]) => name);
}

/** Quantize one linear weight from a tensor source (non-finite weights are refused by name). */
export function quantizeLayer(src: TensorSource, name: string, opts: QuantizeOptions, calibrated?: QuantizedWeight): { layer: QuantizedLayer; report: IsLayerReport } {
  const info = src.info(`${name}.weight`);
  if (info.shape.length !== 2) fail(name, `expected a 2-D weight, got shape [${info.shape.join(', ')}]`);
  const [N, K] = info.shape as [number, number];
  resolveGroupSize(opts.group, K, name);
  const w = src.readF32(`${name}.weight`);
  const qw = calibrated ?? quantizeRtn(w, N, K, { group: opts.group, clip: opts.clip, name: `${name}.weight` });
  if (qw.outFeatures !== N || qw.inFeatures !== K) fail(name, `calibrated weight is ${qw.outFeatures}x${qw.inFeatures}, expected ${N}x${K}`);
  const is = computeIntegerScales(qw, opts.amplifier, name);
  // AWQ / SmoothQuant quantize W·diag(s), not W: their weight MSE is against s·q, not the source
  const folded = calibrated !== undefined && foldsChannelScales(methodOptionsOf(opts));
  return { layer: { name, qw, is }, report: integerScaleReport(name, qw, is, folded ? undefined : w) };
}

/**
 * Quantize the model in `srcDir` into `outDir` (which must not exist). The source is validated
 * against its config first; calls onLayer after each quantized linear and onNote for notices (a
 * removed leftover of an interrupted run). Nothing appears at `outDir` unless everything succeeded:
 * the work goes to a temp dir beside it, removed on error or SIGINT/SIGTERM (src/io/output-dir.ts).
 */
export async function writeQuantizedModel(srcDir: string, outDir: string, opts: QuantizeOptions,
                                          onLayer?: (report: IsLayerReport, index: number, total: number) => void,
                                          onNote?: (message: string) => void,
                                          onCalibLayer?: (note: LayerNote, total: number) => void): Promise<IsLayerReport[]> {
  const qconfig = checkQuantizeOptions(opts);
  if (outDir.trim() === '') fail('--out', 'must not be empty');
  const model = openValidatedModelDir(srcDir);
  const { raw, src } = model;
  let pending: PendingOutputDir | undefined;
  try {
    if (model.quant || raw['quantization_config'] !== undefined) fail(srcDir, 'is already quantized (config.json has quantization_config)');
    const linears = quantizableLinears(raw, model.config, srcDir);
    pending = beginOutputDir(outDir, onNote);
    const tmp = pending.tmp;
    const linearSet = new Set(linears.map((n) => `${n}.weight`));
    // calibrated methods: one decoder layer per step, its dense weights read when the step starts
    const steps = needsCalibration(methodOptionsOf(opts)) ? calibrationSteps(srcDir, model, opts) : undefined;
    // streaming: each layer's tensors go to the current shard as soon as they exist (at most one
    // shard, STREAM_SHARD_BYTES, is held); the per-layer checksums go into the last header and the index
    const writer = new ShardStreamWriter(tmp, { format: 'pt', quant_method: QUANT_METHOD }, opts.maxShardBytes ?? STREAM_SHARD_BYTES);
    const digests: Record<string, string> = {};
    const reports: IsLayerReport[] = [];
    const norms = new Map<string, Float32Array>(); // folded norms (small), written with the other dense tensors
    const emit = async (i: number, qw?: QuantizedWeight) => {
      const name = linears[i]!;
      const { layer, report } = quantizeLayer(src, name, opts, qw);
      const layerOut = layerTensors(layer);
      writer.add(layerOut);
      Object.defineProperty(digests, name, { value: layerDigest(layerOut), enumerable: true });
      reports.push(report);
      onLayer?.(report, i, linears.length);
      await yieldForSignals(); // SIGINT/SIGTERM between layers: the temp dir goes, exit 130/143
    };
    let next = 0;
    if (steps) {
      for (const step of steps) {
        onCalibLayer?.(step.note, model.config.nLayers);
        for (const [k, v] of step.norms) norms.set(k, v);
        const pre = `model.layers.${step.layer}.`;
        for (; next < linears.length && linears[next]!.startsWith(pre); next++) {
          const qw = step.weights.get(linears[next]!);
          if (!qw) fail(linears[next]!, 'was not quantized by the calibration pipeline');
          await emit(next, qw);
        }
      }
      if (next < linears.length) fail(linears[next]!, 'was not quantized by the calibration pipeline');
      collectDropped(); // the pipeline's activations (1 GiB at 7B and 128 × 512 windows), before the dense tensors are copied
    } else for (; next < linears.length; next++) await emit(next);
    for (const name of src.names()) {
      if (linearSet.has(name)) continue;
      const info = src.info(name);
      const data = src.read(name);
      if (FLOAT_DTYPES.includes(info.dtype)) assertFiniteTensor(name, toF32(info.dtype, data), info.shape[1] ?? info.shape[0]);
      const norm = norms.get(name);
      if (norm) writer.add([info.dtype === 'F16' ? { name, dtype: 'F16', shape: info.shape, data: f32ArrayToF16(norm) } : { name, dtype: 'F32', shape: info.shape, data: norm }]);
      else writer.add([{ name, dtype: info.dtype, shape: info.shape, data }]);
    }
    writer.finish({ [DIGEST_KEY]: JSON.stringify(digests) });
    const entries = withFsErrors(srcDir, () => fs.readdirSync(srcDir, { withFileTypes: true }), 'list the model directory');
    for (const entry of entries) {
      const skip = entry.name === 'config.json' || entry.name.endsWith('.safetensors') || entry.name === 'model.safetensors.index.json';
      if (!entry.isFile() || skip) continue;
      const from = path.join(srcDir, entry.name), to = path.join(tmp, entry.name);
      withFsErrors(undefined, () => fs.copyFileSync(from, to), `copy ${entry.name} into the output`);
      withFsErrors(to, () => fs.chmodSync(to, 0o644)); // sources may be read-only
    }
    const writeText = (file: string, text: string) => withFsErrors(file, () => fs.writeFileSync(file, text), 'write');
    writeText(path.join(tmp, 'config.json'), JSON.stringify({ ...raw, quantization_config: qconfig }, null, 2) + '\n');
    writeText(path.join(tmp, REPORT_FILE), JSON.stringify({ layers: reports }, null, 1) + '\n');
    await pending.commit();
    return reports;
  } catch (e) {
    await pending?.discard();
    throw pending ? pending.retell(e) : e;
  } finally {
    src.close();
  }
}

/** The calibration pipeline over the checkpoint's tensors, streaming (calib-source.ts): the
 *  tokenizer and windows first, then one decoder layer's dense fp32 weights per step. */
function calibrationSteps(srcDir: string, model: ValidatedModelDir, opts: QuantizeOptions): Iterable<LayerResult> {
  const c = model.config;
  const tokenizer = loadDirTokenizer(srcDir, c);
  const windows = loadCalibration(opts.calib!, tokenizer, c.bosId ?? tokenizer.bosId ?? 1, c.maxSeq);
  return calibrationLayers(tensorCalibrationSource(model.src, c), windows, methodOptionsOf(opts));
}
