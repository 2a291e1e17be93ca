// The `gptq` subcommand of `intscale bench`: one shape-true decoder layer's GPTQ on the GPU
// (src/bench/gptq.ts), per-stage seconds as a table, optionally saved as JSON.
import type { Command } from 'commander';
import { parseGroupOption, parseIntOption } from './options.ts';
import { writeResultsJson } from './results-file.ts';
import { formatGptqBench, runGptqBench } from '../bench/gptq.ts';
import { archPreset } from '../model/arch-presets.ts';
import { Gpu } from '../gpu/runtime.ts';

export function registerBenchGptq(bench: Command): void {
  bench
    .command('gptq')
    .description("time one decoder layer's GPTQ on the GPU (Hessian, factor, column loop) from random shape-true activations")
    .option('--arch <name>', 'architecture: llama2-7b, llama2-13b, llama3-8b, mistral-7b', 'llama2-7b')
    .option('--tokens <n>', 'calibration tokens (samples × length)', String(128 * 512))
    .option('--group <n>', 'group size: 32, 64, 128, 256 or -1 (per channel)', '128')
    .option('--no-act-order', 'natural column order (default: act-order with static groups, as quantize)')
    .option('--runs <n>', 'times the layer is run (the first also builds the GEMM plans)', '2')
    .option('--json <file>', 'write {device, date, commit, arch, tokens, group, actOrder, runs} here')
    .action((o: { arch: string; tokens: string; group: string; actOrder: boolean; runs: string; json?: string }) => {
      archPreset(o.arch);
      const tokens = parseIntOption('--tokens', o.tokens, 1), group = parseGroupOption(o.group), runs = parseIntOption('--runs', o.runs, 1);
      const gpu = Gpu.open();
      const quiet = process.env['INTSCALE_QUIET'] === '1';
      const r = runGptqBench(gpu, { arch: o.arch, tokens, group, actOrder: o.actOrder !== false, runs },
        (line) => { if (!quiet) process.stderr.write(`bench gptq: ${line}\n`); });
      if (o.json) writeResultsJson(o.json, r);
      process.stdout.write(`${formatGptqBench(r)}\n`);
    });
}
