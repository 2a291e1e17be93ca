// Integrity of a quantized checkpoint: a SHA-256 per quantized layer over its four tensors (name,
// dtype, shape and bytes of qweight, scales, iscales, shift), recorded by the quantizer in the
// safetensors __metadata__ under `intscale_sha256` (a JSON object: layer name → hex digest).
// Loaders refuse a layer whose tensors do not hash to the recorded value (a flipped bit or an edited
// value), a layer with no recorded digest, and a recorded layer that is not in the file.
import { createHash } from 'node:crypto';
import { fail } from '../core/errors.ts';
import type { TensorSource, TypedArray } from './safetensors.ts';

export const DIGEST_KEY = 'intscale_sha256';
export const LAYER_SUFFIXES = ['qweight', 'scales', 'iscales', 'shift'] as const;

export interface DigestInput { name: string; dtype: string; shape: readonly number[]; data: TypedArray }

/** The hex SHA-256 of one layer's tensors (in LAYER_SUFFIXES order). */
export function layerDigest(tensors: readonly DigestInput[]): string {
  const h = createHash('sha256');
  for (const t of tensors) {
    h.update(`${t.name}\0${t.dtype}\0${t.shape.join(',')}\0`);
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return h.digest('hex');
}

/** The metadata entry recording the digests of `layers` (name → its tensors). */
export function digestMetadata(layers: ReadonlyMap<string, readonly DigestInput[]>): Record<string, string> {
  const map: Record<string, string> = {};
  for (const [name, tensors] of layers) Object.defineProperty(map, name, { value: layerDigest(tensors), enumerable: true });
  return { [DIGEST_KEY]: JSON.stringify(map) };
}

const parsed = new WeakMap<TensorSource, Map<string, string>>();

/** The recorded digests of an open checkpoint (parsed once per source); `where` names it in errors. */
export function recordedDigests(src: TensorSource, where: string): Map<string, string> {
  let m = parsed.get(src);
  if (m) return m;
  const text = src.metadata[DIGEST_KEY];
  if (text === undefined) fail(where, `no ${DIGEST_KEY} entry in the safetensors metadata (not written by intscale, or the header was rewritten): re-quantize the model`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    fail(where, `the ${DIGEST_KEY} metadata entry is not valid JSON`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(where, `the ${DIGEST_KEY} metadata entry is not a JSON object`);
  m = new Map();
  for (const [k, v] of Object.entries(json as Record<string, unknown>)) {
    if (typeof v !== 'string' || !/^[0-9a-f]{64}$/.test(v)) fail(where, `the ${DIGEST_KEY} metadata entry for ${k.slice(0, 80)} is not a SHA-256 hex digest`);
    m.set(k, v);
  }
  parsed.set(src, m);
  return m;
}

/** Refuse the layer `name` unless its tensors (as read) hash to the recorded digest. */
export function verifyLayerDigest(src: TensorSource, name: string, tensors: readonly DigestInput[], where: string): void {
  const want = recordedDigests(src, where).get(name);
  if (want === undefined) fail(name, `no recorded checksum for this layer in ${DIGEST_KEY} (tensors added to the checkpoint by hand?)`);
  if (layerDigest(tensors) !== want) fail(name, 'its tensors do not match the checksum recorded when it was quantized (file corrupted or edited)');
}
