// What of the GPU engine's front end runs without a GPU: --device selection (explicit cuda refused
// with the reason, the default falling back to the CPU with one notice), the GPU engine's
// architecture limits, arch presets, and bench e2e's results: parsing, the ratio table, the plot spec.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Gpu } from '../../src/gpu/runtime.ts';
import { archPreset, ARCH_PRESETS } from '../../src/model/arch-presets.ts';
import { checkGpuConfig } from '../../src/backends/cuda/load-device.ts';
import { MODES, parseMode } from '../../src/core/modes.ts';
import { formatE2eTable, parseE2eResults, type E2eResults } from '../../src/bench/e2e.ts';
import { e2ePlotSpec } from '../../src/bench/plot-e2e.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MODEL = path.resolve(ROOT, '../shared/models/docs-llama-30m');
const noGpu = Gpu.unavailableReason();

test('arch presets carry the real shapes; the GPU engine accepts them and refuses what it cannot run', () => {
  const l3 = archPreset('llama3-8b');
  assert.deepEqual([l3.dim, l3.hiddenDim, l3.nHeads, l3.nKvHeads, l3.headDim, l3.vocabSize], [4096, 14336, 32, 8, 128, 128256]);
  assert.equal(l3.rope.scaling?.type, 'llama3');
  assert.equal(archPreset('llama2-7b', 2).nLayers, 2);
  for (const name of Object.keys(ARCH_PRESETS)) checkGpuConfig(archPreset(name), name);
  assert.throws(() => archPreset('gpt-5'), /--arch: unknown architecture 'gpt-5'/);
  assert.throws(() => checkGpuConfig({ ...l3, headDim: 96 }, 'm'), /head size 96 is not supported by the GPU attention kernels/);
  const mx = archPreset('mixtral-8x7b');
  assert.deepEqual([mx.dim, mx.hiddenDim, mx.nLayers, mx.nKvHeads, mx.nExperts, mx.nExpertsPerTok, mx.rope.theta], [4096, 14336, 32, 8, 8, 2, 1e6]);
  assert.throws(() => checkGpuConfig({ ...mx, nExperts: 32 }, 'm'), /32 experts exceed the GPU router's 16/);
  assert.throws(() => checkGpuConfig({ ...l3, hiddenDim: 20480 }, 'm'), /exceed the GPU row kernels/);
  for (const m of MODES) assert.equal(parseMode(m), m);
  // one spelling per mode: the old variants are errors that list the spellings
  for (const other of ['W4A8_IS', 'W4A8-IS', 'w4a8_is', 'is', 'FP16', 'w8a8']) {
    assert.throws(() => parseMode(other), /--mode: unknown mode '.*' \(fp16, w4a16, w4a8-fs, w4a8-is, w4a8-pc\)/);
  }
  assert.throws(() => parseMode('x', '--modes'), /--modes: unknown mode 'x'/);
});

test('--device: cuda without a GPU is one error line naming why; the default runs on the CPU with one notice', { skip: noGpu ? (fs.existsSync(MODEL) ? false : `skipped: needs ${MODEL}`) : 'skipped: a GPU is present (the CPU fallback is what this checks)' }, () => {
  const text = path.join(ROOT, 'README.md');
  const cli = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), ...args], { encoding: 'utf8', env: { ...process.env, INTSCALE_QUIET: '0' } });
  const cuda = cli('eval', MODEL, '--text', text, '--max-tokens', '40', '--device', 'cuda');
  assert.equal(cuda.status, 1);
  assert.match(cuda.stderr, /^intscale: --device cuda: no GPU: [^\n]*\n$/);
  const bad = cli('eval', MODEL, '--text', text, '--device', 'tpu');
  assert.match(bad.stderr, /^intscale: --device: expected cpu or cuda, got 'tpu'\n$/);
  const auto = cli('eval', MODEL, '--text', text, '--max-tokens', '40', '--json');
  assert.equal(auto.status, 0, auto.stderr);
  assert.equal(auto.stderr.split('\n').filter((l) => l.startsWith('note: running on the CPU (no GPU')).length, 1, auto.stderr);
  assert.ok(!auto.stderr.includes('intscale:'), 'a note is not an error line');
  assert.ok(JSON.parse(auto.stdout).ppl > 1);
  const mode = cli('eval', MODEL, '--text', text, '--device', 'cpu', '--mode', 'w4a8-is');
  assert.match(mode.stderr, /^intscale: --mode: is a GPU option/);
});

const RESULTS: E2eResults = {
  device: 'NVIDIA H200', commit: 'abc', date: '2026-12-01T00:00:00Z',
  rows: [
    { arch: 'llama2-7b', batch: 1, prompt: 512, gen: 128, mode: 'fp16', prefill_ms: 20, decode_ms_per_token: 5, tokens_per_s: 200 },
    { arch: 'llama2-7b', batch: 1, prompt: 512, gen: 128, mode: 'w4a8-is', prefill_ms: 10, decode_ms_per_token: 2.5, tokens_per_s: 400, graph: false },
    { arch: 'llama2-7b', batch: 16, prompt: 512, gen: 128, mode: 'fp16', prefill_ms: 200, decode_ms_per_token: 6, tokens_per_s: 2666.7 },
  ],
};

test('bench e2e results: round trip through JSON, ratios vs FP16 of the same (arch, batch), one plot panel per group in run order', () => {
  const back = parseE2eResults(JSON.stringify(RESULTS), 'r.json');
  assert.deepEqual(back.rows, RESULTS.rows);
  const table = formatE2eTable(back).split('\n');
  const is = table.find((l) => l.includes('w4a8-is'))!;
  assert.match(is, /2\.00\s+2\.00$/);  // decode 400/200, prefill 20/10
  assert.match(is, /w4a8-is\s+eager\s/);  // how it decoded (absent in older files: '-')
  assert.throws(() => parseE2eResults('{"device":"x","rows":[{"arch":"a","mode":"fp16","batch":"1"}]}', 'r.json'), /r\.json: row 0: batch is not a number/);
  assert.throws(() => parseE2eResults('nope', 'r.json'), /r\.json: not valid JSON/);
  const spec = e2ePlotSpec(back) as unknown as { columns: number; data: { values: { group: string; order: number; label: string }[] } };
  assert.equal(spec.columns, 2, 'a row of panels per arch: one column per batch size');
  const groups = spec.data.values.map((v) => v.group);
  assert.deepEqual([...new Set(groups)], ['llama2-7b · batch 1', 'llama2-7b · batch 16']);
  assert.deepEqual(spec.data.values.map((v) => v.label), ['1.00×', '2.00×', '1.00×']);
});
