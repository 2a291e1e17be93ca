// `bench serve`'s measurement (src/bench/serve.ts) on the tiny model: the seeded requests are the
// same every run; static and continuous batching do the same work (same new tokens, ids checked
// equal inside) and continuous needs fewer steps with fuller batches; the latencies are per request
// (TTFT ≤ end to end, medians ≤ p99s, the nearest-rank percentile exact on known lists); the table
// reports the ratio.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { arrivalTimes, formatServeTable, percentile, runServeBench, serveRequests } from '../../src/bench/serve.ts';
import { cpuStepBackend } from '../../src/serve/generate-continuous.ts';
import { tinyModel } from './tiny-model.ts';

test('bench serve: same requests every run; continuous = static in work, fewer steps, fuller batches', async () => {
  const o = { requests: 9, prompt: [2, 8] as [number, number], gen: [1, 12] as [number, number], seed: 4 };
  assert.deepEqual(serveRequests(o, 40), serveRequests(o, 40));
  const { prompts, maxNew } = serveRequests(o, 40);
  assert.ok(prompts.every((p) => p[0] === 1 && p.length >= 2 && p.length <= 8 && p.every((t) => t >= 1 && t < 40)));
  assert.ok(maxNew.every((n) => n >= 1 && n <= 12) && new Set(maxNew).size > 2, 'mixed lengths');
  const { model } = tinyModel('half', false);
  const backend = cpuStepBackend(model, 3, 24, 6);
  try {
    const [st, co] = await runServeBench(backend, 40, o);
    assert.equal(st!.mode, 'static');
    assert.equal(co!.mode, 'continuous');
    assert.equal(st!.new_tokens, maxNew.reduce((a, b) => a + b, 0), 'no stop ids: every request runs to its limit');
    assert.equal(co!.new_tokens, st!.new_tokens);
    assert.ok(co!.steps < st!.steps && co!.mean_batch > st!.mean_batch, `steps ${co!.steps} vs ${st!.steps}, batch ${co!.mean_batch} vs ${st!.mean_batch}`);
    for (const r of [st!, co!]) {
      const l = [r.ttft_p50_ms, r.ttft_p99_ms, r.tpot_p50_ms, r.tpot_p99_ms, r.e2e_p50_ms, r.e2e_p99_ms];
      assert.ok(l.every((v) => Number.isFinite(v) && v >= 0), `${r.mode}: ${l.join(' ')}`);
      assert.ok(r.ttft_p50_ms <= r.ttft_p99_ms && r.tpot_p50_ms <= r.tpot_p99_ms && r.e2e_p50_ms <= r.e2e_p99_ms, `${r.mode}: p50 ≤ p99`);
      assert.ok(r.ttft_p99_ms <= r.e2e_p99_ms && r.e2e_p99_ms <= r.seconds * 1000 + 1, `${r.mode}: within the run`);
    }
    const table = formatServeTable({ device: 'CPU', model: 'tiny', date: '2026-12-01T00:00:00Z', commit: 'abc', options: o, rows: [st!, co!] });
    assert.match(table, /continuous \/ static: [0-9.]+x new tokens\/s$/);
    assert.match(table, /TTFT ms p50\/p99/);
  } finally {
    backend.close();
  }
});

test('percentile: nearest rank', () => {
  const v = [5, 1, 4, 2, 3];
  assert.deepEqual([percentile(v, 0.5), percentile(v, 0.99), percentile(v, 0), percentile(v, 1), percentile(v, 0.2), percentile(v, 0.21)], [3, 5, 1, 5, 1, 2]);
  assert.deepEqual(v, [5, 1, 4, 2, 3], 'the input is not sorted in place');
  assert.ok(Number.isNaN(percentile([], 0.5)));
});

test('bench serve --rate: seeded Poisson arrivals; continuous batching under load gives the burst run\'s ids, latencies from each arrival', async () => {
  const t = arrivalTimes(2000, 50, 3);
  assert.deepEqual(t, arrivalTimes(2000, 50, 3), 'seeded');
  assert.notDeepEqual(t, arrivalTimes(2000, 50, 4));
  assert.ok(t[0] === 0 && t.every((v, i) => i === 0 || v > t[i - 1]!), 'increasing from 0');
  const meanGap = t.at(-1)! / (t.length - 1);
  assert.ok(Math.abs(meanGap - 20) < 2, `mean gap ${meanGap} ms at 50 requests/s`);
  const o = { requests: 7, prompt: [2, 6] as [number, number], gen: [1, 8] as [number, number], seed: 2, rate: 400 };
  const { maxNew } = serveRequests(o, 40);
  const { model } = tinyModel('half', false);
  const backend = cpuStepBackend(model, 2, 24, 6);
  try {
    const rows = await runServeBench(backend, 40, o);  // (fails inside if the ids differ from the burst's)
    assert.deepEqual(rows.map((r) => r.mode), ['continuous, arrivals']);
    const r = rows[0]!;
    assert.equal(r.new_tokens, maxNew.reduce((a, b) => a + b, 0));
    assert.ok(r.seconds * 1000 >= arrivalTimes(7, 400, 2).at(-1)!, 'the run lasts until the last arrival at least');
    assert.ok(r.ttft_p50_ms >= 0 && r.ttft_p50_ms <= r.ttft_p99_ms && r.ttft_p99_ms <= r.e2e_p99_ms);
    assert.match(formatServeTable({ device: 'CPU', model: 'tiny', date: '2026-12-01T00:00:00Z', commit: 'abc', options: o, rows }), /400 requests\/s \(Poisson/);
  } finally {
    backend.close();
  }
});
