// The accuracy report (issue 10): docs-llama-30m perplexity on persuasion.txt and docs-valid.txt
// (first 4,088 tokens, ctx 512) for fp16 and RTN / GPTQ / AWQ × {w4a16, w4a8-fs, w4a8-is} at g128,
// plus GPTQ with the clip search, AWQ+GPTQ, AWQ+SmoothQuant, g64 (GPTQ, AWQ) and per-channel (GPTQ);
// every method quantized once (calibration on docs-calib.txt) and measured on both texts. Writes
// docs/accuracy.json (rows written as they come, so a partial run keeps what it measured),
// docs/accuracy.md (tables, the targets checked) and one bar chart per text. Run: node --import tsx src/report/accuracy.ts [--samples N] [--extra gptq]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadModel } from '../model/load.ts';
import { loadCalibration } from '../quant/calib-data.ts';
import type { MethodOptions } from '../quant/calibrate.ts';
import type { Mode } from '../core/modes.ts';
import { measureModes, methodLabel, quantizeWithMethod } from '../eval/compare.ts';
import { progress } from '../core/progress.ts';

export interface AccuracyRow { text: string; method: string; mode: string; group: number; ppl: number }

const SHARED = path.resolve(import.meta.dirname, '../../../shared');
const MODEL = path.join(SHARED, 'models/docs-llama-30m');
const TEXTS = ['persuasion', 'docs-valid'];
const MAX_TOKENS = 4088, CTX = 512;
const MODES: Mode[] = ['w4a16', 'w4a8-fs', 'w4a8-is'];

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : dflt;
}

const pct = (a: number, b: number) => `${a >= b ? '+' : ''}${((100 * (a - b)) / b).toFixed(2)}%`;

export function accuracyMarkdown(rows: AccuracyRow[], meta: Record<string, unknown>): string {
  const find = (text: string, method: string, mode: string, group: number) => rows.find((r) => r.text === text && r.method === method && r.mode === mode && r.group === group);
  const fp16 = (text: string) => find(text, '-', 'fp16', 0)?.ppl ?? NaN;
  const configs = [...new Map(rows.filter((r) => r.mode !== 'fp16').map((r) => [`${r.method}|${r.group}`, r])).values()];
  const lines = ['| method | group | mode | ' + TEXTS.map((t) => `${t} ppl | vs fp16`).join(' | ') + ' |', '|---|---|---|' + TEXTS.map(() => '---:|---:').join('|') + '|'];
  lines.push(`| fp16 | - | - | ${TEXTS.map((t) => `${fp16(t).toFixed(4)} | -`).join(' | ')} |`);
  for (const c of configs) {
    for (const mode of [...MODES, 'w4a8-pc']) {
      const cells = TEXTS.map((t) => find(t, c.method, mode, c.group));
      if (cells.every((x) => !x)) continue;
      lines.push(`| ${c.method} | ${c.group === -1 ? 'per-ch' : c.group} | ${mode} | ${cells.map((x, i) => (x ? `${x.ppl.toFixed(4)} | ${pct(x.ppl, fp16(TEXTS[i]!))}` : '- | -')).join(' | ')} |`);
    }
  }
  const checks: string[] = [];
  for (const c of configs) for (const t of TEXTS) {
    const is = find(t, c.method, 'w4a8-is', c.group), fsr = find(t, c.method, 'w4a8-fs', c.group);
    if (is && fsr) {
      const rel = Math.abs(is.ppl - fsr.ppl) / fsr.ppl;
      checks.push(`- ${c.method} ${c.group === -1 ? 'per-channel' : `g${c.group}`} ${t}: |IS − FS|/FS = ${(100 * rel).toFixed(3)}% ${rel <= 0.003 ? '(within 0.3%: met)' : '(NOT within 0.3%)'}`);
    }
  }
  for (const m of ['gptq', 'awq']) for (const t of TEXTS) {
    const a = find(t, m, 'w4a8-is', 128), r = find(t, 'rtn', 'w4a8-is', 128);
    if (a && r) checks.push(`- ${m.toUpperCase()}-IS vs RTN-IS (g128, ${t}): ${a.ppl.toFixed(4)} vs ${r.ppl.toFixed(4)} ${a.ppl < r.ppl ? '(better: met)' : '(NOT better)'}`);
  }
  const within = (t: string, ppl: number) => (ppl - fp16(t)) / fp16(t) <= 0.025;
  const both = configs.filter((c) => TEXTS.every((t) => { const r = find(t, c.method, 'w4a8-is', c.group); return r !== undefined && within(t, r.ppl); }));
  checks.push(`- configurations whose w4a8-is is within 2.5% of fp16 on both texts: ${both.length === 0 ? 'none' : both.map((c) => `${c.method} ${c.group === -1 ? 'per-channel' : `g${c.group}`}`).join(', ')}`);
  for (const t of TEXTS) {
    const best = rows.filter((r) => r.text === t && r.mode === 'w4a8-is').sort((a, b) => a.ppl - b.ppl)[0];
    if (best) checks.push(`- best w4a8-is on ${t}: ${best.method} g${best.group} ${best.ppl.toFixed(4)}, ${pct(best.ppl, fp16(t))} vs fp16 ${(best.ppl - fp16(t)) / fp16(t) <= 0.025 ? '(within 2.5%: met)' : '(NOT within 2.5%)'}`);
  }
  return [
    '# Accuracy: RTN, GPTQ and AWQ with integer scales (docs-llama-30m)',
    '',
    `Perplexity of \`${path.basename(MODEL)}\` on the first ${MAX_TOKENS} tokens of \`persuasion.txt\` (a novel: out of the model's`,
    "training domain) and `docs-valid.txt` (held-out documentation: in domain), ctx 512 (BOS + 511, non-overlapping",
    'chunks, the project\'s reference method). Every method quantizes once; integer scales (w4a8-is) are derived from the',
    "method's fp16 group scales by `computeIntegerScales` (amplifier auto) with no further calibration. Calibration for GPTQ",
    `and AWQ: ${JSON.stringify(meta['calibration'])}.`,
    '',
    ...lines,
    '',
    '## Targets',
    ...checks,
    '',
    '## Notes (on this run)',
    '- The calibration text is documentation (the training domain). Methods that fit the calibration Hessian',
    '  closely gain most on docs-valid and transfer worst to persuasion (a novel): GPTQ, and more so GPTQ with',
    '  the output-error clip search (`gptq+clip`: the best docs-valid row at g128, but worse than plain GPTQ on',
    '  persuasion). AWQ, which only rescales channels and clips, transfers best to the out-of-domain text.',
    '- `awq+gptq` (AWQ\'s channel scales, then GPTQ on the scaled weights) is worse than AWQ alone on both texts',
    '  (and than GPTQ alone on persuasion); with `+clip` it follows gptq+clip (good on docs-valid, poor on persuasion).',
    '- AWQ g64 halves the group size (one more fp16 scale and integer scale per 64 weights): the only',
    '  configuration here within 2.5% of fp16 on both texts. At g128 the 2.5% target is met on docs-valid',
    '  (gptq+clip) but not on persuasion (best: awq).',
    '- awq+sq0.5: SmoothQuant α = 0.5 before AWQ shrinks the A8 cost (w4a8-fs − w4a16 ≈ 0) but the W4 error',
    '  grows, so it is about AWQ alone (worse on persuasion, within 0.1% on docs-valid).',
    '- Per-channel: w4a8-is with one group per channel is w4a8-fs bit for bit here (every channel reaches its',
    '  exact shift); w4a8-pc is the per-channel kernel path (fp32 epilogue), within rounding of it.',
    '- Quantization times below were measured while other jobs shared the 2 cores.',
    '',
    '## How it was produced',
    '`node --import tsx src/report/accuracy.ts` (this file\'s numbers: ' + JSON.stringify(meta['run']) + '). Quantization times (s, 2-core machine, shared):',
    '`' + JSON.stringify(meta['seconds']) + '`.',
    '',
    '![perplexity per method, group and mode](accuracy.png)',
    '',
  ].join('\n');
}

async function render(rows: AccuracyRow[], meta: Record<string, unknown>, out: string): Promise<void> {
  fs.writeFileSync(path.join(out, 'accuracy.md'), accuracyMarkdown(rows, meta));
  const { writeChartPng } = await import('./plot.ts');
  const label = (r: AccuracyRow) => (r.mode === 'fp16' ? 'fp16' : `${r.method} ${r.group === -1 ? 'per-ch' : `g${r.group}`}`);
  const values = rows.map((r) => ({ text: r.text, config: label(r), mode: r.mode, ppl: Number(r.ppl.toFixed(4)) }));
  const order = [...new Set(values.map((v) => v.config))];
  // one PNG, one panel per text (own y scale, not from zero): perplexity per method/group, colored by mode
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'docs-llama-30m perplexity (4,088 tokens, ctx 512; lower is better)',
    background: 'white',
    data: { values },
    facet: { column: { field: 'text', type: 'nominal', title: null, sort: TEXTS } },
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 330, height: 300,
      layer: [
        { mark: { type: 'point', filled: true, size: 90 },
          encoding: { x: { field: 'config', type: 'nominal', sort: order, title: null, axis: { labelAngle: -30 } },
                      y: { field: 'ppl', type: 'quantitative', scale: { zero: false }, title: 'perplexity' },
                      color: { field: 'mode', type: 'nominal', sort: ['fp16', ...MODES, 'w4a8-pc'] },
                      shape: { field: 'mode', type: 'nominal', sort: ['fp16', ...MODES, 'w4a8-pc'] } } },
      ],
    },
  };
  await writeChartPng(spec as never, path.join(out, 'accuracy.png'), 2, true); // the report regenerates its own plot
  process.stderr.write(`wrote ${path.join(out, 'accuracy.md')}\n`);
}

async function main(): Promise<void> {
  const out = path.resolve(arg('--out', path.join(import.meta.dirname, '../../docs')));
  if (process.argv.includes('--render-only')) {
    const { rows, ...meta } = JSON.parse(fs.readFileSync(path.join(out, 'accuracy.json'), 'utf8')) as { rows: AccuracyRow[] } & Record<string, unknown>;
    return render(rows, meta, out);
  }
  if (process.argv.includes('--add')) return addConfig(out);
  const samples = Number(arg('--samples', '128'));
  const extra = arg('--extra', 'gptq');
  const actOrder = arg('--act-order', 'true') === 'true';
  const percdamp = Number(arg('--percdamp', '0.01'));
  const model = loadModel(MODEL);
  const ids = Object.fromEntries(TEXTS.map((t) => [t, model.tokenizer.encode(fs.readFileSync(path.join(SHARED, 'data/eval', `${t}.txt`), 'utf8'))]));
  const calib = { file: path.join(SHARED, 'data/calib/docs-calib.txt'), samples, len: 512, seed: 0 };
  const windows = loadCalibration(calib, model.tokenizer, 1, model.config.maxSeq);
  const gptqOpts = { actOrder, percdamp };
  const configs: MethodOptions[] = [
    { method: 'rtn', group: 128 }, { method: 'gptq', group: 128, ...gptqOpts }, { method: 'awq', group: 128 },
    { method: 'gptq', group: 128, ...gptqOpts, clip: true }, { method: 'gptq', group: 128, ...gptqOpts, awqScales: true },
    { method: 'gptq', group: 128, ...gptqOpts, awqScales: true, clip: true }, { method: 'awq', group: 128, smooth: 0.5 },
    ...[64, -1].map((group) => ({ method: extra as MethodOptions['method'], group, ...(extra === 'gptq' ? gptqOpts : {}) })),
    { method: 'awq', group: 64 },
  ];
  const rows: AccuracyRow[] = [];
  const meta: Record<string, unknown> = {
    calibration: { file: 'docs-calib.txt', samples, len: 512, seed: 0 },
    run: { gptq: { act_order: actOrder, static_groups: actOrder, percdamp, block_size: 128, clip: '+clip rows: output-error clip 1.00..0.50 step 0.05', awq_scales: 'awq+ rows' },
           awq: { grid: 20, clip: '1.00..0.50 step 0.05' }, smooth: '+sq0.5 rows: alpha 0.5' },
    seconds: {} as Record<string, number>,
  };
  const save = () => fs.writeFileSync(path.join(out, 'accuracy.json'), JSON.stringify({ ...meta, rows }, null, 1) + '\n');
  const measure = (label: string, f: (ids: number[]) => { mode: string; ppl: number; group: number; method: string }[]) => {
    for (const t of TEXTS) {
      const got = f(ids[t]!.slice(0, MAX_TOKENS));
      for (const r of got) rows.push({ text: t, method: r.method, mode: r.mode, group: r.group, ppl: r.ppl });
      process.stderr.write(`${label} ${t}: ${got.map((r) => `${r.mode} ${r.ppl.toFixed(4)}`).join(', ')}\n`);
      save();
    }
  };
  measure('fp16', (x) => measureModes(model, x, undefined, ['fp16'], { ctx: CTX }).map((r) => ({ ...r, group: 0 })));
  for (const c of configs) {
    const bar = progress(`${methodLabel(c)} g${c.group}`, model.config.nLayers);
    const q = quantizeWithMethod(model, c, windows, 'auto', () => bar.tick());
    bar.done();
    (meta['seconds'] as Record<string, number>)[`${methodLabel(c)} g${c.group}`] = Number(q.seconds.toFixed(1));
    measure(`${q.label} g${c.group}`, (x) => measureModes(model, x, q, c.group === -1 ? [...MODES, 'w4a8-pc'] : MODES, { ctx: CTX }));
  }
  await render(rows, meta, out);
}

/** `--add awq --smooth 0.5 [--group G]`: quantize one more configuration and append its rows to accuracy.json. */
async function addConfig(out: string): Promise<void> {
  const { rows, ...meta } = JSON.parse(fs.readFileSync(path.join(out, 'accuracy.json'), 'utf8')) as { rows: AccuracyRow[] } & Record<string, unknown>;
  const method = arg('--add', 'awq') as MethodOptions['method'];
  const smooth = process.argv.includes('--smooth') ? Number(arg('--smooth', '0.5')) : undefined;
  const c: MethodOptions = { method, group: Number(arg('--group', '128')), ...(smooth !== undefined ? { smooth } : {}), ...(method === 'gptq' ? { actOrder: true } : {}) };
  const model = loadModel(MODEL);
  const cal = meta['calibration'] as { samples: number };
  const windows = loadCalibration({ file: path.join(SHARED, 'data/calib/docs-calib.txt'), samples: cal.samples, len: 512, seed: 0 }, model.tokenizer, 1, model.config.maxSeq);
  const bar = progress(`${methodLabel(c)} g${c.group}`, model.config.nLayers);
  const q = quantizeWithMethod(model, c, windows, 'auto', () => bar.tick());
  bar.done();
  (meta['seconds'] as Record<string, number>)[`${q.label} g${c.group}`] = Number(q.seconds.toFixed(1));
  for (const t of TEXTS) {
    const ids = model.tokenizer.encode(fs.readFileSync(path.join(SHARED, 'data/eval', `${t}.txt`), 'utf8')).slice(0, MAX_TOKENS);
    for (const r of measureModes(model, ids, q, MODES, { ctx: CTX })) rows.push({ text: t, method: r.method, mode: r.mode, group: r.group, ppl: r.ppl });
    process.stderr.write(`${q.label} ${t}: ${rows.slice(-3).map((r) => `${r.mode} ${r.ppl.toFixed(4)}`).join(', ')}\n`);
  }
  fs.writeFileSync(path.join(out, 'accuracy.json'), JSON.stringify({ ...meta, rows }, null, 1) + '\n');
  await render(rows, meta, out);
}

if (import.meta.url === `file://${process.argv[1]}`) main().then(() => process.exit(0), (e: unknown) => { process.stderr.write(`${String((e as Error).message ?? e)}\n`); process.exit(1); });
