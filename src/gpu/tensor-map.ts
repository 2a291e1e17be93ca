// tensor-map.ts — the TMA descriptors (CUtensorMap) our Hopper kernels take as a by-value parameter:
// a 2-D row-major tensor of `rows` rows of `cols` elements, read in boxes of boxRows × boxCols with
// the 128-byte swizzle the wgmma smem descriptors expect. Encoding is host-only (no GPU work), so a
// launch encodes its own map for the buffer it reads; a captured graph keeps the bytes it was given.
import koffi from 'koffi';
import { fail } from '../core/errors.ts';
import { check, type CudaApi } from './ffi/cuda.ts';

/** cuda.h's CUtensorMapDataType values used here. */
export const TMA_UINT8 = 0;
export const TMA_FLOAT16 = 6;
const ELEMENT_BYTES: Record<number, number> = { [TMA_UINT8]: 1, [TMA_FLOAT16]: 2 };
const SWIZZLE_128B = 3;
const L2_PROMOTION_256B = 3;
const INTERLEAVE_NONE = 0;
const OOB_FILL_ZERO = 0;
/** sizeof(CUtensorMap). */
export const TENSOR_MAP_BYTES = 128;

export interface TensorMap2dSpec {
  /** Device address of element (0, 0); 16-byte aligned. */
  address: bigint;
  dtype: typeof TMA_UINT8 | typeof TMA_FLOAT16;
  rows: number;
  cols: number;
  /** Rows and elements per box; boxCols · element bytes must be 128 (the swizzle's span). */
  boxRows: number;
  boxCols: number;
}

/** The 128 bytes of a CUtensorMap for `spec` (rows past `rows` read as zeros). */
export function encodeTensorMap2d(api: CudaApi, spec: TensorMap2dSpec): Buffer {
  const what = 'TMA tensor map';
  if (!api.cuTensorMapEncodeTiled) fail(what, 'this CUDA driver has no cuTensorMapEncodeTiled (CUDA 12 or newer is needed for the sm_90a kernels)');
  const eb = ELEMENT_BYTES[spec.dtype]!;
  const rowBytes = spec.cols * eb;
  if (spec.address % 16n !== 0n) fail(what, `the tensor's address 0x${spec.address.toString(16)} is not 16-byte aligned`);
  if (rowBytes % 16 !== 0) fail(what, `a row of ${rowBytes} bytes is not a multiple of 16`);
  if (spec.boxCols * eb !== 128) fail(what, `a box row of ${spec.boxCols * eb} bytes does not match the 128-byte swizzle`);
  if (!(spec.boxRows >= 1 && spec.boxRows <= 256)) fail(what, `${spec.boxRows} box rows (1 to 256)`);
  // the driver writes the map to a 64-byte aligned address
  const scratch = Buffer.alloc(TENSOR_MAP_BYTES + 64);
  const offset = Number((64n - (koffi.address(scratch) as bigint) % 64n) % 64n);
  const map = scratch.subarray(offset, offset + TENSOR_MAP_BYTES);
  check(api.cuTensorMapEncodeTiled(map, spec.dtype, 2, spec.address,
    new BigUint64Array([BigInt(spec.cols), BigInt(spec.rows)]), new BigUint64Array([BigInt(rowBytes)]),
    new Uint32Array([spec.boxCols, spec.boxRows]), new Uint32Array([1, 1]),
    INTERLEAVE_NONE, SWIZZLE_128B, L2_PROMOTION_256B, OOB_FILL_ZERO),
  `cuTensorMapEncodeTiled(${spec.rows} x ${spec.cols}, box ${spec.boxRows} x ${spec.boxCols})`);
  return Buffer.from(map);
}
