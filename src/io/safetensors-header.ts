// Safetensors header: dtypes, the TensorInfo record, and parsing + validating a file's header.
// Every problem becomes one `fail(file, ...)` line; nothing here reads tensor data.
import { fail } from '../core/errors.ts';

export type DType = 'F32' | 'F16' | 'BF16' | 'I8' | 'U8' | 'I16' | 'I32' | 'I64';
export type TypedArray =
  | Float32Array | Uint16Array | Int8Array | Uint8Array | Int16Array | Int32Array | BigInt64Array;

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  file: string;
  /** absolute byte offset in file */
  offset: number;
  byteLength: number;
}

export const DTYPE_BYTES: Readonly<Record<DType, number>> = {
  F32: 4, F16: 2, BF16: 2, I8: 1, U8: 1, I16: 2, I32: 4, I64: 8,
};

/** Largest header we accept (the format's own limit is 100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

export function isDType(s: unknown): s is DType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}

/** A string safe to put in a one-line message: control characters escaped, long ones cut. */
export function printable(s: string): string {
  const cut = s.length > 80 ? s.slice(0, 80) + '…' : s;
  return /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(cut) ? JSON.stringify(cut) : cut;
}

/** A short description of a JSON value for messages (never serializes nested content). */
function describe(v: unknown): string {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return `the string ${printable(v)}`;
  if (v === null) return 'null';
  return Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : typeof v;
}

/** `[a, b, c]`, cut after 8 dimensions. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.slice(0, 8).join(', ')}${shape.length > 8 ? ', …' : ''}]`;
}

/** Number of elements of a shape, or a problem description. */
export function shapeElements(shape: unknown): number | string {
  if (!Array.isArray(shape)) return `shape is not an array (${describe(shape)})`;
  let n = 1;
  for (let i = 0; i < shape.length; i++) {
    const d: unknown = shape[i];
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      return `shape is not a list of non-negative integers (element ${i} is ${describe(d)})`;
    }
    n *= d;
    if (!Number.isSafeInteger(n)) return `shape ${formatShape(shape as number[])} is too large`;
  }
  return n;
}

export interface ParsedHeader {
  metadata: Record<string, string>;
  tensors: Map<string, TensorInfo>;
  /** first byte of the data region (8 + header length) */
  dataStart: number;
}

/**
 * Validate the JSON header `json` of `file` whose data region holds `dataBytes` bytes and starts
 * at absolute offset `dataStart`.
 */
export function parseHeaderJson(file: string, json: string, dataStart: number, dataBytes: number): ParsedHeader {
  let root: unknown;
  try {
    root = JSON.parse(json);
  } catch (e) {
    fail(file, `header is not valid JSON (${printable((e as Error).message)})`);
  }
  if (typeof root !== 'object' || root === null || Array.isArray(root)) fail(file, 'header is not a JSON object');

  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  const spans: { begin: number; end: number; name: string }[] = [];

  for (const [name, entry] of Object.entries(root as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail(file, '__metadata__ is not an object');
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(file, `__metadata__ value for ${printable(k)} is not a string`);
        // defineProperty: a key like __proto__ must stay a plain entry
        Object.defineProperty(metadata, k, { value: v, enumerable: true, writable: true, configurable: true });
      }
      continue;
    }
    const where = `tensor ${printable(name)}`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail(file, `${where}: entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (typeof dtype !== 'string') fail(file, `${where}: dtype missing or not a string`);
    if (!isDType(dtype)) fail(file, `unsupported dtype ${printable(dtype)} for tensor ${printable(name)}`);
    const numel = shapeElements(shape);
    if (typeof numel === 'string') fail(file, `${where}: ${numel}`);
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)
    ) {
      fail(file, `${where}: data_offsets must be two non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end) fail(file, `${where}: data_offsets [${begin}, ${end}] end before they begin`);
    if (end > dataBytes) {
      fail(file, `${where}: data_offsets [${begin}, ${end}] outside the data region of ${dataBytes} bytes (truncated file?)`);
    }
    const byteLength = numel * DTYPE_BYTES[dtype];
    if (end - begin !== byteLength) {
      fail(file, `${where}: data_offsets span ${end - begin} bytes but shape ${formatShape(shape as number[])} of ${dtype} needs ${byteLength}`);
    }
    tensors.set(name, {
      name, dtype, shape: (shape as number[]).slice(), file, offset: dataStart + begin, byteLength,
    });
    spans.push({ begin, end, name });
  }

  // Like the reference implementation: the tensors tile the data region exactly, from byte 0 to
  // its end, with no overlap, no hole and nothing after the last tensor.
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  for (let i = 0; i < spans.length; i++) {
    const cur = spans[i]!;
    if (i > 0 && cur.begin < spans[i - 1]!.end) fail(file, `tensors ${printable(spans[i - 1]!.name)} and ${printable(cur.name)} overlap`);
    if (cur.begin > covered) fail(file, `${cur.begin - covered} bytes before tensor ${printable(cur.name)} belong to no tensor (data_offsets leave a hole)`);
    covered = Math.max(covered, cur.end);
  }
  if (covered !== dataBytes) fail(file, `${dataBytes - covered} trailing bytes after the last tensor (the data region must end where the last tensor ends)`);
  return { metadata, tensors, dataStart };
}
