// Evaluation on the GPU engine: perplexity with the reference chunking (several chunks per engine
// step, each in its own KV slot) and the compare table of every mode in one process (the fp16
// model is loaded once; each W4 mode is quantized from it on the GPU, measured, and freed).
import { Gpu } from '../gpu/runtime.ts';
import { CudaEngine } from '../backends/cuda/engine.ts';
import { EngineKernels } from '../backends/cuda/kernels.ts';
import { loadDeviceModel, type DeviceLoadOptions } from '../backends/cuda/load-device.ts';
import { quantizeDeviceModel, type DeviceModel, type EngineMode } from '../backends/cuda/device-model.ts';
import { scoreChunks } from '../backends/cuda/run.ts';
import { perplexityWith, type PerplexityOptions, type PerplexityResult } from './perplexity.ts';
import type { CompareMode, CompareRow } from './compare.ts';

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

const MODE_OF: Record<CompareMode, EngineMode> = {
  'FP16': 'fp16', 'W4A16': 'w4a16', 'W4A8-FS': 'w4a8-fs', 'W4A8-IS': 'w4a8-is', 'W4A8-PC': 'w4a8-pc',
};

/** The compare table on the GPU: `fp16` loaded once, each W4 mode RTN-quantized from it on the GPU. */
export function gpuCompare(ctx: GpuContext, fp16: DeviceModel, ids: readonly number[], modes: CompareMode[], group: number,
  opts: PerplexityOptions & { bosId: number }, onMode?: (mode: CompareMode) => PerplexityOptions['onProgress']): CompareRow[] {
  const rows: CompareRow[] = [];
  let base: number | undefined;
  const s = ctx.gpu.stream();
  try {
    for (const mode of modes) {
      const m = MODE_OF[mode];
      const started = performance.now();
      // PC quantizes per channel whatever the table's group
      const model = m === 'fp16' ? fp16 : quantizeDeviceModel(ctx.gpu, ctx.kernels, s, fp16, m, m === 'w4a8-pc' ? 128 : group);
      try {
        const r = gpuPerplexity(ctx, model, ids, { ...opts, onProgress: onMode?.(mode) });
        if (mode === 'FP16') base = r.ppl;
        rows.push({ mode, method: mode === 'FP16' ? '-' : 'rtn', group: m === 'w4a8-pc' ? -1 : group, ppl: r.ppl,
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
