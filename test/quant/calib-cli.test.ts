// `quantize --method gptq|awq --calib ...` and `compare --methods` end to end (child process) on a
// tiny random LLaMA that uses docs-llama-30m's tokenizer: method and parameters in
// quantization_config, AWQ's folded norms in the file, the checkpoint loads and runs; one-line
// errors for a calibrated method without --calib and for unknown methods.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '../../src/core/rng.ts';
import { f32ArrayToF16 } from '../../src/core/dtype.ts';
import { openSafetensorsDir, writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.ts';
import { loadModel } from '../../src/model/load.ts';
import { Session } from '../../src/model/llama.ts';
import { MODEL_30M, PERSUASION, sharedMissing } from './helpers.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), ...args], { encoding: 'utf8', env: { ...process.env, INTSCALE_QUIET: '1' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const D = 64, H = 128, V = 4096;

function tinyDir(root: string): string {
  const dir = path.join(root, 'tiny');
  fs.mkdirSync(dir);
  const rng = new Rng(77);
  const t = (name: string, shape: number[], std: number, base = 0): TensorToWrite =>
    ({ name, dtype: 'F16', shape, data: f32ArrayToF16(Float32Array.from(rng.normals(shape.reduce((a, b) => a * b, 1), std), (v) => v + base)) });
  const tensors = [t('model.embed_tokens.weight', [V, D], 1), t('lm_head.weight', [V, D], 0.1), t('model.norm.weight', [D], 0.1, 1)];
  for (let l = 0; l < 2; l++) {
    const p = `model.layers.${l}`;
    tensors.push(t(`${p}.self_attn.q_proj.weight`, [D, D], 0.1), t(`${p}.self_attn.k_proj.weight`, [D / 2, D], 0.1), t(`${p}.self_attn.v_proj.weight`, [D / 2, D], 0.1),
      t(`${p}.self_attn.o_proj.weight`, [D, D], 0.1), t(`${p}.mlp.gate_proj.weight`, [H, D], 0.1), t(`${p}.mlp.up_proj.weight`, [H, D], 0.1),
      t(`${p}.mlp.down_proj.weight`, [D, H], 0.1), t(`${p}.input_layernorm.weight`, [D], 0.1, 1), t(`${p}.post_attention_layernorm.weight`, [D], 0.1, 1));
  }
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: D, intermediate_size: H, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
    vocab_size: V, max_position_embeddings: 128, rms_norm_eps: 1e-5, bos_token_id: 1, eos_token_id: 2,
  }));
  fs.copyFileSync(path.join(MODEL_30M, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  return dir;
}

test('quantize --method gptq/awq with --calib: config records the method, AWQ folds into the norms, the checkpoint runs', { skip: sharedMissing }, () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-calib-'));
  try {
    const src = tinyDir(tmp);
    const calib = ['--calib', PERSUASION, '--calib-samples', '3', '--calib-len', '48', '--seed', '5'];
    for (const method of ['gptq', 'awq']) {
      const out = path.join(tmp, method);
      const extra = method === 'gptq' ? [] : ['--smooth', '0.5'];
      const r = cli('quantize', src, '--out', out, '--group', '32', '--method', method, ...calib, ...extra);
      assert.equal(r.code, 0, r.stderr);
      const q = (JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as { quantization_config: Record<string, unknown> }).quantization_config;
      assert.equal(q['method'], method);
      const params = q['method_params'] as Record<string, unknown>;
      assert.deepEqual(params['calib'], { file: 'persuasion.txt', samples: 3, len: 48, seed: 5 });
      if (method === 'gptq') assert.equal(params['act_order'], true, 'act-order is the default');
      else assert.equal(params['smooth'], 0.5);
      const a = openSafetensorsDir(src), b = openSafetensorsDir(out);
      const n = 'model.layers.0.input_layernorm.weight';
      const changed = a.readF32(n).some((v, i) => v !== b.readF32(n)[i]);
      assert.equal(changed, method === 'awq', 'only AWQ/SmoothQuant fold scales into the norms');
      a.close(); b.close();
      const m = loadModel(out);
      const logits = new Session(m).forward([1, 100, 200, 300]);
      assert.ok(logits.every(Number.isFinite));
    }
    // GPTQ after AWQ's scales, with the clip search: recorded, folded into the norms, runs
    const both = path.join(tmp, 'awq-gptq');
    const r2 = cli('quantize', src, '--out', both, '--group', '32', '--method', 'gptq', '--awq-scales', '--clip', ...calib);
    assert.equal(r2.code, 0, r2.stderr);
    const q2 = (JSON.parse(fs.readFileSync(path.join(both, 'config.json'), 'utf8')) as { quantization_config: { method: string; method_params: Record<string, unknown> } }).quantization_config;
    assert.equal(q2.method, 'gptq');
    assert.equal(q2.method_params['awq_scales'], true);
    assert.equal(q2.method_params['clip'], true);
    assert.equal(typeof q2.method_params['folds'], 'string');
    const a2 = openSafetensorsDir(src), b2 = openSafetensorsDir(both), norm = 'model.layers.1.post_attention_layernorm.weight';
    assert.ok(a2.readF32(norm).some((v, i) => v !== b2.readF32(norm)[i]), 'AWQ scales are folded into the norms');
    a2.close(); b2.close();
    assert.ok(new Session(loadModel(both)).forward([1, 100, 200]).every(Number.isFinite));
    const wrong = cli('quantize', src, '--out', path.join(tmp, 'y'), '--method', 'awq', '--awq-scales', ...calib);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /^intscale: --awq-scales: applies to --method gptq/);
    assert.equal(wrong.stderr.trim().split('\n').length, 1);
    const bad = cli('quantize', src, '--out', path.join(tmp, 'x'), '--method', 'gptq', '--group', '32');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^intscale: --calib: gptq needs calibration text/);
    assert.ok(!fs.existsSync(path.join(tmp, 'x')));
    const unknown = cli('compare', src, '--text', PERSUASION, '--methods', 'rtn,foo');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^intscale: --methods: unknown method 'foo'/);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('compare --methods rtn,gptq,awq --json: fp16 once, three modes per method', { skip: sharedMissing }, () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-calib-'));
  try {
    const src = tinyDir(tmp);
    const r = cli('compare', src, '--text', PERSUASION, '--max-tokens', '200', '--ctx', '64', '--group', '32', '--methods', 'rtn,gptq,awq',
      '--calib', PERSUASION, '--calib-samples', '3', '--calib-len', '48', '--json');
    assert.equal(r.code, 0, r.stderr);
    const rows = (JSON.parse(r.stdout) as { rows: { mode: string; method: string; ppl: number }[] }).rows;
    assert.deepEqual(rows.map((x) => `${x.method}/${x.mode}`), ['-/fp16',
      'rtn/w4a16', 'rtn/w4a8-fs', 'rtn/w4a8-is', 'gptq/w4a16', 'gptq/w4a8-fs', 'gptq/w4a8-is', 'awq/w4a16', 'awq/w4a8-fs', 'awq/w4a8-is']);
    for (const x of rows) assert.ok(Number.isFinite(x.ppl) && x.ppl > 1);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
