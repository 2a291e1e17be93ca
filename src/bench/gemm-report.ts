// Turns `bench gemm` rows into the printed table: per (shape, M) and impl, µs, TOP/s, effective
// GB/s and speed-ups vs cuBLAS fp16 and cuBLASLt int8 measured in the same run, plus IS over FS
// and IS over PC (>1 means IS is faster). Also validates JSON read back with --from.
import { fail } from '../core/errors.ts';
import { IMPLS, RUNNERS, type GemmImpl } from './gemm-runners.ts';
import type { GemmResults, GemmRow } from './gemm.ts';

/** Bytes moved per impl (for GB/s): the runner's own count (every impl of IMPLS has a runner). */
function bytesFor(impl: GemmImpl, M: number, K: number, N: number): number {
  const r = RUNNERS.find((x) => x.impl === impl);
  if (!r) fail('bench gemm', `no runner for impl '${impl}'`);
  return r.bytes(M, K, N);
}

export function formatGemmTable(results: GemmResults): string {
  const lines = [`device ${results.device}  date ${results.date}  commit ${results.commit.slice(0, 12)}`];
  const head = ['shape', 'M', 'impl', 'µs', 'TOP/s', 'GB/s', '×fp16', '×int8'];
  const table: string[][] = [head];
  const groups = new Map<string, GemmRow[]>();
  for (const r of results.rows) {
    const key = `${r.shape}|${r.M}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push(r);
  }
  for (const rows of groups.values()) {
    const us = (impl: GemmImpl) => rows.find((r) => r.impl === impl)?.us ?? null;
    const ratio = (a: number | null, b: number | null) => (a && b ? (a / b).toFixed(2) : '-');
    for (const r of rows) {
      if (r.us === null) {
        table.push([r.shape, String(r.M), r.impl, 'n/a', '', '', '', r.note ?? '']);
        continue;
      }
      const s = r.us * 1e-6;
      table.push([r.shape, String(r.M), r.impl, r.us.toFixed(1), ((2 * r.M * r.N * r.K) / s / 1e12).toFixed(1),
        (bytesFor(r.impl, r.M, r.K, r.N) / s / 1e9).toFixed(0), ratio(us('fp16'), r.us), ratio(us('int8'), r.us)]);
    }
    const is = us('w4a8-is');
    if (is !== null && (us('w4a8-fs') !== null || us('w4a8-pc') !== null)) {
      table.push([rows[0]!.shape, String(rows[0]!.M), 'IS/FS', ratio(us('w4a8-fs'), is), 'IS/PC', ratio(us('w4a8-pc'), is), '', '']);
    }
  }
  const widths = head.map((_, c) => Math.max(...table.map((row) => row[c]!.length)));
  for (const row of table) lines.push(row.map((cell, c) => (c < 3 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd());
  return lines.join('\n');
}

/** Parse and check a results JSON written by `bench gemm --json`. */
export function parseGemmResults(text: string, file: string): GemmResults {
  return checkGemmResults(parseResultsJson(text, file), file);
}

/** JSON text of a `bench gemm` results file (single GEMMs or --layer), parsed. */
export function parseResultsJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    fail(file, `not JSON: ${(err as Error).message}`);
  }
}

/** Check parsed single-GEMM results (old impl spellings renamed in place). */
export function checkGemmResults(data: unknown, file: string): GemmResults {
  const d = data as Partial<GemmResults>;
  if (typeof d !== 'object' || d === null || typeof d.device !== 'string' || typeof d.date !== 'string' ||
    typeof d.commit !== 'string' || !Array.isArray(d.rows)) {
    fail(file, 'expected {"device", "date", "commit", "rows": [...]}');
  }
  // results written before the mode spellings were unified (e.g. bench/results/h100-gemm.json) name impls w4a8_is
  for (const r of d.rows) if (r && typeof r.impl === 'string') r.impl = r.impl.replace('_', '-') as GemmImpl;
  d.rows.forEach((r, i) => {
    const ok = r && typeof r.shape === 'string' && [r.K, r.N, r.M].every((v) => Number.isInteger(v) && v > 0) &&
      (IMPLS as readonly string[]).includes(r.impl) && (r.us === null || (typeof r.us === 'number' && r.us > 0));
    if (!ok) fail(file, `rows[${i}] is not {shape, K, N, M, impl, us}`);
  });
  return d as GemmResults;
}

/** The read row is a roofline for memory-bound GEMMs only: plotted up to this M. */
const READ_PLOT_MAX_M = 16;

/** Speed-up over cuBLAS fp16 of the same (shape, M) for every timed row (the plot's points). */
export function gemmSpeedupPoints(results: GemmResults): { shape: string; M: number; impl: string; speedup: number }[] {
  const fp16 = new Map<string, number>();
  for (const r of results.rows) if (r.impl === 'fp16' && r.us) fp16.set(`${r.shape}|${r.M}`, r.us);
  const points = [];
  for (const r of results.rows) {
    if (r.impl === 'read' && r.M > READ_PLOT_MAX_M) continue;
    const base = fp16.get(`${r.shape}|${r.M}`);
    if (r.us && base) points.push({ shape: r.shape, M: r.M, impl: r.impl, speedup: base / r.us });
  }
  return points;
}

/** The ratios the summary reports: `num`'s time over `den`'s, so > 1 means `den` is faster. */
const SUMMARY_RATIOS: { label: string; num: GemmImpl; den: GemmImpl }[] = [
  { label: 'IS ×fp16', num: 'fp16', den: 'w4a8-is' },
  { label: 'IS ×int8', num: 'int8', den: 'w4a8-is' },
  { label: 'IS/FS', num: 'w4a8-fs', den: 'w4a8-is' },
  { label: 'IS/PC', num: 'w4a8-pc', den: 'w4a8-is' },
  { label: 'IS ×read', num: 'read', den: 'w4a8-is' },
  { label: 'fp16-gemv ×fp16', num: 'fp16', den: 'fp16-gemv' },
];

/**
 * Per M, over all shapes: min / median / max of each ratio in SUMMARY_RATIOS (speed-ups of IS over
 * cuBLAS fp16 and cuBLASLt int8, and IS against FS and PC). Ratios missing from the run are left out.
 */
export function formatGemmSummary(results: GemmResults): string {
  const time = new Map<string, number>();
  for (const r of results.rows) if (r.us) time.set(`${r.shape}|${r.M}|${r.impl}`, r.us);
  const shapes = [...new Set(results.rows.map((r) => r.shape))];
  const ms = [...new Set(results.rows.map((r) => r.M))].sort((a, b) => a - b);
  const head = ['M', ...SUMMARY_RATIOS.map((s) => `${s.label} min/med/max`)];
  const table = [head];
  for (const M of ms) {
    const cells = SUMMARY_RATIOS.map(({ num, den }) => {
      const v = shapes
        .map((s) => [time.get(`${s}|${M}|${num}`), time.get(`${s}|${M}|${den}`)])
        .filter((p): p is [number, number] => p[0] !== undefined && p[1] !== undefined)
        .map(([a, b]) => a / b)
        .sort((a, b) => a - b);
      if (v.length === 0) return '-';
      const med = v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
      return `${v[0]!.toFixed(2)} / ${med.toFixed(2)} / ${v[v.length - 1]!.toFixed(2)}`;
    });
    table.push([String(M), ...cells]);
  }
  const widths = head.map((_, c) => Math.max(...table.map((row) => row[c]!.length)));
  const lines = table.map((row) => row.map((cell, c) => cell.padStart(widths[c]!)).join('  '));
  return [`summary over ${shapes.length} shape(s) (ratio > 1: IS, or fp16-gemv, faster)`, ...lines].join('\n');
}
