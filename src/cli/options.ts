// Parsing of the CLI's integer options, one rule for every command: the text must be a plain
// decimal integer (no '', '2.5', '1e3' or '0x10'), optionally at least `min`; a bad value is a
// one-line error naming the flag.
import { fail } from '../core/errors.ts';
import { SUPPORTED_GROUPS } from '../quant/rtn.ts';

/** An integer option; with `min`, values below it are refused too. */
export function parseIntOption(flag: string, text: string, min?: number): number {
  const ok = /^-?\d+$/.test(text) && (min === undefined || Number(text) >= min);
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
