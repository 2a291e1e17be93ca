// `intscale bench sample`: host sampling time per row (sampleToken, the sampler of generate, batch
// and serve) against the full-sort definition of its top-p rule in the same run, over vocabulary
// sizes, logit spreads and (temperature, top-p) settings; every draw of the two is compared.
import { Rng } from '../core/rng.ts';
import { sampleToken, sampleTokenFullSort } from '../model/sampling.ts';

export interface SamplingBenchRow {
  vocab: number;
  /** standard deviation of the random logits (LLM logits: ~2-5; the wider, the smaller the nucleus) */
  sigma: number;
  temperature: number;
  topP: number;
  /** ms per row: sampleToken, and the full sort */
  ms: number;
  msFullSort: number;
  /** every draw identical */
  same: boolean;
}

export interface SamplingBenchResult {
  date: string;
  commit: string;
  rows: number;
  results: SamplingBenchRow[];
}

const SETTINGS: ReadonlyArray<readonly [number, number]> = [[0.8, 0.95], [1, 0.9], [1, 1]];

function msPerRow(logits: Float32Array[], draw: (l: Float32Array, rng: Rng) => number, seed: number, reps: number): { ms: number; ids: number[] } {
  const rng = new Rng(seed), ids: number[] = [];
  for (const l of logits) draw(l, new Rng(seed + 1));  // warm-up
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) for (const l of logits) ids.push(draw(l, rng));
  return { ms: (performance.now() - t0) / (reps * logits.length), ids };
}

export function runSamplingBench(opts: { vocab: number[]; sigmas: number[]; rows: number; reps: number; commit: string }): SamplingBenchResult {
  const results: SamplingBenchRow[] = [];
  for (const vocab of opts.vocab) {
    for (const sigma of opts.sigmas) {
      const logits = Array.from({ length: opts.rows }, (_, r) => new Rng(1000 * vocab + 10 * sigma + r).normals(vocab, sigma));
      for (const [temperature, topP] of SETTINGS) {
        const fast = msPerRow(logits, (l, rng) => sampleToken(l, rng, { temperature, topP }), 7, opts.reps);
        const full = msPerRow(logits, (l, rng) => sampleTokenFullSort(l, rng, temperature, topP), 7, opts.reps);
        results.push({ vocab, sigma, temperature, topP, ms: fast.ms, msFullSort: full.ms, same: fast.ids.every((id, i) => id === full.ids[i]) });
      }
    }
  }
  return { date: new Date().toISOString(), commit: opts.commit, rows: opts.rows, results };
}

export function formatSamplingBench(r: SamplingBenchResult): string {
  const lines = [`host sampling, ms per row (${r.rows} rows; commit ${r.commit}, ${r.date})`,
    'vocab    sigma  temp  top-p   sampleToken  full sort  speed-up  same draws'];
  for (const x of r.results) {
    lines.push(`${String(x.vocab).padEnd(8)} ${String(x.sigma).padEnd(6)} ${String(x.temperature).padEnd(5)} ${String(x.topP).padEnd(7)} ` +
      `${x.ms.toFixed(3).padStart(11)}  ${x.msFullSort.toFixed(3).padStart(9)}  ${(x.msFullSort / x.ms).toFixed(1).padStart(7)}×  ${x.same ? 'yes' : 'NO'}`);
  }
  return lines.join('\n');
}
