// Choosing the next token from logits: greedy argmax, or temperature + nucleus (top-p) sampling
// driven by a seeded Rng so that a seed always reproduces the same text.
import { fail } from '../core/errors.ts';
import type { Rng } from '../core/rng.ts';

export interface SamplingOptions {
  /** 0 = greedy (default) */
  temperature?: number;
  /** nucleus mass in (0, 1]; 1 = the whole distribution (default 0.9 when sampling) */
  topP?: number;
}

/** Index of the largest logit (the first one on ties). */
export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

/** Pick the next token id. Greedy when temperature is 0; else softmax(logits / T) cut to top-p. */
export function sampleToken(logits: Float32Array, rng: Rng, opts: SamplingOptions = {}): number {
  const temperature = opts.temperature ?? 0;
  const topP = opts.topP ?? 0.9;
  if (!(temperature >= 0) || !Number.isFinite(temperature)) fail('sampling', `temperature must be ≥ 0 (got ${temperature})`);
  if (!(topP > 0 && topP <= 1)) fail('sampling', `top-p must be in (0, 1] (got ${topP})`);
  if (temperature === 0) return argmax(logits);
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i]! > max) max = logits[i]!;
  const probs = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) { probs[i] = Math.exp((logits[i]! - max) / temperature); sum += probs[i]!; }
  for (let i = 0; i < n; i++) probs[i]! /= sum;
  const u = rng.next();
  if (topP >= 1) {
    let cdf = 0;
    for (let i = 0; i < n; i++) { cdf += probs[i]!; if (u < cdf) return i; }
    return n - 1;
  }
  // nucleus: the smallest set of most likely tokens whose mass reaches topP (ties: lower id first)
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => probs[b]! - probs[a]! || a - b);
  let mass = 0, cut = n;
  for (let j = 0; j < n; j++) { mass += probs[order[j]!]!; if (mass >= topP) { cut = j + 1; break; } }
  let cdf = 0;
  const target = u * mass;
  for (let j = 0; j < cut; j++) { cdf += probs[order[j]!]!; if (target < cdf) return order[j]!; }
  return order[cut - 1]!;
}
