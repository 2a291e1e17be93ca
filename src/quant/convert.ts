// `intscale convert`: an AutoGPTQ / AutoAWQ checkpoint → an intscale W4A8 checkpoint, without
// calibration. Exact when the source is symmetric (every zero point = 8) with natural groups
// (g_idx[k] = k/G: no act-order, or act-order with static groups): q = iw − 8 ∈ [−8, 7] (loaders
// accept −8), s = the source's fp16 scales, so W4A16 reproduces the source's dequantized weights
// bit for bit and the integer scales follow from s. Otherwise (asymmetric zero points, or
// act-order groups that are not contiguous) the source's dequantized weights s·(iw − z) are
// re-quantized symmetrically with the spec's RTN + clip search (fp16(absmax'/7) per natural group
// minimizing the squared error to them): lossy, reported per layer. An exact zero-point term
// (Σ_k q_x·z per group from per-group activation sums) would need a kernel change; not done.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../core/errors.ts';
import { openSafetensorsDir } from '../io/safetensors.ts';
import { ShardStreamWriter } from '../io/safetensors-stream.ts';
import { DIGEST_KEY, layerDigest } from '../io/qformat-digest.ts';
import { LINEAR_PATTERN, QUANT_METHOD, REPORT_FILE, layerTensors, readJson, type QuantizationConfig } from '../io/qformat.ts';
import { dequantizeForeign, foreignConfigOf, readForeignLinear, type ForeignConfig, type ForeignLinear } from '../io/autoquant.ts';
import { computeIntegerScales, type Amplifier } from './integer-scale.ts';
import { integerScaleReport, type IsLayerReport } from './is-report.ts';
import { quantizeRtn, type QuantizedWeight } from './rtn.ts';

export interface ConvertOptions {
  abits: 8 | 16;
  scale: 'int' | 'float';
  amplifier: Amplifier;
}

export interface ConvertedLinear {
  qw: QuantizedWeight;
  exact: boolean;
  /** mean squared difference to the source's dequantized weights (0 when exact) */
  mse: number;
}

/** Convert one foreign linear (see the header for when it is exact). */
export function convertLinear(l: ForeignLinear, cfg: ForeignConfig, name: string): ConvertedLinear {
  const G = l.K / l.groups;
  const natural = l.gIdx.every((g, k) => g === Math.floor(k / G));
  const sym = l.zeros.every((z) => z === 8);
  const group = l.groups === 1 ? -1 : G;
  if (natural && sym) {
    const q = new Int8Array(l.N * l.K);
    for (let i = 0; i < q.length; i++) q[i] = l.iw[i]! - 8;
    return { qw: { outFeatures: l.N, inFeatures: l.K, groupSize: G, q, scales: Float32Array.from(l.scales) }, exact: true, mse: 0 };
  }
  if (![32, 64, 128, 256, -1].includes(group)) fail(name, `group size ${G} is not supported for re-quantization`);
  const w = dequantizeForeign(l);
  const qw = quantizeRtn(w, l.N, l.K, { group, clip: true, name });
  let se = 0;
  const q = qw.q, s = qw.scales, groups = l.K / qw.groupSize;
  for (let n = 0; n < l.N; n++) for (let k = 0; k < l.K; k++) se += (q[n * l.K + k]! * s[n * groups + Math.floor(k / qw.groupSize)]! - w[n * l.K + k]!) ** 2;
  void cfg;
  return { qw, exact: false, mse: se / w.length };
}

export interface ConvertReport extends IsLayerReport {
  exact: boolean;
  source_mse: number;
}

/** Convert the checkpoint in srcDir into outDir (must not exist; written atomically). */
export function writeConvertedModel(srcDir: string, outDir: string, opts: ConvertOptions,
                                    onLayer?: (r: ConvertReport, i: number, total: number) => void): ConvertReport[] {
  const cfg = foreignConfigOf(srcDir);
  const config = readJson(path.join(srcDir, 'config.json'));
  if (fs.existsSync(outDir)) fail(outDir, 'already exists (choose a new --out directory)');
  const src = openSafetensorsDir(srcDir);
  const tmp = path.join(path.dirname(path.resolve(outDir)), `.${path.basename(outDir)}.tmp-${process.pid}`);
  try {
    const linears = src.names().filter((n) => n.endsWith('.qweight')).map((n) => n.slice(0, -'.qweight'.length))
      .filter((n) => LINEAR_PATTERN.test(`${n}.weight`));
    if (linears.length === 0) fail(srcDir, 'no quantized decoder linears (model.layers.N.*_proj.qweight) found');
    const foreignSuffixes = ['.qweight', '.qzeros', '.scales', '.g_idx'];
    fs.rmSync(tmp, { recursive: true, force: true });
    const writer = new ShardStreamWriter(tmp, { format: 'pt', quant_method: QUANT_METHOD }); // streaming: one shard held at most
    const reports: ConvertReport[] = [];
    const digests: Record<string, string> = {};
    linears.forEach((name, i) => {
      const c = convertLinear(readForeignLinear(src, name, cfg), cfg, name);
      const is = computeIntegerScales(c.qw, opts.amplifier, name);
      const layerOut = layerTensors({ name, qw: c.qw, is });
      writer.add(layerOut);
      Object.defineProperty(digests, name, { value: layerDigest(layerOut), enumerable: true });
      if (src.has(`${name}.bias`) && !/self_attn\.[qkv]_proj$/.test(name)) fail(name, 'has a bias, which intscale checkpoints do not carry for this projection');
      const r: ConvertReport = { ...integerScaleReport(name, c.qw, is), exact: c.exact, source_mse: c.mse };
      reports.push(r);
      onLayer?.(r, i, linears.length);
    });
    const linearSet = new Set(linears);
    for (const name of src.names()) {
      const base = foreignSuffixes.find((s) => name.endsWith(s));
      if (base && linearSet.has(name.slice(0, -base.length))) continue;
      const info = src.info(name);
      writer.add([{ name, dtype: info.dtype, shape: info.shape, data: src.read(name) }]);
    }
    const exact = reports.filter((r) => r.exact).length;
    const qconfig: QuantizationConfig = {
      quant_method: QUANT_METHOD, bits: 4, group_size: cfg.groupSize, sym: true, act_bits: opts.abits, scale: opts.scale, amplifier: opts.amplifier,
      method: cfg.format === 'autogptq' ? 'gptq' : 'awq',
      method_params: { converted_from: cfg.format, source_sym: cfg.sym, source_desc_act: cfg.descAct, exact_layers: exact, requantized_layers: reports.length - exact },
    };
    writer.finish({ [DIGEST_KEY]: JSON.stringify(digests) });
    for (const entry of fs.readdirSync(srcDir, { withFileTypes: true })) {
      const skip = ['config.json', 'quantize_config.json', 'model.safetensors.index.json'].includes(entry.name) || entry.name.endsWith('.safetensors');
      if (!entry.isFile() || skip) continue;
      fs.copyFileSync(path.join(srcDir, entry.name), path.join(tmp, entry.name));
      fs.chmodSync(path.join(tmp, entry.name), 0o644);
    }
    const { quantization_config: _old, ...rest } = config;
    fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify({ ...rest, quantization_config: qconfig }, null, 2) + '\n');
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
