// `intscale batch` end to end on stories260K (CPU, fast): JSON lines in input order whose
// completions equal `generate` of each prompt alone (greedy, and sampled with seed + index), with
// more prompts than --max-batch and steps smaller than a prompt; an existing --out is refused and
// left untouched; nothing is left behind under a temporary name.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const STORIES = path.join(ROOT, '../shared/models/stories260K');
const skip = fs.existsSync(STORIES) ? false : `shared model missing: ${STORIES}`;
const cli = (...args: string[]) => {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/intscale.js'), ...args], { encoding: 'utf8', env: { ...process.env, INTSCALE_QUIET: '1' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

const PROMPTS = ['Once upon a time', 'Tom had a red ball', 'The sun', 'Lily and her mom went to the big park to play', 'A dog'];

test('batch: 5 prompts over 2 slots in 6-row steps = generate of each alone (greedy and sampled); --out refused when it exists', { skip }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-batch-'));
  try {
    const prompts = path.join(dir, 'prompts.jsonl');
    fs.writeFileSync(prompts, `${PROMPTS.map((p, i) => JSON.stringify(i % 2 ? { prompt: p } : p)).join('\n')}\n`);
    for (const sampling of [[], ['--temperature', '0.8', '--seed', '5']]) {
      const out = path.join(dir, `out${sampling.length}.jsonl`);
      const r = cli('batch', STORIES, '--prompts', prompts, '--out', out, '--max-batch', '2', '--max-rows', '6', '--max-new', '16', '--device', 'cpu', ...sampling);
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, /^5 prompts, 80 new tokens on CPU in \d+ steps \([0-9.]+ sequences a step on 2 slots\)/);
      const lines = fs.readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { index: number; prompt: string; completion: string; new_tokens: number; finish: string });
      assert.deepEqual(lines.map((l) => [l.index, l.prompt, l.new_tokens, l.finish]), PROMPTS.map((p, i) => [i, p, 16, 'length']));
      PROMPTS.forEach((p, i) => {
        const seed = sampling.length ? ['--temperature', '0.8', '--seed', String(5 + i)] : [];
        const alone = cli('generate', STORIES, '--prompt', p, '--max-new', '16', '--device', 'cpu', ...seed);
        assert.equal(alone.code, 0, alone.err);
        assert.equal(lines[i]!.completion, alone.out.replace(/\n$/, ''), `prompt ${i} (${sampling.join(' ') || 'greedy'})`);
      });
      const again = cli('batch', STORIES, '--prompts', prompts, '--out', out, '--device', 'cpu');
      assert.equal(again.code, 1);
      assert.match(again.err, /^intscale: .*out\d\.jsonl: already exists \(use --force/);
      assert.equal(fs.readFileSync(out, 'utf8').trim().split('\n').length, 5, 'the existing file is untouched');
    }
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('.tmp-')), [], 'no temporary files left');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
