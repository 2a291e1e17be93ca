// The `bench gemm --layer --plot` PNG: one decoder layer's GEMM chain per impl as grouped bars of
// µs per layer against M, one panel per architecture, the `read` chain (the W4A8-IS bytes at
// streaming speed) among them as the floor. Rendering is src/report/plot.ts's.
import type { TopLevelSpec } from 'vega-lite';
import { fail } from '../core/errors.ts';
import { writeChartPng } from '../report/plot.ts';
import type { LayerResults } from './gemm-layer.ts';

export function layerPlotSpec(results: LayerResults): TopLevelSpec {
  const values = results.rows.filter((r) => r.us !== null).map((r) => ({ arch: r.shape.replace(/\.layer$/, ''), M: r.M, impl: r.impl, us: r.us! }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `One decoder layer's GEMM chain (qkv → o → gate_up → down, PDL) — ${results.device}`,
      subtitle: `${results.date.slice(0, 10)} ${results.commit.slice(0, 10)}; device copy ${results.copyGBs.toFixed(0)} GB/s`,
    },
    data: { values },
    facet: { field: 'arch', type: 'nominal', title: null },
    spec: {
      width: 420,
      height: 220,
      mark: 'bar',
      encoding: {
        x: { field: 'M', type: 'ordinal', sort: 'ascending', title: 'M (tokens)' },
        xOffset: { field: 'impl', type: 'nominal' },
        y: { field: 'us', type: 'quantitative', title: 'µs per layer' },
        color: { field: 'impl', type: 'nominal', title: 'impl' },
      },
    },
    config: { background: 'white' },
  };
}

/** Render and write the PNG. */
export async function writeLayerPlot(results: LayerResults, file: string, overwrite = false): Promise<void> {
  if (!results.rows.some((r) => r.us !== null)) fail(file, 'no layer timings to plot');
  await writeChartPng(layerPlotSpec(results), file, 2, overwrite);
}
