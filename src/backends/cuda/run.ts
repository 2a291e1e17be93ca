// What callers do with a CudaEngine: score chunks of ids (perplexity: every position's logits),
// the last-position logits of prompts, and batched generation (prefill packed into steps of at
// most maxRows tokens, then decode as CUDA-graph replays with sampling on the GPU).
import { fail } from '../../core/errors.ts';
import type { BatchGenerateOptions, BatchGenerateResult } from '../../eval/generate.ts';
import { GREEDY, type CudaEngine, type SeqChunk, type Sampling } from './engine.ts';

/** Logits [T_i, vocab] of every position of each chunk, each run from position 0 in its own slot. */
export function scoreChunks(engine: CudaEngine, chunks: readonly (readonly number[])[]): Float32Array[] {
  const V = engine.model.config.vocabSize, out: Float32Array[] = [];
  for (let i = 0; i < chunks.length;) {
    const step: SeqChunk[] = [];
    let rows = 0;
    while (i < chunks.length && step.length < engine.cache.slots && rows + chunks[i]!.length <= engine.maxRows) {
      step.push({ slot: step.length, pos: 0, tokens: chunks[i]! });
      rows += chunks[i]!.length;
      i++;
    }
    if (step.length === 0) fail('engine', `a chunk of ${chunks[i]!.length} tokens exceeds the step size of ${engine.maxRows}`);
    const n = engine.runStep(step, { allLogits: true });
    const logits = engine.readLogits(n);
    let r = 0;
    for (const s of step) { out.push(logits.slice(r * V, (r + s.tokens.length) * V)); r += s.tokens.length; }
  }
  return out;
}

/**
 * Prefill `prompts` into slots 0..n-1 (steps of ≤ maxRows tokens; a long prompt spans steps) and
 * return each prompt's last-position logits (when `keepLogits`) and, when sampling is given, its first
 * sampled id (on the GPU).
 */
export function prefill(engine: CudaEngine, prompts: readonly (readonly number[])[], sampling?: Sampling,
  keepLogits = false): { first: number[]; logits: Float32Array[] } {
  if (prompts.length > engine.cache.slots) fail('engine', `${prompts.length} prompts exceed --max-batch ${engine.cache.slots}`);
  const V = engine.model.config.vocabSize;
  const done = prompts.map(() => 0);
  const first: number[] = new Array(prompts.length).fill(-1);
  const logits: Float32Array[] = new Array(prompts.length);
  let next = 0;
  while (done.some((d, i) => d < prompts[i]!.length)) {
    const step: SeqChunk[] = [], members: number[] = [];
    let budget = engine.maxRows;
    for (let k = 0; k < prompts.length && budget > 0; k++) {
      const i = (next + k) % prompts.length, left = prompts[i]!.length - done[i]!;
      if (left === 0) continue;
      const take = Math.min(left, budget);
      step.push({ slot: i, pos: done[i]!, tokens: prompts[i]!.slice(done[i]!, done[i]! + take) });
      members.push(i);
      budget -= take;
    }
    next = (members[members.length - 1]! + 1) % prompts.length;
    const n = engine.runStep(step);
    const ids = sampling ? engine.sampleRows(n, sampling) : [];
    const rows = keepLogits ? engine.readLogits(n) : undefined;
    members.forEach((i, j) => {
      done[i]! += step[j]!.tokens.length;
      if (done[i] !== prompts[i]!.length) return;  // this chunk's last row is not the prompt's last
      if (sampling) first[i] = ids[j]!;
      if (rows) logits[i] = rows.slice(j * V, (j + 1) * V);
    });
  }
  engine.gpu.sync();
  return { first, logits };
}

export interface GpuGenerateOptions extends BatchGenerateOptions {
  /** Replay the captured decode graph (default) or launch every kernel (for tests). */
  graph?: boolean;
}

/** Generate for a batch of prompts on the GPU (each non-empty, started with BOS). */
export function generateOnGpu(engine: CudaEngine, prompts: readonly (readonly number[])[], opts: GpuGenerateOptions = {}): BatchGenerateResult {
  if (prompts.length === 0) fail('generate', 'no prompts');
  const maxNew = opts.maxNew ?? 128;
  const sampling: Sampling = (opts.temperature ?? 0) > 0 ? { temperature: opts.temperature!, topP: opts.topP ?? 0.9, seed: opts.seed ?? 0 } : GREEDY;
  const stop = new Set(opts.stopIds ?? []);
  prompts.forEach((p, i) => {
    if (p.length === 0) fail('generate', `empty prompt ${i}: start from BOS`);
    if (p.length + maxNew > engine.cache.maxSeq) fail('generate', `prompt ${i} (${p.length} tokens) + ${maxNew} new tokens exceed --max-seq ${engine.cache.maxSeq}`);
  });
  const B = prompts.length;
  let t0 = performance.now();
  const { first } = prefill(engine, prompts, sampling);
  const prefillSeconds = (performance.now() - t0) / 1000;
  const ids: number[][] = prompts.map(() => []);
  const running = prompts.map(() => true);
  const take = (b: number, id: number) => {
    if (!running[b]) return;
    if (stop.has(id)) { running[b] = false; return; }
    ids[b]!.push(id);
    opts.onToken?.(b, id);
    if (ids[b]!.length >= maxNew) running[b] = false;
  };
  first.forEach((id, b) => take(b, id));
  t0 = performance.now();
  if (maxNew > 1 && running.some(Boolean)) {
    engine.beginDecode(first, prompts.map((p) => p.length), 1);
    const graph = (opts.graph ?? true) && engine.graphable(B);  // (a mixture of experts above batch 16 decodes eagerly)
    if (graph) engine.decodeGraph(B, sampling);  // capture (after its own warm-up) before timing-sensitive replays
    const chunk = opts.onToken ? 1 : maxNew - 1;
    for (let step = 1; step < maxNew && running.some(Boolean); step += chunk) {
      const n = Math.min(chunk, maxNew - step);
      engine.decode(B, n, sampling, graph);
      for (const row of engine.readHistory(B, step, step + n)) row.forEach((id, b) => take(b, id));
    }
  }
  return { ids, prefillSeconds, decodeSeconds: (performance.now() - t0) / 1000 };
}
