// What `intscale convert` costs on docs-llama-30m (g128, persuasion.txt, first 4,088 tokens, ctx
// 512): source checkpoints written in exactly the AutoGPTQ (symmetric, v1) and AutoAWQ (asymmetric
// min/max, GEMM) layouts from RTN of the model, converted, then the perplexity of the source's
// dequantized weights (fp32 engine) against the converted checkpoint's W4A16 / W4A8-FS / W4A8-IS.
// Symmetric GPTQ converts exactly (the converted q·s equal the source's dequantized weights bit for
// bit); asymmetric AWQ is re-quantized symmetrically. Run: node --import tsx src/report/convert-cost.ts
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { roundToF16 } from '../core/dtype.ts';
import type { QuantMode } from '../core/modes.ts';
import { openSafetensorsDir, writeSafetensorsSharded, type TensorToWrite } from '../io/safetensors.ts';
import { dequantizeForeign, packForeignLinear, type ForeignConfig, type ForeignLinear } from '../io/autoquant.ts';
import { LINEAR_PATTERN } from '../io/qformat.ts';
import { loadModel } from '../model/load.ts';
import { denseLinear, mapLinears } from '../model/weights.ts';
import type { Linear } from '../model/linear.ts';
import { perplexity } from '../eval/perplexity.ts';
import { writeConvertedModel } from '../quant/convert.ts';
import { loadQuantizedLinears } from '../quant/quantized-linears.ts';
import { quantizeRtn } from '../quant/rtn.ts';

const SHARED = path.resolve(import.meta.dirname, '../../../shared');
const MODEL = path.join(SHARED, 'models/docs-llama-30m');
const G = 128;

function symmetric(w: Float32Array, N: number, K: number): ForeignLinear {
  const r = quantizeRtn(w, N, K, { group: G });
  return { N, K, groups: K / G, iw: Uint8Array.from(r.q, (q) => q + 8), zeros: new Uint8Array(N * (K / G)).fill(8), scales: r.scales, gIdx: Int32Array.from({ length: K }, (_, k) => Math.floor(k / G)) };
}

/** AutoAWQ's asymmetric min/max rule: s = fp16((max−min)/15), z = round(−min/s), iw = clamp(round(w/s)+z, 0, 15). */
function asymmetric(w: Float32Array, N: number, K: number): ForeignLinear {
  const groups = K / G, iw = new Uint8Array(N * K), zeros = new Uint8Array(N * groups), scales = new Float32Array(N * groups);
  for (let n = 0; n < N; n++)
    for (let g = 0; g < groups; g++) {
      let lo = Infinity, hi = -Infinity;
      for (let k = g * G; k < (g + 1) * G; k++) { lo = Math.min(lo, w[n * K + k]!); hi = Math.max(hi, w[n * K + k]!); }
      const s = roundToF16(Math.max(hi - lo, 1e-5) / 15), z = Math.min(15, Math.max(0, Math.round(-lo / s)));
      scales[n * groups + g] = s;
      zeros[n * groups + g] = z;
      for (let k = g * G; k < (g + 1) * G; k++) iw[n * K + k] = Math.min(15, Math.max(0, Math.round(w[n * K + k]! / s) + z));
    }
  return { N, K, groups, iw, zeros, scales, gIdx: Int32Array.from({ length: K }, (_, k) => Math.floor(k / G)) };
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-convert-cost-'));
try {
  const model = loadModel(MODEL);
  const ids = model.tokenizer.encode(fs.readFileSync(path.join(SHARED, 'data/eval/persuasion.txt'), 'utf8')).slice(0, 4088);
  const src = openSafetensorsDir(MODEL);
  const originals = new Map<string, Linear>();
  mapLinears(model.weights, (name, l) => { originals.set(name, l); return l; });
  const rows: Record<string, unknown>[] = [];
  for (const [fmt, cfgJson, cfg, make] of [
    ['autogptq', { quant_method: 'gptq', bits: 4, group_size: G, sym: true, desc_act: false, checkpoint_format: 'gptq' }, { format: 'autogptq', bits: 4, groupSize: G, sym: true, descAct: false, zeroOffset: 1 }, symmetric],
    ['autoawq', { quant_method: 'awq', bits: 4, group_size: G, zero_point: true, version: 'gemm' }, { format: 'autoawq', bits: 4, groupSize: G, sym: false, descAct: false, zeroOffset: 0 }, asymmetric],
  ] as const) {
    const dir = path.join(tmp, fmt);
    const tensors: TensorToWrite[] = [];
    const deq = new Map<string, Float32Array>();
    for (const name of src.names()) {
      if (!LINEAR_PATTERN.test(name)) { const i = src.info(name); tensors.push({ name, dtype: i.dtype, shape: i.shape, data: src.read(name) }); continue; }
      const base = name.slice(0, -'.weight'.length), [N, K] = src.info(name).shape as [number, number];
      const f = make(src.readF32(name), N, K);
      deq.set(base, dequantizeForeign(f));
      tensors.push(...packForeignLinear(base, f, cfg as ForeignConfig, fmt === 'autogptq'));
    }
    writeSafetensorsSharded(dir, tensors);
    const config = JSON.parse(fs.readFileSync(path.join(MODEL, 'config.json'), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, quantization_config: cfgJson }));
    fs.copyFileSync(path.join(MODEL, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    const out = path.join(tmp, `${fmt}-intscale`);
    const reports = writeConvertedModel(dir, out, { abits: 8, scale: 'int', amplifier: 'auto' });
    const dense: Linear[] = [];
    mapLinears(model.weights, (name, l) => { const w = deq.get(name)!; const d = denseLinear(w, l.outFeatures, l.inFeatures); dense.push(d); return d; });
    const srcPpl = perplexity(model, ids).ppl;
    for (const d of dense) (d as { release?: () => void }).release?.();
    const row: Record<string, unknown> = { source: fmt, exact_layers: reports.filter((r) => r.exact).length, layers: reports.length, source_dequantized_fp32: srcPpl };
    for (const mode of ['w4a16', 'w4a8-fs', 'w4a8-is'] as QuantMode[]) {
      const ql = loadQuantizedLinears(out, mode);
      mapLinears(model.weights, (name) => ql.get(name)!);
      row[mode] = perplexity(model, ids).ppl;
      mapLinears(model.weights, (name) => originals.get(name)!);
      for (const l of ql.values()) l.dispose?.();
    }
    rows.push(row);
    process.stderr.write(`${JSON.stringify(row)}\n`);
  }
  src.close();
  process.stdout.write(JSON.stringify({ text: 'persuasion.txt', tokens: 4088, group: G, rows }, null, 1) + '\n');
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.exit(0);
