// The `sample` subcommand of `intscale bench`: host sampling time per row against the full-sort
// definition of its top-p rule, in the same run (src/bench/sampling.ts); optionally saved as JSON.
import type { Command } from 'commander';
import { parseIntOption, parseNumberOption } from './options.ts';
import { writeResultsJson } from './results-file.ts';
import { formatSamplingBench, runSamplingBench } from '../bench/sampling.ts';
import { currentCommit } from '../bench/gemm.ts';

export function registerBenchSample(bench: Command): void {
  bench
    .command('sample')
    .description('host sampling (generate, batch, serve) per row, against sorting the whole vocabulary, every draw compared')
    .option('--vocab <list>', 'vocabulary sizes, comma-separated', '32000,128256')
    .option('--sigma <list>', 'standard deviations of the random logits, comma-separated', '2,4')
    .option('--rows <n>', 'rows per setting (a decode step of that many sequences)', '16')
    .option('--reps <n>', 'timed passes over the rows', '3')
    .option('--json <file>', 'write {date, commit, rows, results} here')
    .action((o: { vocab: string; sigma: string; rows: string; reps: string; json?: string }) => {
      const vocab = o.vocab.split(',').map((v) => parseIntOption('--vocab', v.trim(), 1));
      const sigmas = o.sigma.split(',').map((v) => parseNumberOption('--sigma', v.trim()));
      const r = runSamplingBench({ vocab, sigmas, rows: parseIntOption('--rows', o.rows, 1), reps: parseIntOption('--reps', o.reps, 1), commit: currentCommit() });
      if (o.json) writeResultsJson(o.json, r);
      process.stdout.write(`${formatSamplingBench(r)}\n`);
    });
}
