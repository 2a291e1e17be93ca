// Perplexity over a token stream, the reference method of this project (see
// shared/models/docs-llama-30m/README.md): cut the ids (encoded WITHOUT special tokens) into
// consecutive, non-overlapping chunks of ctx-1; run each chunk as BOS + chunk from position 0 with
// nothing carried over; score every id exactly once (the first id of a chunk is predicted from BOS);
// ppl = exp(Σ NLL / N), with log-softmax and the sum in float64.
import { fail } from '../core/errors.ts';
import { Session, type Model } from '../model/llama.ts';

export interface PerplexityOptions {
  /** Positions per chunk including BOS (default 512). */
  ctx?: number;
  /** Score only the first N ids. */
  maxTokens?: number;
  /** BOS id (default: the model config's, else 1). */
  bosId?: number;
  /** After each chunk: ids scored so far, of total, and the running perplexity. */
  onProgress?: (scored: number, total: number, ppl: number) => void;
}

export interface PerplexityResult {
  ppl: number;
  /** ids scored */
  tokens: number;
  /** Σ NLL in nats */
  nll: number;
}

/** −log softmax(logits)[target] in float64. */
export function negativeLogLikelihood(logits: Float32Array, offset: number, vocab: number, target: number): number {
  let max = -Infinity;
  for (let i = 0; i < vocab; i++) if (logits[offset + i]! > max) max = logits[offset + i]!;
  let sum = 0;
  for (let i = 0; i < vocab; i++) sum += Math.exp(logits[offset + i]! - max);
  return Math.log(sum) + max - logits[offset + target]!;
}

/** Scores chunks: the logits [T, vocab] of every position of each (run from position 0, alone). */
export interface ChunkScorer {
  readonly vocab: number;
  /** Largest ctx the scorer takes. */
  readonly maxSeq: number;
  /** Chunks per call (a GPU engine batches several; the CPU engine runs one at a time). */
  readonly chunksPerCall: number;
  score(chunks: number[][]): Float32Array[];
}

/** Perplexity with the reference chunking on any scorer (CPU engine, GPU engine). */
export function perplexityWith(scorer: ChunkScorer, ids: readonly number[], opts: PerplexityOptions & { bosId: number }): PerplexityResult {
  const ctx = opts.ctx ?? 512;
  const vocab = scorer.vocab;
  if (!Number.isInteger(ctx) || ctx < 2) fail('perplexity', `--ctx must be an integer ≥ 2 (got ${ctx})`);
  if (ctx > scorer.maxSeq) fail('perplexity', `--ctx ${ctx} exceeds the model's context of ${scorer.maxSeq}`);
  const total = Math.min(ids.length, opts.maxTokens ?? ids.length);
  if (total < 1) fail('perplexity', 'no tokens to score');
  let nll = 0;
  for (let start = 0; start < total;) {
    const chunks: number[][] = [];
    for (let k = 0; k < scorer.chunksPerCall && start < total; k++) {
      chunks.push(ids.slice(start, Math.min(total, start + ctx - 1)));
      start += ctx - 1;
    }
    const logits = scorer.score(chunks.map((c) => [opts.bosId, ...c]));
    chunks.forEach((chunk, i) => {
      // position t (BOS at 0) predicts chunk[t]
      for (let t = 0; t < chunk.length; t++) nll += negativeLogLikelihood(logits[i]!, t * vocab, vocab, chunk[t]!);
    });
    const scored = Math.min(total, start);
    opts.onProgress?.(scored, total, Math.exp(nll / scored));
  }
  return { ppl: Math.exp(nll / total), tokens: total, nll };
}

/** Perplexity on the CPU engine (one Session, reset per chunk). */
export function perplexity(model: Model, ids: readonly number[], opts: PerplexityOptions = {}): PerplexityResult {
  const ctx = opts.ctx ?? 512;
  if (!Number.isInteger(ctx) || ctx < 2) fail('perplexity', `--ctx must be an integer ≥ 2 (got ${ctx})`);
  if (ctx > model.config.maxSeq) fail('perplexity', `--ctx ${ctx} exceeds the model's context of ${model.config.maxSeq}`);
  const session = new Session(model, { maxSeq: ctx });
  try {
    return perplexityWith({
      vocab: model.config.vocabSize, maxSeq: model.config.maxSeq, chunksPerCall: 1,
      score: (chunks) => chunks.map((c) => { session.reset(); return session.forward(c, { allLogits: true }); }),
    }, ids, { ...opts, bosId: opts.bosId ?? model.config.bosId ?? 1 });
  } finally {
    session.dispose();
  }
}
