// Quantized checkpoint: quantize → save → load reproduces every layer bit for bit (and identical
// outputs); bad or unsupported input fails with one IntscaleError line and leaves no output dir.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Rng } from '../../src/core/rng.ts';
import { IntscaleError } from '../../src/core/errors.ts';
import { openSafetensorsDir, writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.ts';
import { readQuantizedLayer } from '../../src/io/qformat.ts';
import { quantizeLayer, writeQuantizedModel, type QuantizeOptions } from '../../src/quant/quantize-model.ts';
import { loadQuantizedLinears } from '../../src/quant/quantized-linears.ts';
import { IsLinear } from '../../src/quant/linear-is.ts';
import { LAYERS, makeModelDir, randomActivations } from './helpers.ts';

const OPTS: QuantizeOptions = { method: 'rtn', wbits: 4, group: 64, abits: 8, scale: 'int', amplifier: 'auto', clip: false };

function leftovers(root: string, out: string): string[] {
  return fs.readdirSync(root).filter((n) => n === path.basename(out) || n.startsWith(`.${path.basename(out)}.tmp`));
}

test('quantize → save → load: identical layers and identical outputs', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-qf-'));
  try {
    const src = makeModelDir(root);
    const out = path.join(root, 'out');
    const reports = await writeQuantizedModel(src, out, OPTS);
    assert.equal(reports.length, 7 * LAYERS);
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    assert.deepEqual(cfg.quantization_config, { quant_method: 'intscale', bits: 4, group_size: 64, sym: true, act_bits: 8, scale: 'int', amplifier: 'auto', method: 'rtn' });
    assert.equal(fs.readFileSync(path.join(out, 'tokenizer.json'), 'utf8'), '{"fake": true}');

    const orig = openSafetensorsDir(src);
    const saved = openSafetensorsDir(out);
    const loaded = loadQuantizedLinears(out);
    const rng = new Rng(42);
    try {
      assert.deepEqual(saved.read('model.norm.weight'), orig.read('model.norm.weight'), 'other tensors unchanged');
      assert.equal(saved.has('model.layers.0.mlp.up_proj.weight'), false);
      assert.equal(saved.info('model.layers.0.mlp.up_proj.iscales').dtype, 'I16');
      for (const r of reports) {
        const mem = quantizeLayer(orig, r.name, OPTS).layer;
        const back = readQuantizedLayer(saved, r.name, cfg.quantization_config);
        assert.deepEqual(back.qw.q, mem.qw.q, `${r.name} q`);
        assert.deepEqual(back.qw.scales, mem.qw.scales, `${r.name} scales`);
        assert.deepEqual(back.is.iscales, mem.is.iscales, `${r.name} iscales`);
        assert.deepEqual(back.is.shift, mem.is.shift, `${r.name} shift`);
        const x = randomActivations(rng, 3, mem.qw.inFeatures);
        assert.deepEqual(loaded.get(r.name)!.forward(x, 3), new IsLinear(mem.qw, mem.is).forward(x, 3), `${r.name} outputs`);
      }
    } finally {
      orig.close();
      saved.close();
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('bad input: one IntscaleError line, no partial output directory', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-qf-'));
  try {
    const out = path.join(root, 'out');
    const expectFail = async (src: string, opts: QuantizeOptions, pattern: RegExp) => {
      await assert.rejects(writeQuantizedModel(src, out, opts), (e: unknown) => e instanceof IntscaleError && pattern.test(e.message) && !e.message.includes('\n'));
      assert.deepEqual(leftovers(root, out), [], 'no output or temp dir left behind');
    };
    const good = makeModelDir(root);
    await expectFail(makeModelDir(root, 'gpt2'), OPTS, /unsupported architecture/);
    await expectFail(makeModelDir(root, 'llama', 96), OPTS, /not divisible by group size 64/); // fails after some layers were done
    await expectFail(good, { ...OPTS, wbits: 3 }, /unsupported weight bits 3/);
    await expectFail(good, { ...OPTS, method: 'foo' }, /unknown method 'foo'/);
    await expectFail(good, { ...OPTS, method: 'awq' }, /--calib: awq needs calibration text/);
    await expectFail(good, { ...OPTS, amplifier: 24 }, /amplifier 2\^24 can overflow int32/);
    // a truncated shard
    const broken = makeModelDir(root);
    const file = path.join(broken, 'model.safetensors');
    fs.truncateSync(file, fs.statSync(file).size - 1000);
    await expectFail(broken, OPTS, /safetensors/);
    // a loaded checkpoint whose integer scales were tampered with to overflow is rejected
    await writeQuantizedModel(good, out, OPTS);
    const st = openSafetensorsDir(out);
    const all = st.names().map((name) => ({ name, dtype: st.info(name).dtype, shape: st.info(name).shape, data: st.read(name).slice() }));
    const metadata = st.metadata; // an edit that keeps the header's metadata (the checksums)
    st.close();
    const hat = all.find((t) => t.name === 'model.layers.1.mlp.down_proj.iscales')!;
    hat.dtype = 'I32';
    hat.data = new Int32Array(hat.data.length).fill(1 << 20);
    writeSafetensors(path.join(out, 'model.safetensors'), all as TensorToWrite[], metadata);
    assert.throws(() => loadQuantizedLinears(out), /model\.layers\.1\.mlp\.down_proj: integer scales of output channel 0 can overflow int32/);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
