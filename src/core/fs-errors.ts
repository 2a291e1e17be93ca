// The one error path for file-system failures: a Node errno error (ENOSPC, EACCES, ENOENT,
// ENOTEMPTY, EEXIST, ENOTDIR, EPIPE, ...) becomes one IntscaleError line naming the file and the
// problem in words. Call sites that know which file matters wrap their calls with `withFsErrors`;
// the CLI maps any errno error that still escapes with `fsErrorMessage`.
import { fail } from './errors.ts';

const PROBLEMS: Readonly<Record<string, string>> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOENT: 'no such file or directory',
  ENOTEMPTY: 'directory not empty (written by another run at the same time?)',
  EEXIST: 'already exists',
  ENOTDIR: 'a component of the path is not a directory',
  EISDIR: 'is a directory',
  EPIPE: 'the reader closed the pipe',
  EROFS: 'read-only file system',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in the system',
  ELOOP: 'too many levels of symbolic links',
  ENAMETOOLONG: 'file name too long',
  EBUSY: 'device or resource busy',
  EIO: 'input/output error',
  EXDEV: 'cannot move across file systems',
  EINVAL: 'invalid argument',
};

const DEST_PROBLEMS = new Set(['ENOSPC', 'EDQUOT', 'ENOTEMPTY', 'EEXIST', 'EROFS', 'EISDIR']);

/** The errno code of an error thrown by node:fs, if it is one. */
export function errnoCode(e: unknown): string | undefined {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
}

/** `<problem> (<CODE>)` for an errno error, or undefined for anything else. */
export function fsProblem(e: unknown): string | undefined {
  const code = errnoCode(e);
  if (!code) return undefined;
  return `${PROBLEMS[code] ?? (e as Error).message.split('\n')[0]!.replace(/^[A-Z0-9]+: /, '')} (${code})`;
}

/** One line `<file>: <problem> (<CODE>)` for an errno error (file from the error when not given). */
export function fsErrorMessage(e: unknown, file?: string): string | undefined {
  const problem = fsProblem(e);
  if (!problem) return undefined;
  const err = e as NodeJS.ErrnoException & { dest?: string };
  // for a copy or rename, a full disk or an existing target is about the destination
  const aboutDest = err.dest !== undefined && DEST_PROBLEMS.has(errnoCode(e)!);
  const where = file ?? (aboutDest ? err.dest : err.path) ?? err.syscall ?? 'file system';
  return `${where}: ${problem}`;
}

/** Run `fn`; an errno error becomes one IntscaleError line naming `file` (or, when undefined, the
 *  file the error is about: the destination of a copy that ran out of space, else its source). */
export function withFsErrors<T>(file: string | undefined, fn: () => T, what?: string): T {
  try {
    return fn();
  } catch (e) {
    const problem = fsProblem(e);
    if (problem === undefined) throw e;
    const message = fsErrorMessage(e, file)!;
    const where = message.slice(0, message.length - problem.length - 2);
    fail(where, what ? `cannot ${what}: ${problem}` : problem);
  }
}
