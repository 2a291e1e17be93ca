// Generation for many prompts with continuous batching (src/serve/batcher.ts) over a step backend:
// the CPU engine (a Session per slot, one batched forward per step) or the CUDA engine (runStep:
// any mix of prefill chunks and decode rows in one step, eager launches; a step of decode rows only
// replays a CUDA graph of its row count, runDecodeStep). Sampling happens here, on
// the host, from each sampled chunk's last-row logits, with request i's own Rng(seed + i): every
// request gets what `generate` (src/eval/generate.ts) gives it alone with that seed, however the
// requests were scheduled (exactly on the CPU engine, whose batch = alone bit for bit).
import { fail } from '../core/errors.ts';
import { yieldForSignals } from '../core/interrupt.ts';
import { Rng } from '../core/rng.ts';
import type { BatchGenerateOptions } from '../eval/generate.ts';
import { forwardBatch, Session, type Model } from '../model/llama.ts';
import { sampleToken } from '../model/sampling.ts';
import type { CudaEngine } from '../backends/cuda/engine.ts';
import { ContinuousBatcher, type FinishReason, type PlannedChunk, type StepOutcome } from './batcher.ts';

/** Runs steps of chunks (distinct slots) and returns each chunk's last-row logits [vocab]. */
export interface StepBackend {
  readonly slots: number;
  readonly maxRows: number;
  readonly maxSeq: number;
  step(chunks: readonly { slot: number; pos: number; tokens: readonly number[] }[]): Float32Array[];
  /** The logits of every position of `prompt` ([T, vocab]), outside the batch and its slots (scoring); absent where not supported. */
  promptLogits?(prompt: readonly number[]): Float32Array;
  /** Free what the backend allocated. */
  close(): void;
}

/** The CPU engine: one Session (KV cache) per slot, a batched forward per step. */
export function cpuStepBackend(model: Model, slots: number, maxSeq: number, maxRows = Math.max(slots, 512)): StepBackend {
  const sessions = Array.from({ length: slots }, () => new Session(model, { maxSeq }));
  return {
    slots, maxRows, maxSeq: sessions[0]!.maxSeq,
    step(chunks) {
      const ss = chunks.map((c) => {
        const s = sessions[c.slot]!;
        if (c.pos === 0) s.reset();  // a new request in this slot
        if (s.pos !== c.pos) fail('batch', `slot ${c.slot} holds ${s.pos} positions, the step expects ${c.pos}`);
        return s;
      });
      return forwardBatch(ss, chunks.map((c) => c.tokens));
    },
    promptLogits(prompt) {
      const s = new Session(model, { maxSeq: prompt.length });
      try {
        return s.forward(prompt, { allLogits: true });
      } finally {
        s.dispose();
      }
    },
    close() { for (const s of sessions) s.dispose(); },
  };
}

/** The CUDA engine (its KV-cache slots, step size and positions; the caller owns and destroys it). */
export function cudaStepBackend(engine: CudaEngine): StepBackend {
  const V = engine.model.config.vocabSize;
  return {
    slots: engine.cache.slots, maxRows: engine.maxRows, maxSeq: engine.cache.maxSeq,
    step(chunks) {
      // a step of decode rows only replays its row count's CUDA graph (same launches, same logits);
      // runDecodeStep runs any other step eagerly, as runStep
      const n = engine.runDecodeStep(chunks);
      const logits = engine.readLogits(n);
      return chunks.map((_, i) => logits.subarray(i * V, (i + 1) * V));
    },
    close() {},
  };
}

export interface ContinuousOptions extends Omit<BatchGenerateOptions, 'onToken'> {
  /** New tokens per request (overrides maxNew; benchmarks with mixed lengths). */
  maxNewPer?: readonly number[];
  onToken?: (request: number, id: number) => void;
  /** Called when a request ends (its slot is free from the next step on). */
  onFinish?: (request: number, ids: readonly number[], reason: FinishReason) => void;
  /** When each request arrives, ms after the call (non-decreasing; benchmarks under load): it joins
   *  the batch at the first step after that, and an idle engine waits for the next one. Absent: all at once. */
  arrivalMs?: readonly number[];
}

export interface ContinuousResult {
  /** Per request, the new ids only. */
  ids: number[][];
  reasons: FinishReason[];
  steps: number;
  /** Sequence-steps: Σ over steps of the chunks. */
  sequenceSteps: number;
  seconds: number;
}

/** One step: plan it, run it on `backend`, sample each sampled chunk's last row, commit the ids. */
export function advance(batcher: ContinuousBatcher, backend: StepBackend, sample: (request: number, logits: Float32Array) => number):
  { chunks: PlannedChunk[]; out: StepOutcome } {
  const chunks = batcher.plan();
  const logits = backend.step(chunks);
  return { chunks, out: batcher.commit(chunks.map((c, i) => (c.sample ? sample(c.request, logits[i]!) : undefined))) };
}

/**
 * Generate for every prompt (each non-empty, from BOS) with continuous batching over `backend`
 * (prompt i is request i: the prompts join in order, all at once or at opts.arrivalMs).
 * Yields to the event loop after every step, so a signal can end a long run (src/core/interrupt.ts).
 */
export async function generateContinuous(backend: StepBackend, prompts: readonly (readonly number[])[], opts: ContinuousOptions = {}): Promise<ContinuousResult> {
  if (prompts.length === 0) fail('generate', 'no prompts');
  const maxNew = opts.maxNew ?? 128, seed = opts.seed ?? 0, stopIds = new Set(opts.stopIds ?? []);
  if (opts.maxNewPer && opts.maxNewPer.length !== prompts.length) fail('generate', `${opts.maxNewPer.length} token limits for ${prompts.length} prompts`);
  if (opts.arrivalMs && opts.arrivalMs.length !== prompts.length) fail('generate', `${opts.arrivalMs.length} arrival times for ${prompts.length} prompts`);
  const batcher = new ContinuousBatcher([], { slots: backend.slots, maxRows: backend.maxRows, maxSeq: backend.maxSeq });
  const rngs = prompts.map((_, i) => new Rng(seed + i));
  const ids: number[][] = prompts.map(() => []), reasons: FinishReason[] = new Array(prompts.length);
  let steps = 0, sequenceSteps = 0;
  const t0 = performance.now();
  let next = 0;  // prompts that joined the batcher so far
  while (next < prompts.length || !batcher.done) {
    const now = performance.now() - t0;
    for (; next < prompts.length && (opts.arrivalMs?.[next] ?? 0) <= now; next++)
      batcher.add({ prompt: prompts[next]!, maxNew: opts.maxNewPer?.[next] ?? maxNew, stopIds });
    if (batcher.done) {  // nothing to run until the next arrival
      await new Promise((resolve) => setTimeout(resolve, opts.arrivalMs![next]! - now));
      continue;
    }
    const { chunks, out } = advance(batcher, backend, (request, logits) => sampleToken(logits, rngs[request]!, opts));
    for (const t of out.tokens) {
      ids[t.request]!.push(t.id);
      opts.onToken?.(t.request, t.id);
    }
    for (const f of out.finished) {
      reasons[f.request] = f.reason;
      opts.onFinish?.(f.request, ids[f.request]!, f.reason);
    }
    steps++;
    sequenceSteps += chunks.length;
    await yieldForSignals();
  }
  return { ids, reasons, steps, sequenceSteps, seconds: (performance.now() - t0) / 1000 };
}
