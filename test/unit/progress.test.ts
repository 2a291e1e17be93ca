// Progress without a TTY: at most one plain line per 10% plus a final line, all on stderr; silent
// with INTSCALE_QUIET=1. Run in a child process so its stderr is a pipe (not a TTY) and captured.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

function runProgress(total: number, ticks: number, env: Record<string, string> = {}): { stdout: string; stderr: string } {
  const script = `import { progress } from './src/core/progress.ts';
const p = progress('work', ${total});
for (let i = 0; i < ${ticks}; i++) p.tick();
p.done(); p.done();`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8', env: { ...process.env, INTSCALE_QUIET: '', ...env },
  });
  assert.equal(r.status, 0, r.stderr);
  return { stdout: r.stdout, stderr: r.stderr };
}

test('plain lines every 10% and one final line, on stderr only', () => {
  const { stdout, stderr } = runProgress(997, 997);
  const lines = stderr.trim().split('\n');
  assert.equal(stdout, '');
  assert.equal(lines.length, 10, stderr); // 10%, 20%, ..., 90%, then "done" (done() twice prints once)
  assert.match(lines[0]!, /^work: 10% \(100\/997\)$/);
  assert.match(lines.at(-1)!, /^work: done \(997\/997\) in \d+\.\d s$/);
});

test('INTSCALE_QUIET=1 prints nothing', () => {
  const { stdout, stderr } = runProgress(50, 50, { INTSCALE_QUIET: '1' });
  assert.equal(stdout + stderr, '');
});
