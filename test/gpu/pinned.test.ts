// Pinned host memory and async copies: HostBuffer views, free() and the shared copy range check
// on the CPU (over libc malloc memory); on a GPU, a seeded random round trip pinned → device →
// device → pinned on a stream, bit for bit, plus the one-line bounds errors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import koffi from 'koffi';
import { IntscaleError } from '../../src/core/errors.ts';
import { Rng } from '../../src/core/rng.ts';
import { HostBuffer, checkCopyRange } from '../../src/gpu/memory.ts';
import { Gpu } from '../../src/gpu/runtime.ts';

const reason = Gpu.unavailableReason();
const skip = reason ? `skipped: ${reason}` : false;

function randomBytes(rng: Rng, out: Uint8Array): void {
  for (let i = 0; i < out.length; i++) out[i] = rng.nextU32() & 0xff;
}

/** libc malloc/free, to exercise HostBuffer without a GPU (undefined where libc is not loadable). */
function libcHeap(): { malloc(bytes: number): bigint; free(ptr: bigint): void } | undefined {
  try {
    const libc = koffi.load('libc.so.6');
    const malloc = libc.func('malloc', 'void *', ['size_t']) as (bytes: number) => bigint;
    const free = libc.func('free', 'void', ['void *']) as (ptr: bigint) => void;
    return { malloc, free };
  } catch {
    return undefined;
  }
}
const heap = libcHeap();

test('HostBuffer: views share the memory, at() is bounded, free() is idempotent (CPU)',
  { skip: heap ? false : 'skipped: libc.so.6 not loadable' }, () => {
    const bytes = 4096 + 12;
    const releases: bigint[] = [];
    const h = new HostBuffer(heap!.malloc(bytes), bytes, (p) => { releases.push(p); heap!.free(p); });
    const rng = new Rng(7);
    randomBytes(rng, h.u8);
    const copy = Uint8Array.from(h.u8);
    assert.equal(h.u8.length, bytes);
    assert.deepEqual(h.as(Uint32Array), new Uint32Array(copy.buffer));
    h.as(Int32Array)[5] = -123456789;
    assert.deepEqual(h.u8.subarray(20, 24), new Uint8Array(new Int32Array([-123456789]).buffer));
    assert.equal(h.at(100), h.ptr + 100n);
    assert.throws(() => h.at(bytes + 1), (e) => e instanceof IntscaleError && /outside/.test(e.message));
    assert.throws(() => h.as(Float64Array), (e) => e instanceof IntscaleError && /8-byte elements/.test(e.message));
    h.free();
    h.free();
    assert.deepEqual(releases, [h.ptr]);
    assert.ok(h.freed);
    assert.throws(() => h.u8, (e) => e instanceof IntscaleError && /was freed/.test(e.message));
  });

test('checkCopyRange: sizes, offsets and freed buffers give one-line IntscaleErrors', () => {
  const dst = { bytes: 100, freed: false };
  const src = { bytes: 60, freed: false };
  checkCopyRange('t', 60, dst, 40, src, 0);
  checkCopyRange('t', 0, dst, 100, src, 60);
  const bad: [number, number, number, RegExp][] = [
    [61, 0, 0, /61 bytes at 0 exceed the 60-byte source/],
    [50, 51, 0, /50 bytes at 51 do not fit in the 100-byte destination/],
    [10, 0, 51, /exceed the 60-byte source/],
    [-1, 0, 0, /bad size -1/],
    [1.5, 0, 0, /bad size 1.5/],
    [1, -2, 0, /bad destination offset -2/],
    [1, 0, Number.NaN, /bad source offset NaN/],
  ];
  for (const [bytes, d, s, re] of bad) {
    assert.throws(() => checkCopyRange('where', bytes, dst, d, src, s),
      (e) => e instanceof IntscaleError && e.message.startsWith('where: ') && re.test(e.message) && !e.message.includes('\n'),
      `${bytes} @ ${d} <- ${s}`);
  }
  assert.throws(() => checkCopyRange('w', 1, { bytes: 8, freed: true }, 0, src, 0), /destination buffer was freed/);
  assert.throws(() => checkCopyRange('w', 1, dst, 0, { bytes: 8, freed: true }, 0), /source buffer was freed/);
});

test('pinned → device → device → pinned on a stream is bit-exact', { skip }, () => {
  const gpu = Gpu.open();
  const n = 3_000_017;
  const rng = new Rng(11);
  const a = gpu.allocHost(n);
  const b = gpu.allocHost(n);
  randomBytes(rng, a.u8);
  randomBytes(rng, b.u8); // poison: a copy that did not happen shows up
  const d1 = gpu.alloc(n);
  const d2 = gpu.alloc(n);
  const stream = gpu.stream();
  gpu.copyToDeviceAsync(d1, a, stream);
  stream.sync();
  gpu.copy(d2, d1); // legacy default stream; our blocking stream orders with it
  gpu.copyToHostAsync(b, d2, stream);
  stream.sync();
  assert.equal(Buffer.compare(Buffer.from(a.u8.buffer, 0, n), Buffer.from(b.u8.buffer, 0, n)), 0);
  // Offsets: 1000 bytes from device offset 33 into pinned offset 17, the rest untouched.
  const c = gpu.allocHost(2048);
  c.u8.fill(0x5a);
  gpu.copyToHostAsync(c, d2, stream, 1000, 17, 33);
  gpu.copyToDeviceAsync(d1, c, stream, 64, n - 64, 1100); // device tail ← 64 bytes of 0x5a
  gpu.copyToHostAsync(b, d1, stream, 64, 0, n - 64);
  stream.sync();
  assert.deepEqual(c.u8.subarray(17, 1017), a.u8.subarray(33, 1033));
  assert.ok(c.u8.subarray(0, 17).every((v) => v === 0x5a) && c.u8.subarray(1017).every((v) => v === 0x5a));
  assert.ok(b.u8.subarray(0, 64).every((v) => v === 0x5a));
  // A typed view reads the same bytes the device wrote.
  const words = gpu.allocHost(4096);
  gpu.copyToHostAsync(words, d2, stream);
  stream.sync();
  assert.deepEqual(words.as(Int32Array), new Int32Array(Uint8Array.from(a.u8.subarray(0, 4096)).buffer));
  for (const h of [a, b, c, words]) h.free();
  a.free(); // twice is fine
  stream.destroy();
  d1.free();
  d2.free();
});

test('async copy bounds and allocHost sizes are one-line IntscaleErrors', { skip }, () => {
  const gpu = Gpu.open();
  const stream = gpu.stream();
  const h = gpu.allocHost(1024);
  const d = gpu.alloc(512);
  const isErr = (re: RegExp) => (e: unknown) => e instanceof IntscaleError && re.test(e.message);
  assert.throws(() => gpu.copyToDeviceAsync(d, h, stream, 1024), isErr(/^Gpu\.copyToDeviceAsync: 1024 bytes at 0 do not fit in the 512-byte destination/));
  assert.throws(() => gpu.copyToHostAsync(h, d, stream, 600), isErr(/^Gpu\.copyToHostAsync: 600 bytes at 0 exceed the 512-byte source/));
  assert.throws(() => gpu.copyToHostAsync(h, d, stream, 100, 1000), isErr(/do not fit in the 1024-byte destination/));
  assert.throws(() => gpu.copyToDeviceAsync(d, h, stream, -5), isErr(/bad size -5/));
  assert.throws(() => gpu.allocHost(0), isErr(/^Gpu\.allocHost: bad size 0/));
  assert.throws(() => gpu.allocHost(2.5), isErr(/bad size 2\.5/));
  gpu.copyToDeviceAsync(d, h, stream); // default size: the smaller buffer (512 bytes)
  stream.sync();
  h.free();
  assert.throws(() => gpu.copyToDeviceAsync(d, h, stream), isErr(/source buffer was freed/));
  assert.throws(() => h.as(Uint8Array), isErr(/was freed/));
  d.free();
  const small = gpu.allocHost(8);
  assert.throws(() => gpu.copyToHostAsync(small, d, stream), isErr(/source buffer was freed/));
  small.free();
  stream.destroy();
});
