// `intscale inspect <dir> [--json]`: per-layer integer-scale report of a quantized checkpoint,
// recomputed from its tensors after the loader's full validation (config against tensors, every
// layer present, ŝ against the float scales, the int32 bound, checksums). The weight MSEs against
// the original weights cannot be recomputed (the original is not in the checkpoint): they come from
// quantization_report.json only for layers whose recorded shifts, ŝ and headroom match the tensors;
// a malformed or stale report is a warning, and those MSEs are shown as '-'.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { fail, IntscaleError } from '../core/errors.ts';
import { readJson, readQuantizedLayer, REPORT_FILE } from '../io/qformat.ts';
import { allProjections, openValidatedModelDir } from '../io/validate-model.ts';
import { formatIsReportTable, integerScaleReport, precisionWarnings, type IsLayerReport } from '../quant/is-report.ts';

export interface InspectResult {
  config: Record<string, unknown>;
  layers: IsLayerReport[];
  /** problems with quantization_report.json (its values were not used where they disagree) */
  warnings: string[];
}

/** The recorded MSEs of `name`, when the report's recomputable fields agree with the tensors. */
function recordedMse(recorded: unknown, fresh: IsLayerReport): { mse_is: number; mse_fs: number } | undefined {
  if (typeof recorded !== 'object' || recorded === null) return undefined;
  const r = recorded as Record<string, unknown>;
  const same = (key: keyof IsLayerReport) => typeof r[key] === 'number' && Math.abs((r[key] as number) - (fresh[key] as number)) <= 1e-9 * Math.max(1, Math.abs(fresh[key] as number));
  if (!(['k_min', 'k_max', 'iscale_max', 'headroom', 'rel_err', 'zero_scales'] as const).every(same)) return undefined;
  const mseIs = r['mse_is'], mseFs = r['mse_fs'];
  if (typeof mseIs !== 'number' || typeof mseFs !== 'number' || !(mseIs >= 0) || !(mseFs >= 0)) return undefined;
  return { mse_is: mseIs, mse_fs: mseFs };
}

/** The report's layers by name, or a warning why it cannot be used. */
function readReport(dir: string): { byName: Map<string, unknown>; warning?: string } {
  const file = path.join(dir, REPORT_FILE);
  if (!fs.existsSync(file)) return { byName: new Map(), warning: `${file}: missing; weight MSEs vs the original weights are not shown` };
  try {
    const layers = readJson(file)['layers'];
    if (!Array.isArray(layers)) return { byName: new Map(), warning: `${file}: no "layers" array; weight MSEs are not shown` };
    const byName = new Map<string, unknown>();
    for (const l of layers) if (typeof l === 'object' && l !== null && typeof (l as { name?: unknown }).name === 'string') byName.set((l as { name: string }).name, l);
    return { byName };
  } catch (e) {
    if (e instanceof IntscaleError) return { byName: new Map(), warning: `${e.message}; weight MSEs are not shown` };
    throw e;
  }
}

export function inspectQuantized(dir: string): InspectResult {
  const { config, quant, src } = openValidatedModelDir(dir);
  try {
    if (!quant) fail(path.join(dir, 'config.json'), 'has no quantization_config (not an intscale checkpoint)');
    const report = readReport(dir);
    const warnings = report.warning ? [report.warning] : [];
    let stale = 0;
    const layers = allProjections(config).map(([name]) => {
      const layer = readQuantizedLayer(src, name, quant);
      const fresh = integerScaleReport(name, layer.qw, layer.is);
      const recorded = recordedMse(report.byName.get(name), fresh);
      if (!report.warning && !recorded) stale++;
      return { ...fresh, mse_is: recorded?.mse_is ?? null, mse_fs: recorded?.mse_fs ?? null };
    });
    if (stale) warnings.push(`${path.join(dir, REPORT_FILE)}: ${stale} layer(s) missing or not matching the tensors (stale or edited); their weight MSEs are not shown`);
    return { config: quant as unknown as Record<string, unknown>, layers, warnings };
  } finally {
    src.close();
  }
}

export function register(program: Command): void {
  program
    .command('inspect')
    .description('per-layer integer-scale report of a quantized checkpoint (shifts, ŝ bits, headroom, errors)')
    .argument('<dir>', 'quantized checkpoint directory')
    .option('--json', 'print JSON {"layers":[...]}')
    .action((dir: string, o: { json?: boolean }) => {
      const { config, layers, warnings } = inspectQuantized(dir);
      for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
      if (o.json) {
        const out = layers.map((l) => ({ name: l.name, k_min: l.k_min, k_max: l.k_max, iscale_max: l.iscale_max, iscale_bits: l.iscale_bits, headroom: l.headroom, rel_err: l.rel_err, mse_is: l.mse_is, mse_fs: l.mse_fs, coarse_scales: l.coarse_scales, zero_scales: l.zero_scales }));
        process.stdout.write(JSON.stringify({ quantization_config: config, layers: out }, null, 1) + '\n');
        return;
      }
      process.stdout.write(`${dir}: ${JSON.stringify(config)}\n${formatIsReportTable(layers)}\n`);
      for (const w of precisionWarnings(layers)) process.stdout.write(`warning: ${w}\n`);
      const worst = layers.reduce((m, l) => Math.max(m, l.headroom), 0);
      process.stdout.write(`worst-case |acc| / 2^31 over all layers: ${worst.toFixed(4)} (< 1: proven overflow-free; recomputed from the tensors)\n`);
    });
}
