// The streaming calibration pipeline on a tiny random LLaMA (3 layers): the checkpoint source
// reads a decoder layer's tensors only when the pipeline reaches it (an instrumented reader), and
// `quantize` through it writes bit for bit what the in-memory pipeline over the loaded model
// computes (GPTQ; AWQ with its folded norms). Small shapes: fast.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Rng } from '../../src/core/rng.ts';
import { f16ArrayToF32 } from '../../src/core/dtype.ts';
import { openSafetensorsDir, type TensorSource } from '../../src/io/safetensors.ts';
import { quantizationConfigOf, readJson, readQuantizedLayer } from '../../src/io/qformat.ts';
import { allProjections, openValidatedModelDir } from '../../src/io/validate-model.ts';
import { loadModel } from '../../src/model/load.ts';
import { releaseWeights } from '../../src/model/weights.ts';
import { loadCalibration } from '../../src/quant/calib-data.ts';
import { calibrateModel, calibrationLayers } from '../../src/quant/calibrate.ts';
import { tensorCalibrationSource } from '../../src/quant/calib-source.ts';
import { methodOptionsOf, writeQuantizedModel, type QuantizeOptions } from '../../src/quant/quantize-model.ts';
import { makeModelDir, writeTinyTokenizer } from './helpers.ts';

const LAYERS = 3;

function fixture(): { root: string; dir: string; calib: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-calib-stream-'));
  const dir = makeModelDir(root, 'llama', 192, 64, LAYERS);
  writeTinyTokenizer(dir);
  const rng = new Rng(5);
  const calib = path.join(root, 'calib.txt');
  fs.writeFileSync(calib, Array.from({ length: 3000 }, () => 'abcdefghijklmnopqrstuvwxyz'[rng.int(0, 25)]).join(''));
  return { root, dir, calib };
}

const options = (method: string, calib: string): QuantizeOptions => ({
  method, wbits: 4, group: 32, abits: 8, scale: 'int', amplifier: 'auto', clip: false, actOrder: true,
  calib: { file: calib, samples: 4, len: 24, seed: 0 },
});

/** The decoder layer a tensor name belongs to, or -1 (embedding, final norm, lm_head). */
const layerOf = (name: string) => Number(/^model\.layers\.(\d+)\./.exec(name)?.[1] ?? -1);

test('streaming calibration reads each decoder layer only when the pipeline reaches it', () => {
  const { root, dir, calib } = fixture();
  const model = openValidatedModelDir(dir);
  try {
    const reads: { name: string; yielded: number }[] = [];
    let yielded = -1; // the last layer the pipeline has handed out
    const counted: TensorSource = { ...model.src, readF32: (name) => { reads.push({ name, yielded }); return model.src.readF32(name); } };
    const windows = loadCalibration(options('gptq', calib).calib!, loadModel(dir).tokenizer, 1, model.config.maxSeq);
    for (const step of calibrationLayers(tensorCalibrationSource(counted, model.config), windows, { method: 'gptq', group: 32 })) {
      assert.equal(step.layer, yielded + 1);
      // nothing of a later layer has been read yet, and this layer's tensors were read after the previous layer was out
      assert.deepEqual(reads.filter((r) => layerOf(r.name) > step.layer), []);
      const mine = reads.filter((r) => layerOf(r.name) === step.layer);
      assert.equal(mine.length, 9, 'seven linears and two norms');
      assert.ok(mine.every((r) => r.yielded === step.layer - 1), `layer ${step.layer} read early`);
      yielded = step.layer;
    }
    assert.equal(yielded, LAYERS - 1);
    assert.deepEqual(reads.filter((r) => layerOf(r.name) < 0).map((r) => r.name), ['model.embed_tokens.weight']);
    assert.equal(reads[0]!.name, 'model.embed_tokens.weight');
  } finally {
    model.src.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
});

for (const method of ['gptq', 'awq']) {
  test(`streaming quantize --method ${method} writes what the in-memory pipeline computes, bit for bit`, async () => {
    const { root, dir, calib } = fixture();
    const out = path.join(root, 'q');
    const opts = options(method, calib);
    const calibLayers: number[] = [];
    await writeQuantizedModel(dir, out, opts, undefined, undefined, (note) => calibLayers.push(note.layer));
    assert.deepEqual(calibLayers, [0, 1, 2]);
    const model = loadModel(dir);
    const src = openSafetensorsDir(out);
    try {
      const windows = loadCalibration(opts.calib!, model.tokenizer, 1, model.config.maxSeq);
      const ref = calibrateModel(model, windows, methodOptionsOf(opts));
      const quant = quantizationConfigOf(readJson(path.join(out, 'config.json')), out)!;
      for (const [name] of allProjections(model.config)) {
        const { qw } = readQuantizedLayer(src, name, quant), want = ref.weights.get(name)!;
        assert.deepEqual(qw.q, want.q, `${name} q`);
        assert.deepEqual(qw.scales, want.scales, `${name} scales`);
      }
      assert.equal(ref.norms.size, method === 'awq' ? 2 * LAYERS : 0);
      for (const [name, gamma] of ref.norms) assert.deepEqual(f16ArrayToF32(src.read(name) as Uint16Array), gamma, name);
    } finally {
      src.close();
      releaseWeights(model.weights);
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
}
