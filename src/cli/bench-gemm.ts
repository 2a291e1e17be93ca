// The `gemm` subcommand of `intscale bench`: GPU GEMM timings per (shape, M, impl), printed as a
// table, optionally saved as JSON and plotted. `--from results.json` re-prints and plots saved
// results without a GPU. `--layer ARCH` times one decoder layer's GEMM chain instead (gemm-layer.ts).
import type { Command } from 'commander';
import { fail } from '../core/errors.ts';
import { checkPlotTarget, parseIntOption } from './options.ts';
import { runGemmBench, type GemmResults } from '../bench/gemm.ts';
import { checkGemmResults, formatGemmSummary, formatGemmTable, parseResultsJson } from '../bench/gemm-report.ts';
import { readResultsFile, writeResultsJson } from './results-file.ts';
import { IMPLS, RUNNERS, w4RunnersForced } from '../bench/gemm-runners.ts';
import { W4_TILES, type W4Tile } from '../gpu/kernels/w4-gemm-plan.ts';
import { DEFAULT_M, parseMs, parseShapes } from '../bench/gemm-shapes.ts';
import { checkLayerResults, formatLayerTable, isLayerResults, parseLayerArchs, runLayerBench, type LayerResults } from '../bench/gemm-layer.ts';
import { Gpu } from '../gpu/runtime.ts';

interface GemmOptions {
  shapes: string;
  m?: string;
  impl?: string;
  layer?: string;
  pdl?: boolean;
  w4Tile?: string;
  w4Splits?: string;
  json?: string;
  plot?: string;
  force?: boolean;
  from?: string;
  trials: string;
}

export function registerBenchGemm(bench: Command): void {
  bench
    .command('gemm')
    .description('time W4A8 (IS/FS/PC), W4A16 and cuBLAS fp16/int8 GEMMs on the GPU')
    .option('--shapes <list>', 'shape sets (llama2-7b, llama3-8b) or KxN items, comma-separated', 'llama2-7b,llama3-8b')
    .option('--m <list>', `token counts M, comma-separated (default ${DEFAULT_M.join(',')}; with --layer ${LAYER_M.join(',')})`)
    .option('--layer <archs>', 'time one decoder layer\'s GEMM chain (qkv, o, gate_up, down) in one graph per impl, e.g. llama2-7b,llama3-8b')
    .option('--pdl', 'launch the single GEMMs with programmatic dependent launch too (--layer always does)')
    .option('--impl <list>', `impls to run (default: all available of ${IMPLS.join(', ')})`)
    .option('--json <file>', 'write {device, date, commit, rows} here')
    .option('--plot <file>', 'write a PNG (speed-up over cuBLAS fp16 vs M; with --layer, µs per layer) (a new file)')
    .option('--force', 'let --plot overwrite an existing file')
    .option('--from <file>', 'read results from a JSON written by --json instead of measuring (no GPU needed)')
    .option('--w4-tile <tile>', `force one W4 kernel tile (${Object.keys(W4_TILES).join(', ')}) instead of the planner's choice`)
    .option('--w4-splits <n>', 'force the W4 kernels\' split-K factor (tiles s, m, l, r, w) instead of the planner\'s choice')
    .option('--trials <n>', 'timed graph replays per measurement (median)', '10')
    .action(async (opts: GemmOptions) => {
      if (opts.plot) checkPlotTarget(opts.plot, opts.force === true);
      let results: GemmResults;
      if (opts.layer && opts.from) fail('--layer', 'cannot be combined with --from (a --layer JSON is recognized by itself)');
      if (opts.from) {
        const data = parseResultsJson(readResultsFile(opts.from), opts.from);
        if (isLayerResults(data)) return reportLayers(checkLayerResults(data, opts.from), opts);
        results = checkGemmResults(data, opts.from);
      } else {
        const archs = opts.layer ? parseLayerArchs(opts.layer) : [];
        const shapes = opts.layer ? [] : parseShapes(opts.shapes);
        const ms = parseMs(opts.m ?? (opts.layer ? LAYER_M : DEFAULT_M).join(','));
        const trials = parseIntOption('--trials', opts.trials, 1);
        let runners = RUNNERS;
        if (opts.w4Tile || opts.w4Splits) {
          if (opts.w4Tile && !(opts.w4Tile in W4_TILES)) fail('--w4-tile', `unknown tile '${opts.w4Tile}' (known: ${Object.keys(W4_TILES).join(', ')})`);
          const splits = opts.w4Splits ? parseIntOption('--w4-splits', opts.w4Splits, 1) : undefined;
          const forced = w4RunnersForced({ tile: opts.w4Tile as W4Tile | undefined, splits });
          runners = RUNNERS.map((r) => forced.find((f) => f.impl === r.impl) ?? r);
        }
        if (opts.impl) {
          const wanted = opts.impl.split(',').map((s) => s.trim()).filter(Boolean);
          for (const w of wanted) {
            if (!(IMPLS as readonly string[]).includes(w)) fail('--impl', `unknown impl '${w}' (known: ${IMPLS.join(', ')})`);
            if (!RUNNERS.some((r) => r.impl === w)) fail('--impl', `'${w}' is not available in this build`);
          }
          runners = runners.filter((r) => wanted.includes(r.impl));
        }
        const gpu = Gpu.open();
        if (opts.layer) {
          const layers = runLayerBench(gpu, archs, ms, runners, trials);
          if (opts.json) writeResultsJson(opts.json, layers);
          return reportLayers(layers, opts);
        }
        results = runGemmBench(gpu, { shapes, ms, runners, trials, pdl: opts.pdl === true });
        if (opts.json) writeResultsJson(opts.json, results);
      }
      process.stdout.write(`${formatGemmTable(results)}\n\n${formatGemmSummary(results)}\n`);
      if (opts.plot) {
        // Loaded only here: the plot stack (vega, resvg) need not exist where GPUs are timed.
        const { writeGemmPlot } = await import('../bench/plot-gemm.ts');
        await writeGemmPlot(results, opts.plot, opts.force === true);
      }
    });
}

/** Token counts of `--layer` by default: decode batches, where the chain's launch overlap matters. */
const LAYER_M = [1, 16, 64, 256];

/** Print the layer table and write its plot when asked. */
async function reportLayers(layers: LayerResults, opts: GemmOptions): Promise<void> {
  process.stdout.write(`${formatLayerTable(layers)}\n`);
  if (opts.plot) {
    const { writeLayerPlot } = await import('../bench/plot-layer.ts');
    await writeLayerPlot(layers, opts.plot, opts.force === true);
  }
}
