// The `gptq` subcommand of `intscale bench`: one shape-true decoder layer's GPTQ on the GPU
// (src/bench/gptq.ts), per-stage seconds as a table; with --pipeline the whole calibration pipeline
// (layer forward included) for the first --layers layers (src/bench/gptq-pipeline.ts). Optionally saved as JSON.
import type { Command } from 'commander';
import { fail } from '../core/errors.ts';
import { parseGroupOption, parseIntOption } from './options.ts';
import { writeResultsJson } from './results-file.ts';
import { formatGptqBench, runGptqBench } from '../bench/gptq.ts';
import { formatGptqPipelineBench, runGptqPipelineBench } from '../bench/gptq-pipeline.ts';
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
    .option('--pipeline', 'time the whole calibration pipeline per layer (forward, Gram, GPTQ) on made-up weights, as quantize --calib-device cuda runs it')
    .option('--layers <n>', '--pipeline: decoder layers to run', '2')
    .option('--window <n>', '--pipeline: positions per calibration window (--tokens / window windows)', '512')
    .option('--json <file>', 'write {device, date, commit, arch, tokens, group, actOrder, runs} (--pipeline: {..., windows, window, layers}) here')
    .action((o: { arch: string; tokens: string; group: string; actOrder: boolean; runs: string; pipeline?: boolean; layers: string; window: string; json?: string }) => {
      archPreset(o.arch);
      const tokens = parseIntOption('--tokens', o.tokens, 1), group = parseGroupOption(o.group), runs = parseIntOption('--runs', o.runs, 1);
      const quiet = process.env['INTSCALE_QUIET'] === '1';
      const say = (line: string) => { if (!quiet) process.stderr.write(`bench gptq: ${line}\n`); };
      if (o.pipeline) {
        const window = parseIntOption('--window', o.window, 1), layers = parseIntOption('--layers', o.layers, 1);
        if (tokens % window !== 0) fail('--tokens', `${tokens} is not a whole number of windows of ${window}`);
        const r = runGptqPipelineBench(Gpu.open(), { arch: o.arch, windows: tokens / window, window, layers, group, actOrder: o.actOrder !== false }, say);
        if (o.json) writeResultsJson(o.json, r);
        process.stdout.write(`${formatGptqPipelineBench(r)}\n`);
        return;
      }
      const r = runGptqBench(Gpu.open(), { arch: o.arch, tokens, group, actOrder: o.actOrder !== false, runs }, say);
      if (o.json) writeResultsJson(o.json, r);
      process.stdout.write(`${formatGptqBench(r)}\n`);
    });
}
