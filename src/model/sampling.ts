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
  const { probs, sum } = temperatureProbs(logits, temperature);
  const u = rng.next();
  if (topP >= 1) return drawInIdOrder(probs, u);
  return nucleusPick(probs, topP, u, 1 / sum);  // the largest logit's probability is exp(0) / sum
}

/** softmax(logits / T) in float64, summed in id order (and that sum). */
function temperatureProbs(logits: Float32Array, temperature: number): { probs: Float64Array; sum: number } {
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i]! > max) max = logits[i]!;
  const probs = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) { probs[i] = Math.exp((logits[i]! - max) / temperature); sum += probs[i]!; }
  for (let i = 0; i < n; i++) probs[i]! /= sum;
  return { probs, sum };
}

/** The whole distribution (top-p ≥ 1): the first id whose running probability exceeds u. */
function drawInIdOrder(probs: Float64Array, u: number): number {
  let cdf = 0;
  for (let i = 0; i < probs.length; i++) { cdf += probs[i]!; if (u < cdf) return i; }
  return probs.length - 1;
}

/**
 * sampleToken's top-p rule as first written, sorting every id: the executable definition the fast
 * path (nucleusPick) must equal token for token (test/unit/sampling.test.ts, `intscale bench sample`).
 */
export function sampleTokenFullSort(logits: Float32Array, rng: Rng, temperature: number, topP: number): number {
  const { probs } = temperatureProbs(logits, temperature), n = probs.length;
  const u = rng.next();
  if (topP >= 1) return drawInIdOrder(probs, u);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => probs[b]! - probs[a]! || a - b);
  let mass = 0, cut = n;
  for (let j = 0; j < n; j++) { mass += probs[order[j]!]!; if (mass >= topP) { cut = j + 1; break; } }
  let cdf = 0;
  const target = u * mass;
  for (let j = 0; j < cut; j++) { cdf += probs[order[j]!]!; if (target < cdf) return order[j]!; }
  return order[cut - 1]!;
}

/**
 * The nucleus draw: the tokens in order of probability (ties: lower id first), the shortest prefix
 * whose running mass reaches topP (all of them if none does), and in it the first token whose
 * running sum exceeds u·(prefix mass). Only a prefix is ever sorted: the ids with p ≥ t, t the
 * lowest value of the highest binade (power-of-two range below the largest p) down to which the
 * mass, summed per binade in one pass, clearly reaches topP — or t = 0. Every token outside that
 * set is less likely than every token in it, so the set sorted is exactly the full order's prefix,
 * with the same running sums: the same draw as sorting all n ids (which took ~9 ms a 32k-token
 * row), at two linear passes and a typed-array sort of at most ~2× the nucleus.
 */
export function nucleusPick(probs: Float64Array, topP: number, u: number, maxP: number): number {
  const n = probs.length;
  // a sum in id order may differ from the sorted one by rounding: a margin far above that
  const clearly = topP * (1 + 1e-9);
  // One pass: the mass per binade below maxP's (bucket b: b below its exponent; the last bucket
  // takes everything smaller, zeros included), from the float64 exponent bits.
  const words = new Uint32Array(probs.buffer, probs.byteOffset, 2 * n);
  const top = exponentOf(maxP), mass = new Float64Array(BUCKETS);
  for (let i = 0; i < n; i++) {
    const b = top - ((words[2 * i + HI]! >>> 20) & 0x7ff);
    mass[b < 0 ? 0 : b < BUCKETS ? b : BUCKETS - 1] += probs[i]!;
  }
  let cum = 0, b = 0;
  for (; b < BUCKETS - 1; b++) if ((cum += mass[b]!) >= clearly) break;
  // the ids of buckets 0..b: p ≥ 2^(exponent of maxP − b), the lowest value of bucket b's binade
  let t = b < BUCKETS - 1 ? binadeFloor(top - b) : 0;
  for (;;) {
    let m = 0;
    for (let i = 0; i < n; i++) if (probs[i]! >= t) m++;
    const ids = new Int32Array(m), keys = new Float64Array(m);
    for (let i = 0, k = 0; i < n; i++) if (probs[i]! >= t) { ids[k] = i; keys[k++] = probs[i]!; }
    sortDescending(keys, ids);
    let run = 0, cut = -1;
    for (let j = 0; j < m; j++) { run += keys[j]!; if (run >= topP) { cut = j + 1; break; } }
    if (cut < 0 && m < n) {  // within the rounding margin and short after all: everything
      t = 0;
      continue;
    }
    if (cut < 0) cut = n;  // (m = n: no prefix reaches topP, the whole distribution)
    let cdf = 0;
    const target = u * run;
    for (let j = 0; j < cut; j++) { cdf += keys[j]!; if (target < cdf) return ids[j]!; }
    return ids[cut - 1]!;
  }
}

const BUCKETS = 64;
const SCRATCH = new Float64Array(1), SCRATCH_WORDS = new Uint32Array(SCRATCH.buffer);
SCRATCH[0] = 1;
/** Index of a float64's high 32-bit word (sign, exponent, top of the mantissa) in memory order. */
const HI = SCRATCH_WORDS[1] === 0x3ff00000 ? 1 : 0;
/** The biased exponent of a float64. */
function exponentOf(p: number): number {
  SCRATCH[0] = p;
  return (SCRATCH_WORDS[HI]! >>> 20) & 0x7ff;
}
/** The smallest normal float64 of biased exponent e (0 for e < 1). */
function binadeFloor(e: number): number {
  if (e < 1) return 0;
  SCRATCH_WORDS[1 - HI] = 0;
  SCRATCH_WORDS[HI] = e << 20;
  return SCRATCH[0]!;
}

/** In-place sort of (keys, ids) pairs: keys descending, equal keys by id ascending (quicksort). */
function sortDescending(keys: Float64Array, ids: Int32Array): void {
  const stack: number[] = [0, keys.length - 1];
  while (stack.length > 0) {
    const hi = stack.pop()!, lo = stack.pop()!;
    if (hi - lo < 16) {  // insertion sort
      for (let i = lo + 1; i <= hi; i++) {
        const k = keys[i]!, d = ids[i]!;
        let j = i - 1;
        while (j >= lo && (keys[j]! < k || (keys[j] === k && ids[j]! > d))) { keys[j + 1] = keys[j]!; ids[j + 1] = ids[j]!; j--; }
        keys[j + 1] = k; ids[j + 1] = d;
      }
      continue;
    }
    // pivot: the median of lo, mid, hi by value (equal values: mid); any pivot sorts correctly,
    // this one only keeps the partitions balanced
    const mid = (lo + hi) >> 1;
    let p = mid;
    const a = keys[lo]!, b = keys[mid]!, c = keys[hi]!;
    if ((a > b) !== (a > c)) p = lo;
    else if ((c > a) !== (c > b)) p = hi;
    const pk = keys[p]!, pd = ids[p]!;
    // Hoare partition: [lo, j] before or equal to the pivot, [j + 1, hi] after or equal
    let i = lo - 1, j = hi + 1;
    for (;;) {
      do i++; while (keys[i]! > pk || (keys[i] === pk && ids[i]! < pd));
      do j--; while (keys[j]! < pk || (keys[j] === pk && ids[j]! > pd));
      if (i >= j) break;
      const k = keys[i]!, d = ids[i]!;
      keys[i] = keys[j]!; ids[i] = ids[j]!;
      keys[j] = k; ids[j] = d;
    }
    // the smaller side last, so it is popped first and the stack stays O(log n)
    if (j - lo < hi - j) stack.push(j + 1, hi, lo, j);
    else stack.push(lo, j, j + 1, hi);
  }
}
