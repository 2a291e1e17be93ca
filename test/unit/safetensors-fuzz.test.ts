// Fuzz: >= 10,000 mutations of a valid small safetensors file (bit flips in the length prefix and
// header, byte overwrites, truncation, extension, JSON fields rewritten with random values, deep
// nesting). Every outcome must be a full successful open+read or one IntscaleError line naming the
// file: never a RangeError/TypeError, a hang, or a leaked file descriptor. Index files too.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { IntscaleError } from '../../src/core/errors.ts';
import { Rng } from '../../src/core/rng.ts';
import { openSafetensors, openSafetensorsDir, writeSafetensorsSharded, type TensorSource } from '../../src/io/safetensors.ts';
import { canCountFds, openFdsUnder } from './open-fds.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-stfuzz-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const openFds = (): number => openFdsUnder(tmp);

type Outcome = 'ok' | 'error';
/** Open, read every tensor both ways, close; an IntscaleError must be one line naming `where`. */
function attempt(open: () => TensorSource, where: string, describe: () => string): Outcome {
  let source: TensorSource | undefined;
  try {
    source = open();
    for (const name of source.names()) {
      const info = source.info(name);
      const raw = source.read(name);
      assert.equal(raw.byteLength, info.byteLength);
      assert.equal(source.readF32(name).length, raw.length);
    }
    return 'ok';
  } catch (e) {
    if (!(e instanceof IntscaleError)) {
      assert.fail(`${describe()}: threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
    }
    assert.ok(!e.message.includes('\n') && e.message.startsWith(`${where}: `), `${describe()}: bad message ${JSON.stringify(e.message)}`);
    assert.ok(e.message.length < 400, `${describe()}: message too long (${e.message.length})`);
    return 'error';
  } finally {
    source?.close();
  }
}

const STRUCTURAL = Buffer.from('{}[]",:0123456789-.eE \\nu');

function randomJsonValue(rng: Rng, depth = 0): unknown {
  const pool: (() => unknown)[] = [
    () => rng.int(-3, 40), () => rng.nextU32(), () => 2 ** 53, () => 2 ** 53 + 2, () => -1, () => 1.5, () => 1e308,
    () => -0, () => ['F32', 'F16', 'BF16', 'I8', 'U8', 'I16', 'I32', 'I64', 'F8_E4M3', 'F64', 'BOOL', ''][rng.int(0, 11)],
    () => null, () => true, () => 'x\n\u2028y', () => [], () => ({}),
    () => [rng.int(0, 12)], () => [rng.int(0, 40), rng.int(0, 60)], () => [rng.int(0, 4), rng.int(0, 4), rng.int(0, 4)],
    () => (depth < 3 ? [randomJsonValue(rng, depth + 1), randomJsonValue(rng, depth + 1)] : 0),
    () => (depth < 3 ? { dtype: randomJsonValue(rng, depth + 1), shape: [rng.int(0, 5)], data_offsets: [rng.int(0, 30), rng.int(0, 60)] } : 0),
  ];
  return pool[rng.int(0, pool.length - 1)]!();
}

function withPrefix(header: Buffer, data: Buffer, prefix = BigInt(header.length)): Buffer {
  const p = Buffer.alloc(8);
  p.writeBigUInt64LE(prefix);
  return Buffer.concat([p, header, data]);
}

/** One random mutation of `base` (a valid file whose header is `header` and data `data`). */
function mutate(rng: Rng, base: Buffer, header: Record<string, unknown>, data: Buffer): { bytes: Buffer; kind: string } {
  const headerEnd = 8 + Number(base.readBigUInt64LE(0));
  const kind = rng.int(0, 7);
  switch (kind) {
    case 0: { // flip bits in the length prefix and header
      const b = Buffer.from(base);
      for (let i = rng.int(1, 3); i > 0; i--) b[rng.int(0, headerEnd - 1)]! ^= 1 << rng.int(0, 7);
      return { bytes: b, kind: 'bitflip' };
    }
    case 1: { // overwrite header bytes with JSON-significant or random bytes
      const b = Buffer.from(base);
      for (let i = rng.int(1, 3); i > 0; i--) {
        b[rng.int(8, headerEnd - 1)] = rng.next() < 0.7 ? STRUCTURAL[rng.int(0, STRUCTURAL.length - 1)]! : rng.int(0, 255);
      }
      return { bytes: b, kind: 'overwrite' };
    }
    case 2: return { bytes: base.subarray(0, rng.int(0, base.length - 1)), kind: 'truncate' };
    case 3: {
      const extra = Buffer.from(Uint8Array.from({ length: rng.int(1, 64) }, () => rng.int(0, 255)));
      return { bytes: Buffer.concat([base, extra]), kind: 'extend' };
    }
    case 4: { // random length prefix: near the truth, 32-bit or 64-bit
      const b = Buffer.from(base);
      const r = rng.int(0, 2);
      const v = r === 0 ? BigInt(Math.max(0, headerEnd - 8 + rng.int(-16, 16)))
        : r === 1 ? BigInt(rng.nextU32()) : (BigInt(rng.nextU32()) << 32n) | BigInt(rng.nextU32());
      b.writeBigUInt64LE(v, 0);
      return { bytes: b, kind: 'prefix' };
    }
    case 5: case 6: { // rewrite JSON fields with random values, keep or cut the data
      const h = structuredClone(header) as Record<string, Record<string, unknown>>;
      const keys = Object.keys(h);
      for (let i = rng.int(1, 3); i > 0; i--) {
        const op = rng.int(0, 4);
        const key = keys[rng.int(0, keys.length - 1)]!;
        if (op === 0) h[key] = randomJsonValue(rng) as Record<string, unknown>;
        else if (op === 1) delete h[key];
        else if (op === 2) h[`new${rng.int(0, 9)}`] = randomJsonValue(rng) as Record<string, unknown>;
        else if (typeof h[key] === 'object' && h[key] !== null) {
          const field = ['dtype', 'shape', 'data_offsets', 'extra', 'k'][rng.int(0, 4)]!;
          const target = h[key] as Record<string, unknown>;
          if (op === 3) target[field] = randomJsonValue(rng);
          else if (Array.isArray(target[field]) && (target[field] as unknown[]).length > 0) {
            (target[field] as unknown[])[rng.int(0, (target[field] as unknown[]).length - 1)] = rng.next() < 0.5 ? rng.int(-2, 80) : randomJsonValue(rng);
          }
        }
      }
      const json = Buffer.from(JSON.stringify(h));
      const d = rng.next() < 0.8 ? data : data.subarray(0, rng.int(0, data.length));
      return { bytes: withPrefix(json, d), kind: 'json' };
    }
    default: { // pathological JSON: deep nesting, huge numbers, duplicate keys, lone surrogates
      const depth = rng.int(1, 20000);
      const texts = [
        '['.repeat(depth) + ']'.repeat(depth),
        `{"a":{"dtype":"F32","shape":${'['.repeat(depth)}${']'.repeat(depth)},"data_offsets":[0,0]}}`,
        `{"__metadata__":{"k":${'['.repeat(depth)}${']'.repeat(depth)}}}`,
        `{"a":{"dtype":"F32","shape":[1e400],"data_offsets":[0,4]}}`,
        `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"I8","shape":[4],"data_offsets":[0,4]}}`,
        `{"\\ud800":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`,
        `{"a":{"dtype":"U8","shape":[${Array(depth).fill(1).join(',')}],"data_offsets":[0,1]}}`,
      ];
      const text = texts[rng.int(0, texts.length - 1)]!;
      return { bytes: withPrefix(Buffer.from(text), data.subarray(0, 8)), kind: 'pathological' };
    }
  }
}

test('10,000+ mutated safetensors files: success or one-line IntscaleError, nothing else', { timeout: 60_000 }, () => {
  const dir = path.join(tmp, 'base');
  writeSafetensorsSharded(dir, [
    { name: 'w.f32', dtype: 'F32', shape: [3], data: new Float32Array([1.5, -2, 3.25]) },
    { name: 'w.f16', dtype: 'F16', shape: [2, 2], data: new Uint16Array([0x3c00, 0xbc00, 0x7c00, 0x0001]) },
    { name: 'w.i8', dtype: 'I8', shape: [5], data: new Int8Array([1, -2, 3, -4, 5]) },
    { name: 'w.i64', dtype: 'I64', shape: [1], data: new BigInt64Array([-7n]) },
    { name: 'w.bf16', dtype: 'BF16', shape: [2], data: new Uint16Array([0x3f80, 0xc000]) },
  ], { metadata: { format: 'pt' } });
  const base = fs.readFileSync(path.join(dir, 'model.safetensors'));
  const n = Number(base.readBigUInt64LE(0));
  const header = JSON.parse(base.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  const data = base.subarray(8 + n);

  const file = path.join(tmp, 'fuzz.safetensors');
  const rng = new Rng(20260522);
  const counts: Record<string, Record<Outcome, number>> = {};
  const iterations = 12_000;
  // One path rewritten in place: write, then cut to length (on ext4, truncating to zero and
  // reopening forces a flush, ~50x slower than this).
  fs.writeFileSync(file, base);
  const writer = fs.openSync(file, 'r+');
  const overwrite = (bytes: Buffer) => {
    fs.writeSync(writer, bytes, 0, bytes.length, 0);
    fs.ftruncateSync(writer, bytes.length);
  };
  const fdsBefore = openFds();
  assert.ok(fdsBefore > 0 || !canCountFds(), 'the descriptor count sees the open writer');
  for (let i = 0; i < iterations; i++) {
    const { bytes, kind } = mutate(rng, base, header, data);
    overwrite(bytes);
    const outcome = attempt(() => openSafetensors(file), file, () => `iteration ${i} (${kind}): ${bytes.subarray(0, 300).toString('latin1')}`);
    (counts[kind] ??= { ok: 0, error: 0 })[outcome]++;
  }
  assert.equal(openFds(), fdsBefore, 'file descriptors leaked');
  fs.closeSync(writer);
  if (process.env.FUZZ_DEBUG) console.log(JSON.stringify(counts));
  const total = Object.values(counts).reduce((s, c) => s + c.ok + c.error, 0);
  const oks = Object.values(counts).reduce((s, c) => s + c.ok, 0);
  assert.equal(total, iterations);
  // the fuzzer must reach both outcomes, and the reading paths, in a meaningful share of cases
  // (since the reader refuses holes and trailing bytes like the reference implementation, ~3% succeed)
  assert.ok(oks > iterations * 0.02 && oks < iterations * 0.95, `successes ${oks}/${iterations}: ${JSON.stringify(counts)}`);
  for (const kind of ['bitflip', 'overwrite', 'truncate', 'json', 'prefix', 'pathological']) {
    assert.ok(counts[kind] && counts[kind].error > 0, `${kind} never failed: ${JSON.stringify(counts)}`);
  }
});

test('1,000 mutated index files: success or one-line IntscaleError naming the index or a shard', { timeout: 60_000 }, () => {
  const dir = path.join(tmp, 'sharded');
  const tensors = ['a', 'b', 'c', 'd'].map((name, i) => ({ name, dtype: 'I32' as const, shape: [2], data: new Int32Array([i, -i]) }));
  writeSafetensorsSharded(dir, tensors, { maxShardBytes: 16 });
  const indexPath = path.join(dir, 'model.safetensors.index.json');
  const index = JSON.parse(fs.readFileSync(indexPath, 'utf8')) as { metadata: Record<string, unknown>; weight_map: Record<string, unknown> };
  const text = fs.readFileSync(indexPath);
  const rng = new Rng(77);
  const indexWriter = fs.openSync(indexPath, 'r+');
  const fdsBefore = openFds();
  assert.ok(fdsBefore > 0 || !canCountFds(), 'the descriptor count sees the open writer');
  let oks = 0;
  for (let i = 0; i < 1000; i++) {
    let bytes: Buffer;
    if (rng.next() < 0.5) {
      bytes = Buffer.from(text);
      for (let j = rng.int(1, 3); j > 0; j--) bytes[rng.int(0, bytes.length - 1)] = STRUCTURAL[rng.int(0, STRUCTURAL.length - 1)]!;
    } else {
      const m = structuredClone(index) as Record<string, Record<string, unknown>>;
      const target = rng.next() < 0.8 ? m.weight_map! : rng.next() < 0.5 ? m.metadata! : m;
      const keys = Object.keys(target);
      const key = rng.next() < 0.7 && keys.length ? keys[rng.int(0, keys.length - 1)]! : `x${rng.int(0, 3)}`;
      target[key] = rng.next() < 0.5 ? ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'missing.safetensors', '../x', '/etc/passwd', '.', ''][rng.int(0, 6)] : randomJsonValue(rng);
      bytes = Buffer.from(JSON.stringify(m));
    }
    fs.writeSync(indexWriter, bytes, 0, bytes.length, 0);
    fs.ftruncateSync(indexWriter, bytes.length);
    try {
      const source = openSafetensorsDir(dir);
      oks++;
      for (const name of source.names()) source.readF32(name);
      source.close();
    } catch (e) {
      if (!(e instanceof IntscaleError)) assert.fail(`index mutation ${i}: threw ${(e as Error)?.name}: ${(e as Error)?.message}\n${bytes}`);
      assert.ok(!e.message.includes('\n') && e.message.startsWith(dir), `bad message ${JSON.stringify(e.message)}`);
    }
  }
  assert.equal(openFds(), fdsBefore, 'file descriptors leaked');
  fs.closeSync(indexWriter);
  assert.ok(oks > 50 && oks < 950, `successes ${oks}/1000`);
});
