// `intscale demo`: with no arguments, quantize the default model (env INTSCALE_MODEL, else
// ../shared/models/docs-llama-30m next to the repo) to a temporary checkpoint (RTN g128, integer
// scales, auto amplifier), show its integer-scale summary, and print the compare table on the first
// 4,088 tokens of ../shared/data/eval/persuasion.txt (env INTSCALE_TEXT overrides the text).
// The temporary checkpoint is removed on success, error and interruption.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { fail } from '../core/errors.ts';
import { withFsErrors } from '../core/fs-errors.ts';
import { removeOnInterrupt } from '../core/interrupt.ts';
import { progress, type Progress } from '../core/progress.ts';
import { writeQuantizedModel } from '../quant/quantize-model.ts';
import { formatCompareTable } from '../eval/compare.ts';
import { plotCompare, runCompare } from './compare.ts';
import { checkPlotTarget } from './options.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const DEMO_TOKENS = 4088;
export const DEMO_GROUP = 128;

export function defaultModelDir(): string | undefined {
  const env = process.env['INTSCALE_MODEL'];
  if (env) return env;
  const shared = path.resolve(REPO_ROOT, '../shared/models/docs-llama-30m');
  return fs.existsSync(path.join(shared, 'config.json')) ? shared : undefined;
}

export function defaultTextFile(): string | undefined {
  const env = process.env['INTSCALE_TEXT'];
  if (env) return env;
  const shared = path.resolve(REPO_ROOT, '../shared/data/eval/persuasion.txt');
  return fs.existsSync(shared) ? shared : undefined;
}

export function register(program: Command): void {
  program
    .command('demo')
    .description('quantize the default model and compare fp16 / w4a16 / w4a8-fs / w4a8-is perplexity')
    .option('--plot <png>', 'also write the perplexity bar chart (a new file)')
    .option('--force', 'let --plot overwrite an existing file')
    .action(async (o: { plot?: string; force?: boolean }) => {
      const modelDir = defaultModelDir();
      if (!modelDir) {
        fail('demo', 'no model found: set INTSCALE_MODEL=/path/to/hf-llama-dir (or put docs-llama-30m at ../shared/models/docs-llama-30m next to the repo)');
      }
      const textFile = defaultTextFile();
      if (!textFile) fail('demo', 'no evaluation text found: set INTSCALE_TEXT=/path/to/file.txt (or provide ../shared/data/eval/persuasion.txt)');

      if (o.plot) checkPlotTarget(o.plot, o.force === true);

      // the temporary checkpoint goes on every exit: success, error, SIGINT/SIGTERM (src/core/interrupt.ts)
      const tmp = withFsErrors(os.tmpdir(), () => fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-demo-')), 'create a temporary directory');
      const guard = removeOnInterrupt(tmp);
      try {
        const out = path.join(tmp, 'w4-g128-is');
        let bar: Progress | undefined;
        const reports = await writeQuantizedModel(modelDir, out, { method: 'rtn', wbits: 4, group: DEMO_GROUP, abits: 8, scale: 'int', amplifier: 'auto', clip: false }, (_r, i, total) => {
          bar ??= progress('quantize', total);
          bar.tick();
          if (i === total - 1) bar.done();
        });
        const kMin = Math.min(...reports.map((r) => r.k_min)), kMax = Math.max(...reports.map((r) => r.k_max));
        const bits = Math.max(...reports.map((r) => r.iscale_bits));
        const headroom = Math.max(...reports.map((r) => r.headroom));
        const relErr = reports.reduce((s, r) => s + r.rel_err, 0) / reports.length;
        process.stdout.write(`${path.basename(modelDir)}: ${reports.length} linears quantized to W4 g${DEMO_GROUP} with integer scales\n`);
        process.stdout.write(`  shifts k in [${kMin}, ${kMax}], |ŝ| ≤ ${bits} bits, worst-case |acc| ≤ ${(100 * headroom).toFixed(1)}% of 2^31 (proven overflow-free), mean |ŝ·2^-k − s|/s = ${relErr.toExponential(2)}\n`);
      } finally {
        try {
          fs.rmSync(tmp, { recursive: true, force: true });
        } catch {
          process.stderr.write(`warning: could not remove the temporary checkpoint ${tmp}\n`);
        }
        await guard.release();
      }

      const rows = runCompare({ modelDir, textFile, group: DEMO_GROUP, maxTokens: DEMO_TOKENS, clip: false, amplifier: 'auto' });
      process.stdout.write(`perplexity on the first ${rows[0]?.tokens ?? DEMO_TOKENS} tokens of ${path.basename(textFile)}:\n${formatCompareTable(rows)}\n`);
      if (o.plot) {
        await plotCompare(rows, o.plot, `${path.basename(modelDir)}: perplexity, RTN g${DEMO_GROUP}`, o.force === true);
        process.stdout.write(`wrote ${o.plot}\n`);
      }
    });
}
