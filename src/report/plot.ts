// Charts for reports: a bar chart and a line chart from plain rows, rendered vega-lite → vega →
// SVG → PNG (@resvg/resvg-js), no browser. Used by `compare --plot` and `bench gemm`. An existing
// file is never replaced unless the caller asks (--force). The render stack (vega-lite, vega, resvg)
// loads on the first render, so building specs needs none of it (the GPU machine's test run
// carries no plot stack).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as vl from 'vega-lite';
import { fail } from '../core/errors.ts';
import { fsProblem } from '../core/fs-errors.ts';
import { removeOnInterrupt } from '../core/interrupt.ts';

export type Row = Record<string, string | number>;

export interface ChartOptions {
  title: string;
  /** Field on the x axis (categories for bars, numbers for lines). */
  x: string;
  /** Numeric field on the y axis. */
  y: string;
  /** Optional field splitting rows into colored series. */
  color?: string;
  xTitle?: string;
  yTitle?: string;
  /** Log-scale x (lines only), e.g. matrix sizes. */
  logX?: boolean;
  /** y axis starts at zero (default: true for bars, false for lines). */
  zeroY?: boolean;
  width?: number;
  height?: number;
}

/** Vega-lite spec of a bar chart (values printed on the bars). */
export function barChartSpec(rows: Row[], o: ChartOptions): vl.TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: o.title,
    width: o.width ?? 480,
    height: o.height ?? 300,
    background: 'white',
    data: { values: rows },
    encoding: {
      x: { field: o.x, type: 'nominal', sort: null, title: o.xTitle ?? o.x, axis: { labelAngle: 0 } },
      y: { field: o.y, type: 'quantitative', title: o.yTitle ?? o.y, scale: { zero: o.zeroY ?? true } },
      ...(o.color ? { color: { field: o.color, type: 'nominal' as const }, xOffset: { field: o.color } } : {}),
    },
    layer: [
      { mark: { type: 'bar' } },
      { mark: { type: 'text', dy: -6 }, encoding: { text: { field: o.y, type: 'quantitative', format: '.4~g' } } },
    ],
  } as vl.TopLevelSpec;
}

/** Vega-lite spec of a line chart with points. */
export function lineChartSpec(rows: Row[], o: ChartOptions): vl.TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: o.title,
    width: o.width ?? 520,
    height: o.height ?? 320,
    background: 'white',
    data: { values: rows },
    mark: { type: 'line', point: true },
    encoding: {
      x: {
        field: o.x, type: 'quantitative', title: o.xTitle ?? o.x,
        scale: o.logX ? { type: 'log', base: 2 } : {},
        // on a log axis, tick exactly the measured x values (sizes like 1, 16, 4096)
        ...(o.logX ? { axis: { values: [...new Set(rows.map((r) => Number(r[o.x])))].sort((a, b) => a - b), format: '~s' } } : {}),
      },
      y: { field: o.y, type: 'quantitative', title: o.yTitle ?? o.y, scale: { zero: o.zeroY ?? false } },
      ...(o.color ? { color: { field: o.color, type: 'nominal' as const } } : {}),
    },
  } as vl.TopLevelSpec;
}

/** Render a vega-lite spec to SVG text. */
export async function renderSvg(spec: vl.TopLevelSpec): Promise<string> {
  const [vlite, vega] = await Promise.all([import('vega-lite'), import('vega')]);
  const compiled = vlite.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Render a vega-lite spec to a PNG file: written to a temp name beside it, then moved into place;
 *  an existing `file` is refused unless `overwrite` (checked again at the moment of writing). */
export async function writeChartPng(spec: vl.TopLevelSpec, file: string, scale = 2, overwrite = false): Promise<void> {
  if (!overwrite && fs.existsSync(file)) fail(file, 'already exists (use --force to overwrite it)');
  const svg = await renderSvg(spec);
  const { Resvg } = await import('@resvg/resvg-js');
  const png = new Resvg(svg, { fitTo: { mode: 'zoom', value: scale }, font: { loadSystemFonts: true }, background: 'white' }).render().asPng();
  const tmp = path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.tmp-${process.pid}`);
  const guard = removeOnInterrupt(tmp);
  try {
    fs.writeFileSync(tmp, png);
    if (overwrite) fs.renameSync(tmp, file);
    else fs.linkSync(tmp, file); // fails with EEXIST instead of replacing a file that appeared meanwhile
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') fail(file, 'already exists (use --force to overwrite it)');
    fail(file, `cannot write plot (${fsProblem(e) ?? (e as Error).message})`);
  } finally {
    try { fs.rmSync(tmp, { force: true }); } catch { /* best effort */ }
    await guard.release();
  }
}

export async function barChartPng(rows: Row[], o: ChartOptions, file: string, overwrite = false): Promise<void> {
  if (rows.length === 0) fail(file, 'no rows to plot');
  await writeChartPng(barChartSpec(rows, o), file, 2, overwrite);
}

export async function lineChartPng(rows: Row[], o: ChartOptions, file: string, overwrite = false): Promise<void> {
  if (rows.length === 0) fail(file, 'no rows to plot');
  await writeChartPng(lineChartSpec(rows, o), file, 2, overwrite);
}
