// `intscale convert <dir> --out DIR`: an AutoGPTQ or AutoAWQ int4 checkpoint → an intscale W4A8
// checkpoint without calibration (src/quant/convert.ts says when it is exact), with progress per
// linear and a per-layer summary (exact or re-quantized, and the re-quantization's weight MSE).
import type { Command } from 'commander';
import { fail } from '../core/errors.ts';
import { progress } from '../core/progress.ts';
import { writeConvertedModel } from '../quant/convert.ts';
import { parseAmplifier } from '../quant/integer-scale.ts';
import { formatIsReportTable, precisionWarnings } from '../quant/is-report.ts';
import { parseIntOption } from './options.ts';

export function register(program: Command): void {
  program
    .command('convert')
    .description('convert an AutoGPTQ / AutoAWQ 4-bit checkpoint into an intscale W4A8 checkpoint (no calibration)')
    .argument('<dir>', 'AutoGPTQ or AutoAWQ model directory')
    .requiredOption('--out <dir>', 'output directory (must not exist)')
    .option('--abits <n>', 'activation bits at run time: 8 or 16', '8')
    .option('--scale <s>', 'scales used at run time: int or float', 'int')
    .option('--amplifier <a>', 'integer-scale amplifier: auto, layer or K', 'auto')
    .option('--json', 'print the per-layer report as JSON')
    .action((dir: string, o: Record<string, string | boolean>) => {
      const abits = parseIntOption('--abits', String(o['abits']));
      if (abits !== 8 && abits !== 16) fail('--abits', `unsupported activation bits ${abits} (use 8 or 16)`);
      const scale = String(o['scale']);
      if (scale !== 'int' && scale !== 'float') fail('--scale', `expected int or float, got '${scale}'`);
      let bar: ReturnType<typeof progress> | undefined;
      const reports = writeConvertedModel(dir, String(o['out']), { abits, scale, amplifier: parseAmplifier(String(o['amplifier'])) }, (_r, i, total) => {
        bar ??= progress('convert', total);
        bar.tick();
        if (i === total - 1) bar.done();
      });
      for (const w of precisionWarnings(reports)) process.stderr.write(`warning: ${w}\n`);
      const exact = reports.filter((r) => r.exact).length;
      if (o['json']) process.stdout.write(JSON.stringify({ layers: reports }, null, 1) + '\n');
      else {
        const worst = Math.max(0, ...reports.map((r) => r.source_mse));
        process.stdout.write(`${formatIsReportTable(reports)}\n${exact} of ${reports.length} linears converted exactly` +
          (exact < reports.length ? `, ${reports.length - exact} re-quantized symmetrically (worst weight MSE vs source ${worst.toExponential(3)})` : '') +
          `\nwrote ${String(o['out'])}\n`);
      }
    });
}
