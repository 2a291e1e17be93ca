// `bench gemm` logic that needs no GPU: shape/M parsing, the medians, the table's ratios and
// throughput columns, the plot's speed-up points and the results-JSON validation.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IntscaleError } from '../../src/core/errors.ts';
import { median, type GemmResults } from '../../src/bench/gemm.ts';
import { formatGemmSummary, formatGemmTable, gemmSpeedupPoints, parseGemmResults } from '../../src/bench/gemm-report.ts';
import { RUNNERS, w4WeightBytes } from '../../src/bench/gemm-runners.ts';
import { checkLayerResults, formatLayerTable, isLayerResults, layerShapes, parseLayerArchs, type LayerResults } from '../../src/bench/gemm-layer.ts';
import { layerPlotSpec } from '../../src/bench/plot-layer.ts';
import { parseMs, parseShapes, SHAPE_SETS } from '../../src/bench/gemm-shapes.ts';

const RESULTS: GemmResults = {
  device: 'test GPU', date: '2026-01-01T00:00:00Z', commit: '0123456789abcdef',
  rows: [
    { shape: 's', K: 4096, N: 4096, M: 16, impl: 'fp16', us: 30 },
    { shape: 's', K: 4096, N: 4096, M: 16, impl: 'int8', us: 20 },
    { shape: 's', K: 4096, N: 4096, M: 16, impl: 'w4a8-is', us: 10 },
    { shape: 's', K: 4096, N: 4096, M: 16, impl: 'w4a8-fs', us: 12 },
    { shape: 's', K: 4096, N: 4096, M: 16, impl: 'w4a8-pc', us: 8 },
    { shape: 's', K: 4096, N: 4096, M: 16, impl: 'w4a16', us: null, note: 'unsupported here' },
  ],
};

test('shape sets hold the llama2-7b / llama3-8b (K, N) pairs; KxN items parse; bad items are one-line errors', () => {
  assert.deepEqual(SHAPE_SETS['llama2-7b']!.map((s) => [s.K, s.N]), [[4096, 12288], [4096, 4096], [4096, 22016], [11008, 4096]]);
  assert.deepEqual(SHAPE_SETS['llama3-8b']!.map((s) => [s.K, s.N]), [[4096, 6144], [4096, 4096], [4096, 28672], [14336, 4096]]);
  assert.deepEqual(parseShapes('llama3-8b,128x256').map((s) => s.name).slice(-2), ['llama3-8b.down', '128x256']);
  assert.throws(() => parseShapes('gpt5'), (e: unknown) => e instanceof IntscaleError && /--shapes: unknown shape 'gpt5'/.test(e.message));
  assert.deepEqual(parseMs('1, 4,4096'), [1, 4, 4096]);
  for (const bad of ['0', '1,x', '', '2.5']) assert.throws(() => parseMs(bad), IntscaleError);
});

test('median of odd and even counts', () => {
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([4, 1, 3, 2]), 2.5);
});

test('the table shows µs, TOP/s, GB/s, ratios vs fp16 and int8, IS/FS and IS/PC, and n/a rows', () => {
  const lines = formatGemmTable(RESULTS).split('\n');
  const row = (impl: string) => lines.find((l) => l.split(/\s+/)[2] === impl)!.split(/\s+/);
  const is = row('w4a8-is');
  assert.equal(is[3], '10.0');
  assert.equal(is[4], ((2 * 16 * 4096 * 4096) / 10e-6 / 1e12).toFixed(1));
  const isBytes = RUNNERS.find((r) => r.impl === 'w4a8-is')!.bytes(16, 4096, 4096);
  assert.equal(is[5], (isBytes / 10e-6 / 1e9).toFixed(0));
  assert.equal(is[6], '3.00'); // 30 / 10
  assert.equal(is[7], '2.00'); // 20 / 10
  const summary = row('IS/FS');
  assert.equal(summary[3], '1.20'); // FS 12 / IS 10
  assert.equal(summary[5], '0.80'); // PC 8 / IS 10
  assert.match(lines.find((l) => l.includes('w4a16'))!, /n\/a.*unsupported here/);
});

test('plot points are speed-ups over fp16 of the same shape and M; null timings are left out', () => {
  const pts = gemmSpeedupPoints(RESULTS);
  assert.deepEqual(pts.map((p) => [p.impl, p.speedup]),
    [['fp16', 1], ['int8', 1.5], ['w4a8-is', 3], ['w4a8-fs', 2.5], ['w4a8-pc', 3.75]]);
});

test('results JSON: a written file parses back; malformed ones are one-line errors naming the file', () => {
  assert.deepEqual(parseGemmResults(JSON.stringify(RESULTS), 'r.json'), RESULTS);
  const bad = [
    '{', '[]', JSON.stringify({ ...RESULTS, rows: 3 }),
    JSON.stringify({ ...RESULTS, rows: [{ ...RESULTS.rows[0], impl: 'magic' }] }),
    JSON.stringify({ ...RESULTS, rows: [{ ...RESULTS.rows[0], us: -1 }] }),
    JSON.stringify({ ...RESULTS, rows: [{ ...RESULTS.rows[0], M: 0 }] }),
  ];
  for (const text of bad) {
    assert.throws(() => parseGemmResults(text, 'r.json'), (e: unknown) => e instanceof IntscaleError && /^r\.json: /.test(e.message), text);
  }
});

test('the summary gives min / median / max of each IS ratio per M over shapes', () => {
  const two: GemmResults = {
    ...RESULTS,
    rows: [
      ...RESULTS.rows,
      { shape: 't', K: 4096, N: 4096, M: 16, impl: 'fp16', us: 40 },
      { shape: 't', K: 4096, N: 4096, M: 16, impl: 'w4a8-is', us: 20 },
      { shape: 'u', K: 4096, N: 4096, M: 16, impl: 'fp16', us: 50 },
      { shape: 'u', K: 4096, N: 4096, M: 16, impl: 'w4a8-is', us: 10 },
      { shape: 'u', K: 4096, N: 4096, M: 16, impl: 'fp16-gemv', us: 40 },
    ],
  };
  const lines = formatGemmSummary(two).split('\n');
  assert.match(lines[0]!, /^summary over 3 shape\(s\)/);
  const row = lines.find((l) => /^\s*16\s/.test(l))!;
  // IS ×fp16: t 2.00, s 3.00, u 5.00 → min 2.00, median 3.00, max 5.00; IS ×int8 (s only): 2.00;
  // IS/FS (s only): 1.20; IS/PC (s only): 0.80; IS ×read: no read rows, so -; fp16-gemv ×fp16 (u only): 50/40
  assert.match(row, /2\.00 \/ 3\.00 \/ 5\.00\s+2\.00 \/ 2\.00 \/ 2\.00\s+1\.20 \/ 1\.20 \/ 1\.20\s+0\.80 \/ 0\.80 \/ 0\.80\s+-\s+1\.25 \/ 1\.25 \/ 1\.25$/);
});

test('results JSON from before the spelling change (impl w4a8_is) reads back under the current names', () => {
  const old = { ...RESULTS, rows: RESULTS.rows.map((r) => ({ ...r, impl: r.impl.replace('-', '_') })) };
  assert.deepEqual(parseGemmResults(JSON.stringify(old), 'old.json').rows.map((r) => r.impl), RESULTS.rows.map((r) => r.impl));
});

test('the read row is the W4A8-IS weight + scale bytes; the layer table gives GB/s, % of copy, ×fp16 and time vs read', () => {
  const read = RUNNERS.find((r) => r.impl === 'read')!;
  assert.equal(read.bytes(16, 4096, 11008), 11008 * 4096 / 2 + 32 * 11008 * 4 + 11008);
  assert.equal(read.bytes(1, 4096, 4096), w4WeightBytes('w4a8-is', 4096, 4096));
  assert.equal(read.bytes(1, 4096, 4096), RUNNERS.find((r) => r.impl === 'w4a8-is')!.weightBytes(4096, 4096));
  const layers: LayerResults = {
    device: 'test GPU', date: '2026-01-01T00:00:00Z', commit: 'abc', copyGBs: 4000,
    rows: [
      { shape: 'llama2-7b.layer', M: 1, impl: 'fp16', us: 100, bytes: 400e6 },
      { shape: 'llama2-7b.layer', M: 1, impl: 'w4a8-is', us: 40, bytes: 120e6 },
      { shape: 'llama2-7b.layer', M: 1, impl: 'read', us: 32, bytes: 112e6 },
      { shape: 'llama2-7b.layer', M: 1, impl: 'int8', us: null, bytes: 1, note: 'nope' },
    ],
  };
  const lines = formatLayerTable(layers).split('\n');
  const row = (impl: string) => lines.find((l) => l.split(/\s+/)[2] === impl)!.split(/\s+/);
  const is = row('w4a8-is');
  assert.deepEqual(is.slice(3), ['40.0', '3000', '75%', '2.50', '1.25']); // 120 MB / 40 µs = 3 TB/s; 100/40; 40/32
  assert.match(lines.find((l) => l.includes('int8'))!, /n\/a.*nope/);
  assert.deepEqual(parseLayerArchs('llama2-7b, llama3-8b'), ['llama2-7b', 'llama3-8b']);
  assert.deepEqual(layerShapes('llama3-8b').map((s) => s.name.split('.')[1]), ['qkv', 'o', 'gate_up', 'down']);
  assert.throws(() => parseLayerArchs('gpt5'), (e: unknown) => e instanceof IntscaleError && /--layer: unknown architecture 'gpt5'/.test(e.message));
});

test('plot points: the read row (a roofline for memory-bound GEMMs) only up to M = 16', () => {
  const rows = [16, 64].flatMap((M) => [
    { shape: 's', K: 4096, N: 4096, M, impl: 'fp16' as const, us: 30 },
    { shape: 's', K: 4096, N: 4096, M, impl: 'read' as const, us: 5 },
  ]);
  const pts = gemmSpeedupPoints({ ...RESULTS, rows });
  assert.deepEqual(pts.filter((p) => p.impl === 'read').map((p) => [p.M, p.speedup]), [[16, 6]]);
});

test('layer results JSON: recognized by its copy bandwidth, checked on --from, plotted as bars per arch and M', () => {
  const layers: LayerResults = {
    device: 'test GPU', date: '2026-01-01T00:00:00Z', commit: 'abc', copyGBs: 4000,
    rows: [
      { shape: 'llama2-7b.layer', M: 16, impl: 'w4a8-is', us: 40, bytes: 1e8 },
      { shape: 'llama2-7b.layer', M: 1, impl: 'read', us: 25, bytes: 1e8 },
      { shape: 'llama2-7b.layer', M: 1, impl: 'int8', us: null, bytes: 1, note: 'n/a' },
    ],
  };
  assert.ok(isLayerResults(layers));
  assert.ok(!isLayerResults(RESULTS));
  assert.deepEqual(checkLayerResults(JSON.parse(JSON.stringify(layers)), 'l.json'), layers);
  for (const bad of [{ ...layers, copyGBs: 0 }, { ...layers, rows: [{ ...layers.rows[0], impl: 'magic' }] }, { ...layers, rows: [{ ...layers.rows[0], bytes: -1 }] }]) {
    assert.throws(() => checkLayerResults(bad as LayerResults, 'l.json'), (e: unknown) => e instanceof IntscaleError && /^l\.json: /.test(e.message));
  }
  const spec = layerPlotSpec(layers) as unknown as { data: { values: { arch: string; M: number; impl: string }[] } };
  assert.deepEqual(spec.data.values.map((v) => [v.arch, v.M, v.impl]), [['llama2-7b', 16, 'w4a8-is'], ['llama2-7b', 1, 'read']]);
});
