// Autoregressive generation on the CPU engine: prefill the prompt as one chunk, then decode one
// token at a time, handing each new id to a callback (for streaming) as soon as it is chosen.
import { fail } from '../core/errors.ts';
import { Rng } from '../core/rng.ts';
import { Session, type Model } from '../model/llama.ts';
import { sampleToken, type SamplingOptions } from '../model/sampling.ts';

export interface GenerateOptions extends SamplingOptions {
  /** New tokens to generate (default 128); fewer when the context ends or a stop id comes. */
  maxNew?: number;
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

/** `prompt` must be non-empty (start it with BOS). */
export function generate(model: Model, prompt: readonly number[], opts: GenerateOptions = {}): GenerateResult {
  if (prompt.length === 0) fail('generate', 'empty prompt: start from BOS');
  const maxNew = opts.maxNew ?? 128;
  const rng = new Rng(opts.seed ?? 0);
  const stop = new Set(opts.stopIds ?? []);
  if (prompt.length > model.config.maxSeq) fail('generate', `prompt of ${prompt.length} tokens exceeds the context of ${model.config.maxSeq}`);
  const session = new Session(model, { maxSeq: prompt.length + maxNew });
  const ids: number[] = [];
  try {
    let t0 = performance.now();
    let logits = session.forward(prompt);
    const prefillSeconds = (performance.now() - t0) / 1000;
    t0 = performance.now();
    for (let i = 0; i < maxNew; i++) {
      const next = sampleToken(logits, rng, opts);
      if (stop.has(next)) break;
      ids.push(next);
      opts.onToken?.(next);
      if (i === maxNew - 1 || session.pos >= session.maxSeq) break;
      logits = session.forward([next]);
    }
    return { ids, prefillSeconds, decodeSeconds: (performance.now() - t0) / 1000 };
  } finally {
    session.dispose();
  }
}
