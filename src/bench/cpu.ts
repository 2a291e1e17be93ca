// `intscale bench cpu`: tokens/s of the CPU engine on a model — prefill (one chunk of T tokens as
// a single forward, the median of a few runs after a warm-up) and decode (one token per forward
// from a short prompt). Tokens are seeded random ids, so runs are reproducible.
import { Rng } from '../core/rng.ts';
import { threadCount } from '../core/matmul-pool.ts';
import { Session, type Model } from '../model/llama.ts';
import { argmax } from '../model/sampling.ts';

export interface CpuBenchOptions {
  /** prefill chunk length (default 512, capped at the context) */
  prefill?: number;
  /** decode steps (default 128) */
  decode?: number;
  /** timed prefill runs (default 3) */
  runs?: number;
  seed?: number;
  onStage?: (stage: string) => void;
}

export interface CpuBenchResult {
  model: string;
  threads: number;
  prefillTokens: number;
  prefillTokensPerSecond: number;
  decodeTokens: number;
  decodeTokensPerSecond: number;
  /** all timed prefill runs, tokens/s */
  prefillRuns: number[];
}

export function benchCpu(model: Model, name: string, opts: CpuBenchOptions = {}): CpuBenchResult {
  const c = model.config;
  const T = Math.max(1, Math.min(opts.prefill ?? 512, c.maxSeq));
  const decodeSteps = Math.max(1, Math.min(opts.decode ?? 128, c.maxSeq - 1));
  const runs = Math.max(1, opts.runs ?? 3);
  const rng = new Rng(opts.seed ?? 1);
  const tokens = Array.from({ length: T }, () => rng.int(0, c.vocabSize - 1));
  const session = new Session(model, { maxSeq: Math.max(T, decodeSteps + 1) });

  opts.onStage?.(`prefill: warm-up + ${runs} runs of ${T} tokens`);
  session.forward(tokens);
  const prefillRuns: number[] = [];
  for (let r = 0; r < runs; r++) {
    session.reset();
    const t0 = performance.now();
    session.forward(tokens);
    prefillRuns.push(T / ((performance.now() - t0) / 1000));
  }

  opts.onStage?.(`decode: ${decodeSteps} tokens`);
  session.reset();
  let logits = session.forward([c.bosId ?? 1]);
  const t0 = performance.now();
  for (let i = 0; i < decodeSteps; i++) logits = session.forward([argmax(logits)]);
  const decodeTokensPerSecond = decodeSteps / ((performance.now() - t0) / 1000);

  return {
    model: name,
    threads: threadCount(),
    prefillTokens: T,
    prefillTokensPerSecond: median(prefillRuns),
    decodeTokens: decodeSteps,
    decodeTokensPerSecond,
    prefillRuns,
  };
}

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
