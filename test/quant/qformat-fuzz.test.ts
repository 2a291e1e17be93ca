// Fuzz of the quantized checkpoint loader (loadQuantizedLinears): >= 5,000 mutations of one small
// intscale checkpoint — values of qweight / scales / iscales / shift (bit flips, ±1, negation,
// halving, ±1 ulp of a scale, NaN/Inf, every shift of a layer lowered or raised: the hand edits of
// issue 9), the same tensor edits — and shifts moved with ŝ recomputed to match — with the layer's
// checksum recomputed (a "re-signed" forgery: then
// only the loader's semantic checks stand between the edit and the outputs), config.json fields
// (quantization_config, num_hidden_layers, sizes), and header structure. Every outcome must be a
// load whose outputs equal the unmutated checkpoint's in the mode the config asks for, or exactly one
// IntscaleError line: never a silent change of outputs, a TypeError, or a leaked file descriptor.
// (Re-signed edits leave qweight alone: its values carry no redundancy, only the checksum guards it.)
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { IntscaleError } from '../../src/core/errors.ts';
import { Rng } from '../../src/core/rng.ts';
import { openSafetensors } from '../../src/io/safetensors.ts';
import { layerDigest, DIGEST_KEY, LAYER_SUFFIXES } from '../../src/io/qformat-digest.ts';
import type { DType, TypedArray } from '../../src/io/safetensors-header.ts';
import { typedView } from '../../src/io/safetensors-reader.ts';
import { f16ArrayToF32 } from '../../src/core/dtype.ts';
import { rint } from '../../src/quant/fp32.ts';
import { writeQuantizedModel } from '../../src/quant/quantize-model.ts';
import type { QuantMode } from '../../src/core/modes.ts';
import { loadQuantizedLinears } from '../../src/quant/quantized-linears.ts';
import type { Linear } from '../../src/model/linear.ts';
import { makeModelDir, randomActivations } from './helpers.ts';
import { canCountFds, openFdsUnder } from '../unit/open-fds.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-qfuzz-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const openFds = (): number => openFdsUnder(tmp);

interface TensorSpan { name: string; dtype: DType; shape: number[]; begin: number; end: number }

/** Outputs of every linear on fixed activations (then the linears' heap memory is released). */
function outputsOf(linears: Map<string, Linear>, x: Map<number, Float32Array>): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [name, l] of linears) {
    const y = l.forward(x.get(l.inFeatures)!, 2);
    out.set(name, Buffer.from(y.buffer, y.byteOffset, y.byteLength));
    l.dispose?.();
  }
  return out;
}

function modeOfConfig(config: Record<string, unknown>): QuantMode {
  const q = config['quantization_config'] as Record<string, unknown>;
  return q['act_bits'] === 16 ? 'w4a16' : q['scale'] === 'int' ? 'w4a8-is' : 'w4a8-fs';
}

const CONFIG_VALUES: unknown[] = [
  'auto', 'layer', 0, 1, 8, 12, 13, 20, 30, 31, -1, 1.5, '12', null, true, false, 'rtn', 'gptq', 'int', 'float', 4, 3, 8, 16,
  32, 64, 128, 256, -1, 96, 'intscale', 'awq', [], {}, 1e9, 'x\ny',
];
const QUANT_FIELDS = ['quant_method', 'bits', 'group_size', 'sym', 'act_bits', 'scale', 'amplifier', 'method'];
const MODEL_FIELDS: [string, unknown[]][] = [
  ['num_hidden_layers', [1, 2, 0, 3]], ['hidden_size', [32, 65, 64]], ['vocab_size', [49, 51, 50, 0]],
  ['intermediate_size', [64, 96, 128]], ['num_attention_heads', [4, 8, 3]], ['architectures', [['LlamaForCausalLM'], ['GPT2'], []]],
];

test('5,000+ mutated quantized checkpoints: identical outputs or one IntscaleError line, never a silent change', { timeout: 120_000 }, async () => {
  const out = path.join(tmp, 'q');
  await writeQuantizedModel(makeModelDir(tmp, 'llama', 96, 64, 1), out, { method: 'rtn', wbits: 4, group: 32, abits: 8, scale: 'int', amplifier: 'auto', clip: false });
  const file = path.join(out, 'model.safetensors');
  const configFile = path.join(out, 'config.json');
  const base = fs.readFileSync(file);
  const baseConfigText = fs.readFileSync(configFile, 'utf8');
  const baseConfig = JSON.parse(baseConfigText) as Record<string, unknown>;

  // where each tensor's bytes live in the file, and each layer's recorded checksum in the header
  const st = openSafetensors(file);
  const spans: TensorSpan[] = st.names().map((name) => {
    const info = st.info(name);
    return { name, dtype: info.dtype, shape: info.shape, begin: info.offset, end: info.offset + info.byteLength };
  });
  const digests = JSON.parse(st.metadata[DIGEST_KEY]!) as Record<string, string>;
  st.close();
  const quantSpans = spans.filter((s) => /\.(qweight|scales|iscales|shift)$/.test(s.name));
  const layers = Object.keys(digests);
  assert.equal(layers.length, 7);

  const rng = new Rng(20260901);
  const x = new Map<number, Float32Array>([[64, randomActivations(rng, 2, 64)], [96, randomActivations(rng, 2, 96)]]);
  const reference = new Map<QuantMode, Map<string, Buffer>>();
  for (const mode of ['w4a16', 'w4a8-fs', 'w4a8-is'] as QuantMode[]) reference.set(mode, outputsOf(loadQuantizedLinears(out, mode), x));

  /** An aligned copy of the bytes of tensor `span` in `bytes`, viewed as its typed array. */
  const copyOf = (bytes: Buffer, span: TensorSpan): { owned: Buffer; data: TypedArray } => {
    const owned = Buffer.alloc(span.end - span.begin); // zero-offset: aligned for any dtype
    bytes.copy(owned, 0, span.begin, span.end);
    return { owned, data: typedView(span.dtype, owned) };
  };
  /** Recompute the checksum of `layer` in `bytes` (same length: the header keeps its size). */
  const resign = (bytes: Buffer, layer: string): void => {
    const tensors = LAYER_SUFFIXES.map((suffix) => {
      const span = spans.find((s) => s.name === `${layer}.${suffix}`)!;
      return { name: span.name, dtype: span.dtype, shape: span.shape, data: copyOf(bytes, span).data };
    });
    const old = Buffer.from(digests[layer]!), at = bytes.indexOf(old);
    assert.ok(at > 0 && at < base.readUInt32LE(0) + 8, `digest of ${layer} not found in the header`);
    bytes.write(layerDigest(tensors), at, 'latin1');
  };

  /** Change values of one quantized tensor in place (bytes is a private copy of the file). */
  const editValues = (bytes: Buffer, span: TensorSpan): string => {
    const { owned, data: v } = copyOf(bytes, span);
    const i = rng.int(0, v.length - 1);
    const suffix = span.name.slice(span.name.lastIndexOf('.') + 1);
    let how: string;
    if (suffix === 'shift') {
      const op = rng.int(0, 3);
      const a = v as Int8Array;
      if (op === 0) { a[i] = a[i]! + (rng.next() < 0.5 ? 1 : -1); how = 'shift±1'; }
      else if (op === 1) { a.forEach((k, j) => { a[j] = k - 1; }); how = 'all shifts -1'; }
      else if (op === 2) { a.forEach((k, j) => { a[j] = k + 1; }); how = 'all shifts +1'; }
      else { a[i] = [0, 30, 31, -1, 127][rng.int(0, 4)]!; how = 'shift=const'; }
    } else if (suffix === 'iscales') {
      const a = v as Int16Array | Int32Array;
      const op = rng.int(0, 3);
      if (op === 0) { a[i] = a[i]! + (rng.next() < 0.5 ? 1 : -1); how = 'ŝ±1'; }
      else if (op === 1) { a.forEach((h, j) => { a[j] = -h; }); how = 'ŝ negated'; }
      else if (op === 2) { a[i] = a[i]! >> 1; how = 'ŝ halved'; }
      else { a[i] = [0, 1, -1, 32767][rng.int(0, 3)]!; how = 'ŝ=const'; }
    } else if (suffix === 'scales') {
      const a = v as Uint16Array;
      const op = rng.int(0, 3);
      if (op === 0) { a[i] = a[i]! + (rng.next() < 0.5 ? 1 : -1); how = 's±1ulp'; }
      else if (op === 1) { a[i] = a[i]! ^ 0x8000; how = 's negated'; }
      else if (op === 2) { a[i] = [0x7e00, 0x7c00, 0x0000, 0x0001][rng.int(0, 3)]!; how = 's=special'; }
      else { a[i] = a[i]! ^ (1 << rng.int(0, 15)); how = 's bitflip'; }
    } else {
      const a = v as Uint8Array;
      if (rng.next() < 0.5) { a[i] = a[i]! ^ (1 << rng.int(0, 7)); how = 'q bitflip'; }
      else { a[i] = rng.int(0, 255); how = 'q byte'; }
    }
    owned.copy(bytes, span.begin);
    return `${span.name}: ${how}`;
  };

  /** A consistent forgery: one channel's shift moved and its ŝ recomputed as rint(s·2^k') (so only
   *  the check that k is the amplifier's choice can see it). */
  const forgeShift = (bytes: Buffer, layer: string): string => {
    const span = (suffix: string) => spans.find((s) => s.name === `${layer}.${suffix}`)!;
    const shift = copyOf(bytes, span('shift')), hat = copyOf(bytes, span('iscales'));
    const scales = f16ArrayToF32(copyOf(bytes, span('scales')).data as Uint16Array);
    const k = shift.data as Int8Array, iscales = hat.data as Int16Array | Int32Array;
    const n = rng.int(0, k.length - 1), groups = iscales.length / k.length;
    const delta = rng.next() < 0.75 ? -rng.int(1, 3) : 1;
    k[n] = k[n]! + delta;
    for (let g = 0; g < groups; g++) iscales[n * groups + g] = rint(scales[n * groups + g]! * 2 ** k[n]!);
    shift.owned.copy(bytes, span('shift').begin);
    hat.owned.copy(bytes, span('iscales').begin);
    return `${layer}: channel ${n} shift ${delta > 0 ? '+' : ''}${delta} with ŝ recomputed`;
  };

  const configWriter = (() => {
    let current = baseConfigText;
    return (text: string) => { if (text !== current) { fs.writeFileSync(configFile, text); current = text; } };
  })();
  const writer = fs.openSync(file, 'r+');
  const putFile = (bytes: Buffer) => { fs.writeSync(writer, bytes, 0, bytes.length, 0); fs.ftruncateSync(writer, bytes.length); };

  const counts: Record<string, { same: number; error: number }> = {};
  const caughtBy: Record<string, number> = {};
  const iterations = 5200;
  const fdsBefore = openFds();
  assert.ok(fdsBefore > 0 || !canCountFds(), 'the descriptor count sees the open writer');
  for (let it = 0; it < iterations; it++) {
    const bytes = Buffer.from(base);
    let fileBytes = bytes;
    let config = baseConfig;
    const r = rng.next();
    let kind: string, what: string;
    if (r < 0.4) {
      kind = 'values';
      what = editValues(bytes, quantSpans[rng.int(0, quantSpans.length - 1)]!);
      if (rng.next() < 0.2) what += `; ${editValues(bytes, quantSpans[rng.int(0, quantSpans.length - 1)]!)}`;
    } else if (r < 0.7) {
      kind = 'resigned'; // scales / iscales / shift edited and the checksum recomputed to match
      const layer = layers[rng.int(0, layers.length - 1)]!;
      const suffix = (['scales', 'iscales', 'shift', 'shift+iscales'] as const)[rng.int(0, 3)];
      what = suffix === 'shift+iscales' ? forgeShift(bytes, layer) : editValues(bytes, spans.find((s) => s.name === `${layer}.${suffix}`)!);
      resign(bytes, layer);
    } else if (r < 0.92) {
      kind = 'config';
      const c = structuredClone(baseConfig);
      const q = c['quantization_config'] as Record<string, unknown>;
      const parts: string[] = [];
      for (let j = rng.int(1, 2); j > 0; j--) {
        if (rng.next() < 0.7) {
          const key = QUANT_FIELDS[rng.int(0, QUANT_FIELDS.length - 1)]!;
          if (rng.next() < 0.1) delete q[key];
          else q[key] = CONFIG_VALUES[rng.int(0, CONFIG_VALUES.length - 1)];
          parts.push(`quantization_config.${key}=${JSON.stringify(q[key])}`);
        } else {
          const [key, values] = MODEL_FIELDS[rng.int(0, MODEL_FIELDS.length - 1)]!;
          c[key] = values[rng.int(0, values.length - 1)];
          parts.push(`${key}=${JSON.stringify(c[key])}`);
        }
      }
      config = c;
      what = parts.join(', ');
    } else {
      kind = 'structure';
      const op = rng.int(0, 2);
      const span = quantSpans[rng.int(0, quantSpans.length - 1)]!;
      if (op === 0) { // a header dtype/shape character changed in place (same length)
        const header = bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0)));
        const at = header.indexOf(Buffer.from(`"${span.name}"`));
        const field = header.indexOf(rng.next() < 0.5 ? '"dtype":"' : '"shape":[', at) + 9;
        header[field] = Buffer.from('IU0123456789FB')[rng.int(0, 13)]!;
        what = `header of ${span.name}`;
      } else if (op === 1) {
        fileBytes = bytes.subarray(0, bytes.length - rng.int(1, 64));
        what = 'truncated';
      } else {
        fileBytes = Buffer.concat([bytes, Buffer.alloc(rng.int(1, 16))]);
        what = 'trailing bytes';
      }
    }
    putFile(fileBytes);
    configWriter(JSON.stringify(config));

    const describe = `iteration ${it} (${kind}): ${what}`;
    let outcome: 'same' | 'error';
    try {
      const got = outputsOf(loadQuantizedLinears(out), x);
      const want = reference.get(modeOfConfig(config))!;
      assert.deepEqual([...got.keys()], [...want.keys()], `${describe}: loaded a different set of layers`);
      for (const [name, y] of got) assert.ok(y.equals(want.get(name)!), `${describe}: SILENT CHANGE of ${name}'s outputs`);
      outcome = 'same';
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      if (!(e instanceof IntscaleError)) assert.fail(`${describe}: threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
      assert.ok(!e.message.includes('\n') && e.message.length < 400, `${describe}: bad message ${JSON.stringify(e.message)}`);
      const by = /checksum/.test(e.message) ? 'checksum' : /\.iscales: .*ŝ = /.test(e.message) ? 'ŝ vs rint(s·2^k)'
        : /\.shift: .*chooses/.test(e.message) ? 'shift vs amplifier' : /overflow int32|outside 0\.\.30/.test(e.message) ? 'int32 bound / shift range'
        : /\.scales: /.test(e.message) ? 'scale finite/≥0' : /\.qweight: .*-8/.test(e.message) ? 'q = -8' : /\.qweight: /.test(e.message) ? 'RTN group invariant' : /config\.json/.test(e.message) ? 'config' : 'structure/other';
      caughtBy[`${kind}: ${by}`] = (caughtBy[`${kind}: ${by}`] ?? 0) + 1;
      outcome = 'error';
    }
    (counts[kind] ??= { same: 0, error: 0 })[outcome]++;
  }
  assert.equal(openFds(), fdsBefore, 'file descriptors leaked');
  fs.closeSync(writer);
  if (process.env['FUZZ_DEBUG']) console.log(JSON.stringify({ counts, caughtBy }, null, 1));
  const total = Object.values(counts).reduce((s, c) => s + c.same + c.error, 0);
  assert.equal(total, iterations);
  for (const kind of ['values', 'resigned', 'config', 'structure']) assert.ok(counts[kind]!.error > 50, `${kind} rarely failed: ${JSON.stringify(counts)}`);
  // the semantic checks (not only the checksum) catch forged edits; some config edits load as is
  for (const by of ['resigned: ŝ vs rint(s·2^k)', 'resigned: shift vs amplifier', 'resigned: int32 bound / shift range']) {
    assert.ok((caughtBy[by] ?? 0) > 0, `${by} never fired: ${JSON.stringify(caughtBy)}`);
  }
  assert.ok(counts['config']!.same > 20, `no config edit loaded: ${JSON.stringify(counts)}`);
});
