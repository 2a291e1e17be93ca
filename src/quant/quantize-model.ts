// Quantizing a whole Hugging Face model directory into an intscale checkpoint (RTN W4 per group +
// integer scales): option checks, which linears to quantize, one layer at a time, and the write of
// the output directory through a temp dir (src/io/output-dir.ts; src/io/qformat.ts owns the format).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../core/errors.ts';
import { assertFiniteTensor } from '../core/finite.ts';
import { withFsErrors } from '../core/fs-errors.ts';
import { yieldForSignals } from '../core/interrupt.ts';
import type { ModelConfig } from '../model/config.ts';
import { writeSafetensorsSharded, type TensorSource, type TensorToWrite } from '../io/safetensors.ts';
import { toF32 } from '../io/safetensors-reader.ts';
import {
  QUANT_METHOD, REPORT_FILE, SUPPORTED_MODEL_TYPES, checkpointMetadata, layerTensors,
  type QuantizationConfig, type QuantizedLayer,
} from '../io/qformat.ts';
import { allProjections, FLOAT_DTYPES, openValidatedModelDir } from '../io/validate-model.ts';
import { beginOutputDir, type PendingOutputDir } from '../io/output-dir.ts';
import { quantizeRtn, resolveGroupSize, SUPPORTED_GROUPS } from './rtn.ts';
import { computeIntegerScales, type Amplifier } from './integer-scale.ts';
import { integerScaleReport, type IsLayerReport } from './is-report.ts';

export interface QuantizeOptions {
  method: string;
  wbits: number;
  group: number;
  abits: number;
  scale: 'int' | 'float';
  amplifier: Amplifier;
  clip: boolean;
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
export function quantizeLayer(src: TensorSource, name: string, opts: QuantizeOptions): { layer: QuantizedLayer; report: IsLayerReport } {
  const info = src.info(`${name}.weight`);
  if (info.shape.length !== 2) fail(name, `expected a 2-D weight, got shape [${info.shape.join(', ')}]`);
  const [N, K] = info.shape as [number, number];
  resolveGroupSize(opts.group, K, name);
  const w = src.readF32(`${name}.weight`);
  const qw = quantizeRtn(w, N, K, { group: opts.group, clip: opts.clip, name: `${name}.weight` });
  const is = computeIntegerScales(qw, opts.amplifier, name);
  return { layer: { name, qw, is }, report: integerScaleReport(name, qw, is, w) };
}

/**
 * Quantize the model in `srcDir` into `outDir` (which must not exist). The source is validated
 * against its config first; calls onLayer after each quantized linear and onNote for notices (a
 * removed leftover of an interrupted run). Nothing appears at `outDir` unless everything succeeded:
 * the work goes to a temp dir beside it, removed on error or SIGINT/SIGTERM (src/io/output-dir.ts).
 */
export async function writeQuantizedModel(srcDir: string, outDir: string, opts: QuantizeOptions,
                                          onLayer?: (report: IsLayerReport, index: number, total: number) => void,
                                          onNote?: (message: string) => void): Promise<IsLayerReport[]> {
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
    const tensors: TensorToWrite[] = [];
    const byLayer = new Map<string, TensorToWrite[]>();
    const reports: IsLayerReport[] = [];
    for (const [i, name] of linears.entries()) {
      const { layer, report } = quantizeLayer(src, name, opts);
      const layerOut = layerTensors(layer);
      tensors.push(...layerOut);
      byLayer.set(name, layerOut);
      reports.push(report);
      onLayer?.(report, i, linears.length);
      await yieldForSignals(); // SIGINT/SIGTERM between layers: the temp dir goes, exit 130/143
    }
    for (const name of src.names()) {
      if (linearSet.has(name)) continue;
      const info = src.info(name);
      const data = src.read(name);
      if (FLOAT_DTYPES.includes(info.dtype)) assertFiniteTensor(name, toF32(info.dtype, data), info.shape[1] ?? info.shape[0]);
      tensors.push({ name, dtype: info.dtype, shape: info.shape, data });
    }
    writeSafetensorsSharded(tmp, tensors, { metadata: checkpointMetadata(byLayer) });
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
