// `intscale compare <model-dir> --text FILE [--methods rtn,gptq,awq --calib FILE --smooth A]`: one
// perplexity table for FP16 and, per method, W4A16, W4A8-FS and W4A8-IS (same quantization and
// group within a method), relative change vs FP16; --json, --plot bar chart.
import * as fs from 'node:fs';
import type { Command } from 'commander';
import { fail } from '../core/errors.ts';
import { progress, type Progress } from '../core/progress.ts';
import { loadModel } from '../model/load.ts';
import { compareMethods, formatCompareTable, type CompareMode, type CompareRow } from '../eval/compare.ts';
import { loadCalibration, type CalibOptions } from '../quant/calib-data.ts';
import { CALIB_METHODS, needsCalibration, type CalibMethod, type MethodOptions } from '../quant/calibrate.ts';
import { calibOptionsOf, registerCalibOptions } from './calib-options.ts';
import { parseAmplifier, type Amplifier } from '../quant/integer-scale.ts';
import { parseGroupOption, parseIntOption } from './options.ts';
import * as path from 'node:path';

export interface CompareRun {
  modelDir: string;
  textFile: string;
  group: number;
  maxTokens?: number;
  ctx?: number;
  clip: boolean;
  amplifier: Amplifier;
  /** default: rtn */
  methods?: CalibMethod[];
  calib?: CalibOptions;
  smooth?: number;
  actOrder?: boolean;
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
  } catch {
    fail(run.textFile, 'cannot read text file');
  }
  const model = loadModel(run.modelDir);
  const ids = model.tokenizer.encode(text);
  if (ids.length < 2) fail(run.textFile, 'too little text to measure perplexity');
  const methods: MethodOptions[] = (run.methods ?? ['rtn']).map((method) => ({
    method, group: run.group, clip: run.clip, ...(run.smooth !== undefined ? { smooth: run.smooth } : {}), ...(run.actOrder ? { actOrder: true } : {}),
  }));
  const needCalib = methods.some(needsCalibration);
  if (needCalib && !run.calib) fail('--calib', `${methods.filter(needsCalibration).map((m) => m.method).join(', ')} need calibration text (--calib FILE)`);
  const windows = needCalib ? loadCalibration(run.calib!, model.tokenizer, model.config.bosId ?? 1, model.config.maxSeq) : undefined;
  const bars = new Map<string, { bar: Progress; scored: number }>();
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
    onProgress: (label, mode: CompareMode, scored, total) => {
      const key = `${label} ${mode}`;
      let p = bars.get(key);
      if (!p) bars.set(key, (p = { bar: progress(`ppl ${key}`, total), scored: 0 }));
      p.bar.tick(scored - p.scored);
      p.scored = scored;
      if (scored >= total) p.bar.done();
    },
  });
  return rows;
}

export async function plotCompare(rows: CompareRow[], file: string, title: string): Promise<void> {
  const { barChartPng } = await import('../report/plot.ts'); // the plot stack loads only when asked for
  const several = new Set(rows.filter((r) => r.mode !== 'FP16').map((r) => r.method)).size > 1;
  await barChartPng(rows.map((r) => ({ mode: r.mode, method: r.method, ppl: Number(r.ppl.toFixed(4)) })),
    { title, x: 'mode', y: 'ppl', yTitle: 'perplexity (lower is better)', ...(several ? { color: 'method' } : {}) }, file);
}

export function register(program: Command): void {
  const cmd = program
    .command('compare')
    .description('perplexity of FP16, W4A16, W4A8-FS and W4A8-IS side by side (same quantization)')
    .argument('<model-dir>', 'unquantized model directory')
    .requiredOption('--text <file>', 'text file to measure perplexity on')
    .option('--max-tokens <n>', 'score only the first N tokens')
    .option('--ctx <n>', 'positions per chunk including BOS', '512')
    .option('--group <n>', 'group size: 32, 64, 128, 256 or -1 (per channel)', '128')
    .option('--methods <list>', 'comma-separated quantization methods: rtn, gptq, awq', 'rtn')
    .option('--no-act-order', 'GPTQ: natural column order (default: act-order with static groups)')
    .option('--amplifier <a>', 'integer-scale amplifier: auto, layer or K', 'auto')
    .option('--clip', 'clip search per group', false)
    .option('--json', 'print JSON {"rows":[{"mode","method","group","ppl"}]}')
    .option('--plot <png>', 'write a bar chart of the perplexities');
  registerCalibOptions(cmd)
    .action(async (modelDir: string, o: Record<string, string | boolean | undefined>) => {
      const methods = parseMethods(String(o['methods']));
      const group = parseGroupOption(String(o['group']));
      const rows = runCompare({
        modelDir, textFile: String(o['text']), group, clip: o['clip'] === true, amplifier: parseAmplifier(String(o['amplifier'])),
        methods, ...calibOptionsOf(o), actOrder: o['actOrder'] !== false,
        ctx: parseIntOption('--ctx', String(o['ctx']), 2),
        ...(o['maxTokens'] !== undefined ? { maxTokens: parseIntOption('--max-tokens', String(o['maxTokens']), 1) } : {}),
      });
      if (o['json']) process.stdout.write(JSON.stringify({ rows }, null, 1) + '\n');
      else process.stdout.write(`${formatCompareTable(rows)}\n`);
      if (o['plot']) {
        await plotCompare(rows, String(o['plot']), `${path.basename(path.resolve(modelDir))}: perplexity, ${methods.join('/').toUpperCase()} g${group === -1 ? ' per-channel' : group}`);
        if (!o['json']) process.stdout.write(`wrote ${String(o['plot'])}\n`);
      }
    });
}
