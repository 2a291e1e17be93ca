// Issue 9, class 1: a tampered quantized checkpoint never loads with changed outputs. The hand
// edits of the issue (one layer's shift + 1, all shifts lowered, iscales negated, a layer deleted,
// num_hidden_layers changed, bad quantization_config fields) are refused by the loader naming the
// tensor, also when the edit keeps the header's checksums, or recomputes them (a forgery that only
// the ŝ = rint(s·2^k) and amplifier checks can see); `inspect` recomputes from the tensors and
// refuses the same files, and does not trust a stale or malformed quantization_report.json.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IntscaleError } from '../../src/core/errors.ts';
import { f16ArrayToF32 } from '../../src/core/dtype.ts';
import { openSafetensors, writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.ts';
import { DIGEST_KEY, LAYER_SUFFIXES, layerDigest } from '../../src/io/qformat-digest.ts';
import { rint } from '../../src/quant/fp32.ts';
import { writeQuantizedModel } from '../../src/quant/quantize-model.ts';
import { loadQuantizedLinears } from '../../src/quant/quantized-linears.ts';
import { inspectQuantized } from '../../src/cli/inspect.ts';
import { makeModelDir } from './helpers.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-tamper-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const LAYER = 'model.layers.1.mlp.up_proj';
let base: string | undefined;
/** A fresh copy of one good checkpoint (quantized once). */
async function checkpoint(): Promise<string> {
  if (!base) {
    base = path.join(tmp, 'base');
    await writeQuantizedModel(makeModelDir(tmp), base, { method: 'rtn', wbits: 4, group: 64, abits: 8, scale: 'int', amplifier: 'auto', clip: false });
  }
  const dir = fs.mkdtempSync(path.join(tmp, 'ck-'));
  for (const f of fs.readdirSync(base)) fs.copyFileSync(path.join(base, f), path.join(dir, f));
  return dir;
}

type Tensors = Map<string, TensorToWrite>;
/** Rewrite the checkpoint's tensors through `edit`, keeping its metadata; `resign` recomputes the
 *  checksums of the given layers (a deliberate forgery). */
function rewrite(dir: string, edit: (t: Tensors) => void, resign: string[] = []): void {
  const file = path.join(dir, 'model.safetensors');
  const st = openSafetensors(file);
  const tensors: Tensors = new Map(st.names().map((n) => [n, { name: n, dtype: st.info(n).dtype, shape: st.info(n).shape, data: st.read(n).slice() }]));
  const metadata = { ...st.metadata };
  st.close();
  edit(tensors);
  if (resign.length) {
    const digests = JSON.parse(metadata[DIGEST_KEY]!) as Record<string, string>;
    for (const layer of resign) digests[layer] = layerDigest(LAYER_SUFFIXES.map((s) => tensors.get(`${layer}.${s}`)!));
    metadata[DIGEST_KEY] = JSON.stringify(digests);
  }
  writeSafetensors(file, [...tensors.values()], metadata);
}

function editConfig(dir: string, edit: (c: Record<string, unknown>) => void): void {
  const file = path.join(dir, 'config.json');
  const c = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  edit(c);
  fs.writeFileSync(file, JSON.stringify(c));
}

function refused(dir: string, pattern: RegExp): void {
  for (const load of [() => loadQuantizedLinears(dir), () => inspectQuantized(dir)]) {
    assert.throws(load, (e: unknown) => {
      assert.ok(e instanceof IntscaleError, `not an IntscaleError: ${String(e)}`);
      assert.ok(!e.message.includes('\n'), e.message);
      assert.match(e.message, pattern);
      return true;
    });
  }
}

const shiftOf = (t: Tensors, layer = LAYER) => t.get(`${layer}.shift`)!.data as Int8Array;
const iscalesOf = (t: Tensors, layer = LAYER) => t.get(`${layer}.iscales`)!.data as Int16Array;

test('the issue\'s hand edits are refused naming the tensor (checksums kept or recomputed)', async () => {
  for (const resign of [[], [LAYER]]) {
    let dir = await checkpoint();
    rewrite(dir, (t) => { shiftOf(t)[0]! += 1; }, resign);
    refused(dir, /^model\.layers\.1\.mlp\.up_proj\.iscales: output channel 0 group 0: ŝ = \d+ but the stored scale \S+ with shift \d+ gives rint/);

    dir = await checkpoint();
    rewrite(dir, (t) => { const k = shiftOf(t); k.forEach((v, i) => { k[i] = v - 3; }); }, resign);
    refused(dir, /^model\.layers\.1\.mlp\.up_proj\.iscales: output channel 0 group 0: ŝ = /);

    dir = await checkpoint();
    rewrite(dir, (t) => { const h = iscalesOf(t); h.forEach((v, i) => { h[i] = -v; }); }, resign);
    refused(dir, /^model\.layers\.1\.mlp\.up_proj\.iscales: output channel 0 group 0: ŝ = -\d+/);
  }
});

test('a consistent forgery (shifts lowered, ŝ recomputed, checksum recomputed) fails the amplifier check', async () => {
  const dir = await checkpoint();
  rewrite(dir, (t) => {
    const k = shiftOf(t), h = iscalesOf(t);
    const s = f16ArrayToF32(t.get(`${LAYER}.scales`)!.data as Uint16Array);
    const groups = h.length / k.length;
    for (let n = 0; n < k.length; n++) {
      k[n] = k[n]! - 2;
      for (let g = 0; g < groups; g++) h[n * groups + g] = rint(s[n * groups + g]! * 2 ** k[n]!);
    }
  }, [LAYER]);
  refused(dir, /^model\.layers\.1\.mlp\.up_proj\.shift: output channel 0 has shift \d+, but amplifier "auto" chooses \d+ for the stored scales$/);
});

test('edited weights or scales fail the checksum; -8 and non-finite scales are refused by name', async () => {
  let dir = await checkpoint();
  rewrite(dir, (t) => { (t.get(`${LAYER}.qweight`)!.data as Uint8Array)[5]! ^= 0x11; });
  refused(dir, /^model\.layers\.1\.mlp\.up_proj: its tensors do not match the checksum recorded when it was quantized/);
  dir = await checkpoint();
  rewrite(dir, (t) => { (t.get(`${LAYER}.qweight`)!.data as Uint8Array)[3] = 0x88; }, [LAYER]);
  refused(dir, /^model\.layers\.1\.mlp\.up_proj\.qweight: value -8 at row 0 column 6/);
  dir = await checkpoint(); // a zeroed block of weights, checksum recomputed: RTN's ±7 per group is gone
  rewrite(dir, (t) => { (t.get(`${LAYER}.qweight`)!.data as Uint8Array).fill(0, 32 * 2, 32 * 3); }, [LAYER]);
  refused(dir, /^model\.layers\.1\.mlp\.up_proj\.qweight: output channel 2 group 0: largest \|q\| is 0, but RTN maps each group's largest weight to ±7$/);
  dir = await checkpoint();
  rewrite(dir, (t) => { (t.get(`${LAYER}.scales`)!.data as Uint16Array)[2] = 0x7e00; }, [LAYER]);
  refused(dir, /^model\.layers\.1\.mlp\.up_proj\.scales: output channel 2 group 0: scale NaN/);
  dir = await checkpoint();
  rewrite(dir, (t) => { (t.get(`${LAYER}.scales`)!.data as Uint16Array)[0]! ^= 0x8000; }, [LAYER]);
  refused(dir, /\.scales: output channel 0 group 0: scale -\S+ \(must be finite and ≥ 0\)/);
});

test('a deleted layer, a layer count that does not match and bad quantization_config fields are refused', async () => {
  let dir = await checkpoint();
  rewrite(dir, (t) => { for (const s of LAYER_SUFFIXES) t.delete(`${LAYER}.${s}`); });
  refused(dir, /: quantized layer model\.layers\.1\.mlp\.up_proj is missing \(no model\.layers\.1\.mlp\.up_proj\.qweight\)$/);
  dir = await checkpoint();
  editConfig(dir, (c) => { c['num_hidden_layers'] = 1; });
  refused(dir, /config\.json says num_hidden_layers = 1, but the checkpoint has tensors of layer 1/);
  for (const [key, value, pattern] of [
    ['amplifier', 'huge', /quantization_config\.amplifier "huge" is not supported/],
    ['amplifier', 31, /quantization_config\.amplifier 31 is not supported/],
    ['method', 'foo', /quantization_config\.method "foo" is not supported/],
    ['sym', false, /quantization_config\.sym false is not supported/],
    ['amplifier', 12, /\.shift: output channel \d+ has shift \d+, but amplifier 12 chooses 12/],
  ] as const) {
    dir = await checkpoint();
    editConfig(dir, (c) => { (c['quantization_config'] as Record<string, unknown>)[key] = value; });
    refused(dir, pattern);
  }
});

test('inspect recomputes from the tensors: a stale report is not shown, a malformed one is a warning', async () => {
  const dir = await checkpoint();
  const reportFile = path.join(dir, 'quantization_report.json');
  const good = inspectQuantized(dir);
  assert.deepEqual(good.warnings, []);
  assert.ok(good.layers.every((l) => typeof l.mse_fs === 'number'));
  const report = JSON.parse(fs.readFileSync(reportFile, 'utf8')) as { layers: Record<string, unknown>[] };
  report.layers[0]!['headroom'] = 0.0001; // a report edited to look better than the tensors are
  report.layers[0]!['mse_is'] = 0;
  fs.writeFileSync(reportFile, JSON.stringify(report));
  const stale = inspectQuantized(dir);
  assert.equal(stale.layers[0]!.headroom, good.layers[0]!.headroom, 'headroom recomputed, not read');
  assert.equal(stale.layers[0]!.mse_is, null, 'the stale MSE is not shown');
  assert.equal(stale.layers[1]!.mse_is, good.layers[1]!.mse_is);
  assert.match(stale.warnings.join('\n'), /1 layer\(s\) missing or not matching the tensors/);
  for (const bad of ['{"layers": [', '{"layers": [null, 5, "x", {"name": 7}]}', '[]']) {
    fs.writeFileSync(reportFile, bad);
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'inspect', dir], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /^warning: .*quantization_report\.json: .*(not valid JSON|expected a JSON object|not matching)/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stdout, /proven overflow-free; recomputed from the tensors/);
  }
});
