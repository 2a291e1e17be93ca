// `intscale convert` from AutoGPTQ / AutoAWQ layouts: the int32 packings checked on literal values
// (nibble order of each format), symmetric GPTQ converted exactly (same int4 values and fp16
// scales, so the dequantized weights match bit for bit), act-order GPTQ with static groups exact
// too, permuted g_idx and asymmetric AWQ re-quantized (reported, small weight error); the CLI end
// to end on a tiny checkpoint that then loads and runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Rng } from '../../src/core/rng.ts';
import { f32ArrayToF16, roundToF16 } from '../../src/core/dtype.ts';
import { openSafetensorsDir, writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.ts';
import { dequantizeForeign, packForeignLinear, readForeignLinear, type ForeignConfig, type ForeignLinear } from '../../src/io/autoquant.ts';
import { quantizationConfigOf, readQuantizedLayer } from '../../src/io/qformat.ts';
import { convertLinear } from '../../src/quant/convert.ts';
import { dequantize, quantizeRtn } from '../../src/quant/rtn.ts';
import { loadModel } from '../../src/model/load.ts';
import { Session } from '../../src/model/llama.ts';
import { MODEL_30M, randomWeights, sharedMissing } from './helpers.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** Re-quantizing asymmetric 4-bit weights on the symmetric grid: weight MSE at most this multiple of the asymmetric grid's own MSE. */
const REQUANT_MSE_FACTOR = 4;

const GPTQ: ForeignConfig = { format: 'autogptq', bits: 4, groupSize: 32, sym: true, descAct: false, zeroOffset: 1 };
const AWQ: ForeignConfig = { format: 'autoawq', bits: 4, groupSize: 32, sym: false, descAct: false, zeroOffset: 0 };

/** A TensorSource over in-memory tensors (via a temp file). */
function sourceOf(tensors: TensorToWrite[]) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-aq-'));
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  return { src: openSafetensorsDir(dir), done: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

function symmetricForeign(w: Float32Array, N: number, K: number, G: number): ForeignLinear {
  const r = quantizeRtn(w, N, K, { group: G });
  return { N, K, groups: K / G, iw: Uint8Array.from(r.q, (q) => q + 8), zeros: new Uint8Array(N * (K / G)).fill(8), scales: r.scales, gIdx: Int32Array.from({ length: K }, (_, k) => Math.floor(k / G)) };
}

/** Asymmetric min/max RTN as AutoAWQ does it: s = (max−min)/15, z = round(−min/s), iw = clamp(round(w/s) + z, 0, 15). */
function asymmetricForeign(w: Float32Array, N: number, K: number, G: number): ForeignLinear {
  const groups = K / G, iw = new Uint8Array(N * K), zeros = new Uint8Array(N * groups), scales = new Float32Array(N * groups);
  for (let n = 0; n < N; n++)
    for (let g = 0; g < groups; g++) {
      let lo = 0, hi = 0;
      for (let k = g * G; k < (g + 1) * G; k++) { lo = Math.min(lo, w[n * K + k]!); hi = Math.max(hi, w[n * K + k]!); }
      const s = roundToF16((hi - lo) / 15), z = Math.min(15, Math.max(0, Math.round(-lo / s)));
      scales[n * groups + g] = s;
      zeros[n * groups + g] = z;
      for (let k = g * G; k < (g + 1) * G; k++) iw[n * K + k] = Math.min(15, Math.max(0, Math.round(w[n * K + k]! / s) + z));
    }
  return { N, K, groups, iw, zeros, scales, gIdx: Int32Array.from({ length: K }, (_, k) => Math.floor(k / G)) };
}

test('AutoGPTQ and AutoAWQ int32 packings: literal nibble layouts', () => {
  const N = 8, K = 32;
  const l: ForeignLinear = { N, K, groups: 1, iw: new Uint8Array(N * K), zeros: new Uint8Array(N).fill(8), scales: new Float32Array(N).fill(1), gIdx: new Int32Array(K) };
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) l.iw[n * K + k] = k % 16; // GPTQ packs along K
  const g = packForeignLinear('x', l, { ...GPTQ, groupSize: 32 }, false);
  const qw = g.find((t) => t.name === 'x.qweight')!.data as Int32Array;
  assert.deepEqual([qw[0], qw[N]], [0x76543210, 0xfedcba98 | 0]); // row 0: k = 0..7, row 1: k = 8..15
  assert.equal((g.find((t) => t.name === 'x.qzeros')!.data as Int32Array)[0], 0x77777777); // v1: zero − 1
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) l.iw[n * K + k] = n; // AWQ packs along N, order 0 2 4 6 1 3 5 7
  const a = packForeignLinear('x', l, { ...AWQ, groupSize: 32 }, false);
  assert.equal((a.find((t) => t.name === 'x.qweight')!.data as Int32Array)[0], 0x75316420);
  assert.equal((a.find((t) => t.name === 'x.qzeros')!.data as Int32Array)[0], 0x88888888 | 0);
  // and reading gives back what was packed, for both
  for (const [cfg, tensors] of [[{ ...GPTQ, groupSize: 32 }, g], [{ ...AWQ, groupSize: 32 }, a]] as const) {
    const { src, done } = sourceOf(tensors);
    try {
      const back = readForeignLinear(src, 'x', cfg);
      assert.deepEqual(back.iw, l.iw.map((v, i) => (cfg.format === 'autogptq' ? (i % K) % 16 : v)));
      assert.deepEqual(back.zeros, l.zeros);
    } finally { src.close(); done(); }
  }
});

test('symmetric GPTQ converts exactly (same int4 values and fp16 scales); act-order with static groups too', () => {
  const rng = new Rng(8101);
  const N = 24, K = 128, w = randomWeights(rng, N, K);
  const l = symmetricForeign(w, N, K, 32);
  for (const descAct of [false, true]) {
    const { src, done } = sourceOf(packForeignLinear('m', l, { ...GPTQ, descAct }, true));
    try {
      const f = readForeignLinear(src, 'm', { ...GPTQ, descAct });
      const c = convertLinear(f, GPTQ, 'm');
      assert.equal(c.exact, true);
      assert.deepEqual(dequantize(c.qw), dequantizeForeign(f));
      assert.deepEqual(c.qw.scales, l.scales);
    } finally { src.close(); done(); }
  }
});

test('permuted g_idx (act-order without static groups) and asymmetric AWQ are re-quantized symmetrically', () => {
  const rng = new Rng(8102);
  const N = 16, K = 128, G = 32, w = randomWeights(rng, N, K);
  const asym = asymmetricForeign(w, N, K, G);
  const c = convertLinear(asym, AWQ, 'a');
  assert.equal(c.exact, false);
  const src = dequantizeForeign(asym);
  let own = 0;
  for (let i = 0; i < w.length; i++) own += (src[i]! - w[i]!) ** 2;
  assert.ok(c.mse <= (REQUANT_MSE_FACTOR * own) / w.length, `re-quantization MSE ${c.mse} vs the asymmetric grid's ${own / w.length}`);
  const perm = symmetricForeign(w, N, K, G);
  perm.gIdx = Int32Array.from({ length: K }, (_, k) => (k * 7) % (K / G)); // groups not contiguous
  assert.equal(convertLinear(perm, GPTQ, 'p').exact, false);
});

test('intscale convert end to end: AutoGPTQ (sym) and AutoAWQ (asym) directories, and an AutoGPTQ Mixtral → checkpoints that load and run', { skip: sharedMissing }, () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-convert-'));
  try {
    const D = 64, H = 128, V = 4096, rng = new Rng(8103);
    const dense = (shape: number[], std: number, base = 0): TensorToWrite => ({ name: '', dtype: 'F16', shape, data: f32ArrayToF16(Float32Array.from(rng.normals(shape.reduce((a, b) => a * b, 1), std), (v) => v + base)) });
    const gptqCfg = { quant_method: 'gptq', bits: 4, group_size: 32, sym: true, desc_act: false, checkpoint_format: 'gptq' };
    const E = 3; // the Mixtral case's experts (its router stays dense, as AutoGPTQ leaves it)
    for (const [fmt, cfgJson, moe] of [['autogptq', gptqCfg, false],
                                       ['autoawq', { quant_method: 'awq', bits: 4, group_size: 32, zero_point: true, version: 'gemm' }, false],
                                       ['autogptq', gptqCfg, true]] as const) {
      const dir = path.join(tmp, `${fmt}${moe ? '-mixtral' : ''}`);
      fs.mkdirSync(dir);
      const tensors: TensorToWrite[] = [
        { ...dense([V, D], 1), name: 'model.embed_tokens.weight' }, { ...dense([V, D], 0.1), name: 'lm_head.weight' }, { ...dense([D], 0.1, 1), name: 'model.norm.weight' }];
      const sources = new Map<string, Float32Array>();
      for (let l = 0; l < 2; l++) {
        const p = `model.layers.${l}`;
        tensors.push({ ...dense([D], 0.1, 1), name: `${p}.input_layernorm.weight` }, { ...dense([D], 0.1, 1), name: `${p}.post_attention_layernorm.weight` });
        const mlp = (pre: string, gate: string, up: string, down: string): [string, number, number][] => [[`${pre}${gate}`, H, D], [`${pre}${up}`, H, D], [`${pre}${down}`, D, H]];
        if (moe) tensors.push({ ...dense([E, D], 0.3), name: `${p}.block_sparse_moe.gate.weight` });
        const ffn = moe ? Array.from({ length: E }, (_, e) => mlp(`block_sparse_moe.experts.${e}.`, 'w1', 'w3', 'w2')).flat() : mlp('mlp.', 'gate_proj', 'up_proj', 'down_proj');
        for (const [n, out, inp] of [['self_attn.q_proj', D, D], ['self_attn.k_proj', D / 2, D], ['self_attn.v_proj', D / 2, D], ['self_attn.o_proj', D, D],
                                     ...ffn] as [string, number, number][]) {
          const w = randomWeights(rng, out, inp, 0.1);
          const f = fmt === 'autogptq' ? symmetricForeign(w, out, inp, 32) : asymmetricForeign(w, out, inp, 32);
          sources.set(`${p}.${n}`, dequantizeForeign(f));
          tensors.push(...packForeignLinear(`${p}.${n}`, f, fmt === 'autogptq' ? GPTQ : AWQ, fmt === 'autogptq'));
        }
      }
      writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
        architectures: [moe ? 'MixtralForCausalLM' : 'LlamaForCausalLM'], model_type: moe ? 'mixtral' : 'llama', hidden_size: D, intermediate_size: H,
        num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: V, max_position_embeddings: 64, rms_norm_eps: 1e-5,
        quantization_config: cfgJson, ...(moe ? { num_local_experts: E, num_experts_per_tok: 2 } : {}),
      }));
      fs.copyFileSync(path.join(MODEL_30M, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
      const out = `${dir}-is`, n = 2 * (4 + 3 * (moe ? E : 1));
      const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'convert', dir, '--out', out], { encoding: 'utf8', env: { ...process.env, INTSCALE_QUIET: '1' } });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, new RegExp(fmt === 'autogptq' ? `${n} of ${n} linears converted exactly` : `0 of ${n} linears converted exactly, ${n} re-quantized`));
      const q = (JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as { quantization_config: Record<string, unknown> }).quantization_config;
      assert.equal(q['method'], fmt === 'autogptq' ? 'gptq' : 'awq');
      const s = openSafetensorsDir(out);
      const qc = quantizationConfigOf(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>, out)!;
      try {
        assert.ok(!s.names().some((n) => n.endsWith('.qzeros') || n.endsWith('.g_idx')));
        if (fmt === 'autogptq') for (const [name, deq] of sources) assert.deepEqual(dequantize(readQuantizedLayer(s, name, qc).qw), deq, name);
      } finally { s.close(); }
      const loaded = loadModel(out);
      assert.equal(loaded.weights.layers.every((l) => 'moe' in l), moe);
      const logits = new Session(loaded).forward([1, 5, 9]);
      assert.ok(logits.every(Number.isFinite));
    }
    const bad = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'convert', path.join(tmp, 'autogptq-is'), '--out', path.join(tmp, 'x')], { encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^intscale: .*quant_method 'intscale' is not AutoGPTQ/);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
