// CudaEngine.runDecodeStep (the continuous batcher's decode steps as CUDA graphs): its logits equal
// runStep's bit for bit, on the step that captures the graph and on replays with other slots,
// positions and ids in the same device buffers (the logits poisoned before every run), dense and a
// small Mixtral (grouped expert GEMMs); prefill and mixed steps still run eagerly. Skipped without a GPU.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Gpu } from '../../src/gpu/runtime.ts';
import { openGpu } from '../../src/eval/gpu-eval.ts';
import { CudaEngine, type SeqChunk } from '../../src/backends/cuda/engine.ts';
import { quantizeDeviceModel } from '../../src/backends/cuda/device-model.ts';
import { randomDeviceModel } from '../../src/backends/cuda/load-device.ts';
import { archPreset } from '../../src/model/arch-presets.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import { Rng } from '../../src/core/rng.ts';

const reason = Gpu.unavailableReason();
const skip = reason ? `skipped: ${reason}` : false;

const SMALL_MIXTRAL: ModelConfig = {
  arch: 'mixtral', dim: 512, hiddenDim: 1024, nLayers: 2, nHeads: 8, nKvHeads: 2, headDim: 64, vocabSize: 1024, maxSeq: 64,
  normEps: 1e-5, rope: { theta: 1e6, layout: 'half' }, tieEmbeddings: false, qkvBias: false, nExperts: 4, nExpertsPerTok: 2, bosId: 1, eosId: 2,
};

for (const [label, config, mode] of [
  ['2-layer LLaMA-3-8B-shaped, W4A8-IS', { ...archPreset('llama3-8b', 2), vocabSize: 1024, maxSeq: 64 }, 'w4a8-is'],
  ['2-layer LLaMA-3-8B-shaped, W4A8-FS', { ...archPreset('llama3-8b', 2), vocabSize: 1024, maxSeq: 64 }, 'w4a8-fs'],
  ['2-layer small Mixtral, W4A8-IS', SMALL_MIXTRAL, 'w4a8-is'],
] as const) {
  test(`runDecodeStep (${label}): a graph per row count whose logits = runStep's bit for bit, capture and replays`, { skip, timeout: 300_000 }, () => {
    const c = openGpu(), s = c.gpu.stream();
    const fp16 = randomDeviceModel(c.gpu, c.kernels, s, config, 11);
    const model = quantizeDeviceModel(c.gpu, c.kernels, s, fp16, mode, 128);
    const engine = new CudaEngine(c.gpu, model, { maxBatch: 4, maxSeq: 32, maxRows: 16 }, c.kernels);
    const rng = new Rng(5), V = config.vocabSize;
    const token = () => 3 + Math.floor(rng.next() * (V - 3));
    try {
      // four sequences of different lengths, prefilled eagerly
      const lens = [5, 2, 6, 3];  // 16 rows: the engine's step size
      engine.runStep(lens.map((T, slot) => ({ slot, pos: 0, tokens: Array.from({ length: T }, token) })));
      const logitsOf = (n: number, run: () => number) => {
        c.gpu.memset(engine.logits, 0xff);  // NaN: a run that writes nothing cannot pass
        assert.equal(run(), n);
        return engine.readLogits(n);
      };
      // decode steps over changing slot sets (3 rows: first run captures, then replays; 2 and 4 rows)
      const steps: number[][] = [[2, 0, 3], [1, 2, 0], [3, 1, 2], [0, 3], [0, 1, 2, 3], [2, 3, 1]];
      for (const slots of steps) {
        const chunks: SeqChunk[] = slots.map((slot) => ({ slot, pos: lens[slot]!, tokens: [token()] }));
        // the step writes K/V at each slot's position: running it twice writes the same values
        const eager = logitsOf(slots.length, () => engine.runStep(chunks));
        const graphed = logitsOf(slots.length, () => engine.runDecodeStep(chunks));
        assert.ok(eager.every(Number.isFinite), 'finite logits');
        assert.deepEqual(new Uint32Array(graphed.buffer), new Uint32Array(eager.buffer), `slots ${slots.join(',')}: graph = eager bit for bit`);
        for (const slot of slots) lens[slot]! += 1;
      }
      // a step with a prompt chunk is not a decode step: runDecodeStep runs it eagerly (= runStep)
      const mixed: SeqChunk[] = [{ slot: 0, pos: lens[0]!, tokens: [token(), token()] }, { slot: 1, pos: lens[1]!, tokens: [token()] }];
      assert.deepEqual(new Uint32Array(logitsOf(2, () => engine.runDecodeStep(mixed)).buffer), new Uint32Array(logitsOf(2, () => engine.runStep(mixed)).buffer));
    } finally {
      engine.destroy();
      model.free();
      fp16.free();
      s.destroy();
    }
  });
}
