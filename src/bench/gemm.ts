// `intscale bench gemm`: times each GEMM impl on each (shape, M) on the GPU. Each measurement is a
// CUDA graph of R launches that rotate over enough weight copies to exceed 2× L2 (so weights come
// from HBM, as in a real forward pass), warmed up, then timed with CUDA events per graph replay;
// the reported µs is the median replay time / R. Launch overhead from JS is thus excluded.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { progress } from '../core/progress.ts';
import type { Gpu, Stream } from '../gpu/runtime.ts';
import type { GemmShape } from './gemm-shapes.ts';
import type { GemmImpl, GemmRunner, PreparedGemm } from './gemm-runners.ts';

export interface GemmRow {
  shape: string;
  K: number;
  N: number;
  M: number;
  impl: GemmImpl;
  /** Median µs per GEMM; null when the impl could not run this shape (see `note`). */
  us: number | null;
  note?: string;
  /** The kernel entry point that ran (W4 impls). */
  kernel?: string;
}

export interface GemmResults {
  device: string;
  date: string;
  commit: string;
  rows: GemmRow[];
}

export interface GemmBenchOptions {
  shapes: GemmShape[];
  ms: number[];
  runners: GemmRunner[];
  /** Timed graph replays per measurement (median taken). */
  trials?: number;
  /** Launch with programmatic dependent launch (consecutive launches overlap; cuBLAS ignores it). */
  pdl?: boolean;
}

const TRIALS = 10;
const MIN_LAUNCHES_PER_GRAPH = 20;
const MAX_ROTATION_BYTES = 8 * 2 ** 30;

export function runGemmBench(gpu: Gpu, opts: GemmBenchOptions): GemmResults {
  const rows: GemmRow[] = [];
  const stream = gpu.stream();
  const total = opts.shapes.length * opts.ms.length * opts.runners.length;
  const bar = progress('bench gemm', total);
  for (const shape of opts.shapes) {
    for (const M of opts.ms) {
      for (const runner of opts.runners) {
        rows.push(measure(gpu, stream, runner, shape, M, opts.trials ?? TRIALS, opts.pdl === true));
        bar.tick();
      }
    }
    gpu.emptyCache();
  }
  bar.done();
  stream.destroy();
  return { device: gpu.name, date: new Date().toISOString(), commit: currentCommit(), rows };
}

function measure(gpu: Gpu, stream: Stream, runner: GemmRunner, shape: GemmShape, M: number, trials: number, pdl: boolean): GemmRow {
  const { K, N } = shape;
  const row = { shape: shape.name, K, N, M, impl: runner.impl };
  const why = runner.unsupported?.(M, K, N);
  if (why) return { ...row, us: null, note: why };
  const wBytes = runner.weightBytes(K, N);
  const copies = Math.max(2, Math.min(Math.ceil((2 * gpu.l2Bytes) / wBytes), Math.floor(MAX_ROTATION_BYTES / wBytes)));
  let prepared: PreparedGemm | undefined;
  try {
    prepared = runner.prepare(gpu, M, K, N, copies);
    const us = timeGraph(gpu, stream, prepared, copies, trials, { pdl });
    return prepared.kernel ? { ...row, us, kernel: prepared.kernel } : { ...row, us };
  } catch (err) {
    return { ...row, us: null, note: (err as Error).message.split('\n')[0] };
  } finally {
    prepared?.destroy();
  }
}

export interface GraphTiming {
  /** Launches per graph at least (rounded up to a multiple of `copies`); default 20. */
  minLaunches?: number;
  /** Capture the launches with programmatic dependent launch (impls that support it). */
  pdl?: boolean;
}

/** Median µs per launch over `trials` replays of a graph of R rotating launches. */
export function timeGraph(gpu: Gpu, stream: Stream, prepared: PreparedGemm, copies: number, trials: number,
  timing: GraphTiming = {}): number {
  const launches = Math.ceil((timing.minLaunches ?? MIN_LAUNCHES_PER_GRAPH) / copies) * copies;
  // One eager launch first: surfaces errors outside capture and does lazy one-time setup.
  prepared.launch(0, stream);
  stream.sync();
  const graph = gpu.capture(stream, () => {
    for (let i = 0; i < launches; i++) prepared.launch(i % copies, stream, timing.pdl);
  });
  const events = Array.from({ length: trials + 1 }, () => gpu.event());
  try {
    graph.launch(stream);
    graph.launch(stream);
    events[0]!.record(stream);
    for (let t = 0; t < trials; t++) {
      graph.launch(stream);
      events[t + 1]!.record(stream);
    }
    events[trials]!.sync();
    const us = events.slice(1).map((e, t) => (e.elapsedMsSince(events[t]!) * 1000) / launches);
    return median(us);
  } finally {
    graph.destroy();
    for (const e of events) e.destroy();
  }
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The commit measured: $INTSCALE_COMMIT (scripts/gpu-run.sh sets it), else git's HEAD, else
 *  .device/commit (a packed copy without its repository), else 'unknown'. (.device/commit comes
 *  after git: in a checkout it is whatever commit the last device run was packed at.) */
export function currentCommit(): string {
  if (process.env.INTSCALE_COMMIT) return process.env.INTSCALE_COMMIT;
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch { /* no repository here */ }
  try {
    return fs.readFileSync('.device/commit', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}
