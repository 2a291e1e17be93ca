// Safetensors round trips (every dtype, single file and sharded), the exact on-disk header layout
// (parsed by hand here), lazy reading of a huge sparse file, and the real docs-llama-30m checkpoint.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '../../src/core/rng.ts';
import { bf16ToF32, f16ToF32 } from '../../src/core/dtype.ts';
import {
  openSafetensors, openSafetensorsDir, writeSafetensors, writeSafetensorsSharded,
  type DType, type TensorToWrite, type TypedArray,
} from '../../src/io/safetensors.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-st-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const BYTES: Record<DType, number> = { F32: 4, F16: 2, BF16: 2, I8: 1, U8: 1, I16: 2, I32: 4, I64: 8 };

function randomData(rng: Rng, dtype: DType, n: number): TypedArray {
  switch (dtype) {
    case 'F32': return rng.normals(n, 3);
    case 'F16':
    case 'BF16': return Uint16Array.from({ length: n }, () => rng.nextU32() & 0xffff);
    case 'I8': return Int8Array.from({ length: n }, () => rng.int(-128, 127));
    case 'U8': return Uint8Array.from({ length: n }, () => rng.int(0, 255));
    case 'I16': return Int16Array.from({ length: n }, () => rng.int(-32768, 32767));
    case 'I32': return Int32Array.from({ length: n }, () => rng.nextU32() | 0);
    case 'I64': return BigInt64Array.from({ length: n }, () => BigInt.asIntN(64, (BigInt(rng.nextU32()) << 32n) | BigInt(rng.nextU32())));
  }
}

function randomTensors(seed: number, count: number): TensorToWrite[] {
  const rng = new Rng(seed);
  const dtypes: DType[] = ['F32', 'F16', 'BF16', 'I8', 'U8', 'I16', 'I32', 'I64'];
  const out: TensorToWrite[] = [];
  for (let i = 0; i < count; i++) {
    const dtype = dtypes[i % dtypes.length]!;
    const rank = rng.int(0, 3);
    const shape = Array.from({ length: rank }, () => rng.int(1, 9));
    const n = shape.reduce((a, b) => a * b, 1);
    out.push({ name: `layer.${rng.int(0, 99)}.w${i}`, dtype, shape, data: randomData(rng, dtype, n) });
  }
  return out;
}

function expectedF32(t: TensorToWrite): number[] {
  const d = t.data;
  switch (t.dtype) {
    case 'F16': return [...(d as Uint16Array)].map(f16ToF32);
    case 'BF16': return [...(d as Uint16Array)].map(bf16ToF32);
    case 'I64': return [...(d as BigInt64Array)].map((v) => Math.fround(Number(v)));
    default: return [...(d as Float32Array)].map((v) => Math.fround(v));
  }
}

function assertSameTensor(source: ReturnType<typeof openSafetensors>, t: TensorToWrite): void {
  const info = source.info(t.name);
  assert.equal(info.dtype, t.dtype);
  assert.deepEqual(info.shape, t.shape);
  assert.equal(info.byteLength, t.data.length * BYTES[t.dtype]);
  const got = source.read(t.name);
  assert.equal(got.constructor, t.data.constructor, t.name);
  assert.deepEqual(Buffer.from(got.buffer, got.byteOffset, got.byteLength), Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  const f = source.readF32(t.name);
  assert.ok(f instanceof Float32Array);
  const want = expectedF32(t);
  assert.equal(f.length, want.length);
  for (let i = 0; i < want.length; i++) {
    if (Number.isNaN(want[i])) assert.ok(Number.isNaN(f[i]!));
    else assert.ok(Object.is(f[i], want[i]), `${t.name}[${i}]: ${f[i]} vs ${want[i]}`);
  }
}

test('round trip of every dtype, incl. scalars and empty tensors, with metadata', () => {
  const tensors = randomTensors(1, 24);
  tensors.push({ name: 'empty', dtype: 'F16', shape: [0, 7], data: new Uint16Array(0) });
  tensors.push({ name: 'scalar', dtype: 'I64', shape: [], data: new BigInt64Array([-5n]) });
  tensors.push({ name: '__proto__', dtype: 'U8', shape: [2], data: new Uint8Array([9, 8]) });
  // data that is a view into a larger buffer at an odd offset
  const backing = new Rng(11).normals(40);
  tensors.push({ name: 'view', dtype: 'F32', shape: [3, 4], data: backing.subarray(5, 17) });
  tensors.push({ name: 'view.i8', dtype: 'I8', shape: [3], data: new Int8Array([1, 2, 3, 4, 5]).subarray(1, 4) });
  const file = path.join(tmp, 'all.safetensors');
  const metadata = { format: 'pt', 'quant.group_size': '128', ünïcode: 'ŝ = round(s·2^k)' };
  writeSafetensors(file, tensors, metadata);
  const s = openSafetensors(file);
  try {
    assert.deepEqual(s.metadata, metadata);
    assert.deepEqual(s.names(), tensors.map((t) => t.name).sort());
    for (const t of tensors) {
      assert.ok(s.has(t.name));
      assertSameTensor(s, t);
    }
    assert.equal(s.has('nope'), false);
  } finally {
    s.close();
  }
  assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.includes('.tmp-')), [], 'no temp files left behind');
});

test('header layout: length prefix, 8-byte aligned JSON padded with spaces, contiguous data', () => {
  const tensors = randomTensors(2, 9);
  const file = path.join(tmp, 'layout.safetensors');
  writeSafetensors(file, tensors);
  const bytes = fs.readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  assert.equal(n % 8, 0);
  const headerText = bytes.subarray(8, 8 + n).toString('utf8');
  const json = headerText.trimEnd();
  assert.ok(headerText.length - json.length < 8);
  assert.match(headerText.slice(json.length), /^ *$/);
  const header = JSON.parse(json) as Record<string, { dtype: DType; shape: number[]; data_offsets: [number, number] }>;
  assert.deepEqual(header['__metadata__'], {}, '__metadata__ always written');
  const entries = Object.entries(header).filter(([k]) => k !== '__metadata__');
  assert.equal(entries.length, tensors.length);
  // laid out back to back from 0, widest dtype first (so every tensor is naturally aligned)
  let expectedBegin = 0, lastWidth = 8;
  for (const [name, e] of entries) {
    assert.equal(e.data_offsets[0], expectedBegin, name);
    assert.ok(BYTES[e.dtype] <= lastWidth);
    lastWidth = BYTES[e.dtype];
    assert.equal((8 + n + e.data_offsets[0]) % BYTES[e.dtype], 0, `${name} aligned`);
    const t = tensors.find((x) => x.name === name)!;
    assert.deepEqual(e.shape, t.shape);
    const raw = bytes.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]);
    assert.deepEqual(raw, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength), name);
    expectedBegin = e.data_offsets[1];
  }
  assert.equal(8 + n + expectedBegin, bytes.length);
});

test('reading is lazy: a 4 GiB sparse file opens instantly and reads one small tensor', () => {
  const file = path.join(tmp, 'sparse.safetensors');
  const bigBytes = 4 * 2 ** 30;
  const header = JSON.stringify({
    big: { dtype: 'F32', shape: [2 ** 30], data_offsets: [0, bigBytes] },
    small: { dtype: 'I32', shape: [3], data_offsets: [bigBytes, bigBytes + 12] },
  }).padEnd(200, ' ');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(header.length));
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, Buffer.concat([prefix, Buffer.from(header)]), 0, 8 + header.length, 0);
    fs.writeSync(fd, Buffer.from(new Int32Array([7, -8, 9]).buffer), 0, 12, 8 + header.length + bigBytes);
  } finally {
    fs.closeSync(fd);
  }
  const rssBefore = process.memoryUsage().rss;
  const s = openSafetensors(file);
  try {
    assert.deepEqual(s.info('big').shape, [2 ** 30]);
    assert.equal(s.info('small').offset, 8 + header.length + bigBytes);
    assert.deepEqual([...(s.read('small') as Int32Array)], [7, -8, 9]);
    assert.deepEqual([...s.readF32('small')], [7, -8, 9]);
  } finally {
    s.close();
  }
  assert.ok(process.memoryUsage().rss - rssBefore < 256 * 2 ** 20, 'did not load the file into memory');
});

test('sharded round trip with a small maxShardBytes; the index maps every tensor', () => {
  const tensors = randomTensors(3, 40);
  const dir = path.join(tmp, 'sharded');
  const maxShardBytes = 600;
  const files = writeSafetensorsSharded(dir, tensors, { maxShardBytes, metadata: { quant: 'w4a8' } });
  assert.ok(files.length >= 3, `${files.length} shards`);
  files.forEach((f, i) => assert.equal(path.basename(f), `model-${String(i + 1).padStart(5, '0')}-of-${String(files.length).padStart(5, '0')}.safetensors`));
  for (const f of files) {
    const single = openSafetensors(f);
    const bytes = single.names().reduce((sum, name) => sum + single.info(name).byteLength, 0);
    assert.ok(bytes <= maxShardBytes || single.names().length === 1, `${f}: ${bytes} bytes`);
    single.close();
  }
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
  assert.deepEqual(Object.keys(index.weight_map), tensors.map((t) => t.name).sort());
  assert.equal(index.metadata.total_size, tensors.reduce((s, t) => s + t.data.length * BYTES[t.dtype], 0));

  const s = openSafetensorsDir(dir);
  try {
    assert.equal(s.metadata['quant'], 'w4a8');
    assert.deepEqual(s.names(), tensors.map((t) => t.name).sort());
    for (const t of tensors) assertSameTensor(s, t);
  } finally {
    s.close();
  }
});

test('one shard → model.safetensors without index (a stale index is removed)', () => {
  const dir = path.join(tmp, 'single');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), '{"weight_map": {}}');
  const tensors = randomTensors(4, 5);
  const files = writeSafetensorsSharded(dir, tensors, { metadata: { a: 'b' } });
  assert.deepEqual(files, [path.join(dir, 'model.safetensors')]);
  assert.equal(fs.existsSync(path.join(dir, 'model.safetensors.index.json')), false);
  const s = openSafetensorsDir(dir);
  assert.deepEqual(s.metadata, { a: 'b' });
  for (const t of tensors) assertSameTensor(s, t);
  s.close();
  // a path to the file itself works too
  const f = openSafetensorsDir(files[0]!);
  assert.equal(f.names().length, 5);
  f.close();
});

const realModel = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../shared/models/docs-llama-30m');
test(
  'reads the real docs-llama-30m sharded checkpoint',
  { skip: fs.existsSync(realModel) ? false : `${realModel} absent (needs ../shared)` },
  () => {
    const s = openSafetensorsDir(realModel);
    try {
      const names = s.names();
      assert.equal(names.length, 75);
      assert.ok(names.every((n) => s.info(n).dtype === 'F16'));
      assert.deepEqual(s.info('model.embed_tokens.weight').shape, [4096, 512]);
      const total = names.reduce((sum, n) => sum + s.info(n).byteLength, 0);
      assert.equal(String(total), s.metadata['total_size']);
      const emb = s.readF32('model.embed_tokens.weight');
      let sum2 = 0;
      for (const v of emb) {
        assert.ok(Number.isFinite(v));
        sum2 += v * v;
      }
      const rms = Math.sqrt(sum2 / emb.length);
      assert.ok(rms > 1e-3 && rms < 1, `embedding rms ${rms}`);
      const norm = s.readF32('model.norm.weight');
      assert.equal(norm.length, 512);
    } finally {
      s.close();
    }
  },
);
