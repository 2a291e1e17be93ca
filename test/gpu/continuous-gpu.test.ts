// Continuous batching on the CUDA engine (src/serve/generate-continuous.ts's cudaStepBackend): more
// prompts than KV-cache slots, 6-row steps mixing decode rows and prompt chunks, slots reused. In
// W4A8-IS every GEMM is exact integer arithmetic whatever M or tile a step gets, and the row and
// attention kernels work per row / per sequence, so each prompt's greedy ids equal the same engine
// running that prompt alone, bit for bit; a small random Mixtral (grouped expert GEMMs in steps of
// up to 16 rows) too. Skipped without a GPU.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Gpu } from '../../src/gpu/runtime.ts';
import { openGpu } from '../../src/eval/gpu-eval.ts';
import { CudaEngine } from '../../src/backends/cuda/engine.ts';
import { quantizeDeviceModel } from '../../src/backends/cuda/device-model.ts';
import { randomDeviceModel } from '../../src/backends/cuda/load-device.ts';
import { archPreset } from '../../src/model/arch-presets.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import { cudaStepBackend, generateContinuous } from '../../src/serve/generate-continuous.ts';

const reason = Gpu.unavailableReason();
const skip = reason ? `skipped: ${reason}` : false;

const SMALL_MIXTRAL: ModelConfig = {
  arch: 'mixtral', dim: 512, hiddenDim: 1024, nLayers: 2, nHeads: 8, nKvHeads: 2, headDim: 64, vocabSize: 1024, maxSeq: 64,
  normEps: 1e-5, rope: { theta: 1e6, layout: 'half' }, tieEmbeddings: false, qkvBias: false, nExperts: 4, nExpertsPerTok: 2, bosId: 1, eosId: 2,
};
const PROMPTS = [[1, 17, 203, 9], [1], [1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14], [1, 300, 301], [1, 42, 43, 44, 45, 46], [1, 999]];

for (const [label, config] of [['2-layer LLaMA-3-8B-shaped', { ...archPreset('llama3-8b', 2), vocabSize: 1024, maxSeq: 64 }], ['2-layer small Mixtral', SMALL_MIXTRAL]] as const) {
  test(`continuous batching on the GPU (${label}, W4A8-IS): 6 prompts over 2 slots in 6-row steps = each prompt alone, bit for bit`, { skip, timeout: 300_000 }, async () => {
    const c = openGpu(), s = c.gpu.stream();
    const fp16 = randomDeviceModel(c.gpu, c.kernels, s, config, 7);
    const model = quantizeDeviceModel(c.gpu, c.kernels, s, fp16, 'w4a8-is', 128);
    try {
      const run = async (prompts: number[][], slots: number) => {
        const engine = new CudaEngine(c.gpu, model, { maxBatch: slots, maxSeq: 32, maxRows: 6 }, c.kernels);
        try {
          return await generateContinuous(cudaStepBackend(engine), prompts, { maxNew: 10 });
        } finally {
          engine.destroy();
        }
      };
      const together = await run(PROMPTS, 2);
      assert.ok(together.sequenceSteps / together.steps > 1.5, 'the slots are shared');
      for (const [i, p] of PROMPTS.entries()) assert.deepEqual(together.ids[i], (await run([p], 1)).ids[0], `prompt ${i}`);
    } finally {
      model.free();
      fp16.free();
      s.destroy();
    }
  });
}
