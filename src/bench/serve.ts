// `intscale bench serve`: what continuous batching buys over static batching on one engine (CPU or
// CUDA step backend, src/serve/generate-continuous.ts). The same seeded requests (random prompts and
// token limits of mixed lengths, greedy, no stop ids: every run does the same work) run twice with
// the same slots: static, in groups of --max-batch in arrival order, each group until its longest
// request ends; continuous, a finished request's slot refilled at the next step. Both must produce
// the same ids (checked); rows: new tokens/s, steps, mean sequences per step, and the latencies a
// serving benchmark reports (every request arriving at the start): time to first token (TTFT, its
// wait for a slot and its prefill included), time per output token after the first (TPOT) and the
// request's end-to-end time, as median and 99th percentile over the requests. With a request
// rate (--rate R: Poisson arrivals, R a second, seeded) only continuous batching runs, each request
// joining the batch when it arrives and its latencies counted from then, as a serving benchmark
// (vLLM's benchmark_serving) measures a server under load; the ids must equal the burst run's.
import { fail } from '../core/errors.ts';
import { Rng } from '../core/rng.ts';
import { generateContinuous, type StepBackend } from '../serve/generate-continuous.ts';

export interface ServeBenchOptions {
  requests: number;
  /** Prompt tokens and new tokens per request: inclusive ranges. */
  prompt: [number, number];
  gen: [number, number];
  seed: number;
  /** Requests a second (Poisson arrivals); absent: all arrive at the start. */
  rate?: number;
}

export interface ServeRow {
  mode: 'static' | 'continuous' | 'continuous, arrivals';
  requests: number;
  max_batch: number;
  new_tokens: number;
  seconds: number;
  tokens_per_s: number;
  steps: number;
  /** Σ sequences over steps / steps */
  mean_batch: number;
  /** Milliseconds from the start to each request's first token, median and p99. */
  ttft_p50_ms: number;
  ttft_p99_ms: number;
  /** Milliseconds per new token after the first (requests of ≥ 2 tokens), median and p99. */
  tpot_p50_ms: number;
  tpot_p99_ms: number;
  /** Milliseconds from the start to each request's last token, median and p99. */
  e2e_p50_ms: number;
  e2e_p99_ms: number;
}

/** The value at or below which `q` of `values` lie (nearest rank; NaN for none). */
export function percentile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** Each request's first and last token times (ms since its arrival: the mode's start, or `arrivalMs`) and token count. */
class TokenClock {
  readonly first: number[];
  readonly last: number[];
  readonly count: number[];
  readonly t0 = performance.now();
  constructor(n: number, private readonly arrivalMs?: readonly number[]) {
    this.first = new Array<number>(n).fill(Number.NaN);
    this.last = new Array<number>(n).fill(Number.NaN);
    this.count = new Array<number>(n).fill(0);
  }
  /** Seconds since the clock started. */
  elapsedSeconds(): number {
    return (performance.now() - this.t0) / 1000;
  }
  token(request: number): void {
    const t = performance.now() - this.t0 - (this.arrivalMs?.[request] ?? 0);
    if (this.count[request]!++ === 0) this.first[request] = t;
    this.last[request] = t;
  }
  latencies(): Pick<ServeRow, 'ttft_p50_ms' | 'ttft_p99_ms' | 'tpot_p50_ms' | 'tpot_p99_ms' | 'e2e_p50_ms' | 'e2e_p99_ms'> {
    const tpot = this.count.flatMap((n, i) => (n >= 2 ? [(this.last[i]! - this.first[i]!) / (n - 1)] : []));
    const r = (v: number) => round(v, 2);
    return { ttft_p50_ms: r(percentile(this.first, 0.5)), ttft_p99_ms: r(percentile(this.first, 0.99)),
      tpot_p50_ms: r(percentile(tpot, 0.5)), tpot_p99_ms: r(percentile(tpot, 0.99)),
      e2e_p50_ms: r(percentile(this.last, 0.5)), e2e_p99_ms: r(percentile(this.last, 0.99)) };
  }
}

export interface ServeResults {
  device: string;
  model: string;
  date: string;
  commit: string;
  options: ServeBenchOptions;
  rows: ServeRow[];
}

/** The benchmark's requests: BOS (id 1) then random ids below `vocab`, and each one's token limit. */
export function serveRequests(o: ServeBenchOptions, vocab: number): { prompts: number[][]; maxNew: number[] } {
  const rng = new Rng(o.seed), pick = ([a, b]: [number, number]) => rng.int(a, b);
  const prompts = Array.from({ length: o.requests }, () => [1, ...Array.from({ length: pick(o.prompt) - 1 }, () => rng.int(3, vocab - 1))]);
  return { prompts, maxNew: prompts.map(() => pick(o.gen)) };
}

/** Seeded Poisson arrival times (ms from the start) of n requests at `rate` a second. */
export function arrivalTimes(n: number, rate: number, seed: number): number[] {
  const rng = new Rng(seed ^ 0x5eed), times: number[] = [];
  let t = 0;
  for (let i = 0; i < n; i++) {
    times.push(t);
    t += (-Math.log(1 - rng.next()) / rate) * 1000;  // exponential gaps (the first request at 0)
  }
  return times;
}

export async function runServeBench(backend: StepBackend, vocab: number, o: ServeBenchOptions): Promise<ServeRow[]> {
  const { prompts, maxNew } = serveRequests(o, vocab), B = backend.slots;
  const row = (mode: ServeRow['mode'], tokens: number, seconds: number, steps: number, seqSteps: number, clock: TokenClock): ServeRow => ({
    mode, requests: prompts.length, max_batch: B, new_tokens: tokens, seconds: round(seconds, 4), tokens_per_s: round(tokens / seconds, 1),
    steps, mean_batch: round(seqSteps / steps, 2), ...clock.latencies(),
  });
  const count = (ids: number[][]) => ids.reduce((n, x) => n + x.length, 0);
  const same = (a: number[][], b: number[][], what: string) => a.forEach((ids, i) => {
    if (ids.length !== b[i]!.length || ids.some((id, j) => id !== b[i]![j])) fail('bench serve', `request ${i}: ${what} gave different ids`);
  });
  if (o.rate !== undefined) {
    // under load: the arrivals run, checked against the burst run of the same requests
    const burst = await generateContinuous(backend, prompts, { maxNewPer: maxNew });
    const arrivalMs = arrivalTimes(prompts.length, o.rate, o.seed), clock = new TokenClock(prompts.length, arrivalMs);
    const r = await generateContinuous(backend, prompts, { maxNewPer: maxNew, arrivalMs, onToken: (request) => clock.token(request) });
    same(burst.ids, r.ids, 'arrivals and a burst');
    return [row('continuous, arrivals', count(r.ids), clock.elapsedSeconds(), r.steps, r.sequenceSteps, clock)];
  }
  // static: groups of B, each to its longest request's end
  const staticIds: number[][] = [];
  let steps = 0, seqSteps = 0;
  const staticClock = new TokenClock(prompts.length);
  for (let i = 0; i < prompts.length; i += B) {
    const r = await generateContinuous(backend, prompts.slice(i, i + B), { maxNewPer: maxNew.slice(i, i + B), onToken: (request) => staticClock.token(i + request) });
    staticIds.push(...r.ids);
    steps += r.steps;
    seqSteps += r.sequenceSteps;
  }
  const staticSeconds = staticClock.elapsedSeconds();  // (the groups and what runs between them: the latencies' clock)
  const contClock = new TokenClock(prompts.length);
  const cont = await generateContinuous(backend, prompts, { maxNewPer: maxNew, onToken: (request) => contClock.token(request) });
  const contSeconds = contClock.elapsedSeconds();
  same(staticIds, cont.ids, 'static and continuous batching');
  return [row('static', count(staticIds), staticSeconds, steps, seqSteps, staticClock),
    row('continuous', count(cont.ids), contSeconds, cont.steps, cont.sequenceSteps, contClock)];
}

const round = (v: number, digits: number) => Number(v.toFixed(digits));

export function formatServeTable(r: ServeResults): string {
  const head = ['mode', 'requests', 'slots', 'new tokens', 'seconds', 'tokens/s', 'steps', 'mean batch', 'TTFT ms p50/p99', 'TPOT ms p50/p99', 'e2e ms p50/p99'];
  const pair = (a: number, b: number) => `${a.toFixed(1)} / ${b.toFixed(1)}`;
  const cells = r.rows.map((x) => [x.mode, String(x.requests), String(x.max_batch), String(x.new_tokens), x.seconds.toFixed(3),
    x.tokens_per_s.toFixed(1), String(x.steps), x.mean_batch.toFixed(2), pair(x.ttft_p50_ms, x.ttft_p99_ms), pair(x.tpot_p50_ms, x.tpot_p99_ms),
    pair(x.e2e_p50_ms, x.e2e_p99_ms)]);
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((v, i) => (i === 0 ? v.padEnd(w[i]!) : v.padStart(w[i]!))).join('  ');
  const st = r.rows.find((x) => x.mode === 'static'), co = r.rows.find((x) => x.mode === 'continuous');
  return [`${r.device}  ${r.model}  ${r.date.slice(0, 10)}  ${r.commit.slice(0, 10)}  prompts ${r.options.prompt.join('-')}, new ${r.options.gen.join('-')}, seed ${r.options.seed}` +
    (r.options.rate !== undefined ? `, ${r.options.rate} requests/s (Poisson; latencies from each arrival)` : ''),
    line(head), ...cells.map(line), ...(st && co ? [`continuous / static: ${(co.tokens_per_s / st.tokens_per_s).toFixed(2)}x new tokens/s`] : [])].join('\n');
}
