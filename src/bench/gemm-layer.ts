// `intscale bench gemm --layer ARCH`: one decoder layer's GEMM chain (qkv → o → gate_up → down,
// the shapes of SHAPE_SETS[ARCH]) as the engine runs it: consecutive launches in one CUDA graph,
// with programmatic dependent launch for our kernels (cuBLAS takes none), layers rotating over
// enough weight copies to exceed 2× L2. Reported per layer: µs, the bytes the chain must move,
// and the device-to-device copy bandwidth measured in the same run for reference.
import { performance } from 'node:perf_hooks';
import { fail } from '../core/errors.ts';
import { progress } from '../core/progress.ts';
import type { Gpu, Stream } from '../gpu/runtime.ts';
import { currentCommit, median, timeGraph } from './gemm.ts';
import { SHAPE_SETS, type GemmShape } from './gemm-shapes.ts';
import { IMPLS, type GemmImpl, type GemmRunner, type PreparedGemm } from './gemm-runners.ts';

export interface LayerRow {
  /** e.g. 'llama2-7b.layer' */
  shape: string;
  M: number;
  impl: GemmImpl;
  /** Median µs per layer (4 GEMMs); null when the impl cannot run one of them (see `note`). */
  us: number | null;
  /** Bytes the chain must move at least (weights + scales + activations + outputs of the 4 GEMMs). */
  bytes: number;
  note?: string;
  /** The kernel entry point of each GEMM, in chain order (W4 impls). */
  kernels?: string[];
}

export interface LayerResults {
  device: string;
  date: string;
  commit: string;
  /** Device-to-device copy bandwidth measured in this run, (read + write bytes) / s, in GB/s. */
  copyGBs: number;
  rows: LayerRow[];
}

/** Layers per graph (as many as a 7B/8B model has): the chain's launch-to-launch overlap is timed, not its ramp. */
const LAYERS_PER_GRAPH = 32;
const TRIALS = 10;

/** The GEMM chain of one layer of `arch` (a SHAPE_SETS name), in the engine's order. */
export function layerShapes(arch: string): GemmShape[] {
  const set = SHAPE_SETS[arch];
  if (!set) fail('--layer', `unknown architecture '${arch}' (known: ${Object.keys(SHAPE_SETS).join(', ')})`);
  return set;
}

/** Parse `--layer llama2-7b,llama3-8b`. */
export function parseLayerArchs(text: string): string[] {
  const archs = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (archs.length === 0) fail('--layer', 'no architecture given');
  for (const a of archs) layerShapes(a);
  return archs;
}

export function runLayerBench(gpu: Gpu, archs: string[], ms: number[], runners: GemmRunner[], trials = TRIALS): LayerResults {
  const stream = gpu.stream();
  const bar = progress('bench gemm --layer', archs.length * ms.length * runners.length);
  const rows: LayerRow[] = [];
  try {
    for (const arch of archs) {
      for (const M of ms) {
        for (const runner of runners) {
          rows.push(measureLayer(gpu, stream, runner, arch, M, trials));
          bar.tick();
        }
        gpu.emptyCache();
      }
    }
  } finally {
    bar.done();
    stream.destroy();
  }
  return { device: gpu.name, date: new Date().toISOString(), commit: currentCommit(), copyGBs: measureCopyGBs(gpu), rows };
}

function measureLayer(gpu: Gpu, stream: Stream, runner: GemmRunner, arch: string, M: number, trials: number): LayerRow {
  const shapes = layerShapes(arch);
  const bytes = shapes.reduce((sum, s) => sum + runner.bytes(M, s.K, s.N), 0);
  const row = { shape: `${arch}.layer`, M, impl: runner.impl, bytes };
  for (const s of shapes) {
    const why = runner.unsupported?.(M, s.K, s.N);
    if (why) return { ...row, us: null, note: `${s.name}: ${why}` };
  }
  const layerWeights = shapes.reduce((sum, s) => sum + runner.weightBytes(s.K, s.N), 0);
  const copies = Math.max(2, Math.ceil((2 * gpu.l2Bytes) / layerWeights));
  const prepared: PreparedGemm[] = [];
  try {
    for (const s of shapes) prepared.push(runner.prepare(gpu, M, s.K, s.N, copies));
    const chain: PreparedGemm = {
      launch: (copy, st, pdl) => {
        for (const p of prepared) p.launch(copy, st, pdl);
      },
      destroy: () => {},
    };
    const us = timeGraph(gpu, stream, chain, copies, trials, { minLaunches: LAYERS_PER_GRAPH, pdl: true });
    const kernels = prepared.map((p) => p.kernel).filter((k): k is string => k !== undefined);
    return kernels.length ? { ...row, us, kernels } : { ...row, us };
  } catch (err) {
    return { ...row, us: null, note: (err as Error).message.split('\n')[0] };
  } finally {
    for (const p of prepared) p.destroy();
  }
}

/** (read + write) GB/s of a 1 GiB device-to-device copy, median of 5 after a warm-up. */
function measureCopyGBs(gpu: Gpu): number {
  const bytes = 2 ** 30;
  const a = gpu.alloc(bytes);
  const b = gpu.alloc(bytes);
  try {
    gpu.copy(b, a, bytes);
    gpu.sync();
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      gpu.copy(b, a, bytes);
      gpu.sync();  // a device-to-device cuMemcpy returns before the copy is done
      times.push((performance.now() - t0) / 1000);
    }
    return (2 * bytes) / median(times) / 1e9;
  } finally {
    a.free();
    b.free();
  }
}

/** The layer table: µs per layer, GB/s of the chain's bytes, % of copy bandwidth, × cuBLAS fp16 and × read. */
export function formatLayerTable(results: LayerResults): string {
  const lines = [`device ${results.device}  date ${results.date}  commit ${results.commit.slice(0, 12)}  copy ${results.copyGBs.toFixed(0)} GB/s`];
  const head = ['layer', 'M', 'impl', 'µs', 'GB/s', '%copy', '×fp16', 'vs read'];
  const table: string[][] = [head];
  const key = (r: LayerRow) => `${r.shape}|${r.M}`;
  for (const r of results.rows) {
    const peers = results.rows.filter((p) => key(p) === key(r));
    const us = (impl: GemmImpl) => peers.find((p) => p.impl === impl)?.us ?? null;
    if (r.us === null) {
      table.push([r.shape, String(r.M), r.impl, 'n/a', '', '', '', r.note ?? '']);
      continue;
    }
    const gbs = r.bytes / (r.us * 1e-6) / 1e9;
    const fp16 = us('fp16'), read = us('read');
    table.push([r.shape, String(r.M), r.impl, r.us.toFixed(1), gbs.toFixed(0), `${((100 * gbs) / results.copyGBs).toFixed(0)}%`,
      fp16 ? (fp16 / r.us).toFixed(2) : '-', read ? (r.us / read).toFixed(2) : '-']);
  }
  const widths = head.map((_, c) => Math.max(...table.map((row) => row[c]!.length)));
  for (const row of table) lines.push(row.map((cell, c) => (c < 3 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd());
  lines.push('(GB/s: the chain\'s bytes / time; %copy: of the device copy measured in this run; vs read: time / the read chain of the W4A8-IS bytes)');
  return lines.join('\n');
}

/** Whether parsed results JSON is a `--layer` run (it carries the copy bandwidth). */
export function isLayerResults(data: unknown): data is LayerResults {
  return typeof data === 'object' && data !== null && 'copyGBs' in data;
}

/** Check results read back with --from (one-line errors naming the file). */
export function checkLayerResults(d: LayerResults, file: string): LayerResults {
  if (typeof d.device !== 'string' || typeof d.date !== 'string' || typeof d.commit !== 'string' ||
    !(typeof d.copyGBs === 'number' && d.copyGBs > 0) || !Array.isArray(d.rows)) {
    fail(file, 'expected {"device", "date", "commit", "copyGBs", "rows": [...]}');
  }
  d.rows.forEach((r, i) => {
    const ok = r && typeof r.shape === 'string' && Number.isInteger(r.M) && r.M > 0 && (IMPLS as readonly string[]).includes(r.impl) &&
      (r.us === null || (typeof r.us === 'number' && r.us > 0)) && typeof r.bytes === 'number' && r.bytes > 0;
    if (!ok) fail(file, `rows[${i}] is not {shape, M, impl, us, bytes}`);
  });
  return d;
}
