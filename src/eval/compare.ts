// Perplexity of one model under every weight/activation mode (src/core/modes.ts), same quantization
// for all: fp16 (the checkpoint's fp16 weights, fp32 compute), w4a16, w4a8-fs, w4a8-is (and w4a8-pc
// for per-channel), one row each with the relative change vs fp16. Quantizes in memory once (RTN +
// integer scales), then swaps the projections per mode with mapLinears and restores them after.
// compareMethods does the same for several methods (RTN, GPTQ, AWQ, optionally SmoothQuant, from
// calibration windows through src/quant/calibrate.ts): fp16 once, then every method × mode.
import { fail } from '../core/errors.ts';
import type { Mode } from '../core/modes.ts';
import type { Model } from '../model/llama.ts';
import type { Linear } from '../model/linear.ts';
import { mapLinears } from '../model/weights.ts';
import { perplexity } from './perplexity.ts';
import { quantizeRtn } from '../quant/rtn.ts';
import { computeIntegerScales, type Amplifier } from '../quant/integer-scale.ts';
import { integerScaleReport, type IsLayerReport } from '../quant/is-report.ts';
import type { QuantizedLayer } from '../io/qformat.ts';
import { calibrateModel, needsCalibration, type LayerNote, type MethodOptions } from '../quant/calibrate.ts';
import { installQuantized, withIntegerScales } from '../quant/install-quantized.ts';

export interface CompareOptions {
  group: number;
  ctx?: number;
  maxTokens?: number;
  clip?: boolean;
  amplifier?: Amplifier;
  /** Default: fp16, w4a16, w4a8-fs, w4a8-is (+ w4a8-pc when group = -1). */
  modes?: Mode[];
  /** Progress per mode: tokens scored of total. */
  onProgress?: (mode: Mode, scored: number, total: number) => void;
}

export interface CompareRow {
  mode: Mode;
  method: string;
  group: number;
  ppl: number;
  /** (ppl − ppl_fp16) / ppl_fp16, when fp16 was measured. */
  rel_vs_fp16: number | null;
  tokens: number;
  seconds: number;
}

export function defaultModes(group: number): Mode[] {
  return group === -1 ? ['fp16', 'w4a16', 'w4a8-fs', 'w4a8-is', 'w4a8-pc'] : ['fp16', 'w4a16', 'w4a8-fs', 'w4a8-is'];
}

/** Quantize every projection of a dense model in memory (RTN + integer scales). */
export function quantizeModelInMemory(model: Model, group: number, clip: boolean, amplifier: Amplifier):
    { layers: Map<string, QuantizedLayer>; reports: IsLayerReport[]; originals: Map<string, Linear> } {
  const layers = new Map<string, QuantizedLayer>();
  const reports: IsLayerReport[] = [];
  const originals = new Map<string, Linear>();
  mapLinears(model.weights, (name, linear, raw) => {
    if (!raw) fail(name, 'is not a dense fp32 linear (compare needs the original, unquantized model)');
    const qw = quantizeRtn(raw, linear.outFeatures, linear.inFeatures, { group, clip, name });
    const is = computeIntegerScales(qw, amplifier, name);
    layers.set(name, { name, qw, is });
    reports.push(integerScaleReport(name, qw, is, raw));
    originals.set(name, linear);
    return linear;
  });
  return { layers, reports, originals };
}

/** Run the perplexity of `ids` under each mode (RTN, in memory). The model's linears are restored afterwards. */
export function compareModes(model: Model, ids: readonly number[], opts: CompareOptions): { rows: CompareRow[]; reports: IsLayerReport[] } {
  const modes = opts.modes ?? defaultModes(opts.group);
  const { layers, reports } = quantizeModelInMemory(model, opts.group, opts.clip ?? false, opts.amplifier ?? 'auto');
  const q: QuantizedModelInMemory = { label: 'rtn', group: opts.group, layers, norms: new Map(), seconds: 0 };
  const rows = measureModes(model, ids, q, modes, {
    ...(opts.ctx !== undefined ? { ctx: opts.ctx } : {}),
    ...(opts.maxTokens !== undefined ? { maxTokens: opts.maxTokens } : {}),
    onProgress: (_label, mode, scored, total) => opts.onProgress?.(mode, scored, total),
  });
  return { rows, reports };
}

/** The compare table as aligned text. */
export function formatCompareTable(rows: CompareRow[]): string {
  const head = ['mode', 'method', 'group', 'ppl', 'vs fp16', 'time'];
  const cells = rows.map((r) => [
    r.mode, r.method, r.group === -1 ? 'per-ch' : String(r.group), r.ppl.toFixed(4),
    r.rel_vs_fp16 === null ? '-' : `${r.rel_vs_fp16 >= 0 ? '+' : ''}${(100 * r.rel_vs_fp16).toFixed(2)}%`, `${r.seconds.toFixed(1)} s`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((v, i) => (i < 2 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ');
  return [line(head), ...cells.map(line)].join('\n');
}

/** One quantization of the model in memory: its layers (with integer scales) and replaced norms. */
export interface QuantizedModelInMemory {
  label: string;
  group: number;
  layers: Map<string, QuantizedLayer>;
  norms: Map<string, Float32Array>;
  /** seconds spent quantizing (calibration included) */
  seconds: number;
}

/** A method's label in tables: rtn, gptq, awq; awq+gptq for GPTQ after AWQ's scales, +clip for GPTQ's clip search, +sq<α> for SmoothQuant. */
export function methodLabel(o: MethodOptions): string {
  const gptq = o.method === 'gptq';
  return `${gptq && o.awqScales ? 'awq+' : ''}${o.method}${gptq && o.clip ? '+clip' : ''}${o.smooth !== undefined ? `+sq${o.smooth}` : ''}`;
}

/** Quantize a dense model in memory with a method (calibrated ones need `windows`); the model is not changed. */
export function quantizeWithMethod(model: Model, o: MethodOptions, windows: readonly (readonly number[])[] | undefined,
                                   amplifier: Amplifier, onLayer?: (note: LayerNote, total: number) => void): QuantizedModelInMemory {
  const started = performance.now();
  const label = methodLabel(o);
  if (!needsCalibration(o)) {
    const { layers } = quantizeModelInMemory(model, o.group, o.clip ?? false, amplifier);
    return { label, group: o.group, layers, norms: new Map(), seconds: (performance.now() - started) / 1000 };
  }
  if (!windows) fail(label, 'needs calibration windows (--calib FILE)');
  const r = calibrateModel(model, windows, o, onLayer);
  return { label, group: o.group, layers: withIntegerScales(r.weights, amplifier), norms: r.norms, seconds: (performance.now() - started) / 1000 };
}

/** Perplexity of `ids` with a quantized model in each of `modes` (fp16 = the dense model). */
export function measureModes(model: Model, ids: readonly number[], q: QuantizedModelInMemory | undefined, modes: Mode[],
                             opts: { ctx?: number; maxTokens?: number; fp16?: number; onProgress?: (label: string, mode: Mode, scored: number, total: number) => void }): CompareRow[] {
  const rows: CompareRow[] = [];
  let fp16 = opts.fp16;
  for (const mode of modes) {
    if (mode !== 'fp16' && !q) fail(mode, 'no quantized model to measure');
    const restore = mode === 'fp16' ? () => {} : installQuantized(model, q!.layers, q!.norms, mode);
    const started = performance.now();
    let r: ReturnType<typeof perplexity>;
    try {
      r = perplexity(model, ids, {
        ...(opts.ctx !== undefined ? { ctx: opts.ctx } : {}),
        ...(opts.maxTokens !== undefined ? { maxTokens: opts.maxTokens } : {}),
        onProgress: (scored, total) => opts.onProgress?.(mode === 'fp16' ? '-' : q!.label, mode, scored, total),
      });
    } finally {
      restore();
    }
    if (mode === 'fp16') fp16 = r.ppl;
    rows.push({
      mode, method: mode === 'fp16' ? '-' : q!.label, group: mode === 'fp16' ? (q?.group ?? 0) : q!.group, ppl: r.ppl,
      rel_vs_fp16: fp16 === undefined ? null : (r.ppl - fp16) / fp16, tokens: r.tokens, seconds: (performance.now() - started) / 1000,
    });
  }
  return rows;
}

/** fp16 once, then each method's modes (default w4a16, w4a8-fs, w4a8-is; + w4a8-pc per channel). */
export function compareMethods(model: Model, ids: readonly number[], methods: MethodOptions[], opts: {
  windows?: readonly (readonly number[])[]; amplifier?: Amplifier; ctx?: number; maxTokens?: number; modes?: Mode[];
  onProgress?: (label: string, mode: Mode, scored: number, total: number) => void;
  onLayer?: (label: string, note: LayerNote, total: number) => void;
}): CompareRow[] {
  const common = { ...(opts.ctx !== undefined ? { ctx: opts.ctx } : {}), ...(opts.maxTokens !== undefined ? { maxTokens: opts.maxTokens } : {}), ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) };
  const rows = measureModes(model, ids, undefined, ['fp16'], common);
  const fp16 = rows[0]!.ppl;
  rows[0]!.group = methods[0]?.group ?? 0;
  for (const m of methods) {
    const q = quantizeWithMethod(model, m, opts.windows, opts.amplifier ?? 'auto', (note, total) => opts.onLayer?.(methodLabel(m), note, total));
    const modes = (opts.modes ?? defaultModes(m.group)).filter((x) => x !== 'fp16');
    rows.push(...measureModes(model, ids, q, modes, { ...common, fp16 }));
  }
  return rows;
}
