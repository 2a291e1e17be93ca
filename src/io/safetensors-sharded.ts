// Reader for a model directory: a sharded checkpoint (model.safetensors.index.json whose weight_map
// names the shard of each tensor) or a single model.safetensors. Shard headers are all parsed and
// cross-checked against the index at open; tensor data is still read lazily.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../core/errors.ts';
import { fsProblem } from '../core/fs-errors.ts';
import { printable, type TensorInfo } from './safetensors-header.ts';
import { openSafetensors, type TensorSource } from './safetensors-reader.ts';

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

/** Open `dir` (sharded or single-file model folder); a path to a .safetensors file also works. */
export function openSafetensorsDir(dir: string): TensorSource {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    fail(dir, 'no such directory');
  }
  if (st.isFile()) return openSafetensors(dir);
  const indexPath = path.join(dir, INDEX_FILE);
  if (fs.existsSync(indexPath)) return openSharded(dir, indexPath);
  const single = path.join(dir, SINGLE_FILE);
  if (fs.existsSync(single)) return openSafetensors(single);
  fail(dir, `no ${INDEX_FILE} or ${SINGLE_FILE} in this directory`);
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function metadataString(indexPath: string, key: string, v: unknown): string {
  if (typeof v === 'string') return v;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    fail(indexPath, `metadata value for ${printable(key)} cannot be represented as text (nested too deeply)`);
  }
}

function openSharded(dir: string, indexPath: string): TensorSource {
  let text: string;
  try {
    text = fs.readFileSync(indexPath, 'utf8');
  } catch (e) {
    fail(indexPath, `cannot read: ${fsProblem(e) ?? String(e)}`);
  }
  let index: unknown;
  try {
    index = JSON.parse(text);
  } catch (e) {
    fail(indexPath, `not valid JSON (${printable(String((e as Error).message))})`);
  }
  if (!isPlainObject(index)) fail(indexPath, 'not a JSON object');
  const weightMap = index['weight_map'];
  if (!isPlainObject(weightMap)) fail(indexPath, 'weight_map missing or not an object');

  const shardOf = new Map<string, string>();
  for (const [name, shard] of Object.entries(weightMap)) {
    if (typeof shard !== 'string' || shard === '') fail(indexPath, `weight_map entry for ${printable(name)} is not a file name`);
    const rel = path.relative(dir, path.resolve(dir, shard));
    if (rel.startsWith('..') || path.isAbsolute(shard)) {
      fail(indexPath, `shard ${printable(shard)} for ${printable(name)} is outside the model directory`);
    }
    shardOf.set(name, shard);
  }

  const shards = new Map<string, TensorSource>();
  const closeAll = () => { for (const s of shards.values()) s.close(); };
  const metadata: Record<string, string> = {};
  try {
    for (const [name, shard] of shardOf) {
      let source = shards.get(shard);
      if (!source) {
        const shardPath = path.join(dir, shard);
        if (!fs.existsSync(shardPath)) fail(indexPath, `shard ${printable(shard)} (holding ${printable(name)}) is missing`);
        source = openSafetensors(shardPath);
        shards.set(shard, source);
        Object.assign(metadata, source.metadata);
      }
      if (!source.has(name)) fail(path.join(dir, shard), `no tensor ${printable(name)}, though ${INDEX_FILE} lists it here`);
    }
  } catch (e) {
    closeAll();
    throw e;
  }
  const indexMeta = index['metadata'];
  if (isPlainObject(indexMeta)) {
    for (const [k, v] of Object.entries(indexMeta)) {
      Object.defineProperty(metadata, k, { value: metadataString(indexPath, k, v), enumerable: true, writable: true, configurable: true });
    }
  }

  const sortedNames = [...shardOf.keys()].sort();
  const shardFor = (name: string): TensorSource => {
    const shard = shardOf.get(name);
    if (shard === undefined) fail(dir, `no tensor named ${printable(name)}`);
    return shards.get(shard)!;
  };
  return {
    metadata,
    names: () => sortedNames.slice(),
    has: (name) => shardOf.has(name),
    info: (name): TensorInfo => shardFor(name).info(name),
    read: (name) => shardFor(name).read(name),
    readF32: (name) => shardFor(name).readF32(name),
    close: closeAll,
  };
}
