import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { barChartPng, lineChartPng, renderSvg, barChartSpec } from '../../src/report/plot.ts';
import { IntscaleError } from '../../src/core/errors.ts';

function pngSize(file: string): [number, number] {
  const b = fs.readFileSync(file);
  assert.deepEqual([...b.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  return [b.readUInt32BE(16), b.readUInt32BE(20)];
}

test('bar and line charts render to PNG files with the data in them', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-plot-'));
  try {
    const rows = [{ mode: 'fp16', ppl: 26.51 }, { mode: 'w4a8-is', ppl: 27.93 }];
    const svg = await renderSvg(barChartSpec(rows, { title: 'ppl', x: 'mode', y: 'ppl' }));
    assert.match(svg, /w4a8-is/);
    assert.match(svg, /27\.93/);
    await barChartPng(rows, { title: 'ppl', x: 'mode', y: 'ppl' }, path.join(dir, 'bar.png'));
    const [w, h] = pngSize(path.join(dir, 'bar.png'));
    assert.ok(w > 400 && h > 300, `${w}x${h}`);
    const lines = [1, 16, 256].flatMap((m) => [{ m, v: m, k: 'a' }, { m, v: 2 * m, k: 'b' }]);
    await lineChartPng(lines, { title: 't', x: 'm', y: 'v', color: 'k', logX: true }, path.join(dir, 'line.png'));
    pngSize(path.join(dir, 'line.png'));
    await assert.rejects(barChartPng([], { title: 't', x: 'a', y: 'b' }, path.join(dir, 'empty.png')), IntscaleError);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['bar.png', 'line.png']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
