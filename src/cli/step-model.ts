// Where `batch`, `serve` and `bench serve` run a model: the CPU engine or the CUDA engine, as a
// continuous-batching step backend (src/serve/generate-continuous.ts) of `slots` sequences and
// `maxRows` tokens a step, with the model's tokenizer and context; and how a GPU command loads an
// HF directory (its tokenizer, the model in --mode / --group), which `generate` shares.
import * as path from 'node:path';
import { fail } from '../core/errors.ts';
import { parseMode, type Mode } from '../core/modes.ts';
import { quantizeDeviceModel, type DeviceModel } from '../backends/cuda/device-model.ts';
import { randomDeviceModel } from '../backends/cuda/load-device.ts';
import { archPreset } from '../model/arch-presets.ts';
import { CudaEngine } from '../backends/cuda/engine.ts';
import { loadOnGpu, openGpu, type GpuContext } from '../eval/gpu-eval.ts';
import { loadHfTokenizer, type Tokenizer } from '../io/tokenizer.ts';
import { readModelConfig } from '../io/validate-model.ts';
import { loadModelWithProgress } from '../model/load.ts';
import { cpuStepBackend, cudaStepBackend, type StepBackend } from '../serve/generate-continuous.ts';
import type { DeviceCliOptions } from './generation-options.ts';
import { parseIntOption } from './options.ts';

/** A model opened as a step backend factory (no tokenizer: benchmarks on random weights). */
export interface OpenEngine {
  vocabSize: number;
  /** The model's context (positions). */
  context: number;
  /** The step backend for sequences of at most maxSeq positions. */
  backend(maxSeq: number): StepBackend;
  label: string;
  close(): void;
}

export interface OpenModel extends OpenEngine {
  tokenizer: Tokenizer;
}

function openCpu(modelPath: string, maxBatch: number, maxRows: number): OpenModel {
  const model = loadModelWithProgress(modelPath);
  let backend: StepBackend | undefined;
  return {
    tokenizer: model.tokenizer, vocabSize: model.config.vocabSize, context: model.config.maxSeq, label: 'CPU',
    backend: (maxSeq) => (backend = cpuStepBackend(model, maxBatch, maxSeq, maxRows)),
    close: () => backend?.close(),
  };
}

/** The model directory's tokenizer.json (the GPU commands load HF directories). */
export function hfTokenizerOf(modelPath: string): Tokenizer {
  return loadHfTokenizer(path.join(modelPath, 'tokenizer.json'), path.join(modelPath, 'tokenizer_config.json'));
}

/** The model at `modelPath` on the GPU in --mode (default: the checkpoint's), quantized with --group where needed. */
export function loadGpuModel(modelPath: string, opts: DeviceCliOptions): { gpu: GpuContext; model: DeviceModel } {
  const gpu = openGpu();
  return { gpu, model: loadOnGpu(gpu, modelPath, { ...(opts.mode ? { mode: parseMode(opts.mode) } : {}), group: parseIntOption('--group', opts.group, 1) }) };
}

function openCuda(modelPath: string, opts: DeviceCliOptions, maxBatch: number, maxRows: number): OpenModel {
  const config = readModelConfig(modelPath).config;
  const tokenizer = hfTokenizerOf(modelPath);
  const { gpu, model } = loadGpuModel(modelPath, opts);
  let engine: CudaEngine | undefined;
  return {
    tokenizer, vocabSize: config.vocabSize, context: config.maxSeq, label: `${gpu.gpu.name} (${model.mode})`,
    backend: (maxSeq) => cudaStepBackend(engine = new CudaEngine(gpu.gpu, model, { maxBatch, maxSeq, maxRows }, gpu.kernels)),
    close: () => { engine?.destroy(); model.free(); },
  };
}

/** The model at `modelPath` on `device` ('cpu' or 'cuda'), for `slots` sequences and `maxRows` tokens a step. */
export function openStepModel(modelPath: string, device: 'cpu' | 'cuda', opts: DeviceCliOptions, slots: number, maxRows: number): OpenModel {
  if (device === 'cpu' && opts.mode !== undefined) fail('--mode', 'is a GPU option (on the CPU a checkpoint runs as quantized)');
  return device === 'cuda' ? openCuda(modelPath, opts, slots, maxRows) : openCpu(modelPath, slots, maxRows);
}

/** Random shape-true weights of a preset architecture on the GPU (like bench e2e), in `mode`. */
export function openRandomCuda(arch: string, mode: Mode, slots: number, maxRows: number): OpenEngine {
  const config = archPreset(arch);
  const gpu = openGpu(), s = gpu.gpu.stream();
  let fp16: DeviceModel | undefined, model: DeviceModel | undefined;
  try {
    fp16 = randomDeviceModel(gpu.gpu, gpu.kernels, s, config, 1);
    model = mode === 'fp16' ? fp16 : quantizeDeviceModel(gpu.gpu, gpu.kernels, s, fp16, mode);
  } catch (e) {
    fp16?.free();
    throw e;
  } finally {
    s.destroy();
  }
  const m = model;
  let engine: CudaEngine | undefined;
  return {
    vocabSize: config.vocabSize, context: config.maxSeq, label: `${gpu.gpu.name} (${arch}, random weights, ${mode})`,
    backend: (maxSeq) => cudaStepBackend(engine = new CudaEngine(gpu.gpu, m, { maxBatch: slots, maxSeq, maxRows }, gpu.kernels)),
    close: () => { engine?.destroy(); if (m !== fp16) m.free(); fp16!.free(); },
  };
}
