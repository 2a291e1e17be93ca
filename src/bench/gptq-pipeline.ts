// `intscale bench gptq --pipeline`: the whole calibration pipeline (calibrate.ts) on the GPU, as
// `quantize --method gptq --calib-device cuda` runs it, for the first layers of a shape-true
// architecture: the layer forward on the device (src/gpu/calib/), the Gram matrices of device rows,
// GPTQ's factor and column loop, the quantized weights back on the host. The checkpoint is made up
// (uniform random weights of std 0.02, unit norms, random calibration token ids): the timing depends
// on the shapes only. Per layer: the seconds from reading its weights to its quantized output (each
// layer's weights are copied out of one pool, as a streaming source converts them from a checkpoint).
import { archPreset } from '../model/arch-presets.ts';
import type { ModelConfig } from '../model/config.ts';
import type { CalibrationSource, DenseLayer } from '../quant/calib-source.ts';
import { calibrationLayers } from '../quant/calibrate.ts';
import { Rng } from '../core/rng.ts';
import type { Gpu } from '../gpu/runtime.ts';
import { GpuGptq } from '../gpu/gptq/solver.ts';

export interface GptqPipelineOptions { arch: string; windows: number; window: number; layers: number; group: number; actOrder: boolean; seed?: number }

export interface GptqPipelineResults {
  device: string; date: string; commit: string;
  arch: string; windows: number; window: number; group: number; actOrder: boolean;
  /** seconds per layer, in order (the first includes the kernels' compilation and cuBLASLt's plans) */
  layers: { layer: number; seconds: number }[];
}

/** Uniform values of standard deviation `std`, from a seeded generator. */
function uniforms(rng: Rng, n: number, std: number): Float32Array {
  const out = new Float32Array(n), a = std * Math.sqrt(12);
  for (let i = 0; i < n; i++) out[i] = (rng.nextU32() / 4294967296 - 0.5) * a;
  return out;
}

/** A made-up checkpoint of config c: every linear a copy of part of one random pool. */
export function syntheticCalibrationSource(c: ModelConfig, seed: number): CalibrationSource {
  const rng = new Rng(seed), q = c.nHeads * c.headDim, kv = c.nKvHeads * c.headDim;
  const pool = uniforms(rng, Math.max(c.hiddenDim * c.dim, q * c.dim), 0.02);
  const take = (N: number, K: number) => pool.slice(0, N * K);
  return {
    config: c,
    embedding: () => uniforms(rng, c.vocabSize * c.dim, 1),
    layer(): DenseLayer {
      return {
        attnNorm: new Float32Array(c.dim).fill(1), ffnNorm: new Float32Array(c.dim).fill(1),
        get wq() { return take(q, c.dim); }, get wk() { return take(kv, c.dim); }, get wv() { return take(kv, c.dim); },
        get wo() { return take(c.dim, q); }, get w1() { return take(c.hiddenDim, c.dim); },
        get w2() { return take(c.dim, c.hiddenDim); }, get w3() { return take(c.hiddenDim, c.dim); },
      };
    },
  };
}

export function runGptqPipelineBench(gpu: Gpu, o: GptqPipelineOptions, onLayer?: (line: string) => void): GptqPipelineResults {
  const c = archPreset(o.arch, o.layers), rng = new Rng(o.seed ?? 1);
  const windows = Array.from({ length: o.windows }, () => Array.from({ length: o.window }, () => rng.int(0, c.vocabSize - 1)));
  const solver = new GpuGptq(gpu), layers: GptqPipelineResults['layers'] = [];
  try {
    for (const step of calibrationLayers(syntheticCalibrationSource(c, o.seed ?? 1), windows, { method: 'gptq', group: o.group, actOrder: o.actOrder, gptqDevice: solver })) {
      layers.push({ layer: step.layer, seconds: step.note.seconds });
      onLayer?.(`layer ${step.layer}: ${step.note.seconds.toFixed(2)} s`);
    }
  } finally {
    solver.dispose();
  }
  return {
    device: gpu.name, date: new Date().toISOString(), commit: process.env['INTSCALE_COMMIT'] ?? 'unknown',
    arch: o.arch, windows: o.windows, window: o.window, group: o.group, actOrder: o.actOrder, layers,
  };
}

export function formatGptqPipelineBench(r: GptqPipelineResults): string {
  return [`GPTQ calibration pipeline, ${r.arch}-shaped layers on ${r.device}: ${r.windows} × ${r.window} calibration tokens, group ${r.group}, ${r.actOrder ? 'act-order' : 'natural order'}`,
    ...r.layers.map((l) => `layer ${String(l.layer).padEnd(3)} ${l.seconds.toFixed(2).padStart(7)} s`)].join('\n');
}
