// `intscale bench e2e`: end-to-end prefill and decode speed of the GPU engine on shape-true random
// models (`--arch`), every mode in one process. Per (arch, batch, mode): `batch` random prompts of
// `prompt` tokens are prefilled (packed into engine steps; host clock around the synchronized
// prefill, after a batch-1 warm-up that compiles the mode's kernels), then `gen` decode steps are
// replayed from the captured CUDA graph and timed with CUDA events (one event pair around all
// replays; the graph's own warm-up step and capture are outside).
import { fail } from '../core/errors.ts';
import { Rng } from '../core/rng.ts';
import { progress } from '../core/progress.ts';
import type { Gpu } from '../gpu/runtime.ts';
import { archPreset } from '../model/arch-presets.ts';
import { quantizeDeviceModel, type DeviceModel } from '../backends/cuda/device-model.ts';
import type { Mode } from '../core/modes.ts';
import { CudaEngine, GREEDY } from '../backends/cuda/engine.ts';
import { EngineKernels } from '../backends/cuda/kernels.ts';
import { randomDeviceModel } from '../backends/cuda/load-device.ts';
import { prefill } from '../backends/cuda/run.ts';
import { decodeTimeline, type TimelineRow } from '../backends/cuda/timeline.ts';
import { currentCommit } from './gemm.ts';

export interface E2eRow {
  arch: string;
  batch: number;
  prompt: number;
  gen: number;
  mode: Mode;
  prefill_ms: number;
  decode_ms_per_token: number;
  tokens_per_s: number;
  /** Whether decode replayed a CUDA graph (false: eager launches, a mixture of experts above batch
   *  16); absent in files written before it was recorded (graphs, except Mixtral's). */
  graph?: boolean;
}

export interface E2eTimeline {
  arch: string;
  batch: number;
  mode: Mode;
  /** µs of one decode step in the instrumented graph (event nodes between ops) */
  step_us: number;
  ops: TimelineRow[];
}

export interface E2eResults {
  device: string;
  commit: string;
  date: string;
  rows: E2eRow[];
  /** With --timeline: per (arch, batch, mode), the time of each op of one decode step. */
  timelines?: E2eTimeline[];
}

export interface E2eOptions {
  archs: string[];
  batches: number[];
  prompt: number;
  gen: number;
  modes: Mode[];
  /** Decoder layers (default: the architecture's). */
  layers?: number;
  /** Tokens per engine step during prefill. */
  maxRows?: number;
  /** Also measure each decode step's per-op timeline. */
  timeline?: boolean;
  seed?: number;
}

export function runE2eBench(gpu: Gpu, o: E2eOptions): E2eResults {
  const rows: E2eRow[] = [];
  const timelines: E2eTimeline[] = [];
  const kernels = new EngineKernels(gpu);
  const stream = gpu.stream();
  const bar = progress('bench e2e', o.archs.length * o.modes.length * o.batches.length);
  for (const arch of o.archs) {
    const config = archPreset(arch, o.layers);
    const fp16 = randomDeviceModel(gpu, kernels, stream, config, o.seed ?? 1);
    try {
      for (const mode of o.modes) {
        const model: DeviceModel = mode === 'fp16' ? fp16 : quantizeDeviceModel(gpu, kernels, stream, fp16, mode);
        try {
          warmUp(gpu, model, kernels, o);
          for (const batch of o.batches) {
            const m = measure(gpu, model, kernels, batch, o);
            rows.push({ arch, ...m.row });
            if (m.timeline) timelines.push({ arch, batch, mode, ...m.timeline });
            bar.tick();
          }
        } finally {
          if (model !== fp16) model.free();
          gpu.emptyCache();
        }
      }
    } finally {
      fp16.free();
      gpu.emptyCache();
    }
  }
  bar.done();
  stream.destroy();
  return { device: gpu.name, commit: currentCommit(), date: new Date().toISOString(), rows, ...(o.timeline ? { timelines } : {}) };
}

function randomPrompts(batch: number, len: number, vocab: number, seed: number): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: batch }, () => Array.from({ length: len }, () => rng.int(3, vocab - 1)));
}

/** One short prefill + decode so that the mode's modules are compiled before anything is timed. */
function warmUp(gpu: Gpu, model: DeviceModel, kernels: EngineKernels, o: E2eOptions): void {
  const engine = new CudaEngine(gpu, model, { maxBatch: 1, maxSeq: Math.min(o.prompt, 64) + 2 }, kernels);
  try {
    const { first } = prefill(engine, randomPrompts(1, Math.min(o.prompt, 64), model.config.vocabSize, 7), GREEDY);
    engine.beginDecode(first, [Math.min(o.prompt, 64)]);
    engine.decode(1, 1, GREEDY, false);
    engine.stream.sync();
  } finally {
    engine.destroy();
  }
}

const TIMELINE_STEPS = 24;  // 1 warm-up + 20 timed replays + slack, per variant (state restored in between)

function measure(gpu: Gpu, model: DeviceModel, kernels: EngineKernels, batch: number, o: E2eOptions):
    { row: Omit<E2eRow, 'arch'>; timeline?: { step_us: number; ops: TimelineRow[] } } {
  const engine = new CudaEngine(gpu, model, {
    maxBatch: batch, maxSeq: o.prompt + o.gen + 1 + (o.timeline ? TIMELINE_STEPS : 0), maxRows: Math.max(batch, o.maxRows ?? 8192),
  }, kernels);
  try {
    const prompts = randomPrompts(batch, o.prompt, model.config.vocabSize, 11 + batch);
    gpu.sync();
    const t0 = performance.now();
    const { first } = prefill(engine, prompts, GREEDY);
    const prefillMs = performance.now() - t0;
    engine.beginDecode(first, prompts.map((p) => p.length));
    if (engine.graphable(batch)) engine.decodeGraph(batch, GREEDY);  // warm-up step + capture (the state is left as it was)
    else engine.prepareDecode(batch);  // a mixture of experts above batch 16 decodes eagerly: its warm-up step only
    const start = gpu.event(), end = gpu.event();
    start.record(engine.stream);
    engine.decode(batch, o.gen, GREEDY);
    end.record(engine.stream);
    end.sync();
    const ms = end.elapsedMsSince(start);
    start.destroy();
    end.destroy();
    const row = {
      batch, prompt: o.prompt, gen: o.gen, mode: model.mode, prefill_ms: round(prefillMs),
      decode_ms_per_token: round(ms / o.gen, 4), tokens_per_s: round((batch * o.gen) / (ms / 1000), 1),
      graph: engine.graphable(batch),
    };
    if (!o.timeline || !engine.graphable(batch)) return { row };  // (timelines time graph variants)
    const t = decodeTimeline(engine, batch, 20);
    return { row, timeline: { step_us: t.stepUs, ops: t.rows } };
  } finally {
    engine.destroy();
  }
}

const round = (v: number, digits = 3) => Number(v.toFixed(digits));

/** Aligned text table with the speed-up of each mode over fp16 (same arch, batch). */
export function formatE2eTable(r: E2eResults): string {
  const fp16 = new Map(r.rows.filter((x) => x.mode === 'fp16').map((x) => [`${x.arch}:${x.batch}`, x]));
  const head = ['arch', 'batch', 'mode', 'decode', 'prefill ms', 'decode ms/tok', 'tokens/s', '× fp16 decode', '× fp16 prefill'];
  const cells = r.rows.map((x) => {
    const f = fp16.get(`${x.arch}:${x.batch}`);
    return [x.arch, String(x.batch), x.mode, x.graph === undefined ? '-' : x.graph ? 'graph' : 'eager', x.prefill_ms.toFixed(1), x.decode_ms_per_token.toFixed(3), x.tokens_per_s.toFixed(1),
      f ? (x.tokens_per_s / f.tokens_per_s).toFixed(2) : '-', f ? (f.prefill_ms / x.prefill_ms).toFixed(2) : '-'];
  });
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((v, i) => (i < 4 ? v.padEnd(w[i]!) : v.padStart(w[i]!))).join('  ');
  const out = [`${r.device}  ${r.date.slice(0, 10)}  ${r.commit.slice(0, 10)}`, line(head), ...cells.map(line)];
  for (const t of r.timelines ?? []) {
    out.push('', `decode step timeline: ${t.arch} batch ${t.batch} ${t.mode}: ${t.step_us.toFixed(1)} µs per step (cost of each op kind: the step without it, left out)`);
    for (const op of t.ops) out.push(`  ${op.op.padEnd(14)} ${op.us.toFixed(1).padStart(9)} µs  ${(100 * op.us / t.step_us).toFixed(1).padStart(5)}%`);
  }
  return out.join('\n');
}

/** Validate a results file written by --json (for --from). */
export function parseE2eResults(text: string, where: string): E2eResults {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    fail(where, `not valid JSON (${(e as Error).message})`);
  }
  const o = v as Partial<E2eResults>;
  if (typeof o !== 'object' || o === null || !Array.isArray(o.rows) || typeof o.device !== 'string') fail(where, 'not a bench e2e result (device, rows)');
  for (const [i, row] of o.rows.entries()) {
    for (const k of ['arch', 'mode'] as const) if (typeof row?.[k] !== 'string') fail(where, `row ${i}: ${k} missing`);
    for (const k of ['batch', 'prompt', 'gen', 'prefill_ms', 'decode_ms_per_token', 'tokens_per_s'] as const)
      if (typeof row?.[k] !== 'number' || !Number.isFinite(row[k])) fail(where, `row ${i}: ${k} is not a number`);
  }
  return { device: o.device, commit: String(o.commit ?? 'unknown'), date: String(o.date ?? ''), rows: o.rows,
    ...(Array.isArray(o.timelines) ? { timelines: o.timelines } : {}) };
}
