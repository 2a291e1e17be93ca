// Mixtral (a sparse mixture of experts) through the quantization stack on the CPU: a tiny random
// MixtralForCausalLM directory quantizes with RTN (every expert's w1 / w3 / w2 quantized, the router
// kept dense and copied as it was), saves, and loads back to the same logits, bit for bit, as the
// same quantization installed in memory; compareModes scores every mode; GPTQ calibrates every
// expert from the rows routed to it (an expert no row reaches falls back to RTN, and `quantize`
// says so) and beats RTN on held-out output error; AWQ (and SmoothQuant) scale the experts' shared
// input through the norm and the router and each expert's down through its w3, beat RTN, and save a
// checkpoint that loads to the in-memory logits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { openSafetensorsDir, writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.ts';
import { f16ToF32, f32ArrayToF16, f32ToF16 } from '../../src/core/dtype.ts';
import { loadModel } from '../../src/model/load.ts';
import { Session } from '../../src/model/llama.ts';
import { isMoeLayer, mapLinears, rawWeightOf } from '../../src/model/weights.ts';
import { quantizeLayer, writeQuantizedModel, type QuantizeOptions } from '../../src/quant/quantize-model.ts';
import { IsLinear } from '../../src/quant/linear-is.ts';
import { compareModes } from '../../src/eval/compare.ts';
import { Rng } from '../../src/core/rng.ts';
import { denseLinear } from '../../src/model/weights.ts';
import type { MethodOptions } from '../../src/quant/calibrate.ts';
import { EXPERTS, LAYERS, makeModelDir, writeTinyTokenizer } from './helpers.ts';
import { smallLlama } from './small-llama.ts';
import { engineLogits, logitError, randomWindows } from './calib-eval.ts';

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

/** The calibration tests' small Mixtral (4 experts, top 2), its calibration and held-out windows, and
 *  `err`: a method's held-out logit MSE against the fp32 model. */
function mixtralCase() {
  const model = smallLlama(31, { experts: 4 });
  const rng = new Rng(32);
  const calib = randomWindows(rng, 12, 32, 64), heldOut = randomWindows(rng, 4, 32, 64);
  const ref = engineLogits(model, heldOut);
  const linears = (4 + 3 * 4) * 2;
  const err = (o: MethodOptions, inspect?: Parameters<typeof logitError>[6], mode?: Parameters<typeof logitError>[7]) =>
    logitError(model, o, calib, heldOut, ref, linears, inspect, mode);
  return { model, calib, heldOut, ref, linears, err };
}

test('Mixtral: GPTQ (and act-order) beat RTN on held-out output error; every expert is calibrated; an unrouted expert falls back to RTN', () => {
  const { model, calib, heldOut, ref, linears, err } = mixtralCase();
  const rtn = err({ method: 'rtn', group: 32 });
  const gptq = err({ method: 'gptq', group: 32 }, (r) => r.notes.forEach((n) => {
    assert.equal(n.expertRows!.reduce((a, b) => a + b, 0), 12 * 32 * 2, `layer ${n.layer}: every row to 2 experts`);
    assert.ok(n.expertRows!.every((k) => k > 0), `layer ${n.layer}: every expert gets rows (${n.expertRows!.join(', ')})`);
  }));
  const gptqAo = err({ method: 'gptq', group: 32, actOrder: true });
  process.stderr.write(`# Mixtral logit MSE: rtn ${rtn.toExponential(3)} gptq ${gptq.toExponential(3)} gptq-ao ${gptqAo.toExponential(3)}\n`);
  assert.ok(gptq < rtn && gptqAo < rtn, `gptq ${gptq}, act-order ${gptqAo} vs rtn ${rtn}`);
  assert.equal(maxAbs(engineLogits(model, heldOut), ref), 0, 'the dense model is restored');
  // top 1 with routers (10·v, −10·v, 10·u, 0): one of the first two logits is positive for every
  // row, so expert 3 (logit 0) is never chosen: no statistics, quantized by RTN and noted
  const top1 = smallLlama(33, { experts: 4, topK: 1 });
  const dirs = new Rng(34), v = dirs.normals(64, 1), u = dirs.normals(64, 1);
  for (const layer of top1.weights.layers) {
    if (!('moe' in layer)) assert.fail('a mixture-of-experts layer');
    const router = new Float32Array(4 * 64);
    for (let k = 0; k < 64; k++) { router[k] = 10 * v[k]!; router[64 + k] = -10 * v[k]!; router[128 + k] = 10 * u[k]!; }
    layer.moe.router = denseLinear(router, 4, 64);
  }
  logitError(top1, { method: 'gptq', group: 32 }, calib, heldOut, engineLogits(top1, heldOut), linears,
    (r) => r.notes.forEach((n) => {
      assert.equal(n.expertRows![3], 0, `layer ${n.layer}: expert 3 unrouted`);
      assert.ok(n.expertRows!.slice(0, 3).every((k) => k > 0), `layer ${n.layer}: ${n.expertRows!.join(', ')}`);
    }));
});

function maxAbs(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

test('Mixtral: AWQ, AWQ+GPTQ and SmoothQuant+GPTQ (W4A8) beat RTN on held-out output error; the experts\' shared input scale folds into the norm and the router (routing kept), each expert\'s down scale into its w3', () => {
  const { model, heldOut, ref, err } = mixtralCase();
  const routerOf = (l: number) => `model.layers.${l}.block_sparse_moe.gate.weight`;
  const rtn = err({ method: 'rtn', group: 32 });
  // the router's columns take the experts' shared input scale, so routing is kept
  const routingKept = (r: Parameters<NonNullable<Parameters<typeof logitError>[6]>>[0]) => r.notes.forEach((n) => {
    const orig = model.weights.layers[n.layer]!, router = r.norms.get(routerOf(n.layer));
    const gamma = r.norms.get(`model.layers.${n.layer}.post_attention_layernorm.weight`)!;
    if (!isMoeLayer(orig)) assert.fail('a mixture-of-experts layer');
    assert.ok(router && router.length === 4 * 64 && router.every((v) => Object.is(v, f16ToF32(f32ToF16(v)))), 'the folded router, fp16-exact');
    const w = rawWeightOf(orig.moe.router)!;
    for (let e = 0; e < 4; e++) for (let k = 0; k < 64; k++) {
      const a: number = w[e * 64 + k]! * orig.ffnNorm[k]!, b: number = router[e * 64 + k]! * gamma[k]!;
      if (!(Math.abs(a - b) <= 2e-3 * Math.abs(a) + 1e-7)) assert.fail(`layer ${n.layer} router ${e},${k}: ${a} vs ${b} (γ-weighted)`);
    }
  });
  const awq = err({ method: 'awq', group: 32 }, (r) => {
    routingKept(r);
    for (const n of r.notes) assert.ok(n.awqAlpha && [n.awqAlpha.attn, n.awqAlpha.mlp, n.awqAlpha.down].every((a) => a >= 0 && a < 1), `layer ${n.layer}: ${JSON.stringify(n.awqAlpha)}`);
  });
  const awqGptq = err({ method: 'gptq', group: 32, awqScales: true });
  const rtnA8 = err({ method: 'rtn', group: 32 }, undefined, 'w4a8-is');
  const smoothGptqA8 = err({ method: 'gptq', group: 32, smooth: 0.5 }, routingKept, 'w4a8-is');
  process.stderr.write(`# Mixtral logit MSE: rtn ${rtn.toExponential(3)} awq ${awq.toExponential(3)} awq+gptq ${awqGptq.toExponential(3)}; ` +
    `W4A8-IS: rtn ${rtnA8.toExponential(3)} smooth+gptq ${smoothGptqA8.toExponential(3)}\n`);
  for (const [name, e, base] of [['awq', awq, rtn], ['awq+gptq', awqGptq, rtn], ['smooth+gptq (W4A8-IS)', smoothGptqA8, rtnA8]] as const)
    assert.ok(e < base, `${name} ${e} vs rtn ${base}`);
  assert.equal(maxAbs(engineLogits(model, heldOut), ref), 0, 'the dense model (router, norms, experts) is restored');
});

test('Mixtral: quantize --method gptq --smooth writes the folded norms and router (fp16) with the experts; --method awq runs; the checkpoints load and run', () => withDir(async (root) => {
  const src = makeModelDir(root, 'mixtral');
  writeTinyTokenizer(src);
  const calib = path.join(root, 'calib.txt');
  fs.writeFileSync(calib, 'abc def ghi jkl mno pqr stu vwx yz '.repeat(40));
  const out = path.join(root, 'q');
  const calibOpts = { file: calib, samples: 2, len: 16, seed: 0 };
  const reports = await writeQuantizedModel(src, out, { ...OPTS, method: 'gptq', smooth: 0.5, calib: calibOpts });
  assert.equal(reports.length, (4 + 3 * EXPERTS) * LAYERS);
  const awqOut = path.join(root, 'qa');
  assert.equal((await writeQuantizedModel(src, awqOut, { ...OPTS, method: 'awq', calib: calibOpts })).length, (4 + 3 * EXPERTS) * LAYERS);
  assert.ok(new Session(loadModel(awqOut)).forward(TOKENS).every(Number.isFinite));
  const orig = openSafetensorsDir(src), saved = openSafetensorsDir(out);
  try {
    for (let l = 0; l < LAYERS; l++) {
      const router = `model.layers.${l}.block_sparse_moe.gate.weight`, norm = `model.layers.${l}.post_attention_layernorm.weight`;
      assert.equal(saved.info(router).dtype, 'F16');
      assert.notDeepEqual(saved.read(router), orig.read(router), `layer ${l}: the router took the experts' input scale`);
      assert.notDeepEqual(saved.read(norm), orig.read(norm), `layer ${l}: the norm too`);
    }
  } finally {
    orig.close();
    saved.close();
  }
  const logits = new Session(loadModel(out)).forward(TOKENS, { allLogits: true });
  assert.ok(logits.length === TOKENS.length * 50 && logits.every(Number.isFinite));
}));

test('Mixtral: quantize --method gptq says which experts no calibration row reached (quantized by RTN)', () => withDir(async (root) => {
  const src = makeModelDir(root, 'mixtral');
  writeTinyTokenizer(src);
  // top 1 with routers (10·v, −10·v, 0) in every layer: one of the first two logits is positive, so expert 2 is never chosen
  const cfgFile = path.join(src, 'config.json');
  fs.writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, 'utf8')), num_experts_per_tok: 1 }));
  const s = openSafetensorsDir(src), v = new Rng(3).normals(64, 1);
  const tensors: TensorToWrite[] = s.names().map((name) => {
    const i = s.info(name);
    if (!name.endsWith('block_sparse_moe.gate.weight')) return { name, dtype: i.dtype as 'F16', shape: i.shape, data: s.read(name) };
    const r = new Float32Array(EXPERTS * 64);
    for (let k = 0; k < 64; k++) { r[k] = 10 * v[k]!; r[64 + k] = -10 * v[k]!; }
    return { name, dtype: 'F16', shape: i.shape, data: f32ArrayToF16(r) };
  });
  s.close();
  writeSafetensors(path.join(src, 'model.safetensors'), tensors);
  const calib = path.join(root, 'calib.txt');
  fs.writeFileSync(calib, 'abc def ghi jkl mno pqr stu vwx yz '.repeat(40));
  const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
  const r = spawnSync(process.execPath, ['--import', 'tsx', main, 'quantize', src, '--out', path.join(root, 'q'), '--method', 'gptq', '--group', '64',
    '--calib', calib, '--calib-samples', '2', '--calib-len', '16', '--calib-device', 'cpu'], { encoding: 'utf8', env: { ...process.env, INTSCALE_QUIET: '1' } });
  assert.equal(r.status, 0, r.stderr);
  for (let l = 0; l < LAYERS; l++) assert.match(r.stderr, new RegExp(`note: layer ${l}: no calibration row reached expert\\(s\\) 2: quantized by RTN`));
}));

