// Low-level file access for safetensors: open with a one-line error, read an exact byte range
// into a fresh (8-byte aligned) buffer, write fully, and atomic temp-file-then-rename.
import * as fs from 'node:fs';
import { fail } from '../core/errors.ts';
import { fsProblem } from '../core/fs-errors.ts';

/** Largest single readSync/writeSync call (the syscall wrappers take int32 lengths). */
const CHUNK = 1 << 30;

function reason(e: unknown): string {
  return fsProblem(e) ?? String((e as Error | undefined)?.message ?? e).split('\n')[0]!;
}

/** Open `file` read-only; fail(file, ...) if it cannot be opened or is not a regular file. */
export function openForReading(file: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    fail(file, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `cannot open: ${reason(e)}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) fail(file, 'not a regular file');
    return { fd, size: st.size };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/** Read exactly `length` bytes at `position` into a new buffer that owns its ArrayBuffer. */
export function readExact(fd: number, file: string, position: number, length: number): Buffer {
  const buf = Buffer.allocUnsafeSlow(length);
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      n = fs.readSync(fd, buf, done, Math.min(CHUNK, length - done), position + done);
    } catch (e) {
      fail(file, `read failed at byte ${position + done}: ${reason(e)}`);
    }
    if (n === 0) fail(file, `unexpected end of file at byte ${position + done} (file changed while open?)`);
    done += n;
  }
  return buf;
}

/** Write all of `data` to `fd`. */
export function writeAll(fd: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.byteLength) {
    done += fs.writeSync(fd, data, done, Math.min(CHUNK, data.byteLength - done));
  }
}

/**
 * Write `file` atomically: `fill(fd)` writes into `file.tmp-<pid>`, which is fsynced and renamed
 * over `file`. On any error the temp file is removed and a one-line error is thrown.
 */
export function writeAtomically(file: string, fill: (fd: number) => void): void {
  const tmp = `${file}.tmp-${process.pid}`;
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'w');
    fill(fd);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) {
      try { fs.closeSync(fd); } catch { /* already failing */ }
    }
    try { fs.rmSync(tmp, { force: true }); } catch { /* best effort */ }
    if ((e as Error)?.name === 'IntscaleError') throw e;
    fail(file, `cannot write: ${reason(e)}`);
  }
}
