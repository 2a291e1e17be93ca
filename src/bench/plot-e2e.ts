// The `bench e2e --plot` PNG, like the Integer Scale paper's Figure 1: grouped bars of decode
// tokens/s per (arch, batch), one bar per mode, the speed-up over FP16 of the same run on top.
import type { TopLevelSpec } from 'vega-lite';
import { fail } from '../core/errors.ts';
import { writeChartPng } from '../report/plot.ts';
import type { E2eResults } from './e2e.ts';

export function e2ePlotSpec(r: E2eResults): TopLevelSpec {
  const fp16 = new Map(r.rows.filter((x) => x.mode === 'fp16').map((x) => [`${x.arch}:${x.batch}`, x.tokens_per_s]));
  const groups = [...new Set(r.rows.map((x) => `${x.arch} · batch ${x.batch}`))];
  const values = r.rows.map((x) => {
    const base = fp16.get(`${x.arch}:${x.batch}`);
    const group = `${x.arch} · batch ${x.batch}`;
    return { group, order: groups.indexOf(group), mode: x.mode, tokens_per_s: x.tokens_per_s,
      label: base ? `${(x.tokens_per_s / base).toFixed(2)}×` : '' };
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `Decode tokens/s, speed-up over FP16 on top — ${r.device}`,
      subtitle: `prompt ${r.rows[0]?.prompt ?? '?'}, gen ${r.rows[0]?.gen ?? '?'} · ${r.date.slice(0, 10)} ${r.commit.slice(0, 10)}` },
    data: { values },
    facet: { field: 'group', type: 'nominal', sort: { field: 'order' }, title: null, header: { labelFontSize: 11 } },
    columns: Math.min(4, new Set(r.rows.map((x) => x.batch)).size),  // a row per arch when it has ≤ 4 batches
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 170,
      height: 150,
      encoding: {
        x: { field: 'mode', type: 'nominal', sort: null, title: null, axis: { labels: false, ticks: false } },
        y: { field: 'tokens_per_s', type: 'quantitative', title: 'tokens/s' },
        color: { field: 'mode', type: 'nominal', sort: null, title: 'mode' },
      },
      layer: [
        { mark: { type: 'bar' } },
        { mark: { type: 'text', dy: -5, fontSize: 10 }, encoding: { text: { field: 'label' } } },
      ],
    },
    config: { background: 'white' },
  } as TopLevelSpec;
}

export async function writeE2ePlot(r: E2eResults, file: string): Promise<void> {
  if (r.rows.length === 0) fail(file, 'no rows to plot');
  await writeChartPng(e2ePlotSpec(r), file);
}
