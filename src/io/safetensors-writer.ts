// Writers: one .safetensors file (atomic, 8-byte padded header, __metadata__ always present) and a
// sharded model directory (model-0000i-of-0000n.safetensors + model.safetensors.index.json).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../core/errors.ts';
import { DTYPE_BYTES, formatShape, isDType, printable, shapeElements, type DType, type TypedArray } from './safetensors-header.ts';
import { writeAll, writeAtomically } from './safetensors-file.ts';
import { INDEX_FILE, SINGLE_FILE } from './safetensors-sharded.ts';

export interface TensorToWrite { name: string; dtype: DType; shape: number[]; data: TypedArray }

/** HF's default shard size limit ("5GB"). */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

const ARRAY_TYPE: Readonly<Record<DType, { new (n: number): TypedArray; name: string }>> = {
  F32: Float32Array, F16: Uint16Array, BF16: Uint16Array, I8: Int8Array, U8: Uint8Array,
  I16: Int16Array, I32: Int32Array, I64: BigInt64Array,
};

function checkMetadata(where: string, metadata: Record<string, string>): void {
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') fail(where, `metadata value for ${printable(k)} is not a string`);
  }
}

function checkTensors(where: string, tensors: TensorToWrite[]): void {
  const seen = new Set<string>();
  for (const t of tensors) {
    if (typeof t.name !== 'string' || t.name === '__metadata__') fail(where, `invalid tensor name ${printable(String(t.name))}`);
    if (seen.has(t.name)) fail(where, `tensor ${printable(t.name)} appears twice`);
    seen.add(t.name);
    if (!isDType(t.dtype)) fail(where, `unsupported dtype ${printable(String(t.dtype))} for tensor ${printable(t.name)}`);
    const numel = shapeElements(t.shape);
    if (typeof numel === 'string') fail(where, `tensor ${printable(t.name)}: ${numel}`);
    const want = ARRAY_TYPE[t.dtype];
    if (!(t.data instanceof want)) {
      fail(where, `tensor ${printable(t.name)}: ${t.dtype} data must be a ${want.name}, got ${t.data?.constructor?.name ?? typeof t.data}`);
    }
    if (t.data.length !== numel) {
      fail(where, `tensor ${printable(t.name)}: shape ${formatShape(t.shape)} has ${numel} elements but data has ${t.data.length}`);
    }
  }
}

function tensorBytes(t: TensorToWrite): number {
  return t.data.length * DTYPE_BYTES[t.dtype];
}

/** The length-prefixed header: 8-byte little-endian length, then JSON padded with spaces to 8 bytes. */
function encodeHeader(metadata: Record<string, string>, placed: { t: TensorToWrite; begin: number }[]): Buffer {
  // Built as text so that any tensor name (even "__proto__") is written as given.
  const parts = [`${JSON.stringify('__metadata__')}:${JSON.stringify(metadata)}`];
  for (const { t, begin } of placed) {
    const entry = { dtype: t.dtype, shape: t.shape, data_offsets: [begin, begin + tensorBytes(t)] };
    parts.push(`${JSON.stringify(t.name)}:${JSON.stringify(entry)}`);
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const out = Buffer.alloc(8 + padded, 0x20);
  out.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(out, 8);
  return out;
}

/** Write one .safetensors file atomically. Data is laid out widest dtype first, then by name. */
export function writeSafetensors(file: string, tensors: TensorToWrite[], metadata: Record<string, string> = {}): void {
  checkMetadata(file, metadata);
  checkTensors(file, tensors);
  const ordered = tensors.slice().sort(
    (a, b) => DTYPE_BYTES[b.dtype] - DTYPE_BYTES[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  let offset = 0;
  const placed = ordered.map((t) => {
    const p = { t, begin: offset };
    offset += tensorBytes(t);
    return p;
  });
  const header = encodeHeader(metadata, placed);
  writeAtomically(file, (fd) => {
    writeAll(fd, header);
    for (const { t } of placed) writeAll(fd, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  });
}

/**
 * Write `tensors` into `dir` in shards of at most maxShardBytes of tensor data each (a tensor
 * larger than that gets a shard of its own), packed in the given order. One shard → model.safetensors
 * and no index. Returns the written shard paths; the index is written last.
 */
export function writeSafetensorsSharded(
  dir: string,
  tensors: TensorToWrite[],
  opts: { maxShardBytes?: number; metadata?: Record<string, string> } = {},
): string[] {
  const maxShardBytes = opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  const metadata = opts.metadata ?? {};
  if (!(maxShardBytes > 0)) fail(dir, `maxShardBytes must be positive, got ${maxShardBytes}`);
  checkMetadata(dir, metadata);
  checkTensors(dir, tensors);
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    fail(dir, `cannot create directory (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }

  const groups: TensorToWrite[][] = [];
  let current: TensorToWrite[] = [], currentBytes = 0;
  for (const t of tensors) {
    const b = tensorBytes(t);
    if (current.length > 0 && currentBytes + b > maxShardBytes) {
      groups.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(t);
    currentBytes += b;
  }
  if (current.length > 0 || groups.length === 0) groups.push(current);

  const indexPath = path.join(dir, INDEX_FILE);
  if (groups.length === 1) {
    const file = path.join(dir, SINGLE_FILE);
    writeSafetensors(file, groups[0]!, metadata);
    fs.rmSync(indexPath, { force: true }); // a stale index would shadow the new file
    return [file];
  }

  const n = groups.length;
  const pad = (i: number) => String(i).padStart(5, '0');
  const files: string[] = [];
  const weightMap: Record<string, string> = {};
  groups.forEach((group, i) => {
    const shardName = `model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
    const file = path.join(dir, shardName);
    writeSafetensors(file, group, metadata);
    files.push(file);
    for (const t of group) Object.defineProperty(weightMap, t.name, { value: shardName, enumerable: true });
  });
  const sortedMap: Record<string, string> = {};
  for (const name of Object.keys(weightMap).sort()) {
    Object.defineProperty(sortedMap, name, { value: weightMap[name], enumerable: true });
  }
  const totalSize = tensors.reduce((s, t) => s + tensorBytes(t), 0);
  const index = { metadata: { ...metadata, total_size: totalSize }, weight_map: sortedMap };
  writeAtomically(indexPath, (fd) => writeAll(fd, Buffer.from(JSON.stringify(index, null, 2) + '\n', 'utf8')));
  return files;
}
