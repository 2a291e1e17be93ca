// The streaming shard writer: tensors added a few at a time come back identical through the
// sharded reader, in several shards with an index (or one model.safetensors), and a streaming
// quantize with small shards gives the same tensors as one with a single shard.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Rng } from '../../src/core/rng.ts';
import { openSafetensorsDir } from '../../src/io/safetensors.ts';
import { ShardStreamWriter } from '../../src/io/safetensors-stream.ts';
import { writeQuantizedModel } from '../../src/quant/quantize-model.ts';
import { loadQuantizedLinears } from '../../src/quant/quantized-linears.ts';
import { makeModelDir } from '../quant/helpers.ts';

test('ShardStreamWriter: shards as it goes, index at the end, same tensors back', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-stream-'));
  try {
    const rng = new Rng(9);
    const tensors = Array.from({ length: 7 }, (_, i) => ({ name: `t${i}`, dtype: 'F32' as const, shape: [10, 10], data: rng.normals(100) }));
    for (const [max, shards] of [[1000, 4], [1e9, 1]] as const) {
      const dir = path.join(tmp, `d${shards}`);
      const w = new ShardStreamWriter(dir, { a: 'b' }, max);
      w.add(tensors.slice(0, 3));
      w.add(tensors.slice(3));
      assert.equal(w.finish().length, shards);
      assert.equal(fs.existsSync(path.join(dir, 'model.safetensors.index.json')), shards > 1);
      assert.ok(!fs.readdirSync(dir).some((f) => f.startsWith('.part-')));
      const src = openSafetensorsDir(dir);
      for (const t of tensors) assert.deepEqual(src.read(t.name), t.data);
      src.close();
    }
    const w = new ShardStreamWriter(path.join(tmp, 'dup'));
    assert.throws(() => w.add([tensors[0]!, tensors[0]!]), /t0 appears twice/);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('streaming quantize: small shards give the same checkpoint tensors as one shard, and both load', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'intscale-stream-'));
  try {
    const src = makeModelDir(tmp);
    const opts = { method: 'rtn', wbits: 4, group: 64, abits: 8, scale: 'int' as const, amplifier: 'auto' as const, clip: false };
    await writeQuantizedModel(src, path.join(tmp, 'one'), opts);
    await writeQuantizedModel(src, path.join(tmp, 'many'), { ...opts, maxShardBytes: 20_000 });
    assert.ok(fs.readdirSync(path.join(tmp, 'many')).filter((f) => f.endsWith('.safetensors')).length > 2);
    const a = openSafetensorsDir(path.join(tmp, 'one')), b = openSafetensorsDir(path.join(tmp, 'many'));
    assert.deepEqual(b.names().sort(), a.names().sort());
    for (const n of a.names()) assert.deepEqual(b.read(n), a.read(n), n);
    a.close(); b.close();
    for (const d of ['one', 'many']) assert.equal(loadQuantizedLinears(path.join(tmp, d)).size, 14, `${d} loads (checksums in the index / last header)`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
