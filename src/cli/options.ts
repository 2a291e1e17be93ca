// Parsing of the CLI's options, one rule for every command: an integer must be a plain decimal
// integer (no '', '2.5', '1e3' or '0x10'), optionally at least `min`; a number a plain decimal
// (no '', 'abc', 'Infinity'); a plot file must not exist unless --force. A bad value is a one-line
// error naming the flag.
import * as fs from 'node:fs';
import { fail } from '../core/errors.ts';
import { SUPPORTED_GROUPS } from '../quant/rtn.ts';

/** An integer option; with `min`, values below it are refused too. */
export function parseIntOption(flag: string, text: string, min?: number): number {
  const ok = /^-?\d+$/.test(text) && (min === undefined || Number(text) >= min);
  if (text === '') fail(flag, "expected an integer, got ''");
  if (!ok) {
    if (min === undefined) fail(flag, `expected an integer, got '${text}'`);
    fail(flag, min === 1 ? `must be a positive integer (got ${text})` : `must be an integer ≥ ${min} (got ${text})`);
  }
  return Number(text);
}

/** `--group`: 32, 64, 128, 256 or -1 (per channel). */
export function parseGroupOption(text: string): number {
  const g = parseIntOption('--group', text);
  if (!(SUPPORTED_GROUPS as readonly number[]).includes(g)) fail('--group', `unsupported group size ${g} (use 32, 64, 128, 256 or -1)`);
  return g;
}

/** A decimal number option ('0.7', '1', '.5', '1e-3'); '' and anything else is refused. */
export function parseNumberOption(flag: string, text: string): number {
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) fail(flag, `expected a number, got '${text}'`);
  return Number(text);
}

/** `--plot FILE`: refuse an existing file (or directory, or dangling link) unless `force`. Checked
 *  before any work, so a long run does not end in a refusal. */
export function checkPlotTarget(file: string, force: boolean): void {
  checkNewFileTarget('--plot', file, force);
}

/** An output file option (`flag`): not empty, not a directory, and new unless `force`. */
export function checkNewFileTarget(flag: string, file: string, force: boolean): void {
  if (file.trim() === '') fail(flag, 'must not be empty');
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(file);
  } catch {
    return;
  }
  if (st.isDirectory()) fail(file, `is a directory (${flag} needs a file name)`);
  if (!force) fail(file, `already exists (use --force to overwrite it, or choose a new ${flag} file)`);
}
