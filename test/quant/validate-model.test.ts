// Issue 9, classes 2 and 3: a source model is checked against its config.json before any command
// does work (src/io/validate-model.ts), and non-finite weights are refused naming the tensor. Each
// broken source (a tensor missing from the index, a wrong shape, bad hidden_size / vocab_size, an
// I16 weight, num_hidden_layers smaller or larger than the tensors, a NaN weight) makes `quantize`
// fail in one line with no output left behind, and `loadModel` fail the same way.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { IntscaleError } from '../../src/core/errors.ts';
import { f32ArrayToF16 } from '../../src/core/dtype.ts';
import { openSafetensorsDir, writeSafetensors, writeSafetensorsSharded, type TensorToWrite } from '../../src/io/safetensors.ts';
import { loadModel } from '../../src/model/load.ts';
import { quantizeRtn } from '../../src/quant/rtn.ts';
import { writeQuantizedModel, type QuantizeOptions } from '../../src/quant/quantize-model.ts';
import { makeModelDir, writeTinyTokenizer } from './helpers.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-validate-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const OPTS: QuantizeOptions = { method: 'rtn', wbits: 4, group: 64, abits: 8, scale: 'int', amplifier: 'auto', clip: false };

type Tensors = Map<string, TensorToWrite>;
function source(edit: (t: Tensors, config: Record<string, unknown>) => void, sharded = false): string {
  const dir = makeModelDir(tmp);
  writeTinyTokenizer(dir); // loadable, so that loadModel reaches the weights
  const st = openSafetensorsDir(dir);
  const tensors: Tensors = new Map(st.names().map((n) => [n, { name: n, dtype: st.info(n).dtype, shape: st.info(n).shape, data: st.read(n).slice() }]));
  st.close();
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  edit(tensors, config);
  fs.rmSync(path.join(dir, 'model.safetensors'));
  if (sharded) writeSafetensorsSharded(dir, [...tensors.values()], { maxShardBytes: 20_000 });
  else writeSafetensors(path.join(dir, 'model.safetensors'), [...tensors.values()]);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

async function refusedEverywhere(dir: string, pattern: RegExp): Promise<void> {
  const out = path.join(tmp, `out-${path.basename(dir)}`);
  const check = (e: unknown) => {
    assert.ok(e instanceof IntscaleError, `not an IntscaleError: ${String(e)}`);
    assert.ok(!e.message.includes('\n'), e.message);
    assert.match(e.message, pattern);
    return true;
  };
  await assert.rejects(writeQuantizedModel(dir, out, OPTS), check);
  assert.deepEqual(fs.readdirSync(tmp).filter((n) => n.includes(path.basename(out))), [], 'no output or temp dir');
  assert.throws(() => loadModel(dir), check);
}

test('the unedited source quantizes and loads (the checks below can only fail on the edit)', async () => {
  const dir = source(() => {});
  const out = path.join(tmp, 'ok-out');
  await writeQuantizedModel(dir, out, OPTS);
  assert.equal(loadModel(dir).config.nLayers, 2);
  assert.equal(loadModel(out).config.nLayers, 2);
});

test('a source that does not match its config is refused before any work', async () => {
  const weight = (t: Tensors, name: string) => t.get(name)!;
  await refusedEverywhere(source((t) => { t.delete('model.layers.1.mlp.up_proj.weight'); }, true),
    /: missing tensor model\.layers\.1\.mlp\.up_proj\.weight/);
  await refusedEverywhere(source((t) => { weight(t, 'model.layers.0.self_attn.k_proj.weight').shape = [32, 128]; }),
    /tensor model\.layers\.0\.self_attn\.k_proj\.weight has shape \[32, 128\], expected \[64, 64\] from config\.json/);
  await refusedEverywhere(source((_t, c) => { c['hidden_size'] = 128; }),
    /tensor model\.embed_tokens\.weight has shape \[50, 64\], expected \[50, 128\] from config\.json \(hidden_size 128/);
  await refusedEverywhere(source((_t, c) => { c['vocab_size'] = 51; }),
    /tensor model\.embed_tokens\.weight has shape \[50, 64\], expected \[51, 64\]/);
  await refusedEverywhere(source((_t, c) => { c['vocab_size'] = 0; }), /"vocab_size" must be a positive integer \(got 0\)/);
  await refusedEverywhere(source((t) => {
    const w = weight(t, 'model.layers.1.self_attn.o_proj.weight');
    t.set(w.name, { ...w, dtype: 'I16', data: new Int16Array(w.data.length) });
  }), /tensor model\.layers\.1\.self_attn\.o_proj\.weight has dtype I16, expected F32, F16, BF16/);
  await refusedEverywhere(source((_t, c) => { c['num_hidden_layers'] = 1; }),
    /config\.json says num_hidden_layers = 1, but the checkpoint has tensors of layer 1/);
  await refusedEverywhere(source((_t, c) => { c['num_hidden_layers'] = 3; }), /missing tensor model\.layers\.2\./);
});

test('non-finite weights are refused naming the tensor (a NaN before a finite value included)', async () => {
  // the old RTN absmax let a later finite value replace a NaN
  const w = new Float32Array(2 * 64).fill(0.5);
  w[64] = NaN;
  assert.throws(() => quantizeRtn(w, 2, 64, { group: 32, name: 'w.weight' }), /^IntscaleError: w\.weight: non-finite weight NaN at row 1 column 0/);
  w[64] = 0.5;
  w[3] = -Infinity;
  assert.throws(() => quantizeRtn(w, 2, 64, { group: 64, name: 'w.weight' }), /w\.weight: non-finite weight -Infinity at row 0 column 3/);

  const nanAt = (name: string, index: number) => (t: Tensors) => {
    const x = t.get(name)!;
    const data = (x.data as Uint16Array).slice();
    data[index] = f32ArrayToF16(new Float32Array([NaN]))[0]!;
    t.set(name, { ...x, data });
  };
  await refusedEverywhere(source(nanAt('model.layers.0.mlp.gate_proj.weight', 70)),
    /model\.layers\.0\.mlp\.gate_proj\.weight: non-finite weight NaN at row 1 column 6/);
  await refusedEverywhere(source(nanAt('model.norm.weight', 5)), /model\.norm\.weight: non-finite weight NaN at index 5/);
});
