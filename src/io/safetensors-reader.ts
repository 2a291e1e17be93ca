// Lazy reader of one .safetensors file: parses only the header at open, then reads each tensor
// with positioned reads on demand (never the whole file), in its native dtype or as fp32.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { fail } from '../core/errors.ts';
import { bf16ArrayToF32, f16ArrayToF32 } from '../core/dtype.ts';
import {
  MAX_HEADER_BYTES, parseHeaderJson, printable,
  type DType, type TensorInfo, type TypedArray,
} from './safetensors-header.ts';
import { openForReading, readExact } from './safetensors-file.ts';

export interface TensorSource {
  readonly metadata: Record<string, string>;
  /** sorted */
  names(): string[];
  has(name: string): boolean;
  /** fail() with the file and the tensor name if missing */
  info(name: string): TensorInfo;
  /** native dtype: F16/BF16 → Uint16Array of raw bits, I64 → BigInt64Array */
  read(name: string): TypedArray;
  /** F32/F16/BF16 converted; integer dtypes converted numerically */
  readF32(name: string): Float32Array;
  close(): void;
}

/** A typed array of `dtype` over all of `buf` (which owns its ArrayBuffer from offset 0). */
export function typedView(dtype: DType, buf: Buffer): TypedArray {
  const ab = buf.buffer, off = buf.byteOffset, len = buf.byteLength;
  switch (dtype) {
    case 'F32': return new Float32Array(ab, off, len / 4);
    case 'F16':
    case 'BF16': return new Uint16Array(ab, off, len / 2);
    case 'I8': return new Int8Array(ab, off, len);
    case 'U8': return new Uint8Array(ab, off, len);
    case 'I16': return new Int16Array(ab, off, len / 2);
    case 'I32': return new Int32Array(ab, off, len / 4);
    case 'I64': return new BigInt64Array(ab, off, len / 8);
  }
}

/** Convert a tensor read in `dtype` to fp32 (exact for 16-bit floats and small integers). */
export function toF32(dtype: DType, data: TypedArray): Float32Array {
  switch (dtype) {
    case 'F32': return data as Float32Array;
    case 'F16': return f16ArrayToF32(data as Uint16Array);
    case 'BF16': return bf16ArrayToF32(data as Uint16Array);
    case 'I64': {
      const src = data as BigInt64Array, out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = Number(src[i]!);
      return out;
    }
    default: return Float32Array.from(data as Exclude<TypedArray, BigInt64Array>);
  }
}

export function openSafetensors(file: string): TensorSource {
  if (os.endianness() !== 'LE') fail(file, 'safetensors is little-endian; big-endian hosts are not supported');
  const { fd, size } = openForReading(file);
  let parsed;
  try {
    if (size < 8) fail(file, `file is ${size} bytes, too short for a safetensors header`);
    const headerLength = readExact(fd, file, 0, 8).readBigUInt64LE(0);
    if (headerLength > BigInt(MAX_HEADER_BYTES)) {
      fail(file, `header length ${headerLength} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`);
    }
    const n = Number(headerLength);
    if (8 + n > size) fail(file, `header length ${n} runs past the end of the ${size}-byte file (truncated?)`);
    let json: string;
    try {
      json = new TextDecoder('utf-8', { fatal: true }).decode(readExact(fd, file, 8, n));
    } catch (e) {
      if ((e as Error).name === 'IntscaleError') throw e;
      fail(file, 'header is not valid UTF-8');
    }
    parsed = parseHeaderJson(file, json, 8 + n, size - 8 - n);
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  const { metadata, tensors } = parsed;
  const sortedNames = [...tensors.keys()].sort();
  let closed = false;

  const info = (name: string): TensorInfo => {
    const t = tensors.get(name);
    if (!t) fail(file, `no tensor named ${printable(name)}`);
    return t;
  };
  const read = (name: string): TypedArray => {
    const t = info(name);
    if (closed) fail(file, `cannot read tensor ${printable(name)}: the file was closed`);
    return typedView(t.dtype, readExact(fd, file, t.offset, t.byteLength));
  };
  return {
    metadata,
    names: () => sortedNames.slice(),
    has: (name) => tensors.has(name),
    info: (name) => ({ ...info(name), shape: info(name).shape.slice() }),
    read,
    readF32: (name) => toF32(info(name).dtype, read(name)),
    close: () => {
      if (!closed) fs.closeSync(fd);
      closed = true;
    },
  };
}
