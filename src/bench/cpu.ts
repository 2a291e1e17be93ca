// `intscale bench cpu`: tokens/s of the CPU engine on a model — prefill (one chunk of T tokens as
// a single forward, the median of a few runs after a warm-up) and decode (one token per forward
// from a short prompt; with batch B, B sequences advanced together, one batched forward per step).
// Tokens are seeded random ids, so runs are reproducible.
import { Rng } from '../core/rng.ts';
import { threadCount } from '../core/matmul-pool.ts';
import { forwardBatch, Session, type Model } from '../model/llama.ts';
import { argmax } from '../model/sampling.ts';

export interface CpuBenchOptions {
  /** prefill chunk length (default 512, capped at the context) */
  prefill?: number;
  /** decode steps (default 128) */
  decode?: number;
  /** timed prefill runs (default 3) */
  runs?: number;
  /** sequences decoded together (default 1) */
  batch?: number;
  seed?: number;
  onStage?: (stage: string) => void;
}

export interface CpuBenchResult {
  model: string;
  threads: number;
  prefillTokens: number;
  prefillTokensPerSecond: number;
  /** decode steps, each advancing `batch` sequences by one token */
  decodeTokens: number;
  /** sequences decoded together */
  batch: number;
  /** all sequences' new tokens per second */
  decodeTokensPerSecond: number;
  /** all timed prefill runs, tokens/s */
  prefillRuns: number[];
}

export function benchCpu(model: Model, name: string, opts: CpuBenchOptions = {}): CpuBenchResult {
  const c = model.config;
  const T = Math.max(1, Math.min(opts.prefill ?? 512, c.maxSeq));
  const decodeSteps = Math.max(1, Math.min(opts.decode ?? 128, c.maxSeq - 1));
  const runs = Math.max(1, opts.runs ?? 3);
  const batch = Math.max(1, opts.batch ?? 1);
  const rng = new Rng(opts.seed ?? 1);
  const tokens = Array.from({ length: T }, () => rng.int(0, c.vocabSize - 1));
  const session = new Session(model, { maxSeq: Math.max(T, decodeSteps + 1) });
  const others: Session[] = [];
  try {
    for (let b = 1; b < batch; b++) others.push(new Session(model, { maxSeq: decodeSteps + 1 }));
    opts.onStage?.(`prefill: warm-up + ${runs} runs of ${T} tokens`);
    const prefillRuns = timePrefill(session, tokens, runs);
    opts.onStage?.(batch === 1 ? `decode: ${decodeSteps} tokens` : `decode: ${decodeSteps} steps of a batch of ${batch}`);
    // sequence 0 starts from BOS, the others from seeded random tokens (so that they differ)
    const firsts = [c.bosId ?? 1, ...others.map(() => rng.int(0, c.vocabSize - 1))];
    const decodeTokensPerSecond = timeDecode([session, ...others], firsts, decodeSteps);
    return {
      model: name,
      threads: threadCount(),
      prefillTokens: T,
      prefillTokensPerSecond: median(prefillRuns),
      decodeTokens: decodeSteps,
      batch,
      decodeTokensPerSecond,
      prefillRuns,
    };
  } finally {
    session.dispose();
    for (const s of others) s.dispose();
  }
}

/** tokens/s of each timed run of one prefill chunk (after one untimed warm-up run). */
function timePrefill(session: Session, tokens: number[], runs: number): number[] {
  session.forward(tokens);
  const rates: number[] = [];
  for (let r = 0; r < runs; r++) {
    session.reset();
    const t0 = performance.now();
    session.forward(tokens);
    rates.push(tokens.length / ((performance.now() - t0) / 1000));
  }
  return rates;
}

/** tokens/s (all sequences together) of greedy decoding, one batched forward per step, each
 *  sequence from its one-token prompt. */
function timeDecode(sessions: Session[], firsts: number[], steps: number): number {
  for (const s of sessions) s.reset();
  let logits = forwardBatch(sessions, firsts.map((id) => [id]));
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) logits = forwardBatch(sessions, logits.map((l) => [argmax(l)]));
  return (sessions.length * steps) / ((performance.now() - t0) / 1000);
}

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
