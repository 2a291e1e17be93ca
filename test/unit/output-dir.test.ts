// src/io/output-dir.ts in process: the temp dir beside --out, leftovers of dead and live runs, a
// commit that finds --out taken, and errors about files in the temp dir retold about --out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { IntscaleError } from '../../src/core/errors.ts';
import { registeredTemporaries } from '../../src/core/interrupt.ts';
import { beginOutputDir, tempDirFor } from '../../src/io/output-dir.ts';

const DEAD_PID = 4_194_304 + 17; // above any pid_max: never a live process

test('temp dir beside --out, committed into place; leftovers of dead runs removed, of live runs refused', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-outdir-'));
  try {
    const out = path.join(root, 'q');
    const dead = tempDirFor(out, DEAD_PID);
    fs.mkdirSync(dead);
    const notes: string[] = [];
    const pending = beginOutputDir(out, (n) => notes.push(n));
    assert.equal(pending.tmp, path.join(root, `.q.tmp-${process.pid}`));
    assert.deepEqual(registeredTemporaries(), [pending.tmp], 'removed on SIGINT/SIGTERM');
    assert.ok(!fs.existsSync(dead));
    assert.match(notes.join(), new RegExp(`removed .*\\.q\\.tmp-${DEAD_PID}, left behind by an interrupted run`));
    fs.writeFileSync(path.join(pending.tmp, 'f'), 'x');
    const retold = pending.retell(new IntscaleError(`${pending.tmp}/model.safetensors: cannot write: no space left on the device (ENOSPC)`)) as Error;
    assert.equal(retold.message, `${out}: writing model.safetensors: cannot write: no space left on the device (ENOSPC)`);
    await pending.commit();
    assert.deepEqual(registeredTemporaries(), []);
    assert.equal(fs.readFileSync(path.join(out, 'f'), 'utf8'), 'x');

    const other = path.join(root, 'r');
    const live = tempDirFor(other, process.ppid); // the parent process is alive
    fs.mkdirSync(live);
    assert.throws(() => beginOutputDir(other), new RegExp(`r: another run \\(process ${process.ppid}\\) is writing it right now`));
    assert.ok(fs.existsSync(live), "a live run's temp dir is kept");

    const race = beginOutputDir(path.join(root, 's'));
    fs.mkdirSync(path.join(root, 's'));
    fs.writeFileSync(path.join(root, 's', 'theirs'), 'keep');
    await assert.rejects(race.commit(), /s: appeared while this run was writing it \(another run finished first\); it was left as it is/);
    assert.deepEqual(fs.readdirSync(path.join(root, 's')), ['theirs']);
    assert.ok(!fs.existsSync(race.tmp));
    assert.deepEqual(registeredTemporaries(), []);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
