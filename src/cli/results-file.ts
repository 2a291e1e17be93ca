// Results files of the `bench` subcommands: reading one back for `--from` and writing `--json`
// atomically (temporary name, then rename; removed on failure), each failure one line naming the file.
import fs from 'node:fs';
import { fail } from '../core/errors.ts';

/** The text of a results file given to `--from`. */
export function readResultsFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    fail(file, `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Write `data` as JSON to `file`, atomically. */
export function writeResultsJson(file: string, data: unknown): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, `${JSON.stringify(data, null, 1)}\n`);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    fail(file, `cannot write (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}
