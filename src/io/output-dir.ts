// Writing a new output directory so that nothing partial is ever left behind: the work goes into
// `.<name>.tmp-<pid>` beside the target, removed on error or interruption (src/core/interrupt.ts)
// and renamed into place only when complete. A leftover temp dir of a killed run is found by the
// next run: removed when its process is gone, reported when that process is still running.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail, IntscaleError } from '../core/errors.ts';
import { fsProblem, withFsErrors } from '../core/fs-errors.ts';
import { removeOnInterrupt, type TemporaryPath } from '../core/interrupt.ts';

/** The temp dir name a run with process id `pid` uses for `out`. */
export function tempDirFor(out: string, pid = process.pid): string {
  return path.join(path.dirname(path.resolve(out)), `.${path.basename(path.resolve(out))}.tmp-${pid}`);
}

/** Whether process `pid` exists (EPERM: it exists but belongs to someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Leftover temp dirs of earlier runs writing `out`, with their process ids. */
export function leftoverTempDirs(out: string): { path: string; pid: number }[] {
  const parent = path.dirname(path.resolve(out));
  const prefix = `.${path.basename(path.resolve(out))}.tmp-`;
  let names: string[];
  try {
    names = fs.readdirSync(parent);
  } catch {
    return [];
  }
  return names.filter((n) => n.startsWith(prefix) && /^\d+$/.test(n.slice(prefix.length)))
    .map((n) => ({ path: path.join(parent, n), pid: Number(n.slice(prefix.length)) }));
}

/** An output directory being written: its temp dir, committed or discarded exactly once. */
export interface PendingOutputDir {
  readonly out: string;
  readonly tmp: string;
  /** Rename the finished temp dir to `out`. */
  commit(): Promise<void>;
  /** Remove the temp dir (best effort: never throws, so it cannot hide the error being handled). */
  discard(): Promise<void>;
  /** An error about a file in the temp dir, retold about `out` (the user never named the temp dir). */
  retell(e: unknown): unknown;
}

/**
 * Check that `out` can be created (not empty, not existing, not even as a dangling symlink, in an
 * existing directory), clean up or report leftovers of earlier runs (`onNote` hears about removed
 * ones), and create the temp dir. `flag` names the option in errors.
 */
export function beginOutputDir(out: string, onNote: (message: string) => void = () => {}, flag = '--out'): PendingOutputDir {
  if (out.trim() === '') fail(flag, 'must not be empty');
  let existing: fs.Stats | undefined;
  try {
    existing = fs.lstatSync(out);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // ENOTDIR: a parent is a regular file, said in words by the parent check below
    if (code !== 'ENOENT' && code !== 'ENOTDIR') fail(out, `cannot use as output: ${fsProblem(e) ?? String(e)}`);
  }
  if (existing?.isSymbolicLink() && !fs.existsSync(out)) fail(out, 'already exists as a dangling symbolic link (choose a new output directory)');
  if (existing) fail(out, 'already exists (choose a new output directory)');
  const parent = path.dirname(path.resolve(out));
  let parentStat: fs.Stats;
  try {
    parentStat = fs.statSync(parent);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'ENOTDIR' ? 'is below a regular file' : `cannot be used (${fsProblem(e)})`;
    fail(out, `cannot create: its parent ${parent} ${why}`);
  }
  if (!parentStat.isDirectory()) fail(out, `cannot create: its parent ${parent} is not a directory`);

  for (const left of leftoverTempDirs(out)) {
    if (left.pid !== process.pid && processAlive(left.pid)) {
      fail(out, `another run (process ${left.pid}) is writing it right now (${left.path}); wait for it, or remove that directory if it is not intscale`);
    }
    withFsErrors(left.path, () => fs.rmSync(left.path, { recursive: true, force: true }), 'remove a leftover temporary directory');
    onNote(`removed ${left.path}, left behind by an interrupted run (process ${left.pid})`);
  }

  const tmp = tempDirFor(out);
  withFsErrors(tmp, () => fs.mkdirSync(tmp), 'create the temporary output directory');
  const guard: TemporaryPath = removeOnInterrupt(tmp);
  let settled = false;
  const discard = async (): Promise<void> => {
    if (settled) return;
    settled = true;
    try {
      fs.rmSync(tmp, { recursive: true, force: true });
    } catch {
      // best effort: the next run reports or removes it
    }
    await guard.release();
  };
  const commit = async (): Promise<void> => {
    if (settled) return;
    try {
      fs.renameSync(tmp, out);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOTDIR'
        ? 'appeared while this run was writing it (another run finished first); it was left as it is'
        : `cannot move the finished output into place: ${fsProblem(e) ?? String(e)}`;
      await discard();
      fail(out, why);
    }
    settled = true;
    await guard.release();
  };
  const retell = (e: unknown): unknown => {
    if (!(e instanceof IntscaleError) || !e.message.startsWith(`${tmp}${path.sep}`)) return e;
    const [file, ...rest] = e.message.slice(tmp.length + 1).split(': ');
    return new IntscaleError(`${out}: writing ${file}: ${rest.join(': ')}`);
  };
  return { out, tmp, commit, discard, retell };
}
