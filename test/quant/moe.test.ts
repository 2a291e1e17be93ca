// Mixtral (a sparse mixture of experts) through the quantization stack on the CPU: a tiny random
// MixtralForCausalLM directory quantizes with RTN (every expert's w1 / w3 / w2 quantized, the router
// kept dense and copied as it was), saves, and loads back to the same logits, bit for bit, as the
// same quantization installed in memory; compareModes scores every mode; calibrated methods refuse
// it in one line without an output directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openSafetensorsDir } from '../../src/io/safetensors.ts';
import { loadModel } from '../../src/model/load.ts';
import { Session } from '../../src/model/llama.ts';
import { isMoeLayer, mapLinears } from '../../src/model/weights.ts';
import { quantizeLayer, writeQuantizedModel, type QuantizeOptions } from '../../src/quant/quantize-model.ts';
import { IsLinear } from '../../src/quant/linear-is.ts';
import { compareModes } from '../../src/eval/compare.ts';
import { EXPERTS, LAYERS, makeModelDir, writeTinyTokenizer } from './helpers.ts';

const OPTS: QuantizeOptions = { method: 'rtn', wbits: 4, group: 64, abits: 8, scale: 'int', amplifier: 'auto', clip: false };
const TOKENS = [1, 5, 9, 12, 3, 27, 8, 14, 2, 20];

function withDir(fn: (root: string) => Promise<void>): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-moe-'));
  return fn(root).finally(() => fs.rmSync(root, { recursive: true, force: true }));
}

test('Mixtral: RTN quantizes every expert (router dense), the checkpoint loads to the in-memory logits bit for bit', () => withDir(async (root) => {
  const src = makeModelDir(root, 'mixtral');
  writeTinyTokenizer(src);
  const out = path.join(root, 'q');
  const reports = await writeQuantizedModel(src, out, OPTS);
  assert.equal(reports.length, (4 + 3 * EXPERTS) * LAYERS);
  assert.ok(reports.some((r) => r.name === 'model.layers.1.block_sparse_moe.experts.2.w2'));
  const orig = openSafetensorsDir(src), saved = openSafetensorsDir(out);
  try {
    const router = 'model.layers.0.block_sparse_moe.gate.weight';
    assert.deepEqual(saved.read(router), orig.read(router), 'the router is copied as it was');
    assert.equal(saved.info(router).dtype, 'F16');
    assert.equal(saved.has('model.layers.0.block_sparse_moe.experts.0.w1.weight'), false);
    assert.equal(saved.info('model.layers.0.block_sparse_moe.experts.0.w1.qweight').dtype, 'U8');

    // the saved checkpoint against the dense model with the same quantized linears installed
    const quantized = loadModel(out), dense = loadModel(src);
    const layer = quantized.weights.layers[0]!;
    assert.ok(isMoeLayer(layer) && layer.moe.experts.length === EXPERTS && layer.moe.topK === 2);
    mapLinears(dense.weights, (name) => {
      const { qw, is } = quantizeLayer(orig, name, OPTS).layer;
      return new IsLinear(qw, is);
    });
    const got = new Session(quantized).forward(TOKENS, { allLogits: true });
    const want = new Session(dense).forward(TOKENS, { allLogits: true });
    assert.equal(got.length, TOKENS.length * 50);
    assert.ok(got.every(Number.isFinite));
    for (let i = 0; i < want.length; i++) if (!Object.is(got[i], want[i])) assert.fail(`logit ${i}: ${got[i]} loaded, ${want[i]} in memory`);
  } finally {
    orig.close();
    saved.close();
  }
}));

test('Mixtral: compareModes scores fp16 and every W4 mode; quantization moves the perplexity', () => withDir(async (root) => {
  const src = makeModelDir(root, 'mixtral');
  writeTinyTokenizer(src);
  const model = loadModel(src);
  const ids = Array.from({ length: 40 }, (_, i) => (i * 7 + 3) % 29);
  const { rows, reports } = compareModes(model, ids, { group: 64, ctx: 16 });
  assert.equal(reports.length, (4 + 3 * EXPERTS) * LAYERS);
  assert.deepEqual(rows.map((r) => r.mode), ['fp16', 'w4a16', 'w4a8-fs', 'w4a8-is']);
  const fp = rows[0]!.ppl;
  assert.ok(rows.every((r) => Number.isFinite(r.ppl) && r.ppl > 1), rows.map((r) => r.ppl).join(', '));
  assert.ok(rows.slice(1).every((r) => r.ppl !== fp), 'the quantized modes differ from fp16');
}));

test('Mixtral: calibrated methods refuse a mixture of experts in one line, leaving no output', () => withDir(async (root) => {
  const src = makeModelDir(root, 'mixtral');
  writeTinyTokenizer(src);
  const calib = path.join(root, 'calib.txt');
  fs.writeFileSync(calib, 'abc def ghi jkl mno pqr stu vwx yz '.repeat(40));
  const out = path.join(root, 'q');
  await assert.rejects(writeQuantizedModel(src, out, { ...OPTS, method: 'gptq', calib: { file: calib, samples: 2, len: 16, seed: 0 } }),
    /mixture-of-experts models are not supported/);
  assert.equal(fs.existsSync(out), false);
  assert.deepEqual(fs.readdirSync(root).filter((n) => n.startsWith('.q')), []);
}));
