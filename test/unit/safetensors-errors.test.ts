// Every kind of bad safetensors input (file, sharded directory, writer arguments) gives exactly one
// IntscaleError line that names the offending file and says what is wrong.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { IntscaleError } from '../../src/core/errors.ts';
import {
  openSafetensors, openSafetensorsDir, writeSafetensors, writeSafetensorsSharded, type TensorToWrite,
} from '../../src/io/safetensors.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-sterr-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let counter = 0;
/** Write a file: 8-byte LE length (default: the header's length), header text, then data bytes. */
function rawFile(header: string | object, dataBytes = 0, lengthPrefix?: bigint): string {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const h = Buffer.from(text, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(lengthPrefix ?? BigInt(h.length));
  const file = path.join(tmp, `f${counter++}.safetensors`);
  fs.writeFileSync(file, Buffer.concat([prefix, h, Buffer.alloc(dataBytes, 0x5a)]));
  return file;
}

/** Run fn, expect one IntscaleError line starting with `where: ` and matching `pattern`. */
function expectFailure(fn: () => unknown, where: string, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof IntscaleError, `not an IntscaleError: ${String(e)}`);
    assert.ok(!e.message.includes('\n'), `more than one line: ${JSON.stringify(e.message)}`);
    assert.ok(e.message.startsWith(`${where}: `), `does not name ${where}: ${e.message}`);
    assert.match(e.message, pattern);
    return true;
  });
}

const ok = (extra: object = {}) => ({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, ...extra });

test('file-level problems: missing, directory, too short, bad length prefix, bad JSON', () => {
  const missing = path.join(tmp, 'nope.safetensors');
  expectFailure(() => openSafetensors(missing), missing, /no such file/);
  expectFailure(() => openSafetensors(tmp), tmp, /not a regular file/);
  for (const size of [0, 5]) {
    const f = path.join(tmp, `short${size}.safetensors`);
    fs.writeFileSync(f, Buffer.alloc(size, 1));
    expectFailure(() => openSafetensors(f), f, new RegExp(`file is ${size} bytes, too short`));
  }
  let f = rawFile(ok(), 8, 1000n);
  expectFailure(() => openSafetensors(f), f, /header length 1000 runs past the end/);
  f = rawFile(ok(), 8, 2n ** 40n);
  expectFailure(() => openSafetensors(f), f, /exceeds the 100000000-byte limit/);
  f = rawFile(ok(), 8, 2n ** 64n - 1n);
  expectFailure(() => openSafetensors(f), f, /exceeds/);
  f = rawFile('{"a": {"dtype": "F32",', 8);
  expectFailure(() => openSafetensors(f), f, /header is not valid JSON/);
  f = rawFile('', 8);
  expectFailure(() => openSafetensors(f), f, /header is not valid JSON/);
  const bad = Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from([0x22, 0xff, 0xfe, 0x22])]);
  f = path.join(tmp, 'utf8.safetensors');
  fs.writeFileSync(f, bad);
  expectFailure(() => openSafetensors(f), f, /not valid UTF-8/);
  for (const h of ['[]', 'null', '42', '"x"']) {
    f = rawFile(h);
    expectFailure(() => openSafetensors(f), f, /header is not a JSON object/);
  }
});

test('tensor entry problems: dtype, shape, data_offsets, overlap, metadata', () => {
  const cases: [object, number, RegExp][] = [
    [{ x: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } }, 2, /unsupported dtype F8_E4M3 for tensor x$/],
    [{ x: { dtype: 'F64', shape: [1], data_offsets: [0, 8] } }, 8, /unsupported dtype F64 for tensor x/],
    [{ x: { dtype: 7, shape: [1], data_offsets: [0, 4] } }, 4, /tensor x: dtype missing or not a string/],
    [{ x: { shape: [1], data_offsets: [0, 4] } }, 4, /tensor x: dtype missing/],
    [{ x: 5 }, 0, /tensor x: entry is not an object/],
    [{ x: { dtype: 'F32', shape: 'abc', data_offsets: [0, 4] } }, 4, /tensor x: shape is not an array/],
    [{ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4, /not a list of non-negative integers/],
    [{ x: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, 4, /not a list of non-negative integers/],
    [{ x: { dtype: 'F32', shape: ['2'], data_offsets: [0, 8] } }, 8, /not a list of non-negative integers/],
    [{ x: { dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 8] } }, 8, /too large/],
    [{ x: { dtype: 'F32', shape: [1], data_offsets: [0] } }, 4, /data_offsets must be two non-negative integers/],
    [{ x: { dtype: 'F32', shape: [1], data_offsets: [0, -4] } }, 4, /data_offsets must be two/],
    [{ x: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, 4, /data_offsets \[4, 0\] end before they begin/],
    [{ x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8, /data_offsets \[0, 16\] outside the data region of 8 bytes/],
    [{ x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8, /span 8 bytes but shape \[3\] of F32 needs 12/],
    [ok({ b: { dtype: 'I8', shape: [4], data_offsets: [6, 10] } }), 10, /tensors a and b overlap/],
    // like the reference implementation: no trailing bytes after the last tensor, no holes
    [ok(), 9, /1 trailing bytes after the last tensor/],
    [ok(), 8 + 4096, /4096 trailing bytes after the last tensor/],
    [{}, 3, /3 trailing bytes after the last tensor/],
    [ok({ b: { dtype: 'I8', shape: [2], data_offsets: [10, 12] } }), 12, /2 bytes before tensor b belong to no tensor/],
    [{ x: { dtype: 'I8', shape: [2], data_offsets: [1, 3] } }, 3, /1 bytes before tensor x belong to no tensor/],
    [ok({ __metadata__: { k: 1 } }), 8, /__metadata__ value for k is not a string/],
    [ok({ __metadata__: [] }), 8, /__metadata__ is not an object/],
    [{ 'bad\nname': { dtype: 'X', shape: [], data_offsets: [0, 0] } }, 0, /unsupported dtype X for tensor "bad\\nname"/],
  ];
  for (const [header, dataBytes, pattern] of cases) {
    const f = rawFile(header, dataBytes);
    expectFailure(() => openSafetensors(f), f, pattern);
  }
});

test('a missing tensor name names the file and the tensor; reads after close fail cleanly', () => {
  const f = rawFile(ok(), 8);
  const s = openSafetensors(f);
  expectFailure(() => s.info('model.foo'), f, /no tensor named model\.foo/);
  expectFailure(() => s.read('model.foo'), f, /no tensor named model\.foo/);
  assert.equal(s.read('a').length, 2);
  s.close();
  s.close();
  expectFailure(() => s.read('a'), f, /closed/);
});

test('sharded directory problems: no model, bad index, missing shard, tensor absent from its shard', () => {
  const dir = path.join(tmp, 'model');
  fs.mkdirSync(dir);
  expectFailure(() => openSafetensorsDir(dir), dir, /no model\.safetensors\.index\.json or model\.safetensors/);
  const nowhere = path.join(tmp, 'no-such-dir');
  expectFailure(() => openSafetensorsDir(nowhere), nowhere, /no such directory/);

  const index = path.join(dir, 'model.safetensors.index.json');
  fs.mkdirSync(index);
  expectFailure(() => openSafetensorsDir(dir), index, /cannot read: is a directory \(EISDIR\)/);
  fs.rmdirSync(index);
  fs.writeFileSync(index, '{"weight_map": ');
  expectFailure(() => openSafetensorsDir(dir), index, /not valid JSON/);
  fs.writeFileSync(index, '{"metadata": {}}');
  expectFailure(() => openSafetensorsDir(dir), index, /weight_map missing or not an object/);
  fs.writeFileSync(index, JSON.stringify({ weight_map: { a: 3 } }));
  expectFailure(() => openSafetensorsDir(dir), index, /weight_map entry for a is not a file name/);
  fs.writeFileSync(index, JSON.stringify({ weight_map: { a: '../../etc/passwd' } }));
  expectFailure(() => openSafetensorsDir(dir), index, /outside the model directory/);

  const t = (name: string): TensorToWrite => ({ name, dtype: 'I32', shape: [2], data: new Int32Array([1, 2]) });
  writeSafetensorsSharded(dir, [t('a'), t('b'), t('c')], { maxShardBytes: 8 });
  fs.rmSync(path.join(dir, 'model-00002-of-00003.safetensors'));
  expectFailure(() => openSafetensorsDir(dir), index, /shard model-00002-of-00003\.safetensors \(holding b\) is missing/);

  writeSafetensorsSharded(dir, [t('a'), t('b'), t('c')], { maxShardBytes: 8 });
  const map = JSON.parse(fs.readFileSync(index, 'utf8'));
  map.weight_map.d = 'model-00001-of-00003.safetensors';
  fs.writeFileSync(index, JSON.stringify(map));
  const shard1 = path.join(dir, 'model-00001-of-00003.safetensors');
  expectFailure(() => openSafetensorsDir(dir), shard1, /no tensor d, though model\.safetensors\.index\.json lists it here/);

  // a corrupt shard is reported against the shard file
  fs.writeFileSync(shard1, Buffer.alloc(3));
  expectFailure(() => openSafetensorsDir(dir), shard1, /too short/);
});

test('writer rejects bad tensors and leaves no file behind', () => {
  const f = path.join(tmp, 'w.safetensors');
  const cases: [TensorToWrite[], RegExp][] = [
    [[{ name: 'x', dtype: 'F16', shape: [2], data: new Float32Array(2) }], /tensor x: F16 data must be a Uint16Array, got Float32Array/],
    [[{ name: 'x', dtype: 'F32', shape: [3], data: new Float32Array(2) }], /shape \[3\] has 3 elements but data has 2/],
    [[{ name: 'x', dtype: 'F32', shape: [-3], data: new Float32Array(2) }], /not a list of non-negative integers/],
    [[{ name: 'x', dtype: 'Q4' as 'F32', shape: [2], data: new Float32Array(2) }], /unsupported dtype Q4 for tensor x/],
    [[{ name: '__metadata__', dtype: 'U8', shape: [1], data: new Uint8Array(1) }], /invalid tensor name __metadata__/],
    [[{ name: 'x', dtype: 'U8', shape: [1], data: new Uint8Array(1) }, { name: 'x', dtype: 'U8', shape: [1], data: new Uint8Array(1) }], /tensor x appears twice/],
  ];
  for (const [tensors, pattern] of cases) {
    expectFailure(() => writeSafetensors(f, tensors), f, pattern);
    assert.equal(fs.existsSync(f), false);
  }
  expectFailure(() => writeSafetensors(f, [], { k: 1 as unknown as string }), f, /metadata value for k is not a string/);
  const unwritable = path.join(tmp, 'no-such-dir', 'w.safetensors');
  expectFailure(() => writeSafetensors(unwritable, []), unwritable, /cannot write: no such file or directory \(ENOENT\)/);
  expectFailure(() => writeSafetensorsSharded(tmp, [], { maxShardBytes: 0 }), tmp, /maxShardBytes must be positive/);
  assert.deepEqual(fs.readdirSync(tmp).filter((x) => x.includes('.tmp-')), []);
});
