// The quantize and inspect commands end to end (child process): table/JSON output, one-line errors
// with exit code 1 and no partial output directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LAYERS, makeModelDir } from './helpers.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), ...args], { encoding: 'utf8', env: { ...process.env, INTSCALE_QUIET: '1' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('quantize → inspect --json; bad options fail in one line without output', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-cli-'));
  try {
    const src = makeModelDir(tmp);
    const out = path.join(tmp, 'q');
    const q = cli('quantize', src, '--out', out, '--group', '64');
    assert.equal(q.code, 0, q.stderr);
    assert.match(q.stdout, /model\.layers\.1\.mlp\.down_proj/);
    const ins = cli('inspect', out, '--json');
    assert.equal(ins.code, 0, ins.stderr);
    const json = JSON.parse(ins.stdout) as { layers: Record<string, unknown>[] };
    assert.equal(json.layers.length, 7 * LAYERS);
    for (const l of json.layers) {
      assert.deepEqual(Object.keys(l), ['name', 'k_min', 'k_max', 'iscale_max', 'iscale_bits', 'headroom', 'rel_err', 'mse_is', 'mse_fs', 'coarse_scales', 'zero_scales']);
      assert.ok((l['headroom'] as number) < 1 && (l['headroom'] as number) > 0);
      assert.equal(typeof l['mse_fs'], 'number');
      assert.equal(l['zero_scales'], 0);
    }
    for (const [args, pattern] of [
      [['--group', '100'], /^intscale: --group: unsupported group size 100/],
      [['--wbits', '3'], /^intscale: --wbits: unsupported weight bits 3/],
      [['--amplifier', 'huge'], /^intscale: --amplifier: expected auto, layer or an integer/],
      [['--amplifier', '26', '--group', '64'], /^intscale: model\.layers\.0\.\S+: amplifier 2\^26 can overflow int32/],
    ] as const) {
      const bad = path.join(tmp, 'bad');
      const r = cli('quantize', src, '--out', bad, ...args);
      assert.equal(r.code, 1);
      assert.match(r.stderr, pattern);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.equal(fs.existsSync(bad), false);
    }
    assert.deepEqual(fs.readdirSync(tmp).filter((n) => n.includes('tmp')), []);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
