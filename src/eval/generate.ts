// Autoregressive generation on the CPU engine, for one prompt or a batch of prompts advanced
// together: prefill every prompt in one batched forward, then decode one token per sequence per
// step (one batched forward for all sequences still running), handing each new id to a callback
// (for streaming) as soon as it is chosen. A sequence leaves the batch at a stop id or at maxNew.
import { fail } from '../core/errors.ts';
import { Rng } from '../core/rng.ts';
import { forwardBatch, Session, type Model } from '../model/llama.ts';
import { sampleToken, type SamplingOptions } from '../model/sampling.ts';

export interface GenerateOptions extends SamplingOptions {
  /** New tokens to generate (default 128); fewer when the context ends or a stop id comes. */
  maxNew?: number;
  /** Sampling seed; sequence i of a batch samples from its own Rng(seed + i). */
  seed?: number;
  /** Stop (without emitting) at these ids, e.g. EOS; default none. */
  stopIds?: readonly number[];
  onToken?: (id: number) => void;
}

export interface GenerateResult {
  /** the new ids only */
  ids: number[];
  /** seconds spent in the prompt's prefill and in decoding */
  prefillSeconds: number;
  decodeSeconds: number;
}

export interface BatchGenerateOptions extends Omit<GenerateOptions, 'onToken'> {
  /** Called with the sequence's index in the batch and its new id. */
  onToken?: (sequence: number, id: number) => void;
}

export interface BatchGenerateResult {
  /** per prompt, the new ids only */
  ids: number[][];
  /** seconds spent in the batched prefill of all prompts and in decoding */
  prefillSeconds: number;
  decodeSeconds: number;
}

/** `prompt` must be non-empty (start it with BOS). */
export function generate(model: Model, prompt: readonly number[], opts: GenerateOptions = {}): GenerateResult {
  const { onToken, ...rest } = opts;
  const r = generateBatch(model, [prompt], { ...rest, ...(onToken ? { onToken: (_i: number, id: number) => onToken(id) } : {}) });
  return { ids: r.ids[0]!, prefillSeconds: r.prefillSeconds, decodeSeconds: r.decodeSeconds };
}

/**
 * Generate for several prompts as one batch (each non-empty; start them with BOS). Each sequence
 * gets exactly what `generate` would give it alone with seed + its index.
 */
export function generateBatch(model: Model, prompts: readonly (readonly number[])[], opts: BatchGenerateOptions = {}): BatchGenerateResult {
  if (prompts.length === 0) fail('generate', 'no prompts');
  const maxNew = opts.maxNew ?? 128;
  const seed = opts.seed ?? 0;
  const stop = new Set(opts.stopIds ?? []);
  prompts.forEach((p, i) => {
    const which = prompts.length > 1 ? ` ${i}` : '';
    if (p.length === 0) fail('generate', `empty prompt${which}: start from BOS`);
    if (p.length > model.config.maxSeq) fail('generate', `prompt${which} of ${p.length} tokens exceeds the context of ${model.config.maxSeq}`);
  });
  const sessions: Session[] = [];
  try {
    for (const p of prompts) sessions.push(new Session(model, { maxSeq: p.length + maxNew }));
    const rngs = prompts.map((_, i) => new Rng(seed + i));
    const ids: number[][] = prompts.map(() => []);
    let t0 = performance.now();
    let running = prompts.map((_, i) => i); // sequences in the batch, in the order of `logits`
    let logits = forwardBatch(sessions, prompts);
    const prefillSeconds = (performance.now() - t0) / 1000;
    t0 = performance.now();
    for (let step = 0; step < maxNew && running.length > 0; step++) {
      const next: number[] = [], nextTokens: number[] = [];
      running.forEach((i, j) => {
        const id = sampleToken(logits[j]!, rngs[i]!, opts);
        if (stop.has(id)) return;
        ids[i]!.push(id);
        opts.onToken?.(i, id);
        if (step === maxNew - 1 || sessions[i]!.pos >= sessions[i]!.maxSeq) return;
        next.push(i);
        nextTokens.push(id);
      });
      running = next;
      if (running.length > 0) logits = forwardBatch(running.map((i) => sessions[i]!), nextTokens.map((id) => [id]));
    }
    return { ids, prefillSeconds, decodeSeconds: (performance.now() - t0) / 1000 };
  } finally {
    for (const s of sessions) s.dispose();
  }
}
