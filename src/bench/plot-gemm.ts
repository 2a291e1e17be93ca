// The `bench gemm --plot` PNG: speed-up over cuBLAS fp16 (same run) against M, one line per impl,
// one panel per shape. Rendering (vega-lite → SVG → PNG, atomic write) is src/report/plot.ts's.
import type { TopLevelSpec } from 'vega-lite';
import { fail } from '../core/errors.ts';
import { writeChartPng } from '../report/plot.ts';
import type { GemmResults } from './gemm.ts';
import { gemmSpeedupPoints } from './gemm-report.ts';

export function gemmPlotSpec(results: GemmResults): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `GEMM speed-up over cuBLAS fp16 — ${results.device}`, subtitle: `${results.date.slice(0, 10)} ${results.commit.slice(0, 10)}` },
    data: { values: gemmSpeedupPoints(results) },
    facet: { field: 'shape', type: 'nominal', title: null },
    columns: 4,
    spec: {
      width: 220,
      height: 160,
      layer: [
        {
          mark: { type: 'line', point: true },
          encoding: {
            x: { field: 'M', type: 'quantitative', scale: { type: 'log', base: 2 }, title: 'M (tokens)' },
            y: { field: 'speedup', type: 'quantitative', title: '× cuBLAS fp16' },
            color: { field: 'impl', type: 'nominal', title: 'impl' },
          },
        },
        { mark: { type: 'rule', strokeDash: [4, 4], color: 'gray' }, encoding: { y: { datum: 1 } } },
      ],
    },
    config: { background: 'white' },
  };
}

/** Render and write the PNG. */
export async function writeGemmPlot(results: GemmResults, file: string, overwrite = false): Promise<void> {
  if (!results.rows.some((r) => r.impl === 'fp16' && r.us)) fail(file, 'no cuBLAS fp16 timings to plot speed-ups against');
  await writeChartPng(gemmPlotSpec(results), file, 2, overwrite);
}
