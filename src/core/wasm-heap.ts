// The shared WebAssembly memory that the fp32 GEMM kernel (src/core/wasm/matmul.wat) and its
// worker threads operate on: one module instance per thread over the same SharedArrayBuffer-backed
// memory, an allocator for long-lived arrays (weights, KV caches; returned with heapFree) and
// reusable scratch slots.
// A Float32Array that already lives here is used in place; anything else is copied in per call.
import { MATMUL_WASM_BASE64 } from './wasm/matmul-wasm.ts';
import { setFlagsFromString } from 'node:v8';
import { fail } from './errors.ts';

const PAGE = 65536;
const MAX_PAGES = 65536; // 4 GiB: the wasm32 limit
const ALIGN = 64;

// Compile the kernel with the optimizing tier straight away: a long GEMM call that starts in V8's
// baseline (Liftoff) code stays there until it returns, at about half the speed.
setFlagsFromString('--no-liftoff');
export const wasmModule = new WebAssembly.Module(Buffer.from(MATMUL_WASM_BASE64, 'base64'));
export const memory = new WebAssembly.Memory({ initial: 64, maximum: MAX_PAGES, shared: true });

export interface MatmulExports {
  /** y[m, n] = Σ_k x[m, k]·w[n, k] for m in [m0, m1), n in [n0, n1); pointers/strides in bytes. */
  mm(x: number, ldx: number, w: number, ldw: number, y: number, ldy: number,
     m0: number, m1: number, n0: number, n1: number, K: number): void;
  /** float64, subtracting: y[m, n] −= Σ_k x[m, k]·w[n, k]; same arguments as mm (pointers/strides in bytes). */
  mm64(x: number, ldx: number, w: number, ldw: number, y: number, ldy: number,
       m0: number, m1: number, n0: number, n1: number, K: number): void;
}
export const kernel = new WebAssembly.Instance(wasmModule, { env: { memory } }).exports as unknown as MatmulExports;

// Growing a shared memory never detaches older views; each growth hands out a new
// SharedArrayBuffer object over the same bytes. Remember them all to recognise heap views.
const heapBuffers = new WeakSet<ArrayBufferLike>();
function currentBuffer(): ArrayBufferLike {
  const b = memory.buffer;
  heapBuffers.add(b);
  return b;
}
currentBuffer();

let top = ALIGN; // byte 0..63 stays unused so that pointer 0 never names an array
// Blocks handed out (start → bytes) and returned ones (first fit, merged with free neighbours).
const live = new Map<number, number>();
let free: { start: number; bytes: number }[] = [];

/** Allocate `bytes` bytes (64-byte aligned); returns the byte offset. Freed only by heapFree. */
export function heapAllocBytes(bytes: number): number {
  const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
  const fit = free.findIndex((b) => b.bytes >= size);
  if (fit >= 0) {
    const b = free[fit]!;
    const start = b.start;
    if (b.bytes === size) free.splice(fit, 1);
    else { b.start += size; b.bytes -= size; }
    live.set(start, size);
    return start;
  }
  const start = top;
  const end = start + size;
  const have = memory.buffer.byteLength;
  if (end > have) {
    const needPages = Math.ceil((end - have) / PAGE);
    const cur = have / PAGE;
    if (cur + needPages > MAX_PAGES) fail('matmul heap', `out of memory: ${end} bytes exceed the 4 GiB WebAssembly limit`);
    // grow geometrically so repeated small growths stay cheap
    const grow = Math.min(MAX_PAGES - cur, Math.max(needPages, Math.ceil(cur / 4)));
    memory.grow(grow);
  }
  top = end;
  live.set(start, size);
  return start;
}

/**
 * Return a heap array's block (one from heapF32/heapI32/toHeap, not a subarray). The caller
 * promises that nothing uses it or any view of it afterwards.
 */
export function heapFree(a: ArrayBufferView): void {
  if (!isInHeap(a)) return;
  const start = a.byteOffset;
  const size = live.get(start);
  if (size === undefined) fail('matmul heap', `heapFree: no block starts at byte ${start}`);
  live.delete(start);
  free.push({ start, bytes: size });
  free.sort((x, y) => x.start - y.start);
  const merged: { start: number; bytes: number }[] = [];
  for (const b of free) {
    const last = merged[merged.length - 1];
    if (last && last.start + last.bytes === b.start) last.bytes += b.bytes;
    else merged.push({ ...b });
  }
  // a free block at the top goes back to the bump region
  const last = merged[merged.length - 1];
  if (last && last.start + last.bytes === top) { top = last.start; merged.pop(); }
  free = merged;
}

/** Bytes currently allocated in the heap (for tests and leak checks). */
export function heapLiveBytes(): number {
  let n = 0;
  for (const v of live.values()) n += v;
  return n;
}

/** A zeroed Float32Array of n floats living in the shared heap (until heapFree). */
export function heapF32(n: number): Float32Array {
  const off = heapAllocBytes(n * 4);
  const a = new Float32Array(currentBuffer(), off, n);
  a.fill(0); // a reused block holds old data
  return a;
}

/** A zeroed Int32Array of n ints living in the shared heap (until heapFree). */
export function heapI32(n: number): Int32Array {
  const off = heapAllocBytes(n * 4);
  const a = new Int32Array(currentBuffer(), off, n);
  a.fill(0);
  return a;
}

/** Copy `a` into the heap once (for weights reused on every call). */
export function toHeap(a: Float32Array): Float32Array {
  if (isInHeap(a)) return a;
  const h = heapF32(a.length);
  h.set(a);
  return h;
}

/** A zeroed Float64Array of n doubles in a named scratch slot (see scratchF32), 8-byte aligned. */
export function scratchF64(slot: string, n: number): Float64Array {
  const s = scratchF32(slot, 2 * n);
  const a = new Float64Array(s.buffer, s.byteOffset, n);
  a.fill(0);
  return a;
}

export function isInHeap(a: ArrayBufferView): boolean {
  return heapBuffers.has(a.buffer);
}

const scratchSlots = new Map<string, Float32Array>();
/** A reusable heap region of at least n floats, named by slot; contents are clobbered by the next user. */
export function scratchF32(slot: string, n: number): Float32Array {
  let s = scratchSlots.get(slot);
  if (!s || s.length < n) {
    const grown = heapF32(Math.max(n, Math.ceil((s?.length ?? 0) * 1.5), 1024));
    if (s) heapFree(s); // a slot's contents never outlive the call that asked for it
    s = grown;
    scratchSlots.set(slot, s);
  }
  return s.length === n ? s : s.subarray(0, n);
}

/** Give a scratch slot's region back to the heap (the next scratchF32 of that slot allocates afresh):
 *  for the K×K float64 slots of the calibration methods, which at K = 11008 (970 MB each) do not all fit in the 4 GiB heap at once. */
export function releaseScratch(slot: string): void {
  const s = scratchSlots.get(slot);
  if (!s) return;
  scratchSlots.delete(slot);
  heapFree(s);
}

/** Byte offset of a heap view (valid for the kernel). */
export function ptr(a: ArrayBufferView): number {
  return a.byteOffset;
}
