// Calibration data: `--calib FILE --calib-samples N --calib-len L --seed S` → N token windows of L
// positions, each BOS followed by L−1 consecutive tokens of the file (encoded without special
// tokens) starting at a uniformly random offset (seeded xoshiro, src/core/rng.ts), the same shape
// as the evaluation chunks (BOS + text from position 0). Windows may overlap; the text must hold
// at least L−1 tokens.
import * as fs from 'node:fs';
import { fail } from '../core/errors.ts';
import { Rng } from '../core/rng.ts';
import type { Tokenizer } from '../io/tokenizer.ts';

export interface CalibOptions {
  file: string;
  samples: number;
  len: number;
  seed: number;
}

export const CALIB_DEFAULTS = { samples: 128, len: 512, seed: 0 } as const;

/** `samples` windows of `len` ids: [bos, ids[o], ..., ids[o+len-2]] at random offsets o. */
export function sampleWindows(ids: readonly number[], samples: number, len: number, seed: number, bos: number, where = 'calibration'): number[][] {
  if (!(Number.isInteger(samples) && samples >= 1)) fail('--calib-samples', `must be a positive integer (got ${samples})`);
  if (!(Number.isInteger(len) && len >= 2)) fail('--calib-len', `must be an integer ≥ 2 (got ${len})`);
  const body = len - 1;
  if (ids.length < body) fail(where, `has ${ids.length} tokens, fewer than --calib-len − 1 = ${body}`);
  const rng = new Rng(seed);
  const out: number[][] = [];
  for (let i = 0; i < samples; i++) {
    const o = rng.int(0, ids.length - body);
    out.push([bos, ...ids.slice(o, o + body)]);
  }
  return out;
}

/** Read, tokenize and sample the calibration text. */
export function loadCalibration(opts: CalibOptions, tokenizer: Tokenizer, bos: number, maxSeq: number): number[][] {
  if (opts.len > maxSeq) fail('--calib-len', `${opts.len} exceeds the model's context of ${maxSeq}`);
  let text: string;
  try {
    text = fs.readFileSync(opts.file, 'utf8');
  } catch {
    fail(opts.file, 'cannot read calibration text');
  }
  return sampleWindows(tokenizer.encode(text), opts.samples, opts.len, opts.seed, bos, opts.file);
}
