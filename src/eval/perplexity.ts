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

export function perplexity(model: Model, ids: readonly number[], opts: PerplexityOptions = {}): PerplexityResult {
  const ctx = opts.ctx ?? 512;
  const vocab = model.config.vocabSize;
  if (!Number.isInteger(ctx) || ctx < 2) fail('perplexity', `--ctx must be an integer ≥ 2 (got ${ctx})`);
  if (ctx > model.config.maxSeq) fail('perplexity', `--ctx ${ctx} exceeds the model's context of ${model.config.maxSeq}`);
  const total = Math.min(ids.length, opts.maxTokens ?? ids.length);
  if (total < 1) fail('perplexity', 'no tokens to score');
  const bos = opts.bosId ?? model.config.bosId ?? 1;
  const session = new Session(model, { maxSeq: ctx });
  let nll = 0;
  try {
    for (let start = 0; start < total; start += ctx - 1) {
      const chunk = ids.slice(start, Math.min(total, start + ctx - 1));
      session.reset();
      const logits = session.forward([bos, ...chunk], { allLogits: true });
      // position t (BOS at 0) predicts chunk[t]
      for (let t = 0; t < chunk.length; t++) nll += negativeLogLikelihood(logits, t * vocab, vocab, chunk[t]!);
      const scored = start + chunk.length;
      opts.onProgress?.(scored, total, Math.exp(nll / scored));
    }
  } finally {
    session.dispose();
  }
  return { ppl: Math.exp(nll / total), tokens: total, nll };
}
