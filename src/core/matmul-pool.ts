// Worker threads for the fp32 GEMM. Each worker instantiates the same wasm kernel over the shared
// memory and sleeps (Atomics.wait) on one shared control block. A job is cut into tasks (blocks of
// columns, or of rows when there are few columns); the main thread and the workers claim tasks from
// an atomic counter, so a thread that the OS does not schedule simply gets fewer of them.
// Synchronous, as `Linear.forward` requires. INTSCALE_THREADS sets the thread count
// (default: available cores, at most 8). Besides the GEMM (job kind 0) the same threads run the
// JavaScript tasks of pool-tasks.ts (runTasks), claimed the same way.
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { fail } from './errors.ts';
import { POOL_TASKS_SOURCE } from './pool-tasks.ts';
import { heapI32, kernel, memory, wasmModule } from './wasm-heap.ts';

// control block (Int32 words)
const SEQ = 0;        // job number, bumped to wake the workers
const OPEN = 1;       // 1 while the current job accepts helpers
const ACTIVE = 2;     // workers currently inside the job
const NEXT = 3;       // next task to claim
const DONE = 4;       // tasks finished
const KIND = 5;       // 0: GEMM; else a task kind of pool-tasks.ts
const ARGS = 6;       // GEMM: x ldx w ldw y ldy M N K nTasks taskSize splitColumns (12 words)
const TASK_ARGS = 13; // tasks: ARGS + 0..12 the task's words, then nTasks, taskSize, extent
const BLOCK = 32;

// Plain JavaScript so that it runs without the TypeScript loader (workers created with eval).
// It must match runTasks() below.
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { memory, wasmModule, ctrlOffset, thread } = workerData;
const exportsOf = new WebAssembly.Instance(wasmModule, { env: { memory } }).exports, mm = exportsOf.mm;
const tasks = ${POOL_TASKS_SOURCE}(memory, exportsOf);
const c = new Int32Array(memory.buffer, ctrlOffset, ${BLOCK});
const taskArgs = c.subarray(${ARGS}, ${ARGS + TASK_ARGS});
let seen = 0;
for (;;) {
  let spins = 0;
  while (Atomics.load(c, ${SEQ}) === seen) {
    if (++spins > 3000) Atomics.wait(c, ${SEQ}, seen, 1000);
  }
  seen = Atomics.load(c, ${SEQ});
  Atomics.add(c, ${ACTIVE}, 1);
  if (Atomics.load(c, ${SEQ}) === seen && Atomics.load(c, ${OPEN}) === 1 && c[${KIND}] !== 0) {
    const a = ${ARGS + TASK_ARGS}, fn = tasks[c[${KIND}]];
    const nTasks = c[a], size = c[a + 1], extent = c[a + 2];
    let t;
    while ((t = Atomics.add(c, ${NEXT}, 1)) < nTasks) {
      fn(taskArgs, t * size, Math.min(extent, (t + 1) * size), thread);
      Atomics.add(c, ${DONE}, 1);
      Atomics.notify(c, ${DONE});
    }
  } else if (Atomics.load(c, ${SEQ}) === seen && Atomics.load(c, ${OPEN}) === 1) {
    const a = ${ARGS};
    const x = c[a], ldx = c[a + 1], w = c[a + 2], ldw = c[a + 3], y = c[a + 4], ldy = c[a + 5];
    const M = c[a + 6], N = c[a + 7], K = c[a + 8], nTasks = c[a + 9], size = c[a + 10], cols = c[a + 11];
    let t;
    while ((t = Atomics.add(c, ${NEXT}, 1)) < nTasks) {
      const lo = t * size, hi = Math.min((cols ? N : M), lo + size);
      if (cols) mm(x, ldx, w, ldw, y, ldy, 0, M, lo, hi, K); else mm(x, ldx, w, ldw, y, ldy, lo, hi, 0, N, K);
      Atomics.add(c, ${DONE}, 1);
      Atomics.notify(c, ${DONE});
    }
  }
  Atomics.sub(c, ${ACTIVE}, 1);
  Atomics.notify(c, ${ACTIVE});
}
`;

let ctrl: Int32Array | undefined;
let workerCount = 0;

export function threadCount(): number {
  const env = Number(process.env.INTSCALE_THREADS);
  if (Number.isInteger(env) && env >= 1) return Math.min(env, 64);
  return Math.max(1, Math.min(availableParallelism(), 8));
}

function control(): Int32Array {
  if (ctrl) return ctrl;
  ctrl = heapI32(BLOCK);
  workerCount = threadCount() - 1;
  for (let i = 0; i < workerCount; i++) {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { memory, wasmModule, ctrlOffset: ctrl.byteOffset, thread: i + 1 } });
    worker.unref(); // idle workers never keep the process alive
  }
  return ctrl;
}

/** Below this many multiply-adds a single thread is faster than waking the workers. */
const PARALLEL_MIN_MACS = 1 << 18; // ~0.05 ms of work: about what waking a worker costs

/**
 * y = x · wᵀ over heap pointers (bytes) with row strides (bytes): y[M,N], x[M,K], w[N,K].
 */
export function runMatmul(x: number, ldx: number, w: number, ldw: number, y: number, ldy: number,
                          M: number, N: number, K: number): void {
  if (M * N * K < PARALLEL_MIN_MACS || threadCount() === 1) {
    kernel.mm(x, ldx, w, ldw, y, ldy, 0, M, 0, N, K);
    return;
  }
  const c = control();
  const parts = workerCount + 1;
  // about 12 tasks per thread: when a thread is slow or descheduled, the others wait at most
  // for the one task it holds
  const splitColumns = N >= 8 * parts || N >= M;
  const extent = splitColumns ? N : M;
  const unit = splitColumns ? 4 : 2;
  const size = Math.max(unit, Math.ceil(extent / (parts * 12) / unit) * unit);
  const nTasks = Math.ceil(extent / size);
  c[ARGS] = x; c[ARGS + 1] = ldx; c[ARGS + 2] = w; c[ARGS + 3] = ldw; c[ARGS + 4] = y; c[ARGS + 5] = ldy;
  c[ARGS + 6] = M; c[ARGS + 7] = N; c[ARGS + 8] = K; c[ARGS + 9] = nTasks; c[ARGS + 10] = size;
  c[ARGS + 11] = splitColumns ? 1 : 0;
  c[KIND] = 0;
  Atomics.store(c, NEXT, 0);
  Atomics.store(c, DONE, 0);
  Atomics.store(c, OPEN, 1);
  Atomics.add(c, SEQ, 1);
  Atomics.notify(c, SEQ);
  let t: number;
  while ((t = Atomics.add(c, NEXT, 1)) < nTasks) {
    const lo = t * size, hi = Math.min(extent, lo + size);
    if (splitColumns) kernel.mm(x, ldx, w, ldw, y, ldy, 0, M, lo, hi, K);
    else kernel.mm(x, ldx, w, ldw, y, ldy, lo, hi, 0, N, K);
    Atomics.add(c, DONE, 1);
  }
  // wait for the tasks that workers claimed, then for every worker to leave the job
  waitUntil(c, DONE, nTasks);
  Atomics.store(c, OPEN, 0);
  waitUntil(c, ACTIVE, 0);
}

/** The main thread's copy of the task functions (same source as the workers'). */
let mainTasks: ((a: Int32Array, lo: number, hi: number, thread: number) => void)[] | undefined;

/** Threads a job may use (the main thread is thread 0): per-thread scratch is sized by this. */
export function poolThreads(): number {
  return threadCount() === 1 ? 1 : (control(), workerCount + 1);
}

/**
 * Run task `kind` of pool-tasks.ts over the index range [0, extent) in tasks of `size` indices,
 * on the main thread and the workers; `args` (at most 13 int32 words) are the task's arguments.
 * Returns when every task has finished.
 */
export function runTasks(kind: number, args: readonly number[], extent: number, size: number): void {
  if (args.length > TASK_ARGS) fail('matmul pool', `task takes at most ${TASK_ARGS} argument words, got ${args.length}`);
  if (!(Number.isInteger(size) && size >= 1)) fail('matmul pool', `task size ${size} must be a positive integer`);
  mainTasks ??= (new Function(`return ${POOL_TASKS_SOURCE};`)() as (m: WebAssembly.Memory, mm: unknown) => typeof mainTasks)(memory, kernel)!;
  const fn = mainTasks[kind];
  if (!fn) fail('matmul pool', `unknown task kind ${kind}`);
  const nTasks = Math.ceil(extent / size);
  if (threadCount() === 1 || nTasks <= 1) {
    const a = Int32Array.from(args);
    for (let t = 0; t < nTasks; t++) fn(a, t * size, Math.min(extent, (t + 1) * size), 0);
    return;
  }
  const c = control();
  for (let i = 0; i < args.length; i++) c[ARGS + i] = args[i]!;
  c[ARGS + TASK_ARGS] = nTasks; c[ARGS + TASK_ARGS + 1] = size; c[ARGS + TASK_ARGS + 2] = extent;
  c[KIND] = kind;
  Atomics.store(c, NEXT, 0);
  Atomics.store(c, DONE, 0);
  Atomics.store(c, OPEN, 1);
  Atomics.add(c, SEQ, 1);
  Atomics.notify(c, SEQ);
  const a = c.subarray(ARGS, ARGS + TASK_ARGS);
  let t: number;
  while ((t = Atomics.add(c, NEXT, 1)) < nTasks) {
    fn(a, t * size, Math.min(extent, (t + 1) * size), 0);
    Atomics.add(c, DONE, 1);
  }
  waitUntil(c, DONE, nTasks);
  Atomics.store(c, OPEN, 0);
  waitUntil(c, ACTIVE, 0);
}

function waitUntil(c: Int32Array, index: number, value: number): void {
  let spins = 0;
  let v: number;
  while ((v = Atomics.load(c, index)) !== value) {
    if (++spins > 5000) Atomics.wait(c, index, v, 1);
  }
}
