// Issue 9, class 4: nothing is left behind by an interrupted run, tested on real child processes of
// the CLI. SIGTERM / SIGINT during `quantize` remove its temp dir and exit 143 / 130; the temp dir
// of a SIGKILLed run is removed by the next run (its process is gone), while one whose process is
// alive is reported and left alone; `demo` removes its temporary checkpoint on success and on a
// signal (checked in a private TMPDIR).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeModelDir, writeTinyTokenizer } from './helpers.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = path.join(ROOT, 'src/cli/main.ts');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-interrupt-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

// large enough that quantizing takes a while after the first progress line (8 layers, 256 wide)
const model = makeModelDir(tmp, 'llama', 512, 256, 8);
writeTinyTokenizer(model);

interface Run { code: number | null; signal: NodeJS.Signals | null; stderr: string }

/** Run the CLI; once stderr shows `trigger`, send `signal`. */
function runAndSignal(args: string[], trigger: RegExp, signal: NodeJS.Signals, env: NodeJS.ProcessEnv = {}): Promise<Run & { pid: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '', sent = false;
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
      if (!sent && trigger.test(stderr)) { sent = true; child.kill(signal); }
    });
    child.on('error', reject);
    child.on('close', (code, sig) => resolve({ code, signal: sig, stderr, pid: child.pid! }));
  });
}

const cli = (args: string[], env: NodeJS.ProcessEnv = {}): Run => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: r.status, signal: r.signal, stderr: r.stderr };
};
const near = (out: string) => fs.readdirSync(path.dirname(out)).filter((n) => n === path.basename(out) || n.startsWith(`.${path.basename(out)}.tmp-`));

test('SIGTERM and SIGINT during quantize: temp output removed, exit 143 / 130', { timeout: 60_000 }, async () => {
  for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
    const out = path.join(tmp, `q-${signal}`);
    const r = await runAndSignal(['quantize', model, '--out', out, '--group', '64'], /^quantize: \d+%/m, signal);
    assert.equal(r.code, code, `${signal}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`intscale: interrupted by ${signal}; removed .*\\.q-${signal}\\.tmp-${r.pid}\\n$`));
    assert.deepEqual(near(out), [], 'neither the output nor its temp dir is left');
  }
});

test('a killed run\'s temp dir is removed by the next run; a live one is reported and kept', { timeout: 60_000 }, async () => {
  const out = path.join(tmp, 'q-kill');
  const killed = await runAndSignal(['quantize', model, '--out', out, '--group', '64'], /^quantize: \d+%/m, 'SIGKILL');
  assert.equal(killed.signal, 'SIGKILL');
  const leftover = path.join(tmp, `.q-kill.tmp-${killed.pid}`);
  assert.ok(fs.existsSync(leftover), 'SIGKILL cannot clean up: the temp dir is there');

  const alive = path.join(tmp, `.q-kill.tmp-${process.pid}`); // this test process is alive
  fs.mkdirSync(alive);
  fs.writeFileSync(path.join(alive, 'partial'), 'x');
  const busy = cli(['quantize', model, '--out', out, '--group', '64', '--json']);
  assert.equal(busy.code, 1);
  assert.match(busy.stderr, new RegExp(`^intscale: .*q-kill: another run \\(process ${process.pid}\\) is writing it right now`));
  assert.ok(fs.existsSync(path.join(alive, 'partial')), 'a live run\'s temp dir is not touched');
  assert.ok(!fs.existsSync(out));
  fs.rmSync(alive, { recursive: true });

  const next = cli(['quantize', model, '--out', out, '--group', '64', '--json'], { INTSCALE_QUIET: '1' });
  assert.equal(next.code, 0, next.stderr);
  assert.match(next.stderr, new RegExp(`note: removed .*\\.q-kill\\.tmp-${killed.pid}, left behind by an interrupted run \\(process ${killed.pid}\\)`));
  assert.deepEqual(near(out), ['q-kill']);
});

test('demo removes its temporary checkpoint, on success and on SIGTERM', { timeout: 90_000 }, async () => {
  const text = path.join(tmp, 'text.txt');
  fs.writeFileSync(text, 'the quick brown fox jumps over the lazy dog '.repeat(20));
  const small = makeModelDir(tmp, 'llama', 256, 128, 2); // demo quantizes with groups of 128
  writeTinyTokenizer(small);
  const privateTmp = fs.mkdtempSync(path.join(tmp, 'tmpdir-'));
  const env = { TMPDIR: privateTmp, INTSCALE_TEXT: text };
  const ok = cli(['demo'], { ...env, INTSCALE_MODEL: small, INTSCALE_QUIET: '1' });
  assert.equal(ok.code, 0, ok.stderr);
  const ours = () => fs.readdirSync(privateTmp).filter((n) => n !== 'tsx-0'); // tsx keeps its compile cache there
  assert.deepEqual(ours(), [], 'nothing left in TMPDIR after a demo');
  const r = await runAndSignal(['demo'], /^quantize: \d+%/m, 'SIGTERM', { ...env, INTSCALE_MODEL: model });
  assert.equal(r.code, 143, r.stderr);
  assert.match(r.stderr, /interrupted by SIGTERM; removed .*intscale-demo-/);
  assert.deepEqual(ours(), [], 'nothing left in TMPDIR after an interrupted demo');
});
