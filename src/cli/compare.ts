// `intscale compare <model-dir> --text FILE`: one perplexity table for fp16, w4a16, w4a8-fs and
// w4a8-is (same RTN quantization and group), relative change vs fp16; --json, --plot bar chart (a new
// file unless --force). A non-finite perplexity in any mode is an error naming the mode, exit 1.
// --device cuda measures every mode on the GPU engine in one process (src/eval/gpu-eval.ts).
import * as fs from 'node:fs';
import type { Command } from 'commander';
import { fail } from '../core/errors.ts';
import type { Mode } from '../core/modes.ts';
import { fsProblem } from '../core/fs-errors.ts';
import { progress, type Progress } from '../core/progress.ts';
import { loadModel } from '../model/load.ts';
import { compareMethods, defaultModes, formatCompareTable, type CompareRow } from '../eval/compare.ts';
import { loadCalibration, type CalibOptions } from '../quant/calib-data.ts';
import { CALIB_METHODS, needsCalibration, type CalibMethod, type MethodOptions } from '../quant/calibrate.ts';
import { calibOptionsOf, registerCalibOptions } from './calib-options.ts';
import { isMoeModel, openGptqDevice } from './calib-device.ts';
import type { GptqDevice } from '../quant/gptq-device.ts';
import { gpuCompare, loadOnGpu, openGpu } from '../eval/gpu-eval.ts';
import { loadHfTokenizer } from '../io/tokenizer.ts';
import { readModelConfig } from '../io/validate-model.ts';
import { chooseDevice } from './device.ts';
import { parseAmplifier, type Amplifier } from '../quant/integer-scale.ts';
import { assertFinitePerplexity } from '../eval/finite-result.ts';
import { checkPlotTarget, parseGroupOption, parseIntOption } from './options.ts';
import * as path from 'node:path';

export interface CompareRun {
  device?: 'cpu' | 'cuda';
  modelDir: string;
  textFile: string;
  group: number;
  maxTokens?: number;
  ctx?: number;
  clip: boolean;
  amplifier: Amplifier;
  /** default: rtn (CPU only for others) */
  methods?: CalibMethod[];
  calib?: CalibOptions;
  smooth?: number;
  actOrder?: boolean;
  /** GPTQ: AWQ's scales first */
  awqScales?: boolean;
  /** GPTQ's heavy parts on a GPU (calib-device.ts); default: the CPU */
  gptqDevice?: GptqDevice;
}

/** `--methods a,b,c`: each one of rtn, gptq, awq. */
export function parseMethods(text: string): CalibMethod[] {
  const list = text.split(',').map((m) => m.trim()).filter((m) => m.length > 0);
  if (list.length === 0) fail('--methods', 'no method given');
  for (const m of list) if (!(CALIB_METHODS as readonly string[]).includes(m)) fail('--methods', `unknown method '${m}' (supported: ${CALIB_METHODS.join(', ')})`);
  return list as CalibMethod[];
}

/** Load, tokenize, measure every mode with progress on stderr. */
export function runCompare(run: CompareRun): CompareRow[] {
  let text: string;
  try {
    text = fs.readFileSync(run.textFile, 'utf8');
  } catch (e) {
    fail(run.textFile, `cannot read the text file: ${fsProblem(e) ?? String(e)}`);
  }
  const bars = new Map<Mode, { bar: Progress; scored: number }>();
  if (run.device === 'cuda') {
    if ((run.methods ?? ['rtn']).some((m) => m !== 'rtn') || run.smooth !== undefined) fail('--device cuda', 'GPTQ, AWQ and --smooth run on the CPU (use --device cpu)');
    return runCompareGpu(run, text, bars);
  }
  const model = loadModel(run.modelDir);
  const ids = model.tokenizer.encode(text);
  if (ids.length < 2) fail(run.textFile, 'too little text to measure perplexity');
  const methods: MethodOptions[] = (run.methods ?? ['rtn']).map((method) => ({
    method, group: run.group, clip: run.clip, ...(run.smooth !== undefined ? { smooth: run.smooth } : {}), ...(run.actOrder ? { actOrder: true } : {}),
    ...(run.awqScales && method === 'gptq' ? { awqScales: true } : {}),
    ...(run.gptqDevice && method === 'gptq' ? { gptqDevice: run.gptqDevice } : {}),
  }));
  const needCalib = methods.some(needsCalibration);
  if (needCalib && !run.calib) fail('--calib', `${methods.filter(needsCalibration).map((m) => m.method).join(', ')} need calibration text (--calib FILE)`);
  const windows = needCalib ? loadCalibration(run.calib!, model.tokenizer, model.config.bosId ?? 1, model.config.maxSeq) : undefined;
  const methodBars = new Map<string, { bar: Progress; scored: number }>();
  const layerBars = new Map<string, Progress>();
  const rows = compareMethods(model, ids, methods, {
    amplifier: run.amplifier,
    ...(windows ? { windows } : {}),
    ...(run.maxTokens !== undefined ? { maxTokens: run.maxTokens } : {}),
    ...(run.ctx !== undefined ? { ctx: run.ctx } : {}),
    onLayer: (label, note, total) => {
      let b = layerBars.get(label);
      if (!b) layerBars.set(label, (b = progress(`${label} calibration (decoder layers)`, total)));
      b.tick();
      if (note.layer === total - 1) b.done();
    },
    onProgress: (label, mode: Mode, scored, total) => {
      const key = `${label} ${mode}`;
      let p = methodBars.get(key);
      if (!p) methodBars.set(key, (p = { bar: progress(`ppl ${key}`, total), scored: 0 }));
      p.bar.tick(scored - p.scored);
      p.scored = scored;
      if (scored >= total) p.bar.done();
    },
  });
  for (const r of rows) assertFinitePerplexity(run.modelDir, r.ppl, r.mode);
  return rows;
}

function runCompareGpu(run: CompareRun, text: string, bars: Map<Mode, { bar: Progress; scored: number }>): CompareRow[] {
  const tok = loadHfTokenizer(path.join(run.modelDir, 'tokenizer.json'), path.join(run.modelDir, 'tokenizer_config.json'));
  const config = readModelConfig(run.modelDir).config;
  const ids = tok.encode(text);
  if (ids.length < 2) fail(run.textFile, 'too little text to measure perplexity');
  if (run.clip || run.amplifier !== 'auto') fail('--device cuda', 'the GPU quantizer runs RTN without --clip, amplifier auto');
  const gpu = openGpu();
  const fp16 = loadOnGpu(gpu, run.modelDir, { mode: 'fp16' });
  try {
    return gpuCompare(gpu, fp16, ids, defaultModes(run.group), run.group === -1 ? 128 : run.group, {
      ...(run.ctx !== undefined ? { ctx: run.ctx } : {}), ...(run.maxTokens !== undefined ? { maxTokens: run.maxTokens } : {}),
      bosId: tok.bosId ?? config.bosId ?? 1,
    }, (mode) => (scored, total) => {
      let p = bars.get(mode);
      if (!p) bars.set(mode, (p = { bar: progress(`ppl ${mode}`, total), scored: 0 }));
      p.bar.tick(scored - p.scored);
      p.scored = scored;
      if (scored >= total) p.bar.done();
    });
  } finally {
    fp16.free();
  }
}

export async function plotCompare(rows: CompareRow[], file: string, title: string, overwrite = false): Promise<void> {
  const { barChartPng } = await import('../report/plot.ts'); // the plot stack loads only when asked for
  const several = new Set(rows.filter((r) => r.mode !== 'fp16').map((r) => r.method)).size > 1;
  await barChartPng(rows.map((r) => ({ mode: r.mode, method: r.method, ppl: Number(r.ppl.toFixed(4)) })),
    { title, x: 'mode', y: 'ppl', yTitle: 'perplexity (lower is better)', ...(several ? { color: 'method' } : {}) }, file, overwrite);
}

export function register(program: Command): void {
  const cmd = program
    .command('compare')
    .description('perplexity of fp16, w4a16, w4a8-fs and w4a8-is side by side (same quantization)')
    .argument('<model-dir>', 'unquantized model directory')
    .requiredOption('--text <file>', 'text file to measure perplexity on')
    .option('--max-tokens <n>', 'score only the first N tokens')
    .option('--ctx <n>', 'positions per chunk including BOS', '512')
    .option('--group <n>', 'group size: 32, 64, 128, 256 or -1 (per channel)', '128')
    .option('--methods <list>', 'comma-separated quantization methods: rtn, gptq, awq (gptq/awq/--smooth: CPU)', 'rtn')
    .option('--no-act-order', 'GPTQ: natural column order (default: act-order with static groups)')
    .option('--amplifier <a>', 'integer-scale amplifier: auto, layer or K', 'auto')
    .option('--clip', 'clip search per group (rtn: squared error; gptq: output error on the calibration inputs)', false)
    .option('--awq-scales', "GPTQ: AWQ's per-input-channel scales first, then GPTQ", false)
    .option('--json', 'print JSON {"rows":[{"mode","method","group","ppl"}]}')
    .option('--plot <png>', 'write a bar chart of the perplexities (a new file)')
    .option('--force', 'let --plot overwrite an existing file')
    .option('--device <d>', 'cpu or cuda (default: cuda when a GPU can run the model)');
  registerCalibOptions(cmd)
    .action(async (modelDir: string, o: Record<string, string | boolean | undefined>) => {
      const methods = parseMethods(String(o['methods']));
      const calibOpts = calibOptionsOf(o);
      const cpuOnly = methods.some((m) => m !== 'rtn') || calibOpts.smooth !== undefined;
      const group = parseGroupOption(String(o['group']));
      if (o['plot'] !== undefined) checkPlotTarget(String(o['plot']), o['force'] === true);
      const gptqDevice = openGptqDevice(String(o['calibDevice']), { usesGptq: methods.includes('gptq') && calibOpts.calib !== undefined, clip: o['clip'] === true, moe: isMoeModel(modelDir) });
      let rows: CompareRow[];
      try {
        rows = runCompare({
          methods, ...calibOpts, ...(gptqDevice ? { gptqDevice } : {}), actOrder: o['actOrder'] !== false, awqScales: o['awqScales'] === true,
          modelDir, device: cpuOnly && o['device'] === undefined ? 'cpu' : chooseDevice(o['device'] === undefined ? undefined : String(o['device']), modelDir), textFile: String(o['text']), group, clip: o['clip'] === true, amplifier: parseAmplifier(String(o['amplifier'])),
          ctx: parseIntOption('--ctx', String(o['ctx']), 2),
          ...(o['maxTokens'] !== undefined ? { maxTokens: parseIntOption('--max-tokens', String(o['maxTokens']), 1) } : {}),
        });
      } finally {
        gptqDevice?.dispose();
      }
      if (o['json']) process.stdout.write(JSON.stringify({ rows }, null, 1) + '\n');
      else process.stdout.write(`${formatCompareTable(rows)}\n`);
      if (o['plot'] !== undefined) {
        await plotCompare(rows, String(o['plot']), `${path.basename(path.resolve(modelDir))}: perplexity, ${methods.join('/').toUpperCase()} g${group === -1 ? ' per-channel' : group}`, o['force'] === true);
        if (!o['json']) process.stdout.write(`wrote ${String(o['plot'])}\n`);
      }
    });
}
