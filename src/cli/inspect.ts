// `intscale inspect <dir> [--json]`: per-layer integer-scale report of a quantized checkpoint,
// recomputed from its tensors (the bound is re-checked); weight MSEs come from the quantizer's
// report file when present (the original weights are not in the checkpoint).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { fail } from '../core/errors.ts';
import { openSafetensorsDir } from '../io/safetensors.ts';
import { quantizationConfigOf, quantizedLayerNames, readJson, readQuantizedLayer, REPORT_FILE } from '../io/qformat.ts';
import { formatIsReportTable, integerScaleReport, precisionWarnings, type IsLayerReport } from '../quant/is-report.ts';

export function inspectQuantized(dir: string): { config: Record<string, unknown>; layers: IsLayerReport[] } {
  const configFile = path.join(dir, 'config.json');
  const q = quantizationConfigOf(readJson(configFile), configFile);
  if (!q) fail(configFile, 'has no quantization_config (not an intscale checkpoint)');
  const saved = new Map<string, IsLayerReport>();
  const reportFile = path.join(dir, REPORT_FILE);
  if (fs.existsSync(reportFile)) {
    const layers = readJson(reportFile)['layers'];
    if (Array.isArray(layers)) for (const l of layers as IsLayerReport[]) saved.set(l.name, l);
  }
  const src = openSafetensorsDir(dir);
  try {
    const layers = quantizedLayerNames(src).map((name) => {
      const layer = readQuantizedLayer(src, name, q.group_size);
      const r = integerScaleReport(name, layer.qw, layer.is);
      const s = saved.get(name);
      return { ...r, mse_is: s ? s.mse_is : null, mse_fs: s ? s.mse_fs : null };
    });
    return { config: q as unknown as Record<string, unknown>, layers };
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
      const { config, layers } = inspectQuantized(dir);
      if (o.json) {
        const out = layers.map((l) => ({ name: l.name, k_min: l.k_min, k_max: l.k_max, iscale_max: l.iscale_max, iscale_bits: l.iscale_bits, headroom: l.headroom, rel_err: l.rel_err, mse_is: l.mse_is, mse_fs: l.mse_fs, coarse_scales: l.coarse_scales, zero_scales: l.zero_scales }));
        process.stdout.write(JSON.stringify({ quantization_config: config, layers: out }, null, 1) + '\n');
        return;
      }
      process.stdout.write(`${dir}: ${JSON.stringify(config)}\n${formatIsReportTable(layers)}\n`);
      for (const w of precisionWarnings(layers)) process.stdout.write(`warning: ${w}\n`);
      const worst = layers.reduce((m, l) => Math.max(m, l.headroom), 0);
      process.stdout.write(`worst-case |acc| / 2^31 over all layers: ${worst.toFixed(4)} (< 1: proven overflow-free)\n`);
    });
}
