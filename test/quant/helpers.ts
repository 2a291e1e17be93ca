// Shared helpers for the quantization tests: seeded random layers and the shared-model location.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '../../src/core/rng.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const SHARED = path.resolve(repoRoot, '../shared');
export const MODEL_30M = path.join(SHARED, 'models/docs-llama-30m');
export const PERSUASION = path.join(SHARED, 'data/eval/persuasion.txt');
/** A skip reason when the shared model or data is absent, else undefined. */
export const sharedMissing: string | undefined =
  fs.existsSync(path.join(MODEL_30M, 'config.json')) && fs.existsSync(PERSUASION)
    ? undefined
    : `needs ${MODEL_30M} and ${PERSUASION} (../shared is absent)`;

/** Random weights with per-row magnitude variation and a few outliers (never all zeros). */
export function randomWeights(rng: Rng, rows: number, cols: number, std = 0.05): Float32Array {
  const w = new Float32Array(rows * cols);
  for (let n = 0; n < rows; n++) {
    const rowStd = std * (0.25 + 2 * rng.next());
    for (let k = 0; k < cols; k++) {
      let v = rng.normal() * rowStd;
      if (rng.next() < 0.01) v *= 8;
      w[n * cols + k] = v;
    }
  }
  return w;
}

/** Random activations with some outlier channels, as in LLMs. */
export function randomActivations(rng: Rng, rows: number, cols: number): Float32Array {
  const x = rng.normals(rows * cols, 1);
  for (let k = 0; k < cols; k += 17) for (let t = 0; t < rows; t++) x[t * cols + k] = x[t * cols + k]! * 20;
  return x;
}
