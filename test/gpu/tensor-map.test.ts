// CPU tests (no GPU) of the TMA descriptors of tile w: encodeTensorMap2d hands the driver the
// documented dims / strides / box / swizzle and a 64-byte aligned output, refuses what the TMA unit
// cannot read in one line, and W4GemmLaunch passes maps of exactly its activation and output
// buffers (rows M; box = the token tile × 128 bytes) as the last parameters of the tile w entries only.
import test from 'node:test';
import assert from 'node:assert/strict';
import koffi from 'koffi';
import { IntscaleError } from '../../src/core/errors.ts';
import type { CudaApi } from '../../src/gpu/ffi/cuda.ts';
import type { Gpu, KernelArg } from '../../src/gpu/runtime.ts';
import { TENSOR_MAP_BYTES, TMA_FLOAT16, TMA_UINT8, encodeTensorMap2d, type TensorMap2dSpec } from '../../src/gpu/tensor-map.ts';
import { W4GemmLaunch } from '../../src/gpu/kernels/w4-gemm-launch.ts';

interface EncodeCall {
  outAligned: boolean;
  dtype: number; rank: number; address: bigint;
  dims: bigint[]; strides: bigint[]; box: number[]; elementStrides: number[];
  interleave: number; swizzle: number; l2: number; oob: number;
}

/** A driver whose cuTensorMapEncodeTiled records its arguments and writes a recognizable map. */
function fakeApi(calls: EncodeCall[]): CudaApi {
  return {
    cuTensorMapEncodeTiled(map: Buffer, dtype: number, rank: number, address: bigint, dims: BigUint64Array, strides: BigUint64Array,
      box: Uint32Array, es: Uint32Array, interleave: number, swizzle: number, l2: number, oob: number) {
      calls.push({ outAligned: (koffi.address(map) as bigint) % 64n === 0n, dtype, rank, address, dims: [...dims], strides: [...strides],
        box: [...box], elementStrides: [...es], interleave, swizzle, l2, oob });
      for (let i = 0; i < map.length; ++i) map[i] = (i * 7 + 3) & 255;
      return 0;
    },
  } as unknown as CudaApi;
}

const int8Spec: TensorMap2dSpec = { address: 0x7f0000001000n, dtype: TMA_UINT8, rows: 300, cols: 4096, boxRows: 128, boxCols: 128 };

test('encodeTensorMap2d: K-major int8 / fp16 maps (dims inner first, row stride in bytes, 128B swizzle, zero fill) into a 64-byte aligned map', () => {
  const calls: EncodeCall[] = [];
  const map = encodeTensorMap2d(fakeApi(calls), int8Spec);
  encodeTensorMap2d(fakeApi(calls), { ...int8Spec, dtype: TMA_FLOAT16, cols: 11008, boxRows: 64, boxCols: 64 });
  assert.equal(map.length, TENSOR_MAP_BYTES);
  assert.deepEqual([...map.subarray(0, 4)], [3, 10, 17, 24], 'the bytes the driver wrote');
  assert.deepEqual(calls.map((c) => ({ ...c, address: c.address.toString(16) })), [
    { outAligned: true, dtype: 0, rank: 2, address: '7f0000001000', dims: [4096n, 300n], strides: [4096n], box: [128, 128],
      elementStrides: [1, 1], interleave: 0, swizzle: 3, l2: 3, oob: 0 },
    { outAligned: true, dtype: 6, rank: 2, address: '7f0000001000', dims: [11008n, 300n], strides: [22016n], box: [64, 64],
      elementStrides: [1, 1], interleave: 0, swizzle: 3, l2: 3, oob: 0 },
  ]);
});

test('encodeTensorMap2d refuses in one line what TMA cannot read, before calling the driver', () => {
  const refuse = (spec: TensorMap2dSpec, api: CudaApi, re: RegExp) =>
    assert.throws(() => encodeTensorMap2d(api, spec), (e: unknown) => e instanceof IntscaleError && re.test(e.message) && !e.message.includes('\n'));
  const calls: EncodeCall[] = [];
  refuse({ ...int8Spec, address: int8Spec.address + 8n }, fakeApi(calls), /not 16-byte aligned/);
  refuse({ ...int8Spec, cols: 4100 }, fakeApi(calls), /4100 bytes is not a multiple of 16/);
  refuse({ ...int8Spec, boxCols: 64 }, fakeApi(calls), /64 bytes does not match the 128-byte swizzle/);
  refuse({ ...int8Spec, boxRows: 512 }, fakeApi(calls), /512 box rows/);
  refuse(int8Spec, {} as CudaApi, /no cuTensorMapEncodeTiled/);
  assert.equal(calls.length, 0, 'nothing reached the driver');
});

/** A GPU that plans for sm_90a and records launches (no device). */
function fakeGpu(maps: TensorMap2dSpec[], launches: KernelArg[][]): Gpu {
  return {
    smCount: 132, arch: 'sm_90a',
    compile: () => ({ fn: () => ({ launch: (_cfg: unknown, args: KernelArg[]) => launches.push(args), residentBlocks: () => 4 }) }),
    alloc: () => ({ ptr: 0x5000n, free() {} }),
    memset() {},
    tensorMap2d: (spec: TensorMap2dSpec) => { maps.push(spec); return Buffer.alloc(TENSOR_MAP_BYTES, maps.length); },
  } as unknown as Gpu;
}

test('W4GemmLaunch: tile w / w64 entries get the TMA maps of their activation and output buffers as their last parameters (each encoded once per buffer in a row); other tiles none', () => {
  const maps: TensorMap2dSpec[] = [], launches: KernelArg[][] = [];
  const gpu = fakeGpu(maps, launches);
  const ops = (a: bigint) => ({ a, sx: 0x2000n, wp: 0x3000n, gscales: 0x4000n, chan: 0x4800n, out: 0x6000n });
  const cases = [
    { kind: 'w4a8-is' as const, M: 4096, N: 4096, K: 4096, tile: 'w', a: 0x10000n, map: { dtype: TMA_UINT8, rows: 4096, cols: 4096, boxRows: 128, boxCols: 128 } },
    { kind: 'w4a16' as const, M: 40, N: 4096, K: 11008, tile: 'w64', a: 0x20000n, map: { dtype: TMA_FLOAT16, rows: 40, cols: 11008, boxRows: 64, boxCols: 64 } },
    { kind: 'w4a8-fs' as const, M: 4, N: 4096, K: 4096, tile: 'v8', a: 0x30000n, map: undefined },
  ];
  for (const c of cases) {
    const launch = new W4GemmLaunch(gpu, c.kind, 128, c.M, c.N, c.K);
    assert.equal(launch.plan.tile, c.tile);
    const before = maps.length;
    launch.launch(ops(c.a));
    launch.launch(ops(c.a + 0x100n));  // a map per launch: the buffer given
    const [first, second] = launches.splice(0);
    if (c.map === undefined) {
      assert.equal(maps.length, before);
      assert.equal(first!.length, 12);
      continue;
    }
    // (the output buffer is the same in every launch: its map is encoded once)
    const outMap = { dtype: TMA_FLOAT16, rows: c.M, cols: c.N, boxRows: c.map.boxRows, boxCols: 64 };
    assert.deepEqual(maps.slice(before), [{ address: c.a, ...c.map }, { address: 0x6000n, ...outMap }, { address: c.a + 0x100n, ...c.map }]);
    assert.equal(first!.length, 14);
    const [aArg, outArg] = [first![12]!, first![13]!];
    assert.ok('bytes' in aArg && aArg.bytes.length === TENSOR_MAP_BYTES && aArg.bytes[0] === before + 1);
    assert.ok('bytes' in outArg && outArg.bytes[0] === before + 2);
    assert.ok('bytes' in second![12]! && second![12]!.bytes[0] === before + 3);
    assert.ok('bytes' in second![13]! && second![13]!.bytes[0] === before + 2);
    launch.launch(ops(c.a + 0x100n));  // the same buffer again: its map is reused, not encoded again
    assert.equal(maps.length, before + 3);
    const third = launches.splice(0)[0]!;
    assert.ok('bytes' in third[12]! && third[12]!.bytes[0] === before + 3);
  }
});
