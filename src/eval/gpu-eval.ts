// Evaluation on the GPU engine: perplexity with the reference chunking (several chunks per engine
// step, each in its own KV slot) and the compare table of every mode in one process (the fp16
// model is loaded once; each W4 mode is quantized from it on the GPU, measured, and freed).
import { Gpu } from '../gpu/runtime.ts';
import { CudaEngine } from '../backends/cuda/engine.ts';
import { EngineKernels } from '../backends/cuda/kernels.ts';
import { loadDeviceModel, type DeviceLoadOptions } from '../backends/cuda/load-device.ts';
import type { Mode } from '../core/modes.ts';
import { quantizeDeviceModel, type DeviceModel } from '../backends/cuda/device-model.ts';
import { scoreChunks } from '../backends/cuda/run.ts';
import { perplexityWith, type PerplexityOptions, type PerplexityResult } from './perplexity.ts';
import type { CompareRow } from './compare.ts';

/** What one process needs to run models on the GPU. */
export interface GpuContext {
  gpu: Gpu;
  kernels: EngineKernels;
}

export function openGpu(): GpuContext {
  const gpu = Gpu.open();
  return { gpu, kernels: new EngineKernels(gpu) };
}

export function loadOnGpu(ctx: GpuContext, dir: string, opts: DeviceLoadOptions = {}): DeviceModel {
  const s = ctx.gpu.stream();
  try {
    return loadDeviceModel(ctx.gpu, ctx.kernels, s, dir, opts);
  } finally {
    s.destroy();
  }
}

/** Perplexity of `ids` on a device model (chunks of ctx − 1 ids, BOS prepended, all scored once). */
export function gpuPerplexity(ctx: GpuContext, model: DeviceModel, ids: readonly number[], opts: PerplexityOptions & { bosId: number }): PerplexityResult {
  const c = model.config, chunkLen = opts.ctx ?? 512;
  // chunks per step: logits of all their rows stay under ~1 GiB
  const perCall = Math.max(1, Math.min(16, Math.floor(2 ** 28 / (chunkLen * c.vocabSize))));
  const engine = new CudaEngine(ctx.gpu, model, { maxBatch: perCall, maxSeq: Math.min(chunkLen, c.maxSeq), maxRows: perCall * chunkLen, allLogits: true }, ctx.kernels);
  try {
    return perplexityWith({ vocab: c.vocabSize, maxSeq: c.maxSeq, chunksPerCall: perCall, score: (chunks) => scoreChunks(engine, chunks) }, ids, opts);
  } finally {
    engine.destroy();
  }
}

/** The compare table on the GPU: `fp16` loaded once, each W4 mode RTN-quantized from it on the GPU. */
export function gpuCompare(ctx: GpuContext, fp16: DeviceModel, ids: readonly number[], modes: Mode[], group: number,
  opts: PerplexityOptions & { bosId: number }, onMode?: (mode: Mode) => PerplexityOptions['onProgress']): CompareRow[] {
  const rows: CompareRow[] = [];
  let base: number | undefined;
  const s = ctx.gpu.stream();
  try {
    for (const mode of modes) {
      const started = performance.now();
      // PC quantizes per channel whatever the table's group
      const model = mode === 'fp16' ? fp16 : quantizeDeviceModel(ctx.gpu, ctx.kernels, s, fp16, mode, mode === 'w4a8-pc' ? 128 : group);
      try {
        const r = gpuPerplexity(ctx, model, ids, { ...opts, onProgress: onMode?.(mode) });
        if (mode === 'fp16') base = r.ppl;
        rows.push({ mode, method: mode === 'fp16' ? '-' : 'rtn', group: mode === 'w4a8-pc' ? -1 : group, ppl: r.ppl,
          rel_vs_fp16: base === undefined ? null : (r.ppl - base) / base, tokens: r.tokens, seconds: (performance.now() - started) / 1000 });
      } finally {
        if (model !== fp16) model.free();
      }
    }
  } finally {
    s.destroy();
  }
  return rows;
}
