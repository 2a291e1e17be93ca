// The GPU runtime on a real GPU: memory round trips, memset, NVRTC-compiled kernels with every
// argument kind, > 48 KiB dynamic shared memory, streams, events and CUDA graphs.
// Skipped (with the reason) where no GPU is present.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { doctorReport } from '../../src/cli/doctor.ts';
import { Rng } from '../../src/core/rng.ts';
import { Gpu } from '../../src/gpu/runtime.ts';

const reason = Gpu.unavailableReason();
const skip = reason ? `skipped: ${reason}` : false;

const SOURCE = `
extern "C" __global__ void args_kernel(const float* x, float* y, int* z, float a, int n, unsigned int u,
                                        unsigned long long v) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) { y[i] = __fmul_rn(x[i], a); z[i] = i + (int)u + (int)(v >> 32); }
}
extern "C" __global__ void smem_reverse(const int* x, int* y, int n) {
  extern __shared__ int buf[];
  for (int i = threadIdx.x; i < n; i += blockDim.x) buf[i] = x[i];
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += blockDim.x) y[i] = buf[n - 1 - i];
}
extern "C" __global__ void add_one(int* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] += 1;
}
`;

test('upload/download round trip, memset, copy', { skip }, () => {
  const gpu = Gpu.open();
  assert.match(gpu.arch, /^sm_\d+a?$/);
  const rng = new Rng(1);
  const data = new Float32Array(rng.normals(100_003, 1));
  const buf = gpu.upload(data);
  assert.deepEqual(gpu.download(buf, new Float32Array(data.length)), data);
  const other = gpu.alloc(buf.bytes);
  gpu.copy(other, buf);
  assert.deepEqual(gpu.download(other, new Float32Array(data.length)), data);
  gpu.memset(buf, 0xab);
  assert.ok(gpu.download(buf, new Uint8Array(buf.bytes)).every((b) => b === 0xab));
  buf.free();
  other.free();
  assert.throws(() => buf.free(), /freed twice/);
});

test('a kernel gets ptr/f32/i32/u32/u64 arguments right (bit-exact fp32 multiply)', { skip }, () => {
  const gpu = Gpu.open();
  const k = gpu.compileSource(SOURCE, 'runtime-test.cu').fn('args_kernel');
  const n = 5000;
  const rng = new Rng(2);
  const x = new Float32Array(rng.normals(n, 3));
  const a = Math.fround(1.7320508);
  const dx = gpu.upload(x);
  const dy = gpu.alloc(n * 4);
  const dz = gpu.alloc(n * 4);
  gpu.memset(dy, 0xff);
  gpu.memset(dz, 0xff);
  k.launch({ grid: Math.ceil(n / 128), block: 128 },
    [{ ptr: dx }, { ptr: dy }, { ptr: dz }, { f32: a }, { i32: n }, { u32: 1000 }, { u64: 7n << 32n }]);
  const y = gpu.download(dy, new Float32Array(n));
  const z = gpu.download(dz, new Int32Array(n));
  for (let i = 0; i < n; i++) {
    assert.equal(y[i], Math.fround(x[i]! * a), `y[${i}]`);
    assert.equal(z[i], i + 1007, `z[${i}]`);
  }
  const r = k.resources;
  assert.ok(r.registers > 0 && r.localBytes === 0);
  for (const b of [dx, dy, dz]) b.free();
});

test('dynamic shared memory above 48 KiB (100 KiB)', { skip }, () => {
  const gpu = Gpu.open();
  const k = gpu.compileSource(SOURCE, 'runtime-test.cu').fn('smem_reverse');
  const n = 25_600;
  const x = Int32Array.from({ length: n }, (_, i) => i * 7 - 3);
  const dx = gpu.upload(x);
  const dy = gpu.alloc(n * 4);
  gpu.memset(dy, 0);
  k.launch({ grid: 1, block: 256, smem: n * 4 }, [{ ptr: dx }, { ptr: dy }, { i32: n }]);
  const y = gpu.download(dy, new Int32Array(n));
  for (let i = 0; i < n; i++) assert.equal(y[i], x[n - 1 - i]);
  dx.free();
  dy.free();
});

test('CUDA graph replays captured launches; events time them', { skip }, () => {
  const gpu = Gpu.open();
  const k = gpu.compileSource(SOURCE, 'runtime-test.cu').fn('add_one');
  const n = 1 << 16;
  const dy = gpu.alloc(n * 4);
  gpu.memset(dy, 0);
  const stream = gpu.stream();
  const graph = gpu.capture(stream, () => {
    for (let r = 0; r < 3; r++) k.launch({ grid: n / 256, block: 256, stream }, [{ ptr: dy }, { i32: n }]);
  });
  // Capturing runs nothing.
  stream.sync();
  assert.equal(gpu.download(dy, new Int32Array(n))[0], 0);
  const start = gpu.event();
  const end = gpu.event();
  start.record(stream);
  graph.launch(stream);
  graph.launch(stream);
  end.record(stream);
  end.sync();
  const ms = end.elapsedMsSince(start);
  assert.ok(ms > 0 && ms < 1000, `elapsed ${ms} ms`);
  assert.ok(gpu.download(dy, new Int32Array(n)).every((v) => v === 6));
  graph.destroy();
  stream.destroy();
  start.destroy();
  end.destroy();
  dy.free();
});

test('intscale doctor names the GPU, driver and every library with its version', { skip }, () => {
  const lines = doctorReport();
  const gpu = Gpu.open();
  assert.match(lines[0]!, new RegExp(`^GPU +${gpu.name.replace(/[()]/g, '.')} \\(cc ${gpu.cc.join('\\.')}, ${gpu.arch}, ${gpu.smCount} SMs`));
  assert.match(lines[1]!, /^driver +CUDA \d+\.\d+/);
  assert.match(lines.find((l) => l.startsWith('libcuda'))!, /found/);
  assert.match(lines.find((l) => l.startsWith('NVRTC'))!, /found .*\(version \d+\.\d+\)/);
  assert.match(lines.find((l) => l.startsWith('cuBLASLt'))!, /found .*\(version \d+\.\d+\.\d+\)/);
});
