// `intscale bench <what>`: benchmarks, one subcommand each. `cpu` times the CPU engine
// (src/bench/cpu.ts); GPU benchmarks add their own `.command(...)` block below.
import type { Command } from 'commander';
import { parseIntOption } from './options.ts';
import { benchCpu } from '../bench/cpu.ts';
import { loadModelWithProgress } from '../model/load.ts';
import { registerBenchGemm } from './bench-gemm.ts';
import { registerBenchE2e } from './bench-e2e.ts';
import { registerBenchGptq } from './bench-gptq.ts';
import { registerBenchServe } from './bench-serve.ts';
import { registerBenchSample } from './bench-sample.ts';

export function register(program: Command): void {
  const bench = program.command('bench').description('benchmarks (cpu: the CPU engine; gemm: GPU GEMMs; e2e: the GPU engine; gptq: GPTQ of one layer on the GPU; serve: continuous batching; sample: host sampling)');

  bench
    .command('cpu')
    .description('prefill and decode tokens/s of the CPU engine')
    .requiredOption('--model <dir>', 'model directory or llama2.c .bin')
    .option('--prefill <n>', 'prefill chunk length', '512')
    .option('--decode <n>', 'decode steps', '128')
    .option('--runs <n>', 'timed prefill runs (median reported)', '3')
    .option('--batch <n>', 'sequences decoded together (one batched forward per step)', '1')
    .option('--json', 'print one JSON object on stdout')
    .action((opts: { model: string; prefill: string; decode: string; runs: string; batch: string; json?: boolean }) => {
      const prefill = parseIntOption('--prefill', opts.prefill, 1), decode = parseIntOption('--decode', opts.decode, 1);
      const runs = parseIntOption('--runs', opts.runs, 1), batch = parseIntOption('--batch', opts.batch, 1);
      const model = loadModelWithProgress(opts.model);
      const r = benchCpu(model, opts.model, {
        prefill, decode, runs, batch,
        onStage: (s) => { if (process.env.INTSCALE_QUIET !== '1') process.stderr.write(`bench cpu: ${s}\n`); },
      });
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(r)}\n`);
        return;
      }
      process.stdout.write(
        `model    ${r.model} (${r.threads} threads)\n` +
        `prefill  ${r.prefillTokensPerSecond.toFixed(1)} tokens/s (${r.prefillTokens}-token chunk, median of ${r.prefillRuns.length})\n` +
        `decode   ${r.decodeTokensPerSecond.toFixed(1)} tokens/s (${r.batch === 1 ? `${r.decodeTokens} tokens` : `${r.decodeTokens} steps × batch of ${r.batch}`})\n`);
    });

  registerBenchGemm(bench); // `bench gemm`: GPU GEMM timings (src/cli/bench-gemm.ts)
  registerBenchE2e(bench); // `bench e2e`: the GPU engine end to end (src/cli/bench-e2e.ts)
  registerBenchGptq(bench); // `bench gptq`: one decoder layer's GPTQ on the GPU (src/cli/bench-gptq.ts)
  registerBenchServe(bench); // `bench serve`: continuous against static batching, CPU or GPU (src/cli/bench-serve.ts)
  registerBenchSample(bench); // `bench sample`: host sampling against the full-sort definition (src/cli/bench-sample.ts)
}
