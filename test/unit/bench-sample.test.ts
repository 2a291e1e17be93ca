// `intscale bench sample`: its rows compare sampleToken with the full-sort definition draw for draw,
// and bad options are one-line errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { formatSamplingBench, runSamplingBench } from '../../src/bench/sampling.ts';

test('bench sample: one row per (vocab, sigma, setting), every draw the same as the full sort', () => {
  const r = runSamplingBench({ vocab: [300, 1000], sigmas: [2], rows: 3, reps: 2, commit: 'test' });
  assert.equal(r.results.length, 2 * 3);
  for (const x of r.results) {
    assert.ok(x.same, `vocab ${x.vocab} T ${x.temperature} top-p ${x.topP}`);
    assert.ok(x.ms > 0 && x.msFullSort > 0);
  }
  assert.match(formatSamplingBench(r), /same draws\n300 +2 +0\.8 +0\.95 /);
});

test('bench sample: a bad --vocab is a one-line error', () => {
  const p = spawnSync(process.execPath, ['bin/intscale.js', 'bench', 'sample', '--vocab', '32000,x'], { encoding: 'utf8' });
  assert.equal(p.status, 1);
  assert.equal(p.stderr.trim().split('\n').length, 1, p.stderr);
  assert.match(p.stderr, /--vocab/);
});

test('bench sample --json writes the results it prints', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-bench-sample-'));
  try {
    const file = path.join(dir, 'sample.json');
    const out = execFileSync(process.execPath, ['bin/intscale.js', 'bench', 'sample', '--vocab', '200', '--sigma', '3', '--rows', '2', '--reps', '1', '--json', file], { encoding: 'utf8' });
    assert.match(out, /^host sampling, ms per row/);
    const r = JSON.parse(fs.readFileSync(file, 'utf8')) as { rows: number; results: { vocab: number; same: boolean }[] };
    assert.equal(r.rows, 2);
    assert.deepEqual(r.results.map((x) => [x.vocab, x.same]), [[200, true], [200, true], [200, true]]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('benchmarks label their results with git HEAD in a checkout, and with .device/commit only without a repository', () => {
  const run = (cwd: string) => execFileSync(process.execPath, [path.resolve('bin/intscale.js'), 'bench', 'sample', '--vocab', '50', '--sigma', '1', '--rows', '1', '--reps', '1'],
    { cwd, encoding: 'utf8', env: { ...process.env, INTSCALE_COMMIT: '' } }).split('\n')[0]!;
  const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  assert.match(run(process.cwd()), new RegExp(`commit ${head},`));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-commit-'));
  try {
    assert.match(run(dir), /commit unknown,/);
    fs.mkdirSync(path.join(dir, '.device'));
    fs.writeFileSync(path.join(dir, '.device', 'commit'), 'abc1234\n');
    assert.match(run(dir), /commit abc1234,/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
