// Quantizing a whole Hugging Face model directory into an intscale checkpoint (RTN W4 per group +
// integer scales): option checks, which linears to quantize, one layer at a time, and the atomic
// write of the output directory (src/io/qformat.ts owns the tensors' format).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../core/errors.ts';
import { openSafetensorsDir, writeSafetensorsSharded, type TensorSource, type TensorToWrite } from '../io/safetensors.ts';
import {
  LINEAR_PATTERN, QUANT_METHOD, REPORT_FILE, SUPPORTED_MODEL_TYPES, layerTensors, readJson,
  type QuantizationConfig, type QuantizedLayer,
} from '../io/qformat.ts';
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
