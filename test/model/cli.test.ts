// The eval / generate / bench cpu commands end to end on stories260K (fast), and their error lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const STORIES = path.join(ROOT, '../shared/models/stories260K');
const skip = fs.existsSync(STORIES) ? false : `shared model missing: ${STORIES}`;

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/intscale.js'), ...args], { encoding: 'utf8', env: { ...process.env, INTSCALE_QUIET: '1' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('generate streams the greedy story and reports tokens/s', { skip }, () => {
  const r = cli('generate', STORIES, '--max-new', '20', '--device', 'cpu');
  assert.equal(r.code, 0, r.err);
  assert.ok(r.out.startsWith('Once upon a time, there was a little girl named Lily.'), r.out);
  assert.match(r.err, /^20 tokens, [0-9.]+ tokens\/s/);
  const echo = cli('generate', STORIES, '--prompt', 'Once upon a time, Tom', '--max-new', '5', '--echo', '--device', 'cpu');
  assert.equal(echo.code, 0, echo.err);
  assert.ok(echo.out.startsWith('Once upon a time, Tom'), echo.out);
});

test('eval --json prints {ppl, tokens, nll, ctx}; bench cpu --json prints tokens/s', { skip }, () => {
  const text = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-cli-')), 'story.txt');
  fs.writeFileSync(text, 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. '.repeat(8));
  const r = cli('eval', STORIES, '--text', text, '--ctx', '64', '--json', '--device', 'cpu');
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out) as { ppl: number; tokens: number; nll: number; ctx: number };
  assert.equal(j.ctx, 64);
  assert.ok(j.tokens > 100);
  assert.ok(j.ppl > 1 && j.ppl < 20, `a model trained on such stories finds them easy: ppl ${j.ppl}`);
  assert.ok(Math.abs(Math.exp(j.nll / j.tokens) - j.ppl) < 1e-9 * j.ppl);
  const b = cli('bench', 'cpu', '--model', STORIES, '--prefill', '64', '--decode', '16', '--runs', '1', '--json');
  assert.equal(b.code, 0, b.err);
  const bj = JSON.parse(b.out) as { prefillTokensPerSecond: number; decodeTokensPerSecond: number };
  assert.ok(bj.prefillTokensPerSecond > 0 && bj.decodeTokensPerSecond > 0);
});

test('bad input: one intscale: line, exit 1', () => {
  const missing = cli('eval', path.join(ROOT, 'no-such-model'), '--text', fileURLToPath(import.meta.url));
  assert.equal(missing.code, 1);
  assert.match(missing.err, /^intscale: .*no-such-model: no such file or directory\n$/);
  const badCtx = cli('eval', STORIES, '--text', 'x.txt', '--ctx', '1', '--device', 'cpu');
  assert.equal(badCtx.code, 1);
  assert.match(badCtx.err, /^intscale: --ctx: must be an integer ≥ 2/);
  const noText = cli('eval', STORIES, '--text', path.join(ROOT, 'no-such.txt'), '--device', 'cpu');
  assert.equal(noText.code, 1);
  assert.match(noText.err, /^intscale: .*no-such\.txt: cannot read the text file: no such file or directory \(ENOENT\)\n$/);
});
