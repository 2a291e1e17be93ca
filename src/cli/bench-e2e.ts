// The `e2e` subcommand of `intscale bench`: end-to-end prefill/decode speed of the GPU engine on
// shape-true random models, all modes in one process (src/bench/e2e.ts); JSON, table and the
// Figure-1-style plot. `--from results.json` re-prints and plots saved results without a GPU.
import type { Command } from 'commander';
import { parseIntOption } from './options.ts';
import { readResultsFile, writeResultsJson } from './results-file.ts';
import { formatE2eTable, parseE2eResults, runE2eBench, type E2eResults } from '../bench/e2e.ts';
import { MODES, parseMode } from '../core/modes.ts';
import { archPreset } from '../model/arch-presets.ts';
import { Gpu } from '../gpu/runtime.ts';

interface E2eCliOptions {
  arch: string; batch: string; prompt: string; gen: string; modes: string; layers?: string; json?: string; plot?: string; from?: string;
  timeline?: boolean;
}

export function registerBenchE2e(bench: Command): void {
  bench
    .command('e2e')
    .description('end-to-end prefill and decode speed of the GPU engine on shape-true random models, every mode in one run')
    .option('--arch <list>', 'architectures: llama2-7b, llama2-13b, llama3-8b, mistral-7b', 'llama2-7b,llama3-8b')
    .option('--batch <list>', 'decode batch sizes', '1,16,64,256')
    .option('--prompt <n>', 'prompt tokens per sequence', '512')
    .option('--gen <n>', 'decode steps timed', '128')
    .option('--modes <list>', `modes (${MODES.join(', ')})`, MODES.join(','))
    .option('--layers <n>', 'decoder layers (default: the architecture\'s)')
    .option('--timeline', 'also time every op of one decode step (per arch, batch, mode)')
    .option('--json <file>', 'write {device, commit, date, rows} here')
    .option('--plot <file>', 'write the grouped-bar PNG (speed-up over fp16 on top)')
    .option('--from <file>', 'read results from a JSON written by --json instead of measuring (no GPU needed)')
    .action(async (o: E2eCliOptions) => {
      let results: E2eResults;
      if (o.from) {
        results = parseE2eResults(readResultsFile(o.from), o.from);
      } else {
        const list = (s: string) => s.split(',').map((x) => x.trim()).filter(Boolean);
        const archs = list(o.arch);
        for (const a of archs) archPreset(a);
        const batches = list(o.batch).map((b) => parseIntOption('--batch', b, 1));
        const modes = list(o.modes).map((m) => parseMode(m, '--modes'));
        const prompt = parseIntOption('--prompt', o.prompt, 1), gen = parseIntOption('--gen', o.gen, 1);
        const layers = o.layers === undefined ? undefined : parseIntOption('--layers', o.layers, 1);
        const gpu = Gpu.open();
        results = runE2eBench(gpu, { archs, batches, prompt, gen, modes, timeline: o.timeline ?? false, ...(layers ? { layers } : {}) });
        if (o.json) writeResultsJson(o.json, results);
      }
      process.stdout.write(`${formatE2eTable(results)}\n`);
      if (o.plot) {
        const { writeE2ePlot } = await import('../bench/plot-e2e.ts');
        await writeE2ePlot(results, o.plot);
      }
    });
}
