// docs-llama-30m, RTN g128, first 4,088 tokens of persuasion.txt: ppl(W4A8-IS) within 0.3% of
// ppl(W4A8-FS); and quantize → save → load gives logits identical to the in-memory IS model.
// (FP16 and W4A16 are measured by `intscale demo`; FP16 = 26.5106 is the model's golden test.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel } from '../../src/model/load.ts';
import { Session } from '../../src/model/llama.ts';
import { mapLinears } from '../../src/model/weights.ts';
import { compareModes, quantizeModelInMemory } from '../../src/eval/compare.ts';
import { quantizedLinear } from '../../src/quant/quantized-linears.ts';
import { writeQuantizedModel } from '../../src/quant/quantize-model.ts';
import { MODEL_30M, PERSUASION, sharedMissing } from './helpers.ts';

/** Largest allowed |ppl(IS) − ppl(FS)| / ppl(FS). */
const IS_VS_FS_PPL_TOL = 0.003;
const FP16_REFERENCE = 26.5106;

test('w4a8-is perplexity within 0.3% of w4a8-fs (docs-llama-30m, g128, 4,088 tokens)', { skip: sharedMissing }, () => {
  const model = loadModel(MODEL_30M);
  const ids = model.tokenizer.encode(fs.readFileSync(PERSUASION, 'utf8'));
  const { rows } = compareModes(model, ids, { group: 128, maxTokens: 4088, modes: ['w4a8-fs', 'w4a8-is'] });
  const [fs8, is8] = rows.map((r) => r.ppl) as [number, number];
  const rel = Math.abs(is8 - fs8) / fs8;
  process.stderr.write(`# docs-llama-30m g128 4088 tokens: w4a8-fs ${fs8.toFixed(4)}, w4a8-is ${is8.toFixed(4)} (${(100 * rel).toFixed(3)}%)\n`);
  assert.ok(rel <= IS_VS_FS_PPL_TOL, `IS ${is8} vs FS ${fs8}: ${(100 * rel).toFixed(3)}%`);
  // W4A8 RTN costs some perplexity, but not much on this model
  for (const p of [fs8, is8]) assert.ok(p > FP16_REFERENCE && p < FP16_REFERENCE * 1.1, `ppl ${p}`);
});

test('quantize → save → load: logits identical to the in-memory IS model', { skip: sharedMissing }, async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-ppl-'));
  try {
    const out = path.join(tmp, 'q');
    await writeQuantizedModel(MODEL_30M, out, { method: 'rtn', wbits: 4, group: 128, abits: 8, scale: 'int', amplifier: 'auto', clip: false });
    const loaded = loadModel(out);
    const memory = loadModel(MODEL_30M);
    const { layers } = quantizeModelInMemory(memory, 128, false, 'auto');
    mapLinears(memory.weights, (name) => quantizedLinear(layers.get(name)!, 'w4a8-is'));
    const prompt = loaded.tokenizer.encode('It is a truth universally acknowledged, that a single man in possession of a good fortune');
    const a = new Session(loaded).forward([1, ...prompt], { allLogits: true });
    const b = new Session(memory).forward([1, ...prompt], { allLogits: true });
    assert.equal(a.length, (prompt.length + 1) * loaded.config.vocabSize);
    assert.deepEqual(a, b);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
