// Continuous batching on the CPU engine (src/serve/generate-continuous.ts): more prompts than slots,
// steps smaller than a prompt (chunked prefill), slots reused as sequences end. Every request's ids
// equal `generate` alone with seed + its index, greedy and sampled, dense and Mixtral (the CPU
// engine's batch = alone bit for bit, so the equality is exact).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generate } from '../../src/eval/generate.ts';
import { cpuStepBackend, generateContinuous } from '../../src/serve/generate-continuous.ts';
import { tinyModel } from './tiny-model.ts';

const PROMPTS = [[1, 5, 9], [1], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [1, 30, 31, 32], [1, 7], [1, 12, 13, 14, 15, 16], [1, 39]];

for (const [label, moe] of [['dense', undefined], ['Mixtral (4 experts, top 2)', { experts: 4, topK: 2 }]] as const) {
  test(`continuous batching on the CPU engine (${label}): 7 prompts over 3 slots, 5-row steps = each prompt alone, greedy and sampled, with a stop id`, async () => {
    const { model } = tinyModel('half', false, moe);
    for (const sampling of [{ temperature: 0 }, { temperature: 0.9, topP: 0.8, seed: 11 }]) {
      for (const stopIds of [[], [3]]) {
        const opts = { maxNew: 9, ...sampling, stopIds };
        const backend = cpuStepBackend(model, 3, model.config.maxSeq, 5);
        try {
          const got = await generateContinuous(backend, PROMPTS, opts);
          PROMPTS.forEach((p, i) => {
            const want = generate(model, p, { ...opts, seed: (sampling.seed ?? 0) + i }).ids;
            assert.deepEqual(got.ids[i], want, `prompt ${i}, ${JSON.stringify(opts)}`);
          });
          assert.ok(got.steps > Math.max(...PROMPTS.map((p) => Math.ceil(p.length / 5))), 'several steps');
          assert.ok(got.sequenceSteps / got.steps > 1.5, `the slots stay shared (${got.sequenceSteps} sequence-steps in ${got.steps} steps)`);
          // the context (24 positions) ends the longest prompt's sequence before maxNew only if it must
          got.reasons.forEach((r, i) => assert.ok(r === 'length' || r === 'stop' || (r === 'context' && PROMPTS[i]!.length + 9 > 24), `prompt ${i}: ${r}`));
        } finally {
          backend.close();
        }
      }
    }
  });
}
