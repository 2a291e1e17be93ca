// The `serve` subcommand of `intscale bench`: static against continuous batching of the same seeded
// requests on one engine (src/bench/serve.ts), CPU or GPU; a table, --json and a --plot of new tokens/s.
import * as path from 'node:path';
import type { Command } from 'commander';
import { fail } from '../core/errors.ts';
import { currentCommit } from '../bench/gemm.ts';
import { formatServeTable, runServeBench, type ServeResults } from '../bench/serve.ts';
import { barChartPng } from '../report/plot.ts';
import { chooseDevice } from './device.ts';
import { addDeviceOptions, type DeviceCliOptions } from './generation-options.ts';
import { checkPlotTarget, parseIntOption, parseNumberOption } from './options.ts';
import { writeResultsJson } from './results-file.ts';
import { openRandomCuda, openStepModel } from './step-model.ts';
import { parseMode } from '../core/modes.ts';

interface ServeBenchCliOptions extends DeviceCliOptions {
  arch?: string; requests: string; maxBatch: string; maxRows: string; prompt: string; gen: string; seed: string; rate?: string; json?: string; plot?: string; force?: boolean;
}

/** 'A-B' (or 'A') as an inclusive range of positive integers. */
function parseRange(flag: string, text: string): [number, number] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(text);
  if (!m) fail(flag, `expected N or A-B, got '${text}'`);
  const a = Number(m[1]), b = Number(m[2] ?? m[1]);
  if (!(a >= 1 && b >= a)) fail(flag, `expected 1 <= A <= B, got '${text}'`);
  return [a, b];
}

/** --rate: requests a second, a number > 0. */
function parseRate(text: string): number {
  const r = parseNumberOption('--rate', text);
  if (!(r > 0)) fail('--rate', `expected requests a second > 0, got '${text}'`);
  return r;
}

export function registerBenchServe(bench: Command): void {
  const cmd = bench
    .command('serve')
    .description('continuous against static batching: new tokens/s of the same seeded requests on the CPU or GPU engine')
    .argument('[model]', 'model directory or llama2.c .bin (or --arch)')
    .option('--arch <name>', 'GPU: random shape-true weights of a preset architecture (llama2-7b, llama3-8b, mixtral-8x7b, ...) in --mode (default fp16)')
    .option('--requests <n>', 'requests', '32')
    .option('--max-batch <n>', 'sequence slots', '8')
    .option('--max-rows <n>', 'tokens per engine step', '512')
    .option('--prompt <range>', 'prompt tokens per request, A-B', '8-64')
    .option('--gen <range>', 'new tokens per request, A-B', '8-128')
    .option('--seed <n>', 'the requests\' seed', '1')
    .option('--rate <r>', 'requests a second, Poisson arrivals (continuous batching only; latencies from each arrival)')
    .option('--json <file>', 'write {device, model, date, commit, options, rows} here')
    .option('--plot <file>', 'write a PNG of new tokens/s per mode (a new file)')
    .option('--force', 'let --plot overwrite an existing file');
  addDeviceOptions(cmd).action(async (modelPath: string | undefined, opts: ServeBenchCliOptions) => {
    if ((modelPath === undefined) === (opts.arch === undefined)) fail('bench serve', 'give either a model directory or --arch');
    if (opts.plot) checkPlotTarget(opts.plot, opts.force === true);
    const o = { requests: parseIntOption('--requests', opts.requests, 1), prompt: parseRange('--prompt', opts.prompt), gen: parseRange('--gen', opts.gen),
      seed: parseIntOption('--seed', opts.seed), ...(opts.rate !== undefined ? { rate: parseRate(opts.rate) } : {}) };
    const slots = parseIntOption('--max-batch', opts.maxBatch, 1), maxRows = parseIntOption('--max-rows', opts.maxRows, slots);
    if (opts.arch !== undefined && opts.device === 'cpu') fail('--arch', 'random shape-true models run on the GPU');
    const open = opts.arch !== undefined ? openRandomCuda(opts.arch, parseMode(opts.mode ?? 'fp16'), slots, maxRows)
      : openStepModel(modelPath!, chooseDevice(opts.device, modelPath!), opts, slots, maxRows);
    try {
      const need = o.prompt[1] + o.gen[1];
      if (need > open.context) fail('--gen', `prompt + new tokens (${need}) exceed the model's context of ${open.context}`);
      const backend = open.backend(need);
      const rows = await runServeBench(backend, open.vocabSize, o);
      const r: ServeResults = { device: open.label, model: opts.arch ?? path.basename(path.resolve(modelPath!)), date: new Date().toISOString(), commit: currentCommit(), options: o, rows };
      process.stdout.write(`${formatServeTable(r)}\n`);
      if (opts.json) writeResultsJson(opts.json, r);
      if (opts.plot) {
        await barChartPng(rows.map((x) => ({ mode: x.mode, tokens_per_s: x.tokens_per_s })),
          { title: `${r.model} on ${r.device}: ${o.requests} requests, ${slots} slots`, x: 'mode', y: 'tokens_per_s', xTitle: 'batching', yTitle: 'new tokens/s' }, opts.plot, opts.force === true);
      }
    } finally {
      open.close();
    }
  });
}
